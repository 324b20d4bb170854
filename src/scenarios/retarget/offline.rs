//! `cpu-offline`: an application processor taken out the way Linux's `fixup_irqs` does it (smp-ir 2.9):
//! first every vector aimed at it moved to the other online CPUs (each source raised just before its
//! move, so the migration races live interrupts), then its IRR checked for a vector that raced the
//! moves (re-raised at the source's new place), then the CPU stopped. The check: every interrupt
//! raised during the migration arrived exactly once; every vector the CPU held is free again before it
//! goes (CVE-2024-31076 was such a leak); with it offline, every source of every device still delivers
//! exactly once where it is aimed; the CPU comes back online and takes interrupts again.
//!
//! Before the migration each driven device gets a source aimed at the CPU (when none is), so there is
//! something of every mode to move. The CPU is the last online one (never the BSP, which runs the
//! scenario).
//!
//! The control leaves one message source (MSI-X or MSI: edge, so nothing is left blocked) behind: the
//! same check reports the vector still held on the offline CPU (the leak) and that source's interrupt
//! reaching nobody. The CPU is then brought back, the source moved off it and the leaked vector freed.

use super::{acknowledge, claimed, cpu_list, cpus_or_skip, describe, vector_list, Expect, Ledger, Mismatch, Place, Tally, SETTLE_US};
use crate::arch::{lapic, smp};
use crate::drivers::Active;
use crate::irq::intx::REDELIVERIES_PER_CLAIM;
use crate::irq::vector::{self, FIRST_DEVICE_VECTOR, LAST_DEVICE_VECTOR};
use crate::modes::IrqMode;
use crate::scenarios::context::Context;
use crate::scenarios::{Outcome, Provoked, Verdict};
use crate::time;
use alloc::vec::Vec;
use msifw_proto::names::Scenario;

/// How long `call_on` may take on the CPU going offline.
const CALL_TIMEOUT_US: u64 = 1_000_000;

/// A source of a driven device: (index in `active`, source).
type Source = (usize, usize);

/// [`crate::scenarios::Stage::Live`].
pub(crate) fn step(ctx: &mut Context<'_>) {
    let Some(online) = cpus_or_skip(ctx.run, Scenario::CpuOffline) else { return };
    // The last online CPU (never the BSP) that no device whose sources cannot move holds a vector on.
    let Some(k) = online.iter().rev().copied().filter(|&c| c != online[0]).find(|&c| !fixed(ctx.active).iter().any(|f| f.cpus.contains(&c))) else {
        let mut why = alloc::string::String::new();
        for f in fixed(ctx.active) {
            let sep = if why.is_empty() { "" } else { "; " };
            let _ = core::fmt::Write::write_fmt(&mut why, format_args!("{sep}{} ({}, on CPU {})", f.bdf, f.why, cpu_list(&f.cpus)));
        }
        let v = Verdict::new(Outcome::Skip, format_args!("every CPU but the BSP holds vectors of a device whose sources cannot move off it: {why}"));
        ctx.run.scenario(Scenario::CpuOffline.name(), None, &v);
        ctx.run.scenario_record(Scenario::CpuOffline.name(), None, &v, true);
        return;
    };
    let v = cycle(ctx.active, &online, k, false).0;
    ctx.run.scenario(Scenario::CpuOffline.name(), None, &v);
    let (v, provoked) = cycle(ctx.active, &online, k, true);
    ctx.run.control(Scenario::CpuOffline.name(), None, &v, provoked, "no device driven with MSI-X or MSI to leave a vector behind");
}

fn live(d: &Active) -> bool {
    d.mode != IrqMode::None && !d.irq.vectors().is_empty()
}

/// Whether `d`'s sources can be moved one by one: not multiple-message MSI, whose vectors share one
/// message (one address: the block moves whole or not at all, and the modes layer moves sources
/// one by one; Linux does not offer multi-MSI without interrupt remapping on x86 for this reason).
fn movable(d: &Active) -> bool {
    !(d.mode == IrqMode::Msi && d.irq.vectors().len() > 1)
}

/// A live device whose sources cannot move, and the CPUs its vectors are on.
struct Fixed {
    bdf: crate::bus::pci::Bdf,
    why: alloc::string::String,
    cpus: Vec<usize>,
}

/// The live devices left where they are ([`movable`]).
fn fixed(active: &[Active]) -> Vec<Fixed> {
    let mut out = Vec::new();
    for d in active.iter().filter(|d| live(d) && !movable(d)) {
        let mut cpus: Vec<usize> = (0..d.irq.vectors().len()).filter_map(|i| d.irq.target(i).map(|t| t.cpu)).collect();
        crate::sort::sort(&mut cpus);
        cpus.dedup();
        out.push(Fixed { bdf: d.irq.bdf(), why: alloc::format!("{} MSI vectors share one message", d.irq.vectors().len()), cpus });
    }
    out
}

/// Every source (vector) of every live device aimed at `cpu`.
fn aimed_at(active: &[Active], cpu: usize) -> Vec<Source> {
    let mut out = Vec::new();
    for (d, dev) in active.iter().enumerate().filter(|(_, d)| live(d) && movable(d)) {
        let n = if dev.mode == IrqMode::Intx { 1 } else { dev.irq.vectors().len() };
        for i in 0..n {
            if dev.irq.target(i).is_some_and(|t| t.cpu == cpu) {
                out.push((d, i));
            }
        }
    }
    out
}

fn target_on<C: crate::bus::pci::ConfigRegion>(irq: &crate::modes::DeviceIrq<'_, C>, i: usize) -> Option<usize> {
    irq.target(i).map(|t| t.cpu)
}

fn spare(dev: &Active) -> u64 {
    if dev.mode == IrqMode::Intx {
        REDELIVERIES_PER_CLAIM as u64
    } else {
        0
    }
}

/// One offline cycle of CPU `k`; `control`: one message source left behind.
fn cycle(active: &mut [Active], online: &[usize], k: usize, control: bool) -> (Verdict, Provoked) {
    let mut provoked = Provoked::default();
    let mut t = Tally::default();
    let others: Vec<usize> = online.iter().copied().filter(|&c| c != k).collect();

    // Something of every device aimed at k.
    let mut aimed = 0u32;
    let left_in_place = fixed(active);
    for dev in active.iter_mut().filter(|d| live(d) && movable(d)) {
        let n = if dev.mode == IrqMode::Intx { 1 } else { dev.irq.vectors().len() };
        if (0..n).any(|i| dev.irq.target(i).is_some_and(|t| t.cpu == k)) {
            continue;
        }
        match dev.irq.retarget(0, k) {
            Ok(_) => aimed += 1,
            Err(e) => t.fail(format_args!("{}: aiming source 0 at CPU {k} failed: {e}", dev.irq.bdf())),
        }
    }
    let on_k = aimed_at(active, k);
    let held_before = vector::allocated_on(k);
    // The control's source left behind: the last message source aimed at k.
    let left: Option<Source> = if control {
        on_k.iter().rev().copied().find(|&(d, _)| matches!(active[d].mode, IrqMode::Msix | IrqMode::Msi))
    } else {
        None
    };
    let left_at: Option<Place> = left.and_then(|(d, i)| active[d].irq.target(i)).map(Place::of);

    // fixup_irqs: every source on k moved to the others, each raised just before its move.
    let ledger = Ledger::take(online);
    let mut expect: Vec<Expect> = Vec::new();
    let mut moves: Vec<(Source, Place, Place)> = Vec::new();
    let mut raised: Vec<Source> = Vec::new();
    let mut claims: Vec<u64> = Vec::new();
    for (n, &(d, i)) in on_k.iter().enumerate() {
        if Some((d, i)) == left {
            continue;
        }
        let dev = &mut active[d];
        // A shared INTx line moved with another device's source has left k already.
        if dev.irq.target(i).is_none_or(|t| t.cpu != k) {
            continue;
        }
        let dest = others[n % others.len()];
        let raise = i < dev.dev.source().sources();
        let before = dev.irq.count(i);
        if raise {
            if let Err(e) = dev.dev.source().trigger(i) {
                t.fail(format_args!("{} source {i}: trigger failed: {e}", dev.irq.bdf()));
            }
        }
        match dev.irq.retarget(i, dest) {
            Ok(m) => {
                t.moves += 1;
                let (old, new) = (Place::of(m.from), Place::of(m.to));
                if raise {
                    expect.push(Expect::either(old, new).spare(spare(dev)));
                    raised.push((d, i));
                    claims.push(before);
                }
                moves.push(((d, i), old, new));
            }
            Err(e) => t.fail(format_args!("{} source {i}: move off CPU {k} failed: {e}", dev.irq.bdf())),
        }
    }
    ledger.wait(&expect);
    for (&(d, i), &before) in raised.iter().zip(claims.iter()) {
        let dev = &mut active[d];
        claimed(&dev.irq, before, 1);
        if let Err(e) = acknowledge(dev.dev.source(), &mut dev.irq, i) {
            t.fail(format_args!("{} source {i}: acknowledge failed: {e}", dev.irq.bdf()));
        }
    }
    time::delay_us(SETTLE_US);
    // k's IRR: a vector it held that is still pending raced the moves; re-raise it where its source went.
    let pending = spin::Mutex::new(Vec::new());
    let held = held_before.clone();
    let scan = || {
        let mut p = pending.lock();
        for &v in held.iter().filter(|&&v| (FIRST_DEVICE_VECTOR..=LAST_DEVICE_VECTOR).contains(&v)) {
            if lapic::requested(v) {
                p.push(v);
            }
        }
    };
    if let Err(e) = smp::call_on(k, &scan, CALL_TIMEOUT_US) {
        t.fail(format_args!("CPU {k}'s IRR could not be read: {e:?}"));
    }
    let pending = pending.into_inner();
    for &v in pending.iter() {
        if let Some(&(_, old, new)) = moves.iter().find(|(_, old, _)| old.vector == v) {
            if let Some(apic) = smp::apic_id(new.cpu) {
                lapic::send_ipi(apic, new.vector);
                expect.push(Expect::at(new, 1));
                expect.push(Expect::stale(old));
            }
        }
    }
    if !pending.is_empty() {
        time::delay_us(SETTLE_US);
    }
    let mismatches = super::reconcile(&expect, &ledger.seen());
    if !mismatches.is_empty() {
        t.fail(format_args!("migrating off CPU {k}: {}", describe(&mismatches)));
    }
    t.interrupts += raised.len() as u64;
    let in_flight = raised.len();

    // Every vector k held is free again (the control: all but the one it left behind, which must be held).
    let mut still = vector::allocated_on(k);
    let leak = match left_at {
        Some(at) => {
            let held = still.contains(&at.vector);
            still.retain(|&v| v != at.vector);
            held
        }
        None => !still.is_empty(),
    };
    if !still.is_empty() {
        t.fail(format_args!("leak: CPU {k} still holds vector(s) {} after the migration", vector_list(&still)));
    }
    let free = Free { kept: kept_in_place(&left_in_place), aimed, held: held_before.len(), in_flight, message: vector::free_on(k, vector::Pool::Message), intx: vector::free_on(k, vector::Pool::Intx) };

    // Offline.
    if let Err(e) = smp::take_offline(k) {
        t.fail(format_args!("CPU {k} could not be taken offline: {e:?}"));
        return (verdict(t, control, leak, false, k, online, &free, 0), provoked);
    }
    let offline = smp::cpus().get(k).is_some_and(|c| matches!(c.state, smp::CpuState::Offline)) && !smp::online().contains(&k);
    if !offline {
        t.fail(format_args!("CPU {k} is not reported offline after take_offline"));
    }

    // With k offline, every source of every device raised once, each where it is aimed.
    let ledger = Ledger::take(online);
    let mut expect: Vec<Expect> = Vec::new();
    let mut raised: Vec<Source> = Vec::new();
    let mut claims: Vec<u64> = Vec::new();
    for (d, dev) in active.iter_mut().enumerate().filter(|(_, d)| live(d)) {
        let sources = dev.dev.source().sources().min(if dev.mode == IrqMode::Intx { 1 } else { dev.irq.vectors().len() });
        for i in 0..sources {
            let Some(target) = dev.irq.target(i) else { continue };
            let before = dev.irq.count(i);
            if let Err(e) = dev.dev.source().trigger(i) {
                t.fail(format_args!("{} source {i}: trigger failed: {e}", dev.irq.bdf()));
                continue;
            }
            expect.push(Expect::at(Place::of(target), 1).spare(spare(dev)));
            raised.push((d, i));
            claims.push(before);
        }
    }
    ledger.wait(&expect);
    for (&(d, i), &before) in raised.iter().zip(claims.iter()) {
        let dev = &mut active[d];
        if target_on(&dev.irq, i) != Some(k) {
            claimed(&dev.irq, before, 1);
        }
        if let Err(e) = acknowledge(dev.dev.source(), &mut dev.irq, i) {
            t.fail(format_args!("{} source {i}: acknowledge failed: {e}", dev.irq.bdf()));
        }
    }
    time::delay_us(SETTLE_US);
    let mut mismatches = super::reconcile(&expect, &ledger.seen());
    // The control's left-behind source reaches nobody: that is what it looks for, nothing else may differ.
    let reached_nobody = match left_at {
        Some(at) => {
            let lost = mismatches.iter().any(|m| matches!(m, Mismatch::Missing { at: a, .. } if *a == at));
            mismatches.retain(|m| !matches!(m, Mismatch::Missing { at: a, .. } if *a == at));
            lost
        }
        None => mismatches.iter().any(|m| matches!(m, Mismatch::Missing { at, .. } if at.cpu == k)),
    };
    if !mismatches.is_empty() {
        t.fail(format_args!("with CPU {k} offline: {}", describe(&mismatches)));
    }
    t.interrupts += raised.len() as u64;
    // A message source was left aimed at the offline CPU.
    if left.is_some() {
        provoked.live_messages += 1;
    }

    // Back online, and interrupts reach it again.
    let mut back = 0u64;
    match smp::bring_online(k) {
        Err(e) => t.fail(format_args!("CPU {k} could not be brought back online: {e:?}")),
        Ok(()) => {
            if !smp::online().contains(&k) {
                t.fail(format_args!("CPU {k} is not reported online after bring_online"));
            }
            // The control's source: off k with the proper move, which frees the leaked vector.
            if let Some((d, i)) = left {
                let dev = &mut active[d];
                let dest = others[0];
                if let Err(e) = dev.irq.retarget(i, dest) {
                    t.fail(format_args!("{} source {i}: moving the left-behind source off CPU {k} failed: {e}", dev.irq.bdf()));
                }
            }
            back = back_on(active, online, k, &mut t);
        }
    }
    (verdict(t, control, leak, reached_nobody, k, online, &free, back), provoked)
}

/// The devices kept where they are, for the detail: ` (kept in place: 00:06.0 on CPU 0, 16 MSI vectors
/// share one message)`; empty when there are none.
fn kept_in_place(fixed: &[Fixed]) -> alloc::string::String {
    let mut s = alloc::string::String::new();
    for (n, f) in fixed.iter().enumerate() {
        let sep = if n == 0 { " (kept in place: " } else { "; " };
        let _ = core::fmt::Write::write_fmt(&mut s, format_args!("{sep}{} on CPU {}, {}", f.bdf, cpu_list(&f.cpus), f.why));
    }
    if !s.is_empty() {
        s.push(')');
    }
    s
}

/// A source moved back onto `k` after it came back, raised once: it must arrive there. Returns the
/// interrupts seen there.
fn back_on(active: &mut [Active], online: &[usize], k: usize, t: &mut Tally) -> u64 {
    let Some(d) = active
        .iter()
        .position(|d| live(d) && movable(d) && matches!(d.mode, IrqMode::Msix | IrqMode::Msi))
        .or_else(|| active.iter().position(|d| live(d) && movable(d)))
    else {
        return 0;
    };
    let dev = &mut active[d];
    if dev.dev.source().sources() == 0 {
        return 0;
    }
    let moved = match dev.irq.retarget(0, k) {
        Ok(m) => m,
        Err(e) => {
            t.fail(format_args!("{}: moving source 0 back onto CPU {k} failed: {e}", dev.irq.bdf()));
            return 0;
        }
    };
    let ledger = Ledger::take(online);
    let expect = [Expect::at(Place::of(moved.to), 1).spare(spare(dev))];
    let before = dev.irq.count(0);
    if let Err(e) = dev.dev.source().trigger(0) {
        t.fail(format_args!("{}: trigger failed: {e}", dev.irq.bdf()));
    }
    ledger.wait(&expect);
    claimed(&dev.irq, before, 1);
    let _ = acknowledge(dev.dev.source(), &mut dev.irq, 0);
    time::delay_us(SETTLE_US);
    let mismatches = super::reconcile(&expect, &ledger.seen());
    if !mismatches.is_empty() {
        t.fail(format_args!("CPU {k} back online: {}", describe(&mismatches)));
        return 0;
    }
    1
}

/// What the migration left on the CPU.
#[derive(Debug)]
struct Free {
    /// The devices kept where they are ([`kept_in_place`]).
    kept: alloc::string::String,
    /// Devices given a source on it first.
    aimed: u32,
    /// Vectors it held before the migration.
    held: usize,
    /// Sources raised just before their move off it.
    in_flight: usize,
    /// Free vectors of each pool on it after the migration.
    message: usize,
    intx: usize,
}

#[allow(clippy::too_many_arguments)]
fn verdict(t: Tally, control: bool, leak: bool, reached_nobody: bool, k: usize, online: &[usize], free: &Free, back: u64) -> Verdict {
    if control {
        // Only the left-behind source's leak and lost interrupt are the control's; anything else that
        // failed is not part of the catch, and the control cannot claim one.
        if let Some(other) = t.failure.as_deref() {
            return Verdict::new(
                Outcome::Fail,
                format_args!("the control's run failed otherwise (left-behind vector {} held, its interrupt {} lost): {other}", if leak { "was" } else { "not" }, if reached_nobody { "was" } else { "not" }),
            );
        }
        return match (leak, reached_nobody) {
            (true, true) => Verdict::new(
                Outcome::Pass,
                format_args!("caught: one vector left behind on CPU {k}: the leak (still held after the migration) and its interrupt reaching nobody with CPU {k} offline; nothing else failed"),
            ),
            (true, false) => Verdict::new(Outcome::Fail, format_args!("the leak was seen, but the left-behind source's interrupt was not missed")),
            (false, _) => Verdict::new(Outcome::Fail, format_args!("not caught: nothing left held on CPU {k}")),
        };
    }
    match t.failure {
        Some(why) => Verdict::new(Outcome::Fail, format_args!("{why}")),
        None => Verdict::new(
            Outcome::Pass,
            format_args!(
                "CPU {k} of {}{}: {} vector(s) moved off ({} devices aimed there first, {} raised in flight), all freed ({}+{} free); offline, {} sources once where aimed; back online, {back} there",
                cpu_list(online),
                free.kept,
                free.held,
                free.aimed,
                free.in_flight,
                free.message,
                free.intx,
                t.interrupts
            ),
        ),
    }
}
