//! The report's record types, as the firmware sends them and the host decodes them (docs/protocol.md).
//!
//! Each record is one [`Record`] encoded with postcard (serde) and sent as one frame ([`crate::frame`]).
//! The firmware builds these types and the host decodes them, so a field renamed, added or retyped on one
//! side is a compile error on the other. Numbers travel as numbers (postcard varints), names that have a
//! fixed set of values as enums (one byte), free text as [`Text`]. The host turns them into its JSON
//! document (the same fields and spellings as the JSON records before protocol version 1).
//!
//! Postcard has no field names or tags on the wire: the order of the fields and of the enum variants *is*
//! the format. Change either only together with [`crate::frame::VERSION`].

use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

pub use crate::text::Text;

/// A PCI function's address, `BB:DD.F` in text (hex bus and device, as Linux prints it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Bdf {
    /// Bus number.
    pub bus: u8,
    /// Device, 0-31.
    pub dev: u8,
    /// Function, 0-7.
    pub func: u8,
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.dev, self.func)
    }
}

/// How the firmware drives a function's interrupts (`irq_mode`, `modes_offered`). Serde names (the
/// host's JSON document) are the report names; postcard sends the variant's index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IrqMode {
    /// MSI-X.
    Msix,
    /// MSI.
    Msi,
    /// Legacy INTx through the I/O APIC.
    Intx,
    /// No interrupt set up.
    None,
}

impl IrqMode {
    /// The name in the report.
    pub fn name(self) -> &'static str {
        match self {
            IrqMode::Msix => "msix",
            IrqMode::Msi => "msi",
            IrqMode::Intx => "intx",
            IrqMode::None => "none",
        }
    }

    /// The same as [`IrqMode::name`].
    pub fn as_str(self) -> &'static str {
        self.name()
    }
}

impl fmt::Display for IrqMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scenario's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Passed.
    Pass,
    /// Failed.
    Fail,
    /// Not run, with the reason in the detail.
    Skip,
    /// Failed, as a known deviation of the platform says it does (host only: the host's judgement of a
    /// `Fail` after its known-deviations table, `host/src/deviations.rs`; the firmware never sends it).
    Xfail,
    /// Passed where a known deviation of the platform says it fails (host only, like [`Outcome::Xfail`]).
    Xpass,
}

impl Outcome {
    /// The name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Skip => "skip",
            Outcome::Xfail => "xfail",
            Outcome::Xpass => "xpass",
        }
    }

    /// Upper case, for the verdict line a person reads on COM1 and for tables.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Skip => "SKIP",
            Outcome::Xfail => "XFAIL",
            Outcome::Xpass => "XPASS",
        }
    }

    /// The result the firmware reported: `Fail` for an expected failure, `Pass` for an unexpected pass.
    pub fn as_reported(self) -> Outcome {
        match self {
            Outcome::Xfail => Outcome::Fail,
            Outcome::Xpass => Outcome::Pass,
            o => o,
        }
    }
}

/// How configuration space is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigAccess {
    /// Memory-mapped (ECAM) at the given base.
    Ecam(u64),
    /// I/O ports 0xCF8/0xCFC.
    Port,
}

/// Who gave the BARs their addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BarAssignment<'a> {
    /// Every BAR had an address and every bridge its buses: msifw changed none.
    BootFirmware,
    /// msifw assigned what the boot firmware left undone, from windows of this source (`acpi-crs`,
    /// `memory-map`).
    Msifw(Text<'a>),
}

/// The `platform` record: sent once bus numbers and BARs are final; a second one before `end` means the
/// firmware restarted in place (`crash-restart`'s stage B).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform<'a> {
    /// APIC id of the CPU that ran the firmware.
    pub apic_id: u32,
    /// The local APIC runs in x2APIC mode.
    pub x2apic: bool,
    /// How configuration space is reached.
    pub config_access: ConfigAccess,
    /// I/O APICs found.
    pub ioapics: u32,
    /// The command line as the firmware saw it.
    pub cmdline: Text<'a>,
    /// How the firmware was entered: `pvh` or `multiboot2`.
    pub boot: Text<'a>,
    /// The boot loader's name, if it gave one (Multiboot2).
    pub loader: Option<Text<'a>>,
    /// Who assigned the BARs.
    pub bar_assignment: BarAssignment<'a>,
    /// How the device models' timers are fenced: `hpet`, `lapic-timer` or `wait`.
    pub timer_fence: Text<'a>,
    /// Where INTx routing comes from: `acpi-prt`, `mp-table`, `chipset` or `none`.
    pub intx_routing: Text<'a>,
    /// Why configuration space is reached the way it is.
    pub config_reason: Text<'a>,
    /// Where the root buses came from: `acpi` or `default`.
    pub root_source: Text<'a>,
    /// The root buses, as `first-last NAME, ...`.
    pub root_buses: Text<'a>,
    /// The CPUs: every enabled processor of the MADT, in index order (index 0 is the CPU that ran the
    /// firmware). Empty when the firmware could not list them (no MADT): the topology is unknown.
    pub cpus: Vec<Cpu<'a>>,
}

/// One CPU of the `platform` record's list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu<'a> {
    /// msifw's index of the CPU (0 = the one that ran the firmware).
    pub index: u32,
    /// Its local APIC ID (x2APIC ID for an x2APIC entry).
    pub apic_id: u32,
    /// Its ACPI processor UID.
    pub acpi_uid: u32,
    /// The logical APIC ID msifw set in xAPIC mode (or read in x2APIC mode); 0 when none was set.
    pub logical_id: u32,
    /// Its state.
    pub state: CpuState<'a>,
}

/// What became of a CPU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CpuState<'a> {
    /// Running msifw's code and taking interrupts.
    Online,
    /// Not taking interrupts (never started, or taken offline).
    Offline,
    /// Did not come up; why.
    Failed(Text<'a>),
}

impl CpuState<'_> {
    /// The name in the report: `online`, `offline`, `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            CpuState::Online => "online",
            CpuState::Offline => "offline",
            CpuState::Failed(_) => "failed",
        }
    }
}

/// Kind of a BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BarKind {
    /// 32-bit memory.
    Mem32,
    /// 64-bit memory (two BAR slots; `index` is the lower).
    Mem64,
    /// I/O ports.
    Io,
}

impl BarKind {
    /// The name in the report.
    pub fn name(self) -> &'static str {
        match self {
            BarKind::Mem32 => "mem32",
            BarKind::Mem64 => "mem64",
            BarKind::Io => "io",
        }
    }

    /// Short name for tables: `m32`, `m64`, `io`.
    pub fn short(self) -> &'static str {
        match self {
            BarKind::Mem32 => "m32",
            BarKind::Mem64 => "m64",
            BarKind::Io => "io",
        }
    }
}

/// One implemented BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bar {
    /// BAR index, 0-5.
    pub index: u8,
    /// Kind.
    pub kind: BarKind,
    /// Prefetchable memory.
    pub prefetchable: bool,
    /// Assigned address.
    pub address: u64,
    /// Size in bytes.
    pub size: u64,
}

/// One capability in the function's list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capability<'a> {
    /// Capability id.
    pub id: u16,
    /// Its name (`pm`, `msi`, `msix`, `pcie`, ...).
    pub name: Text<'a>,
    /// Offset in configuration space.
    pub offset: u16,
    /// A PCIe extended capability.
    pub extended: bool,
}

/// INTx trigger mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trigger {
    /// Edge.
    Edge,
    /// Level.
    Level,
}

impl Trigger {
    /// The name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Edge => "edge",
            Trigger::Level => "level",
        }
    }
}

/// INTx polarity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Polarity {
    /// Active high.
    High,
    /// Active low.
    Low,
}

impl Polarity {
    /// The name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Polarity::High => "high",
            Polarity::Low => "low",
        }
    }
}

/// Where a function's INTx goes (INTx functions only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntxRoute<'a> {
    /// The GSI.
    pub gsi: u32,
    /// Trigger mode.
    pub trigger: Trigger,
    /// Polarity.
    pub polarity: Polarity,
    /// Where the route came from: `dsdt`, `mp-table`, `chipset`, `piix-pirq`.
    pub source: Text<'a>,
}

/// What the function is left able to do, read back when the firmware is done with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalState {
    /// The Command register.
    pub command: u16,
    /// Command.Bus Master.
    pub bus_master: bool,
    /// Command.Interrupt Disable.
    pub intx_disabled: bool,
    /// MSI Enable, if the function has MSI.
    pub msi_enabled: Option<bool>,
    /// MSI-X Enable, if the function has MSI-X.
    pub msix_enabled: Option<bool>,
}

/// The `function` record: one PCI function as the firmware found and drove it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Function<'a> {
    /// Its address.
    pub bdf: Bdf,
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
    /// Class, subclass and prog-if (24 bits).
    pub class: u32,
    /// Header type byte.
    pub header_type: u8,
    /// Implemented BARs.
    pub bars: Vec<Bar>,
    /// Capabilities.
    pub capabilities: Vec<Capability<'a>>,
    /// Interrupt mode in use.
    pub irq_mode: IrqMode,
    /// Modes the function offers (MSI-X, MSI, INTx, in that order).
    pub modes_offered: Vec<IrqMode>,
    /// Why the mode in use is not the best offered, if it is not.
    pub irq_reason: Option<Text<'a>>,
    /// INTx: the route.
    pub intx: Option<IntxRoute<'a>>,
    /// IDT vectors assigned.
    pub vectors: Vec<u8>,
    /// Interrupts received.
    pub interrupts: u64,
    /// INTx deliveries after a claim that the handler's hold absorbed.
    pub intx_redeliveries: u64,
    /// The driver that ran on it.
    pub driver: Option<Text<'a>>,
    /// Problems found with it.
    pub problems: Vec<Text<'a>>,
    /// Read back when the firmware was done with it.
    pub final_state: FinalState,
    /// The CPU (index) each of `vectors` is on, in the same order, as set up; `None` for a source aimed
    /// at several CPUs at once. Version 2; last, so that a version 1 record is this one without it.
    pub vector_cpus: Vec<Option<u32>>,
}

/// The `scenario` record: one verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario<'a> {
    /// Scenario name.
    pub name: Text<'a>,
    /// The function it ran on, or `None` for a platform-wide check.
    pub bdf: Option<Bdf>,
    /// Its result.
    pub result: Outcome,
    /// What happened.
    pub detail: Text<'a>,
    /// A negative control (the same check with its guard off).
    pub control: bool,
}

/// The `problem` record: bad input that was reported and not trusted, or a limit met.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem<'a> {
    /// Where it came from (`acpi.mcfg`, `pci`, `cmdline`, `capacity`, ...).
    pub source: Text<'a>,
    /// What is wrong.
    pub detail: Text<'a>,
}

/// The `end` record: the firmware's own counts, the last record of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    /// Scenarios passed.
    pub passed: u32,
    /// Scenarios failed.
    pub failed: u32,
    /// Scenarios skipped.
    pub skipped: u32,
}

/// The `phase` record (`bench`): how long a phase took.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase<'a> {
    /// `platform`, `enumeration`, `quiet`, `setup`, `checks` or `report`.
    pub name: Text<'a>,
    /// Microseconds.
    pub us: u64,
}

/// The `accesses` record (`bench`): accesses of one function in one phase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accesses<'a> {
    /// The function, or a probed slot that held none.
    pub bdf: Bdf,
    /// A function answered there.
    pub present: bool,
    /// `enumeration` or `setup`.
    pub phase: Text<'a>,
    /// Configuration reads.
    pub config_reads: u64,
    /// Configuration writes.
    pub config_writes: u64,
    /// MMIO reads.
    pub mmio_reads: u64,
    /// MMIO writes.
    pub mmio_writes: u64,
}

/// The `dispatch` record (`dispatch=N`): one source through one interrupt path, in TSC ticks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispatch<'a> {
    /// `self-ipi`, `msix`, `msi` or `intx`.
    pub source: Text<'a>,
    /// The device, or `None` for the self IPI.
    pub bdf: Option<Bdf>,
    /// First vector used.
    pub vector: u8,
    /// `handler` or `minimal`.
    pub path: Text<'a>,
    /// Interrupts measured.
    pub n: u64,
    /// Of them, those that went through the dispatcher.
    pub dispatched: u64,
    /// Of those, the ones handled on the entry's fast path.
    pub fast: u64,
    /// Trigger to entry: minimum.
    pub entry_min: u64,
    /// ... median.
    pub entry_median: u64,
    /// ... 99th percentile.
    pub entry_p99: u64,
    /// Entry to return: minimum.
    pub path_min: u64,
    /// ... median.
    pub path_median: u64,
    /// ... 99th percentile.
    pub path_p99: u64,
    /// TSC ticks per microsecond.
    pub tsc_per_us: u64,
}

/// One report record. The variant order is the wire's tag (0 = platform, ...).
// A `function` record is much larger than the others; records are built, sent and dropped one at a time.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record<'a> {
    /// `platform`
    Platform(Platform<'a>),
    /// `function`
    Function(Function<'a>),
    /// `scenario`
    Scenario(Scenario<'a>),
    /// `problem`
    Problem(Problem<'a>),
    /// `end`
    End(End),
    /// `phase` (bench)
    Phase(Phase<'a>),
    /// `accesses` (bench)
    Accesses(Accesses<'a>),
    /// `dispatch` (bench)
    Dispatch(Dispatch<'a>),
}

impl Record<'_> {
    /// The record's kind as the report names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Platform(_) => "platform",
            Record::Function(_) => "function",
            Record::Scenario(_) => "scenario",
            Record::Problem(_) => "problem",
            Record::End(_) => "end",
            Record::Phase(_) => "phase",
            Record::Accesses(_) => "accesses",
            Record::Dispatch(_) => "dispatch",
        }
    }
}
