//! `retarget-msi`: an MSI without per-vector masking (QEMU's edu) moved round every online CPU with
//! Linux's `msi_set_affinity` two-step (smp-ir 2.7): on the old CPU with its interrupts off, step 1
//! writes (old destination, new vector), step 2 (new destination, new vector), then the old CPU's IRR is
//! checked for the new vector and a pending one is retriggered on the new CPU. Every message the device
//! can send meanwhile is valid.
//!
//! Every other move the firmware makes the device raise between the two steps (the firmware decides when
//! edu raises: a write to its raise register sends the message at once). The check: the raise landed in
//! the old CPU's IRR on the new vector (read there, between the steps), the move says it retriggered, the
//! interrupt arrived exactly once at the new place, and the only other arrival is the stale IRR copy on
//! the old CPU, which Linux ignores there. The quiet moves must not retrigger anything. After each move
//! a raise reaches the new place only, and the old CPU holds no vector the move left behind.
//!
//! The control writes the address (new CPU) before the data (new vector) and raises in between: the
//! message reaches the new CPU on the old vector, which it does not own there, and the check catches it.

use super::msix::torn_move;
use super::{acknowledge, cpu_list, cpus_or_skip, describe, vector_list, next_cpu, Expect, Ledger, Pace, Place, Tally, RAISE_TIMEOUT_US, SETTLE_US};
use crate::arch::{lapic, percpu};
use crate::drivers::Active;
use crate::irq::vector::{self, FIRST_DEVICE_VECTOR, LAST_DEVICE_VECTOR};
use crate::modes::{IrqMode, MoveHow};
use crate::scenarios::context::Context;
use crate::scenarios::{Outcome, Provoked, Verdict};
use crate::time;
use alloc::vec::Vec;
use msifw_proto::names::Scenario;

/// Whether the device is what the scenario moves: MSI on one vector, no per-vector mask.
fn applies(d: &Active) -> bool {
    d.mode == IrqMode::Msi && !d.irq.msi_maskable() && d.irq.vectors().len() == 1
}

/// [`crate::scenarios::Stage::Live`].
pub(crate) fn step(ctx: &mut Context<'_>) {
    if !ctx.active.iter().any(applies) {
        return;
    }
    let Some(online) = cpus_or_skip(ctx.run, Scenario::RetargetMsi) else { return };
    for dev in ctx.active.iter_mut().filter(|d| applies(d)) {
        let Some(f) = ctx.pci.functions.get(dev.index) else { continue };
        let v = guard(dev, &online);
        ctx.run.scenario(Scenario::RetargetMsi.name(), Some(f.bdf), &v);
        let mut provoked = Provoked::default();
        let from = dev.irq.target(0).map_or(0, |t| t.cpu);
        let v = torn_move(dev.dev.source(), &mut dev.irq, 0, next_cpu(&online, from), &online, MoveHow::AddressFirst, "address written before data", &mut provoked);
        ctx.run.control(Scenario::RetargetMsi.name(), Some(f.bdf), &v, provoked, "the new vector equals the old one: a torn message cannot go astray");
    }
}

/// The device vectors pending in this CPU's IRR (SDM 11.8.4).
fn irr() -> Vec<u8> {
    (FIRST_DEVICE_VECTOR..=LAST_DEVICE_VECTOR).filter(|&v| lapic::requested(v)).collect()
}

/// What the hook between the two steps saw.
#[derive(Debug, Default)]
struct Between {
    /// The CPU it ran on.
    cpu: usize,
    /// Vectors pending in that CPU's IRR before and after the raise.
    before: Vec<u8>,
    after: Vec<u8>,
}

fn guard(dev: &mut Active, online: &[usize]) -> Verdict {
    let src = dev.dev.source();
    let irq = &mut dev.irq;
    let mut pace = Pace::new(1);
    let mut t = Tally::default();
    let mut retriggered = 0u32;
    for m in 0..2 * online.len() {
        let raise = m.is_multiple_of(2);
        let Some(from) = irq.target(0) else {
            t.fail(format_args!("no target"));
            break;
        };
        let dest = next_cpu(online, from.cpu);
        let held_from = vector::allocated_on(from.cpu);
        let held_dest = vector::allocated_on(dest);
        let ledger = Ledger::take(online);
        let mut seen_between: Option<Between> = None;
        let moved = {
            let mut between = || {
                if raise {
                    let mut b = Between { cpu: percpu::index(), before: irr(), after: Vec::new() };
                    let _ = pace.trigger(src, 0);
                    time::wait_until(RAISE_TIMEOUT_US, || irr() != b.before);
                    b.after = irr();
                    seen_between = Some(b);
                }
            };
            irq.retarget_with(0, dest, MoveHow::Linux, &mut between)
        };
        let moved = match moved {
            Ok(m) => m,
            Err(e) => {
                t.fail(format_args!("move from CPU {} to CPU {dest} failed: {e}", from.cpu));
                break;
            }
        };
        t.moves += 1;
        let (old, new) = (Place::of(moved.from), Place::of(moved.to));
        let interim = Place { cpu: old.cpu, vector: new.vector };
        let mut expect: Vec<Expect> = Vec::new();
        if raise {
            let b = seen_between.take().unwrap_or_default();
            if b.cpu != old.cpu {
                t.fail(format_args!("the two-step ran on CPU {}, not on the old CPU {}", b.cpu, old.cpu));
            }
            let landed = b.after.contains(&new.vector) && !b.before.contains(&new.vector);
            if !landed {
                t.fail(format_args!("the raise between the steps did not show in CPU {}'s IRR on the new vector {:#x} (IRR after: {})", old.cpu, new.vector, vector_list(&b.after)));
            }
            if !moved.retriggered {
                t.fail(format_args!("{old} to {new}: the interim interrupt was in the IRR, but the move did not retrigger it"));
            }
            retriggered += moved.retriggered as u32;
            expect.push(Expect::at(new, 1));
            expect.push(Expect::stale(interim));
        } else if moved.retriggered {
            t.fail(format_args!("{old} to {new}: nothing was raised, yet the move retriggered an interrupt"));
        }
        let seen = ledger.wait(&expect);
        let _ = seen;
        if raise {
            if let Err(e) = acknowledge(src, irq, 0) {
                t.fail(format_args!("acknowledge failed: {e}"));
            }
        }
        time::delay_us(SETTLE_US);
        let mismatches = super::reconcile(&expect, &ledger.seen());
        Ledger::take_unowned(&[interim]);
        if !mismatches.is_empty() {
            let n = t.moves;
            t.fail(format_args!("move {n} ({old} to {new}{}): {}", if raise { ", raised between the steps" } else { "" }, describe(&mismatches)));
        }
        // Nothing left behind on the old CPU, nothing but the new vector taken on the new one.
        let mut want_from: Vec<u8> = held_from.iter().copied().filter(|&v| v != old.vector).collect();
        let mut want_dest = held_dest.clone();
        want_dest.push(new.vector);
        let (mut now_from, mut now_dest) = (vector::allocated_on(old.cpu), vector::allocated_on(new.cpu));
        for v in [&mut want_from, &mut want_dest, &mut now_from, &mut now_dest] {
            crate::sort::sort(v);
        }
        if now_from != want_from || now_dest != want_dest {
            t.fail(format_args!(
                "{old} to {new}: vectors held on CPU {} {} (want {}), on CPU {} {} (want {})",
                old.cpu,
                vector_list(&now_from),
                vector_list(&want_from),
                new.cpu,
                vector_list(&now_dest),
                vector_list(&want_dest)
            ));
        }
        t.interrupts += raise as u64;
        // After the move: a raise at the new place only.
        let ledger = Ledger::take(online);
        let expect = [Expect::at(new, 1)];
        if let Err(e) = pace.trigger(src, 0) {
            t.fail(format_args!("trigger failed: {e}"));
        }
        ledger.wait(&expect);
        if let Err(e) = acknowledge(src, irq, 0) {
            t.fail(format_args!("acknowledge failed: {e}"));
        }
        time::delay_us(SETTLE_US);
        let mismatches = super::reconcile(&expect, &ledger.seen());
        if !mismatches.is_empty() {
            let n = t.moves;
            t.fail(format_args!("a raise after move {n} (to {new}, from {old}): {}", describe(&mismatches)));
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
                "{} two-step moves round CPUs {}: {retriggered} raised between the steps, each found in the old CPU's IRR, retriggered and arrived once on the new CPU; {} interrupts each once where aimed; vectors freed",
                t.moves,
                cpu_list(online),
                t.interrupts
            ),
        ),
    }
}
