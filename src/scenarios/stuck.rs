//! A device that never completes: an NVMe Asynchronous Event Request stays outstanding on an idle
//! controller. The firmware must give up after a bounded wait with a typed timeout, see no interrupt for
//! it, and keep using the controller: an Identify submitted after it still completes with its interrupt.

use super::{delivery, Outcome, Verdict};
use crate::bus::pci::ConfigRegion;
use crate::drivers::nvme::Nvme;
use crate::drivers::{DriverError, InterruptSource};
use crate::irq::dispatch;
use crate::modes::DeviceIrq;
use crate::time;

/// How long the firmware waits for the command before it reports the timeout.
pub const WAIT_US: u64 = 200_000;

/// Runs the check on `nvme`, whose admin queue interrupts on `irq`'s first vector.
pub fn run<C: ConfigRegion>(nvme: &mut Nvme, irq: &DeviceIrq<'_, C>) -> Verdict {
    let Some(&v0) = irq.vectors().first() else {
        return Verdict::new(Outcome::Skip, format_args!("no interrupt vector"));
    };
    let before = dispatch::count(v0);
    let t0 = time::now_us();
    let cid = match nvme.submit_async_event_request() {
        Ok(cid) => cid,
        Err(e) => return Verdict::new(Outcome::Fail, format_args!("Asynchronous Event Request not submitted: {e}")),
    };
    let waited = |t0: u64| time::now_us() - t0;
    match nvme.wait_admin_completion(cid, WAIT_US) {
        Ok(()) => {
            return Verdict::new(
                Outcome::Fail,
                format_args!("the Asynchronous Event Request completed after {} us: the controller had an event, nothing timed out", waited(t0)),
            )
        }
        Err(DriverError::Timeout(_)) => {}
        Err(e) => return Verdict::new(Outcome::Fail, format_args!("Asynchronous Event Request: {e}")),
    }
    let timed_out_after = waited(t0);
    let stray = dispatch::count(v0) - before;
    if stray != 0 {
        return Verdict::new(Outcome::Fail, format_args!("no completion, yet {stray} interrupt(s) on vector {v0:#x}"));
    }
    // The controller is still usable: the next admin command completes, with its interrupt.
    let before = dispatch::count(v0);
    if let Err(e) = nvme.trigger(0) {
        return Verdict::new(Outcome::Fail, format_args!("timed out after {timed_out_after} us; Identify afterwards not submitted: {e}"));
    }
    let arrived = time::wait_until(delivery::ARRIVAL_TIMEOUT_US, || dispatch::count(v0) > before);
    let acked = nvme.acknowledge(0);
    match (arrived, acked) {
        (true, Ok(())) => Verdict::new(
            Outcome::Pass,
            format_args!("no completion in {timed_out_after} us: timed out (typed error), no interrupt; Identify afterwards completed with its interrupt on vector {v0:#x}"),
        ),
        (false, _) => Verdict::new(Outcome::Fail, format_args!("timed out after {timed_out_after} us; Identify afterwards raised no interrupt")),
        (true, Err(e)) => Verdict::new(Outcome::Fail, format_args!("timed out after {timed_out_after} us; Identify afterwards: {e}")),
    }
}

/// [`crate::scenarios::Stage::Live`].
pub(crate) fn step(ctx: &mut super::context::Context<'_>) {
    stuck_command(ctx.run, ctx.pci, ctx.active);
}

/// A command that never completes, on every NVMe controller in MSI-X or MSI mode (scenarios::stuck).
fn stuck_command(run: &mut super::context::Run, pci: &crate::bus::pci::enumerate::Enumeration, active: &mut [crate::drivers::Active]) {
    for dev in active.iter_mut().filter(|d| matches!(d.mode, crate::modes::IrqMode::Msix | crate::modes::IrqMode::Msi)) {
        let Some(f) = pci.functions.get(dev.index) else { continue };
        let crate::drivers::Device::Nvme(nvme) = &mut dev.dev else { continue };
        let verdict = self::run(nvme, &dev.irq);
        run.scenario("stuck-command", Some(f.bdf), &verdict);
    }
}

