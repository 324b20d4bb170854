//! INTx held until rearm: an interrupt the function raises again after its first one was claimed, and
//! before its driver re-arms it, must neither be counted nor storm the level-triggered line meanwhile,
//! and must arrive exactly once when the driver re-arms (mask-ack-unmask, PCI 3.0 6.2.2 Interrupt Disable).
//! It exercises the handler's hold for a function whose first interrupt the interrupt entry acknowledged
//! itself (`irq::intx`, sole owner of its line): the second one goes through Status.Interrupt and is held
//! off with Interrupt Disable. Deliveries of the line are accounted for in full: claims, re-deliveries of
//! the level that a claim absorbed (KVM's IOAPIC sends some; reported from the function's record), and
//! unclaimed ones, of which there must be none.

use super::delivery::ARRIVAL_TIMEOUT_US;
use super::{Outcome, Verdict};
use crate::bus::pci::ConfigRegion;
use crate::drivers::InterruptSource;
use crate::irq::intx;
use crate::modes::DeviceIrq;
use crate::time;

/// How long the held interrupt is watched for before the rearm (none may be counted).
pub const HELD_WATCH_US: u64 = 1_000;

/// Runs the check on source 0 of a function in INTx mode.
pub fn run<C: ConfigRegion>(source: &mut dyn InterruptSource, irq: &mut DeviceIrq<'_, C>) -> Verdict {
    let Some(route) = irq.intx_route() else {
        return Verdict::new(Outcome::Skip, format_args!("not in INTx mode"));
    };
    let bdf = irq.bdf();
    let lines = Lines {
        unclaimed: &|| intx::line(route.gsi).map_or(0, |l| l.unclaimed),
        storm_masked: &|| intx::line(route.gsi).is_some_and(|l| l.storm_masked),
        absorbed: &|| intx::redeliveries(bdf),
    };
    let verdict = check(source, irq, &lines);
    // Whatever happened, the device is acknowledged and the function re-armed for later checks.
    let _ = source.acknowledge(0);
    irq.rearm(0);
    verdict
}

/// The line's counters the check reads.
struct Lines<'a> {
    /// Deliveries no sharer claimed and no claim's re-delivery bound took (`irq::intx`).
    unclaimed: &'a dyn Fn() -> u64,
    /// The storm guard masked the line.
    storm_masked: &'a dyn Fn() -> bool,
    /// Re-deliveries of this function's level its claims absorbed ([`intx::redeliveries`]), counted in its
    /// record: a VMM behaviour (KVM's IOAPIC), not an interrupt of the function's.
    absorbed: &'a dyn Fn() -> u64,
}

fn check<C: ConfigRegion>(source: &mut dyn InterruptSource, irq: &mut DeviceIrq<'_, C>, lines: &Lines<'_>) -> Verdict {
    let (before, unclaimed_before, absorbed_before) = (irq.count(0), (lines.unclaimed)(), (lines.absorbed)());
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
    // Every delivery is either a claim, a re-delivery a claim absorbed, or unclaimed: none may be
    // unclaimed (a line not held fires again and again, beyond the bound, and is masked as a storm).
    let held = irq.count(0) - before;
    let stray = (lines.unclaimed)() - unclaimed_before;
    if held != 1 || stray > 0 || (lines.storm_masked)() {
        return Verdict::new(
            Outcome::Fail,
            format_args!(
                "while held: {held} interrupt(s) counted (1 expected), {stray} unclaimed (none expected){}",
                if (lines.storm_masked)() { ", line masked as a storm" } else { "" }
            ),
        );
    }
    irq.rearm(0);
    if !time::wait_until(ARRIVAL_TIMEOUT_US, || irq.count(0) > before + 1) {
        return Verdict::new(Outcome::Fail, format_args!("interrupt held before the rearm not delivered after it"));
    }
    time::delay_us(HELD_WATCH_US);
    let total = irq.count(0) - before;
    let stray = (lines.unclaimed)() - unclaimed_before;
    if total != 2 || stray > 0 || (lines.storm_masked)() {
        return Verdict::new(
            Outcome::Fail,
            format_args!(
                "after the rearm: {total} interrupts in all (2 expected), {stray} unclaimed (none expected){}",
                if (lines.storm_masked)() { ", line masked as a storm" } else { "" }
            ),
        );
    }
    let absorbed = (lines.absorbed)() - absorbed_before;
    Verdict::new(
        Outcome::Pass,
        format_args!(
            "raised again before the rearm: held (not counted, no storm), delivered once on rearm; none unclaimed, {absorbed} re-deliver{} of the level absorbed (intx_redeliveries)",
            if absorbed == 1 { "y" } else { "ies" }
        ),
    )
}
