//! Delivery: every source of a device, triggered, reaches its own vector exactly once per trigger, and
//! nothing else arrives on the device's vectors.

use super::{Outcome, Verdict};
use crate::bus::pci::ConfigRegion;
use crate::drivers::InterruptSource;
use crate::modes::DeviceIrq;
use crate::time;

/// How long a triggered interrupt may take to arrive (TCG under load included).
pub const ARRIVAL_TIMEOUT_US: u64 = 1_000_000;
/// How long to keep watching for extra interrupts after the last one.
pub const SETTLE_US: u64 = 5_000;

/// Triggers each source `rounds` times, waits for its interrupt, acknowledges it; then checks the exact
/// counts on every vector of the device.
pub fn run<C: ConfigRegion>(source: &mut dyn InterruptSource, irq: &mut DeviceIrq<'_, C>, rounds: u32) -> Verdict {
    let n = source.sources().min(irq.vectors().len());
    if n == 0 {
        return Verdict::new(Outcome::Skip, format_args!("no interrupt source driven"));
    }
    let before: heapless::Vec<u64, { crate::modes::MAX_VECTORS }> = (0..irq.vectors().len()).map(|i| irq.count(i)).collect();
    let start = time::now_us();
    for round in 0..rounds {
        for i in 0..n {
            let vector = irq.vectors()[i];
            let expected = before[i] + round as u64 + 1;
            // Respect the device's interrupt moderation: faster re-triggering tests the throttle, not delivery.
            time::delay_us(source.min_interval_us());
            if let Err(e) = source.trigger(i) {
                return Verdict::new(Outcome::Fail, format_args!("source {i}: trigger failed: {e}"));
            }
            if !time::wait_until(ARRIVAL_TIMEOUT_US, || irq.count(i) >= expected) {
                return Verdict::new(
                    Outcome::Fail,
                    format_args!(
                        "source {i} (vector {vector:#x}): no interrupt within {} ms of the trigger (round {round})",
                        ARRIVAL_TIMEOUT_US / 1000
                    ),
                );
            }
            if let Err(e) = source.acknowledge(i) {
                return Verdict::new(Outcome::Fail, format_args!("source {i}: acknowledge failed: {e}"));
            }
            irq.rearm(i);
        }
    }
    time::delay_us(SETTLE_US);
    let elapsed = time::now_us() - start;
    let mut mismatches: heapless::String<200> = heapless::String::new();
    for (i, &vector) in irq.vectors().iter().enumerate() {
        let got = irq.count(i) - before[i];
        let want = if i < n { rounds as u64 } else { 0 };
        if got != want {
            let sep = if mismatches.is_empty() { "" } else { "; " };
            let _ = core::fmt::Write::write_fmt(
                &mut mismatches,
                format_args!("{sep}vector {vector:#x} (entry {i}): {got} interrupts, expected {want}"),
            );
        }
    }
    if !mismatches.is_empty() {
        return Verdict::new(Outcome::Fail, format_args!("{mismatches}"));
    }
    crate::info!("delivery: {=usize} sources x {=u32} rounds in {=u64} us", n, rounds, elapsed);
    Verdict::new(
        Outcome::Pass,
        format_args!("{} interrupts on {n} vector(s), each exactly as triggered, in {elapsed} us", n as u64 * rounds as u64),
    )
}
