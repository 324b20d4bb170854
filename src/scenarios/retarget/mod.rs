//! Moving live interrupts between CPUs the way Linux does, each move checked where every interrupt
//! landed, and each scenario with a negative control that breaks the rule and is caught:
//!
//! - [`msix`] `retarget-msix`: MSI-X entries moved round the online CPUs (mask, rewrite, unmask) while
//!   the device raises; a raise during the mask arrives once after it. Control: rewritten unmasked.
//! - [`msi`] `retarget-msi`: MSI without per-vector masking (edu) moved with `msi_set_affinity`'s
//!   two-step; a raise between the steps is found in the old CPU's IRR and retriggered on the new one.
//!   Control: the address written before the data, a raise in between.
//! - [`ioapic`] `retarget-ioapic`: a live level-triggered IOAPIC line moved between CPUs. Control: the
//!   entry rewritten unmasked while the level is asserted.
//! - [`offline`] `cpu-offline`: every vector aimed at a CPU moved away (`fixup_irqs`), the CPU taken
//!   offline and brought back. Control: one vector left behind.
//!
//! The check common to all ([`Ledger`], [`reconcile`]): the interrupt counts of every device vector on
//! every online CPU are read before and after each step, and the difference must be exactly the
//! interrupts the step raised, each at the place (CPU, vector) it was aimed at. An interrupt elsewhere, a
//! missing one, or one that reached a vector nobody owns on its CPU fails the step. Facts:
//! `../shared/platform/smp-ir.md` sections 2.5-2.9.
//!
//! Each needs two or more online CPUs; with one the scenario and its control are skips saying so.

pub mod ioapic;
pub mod msi;
pub mod msix;
pub mod offline;

use crate::arch::smp;
use crate::drivers::{DriverError, InterruptSource};
use crate::irq::dispatch;
use crate::irq::vector::{FIRST_DEVICE_VECTOR, LAST_DEVICE_VECTOR};
use crate::modes::Target;
use crate::scenarios::context::Run;
use crate::scenarios::{Outcome, Verdict};
use crate::time;
use alloc::string::String;
use alloc::vec::Vec;
use msifw_proto::names::Scenario;

/// How long a raised interrupt may take to arrive (TCG under load, nested KVM).
pub const ARRIVAL_TIMEOUT_US: u64 = crate::scenarios::delivery::ARRIVAL_TIMEOUT_US;
/// How long to keep watching after the last expected interrupt arrived (see `delivery::SETTLE_US`).
pub const SETTLE_US: u64 = crate::scenarios::delivery::SETTLE_US;
/// How long a hook run between a move's writes waits for the device's raise to show.
pub const RAISE_TIMEOUT_US: u64 = 100_000;

/// A CPU and one of its vectors: where an interrupt arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    /// CPU index (0 = the BSP).
    pub cpu: usize,
    /// Vector on that CPU.
    pub vector: u8,
}

impl Place {
    /// Where `target` aims.
    pub fn of(target: Target) -> Place {
        Place { cpu: target.cpu, vector: target.vector }
    }
}

impl core::fmt::Display for Place {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CPU {} vector {:#x}", self.cpu, self.vector)
    }
}

/// Interrupts a step expects at one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    /// Where.
    pub at: Place,
    /// Or there instead: an interrupt raised while its source moved lands at the old place if it came
    /// before the move, at the new one after it (each once, never both).
    pub or: Option<Place>,
    /// How many.
    pub n: u64,
    /// Up to this many more are accepted (at `at`, or at `or`): a level line delivered again after its
    /// claim (KVM's IOAPIC; the INTx hold counts them as re-deliveries, not the device's interrupts).
    pub spare: u64,
    /// The copy an interrupt retriggered by Linux's two-step leaves in the old CPU's IRR (smp-ir 2.7):
    /// it is taken on the old CPU once its interrupts are on again, where the vector may be owned by
    /// nobody (Linux marks it `VECTOR_RETRIGGERED` and ignores it).
    pub stale: bool,
}

impl Expect {
    /// `n` interrupts at `at`.
    pub const fn at(at: Place, n: u64) -> Expect {
        Expect { at, or: None, n, spare: 0, stale: false }
    }

    /// One interrupt, at `old` or at `new`.
    pub const fn either(old: Place, new: Place) -> Expect {
        Expect { at: old, or: Some(new), n: 1, spare: 0, stale: false }
    }

    /// Up to `spare` more accepted (level re-deliveries).
    pub const fn spare(mut self, spare: u64) -> Expect {
        self.spare = spare;
        self
    }

    /// The stale IRR copy of a retriggered interrupt.
    pub const fn stale(at: Place) -> Expect {
        Expect { at, or: None, n: 1, spare: 0, stale: true }
    }
}

/// What arrived at one place during a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Where.
    pub at: Place,
    /// Interrupts counted there (owned or not).
    pub n: u64,
    /// Of them, on a vector nobody owned there.
    pub unowned: u64,
}

/// A difference between what a step expected and what arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// Fewer than expected arrived (at `at`, or at `or`).
    Missing {
        /// Where.
        at: Place,
        /// Or there.
        or: Option<Place>,
        /// Expected.
        want: u64,
        /// Arrived.
        got: u64,
    },
    /// Interrupts nobody expected there.
    Extra {
        /// Where.
        at: Place,
        /// How many.
        n: u64,
        /// Of them, on a vector nobody owned there.
        unowned: u64,
    },
    /// Expected there, but the vector was owned by nobody when they came: they reached no handler.
    Unowned {
        /// Where.
        at: Place,
        /// How many.
        n: u64,
    },
}

impl Mismatch {
    /// Where the interrupts in question arrived (or should have).
    pub fn place(&self) -> Place {
        match *self {
            Mismatch::Missing { at, .. } | Mismatch::Extra { at, .. } | Mismatch::Unowned { at, .. } => at,
        }
    }
}

impl core::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Mismatch::Missing { at, or: None, want, got } => write!(f, "{at}: {got} of {want} interrupt(s)"),
            Mismatch::Missing { at, or: Some(or), want, got } => write!(f, "{at} or {or}: {got} of {want} interrupt(s)"),
            Mismatch::Extra { at, n, unowned: 0 } => write!(f, "{at}: {n} unexpected interrupt(s)"),
            Mismatch::Extra { at, n, unowned } => write!(f, "{at}: {n} unexpected interrupt(s), {unowned} on a vector nobody owned there"),
            Mismatch::Unowned { at, n } => write!(f, "{at}: {n} interrupt(s) reached no handler (vector owned by nobody there)"),
        }
    }
}

/// Holds what arrived against what a step expected, exactly. Expectations with one place are served
/// first, then those with an alternative (from their first place, then the other), then the spare
/// allowances; whatever is left over is extra. Interrupts on a vector nobody owned are accepted only as
/// the stale copies a retrigger leaves.
pub fn reconcile(expect: &[Expect], seen: &[Seen]) -> Vec<Mismatch> {
    let mut left: Vec<Seen> = seen.iter().copied().filter(|s| s.n > 0 || s.unowned > 0).collect();
    let mut take = |at: Place, n: u64| -> u64 {
        match left.iter_mut().find(|s| s.at == at) {
            Some(s) => {
                let t = s.n.min(n);
                s.n -= t;
                t
            }
            None => 0,
        }
    };
    let mut out = Vec::new();
    for e in expect.iter().filter(|e| e.or.is_none()) {
        let got = take(e.at, e.n);
        if got < e.n {
            out.push(Mismatch::Missing { at: e.at, or: None, want: e.n, got });
        }
    }
    for e in expect.iter().filter(|e| e.or.is_some()) {
        let first = take(e.at, e.n);
        let second = e.or.map_or(0, |or| take(or, e.n - first));
        if first + second < e.n {
            out.push(Mismatch::Missing { at: e.at, or: e.or, want: e.n, got: first + second });
        }
    }
    for e in expect.iter().filter(|e| e.spare > 0) {
        let first = take(e.at, e.spare);
        if let Some(or) = e.or {
            take(or, e.spare - first);
        }
    }
    for s in left.iter() {
        let stale: u64 = expect.iter().filter(|e| e.stale && e.at == s.at).map(|e| e.n).sum();
        if s.n > 0 {
            out.push(Mismatch::Extra { at: s.at, n: s.n, unowned: s.unowned.saturating_sub(stale).min(s.n) });
        } else if s.unowned > stale {
            out.push(Mismatch::Unowned { at: s.at, n: s.unowned - stale });
        }
    }
    out
}

/// Whether nothing expected is missing yet (extras are judged later).
pub fn arrived(expect: &[Expect], seen: &[Seen]) -> bool {
    !reconcile(expect, seen).iter().any(|m| matches!(m, Mismatch::Missing { .. }))
}

/// The mismatches in one line.
pub fn describe(mismatches: &[Mismatch]) -> String {
    let mut s = String::new();
    for (i, m) in mismatches.iter().enumerate() {
        let _ = core::fmt::Write::write_fmt(&mut s, format_args!("{}{m}", if i == 0 { "" } else { "; " }));
    }
    s
}

const VECTORS: usize = (LAST_DEVICE_VECTOR - FIRST_DEVICE_VECTOR) as usize + 1;

/// The interrupt counts of every device vector on a set of CPUs at one moment (per-CPU counts, and the
/// unowned ones among them).
#[derive(Debug, Clone)]
pub struct Ledger {
    cpus: Vec<usize>,
    counts: Vec<u64>,
    unowned: Vec<u64>,
}

impl Ledger {
    /// Reads the counts of `cpus` now.
    pub fn take(cpus: &[usize]) -> Ledger {
        let mut counts = Vec::with_capacity(cpus.len() * VECTORS);
        let mut unowned = alloc::vec![0; cpus.len() * VECTORS];
        for (c, &cpu) in cpus.iter().enumerate() {
            for v in FIRST_DEVICE_VECTOR..=LAST_DEVICE_VECTOR {
                counts.push(dispatch::count_on(cpu, v));
            }
            for (v, n) in dispatch::unowned_on(cpu) {
                if (FIRST_DEVICE_VECTOR..=LAST_DEVICE_VECTOR).contains(&v) {
                    unowned[c * VECTORS + (v - FIRST_DEVICE_VECTOR) as usize] = n;
                }
            }
        }
        Ledger { cpus: cpus.to_vec(), counts, unowned }
    }

    /// What arrived between `before` and this reading, place by place (CPUs both readings have).
    pub fn since(&self, before: &Ledger) -> Vec<Seen> {
        let mut out = Vec::new();
        for (c, &cpu) in self.cpus.iter().enumerate() {
            let Some(b) = before.cpus.iter().position(|&x| x == cpu) else { continue };
            for k in 0..VECTORS {
                let n = self.counts[c * VECTORS + k].saturating_sub(before.counts[b * VECTORS + k]);
                let unowned = self.unowned[c * VECTORS + k].saturating_sub(before.unowned[b * VECTORS + k]);
                if n > 0 || unowned > 0 {
                    out.push(Seen { at: Place { cpu, vector: FIRST_DEVICE_VECTOR + k as u8 }, n, unowned });
                }
            }
        }
        out
    }

    /// What has arrived since this reading.
    pub fn seen(&self) -> Vec<Seen> {
        Ledger::take(&self.cpus).since(self)
    }

    /// Waits (bounded) until everything `expect` names has arrived since this reading; what arrived by
    /// then.
    pub fn wait(&self, expect: &[Expect]) -> Vec<Seen> {
        time::wait_until(ARRIVAL_TIMEOUT_US, || arrived(expect, &self.seen()));
        self.seen()
    }

    /// Waits (bounded by `us`) until anything at all has arrived since this reading.
    pub fn wait_any(&self, us: u64) -> bool {
        time::wait_until(us, || !self.seen().is_empty())
    }

    /// Waits until nothing has arrived for `quiet_us` (at most `bound_us` in all).
    pub fn wait_quiet(&self, quiet_us: u64, bound_us: u64) {
        let total = |l: &Ledger| l.seen().iter().map(|s| s.n).sum::<u64>();
        let end = time::now_us() + bound_us;
        let (mut last, mut since) = (total(self), time::now_us());
        while time::now_us() < end {
            let now = total(self);
            if now != last {
                (last, since) = (now, time::now_us());
            } else if time::now_us() - since >= quiet_us {
                return;
            }
            core::hint::spin_loop();
        }
    }

    /// Takes (reads and clears) the unowned counts a control provoked on purpose at the places it names,
    /// so the run's report does not list them as strays.
    pub fn take_unowned(places: &[Place]) {
        for p in places {
            dispatch::take_unowned_on(p.cpu, p.vector);
        }
    }
}

/// Raises sources of one device no faster than it promises ([`InterruptSource::min_interval_us`]), so
/// no message is postponed by moderation (an e1000e's late extra message would be an unexpected one).
#[derive(Debug)]
pub struct Pace {
    last: Vec<Option<u64>>,
}

impl Pace {
    /// For a device with `sources` sources.
    pub fn new(sources: usize) -> Pace {
        Pace { last: alloc::vec![None; sources] }
    }

    /// Raises source `i` once its minimum interval since its last raise has passed.
    pub fn trigger(&mut self, src: &mut dyn InterruptSource, i: usize) -> Result<(), DriverError> {
        let gap = src.min_interval_us();
        if let Some(last) = self.last.get(i).copied().flatten() {
            let at = last + gap;
            while time::now_us() < at {
                core::hint::spin_loop();
            }
        }
        let r = src.trigger(i);
        if let Some(l) = self.last.get_mut(i) {
            *l = Some(time::now_us());
        }
        r
    }
}

/// Acknowledges source `i` at the device and re-arms it (INTx: the second half of mask-ack-unmask).
pub fn acknowledge<C: crate::bus::pci::ConfigRegion>(src: &mut dyn InterruptSource, irq: &mut crate::modes::DeviceIrq<'_, C>, i: usize) -> Result<(), DriverError> {
    src.acknowledge(i)?;
    irq.rearm(i);
    Ok(())
}

/// Waits (bounded) until the INTx handler has claimed `n` more of the function's interrupts than `before`
/// ([`crate::modes::DeviceIrq::count`]). The per-CPU count goes up in the interrupt entry, before the
/// handler, on whichever CPU took it, claims the function and holds it (Interrupt Disable): an acknowledge
/// and rearm made before that claim would leave the function held for good. The message modes have no
/// handler to wait for.
pub fn claimed<C: crate::bus::pci::ConfigRegion>(irq: &crate::modes::DeviceIrq<'_, C>, before: u64, n: u64) {
    if irq.mode() == crate::modes::IrqMode::Intx {
        time::wait_until(ARRIVAL_TIMEOUT_US, || irq.count(0) >= before + n);
    }
}

/// The online CPUs, or (fewer than two) the skips of `name` and its control saying why.
pub(crate) fn cpus_or_skip(run: &mut Run, name: Scenario) -> Option<Vec<usize>> {
    let online = smp::online();
    if online.len() >= 2 {
        return Some(online);
    }
    let v = Verdict::new(
        Outcome::Skip,
        format_args!("needs two or more online CPUs to move interrupts between; {} online (boot with -smp 2 or more)", online.len()),
    );
    run.scenario(name.name(), None, &v);
    run.scenario_record(name.name(), None, &v, true);
    None
}

/// The online CPU after `cpu` in `online`, round the list (the first when `cpu` is not online).
pub fn next_cpu(online: &[usize], cpu: usize) -> usize {
    match online.iter().position(|&c| c == cpu) {
        Some(p) => online[(p + 1) % online.len()],
        None => online[0],
    }
}

/// The first failure of a check run over many steps, and the counts of what passed.
#[derive(Debug, Default)]
pub struct Tally {
    /// Moves made.
    pub moves: u32,
    /// Interrupts raised and found exactly where aimed.
    pub interrupts: u64,
    /// The first thing that went wrong.
    pub failure: Option<String>,
}

impl Tally {
    /// Records a failure (the first one is kept).
    pub fn fail(&mut self, args: core::fmt::Arguments) {
        if self.failure.is_none() {
            let mut s = String::new();
            let _ = core::fmt::Write::write_fmt(&mut s, args);
            self.failure = Some(s);
        }
    }

    /// Whether a failure was recorded.
    pub fn failed(&self) -> bool {
        self.failure.is_some()
    }
}

/// Vectors in a detail line: `0x31,0x33`.
pub fn vector_list(vectors: &[u8]) -> String {
    let mut s = String::new();
    for (i, v) in vectors.iter().enumerate() {
        let _ = core::fmt::Write::write_fmt(&mut s, format_args!("{}{v:#x}", if i == 0 { "" } else { "," }));
    }
    s
}

/// The CPU list in a detail line: `0-3`, or `0,2,5`.
pub fn cpu_list(online: &[usize]) -> String {
    let contiguous = online.windows(2).all(|w| w[1] == w[0] + 1);
    let mut s = String::new();
    match (online.first(), online.last()) {
        (Some(a), Some(b)) if contiguous && online.len() > 1 => {
            let _ = core::fmt::Write::write_fmt(&mut s, format_args!("{a}-{b}"));
        }
        _ => {
            for (i, c) in online.iter().enumerate() {
                let _ = core::fmt::Write::write_fmt(&mut s, format_args!("{}{c}", if i == 0 { "" } else { "," }));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn p(cpu: usize, vector: u8) -> Place {
        Place { cpu, vector }
    }
    const fn seen(cpu: usize, vector: u8, n: u64, unowned: u64) -> Seen {
        Seen { at: p(cpu, vector), n, unowned }
    }

    #[test]
    fn exact_arrivals_reconcile_to_nothing() {
        let e = [Expect::at(p(1, 0x31), 2), Expect::at(p(0, 0x30), 1)];
        assert!(reconcile(&e, &[seen(0, 0x30, 1, 0), seen(1, 0x31, 2, 0)]).is_empty());
        assert!(reconcile(&[], &[]).is_empty());
    }

    #[test]
    fn a_missing_or_extra_interrupt_is_named_with_its_place() {
        let e = [Expect::at(p(1, 0x31), 1)];
        assert_eq!(reconcile(&e, &[]), [Mismatch::Missing { at: p(1, 0x31), or: None, want: 1, got: 0 }]);
        let m = reconcile(&e, &[seen(1, 0x31, 2, 0)]);
        assert_eq!(m, [Mismatch::Extra { at: p(1, 0x31), n: 1, unowned: 0 }]);
        assert_eq!(describe(&m), "CPU 1 vector 0x31: 1 unexpected interrupt(s)");
    }

    #[test]
    fn the_torn_message_of_a_control_shows_as_missing_here_and_unowned_there() {
        // Aimed at CPU 2 vector 0x30, arrived at CPU 2 vector 0x41 (the old vector, owned by nobody there).
        let m = reconcile(&[Expect::at(p(2, 0x30), 1)], &[seen(2, 0x41, 1, 1)]);
        assert_eq!(m, [Mismatch::Missing { at: p(2, 0x30), or: None, want: 1, got: 0 }, Mismatch::Extra { at: p(2, 0x41), n: 1, unowned: 1 }]);
        assert_eq!(
            describe(&m),
            "CPU 2 vector 0x30: 0 of 1 interrupt(s); CPU 2 vector 0x41: 1 unexpected interrupt(s), 1 on a vector nobody owned there"
        );
    }

    #[test]
    fn a_raced_interrupt_lands_once_at_either_place_never_both() {
        let e = [Expect::either(p(0, 0x30), p(1, 0x32))];
        assert!(reconcile(&e, &[seen(0, 0x30, 1, 0)]).is_empty());
        assert!(reconcile(&e, &[seen(1, 0x32, 1, 0)]).is_empty());
        assert_eq!(reconcile(&e, &[seen(0, 0x30, 1, 0), seen(1, 0x32, 1, 0)]), [Mismatch::Extra { at: p(1, 0x32), n: 1, unowned: 0 }]);
        assert_eq!(reconcile(&e, &[]), [Mismatch::Missing { at: p(0, 0x30), or: Some(p(1, 0x32)), want: 1, got: 0 }]);
        // An exact expectation at the new place is served first.
        let e = [Expect::either(p(0, 0x30), p(1, 0x32)), Expect::at(p(1, 0x32), 1)];
        assert_eq!(reconcile(&e, &[seen(1, 0x32, 1, 0)]), [Mismatch::Missing { at: p(0, 0x30), or: Some(p(1, 0x32)), want: 1, got: 0 }]);
        assert!(reconcile(&e, &[seen(1, 0x32, 2, 0)]).is_empty());
    }

    #[test]
    fn an_expected_interrupt_that_reached_no_handler_is_lost() {
        let m = reconcile(&[Expect::at(p(0, 0x30), 1)], &[seen(0, 0x30, 1, 1)]);
        assert_eq!(m, [Mismatch::Unowned { at: p(0, 0x30), n: 1 }]);
    }

    #[test]
    fn the_stale_copy_of_a_retriggered_interrupt_may_be_unowned_once() {
        let e = [Expect::at(p(1, 0x31), 1), Expect::stale(p(0, 0x31))];
        assert!(reconcile(&e, &[seen(1, 0x31, 1, 0), seen(0, 0x31, 1, 1)]).is_empty());
        assert!(reconcile(&e, &[seen(1, 0x31, 1, 0), seen(0, 0x31, 1, 0)]).is_empty());
        assert_eq!(reconcile(&e, &[seen(1, 0x31, 1, 0), seen(0, 0x31, 2, 2)]), [Mismatch::Extra { at: p(0, 0x31), n: 1, unowned: 1 }]);
        assert_eq!(reconcile(&e, &[seen(0, 0x31, 1, 0)]), [Mismatch::Missing { at: p(1, 0x31), or: None, want: 1, got: 0 }]);
    }

    #[test]
    fn level_redeliveries_are_accepted_only_up_to_the_spare() {
        let e = [Expect::at(p(1, 0xE0), 1).spare(2)];
        assert!(reconcile(&e, &[seen(1, 0xE0, 3, 0)]).is_empty());
        assert_eq!(reconcile(&e, &[seen(1, 0xE0, 4, 0)]), [Mismatch::Extra { at: p(1, 0xE0), n: 1, unowned: 0 }]);
        assert_eq!(reconcile(&e, &[]), [Mismatch::Missing { at: p(1, 0xE0), or: None, want: 1, got: 0 }]);
        assert!(arrived(&e, &[seen(1, 0xE0, 1, 0)]) && !arrived(&e, &[]));
    }

    #[test]
    fn cpus_go_round_the_online_list() {
        assert_eq!(next_cpu(&[0, 1, 2, 3], 3), 0);
        assert_eq!(next_cpu(&[0, 2, 5], 2), 5);
        assert_eq!(next_cpu(&[0, 2, 5], 4), 0);
        assert_eq!(cpu_list(&[0, 1, 2, 3]), "0-3");
        assert_eq!(cpu_list(&[0, 2, 5]), "0,2,5");
        assert_eq!(cpu_list(&[0]), "0");
        assert_eq!(vector_list(&[0x31, 0xe0]), "0x31,0xe0");
    }
}
