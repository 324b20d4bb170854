//! Driven devices: which driver and mode each function gets, setting them all up (with Linux's fallbacks
//! when vectors run out), the checks run on each while all are live, and teardown.

use super::{problem, push_problem, FunctionOutcome, Run, OUTCOMES};
use crate::bus::pci::config::PlatformConfig;
use crate::bus::pci::enumerate::Enumeration;
use crate::bus::pci::Bdf;
use crate::drivers::{DriverKind, SetupError, Target};
use crate::modes::policy::{self, Offers};
use crate::modes::route;
use crate::modes::{quiesce, IrqMode};
use crate::report::Outcome;
use crate::scenarios::Verdict;
use alloc::string::String;
use alloc::vec::Vec;

pub(super) use crate::drivers::{Active, Device};
use crate::scenarios::device_checks::scenario_name;
pub(super) use crate::modes::route::Routing;

/// The live devices, as many as the platform has drivable functions (on the heap: drivers with their
/// queues are far too big for the stack).
pub(super) static ACTIVE: spin::Mutex<Vec<Active>> = spin::Mutex::new(Vec::new());

/// Sets up every function a driver takes, all at once, into `active`. Fills [`OUTCOMES`].
pub(super) fn set_up_all(run: &mut Run, cfg: &'static PlatformConfig, pci: &Enumeration, routing: &Routing, active: &mut Vec<Active>) {
    let mut outcomes = OUTCOMES.lock();
    outcomes.clear();
    // Functions left without INTx because the platform cannot route it at all.
    // (How many, the first few named in the report.)
    let (mut no_intx, mut no_intx_named): (usize, Vec<Bdf>) = (0, Vec::new());
    for (index, f) in pci.functions.iter().enumerate() {
        let mut outcome = FunctionOutcome::default();
        for p in f.problems.iter() {
            push_problem(&mut outcome, format_args!("{p}"));
        }
        let kind = DriverKind::find(cfg, f);
        if let (None, Some(m)) = (kind, run.opts.override_for(f.bdf)) {
            problem(
                "cmdline",
                format_args!("irq.{}={} names {} ({:04x}:{:04x}), which msifw does not drive; ignored", f.bdf, m.name(), f.bdf, f.vendor, f.device),
            );
        }
        if let Some(kind) = kind {
            outcome.driver = Some(kind.name());
            let (mut mode, reason) = policy::choose_mode(&run.opts, f.bdf, Offers::of(f));
            let automatic = run.opts.override_for(f.bdf).is_none();
            outcome.reason = reason;
            if mode == IrqMode::None {
                // `irq.BDF=none`, or no mode at all: not set up, left as quieting left it.
                outcomes.push(outcome);
                continue;
            }
            let target = Target { cfg, pci, routing, function: f, apic_id: run.apic_id };
            let started = crate::drivers::start_with_fallbacks(&target, kind, mode, automatic, outcome.reason.take());
            mode = started.mode;
            outcome.reason = started.reason;
            outcome.problems.extend(started.problems);
            match started.result {
                Ok(mut dev) => {
                    // Setup may itself have raised an interrupt (a port's enabling write is a hot-plug
                    // command); the driver acknowledged it, so a level-triggered line held by the
                    // handler is re-armed now.
                    for i in 0..dev.irq.vectors().len() {
                        dev.irq.rearm(i);
                    }
                    if let Some(us) = dev.dev.source_ref().late_message_us() {
                        dev.irq.set_msix_disable_settle_us(us);
                    }
                    if let Some(p) = dev.dev.takeover_problem() {
                        push_problem(&mut outcome, format_args!("{p}"));
                    }
                    outcome.mode = Some(mode);
                    outcome.route = dev.route;
                    outcome.vectors = dev.irq.vectors().iter().copied().collect();
                    outcome.vector_cpus = (0..dev.irq.vectors().len()).map(|i| dev.irq.target(i).map(|t| t.cpu as u32)).collect();
                    if let Some((got, wanted)) = dev.reduced {
                        let mut why = String::new();
                        let _ = core::fmt::Write::write_fmt(&mut why, format_args!("vectors exhausted: MSI-X with {got} of {wanted} vectors"));
                        outcome.reason = Some(why);
                    }
                    if let Some(fewer) = &dev.fewer {
                        outcome.reason = Some(fewer.clone());
                    }
                    if let Some((r, rule)) = dev.route.and_then(|r| r.disagreement.map(|rule| (r, rule))) {
                        let table = if r.source == route::RouteSource::MpTable { "the MP table" } else { "the DSDT" };
                        problem("routing", format_args!("{}: {table} routes to GSI {}, the chipset rule to GSI {rule}; using {table}", f.bdf, r.route.gsi));
                    }
                    active.push(Active { index, mode, ..dev });
                }
                Err(detail) if detail.is_capacity() => {
                    // msifw's own limit, not the device's fault: skipped, and the run fails on the problem.
                    let v = Verdict::new(Outcome::Skip, format_args!("not driven: {detail}"));
                    push_problem(&mut outcome, format_args!("{}", v.detail));
                    super::capacity(run, format_args!("{}: {detail}", f.bdf));
                    outcome.reason = Some(note(format_args!("not driven: {detail}")));
                    quiesce::function(cfg, f);
                    run.scenario(scenario_name(mode), Some(f.bdf), &v);
                }
                Err(SetupError::NoIntx) => {
                    // One cause for every such function: reported once, after the loop.
                    let mut why = String::new();
                    let _ = core::fmt::Write::write_fmt(
                        &mut why,
                        format_args!("{}{}INTx unavailable on this platform", outcome.reason.as_deref().unwrap_or(""), if outcome.reason.is_some() { "; " } else { "" }),
                    );
                    outcome.reason = Some(why);
                    no_intx += 1;
                    if no_intx_named.len() < 8 {
                        no_intx_named.push(f.bdf);
                    }
                }
                Err(detail) => {
                    // Asking for a mode the function does not have is a configuration mismatch (skip), and
                    // so is INTx no routing source covers (msifw cannot test it); a mode it has that does
                    // not work is a failure.
                    let unavailable = detail.is_unavailable(f);
                    let outcome_kind = if unavailable { Outcome::Skip } else { Outcome::Fail };
                    let reason = outcome.reason.clone();
                    let v = Verdict::new(
                        outcome_kind,
                        format_args!(
                            "{detail}{}{}{}",
                            if detail.unassigned_bar(f) { " (it has no address: no window of the platform fits it, see the pci.assign problem)" } else { "" },
                            if reason.is_some() { "; " } else { "" },
                            reason.as_deref().unwrap_or("")
                        ),
                    );
                    push_problem(&mut outcome, format_args!("{}", v.detail));
                    run.scenario(scenario_name(mode), Some(f.bdf), &v);
                    // Not driven means quiet: whatever setup turned on (Bus Master, a mode) is off again.
                    quiesce::function(cfg, f);
                    outcome.reason = Some(match &reason {
                        Some(r) if unavailable => note(format_args!("{r}; not driven")),
                        _ => note(format_args!("not driven: {detail}")),
                    });
                }
            }
        }
        outcomes.push(outcome);
    }
    if let (Some(why), 1..) = (routing.unavailable, no_intx) {
        let more = no_intx - no_intx_named.len();
        let v = Verdict::new(
            Outcome::Skip,
            format_args!(
                "INTx cannot be routed on this platform: {why}; {no_intx} function(s) left without INTx: {}{}",
                BdfList(&no_intx_named),
                if more > 0 { " and more" } else { "" }
            ),
        );
        run.scenario("intx-delivery", None, &v);
    }
}

/// BDFs separated by spaces.
struct BdfList<'a>(&'a [Bdf]);

impl core::fmt::Display for BdfList<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            write!(f, "{}{b}", if i > 0 { " " } else { "" })?;
        }
        Ok(())
    }
}

/// A report text (`irq_reason`).
fn note(args: core::fmt::Arguments) -> String {
    alloc::format!("{args}")
}

