//! Incremental enable (seed 004, the VFIO "dummy vector 0" thread): MSI-X enabled with only entry 0 set
//! up and every other entry masked, then vectors added one at a time while the device keeps interrupting,
//! as QEMU's VFIO does (vfio_msix_enable with vector 0, then vfio_msix_vector_use per vector the guest
//! unmasks). An entry is unmasked only after its message is written and read back, so no interrupt is lost
//! and none goes through an entry that was never programmed.
//!
//! The control unmasks the next entry before programming it (its message zeroed, as after a reset) and
//! lets the device signal through it: the interrupt is lost and the device writes its data to physical
//! address 0, where a sentinel shows it.

use crate::scenarios::{delivery, Outcome, Provoked, Verdict};
use crate::arch::lowmem;
use crate::bus::pci::enumerate::Function;
use crate::bus::pci::{trace, ConfigRegion};
use crate::drivers::InterruptSource;
use crate::modes::DeviceIrq;
use crate::time;

const SENTINEL: u32 = 0x5A5A_A5A5;

/// Starts `f` on entry 0 and grows it to `full` vectors, one at a time.
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
    if full < 2 {
        return Verdict::new(Outcome::Skip, format_args!("{full} MSI-X vector in use: nothing to add one at a time"));
    }
    let _ = source.stop();
    if let Err(e) = irq.reenable_msix(f, 1, apic_id) {
        return Verdict::new(Outcome::Fail, format_args!("MSI-X on entry 0 only: {e}"));
    }
    if let Err(e) = source.reinitialize(1) {
        return Verdict::new(Outcome::Fail, format_args!("device on entry 0: {e}"));
    }
    let mut delivered = 0u64;
    for k in 1..full as usize {
        // The device keeps interrupting on the vectors it has while the next one is added.
        let before0 = irq.count(0);
        if let Err(e) = source.trigger(0) {
            return Verdict::new(Outcome::Fail, format_args!("entry 0 trigger: {e}"));
        }
        let vector = if control { None } else { Some(irq.add_msix_vector(apic_id)) };
        if !time::wait_until(delivery::ARRIVAL_TIMEOUT_US, || irq.count(0) > before0) {
            return Verdict::new(Outcome::Fail, format_args!("entry 0's interrupt was lost while entry {k} was added"));
        }
        if let Err(e) = source.acknowledge(0) {
            return Verdict::new(Outcome::Fail, format_args!("entry 0 acknowledge: {e}"));
        }
        let Some(vector) = vector else {
            lowmem::write(SENTINEL);
            trace::control(f.bdf, true);
            if irq.expose_unprogrammed_entry() != Some(k as u16) {
                return Verdict::new(Outcome::Fail, format_args!("entry {k} could not be exposed"));
            }
            provoked.vectors_exposed += 1;
            // The device gets its next source now, signalling through the unprogrammed entry.
            let lost_before = irq.total_counts();
            let raised = source.add_source().and_then(|_| source.trigger(k));
            time::delay_us(20_000);
            let written = lowmem::read();
            trace::control(f.bdf, false);
            lowmem::write(0);
            let arrived = irq.total_counts() - lost_before;
            if let Err(e) = raised {
                return Verdict::new(Outcome::Fail, format_args!("the device's next source could not be raised: {e}"));
            }
            return if written != SENTINEL {
                Verdict::new(
                    Outcome::Pass,
                    format_args!(
                        "caught: entry {k} unmasked before it was programmed; the device wrote {written:#x} to physical 0 instead of interrupting ({arrived} interrupt(s) arrived on programmed vectors meanwhile)"
                    ),
                )
            } else {
                Verdict::new(Outcome::Fail, format_args!("the unprogrammed entry {k} did not show: sentinel intact"))
            };
        };
        let vector = match vector {
            Ok(v) => v,
            Err(e) => return Verdict::new(Outcome::Fail, format_args!("adding entry {k}: {e}")),
        };
        if let Err(e) = source.add_source() {
            return Verdict::new(Outcome::Fail, format_args!("source {k} for entry {k} (vector {vector:#x}): {e}"));
        }
        let before = irq.count(k);
        if let Err(e) = source.trigger(k) {
            return Verdict::new(Outcome::Fail, format_args!("entry {k} trigger: {e}"));
        }
        if !time::wait_until(delivery::ARRIVAL_TIMEOUT_US, || irq.count(k) > before) {
            return Verdict::new(Outcome::Fail, format_args!("entry {k} (vector {vector:#x}): no interrupt after it was added"));
        }
        if let Err(e) = source.acknowledge(k) {
            return Verdict::new(Outcome::Fail, format_args!("entry {k} acknowledge: {e}"));
        }
        delivered += 2;
    }
    // Finally every entry, once more, with exact counts.
    let last = delivery::run(source, irq, 1);
    if last.outcome != Outcome::Pass {
        return Verdict::new(Outcome::Fail, format_args!("after growing to {full} vectors: {}", last.detail));
    }
    Verdict::new(
        Outcome::Pass,
        format_args!("grown from 1 to {full} vectors one at a time while interrupting ({delivered} interrupts, none lost); then {}", last.detail),
    )
}

/// [`crate::scenarios::Stage::Live`]: the re-enable scenario's body, adding vectors one at a time.
pub(crate) fn step(ctx: &mut crate::scenarios::context::Context<'_>) {
    super::reenable::reenable(ctx.run, ctx.pci, ctx.active, true);
}
