//! `write-order`: every configuration and MSI-X table access the firmware made, held against the
//! programming rules (modes::order), once the trace has stopped.

use super::context::{Context, Run};
use super::{Outcome, Verdict};
use crate::bus::pci::config::PlatformConfig;
use crate::bus::pci::enumerate::Enumeration;
use crate::bus::pci::{caps, trace};
use crate::modes::order;
use crate::time;

/// [`crate::scenarios::Stage::Final`].
pub(crate) fn step(ctx: &mut Context<'_>) {
    let t0 = time::now_us();
    check_write_order(ctx.run, ctx.cfg, ctx.pci);
    crate::info!("write order: {=u64} us", time::now_us() - t0);
}

/// Holds the access trace of every function that was owned or written against the programming rules
/// (modes::order) and reports one `write-order` scenario per such function.
fn check_write_order(run: &mut Run, cfg: &PlatformConfig, pci: &Enumeration) {
    let overflowed = trace::inspect(|t| t.overflowed);
    if overflowed > 0 {
        let recorded = trace::inspect(|t| t.events.len());
        super::context::capacity(
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

