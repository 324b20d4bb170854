//! Platform-wide checks: the LAPIC self IPI, the write-order check over the access trace, and the
//! optional storm scenario.

use super::devices::Routing;
use super::Run;
use crate::arch::lapic;
use crate::bus::pci::config::PlatformConfig;
use crate::bus::pci::enumerate::Enumeration;
use crate::bus::pci::{caps, trace};
use crate::drivers::DriverKind;
use crate::irq::{dispatch, vector};
use crate::modes::order;
use crate::report::Outcome;
use crate::scenarios::{delivery, storm, Verdict};
use crate::time;

/// How long to watch for a second delivery after a self IPI arrived, at least. QEMU's LAPIC sets the IRR
/// bit inside the ICR write, so a duplicate would be pending as soon as the first is taken; the window
/// only covers the CPU taking it. The device setup runs inside the window, so it costs nothing when the
/// setup takes longer.
const SELF_IPI_WATCH_US: u64 = 1_000;
/// The freed vector's own, shorter watch, before device setup can reuse the vector (the duplicate would be
/// pending at once, as above).
const FREED_WATCH_US: u64 = 250;

/// The two self-IPI checks, sent by [`send_self_ipis`] and judged by [`judge_self_ipis`] after a watch
/// window that the device setup runs in:
/// - `lapic-self-ipi`: the LAPIC delivers a self IPI exactly once;
/// - `unowned-vector`: an interrupt on a vector nobody owns (freed, no handler) is counted as unowned and
///   reported, not lost and not mistaken for a device's: a vector is allocated and freed again, then a
///   self IPI is sent on it.
#[derive(Debug)]
pub(super) struct SelfIpis {
    before: u64,
    /// The freed vector with its counts before the IPI: (vector, arrivals, counted unowned).
    freed: Result<(u8, u64, u64), vector::VectorError>,
    /// When the window closes at the earliest.
    watch_until: time::Deadline,
    /// Arrivals on the freed vector and those counted unowned, at the end of its own watch.
    freed_seen: (u64, u64),
}

/// Sends both self IPIs and waits for them to arrive; the duplicate watch runs on while the caller
/// works (interrupts stay enabled).
pub(super) fn send_self_ipis() -> SelfIpis {
    let v = vector::SELF_IPI_VECTOR;
    let freed = vector::VectorBlock::alloc(1).map(|block| block.base()).map(|f| (f, dispatch::count(f), dispatch::take_unowned(f)));
    let before = dispatch::count(v);
    lapic::self_ipi(v);
    if let Ok((f, _, _)) = freed {
        lapic::self_ipi(f);
    }
    let arrived = |vector: u8, before: u64| dispatch::count(vector) > before;
    time::wait_until(delivery::ARRIVAL_TIMEOUT_US, || arrived(v, before) && freed.as_ref().map_or(true, |&(f, b, _)| arrived(f, b)));
    let watch_until = time::Deadline::after_us(SELF_IPI_WATCH_US);
    // The freed vector is judged before device setup may be given it again: a duplicate (or a device's
    // interrupt) on it later would count as the device's and hide from this check.
    time::delay_us(FREED_WATCH_US);
    let freed_seen = freed.as_ref().map_or((0, 0), |&(f, b, _)| (dispatch::count(f) - b, dispatch::take_unowned(f)));
    SelfIpis { before, freed, watch_until, freed_seen }
}

/// Waits out what is left of the self IPI's watch window, then reports both checks.
pub(super) fn judge_self_ipis(run: &mut Run, probe: SelfIpis) {
    while !probe.watch_until.expired() {
        crate::arch::cpu::relax();
    }
    let v = vector::SELF_IPI_VECTOR;
    let got = dispatch::count(v) - probe.before;
    let verdict = if got == 1 {
        Verdict::new(Outcome::Pass, format_args!("self IPI on vector {v:#x} delivered once"))
    } else {
        Verdict::new(Outcome::Fail, format_args!("self IPI on vector {v:#x}: {got} deliveries, expected 1"))
    };
    run.scenario("lapic-self-ipi", None, &verdict);

    let verdict = match probe.freed {
        Ok((f, _, unowned_before)) => {
            let (got, unowned) = probe.freed_seen;
            if got == 1 && unowned == 1 {
                Verdict::new(Outcome::Pass, format_args!("interrupt on freed vector {f:#x} arrived once and was counted as unowned"))
            } else {
                Verdict::new(
                    Outcome::Fail,
                    format_args!("freed vector {f:#x}: {got} arrivals, {unowned} counted unowned (expected 1 and 1; {unowned_before} before)"),
                )
            }
        }
        Err(e) => Verdict::new(Outcome::Fail, format_args!("no vector to free: {e}")),
    };
    run.scenario("unowned-vector", None, &verdict);
}

/// Holds the access trace of every function that was owned or written against the programming rules
/// (modes::order) and reports one `write-order` scenario per such function.
pub(super) fn check_write_order(run: &mut Run, cfg: &PlatformConfig, pci: &Enumeration) {
    let overflowed = trace::inspect(|t| t.overflowed);
    if overflowed > 0 {
        let recorded = trace::inspect(|t| t.events.len());
        super::capacity(
            run,
            format_args!("heap exhausted: the access trace kept {recorded} accesses and lost {overflowed}; no write order checked"),
        );
    }
    for f in pci.functions.iter() {
        let msi = f.caps.find(caps::id::MSI).and_then(|at| crate::modes::msi::read_capability(cfg, f.bdf, at).ok());
        let msix = f.caps.find(caps::id::MSIX).map(|at| crate::modes::msix::read_capability(cfg, f.bdf, at));
        let verdict = trace::inspect(|t| {
            let owned = t.owns(f.bdf);
            let written = t.events.iter().any(|e| {
                e.bdf == f.bdf && matches!(e.access, trace::Access::ConfigWrite { .. } | trace::Access::TableWrite { .. })
            });
            if !owned && !written {
                return None;
            }
            let layout = order::Layout { bdf: f.bdf, msi, msix, owned };
            let findings = order::check(&layout, &t.events);
            Some(match findings.violations.first() {
                // Not provable either way: skipped, and the run fails on the capacity problem above.
                _ if overflowed > 0 => Verdict::new(
                    Outcome::Skip,
                    format_args!("not checked: the heap could not hold the trace ({overflowed} accesses not recorded)"),
                ),
                Some(v) => Verdict::new(
                    Outcome::Fail,
                    format_args!("{v} ({} rule(s) broken)", findings.violations.len()),
                ),
                None if !findings.intended.is_empty() => Verdict::new(
                    Outcome::Pass,
                    format_args!(
                        "{} accesses checked against rules R1-R7, no violation outside negative controls ({} broken on purpose there, first: {})",
                        findings.events,
                        findings.intended.len(),
                        findings.intended[0].rule.name()
                    ),
                ),
                None => Verdict::new(
                    Outcome::Pass,
                    format_args!("{} accesses checked against rules R1-R7, no violation", findings.events),
                ),
            })
        });
        if let Some(v) = verdict {
            run.scenario("write-order", Some(f.bdf), &v);
        }
    }
}

/// The optional storm scenario, on the first edu function (after teardown, so nothing else uses it).
pub(super) fn run_storm(run: &mut Run, cfg: &'static PlatformConfig, pci: &Enumeration, routing: &Routing) {
    let Some(edu) = pci.functions.iter().find(|f| DriverKind::probe(f) == Some(DriverKind::Edu)) else {
        run.scenario("intx-storm", None, &Verdict::new(Outcome::Skip, format_args!("needs an edu function (-device edu)")));
        return;
    };
    let verdict = match routing.resolve(pci, cfg, edu) {
        Ok(r) => {
            // The storm takes the edu over (it may be one no driver owned: `irq.BDF=none`).
            trace::own(edu.bdf);
            storm::run(cfg, edu, r.route)
        }
        Err(e) => Verdict::new(Outcome::Skip, format_args!("edu INTx not routable: {e}")),
    };
    run.scenario("intx-storm", Some(edu.bdf), &verdict);
}
