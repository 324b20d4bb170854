//! Names shared by firmware and host: scenarios (and which need a boot of their own), interrupt modes,
//! outcomes.
//!
//! Scenarios: every name a `scenario` record can carry is a [`Scenario`], with when it runs
//! ([`Scenario::when`]), how its negative control runs ([`Scenario::control`]) and what it applies to
//! ([`Scenario::applies_to`]). The words `scenario=` accepts on the firmware's command line are
//! [`SELECTABLE`]; the host boots each [`When::OwnBoot`] one on its own for `scenario=all` ([`OWN_BOOT`]).
//! The firmware's `scenarios::SCENARIOS` table gives each of them its body, and fails to build when one
//! has none.

/// Every scenario a report can name, in the order a run reaches them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Scenario {
    /// The local APIC could not be used: the run stops.
    Lapic,
    /// A limit of msifw's own kept something from being driven or checked.
    Capacity,
    /// Host bridges whose functions msifw cannot reach.
    PciRoots,
    /// Bridges leading to a bus that was not enumerated.
    PciBuses,
    /// No configuration mechanism answered.
    PciConfig,
    /// A CPU the MADT lists as enabled did not start (the run goes on with the others).
    CpuStart,
    /// Crash restart with live devices (seed 003).
    CrashRestart,
    /// A function's MSI-X capability, table and PBA held against the spec while it is quiet.
    MsixConformance,
    /// A function's MSI capability held against the spec while it is quiet.
    MsiConformance,
    /// A function's INTx registers (Interrupt Pin, Line, Disable) held against the spec.
    IntxConformance,
    /// A self IPI arrives exactly once.
    LapicSelfIpi,
    /// An interrupt on a freed vector is counted as unowned.
    UnownedVector,
    /// A virtio queue left at NO_VECTOR completes a request without any interrupt (Cloud Hypervisor #2397).
    VirtioNoVector,
    /// With MSI-X disabled (and INTx disabled) a virtio request completes and nothing arrives (Cloud
    /// Hypervisor #162).
    MsixDisabled,
    /// A virtio device's configuration vector delivers its DEVICE_NEEDS_RESET notification exactly once.
    VirtioConfig,
    /// Exact delivery counts through MSI-X.
    MsixDelivery,
    /// Exact delivery counts through MSI.
    MsiDelivery,
    /// Exact delivery counts through INTx.
    IntxDelivery,
    /// The MSI-X per-vector mask holds an interrupt pending.
    MsixVectorMask,
    /// The MSI per-vector mask holds an interrupt pending.
    MsiVectorMask,
    /// The MSI-X function mask holds an interrupt pending.
    MsixFunctionMask,
    /// An INTx raised again before the driver re-arms is held, not stormed.
    IntxHold,
    /// The interrupt-dispatch benchmark (`dispatch=N`).
    DispatchBenchmark,
    /// Interrupts driven across every live device (`soak=N`).
    Soak,
    /// A device's message aimed at each CPU by physical APIC ID arrives there exactly once, nowhere else.
    DestPhysical,
    /// Logical flat destinations (xAPIC): one CPU's bit, and every CPU's bits at once.
    DestLogicalFlat,
    /// Logical cluster destinations (x2APIC).
    DestLogicalCluster,
    /// Lowest-priority delivery to a set of CPUs.
    DestLowestPriority,
    /// Two CPUs taking interrupts of one shared INTx line at the same instant.
    IntxConcurrent,
    /// An unclaimed INTx line is masked by the storm guard.
    IntxStorm,
    /// Hot removal while interrupts are live.
    HotUnplug,
    /// An NVMe command that never completes.
    StuckCommand,
    /// A reset wipes the MSI-X table (seed 001).
    ResetRestore,
    /// MSI-X re-enabled with another vector count (seed 002).
    Reenable,
    /// MSI-X vectors enabled one at a time (seed 004).
    Incremental,
    /// MSI-X entries moved round the CPUs (mask, rewrite, unmask) while the device raises interrupts.
    RetargetMsix,
    /// MSI without per-vector masking moved with Linux's two-step, the interim interrupt found in the IRR.
    RetargetMsi,
    /// A live level-triggered IOAPIC line moved between CPUs (mask, rewrite, unmask).
    RetargetIoapic,
    /// A CPU taken offline after every vector aimed at it was moved away (Linux's fixup_irqs).
    CpuOffline,
    /// Shutdown leaves nothing able to interrupt (seed 000).
    Shutdown,
    /// Every access held against the programming rules.
    WriteOrder,
}

/// When a scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// In every run.
    Always,
    /// When its command-line setting asks (`soak=N`, `dispatch=N`).
    Setting,
    /// When `scenario=` names it, or `scenario=all`.
    Asked,
    /// When `scenario=` names it; it needs a boot of its own (it restarts the firmware or leaves the
    /// devices shut down), which the host gives it for `scenario=all`.
    OwnBoot,
    /// Only when `scenario=` names it: it needs the host to act (`hot-unplug` with the launcher's
    /// `--unplug ID`), so `scenario=all` leaves it out.
    ByName,
    /// A verdict of the run itself, reported only when the run meets that failure.
    OnFailure,
}

/// How a scenario's negative control (the same scenario with the guard off) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// It has none.
    None,
    /// Right after the scenario, in the same run.
    SameRun,
    /// Asked for on its own as `NAME-control`, in a boot of its own.
    OwnBoot,
}

impl Scenario {
    /// Every scenario, in declaration order.
    pub const ALL: [Scenario; 41] = [
        Scenario::Lapic,
        Scenario::Capacity,
        Scenario::PciRoots,
        Scenario::PciBuses,
        Scenario::PciConfig,
        Scenario::CpuStart,
        Scenario::CrashRestart,
        Scenario::MsixConformance,
        Scenario::MsiConformance,
        Scenario::IntxConformance,
        Scenario::LapicSelfIpi,
        Scenario::UnownedVector,
        Scenario::VirtioNoVector,
        Scenario::MsixDisabled,
        Scenario::VirtioConfig,
        Scenario::MsixDelivery,
        Scenario::MsiDelivery,
        Scenario::IntxDelivery,
        Scenario::MsixVectorMask,
        Scenario::MsiVectorMask,
        Scenario::MsixFunctionMask,
        Scenario::IntxHold,
        Scenario::DispatchBenchmark,
        Scenario::Soak,
        Scenario::DestPhysical,
        Scenario::DestLogicalFlat,
        Scenario::DestLogicalCluster,
        Scenario::DestLowestPriority,
        Scenario::IntxConcurrent,
        Scenario::IntxStorm,
        Scenario::HotUnplug,
        Scenario::StuckCommand,
        Scenario::ResetRestore,
        Scenario::Reenable,
        Scenario::Incremental,
        Scenario::RetargetMsix,
        Scenario::RetargetMsi,
        Scenario::RetargetIoapic,
        Scenario::CpuOffline,
        Scenario::Shutdown,
        Scenario::WriteOrder,
    ];

    /// The name on the report and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Scenario::Lapic => "lapic",
            Scenario::Capacity => "capacity",
            Scenario::PciRoots => "pci-roots",
            Scenario::PciBuses => "pci-buses",
            Scenario::PciConfig => "pci-config",
            Scenario::CpuStart => "cpu-start",
            Scenario::CrashRestart => "crash-restart",
            Scenario::MsixConformance => "msix-conformance",
            Scenario::MsiConformance => "msi-conformance",
            Scenario::IntxConformance => "intx-conformance",
            Scenario::LapicSelfIpi => "lapic-self-ipi",
            Scenario::UnownedVector => "unowned-vector",
            Scenario::MsixDelivery => "msix-delivery",
            Scenario::MsiDelivery => "msi-delivery",
            Scenario::IntxDelivery => "intx-delivery",
            Scenario::MsixVectorMask => "msix-vector-mask",
            Scenario::MsiVectorMask => "msi-vector-mask",
            Scenario::MsixFunctionMask => "msix-function-mask",
            Scenario::IntxHold => "intx-hold",
            Scenario::DispatchBenchmark => "dispatch-benchmark",
            Scenario::Soak => "soak",
            Scenario::DestPhysical => "dest-physical",
            Scenario::DestLogicalFlat => "dest-logical-flat",
            Scenario::DestLogicalCluster => "dest-logical-cluster",
            Scenario::DestLowestPriority => "dest-lowest-priority",
            Scenario::IntxConcurrent => "intx-concurrent",
            Scenario::IntxStorm => "intx-storm",
            Scenario::HotUnplug => "hot-unplug",
            Scenario::StuckCommand => "stuck-command",
            Scenario::ResetRestore => "reset-restore",
            Scenario::Reenable => "reenable",
            Scenario::Incremental => "incremental",
            Scenario::RetargetMsix => "retarget-msix",
            Scenario::RetargetMsi => "retarget-msi",
            Scenario::RetargetIoapic => "retarget-ioapic",
            Scenario::CpuOffline => "cpu-offline",
            Scenario::VirtioNoVector => "virtio-no-vector",
            Scenario::MsixDisabled => "msix-disabled",
            Scenario::VirtioConfig => "virtio-config",
            Scenario::Shutdown => "shutdown",
            Scenario::WriteOrder => "write-order",
        }
    }

    /// The scenario named `name`.
    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    /// When it runs.
    pub const fn when(self) -> When {
        match self {
            Scenario::Lapic
            | Scenario::Capacity
            | Scenario::PciRoots
            | Scenario::PciBuses
            | Scenario::PciConfig
            | Scenario::CpuStart => When::OnFailure,
            Scenario::MsixConformance
            | Scenario::MsiConformance
            | Scenario::IntxConformance
            | Scenario::LapicSelfIpi
            | Scenario::UnownedVector
            | Scenario::MsixDelivery
            | Scenario::MsiDelivery
            | Scenario::IntxDelivery
            | Scenario::MsixVectorMask
            | Scenario::MsiVectorMask
            | Scenario::MsixFunctionMask
            | Scenario::IntxHold
            | Scenario::VirtioNoVector
            | Scenario::MsixDisabled
            | Scenario::VirtioConfig
            | Scenario::WriteOrder => When::Always,
            Scenario::DispatchBenchmark | Scenario::Soak => When::Setting,
            Scenario::IntxStorm
            | Scenario::DestPhysical
            | Scenario::DestLogicalFlat
            | Scenario::DestLogicalCluster
            | Scenario::DestLowestPriority
            | Scenario::IntxConcurrent
            | Scenario::StuckCommand
            | Scenario::ResetRestore
            | Scenario::Reenable
            | Scenario::Incremental
            | Scenario::RetargetMsix
            | Scenario::RetargetMsi
            | Scenario::RetargetIoapic
            | Scenario::CpuOffline
            | Scenario::Shutdown => When::Asked,
            Scenario::CrashRestart => When::OwnBoot,
            Scenario::HotUnplug => When::ByName,
        }
    }

    /// How its negative control runs.
    pub const fn control(self) -> Control {
        match self {
            Scenario::ResetRestore
            | Scenario::Reenable
            | Scenario::Incremental
            | Scenario::IntxConcurrent
            | Scenario::RetargetMsix
            | Scenario::RetargetMsi
            | Scenario::RetargetIoapic
            | Scenario::CpuOffline => Control::SameRun,
            // Both leave the devices shut down or restart the firmware; the settle control
            // (`msix-delivery-control`) takes one device's delivery check for itself.
            Scenario::Shutdown | Scenario::CrashRestart | Scenario::MsixDelivery => Control::OwnBoot,
            _ => Control::None,
        }
    }

    /// What it runs on, for listings (`--list`) and documentation.
    pub const fn applies_to(self) -> &'static str {
        match self {
            Scenario::Lapic | Scenario::Capacity => "the run",
            Scenario::PciRoots => "host bridges",
            Scenario::PciBuses => "bridges",
            Scenario::PciConfig => "configuration access",
            Scenario::CpuStart => "every CPU the MADT lists as enabled",
            Scenario::CrashRestart => "every function, across a restart in place",
            Scenario::MsixConformance => "every function with MSI-X, driven or not",
            Scenario::MsiConformance => "every function with MSI, driven or not",
            Scenario::IntxConformance => "every function",
            Scenario::LapicSelfIpi | Scenario::UnownedVector => "the CPU",
            Scenario::MsixDelivery | Scenario::MsixVectorMask | Scenario::MsixFunctionMask => {
                "each device driven with MSI-X"
            }
            Scenario::MsiDelivery => "each device driven with MSI",
            Scenario::MsiVectorMask => "each device driven with maskable MSI",
            Scenario::IntxDelivery => "each device driven with INTx",
            Scenario::IntxHold => "each INTx device whose driver names its acknowledge write",
            Scenario::DispatchBenchmark | Scenario::Soak => "every live device",
            Scenario::IntxStorm => "an edu function",
            Scenario::DestPhysical
            | Scenario::DestLogicalFlat
            | Scenario::DestLogicalCluster
            | Scenario::DestLowestPriority => "a device driven with MSI-X or MSI, and every online CPU",
            Scenario::IntxConcurrent => "two INTx functions sharing a line, and two online CPUs",
            Scenario::HotUnplug => "driven devices below a hot-plug port",
            Scenario::StuckCommand => "nvme driven with MSI or MSI-X",
            Scenario::ResetRestore => "devices driven with MSI-X that can be reset alone",
            Scenario::Reenable | Scenario::Incremental => "nvme driven with MSI-X",
            Scenario::RetargetMsix => "each device driven with MSI-X, on two or more online CPUs",
            Scenario::RetargetMsi => {
                "each device driven with one MSI vector without per-vector masking (edu), on two or more online CPUs"
            }
            Scenario::RetargetIoapic => "each device driven with INTx through an IOAPIC, on two or more online CPUs",
            Scenario::CpuOffline => "an application processor and every device with a vector aimed at it",
            Scenario::VirtioNoVector => "virtio queues left at NO_VECTOR with MSI-X enabled",
            Scenario::MsixDisabled => "virtio-modern devices driven with MSI-X",
            Scenario::VirtioConfig => "virtio-modern devices driven with MSI-X with a configuration vector",
            Scenario::Shutdown => "every driven device",
            Scenario::WriteOrder => "each function owned or written",
        }
    }
}

/// A word `scenario=` accepts: a scenario, or the control of one whose control runs in a boot of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    /// The scenario.
    pub scenario: Scenario,
    /// Only its negative control (`NAME-control`).
    pub control: bool,
    /// The word.
    pub name: &'static str,
}

impl Selection {
    const fn of(scenario: Scenario) -> Selection {
        Selection {
            scenario,
            control: false,
            name: scenario.name(),
        }
    }

    const fn control_of(scenario: Scenario, name: &'static str) -> Selection {
        Selection {
            scenario,
            control: true,
            name,
        }
    }

    /// When it runs: a control asked for on its own needs a boot of its own.
    pub const fn when(&self) -> When {
        if self.control {
            When::OwnBoot
        } else {
            self.scenario.when()
        }
    }

    /// Whether `scenario=all` runs it in the same boot.
    pub const fn in_all(&self) -> bool {
        matches!(self.when(), When::Asked)
    }
}

/// The words `scenario=` accepts (besides `all`), in the order unanswered ones are reported.
pub const SELECTABLE: [Selection; 20] = [
    Selection::of(Scenario::DestPhysical),
    Selection::of(Scenario::DestLogicalFlat),
    Selection::of(Scenario::DestLogicalCluster),
    Selection::of(Scenario::DestLowestPriority),
    Selection::of(Scenario::IntxConcurrent),
    Selection::of(Scenario::IntxStorm),
    Selection::of(Scenario::ResetRestore),
    Selection::of(Scenario::Reenable),
    Selection::of(Scenario::Incremental),
    Selection::of(Scenario::Shutdown),
    Selection::control_of(Scenario::Shutdown, "shutdown-control"),
    Selection::of(Scenario::CrashRestart),
    Selection::control_of(Scenario::CrashRestart, "crash-restart-control"),
    Selection::of(Scenario::StuckCommand),
    Selection::of(Scenario::HotUnplug),
    Selection::of(Scenario::RetargetMsix),
    Selection::of(Scenario::RetargetMsi),
    Selection::of(Scenario::RetargetIoapic),
    Selection::of(Scenario::CpuOffline),
    // The settle windows' control (the delivery and mask checks keep one after the last expected interrupt):
    // a late timer message on an MSI-X device's vector must fail that device's delivery check.
    Selection::control_of(Scenario::MsixDelivery, "msix-delivery-control"),
];

/// The selection named `word`, with its index in [`SELECTABLE`].
pub fn selection(word: &str) -> Option<(usize, Selection)> {
    SELECTABLE
        .iter()
        .copied()
        .enumerate()
        .find(|(_, s)| s.name == word)
}

const fn own_boot_count() -> usize {
    let (mut n, mut i) = (0, 0);
    while i < SELECTABLE.len() {
        if matches!(SELECTABLE[i].when(), When::OwnBoot) {
            n += 1;
        }
        i += 1;
    }
    n
}

/// The selections that need a boot of their own, in the order the host boots them for `scenario=all`:
/// run order (the scenario before its control).
pub const OWN_BOOT: [&str; own_boot_count()] = {
    let mut out = [""; own_boot_count()];
    let mut n = 0;
    let mut s = 0;
    while s < Scenario::ALL.len() {
        let mut control = 0;
        while control < 2 {
            let mut i = 0;
            while i < SELECTABLE.len() {
                let sel = SELECTABLE[i];
                if sel.scenario as u8 == Scenario::ALL[s] as u8
                    && sel.control == (control == 1)
                    && matches!(sel.when(), When::OwnBoot)
                {
                    out[n] = sel.name;
                    n += 1;
                }
                i += 1;
            }
            control += 1;
        }
        s += 1;
    }
    out
};

/// The firmware's phases, in order, as its `phase` records name them (`bench` on its command line):
/// together they cover its time from its first instruction to its last report record (the bench's
/// `firmware_ms`).
pub const FIRMWARE_PHASES: [&str; 6] = ["platform", "enumeration", "quiet", "setup", "checks", "report"];

/// The start of the one `phase` record that is not a phase: `command-writes N`, N writes to Command
/// registers during enumeration and setup, its time the part of theirs those writes took.
pub const COMMAND_WRITES: &str = "command-writes ";

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn names_are_unique_and_round_trip() {
        for (i, s) in Scenario::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i, "ALL is in declaration order");
            assert_eq!(Scenario::from_name(s.name()), Some(*s));
        }
        assert_eq!(Scenario::from_name("nope"), None);
    }

    #[test]
    fn every_optional_scenario_and_own_boot_control_is_selectable_once() {
        for s in Scenario::ALL {
            let plain = SELECTABLE
                .iter()
                .filter(|x| x.scenario == s && !x.control)
                .count();
            let optional = matches!(s.when(), When::Asked | When::OwnBoot | When::ByName);
            assert_eq!(plain, optional as usize, "{s:?}");
            let control = SELECTABLE
                .iter()
                .filter(|x| x.scenario == s && x.control)
                .count();
            assert_eq!(control, (s.control() == Control::OwnBoot) as usize, "{s:?}");
        }
        for x in SELECTABLE.iter().filter(|x| x.control) {
            assert_eq!(x.name.strip_suffix("-control"), Some(x.scenario.name()));
        }
        assert_eq!(selection("shutdown-control").map(|(i, _)| i), Some(10));
        assert_eq!(selection("all"), None);
    }

    #[test]
    fn own_boot_runs_in_the_hosts_order() {
        assert_eq!(
            OWN_BOOT,
            ["crash-restart", "crash-restart-control", "msix-delivery-control", "shutdown-control"]
        );
        let in_all: Vec<_> = SELECTABLE
            .iter()
            .filter(|s| s.in_all())
            .map(|s| s.name)
            .collect();
        assert_eq!(
            in_all,
            [
                "dest-physical",
                "dest-logical-flat",
                "dest-logical-cluster",
                "dest-lowest-priority",
                "intx-concurrent",
                "intx-storm",
                "reset-restore",
                "reenable",
                "incremental",
                "shutdown",
                "stuck-command",
                "retarget-msix",
                "retarget-msi",
                "retarget-ioapic",
                "cpu-offline"
            ]
        );
    }
}
