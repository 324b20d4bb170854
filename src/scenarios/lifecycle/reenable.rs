//! Re-enable with another vector count (seed 002, "xen: do not re-use pirq number cached in pci device msi
//! msg data"): a driver brings MSI-X up on one vector, uses it, disables MSI-X, and re-enables it on N
//! vectors, as the Linux NVMe driver does at probe. The second setup must compose every message afresh
//! from the allocator: a message taken from the device's table (where the first round's message stays
//! after a disable) or from a stale cache names a vector that was freed.
//!
//! The freed vector is held by a placeholder allocation during the second round, so a message that still
//! names it is caught there. The control reuses round one's message for entry 0, as the Xen bug did, and
//! passes when an interrupt reaches the freed vector.

use crate::scenarios::{delivery, Outcome, Provoked, Verdict};
use crate::scenarios::context::{Context, Run};
use crate::drivers::{Active, Device};
use crate::bus::pci::enumerate::Enumeration;
use crate::modes::IrqMode;
use crate::bus::pci::enumerate::Function;
use crate::bus::pci::ConfigRegion;
use crate::drivers::InterruptSource;
use crate::irq::message::{self, MsiMessage};
use crate::irq::vector::VectorBlock;
use crate::irq::dispatch;
use crate::modes::DeviceIrq;

/// Runs both rounds on `f` (currently driven through `irq`), ending with MSI-X on up to `full` vectors.
pub fn run<C: ConfigRegion>(
    f: &Function,
    apic_id: u32,
    full: u16,
    source: &mut dyn InterruptSource,
    irq: &mut DeviceIrq<'_, C>,
    control: bool,
) -> (Verdict, Provoked) {
    let mut provoked = Provoked::default();
    let verdict = run_inner(f, apic_id, full, source, irq, control, &mut provoked);
    (verdict, provoked)
}

fn run_inner<C: ConfigRegion>(
    f: &Function,
    apic_id: u32,
    full: u16,
    source: &mut dyn InterruptSource,
    irq: &mut DeviceIrq<'_, C>,
    control: bool,
    provoked: &mut Provoked,
) -> Verdict {
    // Round one: MSI-X on one vector, used once.
    let _ = source.stop();
    if let Err(e) = irq.reenable_msix(f, 1, apic_id) {
        return Verdict::new(Outcome::Fail, format_args!("round 1: MSI-X on 1 vector: {e}"));
    }
    if let Err(e) = source.reinitialize(1) {
        return Verdict::new(Outcome::Fail, format_args!("round 1: device: {e}"));
    }
    let first = delivery::run(source, irq, 1);
    if first.outcome != Outcome::Pass {
        return Verdict::new(Outcome::Fail, format_args!("round 1: {}", first.detail));
    }
    let old = irq.vectors()[0];
    let stale: MsiMessage = match message::compose(apic_id, old) {
        Ok(m) => m,
        Err(e) => return Verdict::new(Outcome::Fail, format_args!("{e}")),
    };

    // Disable: the device stops, MSI-X is shut down and its vector freed.
    let _ = source.stop();
    irq.shutdown();
    let placeholder = VectorBlock::alloc(1);
    let freed = placeholder.as_ref().is_ok_and(|b| b.base() == old);
    let stray_before = dispatch::count(old);

    // Round two: MSI-X on `full` vectors.
    if let Err(e) = irq.reenable_msix(f, full, apic_id) {
        return Verdict::new(Outcome::Fail, format_args!("round 2: MSI-X on {full} vectors: {e}"));
    }
    if control && irq.write_stale_message(0, stale) {
        provoked.live_messages += 1;
    }
    let second = match source.reinitialize(irq.vectors().len()) {
        Ok(()) => delivery::run(source, irq, 1),
        Err(e) => Verdict::new(Outcome::Fail, format_args!("round 2: device: {e}")),
    };
    let stray = dispatch::count(old) - stray_before;
    drop(placeholder);
    let n = irq.vectors().len();
    match (control, stray) {
        (false, 0) if second.outcome == Outcome::Pass && freed => Verdict::new(
            Outcome::Pass,
            format_args!("round 1 on vector {old:#x}, freed on disable; round 2: {n} fresh messages, {}", second.detail),
        ),
        (false, _) => Verdict::new(
            Outcome::Fail,
            format_args!(
                "round 2: {stray} interrupt(s) on freed vector {old:#x}{}; {}",
                if freed { "" } else { " (it was not freed)" },
                second.detail
            ),
        ),
        (true, 0) => Verdict::new(Outcome::Fail, format_args!("the reused message did not reach freed vector {old:#x}: {}", second.detail)),
        (true, _) => Verdict::new(
            Outcome::Pass,
            format_args!("caught: {stray} interrupt(s) reached freed vector {old:#x} through round 1's reused message"),
        ),
    }
}

/// [`crate::scenarios::Stage::Live`].
pub(crate) fn step(ctx: &mut Context<'_>) {
    reenable(ctx.run, ctx.pci, ctx.active, false);
}

/// The re-enable scenario (or, with `incremental`, the incremental-enable one) and its control on every
/// NVMe controller in MSI-X mode: the device whose driver does this at probe in Linux, and that can add
/// interrupt sources (I/O queues) one at a time. The control runs last.
pub(super) fn reenable(run: &mut Run, pci: &Enumeration, active: &mut [Active], incremental: bool) {
    let name = if incremental { "incremental" } else { "reenable" };
    for dev in active.iter_mut().filter(|d| d.mode == IrqMode::Msix && matches!(d.dev, Device::Nvme(_))) {
        let Some(f) = pci.functions.get(dev.index) else { continue };
        let full = dev.irq.vectors().len() as u16;
        for control in [false, true] {
            let (verdict, provoked) = if incremental {
                super::incremental::run(f, run.apic_id, full, dev.dev.source(), &mut dev.irq, control)
            } else {
                self::run(f, run.apic_id, full, dev.dev.source(), &mut dev.irq, control)
            };
            if control {
                let why = if incremental {
                    "the device has one MSI-X vector in use: no further entry to expose unprogrammed"
                } else {
                    "round 1's message could not be written back into a live entry"
                };
                run.control(name, Some(f.bdf), &verdict, provoked, why);
            } else {
                run.scenario(name, Some(f.bdf), &verdict);
            }
        }
    }
}

