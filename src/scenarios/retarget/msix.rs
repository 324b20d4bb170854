//! `retarget-msix`: each MSI-X entry of a device moved round every online CPU and back, the Linux way
//! (`pci_write_msg_msix`: mask the entry, write address and data, unmask), while the device keeps
//! raising: every other source is raised in the same step, and the moving one either just before its
//! move (in flight: it lands once, at the old place before the mask or at the new one after) or between
//! the writes, while the entry is masked (its Pending Bit must show, PCIe 6.0 7.7.2.5, and the message
//! must arrive once, after the unmask, at the new place). After each move one more raise must reach the
//! new place only, the old vector must be free on the old CPU, and nothing may arrive anywhere else
//! ([`super::reconcile`]).
//!
//! The control rewrites one entry without masking it ([`MoveHow::Unmasked`]) and raises between the
//! address and the data write: the device sends the new address with the old data, so the old vector
//! reaches the new CPU, where this entry does not own it, and the same check must catch it.

use super::{acknowledge, cpu_list, cpus_or_skip, describe, next_cpu, Expect, Ledger, Pace, Place, Tally, RAISE_TIMEOUT_US, SETTLE_US};
use crate::bus::pci::enumerate::Function;
use crate::bus::pci::caps;
use crate::drivers::{Active, InterruptSource};
use crate::irq::vector::{self, Pool, VectorBlock};
use crate::modes::{DeviceIrq, IrqMode, MoveHow};
use crate::scenarios::context::Context;
use crate::scenarios::{Outcome, Provoked, Verdict};
use crate::arch::mmio::MmioWindow;
use crate::bus::pci::config::PlatformConfig;
use crate::time;
use alloc::vec::Vec;
use msifw_proto::names::Scenario;

/// [`crate::scenarios::Stage::Live`].
pub(crate) fn step(ctx: &mut Context<'_>) {
    if !ctx.active.iter().any(|d| d.mode == IrqMode::Msix) {
        return;
    }
    let Some(online) = cpus_or_skip(ctx.run, Scenario::RetargetMsix) else { return };
    for dev in ctx.active.iter_mut().filter(|d| d.mode == IrqMode::Msix) {
        let Some(f) = ctx.pci.functions.get(dev.index) else { continue };
        let v = guard(ctx.cfg, f, dev, &online);
        ctx.run.scenario(Scenario::RetargetMsix.name(), Some(f.bdf), &v);
        if let Some((e, addr, data)) = dev.irq.table_mismatch() {
            // Not "nothing provoked": the control cannot run on a table that lost its messages.
            let v = Verdict::new(Outcome::Fail, format_args!("not run: MSI-X entry {e} no longer holds its message (read {addr:#x}/{data:#x}), left so by a scenario run before"));
            ctx.run.scenario_record(Scenario::RetargetMsix.name(), Some(f.bdf), &v, true);
            continue;
        }
        let (v, provoked) = control(dev, &online);
        ctx.run.control(Scenario::RetargetMsix.name(), Some(f.bdf), &v, provoked, "the entry's new vector equals its old one: a torn message cannot go astray");
    }
}

/// The function's Pending Bit Array, read to see a raise held by a masked entry (reads only).
struct Pba(MmioWindow);

impl Pba {
    fn map(cfg: &PlatformConfig, f: &Function) -> Option<Pba> {
        let at = f.caps.find(caps::id::MSIX)?;
        let cap = crate::modes::msix::read_capability(cfg, f.bdf, at);
        crate::modes::msix::map(&cap, f).ok().map(|(_, pba)| Pba(pba))
    }

    fn pending(&self, i: usize) -> bool {
        self.0.read64((i as u64 / 64) * 8) & (1 << (i % 64)) != 0
    }
}

/// How the moving source raises in a move of the guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Raise {
    /// Just before the move: lands at the old place or the new one.
    InFlight,
    /// Between the writes, the entry masked.
    DuringMask,
}

fn guard(cfg: &PlatformConfig, f: &Function, dev: &mut Active, online: &[usize]) -> Verdict {
    let Some(pba) = Pba::map(cfg, f) else {
        return Verdict::new(Outcome::Fail, format_args!("the MSI-X Pending Bit Array could not be mapped"));
    };
    // The entries must hold what msifw wrote before anything moves: a table a reset wiped (and nothing
    // restored) delivers nowhere, which is not a move's fault.
    if let Some((e, addr, data)) = dev.irq.table_mismatch() {
        return Verdict::new(
            Outcome::Fail,
            format_args!("before any move, MSI-X entry {e} no longer holds its message (read {addr:#x}/{data:#x}): the device was left so by a scenario run before; nothing moved"),
        );
    }
    let dev_kind = dev.dev.kind();
    let fewer = dev.fewer.clone();
    let src = dev.dev.source();
    let irq = &mut dev.irq;
    let driven = src.sources();
    let sources = driven.min(irq.vectors().len());
    if sources == 0 {
        return Verdict::new(Outcome::Skip, format_args!("no interrupt source driven"));
    }
    let live = entries_live(dev_kind, fewer, sources, irq.vectors().len(), driven);
    let mut pace = Pace::new(sources);
    let mut t = Tally::default();
    let (mut during, mut before_move, mut after_move) = (0u32, 0u32, 0u32);
    // Each entry goes round every online CPU and back to where it started.
    for m in 0..sources * online.len() {
        let i = m % sources;
        let raise = if (m / sources).is_multiple_of(2) { Raise::DuringMask } else { Raise::InFlight };
        let Some(from) = irq.target(i) else {
            t.fail(format_args!("entry {i} has no target"));
            break;
        };
        let dest = next_cpu(online, from.cpu);
        let ledger = Ledger::take(online);
        let mut expect: Vec<Expect> = Vec::new();
        // The device keeps raising: every other source now, the moving one in flight or during the mask.
        for j in (0..sources).filter(|&j| j != i || raise == Raise::InFlight) {
            if let Err(e) = pace.trigger(src, j) {
                t.fail(format_args!("source {j}: trigger failed: {e}"));
            }
            if j != i {
                if let Some(tj) = irq.target(j) {
                    expect.push(Expect::at(Place::of(tj), 1));
                }
            }
        }
        let mut pended = None;
        let moved = {
            let mut between = || {
                if raise == Raise::DuringMask {
                    let _ = pace.trigger(src, i);
                    pended = Some(time::wait_until(RAISE_TIMEOUT_US, || pba.pending(i)));
                }
            };
            irq.retarget_with(i, dest, MoveHow::Linux, &mut between)
        };
        let moved = match moved {
            Ok(m) => m,
            Err(e) => {
                t.fail(format_args!("entry {i}: move from CPU {} to CPU {dest} failed: {e}", from.cpu));
                break;
            }
        };
        t.moves += 1;
        let (old, new) = (Place::of(moved.from), Place::of(moved.to));
        if moved.to.cpu != dest || old != Place::of(from) {
            t.fail(format_args!("entry {i}: asked to move {} to CPU {dest}, moved {old} to {new}", Place::of(from)));
        }
        if raise == Raise::DuringMask && pended != Some(true) {
            t.fail(format_args!("entry {i}: the raise during the mask never set its Pending Bit within {} ms", RAISE_TIMEOUT_US / 1000));
        }
        if vector::allocated_on(old.cpu).contains(&old.vector) {
            t.fail(format_args!("entry {i}: moved to {new}, but old {old} is still held (not freed)"));
        }
        expect.push(match raise {
            Raise::InFlight => Expect::either(old, new),
            Raise::DuringMask => Expect::at(new, 1),
        });
        let seen = ledger.wait(&expect);
        if raise == Raise::InFlight {
            if seen.iter().any(|s| s.at == old && s.n > 0) {
                before_move += 1;
            } else {
                after_move += 1;
            }
        } else {
            during += 1;
        }
        for j in 0..sources {
            if let Err(e) = acknowledge(src, irq, j) {
                t.fail(format_args!("source {j}: acknowledge failed: {e}"));
            }
        }
        time::delay_us(SETTLE_US);
        let mismatches = super::reconcile(&expect, &ledger.seen());
        if !mismatches.is_empty() {
            let n = t.moves;
            t.fail(format_args!("move {n} of entry {i} ({old} to {new}, raise {raise:?}): {}", describe(&mismatches)));
        }
        t.interrupts += expect.iter().map(|e| e.n).sum::<u64>();
        // After the move: one more raise, at the new place only.
        let ledger = Ledger::take(online);
        let expect = [Expect::at(new, 1)];
        if let Err(e) = pace.trigger(src, i) {
            t.fail(format_args!("source {i}: trigger failed: {e}"));
        }
        ledger.wait(&expect);
        if let Err(e) = acknowledge(src, irq, i) {
            t.fail(format_args!("source {i}: acknowledge failed: {e}"));
        }
        time::delay_us(SETTLE_US);
        let mismatches = super::reconcile(&expect, &ledger.seen());
        if !mismatches.is_empty() {
            let n = t.moves;
            t.fail(format_args!("a raise after move {n} (entry {i} to {new}, from {old}): {}", describe(&mismatches)));
        }
        t.interrupts += 1;
        if t.failed() {
            break;
        }
    }
    match t.failure {
        Some(why) => Verdict::new(Outcome::Fail, format_args!("{why}")),
        None => Verdict::new(
            Outcome::Pass,
            format_args!(
                "{} moves of {live} round CPUs {} under load, {} interrupts each once where aimed; {during} raised while masked arrived once after; {before_move} in flight before the mask, {after_move} after; old vectors freed",
                t.moves,
                cpu_list(online),
                t.interrupts
            ),
        ),
    }
}

/// How many of the device's MSI-X entries the guard moves, and why not more: `sources` moved, of the
/// `wanted` sources its driver drives with every vector it asks for; `enabled` entries have a vector now
/// and `driven` sources are driven.
fn entries_live(kind: crate::drivers::DriverKind, fewer: Option<alloc::string::String>, sources: usize, enabled: usize, driven: usize) -> alloc::string::String {
    let wanted = kind.wants().1;
    if sources >= wanted {
        return alloc::format!("{sources} entries");
    }
    let why = match fewer {
        Some(why) => why,
        None => alloc::format!("{enabled} with a vector, {driven} driven: an earlier scenario left it so"),
    };
    alloc::format!("{sources} of {wanted} entries live ({why})")
}

/// One entry rewritten unmasked, with a raise between the address and the data write.
fn control(dev: &mut Active, online: &[usize]) -> (Verdict, Provoked) {
    let src = dev.dev.source();
    let irq = &mut dev.irq;
    let mut provoked = Provoked::default();
    let Some(from) = irq.target(0) else {
        return (Verdict::new(Outcome::Fail, format_args!("entry 0 has no target")), provoked);
    };
    let dest = next_cpu(online, from.cpu);
    let verdict = torn_move(src, irq, 0, dest, online, MoveHow::Unmasked, "entry left unmasked", &mut provoked);
    (verdict, provoked)
}

/// A move of source `i` to `dest` done `how` (a broken order), with a raise between the address and the
/// data write that waits until the message has arrived somewhere. Judged with the guard's check: the
/// control passes when that check catches the message at the old vector on the new CPU. Shared with
/// `retarget-msi`'s control.
#[allow(clippy::too_many_arguments)]
pub(super) fn torn_move<C: crate::bus::pci::ConfigRegion + Sync>(
    src: &mut dyn InterruptSource,
    irq: &mut DeviceIrq<'_, C>,
    i: usize,
    dest: usize,
    online: &[usize],
    how: MoveHow,
    what: &str,
    provoked: &mut Provoked,
) -> Verdict {
    let Some(from) = irq.target(i) else {
        return Verdict::new(Outcome::Fail, format_args!("source {i} has no target"));
    };
    // The new vector must differ from the old one for a torn message to go astray: hold the old vector's
    // number on the new CPU when it is free there (when another source holds it, the move cannot take it).
    let hold = VectorBlock::alloc_exact_on(dest, Pool::Message, from.vector).ok();
    let ledger = Ledger::take(online);
    let mut arrived_between = false;
    // `retarget_with` marks its broken order in the access trace as a control's (write-order).
    let moved = {
        let mut between = || {
            let before = Ledger::take(online);
            if src.trigger(i).is_ok() {
                arrived_between = before.wait_any(RAISE_TIMEOUT_US);
            }
        };
        irq.retarget_with(i, dest, how, &mut between)
    };
    drop(hold);
    let moved = match moved {
        Ok(m) => m,
        Err(e) => return Verdict::new(Outcome::Fail, format_args!("move to CPU {dest} ({what}) failed: {e}")),
    };
    let (old, new) = (Place::of(moved.from), Place::of(moved.to));
    if old.vector != new.vector {
        provoked.live_messages += 1;
    }
    let expect = [Expect::at(new, 1)];
    let _ = acknowledge(src, irq, i);
    time::delay_us(SETTLE_US);
    let mismatches = super::reconcile(&expect, &ledger.seen());
    let strays: Vec<Place> = mismatches.iter().filter(|m| matches!(m, super::Mismatch::Extra { .. })).map(|m| m.place()).collect();
    Ledger::take_unowned(&strays);
    match strays.first() {
        Some(stray) => Verdict::new(
            Outcome::Pass,
            format_args!("caught: {what}, a raise between the address and data writes reached {stray} instead of {new}: {}", describe(&mismatches)),
        ),
        None if mismatches.is_empty() => Verdict::new(
            Outcome::Fail,
            format_args!("not caught: {what}, the raise between the writes{} arrived at {new} as aimed", if arrived_between { " (seen between them)" } else { "" }),
        ),
        None => Verdict::new(Outcome::Fail, format_args!("{what}: the raise between the writes went nowhere: {}", describe(&mismatches))),
    }
}
