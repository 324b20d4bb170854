//! Two checks the VMM trackers ask for, on virtio-modern devices in MSI-X mode, run before the delivery
//! checks.
//!
//! `virtio-no-vector`: a virtio queue left at NO_VECTOR never interrupts (virtio 1.x 4.1.5.3: with MSI-X enabled and
//! `queue_msix_vector` NO_VECTOR, no message is sent for the queue; Cloud Hypervisor #2397 raised one).
//! On every virtio-modern device in MSI-X mode with a request queue that got no entry (fewer entries
//! than queues, or an entry the device refused): one request on that queue completes, and no interrupt
//! arrives on any of the function's vectors, nor on a vector nobody owns.

use super::{delivery, Outcome, Verdict};
use crate::bus::pci::ConfigRegion;
use crate::drivers::virtio_modern::VirtioModern;
use crate::irq::dispatch;
use crate::modes::DeviceIrq;
use crate::time;

/// Runs the check on `dev`, whose vectors are `irq`'s; `None` when it has no queue at NO_VECTOR.
pub fn run<C: ConfigRegion>(dev: &mut VirtioModern, irq: &DeviceIrq<'_, C>) -> Option<Verdict> {
    dev.queue_without_vector()?;
    let unowned = |_: ()| dispatch::unowned().map(|(_, n)| n).sum::<u64>();
    let (before, stray_before) = (irq.total_counts(), unowned(()));
    let done = dev.request_without_vector()?;
    // The message, had one been sent, follows the used entry at once: wait as the delivery check does.
    time::delay_us(delivery::SETTLE_US);
    let (arrived, stray) = (irq.total_counts() - before, unowned(()) - stray_before);
    Some(match done {
        Err(e) => Verdict::new(Outcome::Fail, format_args!("the request on the queue without a vector did not complete: {e}")),
        Ok(r) if arrived + stray != 0 => Verdict::new(
            Outcome::Fail,
            format_args!(
                "queue {} at NO_VECTOR completed a request and {arrived} interrupt(s) arrived on the function's vectors, {stray} on unowned ones",
                r.queue
            ),
        ),
        Ok(r) => Verdict::new(
            Outcome::Pass,
            format_args!(
                "queue {} at NO_VECTOR completed a request; no interrupt in {} us (ISR status then {:#x})",
                r.queue,
                delivery::SETTLE_US,
                r.isr
            ),
        ),
    })
}

/// `msix-disabled` (Cloud Hypervisor #162 sent MSI-X messages while MSI-X was disabled): Interrupt
/// Disable set, MSI-X shut down (entries masked, Enable clear, vectors freed), every source's request
/// completes, and nothing may arrive: no message on the old vectors or any unowned one (QEMU's model
/// signals through INTx then, which Interrupt Disable holds back). The device must still set the
/// queue bit in ISR status (virtio 1.x 4.1.4.5.1: "If MSI-X capability is disabled, the device MUST set
/// the Queue Interrupt bit in ISR status"), which shows the requests did signal; reading it clears the
/// level. Then MSI-X is enabled afresh with as many vectors (the device's vector registers still name
/// the same entries) for the checks that follow, and each entry is aimed back at the CPU setup's spread
/// gave it (re-enabling aims every entry at `apic_id`, the BSP): the delivery checks that follow judge the
/// device spread over the CPUs as every other device is.
pub fn msix_disabled(
    dev: &mut VirtioModern,
    irq: &mut DeviceIrq<'static, crate::bus::pci::config::PlatformConfig>,
    cfg: &crate::bus::pci::config::PlatformConfig,
    f: &crate::bus::pci::enumerate::Function,
    apic_id: u32,
) -> Option<Verdict> {
    use crate::drivers::InterruptSource;
    let sources = dev.sources();
    if sources == 0 {
        return None;
    }
    let old: alloc::vec::Vec<u8> = irq.vectors().to_vec();
    // Where setup aimed each entry (the spread over the online CPUs), to aim it there again afterwards.
    let aimed: alloc::vec::Vec<Option<usize>> = (0..old.len()).map(|i| irq.target(i).map(|t| t.cpu)).collect();
    let count = |old: &[u8]| old.iter().map(|&v| dispatch::count(v)).sum::<u64>() + dispatch::unowned().map(|(_, n)| n).sum::<u64>();
    let before = count(&old);
    // PCI 3.0 6.2.2 Command bit 10: the function may not assert INTx.
    crate::bus::pci::config::update_command(cfg, f.bdf, crate::bus::pci::regs::command::INTX_DISABLE, 0);
    irq.shutdown();
    let mut failed = None;
    for i in 0..sources {
        if let Err(e) = dev.trigger(i).and_then(|()| dev.acknowledge(i)) {
            failed = Some((i, e));
            break;
        }
    }
    time::delay_us(delivery::SETTLE_US);
    let arrived = count(&old) - before;
    let isr = dev.read_isr();
    let reenabled = irq.reenable_msix(f, old.len() as u16, apic_id).map_err(|e| (None, e)).and_then(|()| aim_back(irq, &aimed).map_err(|(i, cpu, e)| (Some((i, cpu)), e)));
    Some(match (failed, reenabled) {
        (Some((i, e)), _) => Verdict::new(Outcome::Fail, format_args!("with MSI-X disabled, source {i}'s request did not complete: {e}")),
        (None, Err((None, e))) => Verdict::new(Outcome::Fail, format_args!("MSI-X not enabled again after the check: {e}")),
        (None, Err((Some((i, cpu)), e))) => Verdict::new(Outcome::Fail, format_args!("MSI-X enabled again after the check, but entry {i} not aimed back at CPU {cpu}: {e}")),
        (None, Ok(_)) if arrived != 0 => Verdict::new(
            Outcome::Fail,
            format_args!("with MSI-X disabled, {sources} request(s) completed and {arrived} message(s) arrived (Enable clear: none may be sent)"),
        ),
        (None, Ok(_)) if isr & 1 == 0 => Verdict::new(
            Outcome::Fail,
            format_args!("with MSI-X disabled, {sources} request(s) completed but ISR status read {isr:#x}: the Queue Interrupt bit is not set (virtio 1.x 4.1.4.5.1)"),
        ),
        (None, Ok(moved)) => Verdict::new(
            Outcome::Pass,
            format_args!(
                "MSI-X and INTx disabled: {sources} request(s) completed, ISR status {isr:#x}, no message in {} us; MSI-X enabled again, {moved} entries aimed back at their CPUs",
                delivery::SETTLE_US
            ),
        ),
    })
}

/// Aims each entry of the re-enabled `irq` back at the CPU it had before (`aimed`, per entry; `None`: it
/// had no single CPU, and stays where re-enabling put it), moving it the Linux way
/// ([`DeviceIrq::retarget`]). Returns how many moved; Err: (entry, CPU, why) of the first that could not.
fn aim_back(irq: &mut DeviceIrq<'static, crate::bus::pci::config::PlatformConfig>, aimed: &[Option<usize>]) -> Result<usize, (usize, usize, crate::modes::IrqError)> {
    let mut moved = 0;
    for (i, cpu) in aimed.iter().enumerate() {
        let Some(cpu) = *cpu else { continue };
        if irq.target(i).is_some_and(|t| t.cpu == cpu) {
            continue;
        }
        irq.retarget(i, cpu).map_err(|e| (i, cpu, e))?;
        moved += 1;
    }
    Ok(moved)
}

/// `virtio-config`: the configuration vector delivers. QEMU raises a configuration change only for
/// host-side changes (link, disk resize), none of which the guest can cause, and for a device error:
/// DEVICE_NEEDS_RESET, whose notification goes the configuration change's way (virtio 1.x 2.1.2). The
/// check provokes that error (queue_enable = 0 on a live queue), expects exactly one message, on the entry
/// `msix_config` names (on the CPU that entry is aimed at), nothing on the others, ISR status with its
/// configuration bit (0x2) and device_status with DEVICE_NEEDS_RESET; then resets the device and brings
/// it up again.
pub fn config_vector(dev: &mut VirtioModern, irq: &DeviceIrq<'static, crate::bus::pci::config::PlatformConfig>) -> Option<Verdict> {
    use crate::drivers::InterruptSource;
    let entry = dev.config_vector();
    let e = usize::from(entry);
    irq.vector(e)?;
    // Counted on the CPU each entry is aimed at: with the entries spread over the CPUs, the same vector
    // number can be another function's on another CPU.
    let others = |irq: &DeviceIrq<'_, _>| (0..irq.vectors().len()).filter(|&i| i != e).map(|i| irq.count(i)).sum::<u64>() + dispatch::unowned().map(|(_, n)| n).sum::<u64>();
    let (before, before_others) = (irq.count(e), others(irq));
    let status = dev.provoke_needs_reset();
    let arrived = time::wait_until(delivery::ARRIVAL_TIMEOUT_US, || irq.count(e) != before);
    time::delay_us(delivery::SETTLE_US);
    let (on_config, elsewhere) = (irq.count(e) - before, others(irq) - before_others);
    let isr = dev.read_isr();
    let back = dev.reinitialize(irq.vectors().len());
    let needs_reset = crate::drivers::virtio_net::status::DEVICE_NEEDS_RESET;
    Some(match back {
        Err(e) => Verdict::new(Outcome::Fail, format_args!("the device did not come back after its reset: {e}")),
        Ok(()) if !arrived || on_config != 1 || elsewhere != 0 => Verdict::new(
            Outcome::Fail,
            format_args!(
                "queue_enable = 0 after DRIVER_OK (device_status then {status:#x}): {on_config} message(s) on configuration entry {entry} (one expected), {elsewhere} elsewhere"
            ),
        ),
        Ok(()) if isr & 2 == 0 || status & needs_reset == 0 => Verdict::new(
            Outcome::Fail,
            format_args!("one message on configuration entry {entry}, but ISR status {isr:#x} and device_status {status:#x} (expected bit 0x2 and DEVICE_NEEDS_RESET 0x40)"),
        ),
        Ok(()) => Verdict::new(
            Outcome::Pass,
            format_args!(
                "DEVICE_NEEDS_RESET provoked (device_status {status:#x}, ISR {isr:#x}): exactly one message on configuration entry {entry}, none elsewhere; device reset and up again"
            ),
        ),
    })
}

/// [`crate::scenarios::Stage::Live`].
pub(crate) fn step(ctx: &mut super::context::Context<'_>) {
    let (run, pci, cfg) = (&mut *ctx.run, ctx.pci, ctx.cfg);
    for dev in ctx.active.iter_mut().filter(|d| d.mode == crate::modes::IrqMode::Msix) {
        let Some(f) = pci.functions.get(dev.index) else { continue };
        let crate::drivers::Device::VirtioModern(v) = &mut dev.dev else { continue };
        if let Some(verdict) = self::run(v, &dev.irq) {
            run.scenario("virtio-no-vector", Some(f.bdf), &verdict);
        }
        if let Some(verdict) = config_vector(v, &dev.irq) {
            run.scenario("virtio-config", Some(f.bdf), &verdict);
        }
        if let Some(verdict) = msix_disabled(v, &mut dev.irq, cfg, f, run.apic_id) {
            run.scenario("msix-disabled", Some(f.bdf), &verdict);
        }
    }
}
