//! The command line of `cargo run -- ARGS` (the host build of the `msifw` binary), parsed with clap:
//! subcommands `run` (the default when none is given), `bench`, `matrix`, `image`, `decode` and
//! `tables`.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};

use crate::bench::{bench, BenchOptions};
use crate::capture::{decode_capture, DecodeConfig};
use crate::qemu::{Accel, BootPath, Machine, RunConfig};
use crate::run::{run_all, RunOutcome};

/// Exit code for bad arguments.
pub const EXIT_USAGE: u8 = 64;
/// Exit code when the run could not be carried out (build failed, QEMU missing, a capture or ELF
/// missing) or `--json`/`--junit` could not be written.
pub const EXIT_ERROR: u8 = 5;

/// What `--help` says before the options.
const ABOUT: &str = "\
Builds the msifw firmware, boots it in QEMU and reports what it found (`run`, the default when no
subcommand is given). `decode` reports the same from serial captures of a machine that ran the
firmware without QEMU; `bench` prints the performance figures (README \"Performance\"); `image`
writes a GRUB ISO (BIOS and UEFI) for real machines; `matrix` runs the scenario set on every
combination of machine, boot path, accelerator and QEMU binary. `tables` says what msifw would
do with a machine's ACPI tables, before flashing it.";

/// What `--help` says after the options.
const EXIT_STATUS: &str = "\
Exit status: 0 passed, 1 scenario failures or incomplete report, 2 firmware panic or CPU
exception, 3 timeout, 4 crash (triple fault, reset, QEMU died), 5 could not run (firmware
build failed, QEMU missing, a capture or the ELF unreadable) or --json/--junit not written, 64 bad
arguments. A decoded capture exits 0, 1 or 2.";

/// The whole command line.
#[derive(Parser, Debug)]
#[command(
    name = "msifw",
    bin_name = "cargo run --",
    about = ABOUT,
    after_help = EXIT_STATUS,
    args_conflicts_with_subcommands = true,
    args_override_self = true,
    disable_version_flag = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The options of `run`, given without the subcommand.
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build the firmware, boot it in QEMU and report (the default).
    Run(RunArgs),
    /// The performance figures: floor ratio, dispatch ratio, accesses per function, image size, scale.
    #[command(
        after_help = "Build with `cargo run --release -- bench`; the figures need --runs 5 or more and --dispatch 10000 or more."
    )]
    Bench(BenchArgs),
    /// The scenario set on every combination of machine, boot path, accelerator and QEMU binary: a
    /// progress line per cell, then a table per scenario and device.
    Matrix(MatrixArgs),
    /// Write a GRUB ISO (BIOS and UEFI) that boots the firmware through Multiboot2, and the ELF
    /// beside it as FILE.elf (for `decode`); installs Debian's grub-pc-bin, grub-efi-amd64-bin,
    /// xorriso and mtools when they are missing.
    Image(ImageArgs),
    /// Decode serial captures of a machine that ran the firmware without QEMU.
    Decode(DecodeArgs),
    /// What msifw would do with a machine's ACPI tables (root bridges, MADT, every _PRT resolved,
    /// problems): run `acpidump > t.txt && acpixtract -a t.txt` on it under Linux, then this on the
    /// directory.
    #[command(
        after_help = "Exit status: 0 nothing to report, 1 problems listed, 5 a table unreadable or truncated, no \
                      dsdt.dat, or --json not written, 64 bad arguments (DIR not a directory)."
    )]
    Tables(TablesArgs),
    /// Boot the firmware's GRUB ISO in the Bochs emulator (its own BIOS or SeaBIOS), wait for the
    /// report on COM1, kill Bochs and report as `decode` does (needs Debian's bochs, bochsbios,
    /// bochs-term, vgabios and seabios).
    Bochs(BochsArgs),
}

/// `tables`' options.
#[derive(Args, Debug, Clone, PartialEq)]
struct TablesArgs {
    /// The directory `acpixtract -a` wrote (dsdt.dat, ssdt*.dat, apic.dat, facp.dat, mcfg.dat, ...;
    /// SSDTs in xsdt-order.txt's order when it has one, else by number)
    #[arg(value_name = "DIR", value_parser = non_empty_path)]
    dir: PathBuf,
    /// Also write the result as JSON to FILE
    #[arg(long, value_name = "FILE", value_parser = non_empty_path)]
    json: Option<PathBuf>,
}

/// `bochs`'s options.
#[derive(Args, Debug, Clone, PartialEq)]
struct BochsArgs {
    /// The BIOS Bochs runs
    #[arg(long, value_enum, default_value = "bochs")]
    bios: crate::bochs::Bios,
    /// The firmware command line in grub.cfg (words without quotes, $, ;, braces or newlines)
    #[arg(long, value_name = "TEXT", default_value = "", allow_hyphen_values = true, value_parser = grub_words)]
    append: String,
    /// Kill Bochs when the report has not ended after this long [default: 120]
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout, allow_negative_numbers = true)]
    timeout: Option<Duration>,
    /// Boot this ELF instead of building the firmware
    #[arg(long, value_name = "PATH", value_parser = non_empty_path)]
    elf: Option<PathBuf>,
    /// Bochs binary
    #[arg(long, value_name = "PATH", default_value = crate::bochs::DEFAULT_BOCHS, value_parser = non_empty_path)]
    bochs: PathBuf,
    /// Also write the results as JSON to FILE
    #[arg(long, value_name = "FILE", value_parser = non_empty_path)]
    json: Option<PathBuf>,
    /// Also write the results as JUnit XML to FILE
    #[arg(long, value_name = "FILE", value_parser = non_empty_path)]
    junit: Option<PathBuf>,
}

/// `run`'s options (also accepted without the subcommand).
#[derive(Args, Debug, Clone, PartialEq)]
struct RunArgs {
    /// QEMU machine type
    #[arg(long, value_enum, default_value = "q35", hide_possible_values = false)]
    machine: Machine,
    /// Add `-device SPEC` (repeatable)
    #[arg(long = "device", value_name = "SPEC", value_parser = non_empty)]
    devices: Vec<String>,
    /// Leave out e1000e (02.0), nvme (03.0) and edu (04.0)
    #[arg(long)]
    no_default_devices: bool,
    /// Do not hold the firmware's function list against QEMU's query-pci (on by default: a
    /// mismatch fails the run; README, The oracle)
    #[arg(long)]
    no_oracle: bool,
    /// Pass ARG to QEMU verbatim (repeatable; ARG may start with a dash: --qemu-arg -d --qemu-arg int)
    #[arg(long = "qemu-arg", value_name = "ARG", allow_hyphen_values = true)]
    qemu_args: Vec<String>,
    /// Firmware command line (QEMU -append; at most 4095 bytes with PVH, the launcher's `oracle ` word included)
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    append: Option<String>,
    /// Hot-remove device ID (QMP device_del) when the firmware asks for it (with --append scenario=hot-unplug)
    #[arg(long, value_name = "ID", value_parser = non_empty)]
    unplug: Option<String>,
    /// Accelerator
    #[arg(long, value_enum, default_value = "tcg")]
    accel: Accel,
    /// How the firmware starts: QEMU's PVH loader, or a GRUB ISO made for the run (Multiboot2) under SeaBIOS or OVMF
    #[arg(long, value_enum, default_value = "pvh")]
    boot: BootPath,
    /// Kill QEMU after this long [default: 120]
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout, allow_negative_numbers = true)]
    timeout: Option<Duration>,
    /// Also write the results as JSON to FILE
    #[arg(long, value_name = "FILE", value_parser = non_empty_path)]
    json: Option<PathBuf>,
    /// Also write the results as JUnit XML to FILE (a test case per scenario line and per device)
    #[arg(long, value_name = "FILE", value_parser = non_empty_path)]
    junit: Option<PathBuf>,
    /// Boot this ELF instead of building the firmware
    #[arg(long, value_name = "PATH", value_parser = non_empty_path)]
    elf: Option<PathBuf>,
    /// QEMU binary
    #[arg(long, value_name = "PATH", default_value = crate::qemu::DEFAULT_QEMU, value_parser = non_empty_path)]
    qemu: PathBuf,
    /// Print the scenarios and drivers this firmware has, and exit
    #[arg(long)]
    list: bool,
}

/// `bench`'s options.
#[derive(Args, Debug, Clone, PartialEq)]
struct BenchArgs {
    /// Also write the figures as JSON to FILE
    #[arg(long, value_name = "FILE", value_parser = non_empty_path)]
    json: Option<PathBuf>,
    /// Boots of each firmware for the floor ratio
    #[arg(long, value_name = "N", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=1000))]
    runs: u32,
    /// Interrupts per source and path in the dispatch benchmark
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    dispatch: u32,
    /// Device counts for the scale figure, 1-64 each [default: 1,8,32]
    #[arg(long, value_name = "N,N,..", value_parser = parse_scale)]
    scale: Option<Scale>,
    /// QEMU binary
    #[arg(long, value_name = "PATH", default_value = crate::qemu::DEFAULT_QEMU, value_parser = non_empty_path)]
    qemu: PathBuf,
    /// Accelerator
    #[arg(long, value_enum, default_value = "tcg")]
    accel: Accel,
    /// Measure this firmware ELF instead of building the release one
    #[arg(long, value_name = "PATH", value_parser = non_empty_path)]
    elf: Option<PathBuf>,
}

/// `matrix`'s options.
#[derive(Args, Debug, Clone, PartialEq)]
struct MatrixArgs {
    /// QEMU binary (repeatable: several compare QEMU versions) [default: qemu-system-x86_64]
    #[arg(long = "qemu", value_name = "PATH", value_parser = non_empty_path)]
    qemus: Vec<PathBuf>,
    /// Machine type (repeatable) [default: q35 and pc]
    #[arg(long = "machine", value_name = "MACHINE", value_enum)]
    machines: Vec<Machine>,
    /// Boot path (repeatable) [default: all three]
    #[arg(long = "boot", value_name = "BOOT", value_enum)]
    boots: Vec<BootPath>,
    /// Accelerator (repeatable; KVM cells run only where a plain boot under KVM passes) [default: tcg and kvm]
    #[arg(long = "accel", value_name = "ACCEL", value_enum)]
    accels: Vec<Accel>,
    /// The firmware command line of every cell
    #[arg(
        long,
        value_name = "TEXT",
        default_value = "scenario=all",
        allow_hyphen_values = true
    )]
    append: String,
    /// Also write the cells as JSON to FILE
    #[arg(long, value_name = "FILE", value_parser = non_empty_path)]
    json: Option<PathBuf>,
    /// Also write the cells as JUnit XML to FILE (a test suite per cell)
    #[arg(long, value_name = "FILE", value_parser = non_empty_path)]
    junit: Option<PathBuf>,
    /// Run only cells K-1, K-1+N, K-1+2N, ... of the plan (from 0, in the order qemu, accel, machine,
    /// boot), for a CI fan-out; join the shards' --json with --merge
    #[arg(long, value_name = "K/N", value_parser = crate::matrix::Shard::parse)]
    shard: Option<crate::matrix::Shard>,
    /// Join the --json files of shards into one table and exit status (every cell exactly once);
    /// runs nothing
    #[arg(long, value_name = "JSON", num_args = 1.., value_parser = non_empty_path,
          conflicts_with_all = ["qemus", "machines", "boots", "accels", "append", "timeout", "no_oracle", "shard"])]
    merge: Vec<PathBuf>,
    /// Limit per QEMU boot [default: 180]
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout, allow_negative_numbers = true)]
    timeout: Option<Duration>,
    /// No oracle on the boots
    #[arg(long)]
    no_oracle: bool,
}

/// `image`'s options.
#[derive(Args, Debug, Clone, PartialEq)]
struct ImageArgs {
    /// Where to write the ISO
    #[arg(value_name = "FILE", value_parser = non_empty_path)]
    out: PathBuf,
    /// The firmware command line in grub.cfg (words without quotes, $, ;, braces or newlines)
    #[arg(long, value_name = "TEXT", default_value = "", allow_hyphen_values = true, value_parser = grub_words)]
    append: String,
}

/// `decode`'s options.
#[derive(Args, Debug, Clone, PartialEq)]
struct DecodeArgs {
    /// The raw COM1 output (text and report records; boot loader output before the firmware, CRLF
    /// and terminal escapes are fine)
    #[arg(value_name = "COM1_CAPTURE", value_parser = non_empty_path)]
    com1: PathBuf,
    /// The raw COM2 bytes (the defmt log; leave it out if the machine has one port)
    #[arg(long, value_name = "COM2_CAPTURE", value_parser = non_empty_path)]
    com2: Option<PathBuf>,
    /// The firmware ELF that ran [default: the one `cargo run` builds, target/x86_64-unknown-none/debug/msifw,
    /// release/ with --release; an image FILE keeps it as FILE.elf]
    #[arg(long, value_name = "PATH", value_parser = non_empty_path)]
    elf: Option<PathBuf>,
    /// Also write the results as JSON to FILE
    #[arg(long, value_name = "FILE", value_parser = non_empty_path)]
    json: Option<PathBuf>,
    /// Also write the results as JUnit XML to FILE
    #[arg(long, value_name = "FILE", value_parser = non_empty_path)]
    junit: Option<PathBuf>,
}

fn non_empty(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("a non-empty value is expected".into())
    } else {
        Ok(s.to_string())
    }
}

fn non_empty_path(s: &str) -> Result<PathBuf, String> {
    non_empty(s).map(PathBuf::from)
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| "a positive number of seconds is expected".to_string())?;
    if secs.is_finite() && secs > 0.0 && secs < 1e9 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err("a positive number of seconds is expected".into())
    }
}

/// `bench --scale`'s device counts (one value for clap, several counts).
#[derive(Clone, Debug, PartialEq)]
struct Scale(Vec<usize>);

fn parse_scale(s: &str) -> Result<Scale, String> {
    let counts: Option<Vec<usize>> = s
        .split(',')
        .map(|n| n.trim().parse().ok().filter(|n| (1..=64).contains(n)))
        .collect();
    counts
        .filter(|c| !c.is_empty())
        .map(Scale)
        .ok_or_else(|| "device counts 1-64, comma-separated, are expected".into())
}

fn grub_words(s: &str) -> Result<String, String> {
    crate::image::grub_cfg(s).map(|_| s.to_string()).map_err(|e| format!("{e}: firmware command-line words (no quotes, $, ;, braces or newlines) are expected"))
}

/// Parsed `run` command line.
#[derive(Clone, Debug, PartialEq)]
pub struct CliOptions {
    /// The run to do.
    pub config: RunConfig,
    /// Where to write the JSON results.
    pub json: Option<PathBuf>,
    /// Where to write the JUnit XML.
    pub junit: Option<PathBuf>,
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum CliCommand {
    /// Print this text (the usage, asked for with `-h`/`--help`) and exit 0.
    Help(String),
    /// Print the scenarios and drivers (`--list`).
    List,
    /// Build, boot and report.
    Run(CliOptions),
    /// The performance benchmark.
    Bench(BenchOptions),
    /// Decode serial captures (`decode`).
    Decode(DecodeOptions),
    /// The platform matrix.
    Matrix(crate::matrix::MatrixOptions),
    /// Join shards' matrix JSON (`matrix --merge`).
    Merge {
        /// The shards' JSON files.
        files: Vec<PathBuf>,
        /// Where to write the joined JSON.
        json: Option<PathBuf>,
        /// Where to write JUnit XML.
        junit: Option<PathBuf>,
    },
    /// What msifw would do with a directory of ACPI tables (`tables`).
    Tables {
        /// The directory.
        dir: PathBuf,
        /// Where to write the JSON.
        json: Option<PathBuf>,
    },
    /// Boot in Bochs (`bochs`).
    Bochs {
        /// The boot.
        config: crate::bochs::BochsConfig,
        /// Where to write the JSON results.
        json: Option<PathBuf>,
        /// Where to write the JUnit XML.
        junit: Option<PathBuf>,
    },
    /// Write a bootable ISO.
    Image {
        /// Where.
        out: PathBuf,
        /// The firmware command line in grub.cfg.
        append: String,
    },
}

/// Parsed `decode` command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeOptions {
    /// The captures and the ELF.
    pub config: DecodeConfig,
    /// Where to write the JSON results.
    pub json: Option<PathBuf>,
    /// Where to write the JUnit XML.
    pub junit: Option<PathBuf>,
}

/// A bad command line (exit status [`EXIT_USAGE`]).
#[derive(Debug)]
pub enum CliError {
    /// What clap refused: an unknown option or subcommand, a missing or invalid value, a stray
    /// argument. Its text names the argument and what is accepted.
    Usage(clap::Error),
    /// The options together ask for what QEMU cannot do (an `--append` longer than QEMU's PVH
    /// command-line buffer).
    Config(String),
}

impl CliError {
    /// clap's kind of error, for a [`CliError::Usage`].
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            CliError::Usage(e) => Some(e.kind()),
            CliError::Config(_) => None,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(e) => {
                write!(f, "{}", e.to_string().trim_end())?;
                // A word clap does not know may be meant for QEMU.
                if matches!(
                    e.kind(),
                    ErrorKind::UnknownArgument | ErrorKind::InvalidSubcommand
                ) {
                    write!(f, "\n(to pass an argument to QEMU, use --qemu-arg=ARG)")?;
                }
                Ok(())
            }
            CliError::Config(e) => write!(f, "error: {e}"),
        }
    }
}

impl std::error::Error for CliError {}

/// Parses the arguments after the program name. Values may follow as the next argument or after
/// `=` (`--timeout=30`); `--qemu-arg -d` passes an argument that starts with a dash. Without a
/// subcommand the arguments are `run`'s.
pub fn parse_args<I>(args: I) -> Result<CliCommand, CliError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let argv = std::iter::once(OsString::from("msifw")).chain(args.into_iter().map(Into::into));
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            return Ok(CliCommand::Help(e.to_string()))
        }
        Err(e) => return Err(CliError::Usage(e)),
    };
    match cli.command {
        None => run_command(cli.run),
        Some(Command::Run(args)) => run_command(args),
        Some(Command::Bench(b)) => Ok(CliCommand::Bench(BenchOptions {
            runs: b.runs as usize,
            dispatch: b.dispatch,
            scale: b
                .scale
                .map_or_else(|| BenchOptions::default().scale, |s| s.0),
            json: b.json,
            qemu: b.qemu,
            accel: b.accel,
            elf: b.elf,
        })),
        Some(Command::Matrix(m)) => matrix_command(m),
        Some(Command::Image(i)) => Ok(CliCommand::Image {
            out: i.out,
            append: i.append,
        }),
        Some(Command::Bochs(b)) => Ok(CliCommand::Bochs {
            config: crate::bochs::BochsConfig {
                bios: b.bios,
                elf: b.elf,
                append: b.append,
                timeout: b.timeout.unwrap_or(crate::bochs::DEFAULT_TIMEOUT),
                bochs: b.bochs,
            },
            json: b.json,
            junit: b.junit,
        }),
        Some(Command::Decode(d)) => Ok(CliCommand::Decode(DecodeOptions {
            config: DecodeConfig {
                com1: d.com1,
                com2: d.com2,
                elf: d.elf,
                echo: true,
            },
            json: d.json,
            junit: d.junit,
        })),
        Some(Command::Tables(t)) => Ok(CliCommand::Tables { dir: t.dir, json: t.json }),
    }
}

fn run_command(a: RunArgs) -> Result<CliCommand, CliError> {
    if a.list {
        return Ok(CliCommand::List);
    }
    let mut cfg = RunConfig::new();
    cfg.machine = a.machine;
    cfg.accel = a.accel;
    cfg.boot = a.boot;
    cfg.devices = a.devices;
    cfg.default_devices = !a.no_default_devices;
    cfg.oracle = !a.no_oracle;
    cfg.qemu_args = a.qemu_args;
    cfg.append = a.append;
    cfg.unplug = a.unplug;
    if let Some(t) = a.timeout {
        cfg.timeout = t;
    }
    cfg.elf = a.elf;
    cfg.qemu = a.qemu;
    cfg.validate()
        .map_err(|e| CliError::Config(e.to_string()))?;
    Ok(CliCommand::Run(CliOptions {
        config: cfg,
        json: a.json,
        junit: a.junit,
    }))
}

fn matrix_command(m: MatrixArgs) -> Result<CliCommand, CliError> {
    if !m.merge.is_empty() {
        return Ok(CliCommand::Merge {
            files: m.merge,
            json: m.json,
            junit: m.junit,
        });
    }
    let mut opts = crate::matrix::MatrixOptions::default();
    if !m.qemus.is_empty() {
        opts.qemus = m.qemus;
    }
    if !m.machines.is_empty() {
        opts.machines = m.machines;
    }
    if !m.boots.is_empty() {
        opts.boots = m.boots;
    }
    if !m.accels.is_empty() {
        opts.accels = m.accels;
    }
    opts.append = m.append;
    opts.json = m.json;
    opts.junit = m.junit;
    opts.shard = m.shard;
    opts.oracle = !m.no_oracle;
    if let Some(t) = m.timeout {
        opts.timeout = t;
    }
    // Every command line a PVH cell boots (`scenario=all` is split into several) must fit QEMU's buffer.
    let lines =
        crate::run::split_scenario_all(&opts.append).unwrap_or_else(|| vec![opts.append.clone()]);
    for line in lines {
        RunConfig::new()
            .append(line)
            .oracle(opts.oracle)
            .validate()
            .map_err(|e| CliError::Config(e.to_string()))?;
    }
    Ok(CliCommand::Matrix(opts))
}

/// What the firmware has, for `--list` and `tables`: the host crate cannot see the firmware crate (which
/// depends on it), so the binary's `main` (src/main.rs) passes in its driver table and its table
/// pre-flight. Scenarios come from `msifw-proto`, which both sides share.
#[derive(Clone, Copy, Debug, Default)]
pub struct Catalogue<'a> {
    /// Each driver in probe order: its name (as the report's `driver` field has it), the vectors it asks
    /// for, and the interrupt sources it drives with all of them.
    pub drivers: &'a [(&'a str, u16, usize)],
    /// The firmware's parsing and routing run on a directory's tables (`msifw::platform::preflight`).
    pub preflight: Option<fn(&crate::tables::TableDir) -> crate::tables::Preflight>,
}

/// The text `--list` prints.
pub fn list_text(catalogue: &Catalogue<'_>) -> String {
    use msifw_proto::names::{Control, Scenario, When, SELECTABLE};
    let mut out = String::from("scenarios, in run order:\n");
    for s in Scenario::ALL {
        let when = match s.when() {
            When::Always => "every run",
            When::Setting => "when its setting asks",
            When::Asked => "scenario=NAME or scenario=all",
            When::OwnBoot => "scenario=NAME; a boot of its own under scenario=all",
            When::ByName => "scenario=NAME only",
            When::OnFailure => "reported when the run meets it",
        };
        let control = match s.control() {
            Control::None => "",
            Control::SameRun => "; negative control in the same run",
            Control::OwnBoot => "; negative control NAME-control in a boot of its own",
        };
        out.push_str(&format!("  {:<22} {when}{control}; on {}\n", s.name(), s.applies_to()));
    }
    out.push_str("scenario= words (or all):");
    for sel in SELECTABLE {
        out.push(' ');
        out.push_str(sel.name);
    }
    out.push_str("\ndrivers, in probe order (vectors asked, sources driven):\n");
    for (name, vectors, sources) in catalogue.drivers {
        out.push_str(&format!("  {name:<12} {vectors} vectors, {sources} sources\n"));
    }
    if catalogue.drivers.is_empty() {
        out.push_str("  (none: this build was given no catalogue)\n");
    }
    out
}

/// The host binary's `main`: parses `std::env::args_os`, runs, prints, and maps the verdict to the
/// exit code (see the usage's "Exit status"). `catalogue` is what `--list` prints.
pub fn cli_main(catalogue: &Catalogue<'_>) -> ExitCode {
    ExitCode::from(cli_run_with(catalogue, std::env::args_os().skip(1)))
}

/// [`cli_main`] for given arguments, returning the exit code (`--list` prints an empty catalogue).
pub fn cli_run<I>(args: I) -> u8
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    cli_run_with(&Catalogue::default(), args)
}

/// [`cli_run`] with the firmware's catalogue for `--list`.
pub fn cli_run_with<I>(catalogue: &Catalogue<'_>, args: I) -> u8
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let options = match parse_args(args) {
        Ok(CliCommand::Help(text)) => {
            print!("{text}");
            return 0;
        }
        Ok(CliCommand::List) => {
            print!("{}", list_text(catalogue));
            return 0;
        }
        Ok(CliCommand::Run(options)) => options,
        Ok(CliCommand::Bench(opts)) => return run_bench(&opts),
        Ok(CliCommand::Decode(opts)) => return run_decode(&opts),
        Ok(CliCommand::Image { out, append }) => return run_image(&out, &append),
        Ok(CliCommand::Tables { dir, json }) => return run_tables(catalogue, &dir, json.as_deref()),
        Ok(CliCommand::Bochs { config, json, junit }) => {
            return match crate::bochs::run_bochs(&config) {
                Ok(outcome) => report_outcome(&outcome, json.as_deref(), junit.as_deref()),
                Err(e) => {
                    eprintln!("msifw: error: bochs: {e}");
                    EXIT_ERROR
                }
            }
        }
        Ok(CliCommand::Matrix(opts)) => return run_matrix(&opts),
        Ok(CliCommand::Merge { files, json, junit }) => {
            return run_merge(&files, json.as_deref(), junit.as_deref())
        }
        Err(e) => {
            eprintln!("msifw: {e}\nTry `cargo run -- --help`.");
            return EXIT_USAGE;
        }
    };
    let outcome = match run_all(&options.config) {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("msifw: error: {e}");
            return EXIT_ERROR;
        }
    };
    report_outcome(&outcome, options.json.as_deref(), options.junit.as_deref())
}

/// `tables DIR [--json FILE]`: reads DIR, runs the firmware's pre-flight on it, prints and writes the
/// result. 0 when it lists no problem, 1 when it does; [`crate::tables::TablesError::exit_code`] when DIR
/// cannot be read.
fn run_tables(catalogue: &Catalogue<'_>, dir: &Path, json: Option<&Path>) -> u8 {
    let Some(preflight) = catalogue.preflight else {
        eprintln!("msifw: error: tables: this build was given no pre-flight (run it as `cargo run -- tables DIR`)");
        return EXIT_ERROR;
    };
    let tables = match crate::tables::read_dir(dir) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("msifw: error: tables: {e}");
            return e.exit_code();
        }
    };
    let result = preflight(&tables);
    print!("{}", result.render());
    if let Some(path) = json {
        let text = match serde_json::to_string_pretty(&result) {
            Ok(text) => text + "\n",
            Err(e) => {
                eprintln!("msifw: error: tables: JSON: {e}");
                return EXIT_ERROR;
            }
        };
        if !write_file(path, &text) {
            return EXIT_ERROR;
        }
    }
    u8::from(!result.problems.is_empty())
}

fn run_decode(opts: &DecodeOptions) -> u8 {
    let cfg = &opts.config;
    eprintln!(
        "decode: COM1 {}{}",
        cfg.com1.display(),
        match &cfg.com2 {
            Some(com2) => format!(
                ", COM2 {} with the defmt table of {}",
                com2.display(),
                cfg.elf_path().display()
            ),
            None => String::new(),
        }
    );
    match decode_capture(cfg) {
        Ok(outcome) => report_outcome(&outcome, opts.json.as_deref(), opts.junit.as_deref()),
        Err(e) => {
            eprintln!("msifw: error: {e}");
            EXIT_ERROR
        }
    }
}

/// Prints the outcome, writes `--json` and `--junit`, and returns the exit code: shared by a QEMU run
/// and a decode.
fn report_outcome(outcome: &RunOutcome, json: Option<&Path>, junit: Option<&Path>) -> u8 {
    println!();
    print!("{}", outcome.render());
    let mut code = outcome.exit.code();
    if let Some(path) = json {
        let text = match serde_json::to_string_pretty(&outcome.to_json()) {
            Ok(text) => text + "\n",
            Err(e) => format!("{{\"error\": \"{e}\"}}\n"),
        };
        if !write_file(path, &text) && code == 0 {
            code = EXIT_ERROR;
        }
    }
    if let Some(path) = junit {
        if !write_file(
            path,
            &crate::junit::render(&[crate::junit::run_suite(outcome)]),
        ) && code == 0
        {
            code = EXIT_ERROR;
        }
    }
    code
}

/// Writes `text` to `path`; says so and returns false when it cannot.
fn write_file(path: &Path, text: &str) -> bool {
    match std::fs::write(path, text) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("msifw: error: could not write {}: {e}", path.display());
            false
        }
    }
}

fn run_matrix(opts: &crate::matrix::MatrixOptions) -> u8 {
    // Build the firmware once, before the first cell.
    if let Err(e) = crate::firmware::firmware_elf() {
        eprintln!("msifw: error: {e}");
        return EXIT_ERROR;
    }
    if let Some(shard) = opts.shard {
        eprintln!(
            "matrix: shard {shard}: {} of the plan's {} cells",
            crate::matrix::plan(opts)
                .iter()
                .filter(|p| shard.has(p.index))
                .count(),
            crate::matrix::plan(opts).len()
        );
    }
    let (cells, json, table) = crate::matrix::matrix(opts);
    print!("\n{table}");
    finish_matrix(
        &cells,
        &json,
        opts.qemus.len(),
        opts.json.as_deref(),
        opts.junit.as_deref(),
    )
}

fn run_merge(files: &[PathBuf], json: Option<&Path>, junit: Option<&Path>) -> u8 {
    let mut docs = Vec::new();
    for f in files {
        let doc = std::fs::read_to_string(f)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| format!("not JSON: {e}")));
        match doc {
            Ok(doc) => docs.push((f.display().to_string(), doc)),
            Err(e) => {
                eprintln!("msifw: error: {}: {e}", f.display());
                return EXIT_ERROR;
            }
        }
    }
    let merged = match crate::matrix::merge(&docs) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("msifw: error: matrix --merge: {e}");
            return EXIT_ERROR;
        }
    };
    print!("{}", crate::matrix::render(&merged.cells, merged.qemus));
    finish_matrix(&merged.cells, &merged.json, merged.qemus, json, junit)
}

/// The matrix's summary line, `--json`, `--junit`, and its exit status (0 when every cell that ran passed).
fn finish_matrix(
    cells: &[crate::matrix::Cell],
    doc: &serde_json::Value,
    qemus: usize,
    json: Option<&Path>,
    junit: Option<&Path>,
) -> u8 {
    let (p, f, s) = crate::matrix::totals(cells);
    println!(
        "msifw matrix: {} cells, {p} scenario results passed, {f} failed, {s} skipped",
        cells.len()
    );
    if let Some(path) = json {
        if !write_file(
            path,
            &(serde_json::to_string_pretty(doc).unwrap_or_default() + "\n"),
        ) {
            return EXIT_ERROR;
        }
    }
    if let Some(path) = junit {
        let suites: Vec<_> = cells
            .iter()
            .map(|c| crate::junit::cell_suite(c, &c.label(qemus)))
            .collect();
        if !write_file(path, &crate::junit::render(&suites)) {
            return EXIT_ERROR;
        }
    }
    if crate::matrix::all_passed(cells) {
        0
    } else {
        1
    }
}

fn run_image(out: &std::path::Path, append: &str) -> u8 {
    let elf = match crate::firmware::firmware_elf() {
        Ok(elf) => elf,
        Err(e) => {
            eprintln!("msifw: error: {e}");
            return EXIT_ERROR;
        }
    };
    let work = match crate::qemu::ScratchDir::create() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("msifw: error: could not create a scratch directory: {e}");
            return EXIT_ERROR;
        }
    };
    match crate::image::build_iso(&elf, append, out, work.path()) {
        Ok(()) => {
            println!(
                "msifw: wrote {} (GRUB, BIOS and UEFI; firmware command line {append:?})",
                out.display()
            );
            println!(
                "msifw: the ELF it holds is {} (for `cargo run -- decode --elf`)",
                crate::image::elf_beside(out).display()
            );
            println!("msifw: write it to a USB stick with `dd if={} of=/dev/sdX bs=4M`, boot it, and capture COM1 (115200 8N1; COM2 carries the defmt log)", out.display());
            0
        }
        Err(e) => {
            eprintln!("msifw: error: {e}");
            EXIT_ERROR
        }
    }
}

fn run_bench(opts: &BenchOptions) -> u8 {
    if opts.runs < 5 || opts.dispatch < 10_000 {
        eprintln!("msifw: note: the figures need --runs 5 or more and --dispatch 10000 or more; these are for a quick look");
    }
    let result = match bench(opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("msifw: error: {e}");
            return EXIT_ERROR;
        }
    };
    print!("{}", result.table);
    if let Some(path) = &opts.json {
        let text = serde_json::to_string_pretty(&result.json).unwrap_or_default() + "\n";
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("msifw: error: could not write {}: {e}", path.display());
            return EXIT_ERROR;
        }
    }
    // Missed targets are figures, not failures; a boot that did not do its job is.
    if result.ok {
        0
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_opts(args: &[&str]) -> CliOptions {
        match parse_args(args.iter().copied()) {
            Ok(CliCommand::Run(o)) => o,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    /// The error's kind, and that its text names `word`.
    fn refused(args: &[&str], word: &str) -> Option<ErrorKind> {
        let err = parse_args(args.iter().copied()).expect_err(&format!("{args:?} accepted"));
        let text = err.to_string();
        assert!(text.contains(word), "{args:?}: {text}");
        err.kind()
    }

    #[test]
    fn defaults() {
        let o = run_opts(&[]);
        assert_eq!(o.config, RunConfig::new());
        assert_eq!(o.json, None);
        assert_eq!(o.config.timeout, Duration::from_secs(120));
        // `run` spelled out is the same.
        assert_eq!(parse_args(["run"]).unwrap(), CliCommand::Run(o));
    }

    #[test]
    fn every_option() {
        let args = [
            "--machine",
            "pc",
            "--device",
            "pci-testdev",
            "--device=edu,addr=05.0",
            "--no-default-devices",
            "--qemu-arg",
            "-d",
            "--qemu-arg=int",
            "--append",
            "a b=c",
            "--accel",
            "kvm",
            "--timeout",
            "2.5",
            "--json",
            "out.json",
            "--elf",
            "fw.elf",
            "--qemu",
            "/opt/q",
            "--unplug",
            "nic1",
            "--boot",
            "iso-bios",
        ];
        let o = run_opts(&args);
        let c = &o.config;
        assert_eq!(c.machine, Machine::Pc);
        assert_eq!(c.devices, ["pci-testdev", "edu,addr=05.0"]);
        assert!(!c.default_devices);
        assert_eq!(c.qemu_args, ["-d", "int"]);
        assert_eq!(c.append.as_deref(), Some("a b=c"));
        assert_eq!(c.accel, Accel::Kvm);
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert_eq!(o.json, Some(PathBuf::from("out.json")));
        assert_eq!(c.elf, Some(PathBuf::from("fw.elf")));
        assert_eq!(c.qemu, PathBuf::from("/opt/q"));
        assert_eq!(c.unplug.as_deref(), Some("nic1"));
        assert_eq!(c.boot, BootPath::IsoBios);
        assert!(c.echo);
        // The same after `run`.
        let mut with_run = vec!["run"];
        with_run.extend(args);
        assert_eq!(parse_args(with_run).unwrap(), CliCommand::Run(o));
        // The last of a repeated single option counts.
        assert_eq!(
            run_opts(&["--machine", "pc", "--machine=q35"])
                .config
                .machine,
            Machine::Q35
        );
    }

    #[test]
    fn matrix_options() {
        let Ok(CliCommand::Matrix(m)) = parse_args(["matrix"]) else {
            panic!("matrix not parsed")
        };
        assert_eq!(m, crate::matrix::MatrixOptions::default());
        let Ok(CliCommand::Matrix(m)) = parse_args([
            "matrix",
            "--qemu",
            "/a/qemu",
            "--qemu=/b/qemu",
            "--machine",
            "pc",
            "--boot",
            "iso-uefi",
            "--accel",
            "tcg",
            "--append",
            "rounds=3",
            "--timeout",
            "30",
            "--json",
            "m.json",
        ]) else {
            panic!("matrix options not parsed")
        };
        assert_eq!(
            m.qemus,
            [PathBuf::from("/a/qemu"), PathBuf::from("/b/qemu")]
        );
        assert_eq!(
            (
                m.machines.as_slice(),
                m.boots.as_slice(),
                m.accels.as_slice()
            ),
            (
                &[Machine::Pc][..],
                &[BootPath::IsoUefi][..],
                &[Accel::Tcg][..]
            )
        );
        assert_eq!(m.append, "rounds=3");
        assert_eq!(m.timeout, Duration::from_secs(30));
        assert_eq!(m.json, Some(PathBuf::from("m.json")));
        let Ok(CliCommand::Matrix(m)) =
            parse_args(["matrix", "--machine", "pc", "--machine", "q35"])
        else {
            panic!("two machines")
        };
        assert_eq!(m.machines, [Machine::Pc, Machine::Q35]);
        assert_eq!(
            refused(&["matrix", "--machine", "virt"], "virt"),
            Some(ErrorKind::InvalidValue)
        );
    }

    #[test]
    fn bochs_subcommand() {
        let Ok(CliCommand::Bochs { config, json, junit }) =
            parse_args(["bochs", "--bios", "seabios", "--append", "rounds=3", "--timeout", "30", "--json", "r.json"])
        else {
            panic!("bochs not parsed")
        };
        assert_eq!(config.bios, crate::bochs::Bios::Seabios);
        assert_eq!((config.append.as_str(), config.timeout), ("rounds=3", Duration::from_secs(30)));
        assert_eq!((json, junit), (Some(PathBuf::from("r.json")), None));
        let Ok(CliCommand::Bochs { config, .. }) = parse_args(["bochs"]) else { panic!("bochs not parsed") };
        assert_eq!(config, crate::bochs::BochsConfig::default(), "Bochs' own BIOS, 120 s, `bochs` on PATH");
        assert_eq!(refused(&["bochs", "--bios", "ovmf"], "ovmf"), Some(ErrorKind::InvalidValue));
        assert_eq!(refused(&["bochs", "--append=x;y"], "--append"), Some(ErrorKind::ValueValidation));
    }

    #[test]
    fn image_and_boot_options() {
        let Ok(CliCommand::Image { out, append }) =
            parse_args(["image", "x.iso", "--append", "rounds=3"])
        else {
            panic!("image not parsed")
        };
        assert_eq!((out, append.as_str()), (PathBuf::from("x.iso"), "rounds=3"));
        assert_eq!(
            refused(&["image"], "FILE"),
            Some(ErrorKind::MissingRequiredArgument)
        );
        assert_eq!(
            refused(&["image", "a.iso", "b.iso"], "b.iso"),
            Some(ErrorKind::UnknownArgument)
        );
        assert_eq!(
            refused(&["image", "a.iso", "--append=x;y"], "--append"),
            Some(ErrorKind::ValueValidation)
        );
        assert_eq!(
            run_opts(&["--boot", "iso-uefi"]).config.boot,
            BootPath::IsoUefi
        );
        assert_eq!(
            refused(&["--boot", "floppy"], "floppy"),
            Some(ErrorKind::InvalidValue)
        );
    }

    #[test]
    fn bench_options() {
        let Ok(CliCommand::Bench(b)) = parse_args(["bench"]) else {
            panic!("bench not parsed")
        };
        assert_eq!(b, BenchOptions::default());
        let Ok(CliCommand::Bench(b)) = parse_args([
            "bench",
            "--json",
            "b.json",
            "--runs=5",
            "--dispatch",
            "20000",
            "--scale",
            "1,4",
            "--elf",
            "fw.elf",
            "--accel",
            "kvm",
            "--qemu",
            "/q",
        ]) else {
            panic!("bench options not parsed")
        };
        assert_eq!(
            (b.runs, b.dispatch, b.scale.as_slice()),
            (5, 20_000, &[1, 4][..])
        );
        assert_eq!(b.json, Some(PathBuf::from("b.json")));
        assert_eq!(b.elf, Some(PathBuf::from("fw.elf")));
        assert_eq!((b.accel, b.qemu), (Accel::Kvm, PathBuf::from("/q")));
        assert_eq!(
            refused(&["bench", "--runs", "0"], "--runs"),
            Some(ErrorKind::ValueValidation)
        );
        assert_eq!(
            refused(&["bench", "--scale", "1,x"], "--scale"),
            Some(ErrorKind::ValueValidation)
        );
        assert_eq!(
            refused(&["bench", "--machine", "pc"], "--machine"),
            Some(ErrorKind::UnknownArgument)
        );
        assert_eq!(
            refused(&["bench", "extra"], "extra"),
            Some(ErrorKind::UnknownArgument)
        );
        // `bench` is a subcommand only in first place.
        assert!(parse_args(["--append", "x", "bench"]).is_err());
    }

    #[test]
    fn tables_options() {
        assert_eq!(
            parse_args(["tables", "dump", "--json", "t.json"]).unwrap(),
            CliCommand::Tables { dir: PathBuf::from("dump"), json: Some(PathBuf::from("t.json")) }
        );
        assert_eq!(parse_args(["tables", "dump"]).unwrap(), CliCommand::Tables { dir: "dump".into(), json: None });
        assert_eq!(refused(&["tables"], "DIR"), Some(ErrorKind::MissingRequiredArgument));
        assert_eq!(refused(&["tables", "a", "b"], "b"), Some(ErrorKind::UnknownArgument));
        // A build without the firmware's pre-flight says so instead of printing nothing.
        assert_eq!(cli_run(["tables", "."]), EXIT_ERROR);
        assert_eq!(cli_run(["tables"]), EXIT_USAGE);
    }

    #[test]
    fn decode_options() {
        let Ok(CliCommand::Decode(d)) = parse_args(["decode", "com1.txt"]) else {
            panic!("decode not parsed")
        };
        assert_eq!(
            d.config,
            DecodeConfig {
                echo: true,
                ..DecodeConfig::new("com1.txt")
            }
        );
        assert_eq!(d.json, None);
        let Ok(CliCommand::Decode(d)) = parse_args([
            "decode",
            "--com2",
            "c2.bin",
            "com1.txt",
            "--elf=fw.elf",
            "--json",
            "out.json",
        ]) else {
            panic!("decode options not parsed")
        };
        assert_eq!(d.config.com1, PathBuf::from("com1.txt"));
        assert_eq!(d.config.com2, Some(PathBuf::from("c2.bin")));
        assert_eq!(d.config.elf, Some(PathBuf::from("fw.elf")));
        assert_eq!(d.json, Some(PathBuf::from("out.json")));
        assert_eq!(
            refused(&["decode"], "COM1_CAPTURE"),
            Some(ErrorKind::MissingRequiredArgument)
        );
        assert_eq!(
            refused(&["decode", "a", "b"], "b"),
            Some(ErrorKind::UnknownArgument)
        );
        assert_eq!(
            refused(&["decode", "a", "--machine", "pc"], "--machine"),
            Some(ErrorKind::UnknownArgument)
        );
        assert_eq!(
            refused(&["decode", "a", "--com2"], "--com2"),
            Some(ErrorKind::InvalidValue)
        );
        assert_eq!(
            refused(&["decode", "a", "--elf="], "--elf"),
            Some(ErrorKind::ValueValidation)
        );
        assert!(
            matches!(parse_args(["decode", "--help"]), Ok(CliCommand::Help(h)) if h.contains("COM1_CAPTURE"))
        );
        // `decode` is a subcommand only in first place.
        assert!(parse_args(["--json", "x", "decode"]).is_err());
        assert_eq!(cli_run(["decode"]), EXIT_USAGE);
        assert_eq!(cli_run(["decode", "/nonexistent/com1.txt"]), EXIT_ERROR);
    }

    #[test]
    fn help() {
        let Ok(CliCommand::Help(text)) = parse_args(["-h"]) else {
            panic!("-h")
        };
        for word in [
            "run",
            "bench",
            "matrix",
            "image",
            "decode",
            "--machine",
            "--qemu-arg",
            "--list",
            "Exit status",
        ] {
            assert!(text.contains(word), "{word} not in\n{text}");
        }
        assert!(matches!(
            parse_args(["--machine", "pc", "--help"]),
            Ok(CliCommand::Help(_))
        ));
        let Ok(CliCommand::Help(text)) = parse_args(["matrix", "--help"]) else {
            panic!("matrix --help")
        };
        assert!(
            text.contains("--machine <MACHINE>") && text.contains("iso-uefi"),
            "{text}"
        );
        assert_eq!(cli_run(["--help"]), 0);
    }

    #[test]
    fn errors() {
        let cases: &[(&[&str], &str, ErrorKind)] = &[
            (&["--bogus"], "--bogus", ErrorKind::UnknownArgument),
            (&["--bogus=1"], "--bogus", ErrorKind::UnknownArgument),
            (&["-x"], "-x", ErrorKind::UnknownArgument),
            (&["stray"], "stray", ErrorKind::InvalidSubcommand),
            (&["--machine"], "--machine", ErrorKind::InvalidValue),
            (&["--help=yes"], "--help", ErrorKind::TooManyValues),
            (
                &["--no-default-devices=1"],
                "--no-default-devices",
                ErrorKind::TooManyValues,
            ),
            (&["--machine", "virt"], "q35", ErrorKind::InvalidValue),
            (&["--accel=hvf"], "kvm", ErrorKind::InvalidValue),
            (&["--device", ""], "--device", ErrorKind::ValueValidation),
            (&["--json="], "--json", ErrorKind::ValueValidation),
        ];
        for (args, word, kind) in cases {
            let err = parse_args(args.iter().copied()).expect_err(&format!("{args:?} accepted"));
            let text = err.to_string();
            assert!(text.contains(word), "{args:?}: {text}");
            assert_eq!(err.kind(), Some(*kind), "{args:?}: {text}");
        }
        for bad in ["0", "-1", "abc", "inf", "NaN", ""] {
            let err = parse_args(["--timeout", bad]).unwrap_err();
            assert!(err.to_string().contains("--timeout"), "{bad}: {err}");
        }
        assert_eq!(cli_run(["--machine", "virt"]), EXIT_USAGE);
        assert_eq!(cli_run(["stray"]), EXIT_USAGE);
        let msg = parse_args(["-d"]).unwrap_err().to_string();
        assert!(msg.contains("--qemu-arg=ARG"), "{msg}");
    }

    #[test]
    fn no_oracle_and_a_long_append() {
        assert!(run_opts(&[]).config.oracle);
        assert!(!run_opts(&["--no-oracle"]).config.oracle);
        assert!(parse_args(["--no-oracle=1"]).is_err());
        // 4095 bytes fit QEMU's PVH buffer only without the `oracle ` word.
        let fits = "x".repeat(crate::qemu::PVH_CMDLINE_MAX);
        assert!(run_opts(&["--no-oracle", "--append", &fits])
            .config
            .append
            .is_some());
        let err = parse_args(["--append", fits.as_str()]).unwrap_err();
        assert!(
            matches!(&err, CliError::Config(m) if m.contains("4102 bytes") && m.contains("--no-oracle")),
            "{err}"
        );
        let long = "x".repeat(crate::qemu::PVH_CMDLINE_MAX + 1);
        assert!(matches!(
            parse_args(["--no-oracle", "--append", long.as_str()]),
            Err(CliError::Config(_))
        ));
        // Refused before anything is built or started: a QEMU that does not exist is never tried (5).
        assert_eq!(
            cli_run([
                "--no-oracle",
                "--qemu",
                "/nonexistent/qemu",
                "--elf",
                "/nonexistent/fw",
                "--append",
                long.as_str()
            ]),
            EXIT_USAGE
        );
        // The same line through GRUB is not QEMU's PVH buffer.
        assert!(run_opts(&["--boot", "iso-bios", "--append", &long])
            .config
            .append
            .is_some());
        // matrix: every line a cell boots (scenario=all becomes several, each longer).
        let Ok(CliCommand::Matrix(m)) = parse_args(["matrix", "--no-oracle"]) else {
            panic!("matrix --no-oracle")
        };
        assert!(!m.oracle);
        let near = format!(
            "scenario=all {}",
            "x".repeat(crate::qemu::PVH_CMDLINE_MAX - 20)
        );
        assert!(matches!(
            parse_args(["matrix", "--no-oracle", "--append", near.as_str()]),
            Err(CliError::Config(_))
        ));
    }

    #[test]
    fn value_may_look_like_an_option() {
        // `--qemu-arg -d` takes `-d` as its value: the next argument is always the value.
        let o = run_opts(&["--qemu-arg", "-d", "--append", "--not-an-option"]);
        assert_eq!(o.config.qemu_args, ["-d"]);
        assert_eq!(o.config.append.as_deref(), Some("--not-an-option"));
    }

    #[test]
    fn non_utf8_argument() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![0xff, 0xfe]);
        assert!(parse_args([OsString::from("--append"), bad]).is_err());
    }

    #[test]
    fn list_prints_the_catalogue() {
        assert_eq!(parse_args(["--list"]).unwrap(), CliCommand::List);
        assert_eq!(parse_args(["run", "--list"]).unwrap(), CliCommand::List);
        let text = list_text(&Catalogue { drivers: &[("e1000e", 5, 5), ("nvme", 5, 5)], ..Default::default() });
        assert!(text.contains("  intx-storm "), "{text}");
        assert!(text.contains("  crash-restart          scenario=NAME; a boot of its own"), "{text}");
        assert!(text.contains(" shutdown-control "), "{text}");
        assert!(text.contains("  e1000e       5 vectors, 5 sources\n  nvme "), "{text}");
        assert!(list_text(&Catalogue::default()).contains("no catalogue"));
        assert_eq!(cli_run(["--list"]), 0);
    }

    #[test]
    fn junit_shard_and_merge_options() {
        assert_eq!(
            run_opts(&["--junit", "r.xml"]).junit,
            Some(PathBuf::from("r.xml"))
        );
        let Ok(CliCommand::Decode(d)) = parse_args(["decode", "c1", "--junit=d.xml"]) else {
            panic!("decode --junit")
        };
        assert_eq!(d.junit, Some(PathBuf::from("d.xml")));
        let Ok(CliCommand::Matrix(m)) =
            parse_args(["matrix", "--shard", "2/3", "--junit", "m.xml"])
        else {
            panic!("matrix --shard")
        };
        assert_eq!(
            (m.shard, m.junit),
            (
                Some(crate::matrix::Shard { k: 2, n: 3 }),
                Some(PathBuf::from("m.xml"))
            )
        );
        for bad in ["0/3", "4/3", "1/0", "x"] {
            assert_eq!(
                refused(&["matrix", "--shard", bad], "--shard"),
                Some(ErrorKind::ValueValidation),
                "{bad}"
            );
            assert_eq!(cli_run(["matrix", "--shard", bad]), EXIT_USAGE);
        }
        let Ok(CliCommand::Merge { files, json, junit }) = parse_args([
            "matrix", "--merge", "a.json", "b.json", "--json", "all.json", "--junit", "all.xml",
        ]) else {
            panic!("matrix --merge")
        };
        assert_eq!(files, [PathBuf::from("a.json"), PathBuf::from("b.json")]);
        assert_eq!(
            (json, junit),
            (
                Some(PathBuf::from("all.json")),
                Some(PathBuf::from("all.xml"))
            )
        );
        assert_eq!(
            refused(
                &["matrix", "--merge", "a.json", "--shard", "1/2"],
                "--shard"
            ),
            Some(ErrorKind::ArgumentConflict)
        );
        assert_eq!(
            refused(
                &["matrix", "--merge", "a.json", "--machine", "pc"],
                "--machine"
            ),
            Some(ErrorKind::ArgumentConflict)
        );
        assert_eq!(
            refused(&["matrix", "--merge"], "--merge"),
            Some(ErrorKind::InvalidValue)
        );
        // Unreadable or inconsistent shards: the merge cannot be done (5), and says why.
        assert_eq!(
            cli_run(["matrix", "--merge", "/nonexistent/a.json"]),
            EXIT_ERROR
        );
    }
}
