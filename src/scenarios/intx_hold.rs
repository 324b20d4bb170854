//! INTx held until rearm: an interrupt the function raises again after its first one was claimed, and
//! before its driver re-arms it, must neither be counted nor storm the level-triggered line meanwhile,
//! and must arrive exactly once when the driver re-arms (mask-ack-unmask, PCI 3.0 6.2.2 Interrupt Disable).
//! It exercises the handler's hold for a function whose first interrupt the interrupt entry acknowledged
//! itself (`irq::intx`, sole owner of its line): the second one goes through Status.Interrupt and is held
//! off with Interrupt Disable.

use super::delivery::ARRIVAL_TIMEOUT_US;
use super::{Outcome, Verdict};
use crate::bus::pci::ConfigRegion;
use crate::drivers::InterruptSource;
use crate::irq::intx;
use crate::modes::DeviceIrq;
use crate::time;

/// How long the held interrupt is watched for before the rearm (none may be counted).
pub const HELD_WATCH_US: u64 = 1_000;

/// Unclaimed interrupts the line may take per interrupt claimed in the check: a level line can be
/// delivered again after a claim when the EOI reaches the IOAPIC before the deassertion does (seen under
/// KVM, whose IOAPIC is in the kernel: up to one per claim, on the old configuration-space path too; the
/// handler's hold turns each into an unclaimed interrupt). Twice that is allowed; a line that is not held
/// fires without end and is masked as a storm after 1000.
const REDELIVERIES_PER_CLAIM: u64 = 2;

/// Runs the check on source 0 of a function in INTx mode.
pub fn run<C: ConfigRegion>(source: &mut dyn InterruptSource, irq: &mut DeviceIrq<'_, C>) -> Verdict {
    let Some(route) = irq.intx_route() else {
        return Verdict::new(Outcome::Skip, format_args!("not in INTx mode"));
    };
    let unclaimed = || intx::line(route.gsi).map_or(0, |l| l.unclaimed);
    let storm_masked = || intx::line(route.gsi).is_some_and(|l| l.storm_masked);
    let (before, unclaimed_before) = (irq.count(0), unclaimed());
    let verdict = check(source, irq, before, &unclaimed, &storm_masked, unclaimed_before);
    // Whatever happened, the device is acknowledged and the function re-armed for later checks.
    let _ = source.acknowledge(0);
    irq.rearm(0);
    verdict
}

fn check<C: ConfigRegion>(
    source: &mut dyn InterruptSource,
    irq: &mut DeviceIrq<'_, C>,
    before: u64,
    unclaimed: &dyn Fn() -> u64,
    storm_masked: &dyn Fn() -> bool,
    unclaimed_before: u64,
) -> Verdict {
    if let Err(e) = source.trigger(0) {
        return Verdict::new(Outcome::Fail, format_args!("trigger failed: {e}"));
    }
    if !time::wait_until(ARRIVAL_TIMEOUT_US, || irq.count(0) > before) {
        return Verdict::new(Outcome::Fail, format_args!("first interrupt not delivered within {} ms", ARRIVAL_TIMEOUT_US / 1000));
    }
    // Raised again while held (not acknowledged at the device through the driver, not re-armed).
    if let Err(e) = source.trigger(0) {
        return Verdict::new(Outcome::Fail, format_args!("second trigger failed: {e}"));
    }
    time::delay_us(HELD_WATCH_US);
    let held = irq.count(0) - before;
    let stray = unclaimed() - unclaimed_before;
    // Claims so far: the first interrupt and the held one.
    if held != 1 || stray > 2 * REDELIVERIES_PER_CLAIM || storm_masked() {
        return Verdict::new(
            Outcome::Fail,
            format_args!(
                "while held: {held} interrupt(s) counted (1 expected), {stray} unclaimed (at most {}){}",
                2 * REDELIVERIES_PER_CLAIM,
                if storm_masked() { ", line masked as a storm" } else { "" }
            ),
        );
    }
    irq.rearm(0);
    if !time::wait_until(ARRIVAL_TIMEOUT_US, || irq.count(0) > before + 1) {
        return Verdict::new(Outcome::Fail, format_args!("interrupt held before the rearm not delivered after it"));
    }
    time::delay_us(HELD_WATCH_US);
    let total = irq.count(0) - before;
    let stray = unclaimed() - unclaimed_before;
    if total != 2 || stray > 3 * REDELIVERIES_PER_CLAIM || storm_masked() {
        return Verdict::new(
            Outcome::Fail,
            format_args!(
                "after the rearm: {total} interrupts in all (2 expected), {stray} unclaimed (at most {}){}",
                3 * REDELIVERIES_PER_CLAIM,
                if storm_masked() { ", line masked as a storm" } else { "" }
            ),
        );
    }
    Verdict::new(
        Outcome::Pass,
        format_args!(
            "raised again before the rearm: held (not counted, no storm), delivered once on rearm; {stray} unclaimed re-deliver{}",
            if stray == 1 { "y" } else { "ies" }
        ),
    )
}
