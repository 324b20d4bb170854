//! Masking: an interrupt raised while its vector is masked is not delivered, sets the Pending Bit, and
//! is delivered exactly once when the vector is unmasked (PCIe 4.0 6.1.4.5 and 7.7.2.5; Linux relies on
//! it in msi_set_affinity and VFIO relies on it when it masks around reconfiguration).
//!
//! Every entry of every device under check is masked and triggered at once, so the devices share one
//! watch window while masked and one settle window after the unmask.

use super::delivery::{self, ARRIVAL_TIMEOUT_US, SETTLE_US};
use super::{Outcome, Target, Verdict};
use crate::bus::pci::ConfigRegion;
use crate::modes::{DeviceIrq, MAX_VECTORS};
use crate::time;

/// How long masked interrupts are watched for once every Pending Bit is set (none may arrive), when
/// [`delivery::settle`] cannot fence instead. QEMU sets the Pending Bit in the same call that would have
/// sent the message (msix_notify), so a mask that leaks sends its message no later than the Pending Bit
/// shows; the window only has to cover a CPU taking the interrupt, which is immediate under TCG, and a
/// device-model timer's later message (what the fence covers).
pub const MASKED_WATCH_US: u64 = 1_000;

/// Devices checked together; larger sets run in batches of this many (bounds the stack).
const BATCH: usize = 16;

/// Which mask is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mask {
    /// The entry's own Mask Bit (MSI-X Vector Control, or the MSI Mask Bits).
    PerVector,
    /// MSI-X Function Mask.
    Function,
}

impl Mask {
    /// Scenario name for a function in `mode`.
    pub fn scenario(self, mode: crate::modes::IrqMode) -> &'static str {
        match (self, mode) {
            (Mask::PerVector, crate::modes::IrqMode::Msi) => "msi-vector-mask",
            (Mask::PerVector, _) => "msix-vector-mask",
            (Mask::Function, _) => "msix-function-mask",
        }
    }
}

/// Masks (or unmasks) entries `0..n` the way `mask` says. `Err(i)`: entry `i` cannot be masked that way
/// (entries before it were changed).
fn set<C: ConfigRegion>(irq: &mut DeviceIrq<'_, C>, mask: Mask, n: usize, on: bool) -> Result<(), usize> {
    match mask {
        Mask::PerVector => (0..n).try_for_each(|i| if irq.mask(i, on) { Ok(()) } else { Err(i) }),
        Mask::Function if n == 0 || irq.function_mask(on) => Ok(()),
        Mask::Function => Err(0),
    }
}

/// What is tracked per device under check.
struct Track {
    /// Entries checked.
    sources: usize,
    /// Entries triggered (all of them, unless a trigger failed).
    triggered: usize,
    /// Counts per entry before the trigger.
    before: [u64; MAX_VECTORS],
    /// Whether each entry's Pending Bit (or a delivery, or a function without pending bits) showed up
    /// while masked.
    raised: [bool; MAX_VECTORS],
    /// Set once the device has failed (or was skipped); it is then only cleaned up.
    verdict: Option<Verdict>,
}

/// For every source of every target, with the same kind of mask: mask, trigger, check nothing arrives and
/// the pending bit is set, unmask, check exactly one delivery and the pending bit clear, acknowledge. The
/// targets share the waits; `report(i, verdict)` for target `i`, in order.
pub fn run_all<C: ConfigRegion>(targets: &mut [Target<'_, '_, C>], mask: Mask, mut report: impl FnMut(usize, Verdict)) {
    for (b, batch) in targets.chunks_mut(BATCH).enumerate() {
        run_batch(batch, mask, |i, v| report(b * BATCH + i, v));
    }
}

fn run_batch<C: ConfigRegion>(targets: &mut [Target<'_, '_, C>], mask: Mask, mut report: impl FnMut(usize, Verdict)) {
    let mut tracks: heapless::Vec<Track, BATCH> = heapless::Vec::new();
    // Mask every entry, then trigger every entry (the device's own moderation is kept by its driver).
    for (source, irq) in targets.iter_mut() {
        let sources = source.sources().min(irq.vectors().len());
        let mut t = Track { sources, triggered: 0, before: [0; MAX_VECTORS], raised: [false; MAX_VECTORS], verdict: None };
        for (i, b) in t.before.iter_mut().enumerate().take(sources) {
            *b = irq.count(i);
        }
        if let Err(i) = set(irq, mask, sources, true) {
            let _ = set(irq, mask, i, false);
            t.verdict = Some(Verdict::new(Outcome::Skip, format_args!("entry {i} cannot be masked this way")));
        }
        let _ = tracks.push(t);
    }
    for ((source, irq), t) in targets.iter_mut().zip(tracks.iter_mut()).filter(|(_, t)| t.verdict.is_none()) {
        for i in 0..t.sources {
            if let Err(e) = source.trigger(i) {
                let _ = set(irq, mask, t.sources, false);
                t.verdict = Some(Verdict::new(Outcome::Fail, format_args!("source {i}: trigger failed: {e}")));
                break;
            }
            t.triggered += 1;
        }
    }

    // The device may raise the interrupt asynchronously (an NVMe completion comes from QEMU's main loop):
    // wait for every Pending Bit, or for a delivery that must not happen, then keep watching a little
    // longer for a late delivery.
    time::wait_until(ARRIVAL_TIMEOUT_US, || {
        let mut all = true;
        for ((_, irq), t) in targets.iter().zip(tracks.iter_mut()).filter(|(_, t)| t.verdict.is_none()) {
            for i in 0..t.sources {
                t.raised[i] |= irq.count(i) != t.before[i] || irq.pending(i) != Some(false);
                all &= t.raised[i];
            }
        }
        all
    });
    let live = |tracks: &[Track]| tracks.iter().any(|t| t.verdict.is_none());
    let bound = delivery::late_bound(targets);
    if live(&tracks) {
        delivery::settle(bound, MASKED_WATCH_US);
    }
    for ((_, irq), t) in targets.iter_mut().zip(tracks.iter_mut()).filter(|(_, t)| t.verdict.is_none()) {
        let mut seen: [(u64, Option<bool>, bool); MAX_VECTORS] = [(0, None, false); MAX_VECTORS];
        for (i, s) in seen.iter_mut().enumerate().take(t.sources) {
            *s = (irq.count(i) - t.before[i], irq.pending(i), t.raised[i]);
        }
        let _ = set(irq, mask, t.sources, false);
        t.verdict = masked_verdict(irq, &seen[..t.sources]);
    }

    // Unmasked: every pending interrupt must now arrive, exactly once, and its Pending Bit clear.
    let delivered = |irq: &DeviceIrq<'_, C>, t: &Track| (0..t.sources).all(|i| irq.count(i) > t.before[i]);
    time::wait_until(ARRIVAL_TIMEOUT_US, || {
        targets.iter().zip(tracks.iter()).filter(|(_, t)| t.verdict.is_none()).all(|((_, irq), t)| delivered(irq, t))
    });
    if live(&tracks) {
        delivery::settle(bound, SETTLE_US);
    }
    for ((source, irq), t) in targets.iter_mut().zip(tracks.iter_mut()) {
        if t.verdict.is_none() {
            t.verdict = unmasked_verdict(irq, t);
        }
        // Acknowledged and re-armed after a failure too, so the device can interrupt for later checks.
        for i in 0..t.triggered {
            match source.acknowledge(i) {
                Err(e) if t.verdict.is_none() => {
                    t.verdict = Some(Verdict::new(Outcome::Fail, format_args!("source {i}: acknowledge failed: {e}")));
                }
                _ => {}
            }
            irq.rearm(i);
        }
    }
    for (d, t) in tracks.iter_mut().enumerate() {
        let checked = t.sources;
        let verdict = t.verdict.take().unwrap_or_else(|| {
            if checked == 0 {
                // Nothing was masked or raised: no evidence either way (delivery says the same).
                return Verdict::new(Outcome::Skip, format_args!("no interrupt source driven"));
            }
            Verdict::new(
                Outcome::Pass,
                format_args!(
                    "{checked} entr{} masked: pending set, nothing delivered; delivered exactly once on unmask",
                    if checked == 1 { "y" } else { "ies" }
                ),
            )
        });
        report(d, verdict);
    }
}

/// The verdict on what was seen while masked, per entry: (interrupts delivered, Pending Bit, whether the
/// Pending Bit or a delivery showed up within the arrival timeout). `None` while it passes.
fn masked_verdict<C: ConfigRegion>(irq: &DeviceIrq<'_, C>, seen: &[(u64, Option<bool>, bool)]) -> Option<Verdict> {
    for (i, &(leaked, pending, raised)) in seen.iter().enumerate() {
        let vector = irq.vectors()[i];
        if leaked != 0 {
            return Some(Verdict::new(Outcome::Fail, format_args!("entry {i} (vector {vector:#x}): {leaked} interrupt(s) delivered while masked")));
        }
        match pending {
            Some(true) => {}
            Some(false) => {
                let why = if raised { "cleared again" } else { "never set" };
                return Some(Verdict::new(
                    Outcome::Fail,
                    format_args!("entry {i}: Pending Bit {why} while a masked interrupt was outstanding ({} ms)", ARRIVAL_TIMEOUT_US / 1000),
                ));
            }
            None => return Some(Verdict::new(Outcome::Skip, format_args!("the function has no pending bits"))),
        }
    }
    None
}

/// The verdict after the unmask and the settle window. `None` while it passes.
fn unmasked_verdict<C: ConfigRegion>(irq: &DeviceIrq<'_, C>, t: &Track) -> Option<Verdict> {
    for i in 0..t.sources {
        let vector = irq.vectors()[i];
        let got = irq.count(i) - t.before[i];
        if got == 0 {
            return Some(Verdict::new(Outcome::Fail, format_args!("entry {i} (vector {vector:#x}): pending interrupt not delivered on unmask")));
        }
        if got != 1 {
            return Some(Verdict::new(Outcome::Fail, format_args!("entry {i} (vector {vector:#x}): {got} deliveries on unmask, expected exactly 1")));
        }
        if irq.pending(i) == Some(true) {
            return Some(Verdict::new(Outcome::Fail, format_args!("entry {i}: Pending Bit still set after delivery")));
        }
    }
    None
}
