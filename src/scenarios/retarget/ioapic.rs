//! `retarget-ioapic`: a live level-triggered INTx line moved round every online CPU by rewriting its
//! IOAPIC redirection entry the Linux way (mask, rewrite destination and vector, unmask; smp-ir 2.5).
//! Every other move the device asserts its line while the entry is masked, and the level must be
//! delivered once after the unmask at the new place; the moves between raise just before the move
//! (in flight: the level lands once, at the old place or the new one; its EOI must still end it, or the
//! line stays blocked by Remote IRR and the next raise is lost). After each move one more raise reaches
//! the new place only, and the old vector is free on the old CPU. A level the IOAPIC delivers again after
//! a claim (KVM) is taken as the INTx hold takes it, up to `REDELIVERIES_PER_CLAIM`.
//!
//! The control rewrites the entry without masking it while the device asserts the line, raising between
//! the two halves of the entry: the IOAPIC delivers the half-written entry (QEMU and KVM service a level
//! entry on every write), to a CPU on a vector the line does not own there, and the check catches it.
//! That CPU is one on which the line's vector is free, and the control holds exactly that vector there
//! (owned, no handler), so the strays reach no other line's handler and the move's new vector differs;
//! with no such CPU the control is a skip naming why.
//! The control's hook acknowledges the device before the second half, so the line is left healthy, which
//! a raise after it shows.

use super::{acknowledge, claimed, cpu_list, cpus_or_skip, describe, next_cpu, Expect, Ledger, Mismatch, Pace, Place, Tally, RAISE_TIMEOUT_US, SETTLE_US};
use crate::drivers::Active;
use crate::irq::intx::REDELIVERIES_PER_CLAIM;
use crate::irq::vector;
use crate::modes::{IrqMode, MoveHow};
use crate::scenarios::context::Context;
use crate::scenarios::{Outcome, Provoked, Verdict};
use crate::time;
use alloc::vec::Vec;
use msifw_proto::names::Scenario;

const SPARE: u64 = REDELIVERIES_PER_CLAIM as u64;
/// How long no stray may come before the control's hook lets the entry's second half be written: the
/// last stray's EOI (old vector) must reach the IOAPIC while the entry still names that vector. Generous:
/// the CPU taking the strays is a vCPU thread on a loaded host.
const EOI_GRACE_US: u64 = 10_000;

fn applies(d: &Active) -> bool {
    d.mode == IrqMode::Intx && d.irq.intx_route().is_some()
}

/// [`crate::scenarios::Stage::Live`].
pub(crate) fn step(ctx: &mut Context<'_>) {
    if !ctx.active.iter().any(applies) {
        return;
    }
    let Some(online) = cpus_or_skip(ctx.run, Scenario::RetargetIoapic) else { return };
    for dev in ctx.active.iter_mut().filter(|d| applies(d)) {
        let Some(f) = ctx.pci.functions.get(dev.index) else { continue };
        let v = guard(ctx.cfg, dev, &online);
        ctx.run.scenario(Scenario::RetargetIoapic.name(), Some(f.bdf), &v);
        let mut provoked = Provoked::default();
        let v = control(dev, &online, &mut provoked);
        if v.outcome == Outcome::Skip {
            // Not run, for the reason it names (not "nothing provoked").
            ctx.run.scenario_record(Scenario::RetargetIoapic.name(), Some(f.bdf), &v, true);
            continue;
        }
        ctx.run.control(Scenario::RetargetIoapic.name(), Some(f.bdf), &v, provoked, "the new vector equals the old one: a half-written entry cannot go astray");
    }
}

fn guard(cfg: &crate::bus::pci::config::PlatformConfig, dev: &mut Active, online: &[usize]) -> Verdict {
    let src = dev.dev.source();
    let irq = &mut dev.irq;
    let gsi = irq.intx_route().map_or(0, |r| r.gsi);
    let mut pace = Pace::new(1);
    let mut t = Tally::default();
    let (mut during, mut before_move, mut after_move) = (0u32, 0u32, 0u32);
    for m in 0..2 * online.len() {
        let masked_raise = m.is_multiple_of(2);
        let Some(from) = irq.target(0) else {
            t.fail(format_args!("no target"));
            break;
        };
        let dest = next_cpu(online, from.cpu);
        let ledger = Ledger::take(online);
        let claims = irq.count(0);
        if !masked_raise {
            if let Err(e) = pace.trigger(src, 0) {
                t.fail(format_args!("trigger failed: {e}"));
            }
        }
        let moved = {
            let mut between = || {
                if masked_raise {
                    let _ = pace.trigger(src, 0);
                }
            };
            irq.retarget_with(0, dest, MoveHow::Linux, &mut between)
        };
        let moved = match moved {
            Ok(m) => m,
            Err(e) => {
                t.fail(format_args!("GSI {gsi}: move from CPU {} to CPU {dest} failed: {e}", from.cpu));
                break;
            }
        };
        t.moves += 1;
        let (old, new) = (Place::of(moved.from), Place::of(moved.to));
        if vector::allocated_on(old.cpu).contains(&old.vector) && old != new {
            t.fail(format_args!("GSI {gsi}: moved to {new}, but old {old} is still held (not freed)"));
        }
        let expect = [if masked_raise { Expect::at(new, 1) } else { Expect::either(old, new) }.spare(SPARE)];
        let seen = ledger.wait(&expect);
        claimed(irq, claims, 1);
        if masked_raise {
            during += 1;
        } else if seen.iter().any(|s| s.at == old && s.n > 0) {
            before_move += 1;
        } else {
            after_move += 1;
        }
        if let Err(e) = acknowledge(src, irq, 0) {
            t.fail(format_args!("acknowledge failed: {e}"));
        }
        time::delay_us(SETTLE_US);
        let mismatches = super::reconcile(&expect, &ledger.seen());
        if !mismatches.is_empty() {
            let n = t.moves;
            t.fail(format_args!("GSI {gsi} move {n} ({old} to {new}, {}): {}", if masked_raise { "asserted while masked" } else { "asserted in flight" }, describe(&mismatches)));
        }
        // After the move: a raise reaches the new place only (a Remote IRR left set would lose it).
        let ledger = Ledger::take(online);
        let expect = [Expect::at(new, 1).spare(SPARE)];
        let claims = irq.count(0);
        if let Err(e) = pace.trigger(src, 0) {
            t.fail(format_args!("trigger failed: {e}"));
        }
        ledger.wait(&expect);
        claimed(irq, claims, 1);
        if let Err(e) = acknowledge(src, irq, 0) {
            t.fail(format_args!("acknowledge failed: {e}"));
        }
        time::delay_us(SETTLE_US);
        let mismatches = super::reconcile(&expect, &ledger.seen());
        if !mismatches.is_empty() {
            let n = t.moves;
            // What the function says about its INTx (Command.Interrupt Disable, Status.Interrupt).
            let cs = crate::bus::pci::ConfigRegion::read32(cfg, irq.bdf(), crate::bus::pci::regs::COMMAND);
            t.fail(format_args!(
                "GSI {gsi}: a raise after move {n} (to {new}, from {old}): {} (function's Command/Status {cs:#010x})",
                describe(&mismatches)
            ));
        }
        t.interrupts += 2;
        if t.failed() {
            break;
        }
    }
    match t.failure {
        Some(why) => Verdict::new(Outcome::Fail, format_args!("{why}")),
        None => Verdict::new(
            Outcome::Pass,
            format_args!(
                "GSI {gsi}: {} moves round CPUs {}, {} level interrupts each once where aimed; {during} asserted while masked arrived once after; {before_move} in flight before the mask, {after_move} after; old vectors freed",
                t.moves,
                cpu_list(online),
                t.interrupts
            ),
        ),
    }
}

/// The first online CPU after `from` (round the list, `from` itself excluded) on which `vector` is free,
/// with `vector` held there.
fn hold_old_vector(online: &[usize], from: usize, vector: u8) -> Option<(usize, vector::VectorBlock)> {
    let pool = if vector >= vector::FIRST_INTX_VECTOR { vector::Pool::Intx } else { vector::Pool::Message };
    let mut cpu = from;
    for _ in 0..online.len() {
        cpu = next_cpu(online, cpu);
        if cpu == from {
            break;
        }
        if let Ok(b) = vector::VectorBlock::alloc_exact_on(cpu, pool, vector) {
            return Some((cpu, b));
        }
    }
    None
}

/// The entry rewritten unmasked with the level asserted between its halves.
fn control(dev: &mut Active, online: &[usize], provoked: &mut Provoked) -> Verdict {
    let src = dev.dev.source();
    let irq = &mut dev.irq;
    let Some(from) = irq.target(0) else {
        return Verdict::new(Outcome::Fail, format_args!("no target"));
    };
    // The half-written entry (new destination, old vector) must land where no handler serves: a CPU
    // other than the line's on which the old vector is free, held there (so the move's new vector
    // differs from it). Another line owning it there would take the strays as its own.
    let Some((dest, hold)) = hold_old_vector(online, from.cpu, from.vector) else {
        return Verdict::new(
            Outcome::Skip,
            format_args!(
                "no online CPU other than CPU {} has the line's vector {:#x} free (other lines hold it on CPUs {}): a half-written entry would reach another line's handler",
                from.cpu,
                from.vector,
                cpu_list(&online.iter().copied().filter(|&c| c != from.cpu).collect::<Vec<_>>())
            ),
        );
    };
    let ledger = Ledger::take(online);
    let mut arrived_between = false;
    // `retarget_with` marks its broken order in the access trace as a control's.
    let moved = {
        let mut between = || {
            let before = Ledger::take(online);
            if src.trigger(0).is_ok() {
                arrived_between = before.wait_any(RAISE_TIMEOUT_US);
                // Deassert the line at once, then let the last stray's EOI reach the IOAPIC while the
                // entry still names the old vector (its Remote IRR clears): wait until no stray has come
                // for a while, so the entry's second half finds nothing pending and the line stays usable.
                let _ = src.acknowledge(0);
                before.wait_quiet(EOI_GRACE_US, RAISE_TIMEOUT_US);
            }
        };
        irq.retarget_with(0, dest, MoveHow::Unmasked, &mut between)
    };
    drop(hold);
    let moved = match moved {
        Ok(m) => m,
        Err(e) => return Verdict::new(Outcome::Fail, format_args!("unmasked move to CPU {dest} failed: {e}")),
    };
    let (old, new) = (Place::of(moved.from), Place::of(moved.to));
    if old.vector != new.vector || old.cpu != new.cpu {
        provoked.asserted_lines += 1;
    }
    irq.rearm(0);
    time::delay_us(SETTLE_US);
    let expect = [Expect::at(new, 1).spare(SPARE)];
    let mismatches = super::reconcile(&expect, &ledger.seen());
    let strays: Vec<Place> = mismatches.iter().filter(|m| matches!(m, Mismatch::Extra { .. })).map(|m| m.place()).collect();
    Ledger::take_unowned(&strays);
    // The line afterwards: one raise, at the new place.
    let after = Ledger::take(online);
    let expect_after = [Expect::at(new, 1).spare(SPARE)];
    let claims = irq.count(0);
    let _ = src.trigger(0);
    after.wait(&expect_after);
    claimed(irq, claims, 1);
    let _ = acknowledge(src, irq, 0);
    time::delay_us(SETTLE_US);
    let healthy = super::reconcile(&expect_after, &after.seen()).is_empty();
    let health = if healthy { "line healthy after" } else { "and the line did not deliver a raise after it" };
    match strays.first() {
        Some(stray) => Verdict::new(
            Outcome::Pass,
            format_args!("caught: entry rewritten unmasked with the level asserted, the half-written entry delivered at {stray} (not the line's): {}; {health}", describe(&mismatches)),
        ),
        None => Verdict::new(
            Outcome::Fail,
            format_args!(
                "not caught: entry rewritten unmasked with the level asserted{}, nothing went astray ({}); {health}",
                if arrived_between { " (an interrupt came between the halves)" } else { "" },
                if mismatches.is_empty() { alloc::string::String::from("all as aimed") } else { describe(&mismatches) }
            ),
        ),
    }
}
