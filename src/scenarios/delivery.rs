//! Delivery: every source of a device, triggered, reaches its own vector exactly once per trigger, and
//! nothing else arrives on the device's vectors.
//!
//! Every device under check is driven in the same rounds, so they share the waiting: each round triggers
//! every source of every device, waits until all of them have arrived, acknowledges them all; one settle
//! window at the end covers every device. A device's interrupts reaching another device's vectors show
//! in the exact counts, since all are live at once.

use super::{Outcome, Target, Verdict};
use crate::bus::pci::ConfigRegion;
use crate::drivers::InterruptSource;
use crate::modes::{DeviceIrq, MAX_VECTORS};
use crate::time;

/// How long a triggered interrupt may take to arrive (TCG under load included). It only costs time when
/// an interrupt is lost.
pub const ARRIVAL_TIMEOUT_US: u64 = 1_000_000;
/// How long to keep watching for extra interrupts after the last one arrived. QEMU raises a message
/// synchronously with the cause (or, for NVMe, in the same main-loop pass that posts the completion), so
/// a duplicate of a trigger is already here when its first message is. The window is for what comes
/// later by a timer: QEMU 7.2 e1000e's extra message on each expiry of a vector's 128 us throttle timer
/// once a message was postponed (see `E1000e::min_interval_us`); 2 ms is about 15 expiries, with room for
/// the main loop running its timers late.
pub const SETTLE_US: u64 = 2_000;

/// Devices driven together; larger sets run in batches of this many (bounds the stack).
const BATCH: usize = 16;

/// What is tracked per device under check.
struct Track {
    /// Sources driven: the driver's, as far as the device has vectors for them.
    sources: usize,
    /// Counts per entry before the first trigger.
    before: [u64; MAX_VECTORS],
    /// When each source was last triggered, for its minimum interval.
    last: [Option<u64>; MAX_VECTORS],
    /// Set once the device has failed (or was skipped); it is then left alone.
    verdict: Option<Verdict>,
}

/// Triggers each source `rounds` times, waits for its interrupt, acknowledges it; then checks the exact
/// counts on every vector of the device.
pub fn run<C: ConfigRegion>(source: &mut dyn InterruptSource, irq: &mut DeviceIrq<'_, C>, rounds: u32) -> Verdict {
    let mut targets: [Target<'_, '_, C>; 1] = [(source, irq)];
    let mut verdict = None;
    run_all(&mut targets, rounds, |_, v| verdict = Some(v));
    verdict.unwrap_or_else(|| Verdict::new(Outcome::Fail, format_args!("no verdict")))
}

/// [`run`] on every target at once, sharing the waits; `report(i, verdict)` for target `i`, in order.
pub fn run_all<C: ConfigRegion>(targets: &mut [Target<'_, '_, C>], rounds: u32, mut report: impl FnMut(usize, Verdict)) {
    for (b, batch) in targets.chunks_mut(BATCH).enumerate() {
        run_batch(batch, rounds, |i, v| report(b * BATCH + i, v));
    }
}

fn run_batch<C: ConfigRegion>(targets: &mut [Target<'_, '_, C>], rounds: u32, mut report: impl FnMut(usize, Verdict)) {
    let mut tracks: heapless::Vec<Track, BATCH> = targets
        .iter()
        .map(|(source, irq)| {
            let sources = source.sources().min(irq.vectors().len());
            let mut before = [0; MAX_VECTORS];
            for (i, b) in before.iter_mut().enumerate().take(irq.vectors().len()) {
                *b = irq.count(i);
            }
            let verdict = (sources == 0).then(|| Verdict::new(Outcome::Skip, format_args!("no interrupt source driven")));
            Track { sources, before, last: [None; MAX_VECTORS], verdict }
        })
        .collect();
    let start = time::now_us();
    for round in 0..rounds {
        trigger_round(targets, &mut tracks);
        let expected = |t: &Track, i: usize| t.before[i] + round as u64 + 1;
        time::wait_until(ARRIVAL_TIMEOUT_US, || {
            targets.iter().zip(tracks.iter()).filter(|(_, t)| t.verdict.is_none()).all(|((_, irq), t)| (0..t.sources).all(|i| irq.count(i) >= expected(t, i)))
        });
        for ((source, irq), t) in targets.iter_mut().zip(tracks.iter_mut()).filter(|(_, t)| t.verdict.is_none()) {
            if let Some(i) = (0..t.sources).find(|&i| irq.count(i) < expected(t, i)) {
                let vector = irq.vectors()[i];
                t.verdict = Some(Verdict::new(
                    Outcome::Fail,
                    format_args!(
                        "source {i} (vector {vector:#x}): no interrupt within {} ms of the trigger (round {round})",
                        ARRIVAL_TIMEOUT_US / 1000
                    ),
                ));
                continue;
            }
            for i in 0..t.sources {
                if let Err(e) = source.acknowledge(i) {
                    t.verdict = Some(Verdict::new(Outcome::Fail, format_args!("source {i}: acknowledge failed: {e}")));
                    break;
                }
                irq.rearm(i);
            }
        }
    }
    time::delay_us(SETTLE_US);
    let elapsed = time::now_us() - start;
    for (d, ((_, irq), t)) in targets.iter().zip(tracks.iter_mut()).enumerate() {
        let verdict = t.verdict.take().unwrap_or_else(|| counts_verdict(irq, t, rounds, elapsed));
        report(d, verdict);
    }
}

/// Triggers every source of every device still under check once, each as soon as its own minimum
/// interval since its previous trigger has passed (other sources are triggered meanwhile).
fn trigger_round<C: ConfigRegion>(targets: &mut [Target<'_, '_, C>], tracks: &mut [Track]) {
    let mut next = [0usize; BATCH];
    loop {
        let mut waiting = false;
        for (((source, _), t), next) in targets.iter_mut().zip(tracks.iter_mut()).zip(next.iter_mut()) {
            while t.verdict.is_none() && *next < t.sources {
                let i = *next;
                let now = time::now_us();
                if t.last[i].is_some_and(|last| now - last < source.min_interval_us()) {
                    waiting = true;
                    break;
                }
                if let Err(e) = source.trigger(i) {
                    t.verdict = Some(Verdict::new(Outcome::Fail, format_args!("source {i}: trigger failed: {e}")));
                    break;
                }
                t.last[i] = Some(now);
                *next += 1;
            }
        }
        if !waiting {
            return;
        }
        core::hint::spin_loop();
    }
}

/// The verdict from the exact counts: `rounds` on each driven entry, none on the others.
fn counts_verdict<C: ConfigRegion>(irq: &DeviceIrq<'_, C>, t: &Track, rounds: u32, elapsed: u64) -> Verdict {
    let n = t.sources;
    let mut mismatches: heapless::String<200> = heapless::String::new();
    for (i, &vector) in irq.vectors().iter().enumerate() {
        let got = irq.count(i) - t.before[i];
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
