//! [`SCENARIOS`]: every scenario with a body, in run order. The runner (`app`) calls [`run_stage`] at each
//! [`Stage`] of a run and knows nothing of the scenarios themselves. Names, when each runs, its control and
//! what it applies to come from `msifw_proto::names::Scenario`, which the host reads too.

use super::context::Context;
use super::lifecycle::{crash_restart, incremental, reenable, reset_restore, shutdown};
use super::retarget::{ioapic, msi, msix, offline};
use super::{concurrent, conformance, destinations, device_checks, hot_unplug, self_ipi, soak, storm, stuck, virtio, write_order, Outcome, Verdict};
use crate::cmdline;
use msifw_proto::names::{Scenario as Name, When};

/// Where in a run a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Every function quieted (unless the plan delays it), interrupts still off, nothing set up or traced.
    Quiet,
    /// Interrupts on and accesses traced; the devices are about to be set up.
    Armed,
    /// Every driven device set up, before the dispatch benchmark.
    SetUp,
    /// The devices live, after the benchmark.
    Live,
    /// The devices torn down.
    TornDown,
    /// Interrupts off and the trace stopped.
    Final,
}

/// A scenario's step: when, and what it does.
pub(crate) type Step = (Stage, fn(&mut Context<'_>));

/// One row of [`SCENARIOS`].
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Its name; when it runs, its control and what it applies to are the name's
    /// (`msifw_proto::names::Scenario::{when, control, applies_to}`).
    pub name: Name,
    /// Further names its body reports under (one check run for several modes).
    pub also: &'static [Name],
    /// Its body.
    pub(crate) steps: &'static [Step],
    /// Asked for, but nothing on the platform is what it runs on: the skip's reason.
    pub without: &'static str,
}

const NOTHING: &str = "nothing on this platform for it to run on";

/// Every scenario with a body, in run order.
pub static SCENARIOS: [Scenario; 23] = [
    Scenario { name: Name::CrashRestart, also: &[], steps: &[(Stage::Quiet, crash_restart::stage_b_step), (Stage::SetUp, crash_restart::stage_a)], without: NOTHING },
    // After crash-restart's stage B, which quiets what its control left live.
    Scenario { name: Name::MsixConformance, also: &[Name::MsiConformance, Name::IntxConformance], steps: &[(Stage::Quiet, conformance::step)], without: NOTHING },
    Scenario { name: Name::LapicSelfIpi, also: &[Name::UnownedVector], steps: &[(Stage::Armed, self_ipi::send), (Stage::SetUp, self_ipi::judge)], without: NOTHING },
    // Before the delivery checks, which stop the devices when nothing else uses them.
    Scenario { name: Name::VirtioNoVector, also: &[Name::MsixDisabled, Name::VirtioConfig], steps: &[(Stage::Live, virtio::step)], without: NOTHING },
    Scenario {
        name: Name::MsixDelivery,
        also: &[Name::MsiDelivery, Name::IntxDelivery, Name::MsixVectorMask, Name::MsiVectorMask, Name::MsixFunctionMask, Name::IntxHold],
        steps: &[(Stage::Live, device_checks::step)],
        without: NOTHING,
    },
    Scenario { name: Name::Soak, also: &[], steps: &[(Stage::Live, soak::step)], without: NOTHING },
    Scenario { name: Name::DestPhysical, also: &[], steps: &[(Stage::Live, destinations::physical)], without: DEST_WITHOUT },
    Scenario { name: Name::DestLogicalFlat, also: &[], steps: &[(Stage::Live, destinations::logical_flat)], without: DEST_WITHOUT },
    Scenario { name: Name::DestLogicalCluster, also: &[], steps: &[(Stage::Live, destinations::logical_cluster)], without: DEST_WITHOUT },
    Scenario { name: Name::DestLowestPriority, also: &[], steps: &[(Stage::Live, destinations::lowest_priority)], without: DEST_WITHOUT },
    Scenario {
        name: Name::IntxConcurrent,
        also: &[],
        steps: &[(Stage::Live, concurrent::step)],
        without: "no INTx line with two driven functions and two online CPUs to aim it at",
    },
    Scenario { name: Name::IntxStorm, also: &[], steps: &[(Stage::Live, storm::with_others), (Stage::TornDown, storm::alone)], without: "no edu function to assert an unclaimed INTx line" },
    Scenario { name: Name::HotUnplug, also: &[], steps: &[(Stage::Live, hot_unplug::step)], without: "no driven device below a hot-plug port" },
    Scenario { name: Name::StuckCommand, also: &[], steps: &[(Stage::Live, stuck::step)], without: "no nvme driven with MSI or MSI-X" },
    Scenario {
        name: Name::ResetRestore,
        also: &[],
        steps: &[(Stage::Live, reset_restore::step)],
        without: "no device driven with MSI-X to reset (it needs an nvme, or a device alone below a bridge, in MSI-X mode)",
    },
    Scenario { name: Name::Reenable, also: &[], steps: &[(Stage::Live, reenable::step)], without: REENABLE_WITHOUT },
    Scenario { name: Name::Incremental, also: &[], steps: &[(Stage::Live, incremental::step)], without: REENABLE_WITHOUT },
    // The retarget scenarios leave every device live (moved round the CPUs), before shutdown.
    Scenario { name: Name::RetargetMsix, also: &[], steps: &[(Stage::Live, msix::step)], without: "no device driven with MSI-X" },
    Scenario {
        name: Name::RetargetMsi,
        also: &[],
        steps: &[(Stage::Live, msi::step)],
        without: "no device driven with one MSI vector without per-vector masking (the edu has one)",
    },
    Scenario {
        name: Name::RetargetIoapic,
        also: &[],
        steps: &[(Stage::Live, ioapic::step)],
        without: "no device driven with INTx through an IOAPIC (try irq.BB:DD.F=intx on an edu)",
    },
    Scenario { name: Name::CpuOffline, also: &[], steps: &[(Stage::Live, offline::step)], without: NOTHING },
    // Shutdown leaves the devices shut down, so it comes last; its control needs a run of its own.
    Scenario { name: Name::Shutdown, also: &[], steps: &[(Stage::Live, shutdown::step)], without: "no driven device to shut down" },
    Scenario { name: Name::WriteOrder, also: &[], steps: &[(Stage::Final, write_order::step)], without: NOTHING },
];

const DEST_WITHOUT: &str = "no device driven with MSI-X or single-vector MSI to aim";

const REENABLE_WITHOUT: &str = "no nvme driven with MSI-X (the scenario re-enables an nvme's MSI-X with other vector counts)";

/// Verdicts the runner gives itself (the platform failed, a limit of msifw's own, the benchmark): no row.
pub const RUNNER_VERDICTS: [Name; 7] = [Name::Lapic, Name::Capacity, Name::PciRoots, Name::PciBuses, Name::PciConfig, Name::CpuStart, Name::DispatchBenchmark];

/// How many rows (or runner verdicts) report under `name`.
const fn rows_naming(name: Name) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < SCENARIOS.len() {
        if SCENARIOS[i].name as u8 == name as u8 {
            n += 1;
        }
        let mut j = 0;
        while j < SCENARIOS[i].also.len() {
            if SCENARIOS[i].also[j] as u8 == name as u8 {
                n += 1;
            }
            j += 1;
        }
        i += 1;
    }
    let mut k = 0;
    while k < RUNNER_VERDICTS.len() {
        if RUNNER_VERDICTS[k] as u8 == name as u8 {
            n += 1;
        }
        k += 1;
    }
    n
}

/// Whether `name` has a row of its own (not only reports through another's body).
const fn has_row(name: Name) -> bool {
    let mut i = 0;
    while i < SCENARIOS.len() {
        if SCENARIOS[i].name as u8 == name as u8 {
            return true;
        }
        i += 1;
    }
    false
}

// Checked when the firmware builds (a host test naming SCENARIOS would link every body into the test
// binary, hardware access included):
// - every scenario the protocol names has exactly one body here, or is one of the runner's own verdicts:
//   a new `msifw_proto::names::Scenario` without a row, or with two, does not build;
// - every optional one (a `scenario=` word) has a row of its own, whose `without` names what it needs;
// - the rows are in the protocol's order, which is run order.
const _: () = {
    let mut i = 0;
    while i < Name::ALL.len() {
        let name = Name::ALL[i];
        assert!(rows_naming(name) == 1, "a msifw_proto scenario has no row in scenarios::SCENARIOS (or more than one)");
        if matches!(name.when(), When::Asked | When::OwnBoot | When::ByName) {
            assert!(has_row(name), "an optional scenario reports only through another row");
        }
        i += 1;
    }
    let mut r = 0;
    while r < SCENARIOS.len() {
        assert!(!SCENARIOS[r].without.is_empty(), "a row does not say what it needs");
        assert!(r == 0 || (SCENARIOS[r - 1].name as u8) < (SCENARIOS[r].name as u8), "SCENARIOS is not in the protocol's run order");
        r += 1;
    }
};

/// Whether the row runs in this run: always, or when its command-line setting or `scenario=` asks.
fn selected(row: &Scenario, ctx: &Context<'_>) -> bool {
    match row.name.when() {
        When::Always | When::Setting | When::OnFailure => true,
        When::Asked | When::OwnBoot | When::ByName => cmdline::SCENARIOS.iter().any(|s| s.scenario == row.name && ctx.opts().wants(s.name)),
    }
}

/// Runs every selected row's steps for `stage`, in table order.
pub(crate) fn run_stage(ctx: &mut Context<'_>, stage: Stage) {
    for row in SCENARIOS.iter() {
        if !selected(row, ctx) {
            continue;
        }
        for (_, step) in row.steps.iter().filter(|(s, _)| *s == stage) {
            step(ctx);
        }
    }
}

/// An optional scenario asked for that found nothing to run on is a skip saying so, not silence.
pub(crate) fn report_unanswered(ctx: &mut Context<'_>) {
    for (i, sel) in cmdline::SCENARIOS.iter().enumerate() {
        if ctx.opts().wants(sel.name) && ctx.run.optional_done & (1 << i) == 0 {
            let without = SCENARIOS.iter().find(|row| row.name == sel.scenario).map_or(NOTHING, |row| row.without);
            let v = Verdict::new(Outcome::Skip, format_args!("{without}"));
            ctx.run.scenario_record(sel.scenario.name(), None, &v, sel.control);
        }
    }
}
