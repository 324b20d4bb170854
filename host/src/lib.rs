//! Host side of msifw: builds the firmware, boots it in QEMU, streams and parses its report (COM1),
//! decodes its defmt log (COM2), judges the run (docs/protocol.md; failures a platform is known for
//! become expected failures: [`deviations`]) and asks QEMU itself which PCI
//! functions exist (the test oracle). Serial captures from a machine without QEMU decode into the same
//! outcome ([`capture`], `cargo run -- decode`).
//!
//! The root package's host binary is `fn main() -> ExitCode { msifw_host::cli_main(&catalogue) }`
//! (the catalogue: the firmware's scenario and driver names, for `--list`), so `cargo run -- ARGS` at
//! the workspace root runs [`cli_main`]. Tests use [`run()`] with a
//! [`RunConfig`] and compare with [`qmp_query_pci`].
//!
//! Modules: [`cli`] (arguments), [`qemu`] (configuration and command line), [`firmware`] (nested
//! cargo build), [`mod@run`] (booting), [`report`] (records and tables), [`exit`] (verdicts),
//! [`decode`] (defmt), [`capture`] (serial captures), [`qmp`] (QEMU's view), [`oracle`] (the two
//! compared on every run), [`junit`] (JUnit XML for CI), [`tables`] (`cargo run -- tables DIR`).

pub mod bench;
pub mod bochs;
pub mod capture;
pub mod cli;
pub mod decode;
pub mod deviations;
pub mod exit;
pub mod firmware;
pub mod image;
pub mod junit;
pub mod matrix;
pub mod oracle;
pub mod qemu;
pub mod qmp;
pub mod report;
pub mod run;
pub mod tables;

pub use capture::{decode_capture, split_com1, CaptureError, Com1Capture, DecodeConfig};
pub use cli::{cli_main, cli_run, cli_run_with, list_text, parse_args, Catalogue, CliCommand, CliError, CliOptions, DecodeOptions};
pub use decode::{decode_defmt, DefmtLine, DefmtLog, StreamIssue, TableStatus};
pub use exit::{is_fatal_line, judge, judge_capture, Exit, QemuExit, Verdict};
pub use firmware::{build_firmware, default_elf_path, firmware_elf, workspace_root, FirmwareError};
pub use oracle::{Comparison, Oracle};
pub use qemu::{
    build_command, handover_deadline, shell_quote, Accel, BootPath, ConfigError, Machine, MachineFamily, MachineType, Purpose,
    QemuCommand, QemuProcess, RunConfig, ScratchDir, PVH_CMDLINE_MAX,
};
pub use qmp::{qmp_query_pci, QemuFunction, QemuRegion, QmpClient, QmpError, RegionKind};
pub use deviations::{Deviation, DeviationNote, HostPlatform, QemuVersion, DEVIATIONS};
pub use report::{
    parse_record, Bar, BarKind, Capability, Cpu, End, Function, IrqMode, Platform, Problem, Record,
    RecordError, Report, Scenario, ScenarioResult,
};
pub use run::{
    decode_com2, line_text, outcome, run, run_all, split_scenario_all, CaptureSource, Com1Log, QemuRun, RunError,
    RunOutcome, Source, OWN_RUN_SCENARIOS,
};
