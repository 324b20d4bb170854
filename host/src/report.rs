//! The firmware's report (docs/protocol.md): frames on COM1 that hold the record types of `msifw-proto`
//! ([`msifw_proto::frame`]), turned into the typed records of this module, collected into a [`Report`],
//! checked for consistency and rendered as tables. The types here are the host's JSON document (`--json`),
//! the same fields and spellings as before the frames; [`Record::from_wire`] is the one place a wire
//! record becomes one of them, so a field renamed in `msifw-proto` does not compile here.
//!
//! Captures of firmwares before the frames (protocol version 0: `msifw-report {json}` lines) still
//! parse: [`parse_record`]. JSON records are parsed in two steps (a `serde_json::Value` first, then the
//! typed struct for its `kind`) instead of a `#[serde(tag = "kind")]` enum: defmt-decoder turns on
//! serde_json's `arbitrary_precision` feature, with which internally tagged enums cannot hold numbers.

use std::fmt;
use std::fmt::Write as _;

use crate::deviations::{Applied, DeviationNote};
use msifw_proto::frame::{self, FrameError, Piece};
use msifw_proto::record as wire;
use serde::{Deserialize, Serialize};

pub use msifw_proto::record::{BarKind, IrqMode, Outcome as ScenarioResult};

/// The version of the `--json` document's schema (`schema_version`): 1 is the document of msifw before
/// the field, with the field added; 2 adds the results `xfail` and `xpass` with a scenario's `deviation`,
/// the platform's `cpus`, the summary's `xfailed` and `xpassed`, and `deviations`.
pub const SCHEMA_VERSION: u32 = 2;

/// Prefix of a report line on COM1 from firmwares before the frames (protocol version 0).
pub const REPORT_PREFIX: &str = "msifw-report ";

/// The `platform` record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// APIC id of the CPU that ran the firmware.
    pub apic_id: u32,
    /// Whether the local APIC runs in x2APIC mode.
    pub x2apic: bool,
    /// `"ecam"` or `"port"`.
    pub config_access: String,
    /// ECAM base address (hex string), or null with port I/O config access.
    pub ecam_base: Option<String>,
    /// Number of I/O APICs found.
    pub ioapics: u32,
    /// The firmware command line as the firmware saw it.
    pub cmdline: String,
    /// How the firmware was entered: `"pvh"` (QEMU `-kernel`) or `"multiboot2"` (GRUB).
    #[serde(default)]
    pub boot: Option<String>,
    /// The boot loader's name, if it gave one (Multiboot2).
    #[serde(default)]
    pub loader: Option<String>,
    /// Who gave the BARs their addresses: `"boot-firmware"` (SeaBIOS; msifw changed nothing) or `"msifw"`
    /// (the boot firmware left some unassigned, as qboot does). Empty from firmwares before the field.
    #[serde(default)]
    pub bar_assignment: String,
    /// Where msifw's windows came from when it assigned BARs: `"acpi-crs"` (the DSDT's `PCI0._CRS`) or
    /// `"memory-map"` (the E820 map's holes); `None` when the boot firmware assigned them.
    #[serde(default)]
    pub bar_windows: Option<String>,
    /// How the firmware makes sure the device models' timers have run before it relies on it (README
    /// "Device-model behaviour"): `"hpet"`, `"lapic-timer"` or `"wait"`. Empty from firmwares before the
    /// field.
    #[serde(default)]
    pub timer_fence: String,
    /// Where INTx routing comes from: `"acpi-prt"` (the DSDT), `"mp-table"` (no ACPI), `"chipset"` (the host
    /// bridge's known rule) or `"none"`. Empty from firmwares before the field.
    #[serde(default)]
    pub intx_routing: String,
    /// Why configuration space is reached the way it is (an ECAM window's source, or why it was rejected).
    #[serde(default)]
    pub config_reason: String,
    /// The root buses enumerated, as `first-last NAME` (hex bus numbers, the host bridge's ACPI name).
    #[serde(default)]
    pub root_buses: String,
    /// Where the root buses came from: `"acpi"` (host bridges in the DSDT/SSDTs) or `"default"` (bus 0 only).
    #[serde(default)]
    pub root_source: String,
    /// The CPUs, in index order (index 0 ran the firmware). Empty from firmwares before the field and
    /// when the firmware could not list them: the topology is then unknown ([`crate::deviations`]).
    #[serde(default)]
    pub cpus: Vec<Cpu>,
}

/// One CPU of the `platform` record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu {
    /// msifw's index (0 = the CPU that ran the firmware).
    pub index: u32,
    /// Local APIC ID.
    pub apic_id: u32,
    /// ACPI processor UID.
    pub acpi_uid: u32,
    /// Logical APIC ID set (xAPIC) or read (x2APIC); 0 when none.
    pub logical_id: u32,
    /// `online`, `offline` or `failed`.
    pub state: String,
    /// Why it failed to come up (`failed` only).
    pub reason: Option<String>,
}

/// One implemented BAR of a function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bar {
    /// BAR index (0..=5).
    pub index: u8,
    /// Kind of BAR.
    pub kind: BarKind,
    /// Prefetchable memory.
    pub prefetchable: bool,
    /// Assigned address (hex string).
    pub address: String,
    /// Size in bytes.
    pub size: u64,
}

impl Bar {
    /// Compact form, e.g. `0:m32 fea00000/128K` (a `p` after the kind marks prefetchable memory).
    pub fn compact(&self) -> String {
        let p = if self.prefetchable { "p" } else { "" };
        format!(
            "{}:{}{} {}/{}",
            self.index,
            self.kind.short(),
            p,
            short_hex(&self.address),
            human_size(self.size)
        )
    }
}

/// One capability of a function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capability {
    /// Capability id (hex string).
    pub id: String,
    /// Name, e.g. `msi`, `msix`, `pcie`.
    pub name: String,
    /// Offset in config space (hex string).
    pub offset: String,
    /// Whether it is a PCIe extended capability.
    pub extended: bool,
}

/// The `function` record: one PCI function as the firmware found and drove it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Function {
    /// `"00:02.0"`.
    pub bdf: String,
    /// Vendor id, 4 lower-case hex digits.
    pub vendor: String,
    /// Device id, 4 lower-case hex digits.
    pub device: String,
    /// Class, subclass and prog-if, 6 hex digits.
    pub class: String,
    /// Header type byte.
    pub header_type: u8,
    /// Implemented BARs.
    pub bars: Vec<Bar>,
    /// Capabilities.
    pub capabilities: Vec<Capability>,
    /// Interrupt mode in use.
    pub irq_mode: IrqMode,
    /// IDT vectors assigned.
    pub vectors: Vec<u8>,
    /// The CPU index each of `vectors` is on (same order) after setup; null for a source aimed at several
    /// CPUs. Empty from firmwares before protocol version 2.
    #[serde(default)]
    pub vector_cpus: Vec<Option<u32>>,
    /// Interrupts received.
    pub interrupts: u64,
    /// Driver that ran on it, if any.
    pub driver: Option<String>,
    /// Problems found with this function.
    pub problems: Vec<String>,
    /// Interrupt-relevant register state when the firmware finished with the function.
    #[serde(default)]
    pub final_state: Option<FinalState>,
    /// Modes the function offers (`msix`, `msi`, `intx`).
    #[serde(default)]
    pub modes_offered: Vec<String>,
    /// Why the mode in use is not the best offered, if it is not.
    #[serde(default)]
    pub irq_reason: Option<String>,
    /// INTx: the GSI.
    #[serde(default)]
    pub gsi: Option<u32>,
    /// INTx: `level` or `edge`.
    #[serde(default)]
    pub trigger: Option<String>,
    /// INTx: `high` or `low`.
    #[serde(default)]
    pub polarity: Option<String>,
    /// INTx: where the route came from (`dsdt`, `mp-table`, `chipset`, `piix-pirq`).
    #[serde(default)]
    pub route_source: Option<String>,
    /// INTx: deliveries of the function's level again after a claim (the EOI reached the IOAPIC before
    /// the deassertion, as KVM's in-kernel IOAPIC does) that the handler's hold absorbed: counted here,
    /// not problems.
    #[serde(default)]
    pub intx_redeliveries: u64,
}

/// What a function was left able to do (the `final_state` object of a function record).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalState {
    /// Command register, hex.
    pub command: String,
    /// Command.Bus Master.
    pub bus_master: bool,
    /// Command.Interrupt Disable.
    pub intx_disabled: bool,
    /// MSI Enable, if the function has MSI.
    pub msi_enabled: Option<bool>,
    /// MSI-X Enable, if the function has MSI-X.
    pub msix_enabled: Option<bool>,
}

/// The `scenario` record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario {
    /// Scenario name.
    pub name: String,
    /// Function it ran on, or `None` for platform-wide checks.
    pub bdf: Option<String>,
    /// Outcome.
    pub result: ScenarioResult,
    /// What happened.
    pub detail: String,
    /// Whether this is a control (a check that something must *not* happen).
    pub control: bool,
    /// The known deviation that made the firmware's `fail` an `xfail` or its `pass` an `xpass`
    /// ([`crate::deviations`]); null otherwise.
    #[serde(default)]
    pub deviation: Option<DeviationNote>,
}

/// The `problem` record: bad input the firmware reported and did not trust.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Where it came from, e.g. `acpi.mcfg`, `pci`, `cmdline` (`host` for problems the host found).
    pub source: String,
    /// What is wrong.
    pub detail: String,
}

/// The `end` record: the firmware's own counts, the last record of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct End {
    /// Scenarios passed.
    pub passed: u32,
    /// Scenarios failed.
    pub failed: u32,
    /// Scenarios skipped.
    pub skipped: u32,
}

/// The `phase` record (`bench`): how long a phase of the firmware took.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseTime {
    /// `platform`, `enumeration`, `quiet`, `setup`, `checks` or `report` (before issue 16 the firmware
    /// sent only the middle three, each then covering only its own work).
    pub name: String,
    /// Microseconds (TSC, calibrated against the PIT).
    pub us: u64,
}

/// The `accesses` record (`bench`): configuration and MMIO accesses of one function in one phase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accesses {
    /// The function (or a probed slot that held none).
    pub bdf: String,
    /// Whether a function answered there.
    pub present: bool,
    /// `enumeration` or `setup`.
    pub phase: String,
    /// Configuration reads.
    pub config_reads: u64,
    /// Configuration writes.
    pub config_writes: u64,
    /// MMIO reads of the function's BARs.
    pub mmio_reads: u64,
    /// MMIO writes of the function's BARs.
    pub mmio_writes: u64,
}

impl Accesses {
    /// All four kinds.
    pub fn total(&self) -> u64 {
        self.config_reads + self.config_writes + self.mmio_reads + self.mmio_writes
    }
}

/// The `dispatch` record (`dispatch=N`): one source through one interrupt path, in TSC ticks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispatch {
    /// `self-ipi`, `msix`, `msi` or `intx`.
    pub source: String,
    /// The device, or `None` for the self IPI.
    pub bdf: Option<String>,
    /// First vector used.
    pub vector: u8,
    /// `handler` (the firmware's path) or `minimal` (EOI-only stub).
    pub path: String,
    /// Interrupts measured.
    pub n: u64,
    /// Of them, those that went through the firmware's dispatcher.
    pub dispatched: u64,
    /// Of those, the ones the interrupt entry handled on its fast path (count and EOI in the stub).
    #[serde(default)]
    pub fast: u64,
    /// Trigger write to first instruction of the entry: min.
    pub entry_min: u64,
    /// ... median.
    pub entry_median: u64,
    /// ... 99th percentile.
    pub entry_p99: u64,
    /// Entry to return: min.
    pub path_min: u64,
    /// ... median.
    pub path_median: u64,
    /// ... 99th percentile.
    pub path_p99: u64,
    /// TSC ticks per microsecond, as calibrated.
    pub tsc_per_us: u64,
}

/// One parsed report record.
// A `function` record is much larger than the others; records are short-lived parse results, so the size
// difference costs nothing worth an extra allocation per record.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// `platform`
    Platform(Platform),
    /// `function`
    Function(Function),
    /// `scenario`
    Scenario(Scenario),
    /// `problem`
    Problem(Problem),
    /// `end`
    End(End),
    /// `phase` (bench)
    Phase(PhaseTime),
    /// `accesses` (bench)
    Accesses(Accesses),
    /// `dispatch` (bench)
    Dispatch(Dispatch),
}

/// Why a report line could not be parsed.
#[derive(Debug)]
pub enum RecordError {
    /// The text after the prefix is not JSON.
    Json(serde_json::Error),
    /// The JSON is not an object.
    NotAnObject,
    /// The object has no string `kind`.
    MissingKind,
    /// `kind` is not one of the protocol's.
    UnknownKind(String),
    /// The fields do not match the protocol for this kind.
    Fields {
        /// The record's kind.
        kind: String,
        /// What serde found.
        error: serde_json::Error,
    },
    /// A frame that holds no record: cut off, damaged, of another version, or not a record.
    Frame(FrameError),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Json(e) => write!(f, "not valid JSON: {e}"),
            RecordError::NotAnObject => f.write_str("not a JSON object"),
            RecordError::MissingKind => f.write_str("no string \"kind\" field"),
            RecordError::UnknownKind(k) => write!(f, "unknown kind {k:?}"),
            RecordError::Fields { kind, error } => {
                write!(f, "{kind} record does not match docs/protocol.md: {error}")
            }
            RecordError::Frame(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RecordError {}

impl Record {
    /// The record a frame held, in the host's types (the one place the two meet).
    pub fn from_wire(record: wire::Record) -> Record {
        let text = wire::Text::into_string;
        let hex = |v: u64| format!("{v:#x}");
        match record {
            wire::Record::Platform(p) => {
                let wire::Platform {
                    apic_id,
                    x2apic,
                    config_access,
                    ioapics,
                    cmdline,
                    boot,
                    loader,
                    bar_assignment,
                    timer_fence,
                    intx_routing,
                    config_reason,
                    root_source,
                    root_buses,
                    cpus,
                } = p;
                let (config_access, ecam_base) = match config_access {
                    wire::ConfigAccess::Ecam(base) => ("ecam", Some(hex(base))),
                    wire::ConfigAccess::Port => ("port", None),
                };
                let (bar_assignment, bar_windows) = match bar_assignment {
                    wire::BarAssignment::BootFirmware => ("boot-firmware", None),
                    wire::BarAssignment::Msifw(windows) => ("msifw", Some(text(windows))),
                };
                Record::Platform(Platform {
                    apic_id,
                    x2apic,
                    config_access: config_access.to_string(),
                    ecam_base,
                    ioapics,
                    cmdline: text(cmdline),
                    boot: Some(text(boot)),
                    loader: loader.map(text),
                    bar_assignment: bar_assignment.to_string(),
                    bar_windows,
                    timer_fence: text(timer_fence),
                    intx_routing: text(intx_routing),
                    config_reason: text(config_reason),
                    root_buses: text(root_buses),
                    root_source: text(root_source),
                    cpus: cpus
                        .into_iter()
                        .map(|wire::Cpu { index, apic_id, acpi_uid, logical_id, state }| Cpu {
                            index,
                            apic_id,
                            acpi_uid,
                            logical_id,
                            state: state.name().to_string(),
                            reason: match state {
                                wire::CpuState::Failed(why) => Some(text(why)),
                                wire::CpuState::Online | wire::CpuState::Offline => None,
                            },
                        })
                        .collect(),
                })
            }
            wire::Record::Function(f) => {
                let wire::Function {
                    bdf,
                    vendor,
                    device,
                    class,
                    header_type,
                    bars,
                    capabilities,
                    irq_mode,
                    modes_offered,
                    irq_reason,
                    intx,
                    vectors,
                    vector_cpus,
                    interrupts,
                    intx_redeliveries,
                    driver,
                    problems,
                    final_state,
                } = f;
                let wire::FinalState { command, bus_master, intx_disabled, msi_enabled, msix_enabled } = final_state;
                let (gsi, trigger, polarity, route_source) = match intx {
                    Some(wire::IntxRoute { gsi, trigger, polarity, source }) => (
                        Some(gsi),
                        Some(trigger.name().to_string()),
                        Some(polarity.name().to_string()),
                        Some(text(source)),
                    ),
                    None => (None, None, None, None),
                };
                Record::Function(Function {
                    bdf: bdf.to_string(),
                    vendor: format!("{vendor:04x}"),
                    device: format!("{device:04x}"),
                    class: format!("{class:06x}"),
                    header_type,
                    bars: bars
                        .into_iter()
                        .map(|wire::Bar { index, kind, prefetchable, address, size }| Bar {
                            index,
                            kind,
                            prefetchable,
                            address: hex(address),
                            size,
                        })
                        .collect(),
                    capabilities: capabilities
                        .into_iter()
                        .map(|wire::Capability { id, name, offset, extended }| Capability {
                            id: format!("{id:#x}"),
                            name: text(name),
                            offset: format!("{offset:#x}"),
                            extended,
                        })
                        .collect(),
                    irq_mode,
                    vectors,
                    vector_cpus,
                    interrupts,
                    driver: driver.map(text),
                    problems: problems.into_iter().map(text).collect(),
                    final_state: Some(FinalState {
                        command: format!("{command:#06x}"),
                        bus_master,
                        intx_disabled,
                        msi_enabled,
                        msix_enabled,
                    }),
                    modes_offered: modes_offered.into_iter().map(|m| m.name().to_string()).collect(),
                    irq_reason: irq_reason.map(text),
                    gsi,
                    trigger,
                    polarity,
                    route_source,
                    intx_redeliveries,
                })
            }
            wire::Record::Scenario(wire::Scenario { name, bdf, result, detail, control }) => {
                Record::Scenario(Scenario {
                    name: text(name),
                    bdf: bdf.map(|b| b.to_string()),
                    result,
                    detail: text(detail),
                    control,
                    deviation: None,
                })
            }
            wire::Record::Problem(wire::Problem { source, detail }) => {
                Record::Problem(Problem { source: text(source), detail: text(detail) })
            }
            wire::Record::End(wire::End { passed, failed, skipped }) => Record::End(End { passed, failed, skipped }),
            wire::Record::Phase(wire::Phase { name, us }) => Record::Phase(PhaseTime { name: text(name), us }),
            wire::Record::Accesses(wire::Accesses {
                bdf,
                present,
                phase,
                config_reads,
                config_writes,
                mmio_reads,
                mmio_writes,
            }) => Record::Accesses(Accesses {
                bdf: bdf.to_string(),
                present,
                phase: text(phase),
                config_reads,
                config_writes,
                mmio_reads,
                mmio_writes,
            }),
            wire::Record::Dispatch(wire::Dispatch {
                source,
                bdf,
                vector,
                path,
                n,
                dispatched,
                fast,
                entry_min,
                entry_median,
                entry_p99,
                path_min,
                path_median,
                path_p99,
                tsc_per_us,
            }) => Record::Dispatch(Dispatch {
                source: text(source),
                bdf: bdf.map(|b| b.to_string()),
                vector,
                path: text(path),
                n,
                dispatched,
                fast,
                entry_min,
                entry_median,
                entry_p99,
                path_min,
                path_median,
                path_p99,
                tsc_per_us,
            }),
        }
    }
}

/// The records in one COM1 line, in order: its frames (a line of a firmware before the frames: its
/// JSON record). Empty for a plain text line.
pub fn line_records(line: &str) -> Vec<Result<Record, RecordError>> {
    if let Some(json) = report_payload(line) {
        return vec![parse_record(json)];
    }
    if !line.as_bytes().contains(&frame::MARK) {
        return Vec::new();
    }
    frame::split(line)
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Text(_) => None,
            Piece::Frame(f) => Some(f.map(Record::from_wire).map_err(RecordError::Frame)),
        })
        .collect()
}

/// Whether `line` holds a frame, whole or not (or a JSON record of a firmware before the frames).
pub fn is_record_line(line: &str) -> bool {
    !line_records(line).is_empty()
}

/// The JSON text of a report line of a firmware before the frames (`msifw-report {...}`), or `None`.
pub fn report_payload(line: &str) -> Option<&str> {
    line.strip_prefix(REPORT_PREFIX)
}

/// Parses the JSON text of one report record.
pub fn parse_record(json: &str) -> Result<Record, RecordError> {
    let mut value: serde_json::Value = serde_json::from_str(json).map_err(RecordError::Json)?;
    let object = value.as_object_mut().ok_or(RecordError::NotAnObject)?;
    let kind = match object.remove("kind") {
        Some(serde_json::Value::String(kind)) => kind,
        _ => return Err(RecordError::MissingKind),
    };
    fn typed<T: serde::de::DeserializeOwned>(
        kind: &str,
        value: serde_json::Value,
    ) -> Result<T, RecordError> {
        serde_json::from_value(value).map_err(|error| RecordError::Fields {
            kind: kind.to_string(),
            error,
        })
    }
    Ok(match kind.as_str() {
        "platform" => Record::Platform(typed(&kind, value)?),
        "function" => Record::Function(typed(&kind, value)?),
        "scenario" => Record::Scenario(typed(&kind, value)?),
        "problem" => Record::Problem(typed(&kind, value)?),
        "end" => Record::End(typed(&kind, value)?),
        "phase" => Record::Phase(typed(&kind, value)?),
        "accesses" => Record::Accesses(typed(&kind, value)?),
        "dispatch" => Record::Dispatch(typed(&kind, value)?),
        _ => return Err(RecordError::UnknownKind(kind)),
    })
}

/// A report line that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MalformedRecord {
    /// The whole COM1 line.
    pub line: String,
    /// Why it was rejected.
    pub error: String,
}

/// Scenario counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
pub struct Counts {
    /// Passed scenarios.
    pub passed: u32,
    /// Failed scenarios (expected failures not counted).
    pub failed: u32,
    /// Skipped scenarios.
    pub skipped: u32,
    /// Expected failures: failed as a known deviation says (counted as passed by the exit status).
    pub xfailed: u32,
    /// Unexpected passes: passed where a known deviation says they fail (they fail the run).
    pub xpassed: u32,
}

impl Counts {
    /// The counts as the firmware made them (its `end` record): an `xfail` was its `fail`, an `xpass`
    /// its `pass`.
    pub fn as_end(&self) -> End {
        End { passed: self.passed + self.xpassed, failed: self.failed + self.xfailed, skipped: self.skipped }
    }
}

/// Everything the firmware reported in one run, in arrival order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The `platform` record (the last one, if several were sent).
    pub platform: Option<Platform>,
    /// `function` records.
    pub functions: Vec<Function>,
    /// `scenario` records.
    pub scenarios: Vec<Scenario>,
    /// `problem` records.
    pub problems: Vec<Problem>,
    /// The `end` record (the first one).
    pub end: Option<End>,
    /// Report lines that could not be parsed.
    pub malformed: Vec<MalformedRecord>,
    /// Records (of any kind, including a second `end`) that arrived after `end`.
    pub after_end: usize,
    /// Number of `platform` records received.
    pub platform_records: usize,
    /// `phase` records (bench).
    pub phases: Vec<PhaseTime>,
    /// `accesses` records (bench).
    pub accesses: Vec<Accesses>,
    /// `dispatch` records (bench).
    pub dispatch: Vec<Dispatch>,
    /// What the known-deviations table made of the scenarios ([`crate::deviations::apply`]); `None`
    /// until it was applied.
    pub deviations: Option<Applied>,
}

impl Report {
    /// An empty report.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one record.
    pub fn push(&mut self, record: Record) {
        if self.end.is_some() {
            self.after_end += 1;
        }
        match record {
            Record::Platform(p) => {
                // A `platform` record before the `end` starts the report again: the firmware restarted in
                // place (crash-restart's stage B), and reports again everything the first stage did.
                if self.platform_records > 0 && self.end.is_none() {
                    self.functions.clear();
                    self.scenarios.clear();
                    self.problems.clear();
                }
                self.platform = Some(p);
                self.platform_records += 1;
            }
            Record::Function(f) => self.functions.push(f),
            Record::Scenario(s) => self.scenarios.push(s),
            Record::Problem(p) => self.problems.push(p),
            Record::End(e) => {
                if self.end.is_none() {
                    self.end = Some(e);
                }
            }
            Record::Phase(p) => self.phases.push(p),
            Record::Accesses(a) => self.accesses.push(a),
            Record::Dispatch(d) => self.dispatch.push(d),
        }
    }

    /// Feeds one COM1 line. Returns `None` for a plain text line, `Some(Ok(record))` for a report
    /// record (already added), `Some(Err(..))` for a malformed one (remembered in `malformed`). The
    /// firmware sends one frame a line; should a line hold several, all are taken and the first is
    /// returned.
    pub fn push_line(&mut self, line: &str) -> Option<Result<Record, RecordError>> {
        let mut first = None;
        for result in line_records(line) {
            let result = match result {
                Ok(record) => {
                    self.push(record.clone());
                    Ok(record)
                }
                Err(error) => {
                    self.malformed.push(MalformedRecord { line: line.to_string(), error: error.to_string() });
                    Err(error)
                }
            };
            first.get_or_insert(result);
        }
        first
    }

    /// Whether any record (or malformed record) arrived.
    pub fn is_empty(&self) -> bool {
        self.platform_records == 0
            && self.functions.is_empty()
            && self.scenarios.is_empty()
            && self.problems.is_empty()
            && self.end.is_none()
            && self.malformed.is_empty()
    }

    /// Scenario counts from the scenario records.
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for s in &self.scenarios {
            match s.result {
                ScenarioResult::Pass => c.passed += 1,
                ScenarioResult::Fail => c.failed += 1,
                ScenarioResult::Skip => c.skipped += 1,
                ScenarioResult::Xfail => c.xfailed += 1,
                ScenarioResult::Xpass => c.xpassed += 1,
            }
        }
        c
    }

    /// The scenarios the known-deviations table judged `xfail` or `xpass`.
    pub fn deviating(&self) -> impl Iterator<Item = &Scenario> {
        self.scenarios.iter().filter(|s| s.deviation.is_some())
    }

    /// The function record for `bdf` (e.g. `"00:02.0"`).
    pub fn function(&self, bdf: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.bdf == bdf)
    }

    /// The scenarios that ran on `bdf`.
    pub fn scenarios_for<'a>(&'a self, bdf: &'a str) -> impl Iterator<Item = &'a Scenario> + 'a {
        self.scenarios
            .iter()
            .filter(move |s| s.bdf.as_deref() == Some(bdf))
    }

    /// Protocol violations in this report, as messages for the user: no `end` record, `end` counts
    /// that disagree with the scenario records, records after `end`, malformed lines.
    pub fn check(&self) -> Vec<String> {
        let mut out = Vec::new();
        let counts = self.counts().as_end();
        match self.end {
            None => out.push(
                "the report has no `end` record: the firmware stopped before finishing its run \
                 (look at the last COM1 lines and the defmt log)"
                    .to_string(),
            ),
            Some(end) => {
                if (end.passed, end.failed, end.skipped)
                    != (counts.passed, counts.failed, counts.skipped)
                {
                    out.push(format!(
                        "the `end` record says {} passed, {} failed, {} skipped but the scenario records \
                         add up to {} passed, {} failed, {} skipped (a scenario record was lost or the \
                         firmware counts wrongly)",
                        end.passed, end.failed, end.skipped, counts.passed, counts.failed, counts.skipped
                    ));
                }
            }
        }
        if self.after_end > 0 {
            out.push(format!(
                "{} record(s) arrived after the `end` record, which must be the last one",
                self.after_end
            ));
        }
        for m in &self.malformed {
            out.push(format!("malformed report line ({}): {}", m.error, m.line));
        }
        // Only the host judges a result against its known deviations: an `xfail` or `xpass` that did not
        // come from the table came from the firmware (or a hand-made capture), and would pass unchecked.
        for s in &self.scenarios {
            if matches!(s.result, ScenarioResult::Xfail | ScenarioResult::Xpass) && s.deviation.is_none() {
                out.push(format!(
                    "the scenario record {} {} came with result {} and no known deviation: the firmware reports                      pass, fail or skip, and only the host's table (host/src/deviations.rs) makes an xfail or xpass",
                    s.name,
                    s.bdf.as_deref().unwrap_or("-"),
                    s.result.name()
                ));
            }
        }
        out
    }

    /// The CPU table of the (last) `platform` record: index, APIC ID, ACPI UID, logical ID, state.
    pub fn render_cpus(&self) -> String {
        let Some(p) = &self.platform else {
            return String::new();
        };
        if p.cpus.is_empty() {
            return String::new();
        }
        let online = p.cpus.iter().filter(|c| c.state == "online").count();
        let mut out = format!("cpus: {} of {} online\n", online, p.cpus.len());
        out.push_str("  INDEX  APIC  UID  LOGICAL     STATE\n");
        for c in &p.cpus {
            let uid = if c.acpi_uid == u32::MAX { "-".to_string() } else { c.acpi_uid.to_string() };
            let _ = write!(out, "  {:>5}  {:>4}  {:>3}  {:#010x}  {}", c.index, c.apic_id, uid, c.logical_id, c.state);
            if let Some(why) = &c.reason {
                let _ = write!(out, ": {why}");
            }
            out.push('\n');
        }
        out
    }

    /// The per-function table.
    pub fn render_functions(&self) -> String {
        if self.functions.is_empty() {
            return "functions: none reported\n".to_string();
        }
        // With several CPUs each vector is shown with the CPU it is on (`48@1`: vector 48 on CPU 1).
        let several_cpus = self.platform.as_ref().is_some_and(|p| p.cpus.len() > 1)
            || self.functions.iter().any(|f| f.vector_cpus.iter().any(|c| *c != Some(0)));
        let header = [
            "BDF",
            "ID",
            "CLASS",
            "IRQ",
            if several_cpus { "VECTOR@CPU" } else { "VECTORS" },
            "INTS",
            "DRIVER",
            "BARS",
            "CAPABILITIES",
        ];
        // Each function is one or more rows: one per BAR (at least one).
        let mut rows: Vec<[String; 9]> = Vec::new();
        for f in &self.functions {
            let bars: Vec<String> = f.bars.iter().map(Bar::compact).collect();
            let caps: Vec<&str> = f
                .capabilities
                .iter()
                .map(|c| {
                    if c.name.is_empty() {
                        c.id.as_str()
                    } else {
                        c.name.as_str()
                    }
                })
                .collect();
            let vectors: Vec<String> = f
                .vectors
                .iter()
                .enumerate()
                .map(|(i, v)| match f.vector_cpus.get(i) {
                    _ if !several_cpus => v.to_string(),
                    Some(Some(cpu)) => format!("{v}@{cpu}"),
                    Some(None) => format!("{v}@*"),
                    None => format!("{v}@?"),
                })
                .collect();
            let first = [
                f.bdf.clone(),
                format!("{}:{}", f.vendor, f.device),
                f.class.clone(),
                match f.gsi {
                    Some(gsi) => format!("{} gsi{gsi}", f.irq_mode),
                    None => f.irq_mode.to_string(),
                },
                if vectors.is_empty() {
                    "-".to_string()
                } else {
                    vectors.join(",")
                },
                f.interrupts.to_string(),
                f.driver.clone().unwrap_or_else(|| "-".to_string()),
                bars.first().cloned().unwrap_or_else(|| "-".to_string()),
                if caps.is_empty() {
                    "-".to_string()
                } else {
                    caps.join(",")
                },
            ];
            rows.push(first);
            for bar in bars.iter().skip(1) {
                let mut row: [String; 9] = Default::default();
                row[7] = bar.clone();
                rows.push(row);
            }
        }
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row.iter()) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::from("functions:\n");
        let header_row = header.map(str::to_string);
        for row in std::iter::once(&header_row).chain(rows.iter()) {
            let mut line = String::from(" ");
            for (i, cell) in row.iter().enumerate() {
                line.push(' ');
                // INTS is right-aligned, everything else left-aligned.
                if i == 5 {
                    let _ = write!(line, "{cell:>w$}", w = widths[i]);
                } else {
                    let _ = write!(line, "{cell:<w$}", w = widths[i]);
                }
                line.push(' ');
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        for f in &self.functions {
            if f.intx_redeliveries > 0 {
                let _ = writeln!(out, "  {}: {} INTx re-deliveries after a claim, absorbed by the hold", f.bdf, f.intx_redeliveries);
            }
            for p in &f.problems {
                let _ = writeln!(out, "  {}: {p}", f.bdf);
            }
        }
        out
    }

    /// The scenario list.
    pub fn render_scenarios(&self) -> String {
        if self.scenarios.is_empty() {
            return "scenarios: none reported\n".to_string();
        }
        let names: Vec<String> = self
            .scenarios
            .iter()
            .map(|s| {
                if s.control {
                    format!("{} (control)", s.name)
                } else {
                    s.name.clone()
                }
            })
            .collect();
        let name_w = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
        let bdf_w = self
            .scenarios
            .iter()
            .map(|s| s.bdf.as_deref().unwrap_or("-").len())
            .max()
            .unwrap_or(1);
        let label_w = self.scenarios.iter().map(|s| s.result.label().len()).max().unwrap_or(4);
        let mut out = String::from("scenarios:\n");
        for (s, name) in self.scenarios.iter().zip(&names) {
            let line = format!(
                "  {:<label_w$}  {:<bdf_w$}  {:<name_w$}  {}",
                s.result.label(),
                s.bdf.as_deref().unwrap_or("-"),
                name,
                s.detail
            );
            out.push_str(line.trim_end());
            out.push('\n');
            if let Some(d) = &s.deviation {
                let indent = " ".repeat(2 + label_w + 2);
                let what = match s.result {
                    ScenarioResult::Xpass => "passed, but known deviation",
                    _ => "known deviation",
                };
                let _ = writeln!(out, "{indent}{what} {}: {} ({}) [{}]", d.id, d.reason, d.reference, d.platform);
            }
        }
        out
    }

    /// What the known-deviations table did: on which platform the report was judged, and for each failure
    /// a row is about but that stayed a failure, why the row did not hold. Empty when nothing is worth
    /// saying (no row about any scenario of the run).
    pub fn render_deviations(&self) -> String {
        let Some(applied) = &self.deviations else {
            return String::new();
        };
        let judged = self.deviating().count();
        if judged == 0 && applied.not_applied.is_empty() {
            return String::new();
        }
        let platform = applied.platform.as_ref().map_or("not asked".to_string(), ToString::to_string);
        let mut out = format!("known deviations (platform: {platform}):\n");
        let c = self.counts();
        if judged > 0 {
            let _ = writeln!(out, "  {} xfail, {} xpass", c.xfailed, c.xpassed);
        }
        for n in &applied.not_applied {
            let _ = writeln!(out, "  not applied: {n}");
        }
        out
    }

    /// The firmware's problem records (empty string when there are none).
    pub fn render_problems(&self) -> String {
        if self.problems.is_empty() {
            return String::new();
        }
        let mut out = String::from("problems:\n");
        for p in &self.problems {
            let _ = writeln!(out, "  [{}] {}", p.source, p.detail);
        }
        out
    }
}

/// One-line summary of a record, for live output.
pub fn describe_record(record: &Record) -> String {
    match record {
        Record::Platform(p) => format!(
            "platform: apic {} x2apic={} config={} ecam={} ioapics={} bars={}{} fence={} cmdline={:?}",
            p.apic_id,
            p.x2apic,
            p.config_access,
            p.ecam_base.as_deref().unwrap_or("-"),
            p.ioapics,
            if p.bar_assignment.is_empty() { "-" } else { &p.bar_assignment },
            p.bar_windows.as_deref().map(|w| format!(" ({w})")).unwrap_or_default(),
            if p.timer_fence.is_empty() { "-" } else { &p.timer_fence },
            p.cmdline
        ),
        Record::Function(f) => format!(
            "function {} {}:{} class {} irq {} vectors {:?} interrupts {}",
            f.bdf, f.vendor, f.device, f.class, f.irq_mode, f.vectors, f.interrupts
        ),
        Record::Scenario(s) => format!(
            "{} {} {}{}: {}{}",
            s.result.label(),
            s.bdf.as_deref().unwrap_or("-"),
            s.name,
            if s.control { " (control)" } else { "" },
            s.detail,
            s.deviation.as_ref().map(|d| format!(" (known deviation {})", d.id)).unwrap_or_default()
        ),
        Record::Problem(p) => format!("problem [{}] {}", p.source, p.detail),
        Record::End(e) => format!(
            "end: {} passed, {} failed, {} skipped",
            e.passed, e.failed, e.skipped
        ),
        Record::Phase(p) => format!("phase {}: {} us", p.name, p.us),
        Record::Accesses(a) => format!(
            "accesses {} ({}) {}: config {}r/{}w, mmio {}r/{}w",
            a.bdf,
            if a.present { "present" } else { "absent" },
            a.phase,
            a.config_reads,
            a.config_writes,
            a.mmio_reads,
            a.mmio_writes
        ),
        Record::Dispatch(d) => format!(
            "dispatch {} {}: {} interrupts, entry median {} ticks, path median {} ticks",
            d.source, d.path, d.n, d.entry_median, d.path_median
        ),
    }
}

/// A hex string without `0x` and leading zeros, lower case (`"0xFEA00000"` -> `"fea00000"`).
pub fn short_hex(s: &str) -> String {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_string()
    } else {
        trimmed.to_ascii_lowercase()
    }
}

/// A size in bytes as `32`, `4K`, `128K`, `1M`, `2G` (exact multiples only; otherwise bytes).
pub fn human_size(size: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "T"),
        (1 << 30, "G"),
        (1 << 20, "M"),
        (1 << 10, "K"),
    ];
    for (unit, suffix) in UNITS {
        if size >= unit && size.is_multiple_of(unit) {
            return format!("{}{suffix}", size / unit);
        }
    }
    size.to_string()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const SAMPLE: &[&str] = &[
        r#"msifw-report {"kind":"platform","apic_id":0,"x2apic":false,"config_access":"ecam","ecam_base":"0xb0000000","ioapics":1,"cmdline":""}"#,
        r#"msifw-report {"kind":"function","bdf":"00:02.0","vendor":"8086","device":"10d3","class":"020000","header_type":0,"bars":[{"index":0,"kind":"mem32","prefetchable":false,"address":"0xfebc0000","size":131072},{"index":2,"kind":"io","prefetchable":false,"address":"0xc000","size":32}],"capabilities":[{"id":"0x01","name":"pm","offset":"0xc8","extended":false},{"id":"0x11","name":"msix","offset":"0xa0","extended":false}],"irq_mode":"msix","vectors":[48,49],"interrupts":3,"driver":"e1000e","problems":[]}"#,
        r#"msifw-report {"kind":"function","bdf":"00:03.0","vendor":"1b36","device":"0010","class":"010802","header_type":0,"bars":[{"index":0,"kind":"mem64","prefetchable":false,"address":"0xfebd0000","size":16384}],"capabilities":[],"irq_mode":"none","vectors":[],"interrupts":0,"driver":null,"problems":["no MSI-X table"]}"#,
        r#"msifw-report {"kind":"scenario","name":"msix-fire","bdf":"00:02.0","result":"pass","detail":"3 interrupts on vector 48","control":false}"#,
        r#"msifw-report {"kind":"scenario","name":"msix-masked","bdf":"00:02.0","result":"pass","detail":"no interrupt while masked","control":true}"#,
        r#"msifw-report {"kind":"scenario","name":"ioapic","bdf":null,"result":"skip","detail":"not on this machine","control":false}"#,
        r#"msifw-report {"kind":"problem","source":"acpi.mcfg","detail":"two segments; using the first"}"#,
        r#"msifw-report {"kind":"end","passed":2,"failed":0,"skipped":1}"#,
    ];

    /// Records as a firmware of protocol version 0 printed them (JSON, taken from its COM1), each with
    /// the wire record a version 1 firmware sends for the same thing.
    pub(crate) fn json_and_wire() -> Vec<(&'static str, wire::Record<'static>)> {
        let bdf = |bus, dev, func| wire::Bdf { bus, dev, func };
        let platform = wire::Platform {
            apic_id: 0,
            x2apic: false,
            config_access: wire::ConfigAccess::Ecam(0xb000_0000),
            ioapics: 1,
            cmdline: "oracle".into(),
            boot: "pvh".into(),
            loader: None,
            bar_assignment: wire::BarAssignment::BootFirmware,
            timer_fence: "hpet".into(),
            intx_routing: "acpi-prt".into(),
            config_reason: "ECAM from mcfg at 0xb0000000".into(),
            root_source: "acpi".into(),
            root_buses: "00-ff PCI0".into(),
            cpus: vec![],
        };
        let e1000e = wire::Function {
            bdf: bdf(0, 2, 0),
            vendor: 0x8086,
            device: 0x10d3,
            class: 0x020000,
            header_type: 0,
            bars: vec![
                wire::Bar { index: 0, kind: BarKind::Mem32, prefetchable: false, address: 0xfeb00000, size: 131072 },
                wire::Bar { index: 2, kind: BarKind::Io, prefetchable: false, address: 0xc040, size: 32 },
            ],
            capabilities: vec![
                wire::Capability { id: 0x1, name: "pm".into(), offset: 0xc8, extended: false },
                wire::Capability { id: 0x11, name: "msix".into(), offset: 0xa0, extended: false },
                wire::Capability { id: 0x3, name: "dsn".into(), offset: 0x140, extended: true },
            ],
            irq_mode: IrqMode::Msix,
            modes_offered: vec![IrqMode::Msix, IrqMode::Msi, IrqMode::Intx],
            irq_reason: None,
            intx: None,
            vectors: vec![48, 49, 50, 51, 52],
            vector_cpus: vec![Some(0), Some(1), Some(0), Some(1), Some(0)],
            interrupts: 20,
            intx_redeliveries: 0,
            driver: Some("e1000e".into()),
            problems: vec![],
            final_state: wire::FinalState { command: 0x507, bus_master: true, intx_disabled: true, msi_enabled: Some(false), msix_enabled: Some(false) },
        };
        let edu = wire::Function {
            bdf: bdf(1, 0, 0),
            vendor: 0x1234,
            device: 0x11e8,
            class: 0x00ff00,
            bars: vec![wire::Bar { index: 4, kind: BarKind::Mem64, prefetchable: true, address: 0x8_0000_0000, size: 1 << 20 }],
            capabilities: vec![],
            irq_mode: IrqMode::Intx,
            modes_offered: vec![IrqMode::Msi, IrqMode::Intx],
            irq_reason: Some("msi=off".into()),
            intx: Some(wire::IntxRoute { gsi: 22, trigger: wire::Trigger::Level, polarity: wire::Polarity::Low, source: "dsdt".into() }),
            vectors: vec![224],
            vector_cpus: vec![None],
            interrupts: 6,
            intx_redeliveries: 3,
            driver: Some("edu".into()),
            problems: vec!["stuck".into(), "twice".into()],
            final_state: wire::FinalState { command: 0x3, bus_master: false, intx_disabled: false, msi_enabled: None, msix_enabled: None },
            ..e1000e.clone()
        };
        vec![
            (
                r#"{"kind":"platform","apic_id":0,"x2apic":false,"config_access":"ecam","ecam_base":"0xb0000000","ioapics":1,"cmdline":"oracle","boot":"pvh","loader":null,"bar_assignment":"boot-firmware","bar_windows":null,"timer_fence":"hpet","intx_routing":"acpi-prt","config_reason":"ECAM from mcfg at 0xb0000000","root_source":"acpi","root_buses":"00-ff PCI0","cpus":[]}"#,
                wire::Record::Platform(platform.clone()),
            ),
            (
                r#"{"kind":"platform","apic_id":3,"x2apic":true,"config_access":"port","ecam_base":null,"ioapics":2,"cmdline":"","boot":"multiboot2","loader":"GRUB 2.06","bar_assignment":"msifw","bar_windows":"acpi-crs","timer_fence":"wait","intx_routing":"mp-table","config_reason":"no MCFG","root_source":"default","root_buses":"00-ff","cpus":[{"index":0,"apic_id":3,"acpi_uid":3,"logical_id":8,"state":"online","reason":null},{"index":1,"apic_id":4,"acpi_uid":4,"logical_id":0,"state":"failed","reason":"no answer in 10 ms"},{"index":2,"apic_id":5,"acpi_uid":5,"logical_id":0,"state":"offline","reason":null}]}"#,
                wire::Record::Platform(wire::Platform {
                    apic_id: 3,
                    x2apic: true,
                    config_access: wire::ConfigAccess::Port,
                    ioapics: 2,
                    cmdline: "".into(),
                    boot: "multiboot2".into(),
                    loader: Some("GRUB 2.06".into()),
                    bar_assignment: wire::BarAssignment::Msifw("acpi-crs".into()),
                    timer_fence: "wait".into(),
                    intx_routing: "mp-table".into(),
                    config_reason: "no MCFG".into(),
                    root_source: "default".into(),
                    root_buses: "00-ff".into(),
                    cpus: vec![
                        wire::Cpu { index: 0, apic_id: 3, acpi_uid: 3, logical_id: 8, state: wire::CpuState::Online },
                        wire::Cpu { index: 1, apic_id: 4, acpi_uid: 4, logical_id: 0, state: wire::CpuState::Failed("no answer in 10 ms".into()) },
                        wire::Cpu { index: 2, apic_id: 5, acpi_uid: 5, logical_id: 0, state: wire::CpuState::Offline },
                    ],
                }),
            ),
            (
                r#"{"kind":"function","bdf":"00:02.0","vendor":"8086","device":"10d3","class":"020000","header_type":0,"bars":[{"index":0,"kind":"mem32","prefetchable":false,"address":"0xfeb00000","size":131072},{"index":2,"kind":"io","prefetchable":false,"address":"0xc040","size":32}],"capabilities":[{"id":"0x1","name":"pm","offset":"0xc8","extended":false},{"id":"0x11","name":"msix","offset":"0xa0","extended":false},{"id":"0x3","name":"dsn","offset":"0x140","extended":true}],"irq_mode":"msix","modes_offered":["msix","msi","intx"],"irq_reason":null,"gsi":null,"trigger":null,"polarity":null,"route_source":null,"vectors":[48,49,50,51,52],"vector_cpus":[0,1,0,1,0],"interrupts":20,"intx_redeliveries":0,"driver":"e1000e","problems":[],"final_state":{"command":"0x0507","bus_master":true,"intx_disabled":true,"msi_enabled":false,"msix_enabled":false}}"#,
                wire::Record::Function(e1000e),
            ),
            (
                r#"{"kind":"function","bdf":"01:00.0","vendor":"1234","device":"11e8","class":"00ff00","header_type":0,"bars":[{"index":4,"kind":"mem64","prefetchable":true,"address":"0x800000000","size":1048576}],"capabilities":[],"irq_mode":"intx","modes_offered":["msi","intx"],"irq_reason":"msi=off","gsi":22,"trigger":"level","polarity":"low","route_source":"dsdt","vectors":[224],"vector_cpus":[null],"interrupts":6,"intx_redeliveries":3,"driver":"edu","problems":["stuck","twice"],"final_state":{"command":"0x0003","bus_master":false,"intx_disabled":false,"msi_enabled":null,"msix_enabled":null}}"#,
                wire::Record::Function(edu),
            ),
            (
                r#"{"kind":"scenario","name":"msix-delivery","bdf":"00:02.0","result":"pass","detail":"10 interrupts on 5 vector(s), each exactly as triggered, in 11095 us","control":false,"deviation":null}"#,
                wire::Record::Scenario(wire::Scenario {
                    name: "msix-delivery".into(),
                    bdf: Some(bdf(0, 2, 0)),
                    result: ScenarioResult::Pass,
                    detail: "10 interrupts on 5 vector(s), each exactly as triggered, in 11095 us".into(),
                    control: false,
                }),
            ),
            (
                r#"{"kind":"scenario","name":"shutdown","bdf":null,"result":"fail","detail":"stale \"vector\"","control":true,"deviation":null}"#,
                wire::Record::Scenario(wire::Scenario { name: "shutdown".into(), bdf: None, result: ScenarioResult::Fail, detail: "stale \"vector\"".into(), control: true }),
            ),
            (
                r#"{"kind":"scenario","name":"hot-unplug","bdf":null,"result":"skip","detail":"not asked","control":false,"deviation":null}"#,
                wire::Record::Scenario(wire::Scenario { name: "hot-unplug".into(), bdf: None, result: ScenarioResult::Skip, detail: "not asked".into(), control: false }),
            ),
            (
                r#"{"kind":"problem","source":"acpi.mcfg","detail":"two segments; using the first"}"#,
                wire::Record::Problem(wire::Problem { source: "acpi.mcfg".into(), detail: "two segments; using the first".into() }),
            ),
            (r#"{"kind":"end","passed":12,"failed":0,"skipped":0}"#, wire::Record::End(wire::End { passed: 12, failed: 0, skipped: 0 })),
            (r#"{"kind":"phase","name":"enumeration","us":3012}"#, wire::Record::Phase(wire::Phase { name: "enumeration".into(), us: 3012 })),
            (
                r#"{"kind":"accesses","bdf":"00:1f.3","present":false,"phase":"setup","config_reads":1,"config_writes":2,"mmio_reads":3,"mmio_writes":4}"#,
                wire::Record::Accesses(wire::Accesses {
                    bdf: bdf(0, 0x1f, 3),
                    present: false,
                    phase: "setup".into(),
                    config_reads: 1,
                    config_writes: 2,
                    mmio_reads: 3,
                    mmio_writes: 4,
                }),
            ),
            (
                r#"{"kind":"dispatch","source":"self-ipi","bdf":null,"vector":253,"path":"minimal","n":1000,"dispatched":0,"fast":0,"entry_min":1,"entry_median":2,"entry_p99":3,"path_min":4,"path_median":5,"path_p99":6,"tsc_per_us":2900}"#,
                wire::Record::Dispatch(wire::Dispatch {
                    source: "self-ipi".into(),
                    bdf: None,
                    vector: 253,
                    path: "minimal".into(),
                    n: 1000,
                    dispatched: 0,
                    fast: 0,
                    entry_min: 1,
                    entry_median: 2,
                    entry_p99: 3,
                    path_min: 4,
                    path_median: 5,
                    path_p99: 6,
                    tsc_per_us: 2900,
                }),
            ),
        ]
    }

    /// The line a version 1 firmware sends for `record` (src/report/mod.rs: a scenario's verdict words,
    /// then the frame).
    pub(crate) fn frame_line(record: &wire::Record) -> String {
        let mut out = Vec::new();
        if let wire::Record::Scenario(s) = record {
            out.extend(format!("{} {} {} ", s.result.label(), s.bdf.map(|b| b.to_string()).unwrap_or("-".into()), s.name).bytes());
        }
        frame::encode(record, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_wire_record_becomes_the_record_its_json_was() {
        for (json, record) in json_and_wire() {
            let from_json = parse_record(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            let line = frame_line(&record);
            assert_eq!(Record::from_wire(record), from_json, "{json}");
            let mut r = Report::new();
            assert_eq!(r.push_line(&line).unwrap().unwrap(), from_json, "{line}");
            // The host's JSON document of it is the version 0 record without `kind`.
            let mut expected: serde_json::Value = serde_json::from_str(json).unwrap();
            expected.as_object_mut().unwrap().remove("kind");
            let written = match &from_json {
                Record::Platform(p) => serde_json::to_value(p),
                Record::Function(f) => serde_json::to_value(f),
                Record::Scenario(s) => serde_json::to_value(s),
                Record::Problem(p) => serde_json::to_value(p),
                Record::End(e) => serde_json::to_value(e),
                Record::Phase(p) => serde_json::to_value(p),
                Record::Accesses(a) => serde_json::to_value(a),
                Record::Dispatch(d) => serde_json::to_value(d),
            }
            .unwrap();
            assert_eq!(written, expected, "{json}");
        }
    }

    #[test]
    fn bad_frames_are_malformed_records_and_text_stays_text() {
        let (_, end) = json_and_wire().pop().unwrap();
        let line = frame_line(&end);
        let mut r = Report::new();
        // Cut, damaged, and with text around it.
        assert!(matches!(r.push_line(&line[..line.len() - 3]), Some(Err(RecordError::Frame(FrameError::Cut)))));
        let mut damaged = line.clone().into_bytes();
        damaged[5] = if damaged[5] == b'0' { b'1' } else { b'0' };
        let damaged = String::from_utf8(damaged).unwrap();
        assert!(matches!(r.push_line(&damaged), Some(Err(RecordError::Frame(_)))), "{damaged}");
        assert_eq!(r.malformed.len(), 2);
        assert!(r.check().iter().any(|i| i.contains("frame cut off")), "{:?}", r.check());
        assert!(r.push_line(&format!("noise {line} more")).unwrap().is_ok());
        assert_eq!(r.dispatch.len(), 1);
        assert!(r.push_line("msifw: no frame ~ here ~ or ~here~").is_none());
    }

    pub(crate) fn sample_report() -> Report {
        let mut r = Report::new();
        for line in SAMPLE {
            assert!(matches!(r.push_line(line), Some(Ok(_))), "{line}");
        }
        r
    }

    #[test]
    fn a_restart_in_place_reports_again_and_is_counted_once() {
        // crash-restart: stage A reports the platform and its setup verdicts, restarts, and stage B reports
        // all of it again before its own end.
        let platform = SAMPLE[0];
        let skip = r#"msifw-report {"kind":"scenario","name":"msix-delivery","bdf":"00:04.0","result":"skip","detail":"no msix capability","control":false}"#;
        let problem = SAMPLE[6];
        let pass = r#"msifw-report {"kind":"scenario","name":"crash-restart","bdf":null,"result":"pass","detail":"no stale vector","control":false}"#;
        let end = r#"msifw-report {"kind":"end","passed":1,"failed":0,"skipped":1}"#;
        let mut r = Report::new();
        for line in [platform, skip, problem, platform, pass, skip, problem, end] {
            assert!(matches!(r.push_line(line), Some(Ok(_))), "{line}");
        }
        assert_eq!(r.platform_records, 2);
        assert_eq!(r.scenarios.len(), 2, "{:?}", r.scenarios);
        assert_eq!(r.problems.len(), 1);
        let c = r.counts();
        assert_eq!((c.passed, c.failed, c.skipped), (1, 0, 1));
    }

    #[test]
    fn absorbed_intx_redeliveries_are_a_count_not_a_problem() {
        let mut r = Report::new();
        let line = r#"msifw-report {"kind":"function","bdf":"00:04.0","vendor":"1234","device":"11e8","class":"00ff00","header_type":0,"bars":[],"capabilities":[],"irq_mode":"intx","vectors":[224],"interrupts":6,"intx_redeliveries":3,"driver":"edu","problems":[]}"#;
        assert!(matches!(r.push_line(line), Some(Ok(_))));
        assert_eq!(r.functions[0].intx_redeliveries, 3);
        assert!(r.render_functions().contains("00:04.0: 3 INTx re-deliveries after a claim, absorbed by the hold"));
        assert!(r.problems.is_empty());
        assert_eq!(sample_report().functions[0].intx_redeliveries, 0, "absent from older firmwares: 0");
    }

    #[test]
    fn parses_every_kind() {
        let r = sample_report();
        let p = r.platform.as_ref().unwrap();
        assert_eq!(p.config_access, "ecam");
        assert_eq!((p.bar_assignment.as_str(), p.bar_windows.as_deref()), ("", None), "fields missing from older firmwares default");
        let mut newer = Report::new();
        let line = r#"msifw-report {"kind":"platform","apic_id":0,"x2apic":false,"config_access":"ecam","ecam_base":"0xb0000000","ioapics":1,"cmdline":"","bar_assignment":"msifw","bar_windows":"acpi-crs"}"#;
        assert!(matches!(newer.push_line(line), Some(Ok(_))));
        let p = newer.platform.as_ref().unwrap();
        assert_eq!((p.bar_assignment.as_str(), p.bar_windows.as_deref()), ("msifw", Some("acpi-crs")));
        assert_eq!(p.ecam_base.as_deref(), Some("0xb0000000"));
        assert_eq!(r.functions.len(), 2);
        let e1000e = r.function("00:02.0").unwrap();
        assert_eq!(e1000e.irq_mode, IrqMode::Msix);
        assert_eq!(e1000e.vectors, vec![48, 49]);
        assert_eq!(e1000e.bars[1].kind, BarKind::Io);
        assert_eq!(r.function("00:03.0").unwrap().driver, None);
        assert_eq!(r.scenarios_for("00:02.0").count(), 2);
        assert_eq!(r.problems[0].source, "acpi.mcfg");
        assert_eq!(
            r.end,
            Some(End {
                passed: 2,
                failed: 0,
                skipped: 1
            })
        );
        assert_eq!(
            r.counts(),
            Counts {
                passed: 2,
                failed: 0,
                skipped: 1,
                xfailed: 0,
                xpassed: 0,
            }
        );
        assert!(r.check().is_empty(), "{:?}", r.check());
    }

    #[test]
    fn plain_lines_are_not_records() {
        let mut r = Report::new();
        assert!(r.push_line("msifw: booting").is_none());
        assert!(r.push_line(" msifw-report {}").is_none());
        assert!(r.is_empty());
    }

    #[test]
    fn malformed_lines_are_kept_and_reported() {
        let mut r = Report::new();
        let cases = [
            ("msifw-report {not json", "not valid JSON"),
            ("msifw-report [1,2]", "not a JSON object"),
            (r#"msifw-report {"passed":1}"#, "no string \"kind\""),
            (r#"msifw-report {"kind":"bogus"}"#, "unknown kind"),
            (
                r#"msifw-report {"kind":"end","passed":1}"#,
                "end record does not match",
            ),
            (
                r#"msifw-report {"kind":"end","passed":-1,"failed":0,"skipped":0}"#,
                "end record",
            ),
            (
                r#"msifw-report {"kind":"scenario","name":"x","bdf":null,"result":"maybe","detail":"","control":false}"#,
                "scenario record",
            ),
        ];
        for (line, expected) in cases {
            match r.push_line(line) {
                Some(Err(e)) => assert!(e.to_string().contains(expected), "{line}: {e}"),
                other => panic!("{line}: {other:?}"),
            }
        }
        assert_eq!(r.malformed.len(), cases.len());
        assert!(!r.is_empty());
        let issues = r.check();
        assert!(issues.iter().any(|i| i.contains("no `end` record")));
        assert_eq!(
            issues
                .iter()
                .filter(|i| i.starts_with("malformed report line"))
                .count(),
            cases.len()
        );
    }

    #[test]
    fn end_counts_must_match_scenarios() {
        let mut r = sample_report();
        r.end = Some(End {
            passed: 3,
            failed: 0,
            skipped: 1,
        });
        let issues = r.check();
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert!(issues[0].contains("says 3 passed") && issues[0].contains("add up to 2 passed"));
    }

    #[test]
    fn records_after_end_are_flagged() {
        let mut r = sample_report();
        r.push_line(SAMPLE[3]);
        r.push_line(SAMPLE[7]);
        assert_eq!(r.after_end, 2);
        assert!(r
            .check()
            .iter()
            .any(|i| i.contains("after the `end` record")));
    }

    #[test]
    fn function_table() {
        let table = sample_report().render_functions();
        let expected = "\
functions:
  BDF      ID         CLASS   IRQ   VECTORS  INTS  DRIVER  BARS                 CAPABILITIES
  00:02.0  8086:10d3  020000  msix  48,49       3  e1000e  0:m32 febc0000/128K  pm,msix
                                                           2:io c000/32
  00:03.0  1b36:0010  010802  none  -           0  -       0:m64 febd0000/16K   -
  00:03.0: no MSI-X table
";
        assert_eq!(table, expected, "\n{table}");
        assert_eq!(
            Report::new().render_functions(),
            "functions: none reported\n"
        );
    }

    #[test]
    fn scenario_and_problem_lists() {
        let r = sample_report();
        let expected = "\
scenarios:
  PASS  00:02.0  msix-fire              3 interrupts on vector 48
  PASS  00:02.0  msix-masked (control)  no interrupt while masked
  SKIP  -        ioapic                 not on this machine
";
        assert_eq!(r.render_scenarios(), expected, "\n{}", r.render_scenarios());
        assert_eq!(
            r.render_problems(),
            "problems:\n  [acpi.mcfg] two segments; using the first\n"
        );
        assert_eq!(Report::new().render_problems(), "");
    }

    #[test]
    fn compact_bars_and_sizes() {
        let bar = Bar {
            index: 4,
            kind: BarKind::Mem64,
            prefetchable: true,
            address: "0x00000000C0000000".into(),
            size: 1 << 30,
        };
        assert_eq!(bar.compact(), "4:m64p c0000000/1G");
        assert_eq!(human_size(32), "32");
        assert_eq!(human_size(4096), "4K");
        assert_eq!(human_size(1536), "1536");
        assert_eq!(human_size(1 << 20), "1M");
        assert_eq!(short_hex("0x0"), "0");
        assert_eq!(short_hex("c000"), "c000");
    }

    #[test]
    fn live_descriptions() {
        let r = sample_report();
        let d = describe_record(&Record::Scenario(r.scenarios[1].clone()));
        assert_eq!(
            d,
            "PASS 00:02.0 msix-masked (control): no interrupt while masked"
        );
        assert_eq!(
            describe_record(&Record::End(End {
                passed: 1,
                failed: 2,
                skipped: 3
            })),
            "end: 1 passed, 2 failed, 3 skipped"
        );
    }
}
