//! What every scenario is given: the [`Context`] (configuration access, enumeration, INTx routing, the
//! driven devices, the options and the CPU through the reporter), and the reporter itself ([`Run`]: the
//! `scenario`, `problem` and `capacity` records, the summary, the `end` record).

use crate::drivers::Active;
use crate::modes::route::Routing;
use crate::arch::exit::ExitCode;
use crate::bus::pci::config::PlatformConfig;
use crate::bus::pci::enumerate::{Enumeration, Function};
use crate::bus::pci::Bdf;
use crate::cmdline::{self, Options};
use crate::modes::route::Routed;
use crate::modes::IrqMode;
use crate::report::{self, wire, Outcome, Record, Summary};
use crate::scenarios::{Provoked, Verdict};
use alloc::string::String;
use alloc::vec::Vec;

/// What happened to one function's interrupts.
#[derive(Debug, Clone, Default)]
pub(crate) struct FunctionOutcome {
    pub(crate) driver: Option<&'static str>,
    pub(crate) mode: Option<IrqMode>,
    pub(crate) reason: Option<String>,
    pub(crate) route: Option<Routed>,
    pub(crate) vectors: heapless::Vec<u8, { crate::modes::MAX_VECTORS }>,
    /// The CPU each of `vectors` is on after setup (`None`: aimed at several).
    pub(crate) vector_cpus: heapless::Vec<Option<u32>, { crate::modes::MAX_VECTORS }>,
    pub(crate) interrupts: u64,
    /// INTx: re-deliveries of the function's level after a claim that the handler's hold absorbed.
    pub(crate) redeliveries: u64,
    pub(crate) problems: Vec<String>,
}

/// One outcome per enumerated function, in the same order.
pub(crate) static OUTCOMES: spin::Mutex<Vec<FunctionOutcome>> = spin::Mutex::new(Vec::new());

/// State of the run: counts, the CPU messages target, the command line.
pub(crate) struct Run {
    pub(crate) summary: Summary,
    pub(crate) apic_id: u32,
    pub(crate) opts: Options,
    /// The `capacity` scenario has failed (once per run; every limit met is a problem of its own).
    pub(crate) capacity_failed: bool,
    /// The optional scenarios (bits by index in [`cmdline::SCENARIOS`]) that gave a verdict.
    pub(crate) optional_done: u32,
}

pub(crate) fn problem(source: &str, args: core::fmt::Arguments) {
    crate::warn!("problem: {=str}", source);
    report::emit(&Record::Problem(wire::Problem { source: source.into(), detail: report::text(args) }));
}

/// A limit of msifw's own (its heap, the vectors of the one CPU it runs on) kept something from being
/// driven or checked: a `capacity` problem naming the limit and a failed `capacity` scenario, so the run
/// cannot pass. What the limit kept from running is skipped by its caller, not failed.
pub(crate) fn capacity(run: &mut Run, args: core::fmt::Arguments) {
    problem("capacity", args);
    if !core::mem::replace(&mut run.capacity_failed, true) {
        run.scenario("capacity", None, &Verdict::new(Outcome::Fail, format_args!("{args} (every limit met is a capacity problem)")));
    }
}

impl Run {
    pub(crate) fn scenario(&mut self, name: &str, bdf: Option<Bdf>, verdict: &Verdict) {
        self.scenario_record(name, bdf, verdict, false)
    }

    /// A negative control: the same scenario with the guard off; it passes when the failure was seen, and
    /// is a skip when it provoked nothing (decided in [`crate::scenarios::judge_control`] only).
    pub(crate) fn control(&mut self, name: &str, bdf: Option<Bdf>, verdict: &Verdict, provoked: Provoked, why_nothing: &str) {
        let verdict = crate::scenarios::judge_control(verdict.clone(), provoked, why_nothing);
        self.scenario_record(name, bdf, &verdict, true)
    }

    pub(crate) fn scenario_record(&mut self, name: &str, bdf: Option<Bdf>, verdict: &Verdict, control: bool) {
        if let Some(i) = cmdline::scenario_index(name, control) {
            self.optional_done |= 1 << i;
        }
        self.summary.add(verdict.outcome);
        report::emit(&Record::Scenario(wire::Scenario {
            name: name.into(),
            bdf: bdf.map(report::bdf),
            result: verdict.outcome,
            detail: verdict.detail.as_str().into(),
            control,
        }));
    }
}

pub(crate) fn finish(run: &Run) -> ExitCode {
    let s = run.summary;
    report::emit(&Record::End(wire::End { passed: s.passed, failed: s.failed, skipped: s.skipped }));
    crate::info!("done: {=u32} passed, {=u32} failed, {=u32} skipped", s.passed, s.failed, s.skipped);
    if s.failed == 0 {
        ExitCode::Passed
    } else {
        ExitCode::Failed
    }
}

pub(crate) fn push_problem(outcome: &mut FunctionOutcome, args: core::fmt::Arguments) {
    let mut s = String::new();
    let _ = core::fmt::Write::write_fmt(&mut s, args);
    outcome.problems.push(s);
}

/// What the scenarios ask of the runner before the platform is discovered.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Leave every function, IOAPIC entry and the 8259 as found until a scenario's [`super::Stage::Quiet`]
    /// step has looked (`crash-restart`'s control quiets after its trap window).
    pub delay_quiet: bool,
    /// This run is stage B of `crash-restart`: the platform was discovered once already.
    pub restarted: bool,
    pub(crate) restart: super::lifecycle::crash_restart::Restart,
}

impl Plan {
    /// The plan for a run with these options; `restarted`: the firmware was restarted in place.
    pub fn new(opts: &Options, restarted: bool) -> Plan {
        let restart = super::lifecycle::crash_restart::plan(opts, restarted);
        Plan { delay_quiet: restart.delays_quiet(), restarted: restart.stage_b.is_some(), restart }
    }
}

/// Everything a scenario's step is given.
pub(crate) struct Context<'a> {
    /// Configuration access.
    pub(crate) cfg: &'static PlatformConfig,
    /// Every function found.
    pub(crate) pci: &'a Enumeration,
    /// Where a function's INTx goes.
    pub(crate) routing: &'a Routing<'a>,
    /// The driven devices: live from setup to teardown, empty before and after.
    pub(crate) active: &'a mut Vec<Active>,
    /// The reporter, with the options and the APIC ID of the CPU messages target.
    pub(crate) run: &'a mut Run,
    /// What the scenarios planned before discovery.
    pub(crate) plan: Plan,
    /// The boot information's address, for a restart in place.
    pub(crate) start_info: u32,
    /// Quiets every function (MSI and MSI-X off, INTx disabled, Bus Master off for endpoints).
    pub(crate) quiet_all: fn(&PlatformConfig, &[Function]),
    /// State one scenario keeps between its steps.
    pub(crate) self_ipis: Option<super::self_ipi::SelfIpis>,
    pub(crate) storm_done: bool,
}

impl Context<'_> {
    /// The command line's options.
    pub(crate) fn opts(&self) -> &Options {
        &self.run.opts
    }
}
