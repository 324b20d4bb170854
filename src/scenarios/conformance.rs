//! `msix-conformance`, `msi-conformance`, `intx-conformance`: the interrupt-capability rules of
//! [`crate::modes::conformance`] on every function found, driven or not, at [`super::Stage::Quiet`]
//! (every function quieted: MSI and MSI-X Enable clear, the MSI-X Function Mask set, INTx disabled, an
//! endpoint's Bus Master off; interrupts still off, no driver set up, the access trace not started). A
//! line per mechanism the function has (INTx: every function), FAIL for a violation, SKIP when a rule that
//! applies could not be checked (a limit of the run: a BAR without an address, decoding off), PASS
//! otherwise; "not implemented" and "note" findings are told in the detail of a passing line.

use super::context::{problem, Context, Run};
use super::{Outcome, Verdict};
use crate::arch::mmio::MmioWindow;
use crate::bus::pci::caps;
use crate::bus::pci::config::PlatformConfig;
use crate::bus::pci::enumerate::Function;
use crate::bus::pci::{Bdf, ConfigRegion};
use crate::modes::conformance::{self, BarMemory, Checked, Kind, Mechanism};
use crate::modes::msix;
use crate::time;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// MSI-X Message Control of every function with MSI-X as msifw first read it, before it wrote to any
/// function's interrupt registers ([`first_look`]).
static FIRST_LOOK: spin::Mutex<Vec<(Bdf, u16)>> = spin::Mutex::new(Vec::new());

/// Reads every MSI-X Message Control before anything changes it: the runner calls this after
/// enumeration and BAR assignment, before quieting (which sets the Function Mask). One configuration
/// read per function with MSI-X.
pub(crate) fn first_look(cfg: &PlatformConfig, functions: &[Function]) {
    let mut first = FIRST_LOOK.lock();
    first.clear();
    for f in functions {
        if let Some(at) = f.caps.find(caps::id::MSIX) {
            first.push((f.bdf, cfg.read16(f.bdf, at + msix::CONTROL)));
        }
    }
}

/// The function's memory BARs, each mapped on first use.
struct Bars<'f> {
    function: &'f Function,
    windows: [Option<Option<MmioWindow>>; 6],
}

impl Bars<'_> {
    fn window(&mut self, bar: u8) -> Option<MmioWindow> {
        let slot = self.windows.get_mut(bar as usize)?;
        *slot.get_or_insert_with(|| {
            let b = self.function.bar(bar)?;
            crate::bus::pci::bar::window(self.function.bdf, b).ok()
        })
    }
}

impl BarMemory for Bars<'_> {
    fn read32(&mut self, bar: u8, offset: u64) -> Option<u32> {
        let w = self.window(bar)?.sub(offset, 4)?;
        Some(w.read32(0))
    }

    fn write32(&mut self, bar: u8, offset: u64, value: u32) -> Option<()> {
        let w = self.window(bar)?.sub(offset, 4)?;
        w.write32(0, value);
        Some(())
    }
}

/// [`super::Stage::Quiet`]: the rules on every function, a line per mechanism.
pub(crate) fn step(ctx: &mut Context<'_>) {
    let t0 = time::now_us();
    let first = FIRST_LOOK.lock();
    let mut lines = Vec::new();
    for f in ctx.pci.functions.iter() {
        if let Some(at) = f.caps.find(caps::id::MSIX) {
            // After a restart in place the state first read is the previous run's, not the reset state.
            let first_control = if ctx.plan.restarted {
                None
            } else {
                first.iter().find(|(b, _)| *b == f.bdf).map(|&(_, c)| c)
            };
            let mut bars = Bars {
                function: f,
                windows: [None; 6],
            };
            lines.push((
                f.bdf,
                conformance::check_msix(ctx.cfg, f, at, first_control, &mut bars),
            ));
        }
        if let Some(at) = f.caps.find(caps::id::MSI) {
            lines.push((f.bdf, conformance::check_msi(ctx.cfg, f, at)));
        }
        lines.push((f.bdf, conformance::check_intx(ctx.cfg, f)));
    }
    let checked_us = time::now_us() - t0;
    for (bdf, c) in &lines {
        report(ctx.run, *bdf, c);
    }
    crate::info!(
        "conformance: {=usize} functions checked in {=u64} us, reported in {=u64} us",
        ctx.pci.functions.len(),
        checked_us,
        time::now_us() - t0 - checked_us
    );
}

/// The scenario name of a mechanism's line.
pub fn scenario_name(m: Mechanism) -> &'static str {
    match m {
        Mechanism::Msix => msifw_proto::names::Scenario::MsixConformance.name(),
        Mechanism::Msi => msifw_proto::names::Scenario::MsiConformance.name(),
        Mechanism::Intx => msifw_proto::names::Scenario::IntxConformance.name(),
    }
}

/// The verdict of one mechanism's rules: FAIL for a violation, SKIP when an applicable rule went
/// unchecked or none was checked, PASS otherwise.
pub fn outcome(c: &Checked) -> Outcome {
    if c.violated() {
        Outcome::Fail
    } else if !c.unchecked.is_empty() || (c.held.is_empty() && c.findings.is_empty()) {
        Outcome::Skip
    } else {
        Outcome::Pass
    }
}

/// The line's detail: findings first (violations, then the rest), each with its rule and section; then
/// what went unchecked and why; then the rules that held (only their number on a line with neither, to
/// keep the report short: COM1 costs guest time per byte) and those that do not apply.
pub fn detail(c: &Checked) -> String {
    let mut s = String::new();
    let mut sep = "";
    for kind in [Kind::Violation, Kind::NotImplemented, Kind::Note] {
        for finding in c.findings.iter().filter(|f| f.kind == kind) {
            let _ = write!(
                s,
                "{sep}{} {} [{}]: {}",
                kind.name(),
                finding.rule.name(),
                finding.rule.section(),
                finding.text
            );
            sep = "; ";
        }
    }
    for (rule, why) in &c.unchecked {
        let _ = write!(s, "{sep}not checked {}: {why}", rule.name());
        sep = "; ";
    }
    if c.violated() || !c.unchecked.is_empty() {
        if !c.held.is_empty() {
            let _ = write!(s, "{sep}held:");
            for (i, rule) in c.held.iter().enumerate() {
                let _ = write!(s, "{}{}", if i == 0 { " " } else { ", " }, rule.name());
            }
        }
    } else {
        let _ = write!(s, "{sep}{} held", c.held.len());
    }
    if !c.not_applicable.is_empty() {
        let _ = write!(s, "; n/a:");
        for (i, (rule, _)) in c.not_applicable.iter().enumerate() {
            let _ = write!(s, "{}{}", if i == 0 { " " } else { ", " }, rule.name());
        }
    }
    s
}

fn report(run: &mut Run, bdf: Bdf, c: &Checked) {
    let name = scenario_name(c.mechanism);
    let text = detail(c);
    let verdict = Verdict::new(outcome(c), format_args!("{text}"));
    if verdict.detail.len() < text.len() {
        // The line's detail was cut: the whole of it as a problem, so no finding is lost.
        problem("conformance", format_args!("{bdf} {name}: {text}"));
    }
    run.scenario(name, Some(bdf), &verdict);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modes::conformance::{Finding, Rule};

    fn checked(held: &[Rule], findings: &[(Rule, Kind)], unchecked: &[Rule]) -> Checked {
        Checked {
            mechanism: Mechanism::Msi,
            held: held.to_vec(),
            findings: findings
                .iter()
                .map(|&(rule, kind)| Finding {
                    rule,
                    kind,
                    text: "seen".into(),
                })
                .collect(),
            unchecked: unchecked.iter().map(|&r| (r, "why")).collect(),
            not_applicable: vec![(Rule::MsiUpperAddress, "32-bit")],
        }
    }

    #[test]
    fn a_violation_fails_an_unchecked_rule_skips_notes_pass() {
        let c = checked(
            &[Rule::MsiLayout],
            &[
                (Rule::MsiMessage, Kind::Violation),
                (Rule::MsiMultipleMessage, Kind::Note),
            ],
            &[],
        );
        assert_eq!(outcome(&c), Outcome::Fail);
        assert_eq!(detail(&c), "violation message [PCIe 6.0 7.7.1.3, 7.7.1.5]: seen; note mme [PCIe 6.0 7.7.1.2]: seen; held: layout; n/a: upper-address");
        let c = checked(&[Rule::MsiLayout], &[], &[Rule::MsiMaskPending]);
        assert_eq!(outcome(&c), Outcome::Skip);
        assert_eq!(
            detail(&c),
            "not checked mask-pending: why; held: layout; n/a: upper-address"
        );
        let c = checked(
            &[Rule::MsiLayout, Rule::MsiMessage],
            &[(Rule::MsiMultipleMessage, Kind::Note)],
            &[],
        );
        assert_eq!(outcome(&c), Outcome::Pass);
        assert_eq!(
            detail(&c),
            "note mme [PCIe 6.0 7.7.1.2]: seen; 2 held; n/a: upper-address"
        );
        assert_eq!(
            outcome(&checked(&[], &[], &[])),
            Outcome::Skip,
            "nothing checked is no pass"
        );
    }
}
