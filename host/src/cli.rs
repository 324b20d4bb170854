//! The command line of `cargo run -- ARGS` (the host build of the `msifw` binary).

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::qemu::{Accel, BootPath, Machine, RunConfig};
use crate::bench::{bench, BenchOptions};
use crate::capture::{decode_capture, DecodeConfig};
use crate::run::{run_all, RunOutcome};

/// Exit code for bad arguments.
pub const EXIT_USAGE: u8 = 64;
/// Exit code when the run could not be carried out (build failed, QEMU missing, a capture or ELF
/// missing) or `--json` could not be written.
pub const EXIT_ERROR: u8 = 5;

/// Usage text.
pub const USAGE: &str = "\
Usage: cargo run -- [OPTIONS]
       cargo run -- image FILE [--append TEXT]
       cargo run -- matrix [--qemu PATH].. [--machine M].. [--boot B].. [--accel A].. [--append TEXT]
                           [--json FILE] [--no-oracle]
       cargo run -- decode COM1_CAPTURE [--com2 COM2_CAPTURE] [--elf PATH] [--json FILE]
       cargo run --release -- bench [--json FILE] [--runs N] [--dispatch N] [--scale N,N,..]
                                    [--qemu PATH] [--accel tcg|kvm]
Builds the msifw firmware, boots it in QEMU and reports what it found. `decode` reports the same
from serial captures of a machine that ran the firmware without QEMU: COM1_CAPTURE is the raw
COM1 output (text and report records; boot loader output before the firmware, CRLF and terminal
escapes are fine), COM2_CAPTURE the raw COM2 bytes (the defmt log; leave it out if the machine
has one port), and --elf the firmware ELF that ran (default: the one `cargo run` builds,
target/x86_64-unknown-none/debug/msifw, release/ with --release; an image FILE keeps it as
FILE.elf, e.g. msifw.iso.elf). `bench` prints the performance figures (README \"Performance\"): floor ratio
(--runs boots of each firmware, default 7), dispatch ratio (--dispatch interrupts per source and
path, default 10000), accesses per function, image size, and scale (--scale device counts,
default 1,8,32). `image` writes a GRUB ISO (BIOS and UEFI) that boots the firmware through
Multiboot2 with TEXT as its command line, and the ELF beside it as FILE.elf (for `decode`); it
installs Debian's grub-pc-bin, grub-efi-amd64-bin, xorriso and mtools when they are missing.
`matrix` runs the scenario set (--append, default scenario=all) on every combination of machine
(q35, pc), boot path (pvh, iso-bios, iso-uefi), accelerator (tcg, kvm where it works) and QEMU
binary given, a progress line per run, then a table of results per scenario and device.

Options:
  --machine q35|pc        QEMU machine type (default q35)
  --device SPEC           add `-device SPEC` (repeatable)
  --no-default-devices    leave out e1000e (02.0), nvme (03.0) and edu (04.0)
  --no-oracle             do not hold the firmware's function list against QEMU's query-pci
                          (on by default: a mismatch fails the run; README, The oracle)
  --qemu-arg ARG          pass ARG to QEMU verbatim (repeatable; ARG may start with a
                          dash: --qemu-arg -d --qemu-arg int)
  --append TEXT           firmware command line (QEMU -append; at most 4095 bytes with PVH,
                          the launcher's `oracle ` word included)
  --unplug ID             hot-remove device ID (QMP device_del) when the firmware asks for it
                          (with --append scenario=hot-unplug)
  --accel tcg|kvm         accelerator (default tcg)
  --boot pvh|iso-bios|iso-uefi
                          how the firmware starts: QEMU's PVH loader (default), or a GRUB ISO made
                          for the run, through Multiboot2, under SeaBIOS or OVMF (Debian's ovmf)
  --timeout SECONDS       kill QEMU after this long (default 120)
  --json FILE             also write the results as JSON to FILE
  --elf PATH              boot this ELF instead of building the firmware
  --qemu PATH             QEMU binary (default qemu-system-x86_64)
  -h, --help              show this help

Exit status: 0 passed, 1 scenario failures or incomplete report, 2 firmware panic or CPU
exception, 3 timeout, 4 crash (triple fault, reset, QEMU died), 5 could not run (firmware
build failed, QEMU missing, a capture or the ELF unreadable) or --json not written, 64 bad
arguments. A decoded capture exits 0, 1 or 2.";

/// Parsed command line.
#[derive(Clone, Debug, PartialEq)]
pub struct CliOptions {
    /// The run to do.
    pub config: RunConfig,
    /// Where to write the JSON results.
    pub json: Option<PathBuf>,
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum CliCommand {
    /// Print the usage.
    Help,
    /// Build, boot and report.
    Run(CliOptions),
    /// The performance benchmark.
    Bench(BenchOptions),
    /// Decode serial captures (`decode`).
    Decode(DecodeOptions),
    /// The platform matrix.
    Matrix(crate::matrix::MatrixOptions),
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
}

/// A bad command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CliError {
    /// An option this program does not have.
    UnknownOption(String),
    /// A positional argument (this program takes none).
    UnexpectedArgument(String),
    /// An option that needs a value came last.
    MissingValue(&'static str),
    /// An option that takes no value was given one (`--help=x`).
    UnexpectedValue(&'static str),
    /// A value that does not parse.
    InvalidValue {
        /// The option.
        option: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },
    /// An argument that is not valid UTF-8.
    NotUtf8(OsString),
    /// A positional argument is missing (`decode` without its capture).
    MissingArgument(&'static str),
    /// The options together ask for what QEMU cannot do (an `--append` longer than QEMU's PVH
    /// command-line buffer).
    Config(String),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::UnknownOption(o) => write!(f, "unknown option `{o}`"),
            CliError::UnexpectedArgument(a) => write!(
                f,
                "unexpected argument `{a}` (to pass it to QEMU, use --qemu-arg={a})"
            ),
            CliError::MissingValue(o) => write!(f, "`{o}` needs a value"),
            CliError::UnexpectedValue(o) => write!(f, "`{o}` takes no value"),
            CliError::InvalidValue {
                option,
                value,
                expected,
            } => {
                write!(
                    f,
                    "invalid value `{value}` for `{option}`: expected {expected}"
                )
            }
            CliError::NotUtf8(a) => write!(f, "argument {a:?} is not valid UTF-8"),
            CliError::MissingArgument(a) => write!(f, "{a} is missing"),
            CliError::Config(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for CliError {}

/// Options that take a value, by their canonical name.
const VALUE_OPTIONS: &[&str] = &[
    "--machine",
    "--device",
    "--qemu-arg",
    "--append",
    "--unplug",
    "--accel",
    "--boot",
    "--timeout",
    "--json",
    "--elf",
    "--qemu",
];

/// Parses the arguments after the program name. Values may follow as the next argument or after
/// `=` (`--timeout=30`); `--qemu-arg=-d` passes an argument that starts with a dash.
pub fn parse_args<I>(args: I) -> Result<CliCommand, CliError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut cfg = RunConfig::new();
    let mut json = None;
    let mut args = args.into_iter().map(Into::into).peekable();
    if args.peek().is_some_and(|a: &OsString| a == "bench") {
        args.next();
        return parse_bench(args);
    }
    if args.peek().is_some_and(|a: &OsString| a == "matrix") {
        args.next();
        return parse_matrix(args);
    }
    if args.peek().is_some_and(|a: &OsString| a == "image") {
        args.next();
        return parse_image(args);
    }
    if args.peek().is_some_and(|a: &OsString| a == "decode") {
        args.next();
        return parse_decode(args);
    }
    while let Some(arg) = args.next() {
        let arg = arg.into_string().map_err(CliError::NotUtf8)?;
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        match name.as_str() {
            "-h" | "--help" => {
                if inline.is_some() {
                    return Err(CliError::UnexpectedValue("--help"));
                }
                return Ok(CliCommand::Help);
            }
            "--no-default-devices" => {
                if inline.is_some() {
                    return Err(CliError::UnexpectedValue("--no-default-devices"));
                }
                cfg.default_devices = false;
            }
            "--no-oracle" => {
                if inline.is_some() {
                    return Err(CliError::UnexpectedValue("--no-oracle"));
                }
                cfg.oracle = false;
            }
            _ => {
                let Some(option) = VALUE_OPTIONS.iter().copied().find(|o| *o == name) else {
                    return Err(if arg.starts_with('-') {
                        CliError::UnknownOption(name)
                    } else {
                        CliError::UnexpectedArgument(arg)
                    });
                };
                let value = match inline {
                    Some(v) => v,
                    None => args
                        .next()
                        .ok_or(CliError::MissingValue(option))?
                        .into_string()
                        .map_err(CliError::NotUtf8)?,
                };
                apply(&mut cfg, &mut json, option, value)?;
            }
        }
    }
    cfg.validate().map_err(|e| CliError::Config(e.to_string()))?;
    Ok(CliCommand::Run(CliOptions { config: cfg, json }))
}

fn apply(
    cfg: &mut RunConfig,
    json: &mut Option<PathBuf>,
    option: &'static str,
    value: String,
) -> Result<(), CliError> {
    let invalid = |expected| CliError::InvalidValue {
        option,
        value: value.clone(),
        expected,
    };
    let nonempty = |v: &String| {
        if v.is_empty() {
            Err(invalid("a non-empty value"))
        } else {
            Ok(())
        }
    };
    match option {
        "--machine" => cfg.machine = Machine::parse(&value).ok_or_else(|| invalid("q35 or pc"))?,
        "--accel" => cfg.accel = Accel::parse(&value).ok_or_else(|| invalid("tcg or kvm"))?,
        "--boot" => cfg.boot = BootPath::parse(&value).ok_or_else(|| invalid("pvh, iso-bios or iso-uefi"))?,
        "--timeout" => {
            cfg.timeout =
                parse_timeout(&value).ok_or_else(|| invalid("a positive number of seconds"))?
        }
        "--device" => {
            nonempty(&value)?;
            cfg.devices.push(value);
        }
        "--qemu-arg" => cfg.qemu_args.push(value),
        "--append" => cfg.append = Some(value),
        "--unplug" => {
            nonempty(&value)?;
            cfg.unplug = Some(value);
        }
        "--json" => {
            nonempty(&value)?;
            *json = Some(PathBuf::from(value));
        }
        "--elf" => {
            nonempty(&value)?;
            cfg.elf = Some(PathBuf::from(value));
        }
        "--qemu" => {
            nonempty(&value)?;
            cfg.qemu = PathBuf::from(value);
        }
        _ => return Err(CliError::UnknownOption(option.to_string())),
    }
    Ok(())
}

/// One word of a subcommand's arguments.
enum Word {
    /// `--name VALUE` or `--name=VALUE`, `name` one of the subcommand's options.
    Option(&'static str, String),
    /// A word that is not an option.
    Positional(String),
}

/// A subcommand's arguments as words: each option in `options` takes a value (the next argument, or
/// after `=`), `-h`/`--help` asks for the usage (`None`), any other word starting with `-` is unknown.
fn subcommand_words(args: impl Iterator<Item = OsString>, options: &[&'static str]) -> Result<Option<Vec<Word>>, CliError> {
    let mut words = Vec::new();
    let mut args = args;
    while let Some(arg) = args.next() {
        let arg = arg.into_string().map_err(CliError::NotUtf8)?;
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        if name == "-h" || name == "--help" {
            return Ok(None);
        }
        let Some(option) = options.iter().copied().find(|o| *o == name) else {
            if arg.starts_with('-') {
                return Err(CliError::UnknownOption(name));
            }
            words.push(Word::Positional(arg));
            continue;
        };
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or(CliError::MissingValue(option))?.into_string().map_err(CliError::NotUtf8)?,
        };
        words.push(Word::Option(option, value));
    }
    Ok(Some(words))
}

/// A path value: anything but empty.
fn path_value(option: &'static str, value: String) -> Result<PathBuf, CliError> {
    if value.is_empty() {
        return Err(CliError::InvalidValue { option, value, expected: "a non-empty value" });
    }
    Ok(PathBuf::from(value))
}

fn parse_bench(args: impl Iterator<Item = OsString>) -> Result<CliCommand, CliError> {
    let mut opts = BenchOptions::default();
    let Some(words) = subcommand_words(args, &["--json", "--runs", "--dispatch", "--scale", "--qemu", "--accel"])? else {
        return Ok(CliCommand::Help);
    };
    for word in words {
        let (option, value) = match word {
            Word::Option(o, v) => (o, v),
            Word::Positional(arg) => return Err(CliError::UnexpectedArgument(arg)),
        };
        let invalid = |expected| CliError::InvalidValue { option, value: value.clone(), expected };
        match option {
            "--json" => opts.json = Some(path_value(option, value)?),
            "--qemu" => opts.qemu = path_value(option, value)?,
            "--accel" => opts.accel = Accel::parse(&value).ok_or_else(|| invalid("tcg or kvm"))?,
            "--runs" => opts.runs = value.parse().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| invalid("1-1000"))?,
            "--dispatch" => {
                opts.dispatch = value.parse().ok().filter(|n| (1..=100_000).contains(n)).ok_or_else(|| invalid("1-100000"))?
            }
            _ => {
                let counts: Option<Vec<usize>> = value.split(',').map(|n| n.trim().parse().ok().filter(|n| (1..=64).contains(n))).collect();
                opts.scale = counts.filter(|c| !c.is_empty()).ok_or_else(|| invalid("device counts 1-64, comma-separated"))?;
            }
        }
    }
    Ok(CliCommand::Bench(opts))
}

fn parse_decode(args: impl Iterator<Item = OsString>) -> Result<CliCommand, CliError> {
    let (mut com1, mut com2, mut elf, mut json) = (None, None, None, None);
    let Some(words) = subcommand_words(args, &["--com2", "--elf", "--json"])? else {
        return Ok(CliCommand::Help);
    };
    for word in words {
        match word {
            Word::Option("--com2", v) => com2 = Some(path_value("--com2", v)?),
            Word::Option("--elf", v) => elf = Some(path_value("--elf", v)?),
            Word::Option(option, v) => json = Some(path_value(option, v)?),
            Word::Positional(arg) if com1.is_none() => com1 = Some(PathBuf::from(arg)),
            Word::Positional(arg) => return Err(CliError::UnexpectedArgument(arg)),
        }
    }
    let com1 = com1.ok_or(CliError::MissingArgument("COM1_CAPTURE (the file holding the COM1 output)"))?;
    let config = DecodeConfig { com1, com2, elf, echo: true };
    Ok(CliCommand::Decode(DecodeOptions { config, json }))
}

fn run_decode(opts: &DecodeOptions) -> u8 {
    let cfg = &opts.config;
    eprintln!(
        "decode: COM1 {}{}",
        cfg.com1.display(),
        match &cfg.com2 {
            Some(com2) => format!(", COM2 {} with the defmt table of {}", com2.display(), cfg.elf_path().display()),
            None => String::new(),
        }
    );
    match decode_capture(cfg) {
        Ok(outcome) => report_outcome(&outcome, opts.json.as_deref()),
        Err(e) => {
            eprintln!("msifw: error: {e}");
            EXIT_ERROR
        }
    }
}

/// Prints the outcome, writes `--json`, and returns the exit code: shared by a QEMU run and a decode.
fn report_outcome(outcome: &RunOutcome, json: Option<&std::path::Path>) -> u8 {
    println!();
    print!("{}", outcome.render());
    let mut code = outcome.exit.code();
    if let Some(path) = json {
        let text = match serde_json::to_string_pretty(&outcome.to_json()) {
            Ok(text) => text + "\n",
            Err(e) => format!("{{\"error\": \"{e}\"}}\n"),
        };
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("msifw: error: could not write {}: {e}", path.display());
            if code == 0 {
                code = EXIT_ERROR;
            }
        }
    }
    code
}

fn parse_matrix(args: impl Iterator<Item = OsString>) -> Result<CliCommand, CliError> {
    let mut opts = crate::matrix::MatrixOptions::default();
    let (mut qemus, mut machines, mut boots, mut accels) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let options = ["--qemu", "--machine", "--boot", "--accel", "--append", "--json", "--timeout"];
    let args: Vec<OsString> = args.collect();
    let no_oracle = args.iter().any(|a| a == "--no-oracle");
    let Some(words) = subcommand_words(args.into_iter().filter(|a| a != "--no-oracle"), &options)? else {
        return Ok(CliCommand::Help);
    };
    opts.oracle = !no_oracle;
    for word in words {
        let (option, value) = match word {
            Word::Option(o, v) => (o, v),
            Word::Positional(arg) => return Err(CliError::UnexpectedArgument(arg)),
        };
        let invalid = |expected| CliError::InvalidValue { option, value: value.clone(), expected };
        match option {
            "--qemu" => qemus.push(path_value(option, value)?),
            "--json" => opts.json = Some(path_value(option, value)?),
            "--machine" => machines.push(Machine::parse(&value).ok_or_else(|| invalid("q35 or pc"))?),
            "--boot" => boots.push(BootPath::parse(&value).ok_or_else(|| invalid("pvh, iso-bios or iso-uefi"))?),
            "--accel" => accels.push(Accel::parse(&value).ok_or_else(|| invalid("tcg or kvm"))?),
            "--timeout" => opts.timeout = parse_timeout(&value).ok_or_else(|| invalid("a positive number of seconds"))?,
            _ => opts.append = value,
        }
    }
    if !qemus.is_empty() {
        opts.qemus = qemus;
    }
    if !machines.is_empty() {
        opts.machines = machines;
    }
    if !boots.is_empty() {
        opts.boots = boots;
    }
    if !accels.is_empty() {
        opts.accels = accels;
    }
    // Every command line a PVH cell boots (`scenario=all` is split into several) must fit QEMU's buffer.
    let lines = crate::run::split_scenario_all(&opts.append).unwrap_or_else(|| vec![opts.append.clone()]);
    for line in lines {
        RunConfig::new().append(line).oracle(opts.oracle).validate().map_err(|e| CliError::Config(e.to_string()))?;
    }
    Ok(CliCommand::Matrix(opts))
}

fn run_matrix(opts: &crate::matrix::MatrixOptions) -> u8 {
    // Build the firmware once, before the first cell.
    if let Err(e) = crate::firmware::firmware_elf() {
        eprintln!("msifw: error: {e}");
        return EXIT_ERROR;
    }
    let (cells, json, table) = crate::matrix::matrix(opts);
    println!();
    print!("{table}");
    let (p, f, s) = crate::matrix::totals(&cells);
    println!("msifw matrix: {} cells, {p} scenario results passed, {f} failed, {s} skipped", cells.len());
    if let Some(path) = &opts.json {
        let text = serde_json::to_string_pretty(&json).unwrap_or_default() + "\n";
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("msifw: error: could not write {}: {e}", path.display());
            return EXIT_ERROR;
        }
    }
    if crate::matrix::all_passed(&cells) {
        0
    } else {
        1
    }
}

fn parse_image(args: impl Iterator<Item = OsString>) -> Result<CliCommand, CliError> {
    let mut out = None;
    let mut append = String::new();
    let Some(words) = subcommand_words(args, &["--append"])? else {
        return Ok(CliCommand::Help);
    };
    for word in words {
        match word {
            Word::Option(option, value) => {
                if crate::image::grub_cfg(&value).is_err() {
                    return Err(CliError::InvalidValue { option, value, expected: "firmware command-line words (no quotes, $, ;, braces or newlines)" });
                }
                append = value;
            }
            Word::Positional(arg) if out.is_none() && !arg.is_empty() => out = Some(PathBuf::from(arg)),
            Word::Positional(arg) => return Err(CliError::UnexpectedArgument(arg)),
        }
    }
    let out = out.ok_or(CliError::MissingValue("image FILE"))?;
    Ok(CliCommand::Image { out, append })
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
            println!("msifw: wrote {} (GRUB, BIOS and UEFI; firmware command line {append:?})", out.display());
            println!("msifw: the ELF it holds is {} (for `cargo run -- decode --elf`)", crate::image::elf_beside(out).display());
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

fn parse_timeout(s: &str) -> Option<Duration> {
    let secs: f64 = s.trim().parse().ok()?;
    if secs.is_finite() && secs > 0.0 && secs < 1e9 {
        Some(Duration::from_secs_f64(secs))
    } else {
        None
    }
}

/// The host binary's `main`: parses `std::env::args_os`, runs, prints, and maps the verdict to the
/// exit code (0 passed, 1 failed, 2 panic or bad arguments, 3 timeout, 4 crash or could not run).
pub fn cli_main() -> ExitCode {
    ExitCode::from(cli_run(std::env::args_os().skip(1)))
}

/// [`cli_main`] for given arguments, returning the exit code.
pub fn cli_run<I>(args: I) -> u8
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let options = match parse_args(args) {
        Ok(CliCommand::Help) => {
            println!("{USAGE}");
            return 0;
        }
        Ok(CliCommand::Run(options)) => options,
        Ok(CliCommand::Bench(opts)) => return run_bench(&opts),
        Ok(CliCommand::Decode(opts)) => return run_decode(&opts),
        Ok(CliCommand::Image { out, append }) => return run_image(&out, &append),
        Ok(CliCommand::Matrix(opts)) => return run_matrix(&opts),
        Err(e) => {
            eprintln!("msifw: error: {e}\nTry `cargo run -- --help`.");
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
    report_outcome(&outcome, options.json.as_deref())
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

    #[test]
    fn defaults() {
        let o = run_opts(&[]);
        assert_eq!(o.config, RunConfig::new());
        assert_eq!(o.json, None);
        assert_eq!(o.config.timeout, Duration::from_secs(120));
    }

    #[test]
    fn every_option() {
        let o = run_opts(&[
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
        ]);
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
        assert!(c.echo);
    }

    #[test]
    fn matrix_options() {
        let Ok(CliCommand::Matrix(m)) = parse_args(["matrix"]) else { panic!("matrix not parsed") };
        assert_eq!(m, crate::matrix::MatrixOptions::default());
        let Ok(CliCommand::Matrix(m)) =
            parse_args(["matrix", "--qemu", "/a/qemu", "--qemu=/b/qemu", "--machine", "pc", "--boot", "iso-uefi", "--accel", "tcg", "--append", "rounds=3"])
        else {
            panic!("matrix options not parsed")
        };
        assert_eq!(m.qemus, [PathBuf::from("/a/qemu"), PathBuf::from("/b/qemu")]);
        assert_eq!((m.machines.as_slice(), m.boots.as_slice(), m.accels.as_slice()), (&[Machine::Pc][..], &[BootPath::IsoUefi][..], &[Accel::Tcg][..]));
        assert_eq!(m.append, "rounds=3");
        assert!(matches!(parse_args(["matrix", "--machine", "virt"]), Err(CliError::InvalidValue { .. })));
    }

    #[test]
    fn image_and_boot_options() {
        let Ok(CliCommand::Image { out, append }) = parse_args(["image", "x.iso", "--append", "rounds=3"]) else { panic!("image not parsed") };
        assert_eq!((out, append.as_str()), (PathBuf::from("x.iso"), "rounds=3"));
        assert!(matches!(parse_args(["image"]), Err(CliError::MissingValue(_))));
        assert!(matches!(parse_args(["image", "a.iso", "b.iso"]), Err(CliError::UnexpectedArgument(_))));
        assert!(matches!(parse_args(["image", "a.iso", "--append=x;y"]), Err(CliError::InvalidValue { option: "--append", .. })));
        assert_eq!(run_opts(&["--boot", "iso-uefi"]).config.boot, BootPath::IsoUefi);
        assert!(matches!(parse_args(["--boot", "floppy"]), Err(CliError::InvalidValue { option: "--boot", .. })));
    }

    #[test]
    fn bench_options() {
        let Ok(CliCommand::Bench(b)) = parse_args(["bench"]) else { panic!("bench not parsed") };
        assert_eq!(b, BenchOptions::default());
        let Ok(CliCommand::Bench(b)) = parse_args(["bench", "--json", "b.json", "--runs=5", "--dispatch", "20000", "--scale", "1,4"]) else {
            panic!("bench options not parsed")
        };
        assert_eq!((b.runs, b.dispatch, b.scale.as_slice()), (5, 20_000, &[1, 4][..]));
        assert_eq!(b.json, Some(PathBuf::from("b.json")));
        assert!(matches!(parse_args(["bench", "--runs", "0"]), Err(CliError::InvalidValue { option: "--runs", .. })));
        assert!(matches!(parse_args(["bench", "--scale", "1,x"]), Err(CliError::InvalidValue { option: "--scale", .. })));
        assert!(matches!(parse_args(["bench", "--machine", "pc"]), Err(CliError::UnknownOption(_))));
        assert!(matches!(parse_args(["bench", "extra"]), Err(CliError::UnexpectedArgument(_))));
        // `bench` is a subcommand only in first place.
        assert!(matches!(parse_args(["--append", "x", "bench"]), Err(CliError::UnexpectedArgument(_))));
    }

    #[test]
    fn decode_options() {
        let Ok(CliCommand::Decode(d)) = parse_args(["decode", "com1.txt"]) else { panic!("decode not parsed") };
        assert_eq!(d.config, DecodeConfig { echo: true, ..DecodeConfig::new("com1.txt") });
        assert_eq!(d.json, None);
        let Ok(CliCommand::Decode(d)) =
            parse_args(["decode", "--com2", "c2.bin", "com1.txt", "--elf=fw.elf", "--json", "out.json"])
        else {
            panic!("decode options not parsed")
        };
        assert_eq!(d.config.com1, PathBuf::from("com1.txt"));
        assert_eq!(d.config.com2, Some(PathBuf::from("c2.bin")));
        assert_eq!(d.config.elf, Some(PathBuf::from("fw.elf")));
        assert_eq!(d.json, Some(PathBuf::from("out.json")));
        assert!(matches!(parse_args(["decode"]), Err(CliError::MissingArgument(_))));
        assert!(matches!(parse_args(["decode", "a", "b"]), Err(CliError::UnexpectedArgument(b)) if b == "b"));
        assert!(matches!(parse_args(["decode", "a", "--machine", "pc"]), Err(CliError::UnknownOption(_))));
        assert!(matches!(parse_args(["decode", "a", "--com2"]), Err(CliError::MissingValue("--com2"))));
        assert!(matches!(parse_args(["decode", "a", "--elf="]), Err(CliError::InvalidValue { option: "--elf", .. })));
        assert_eq!(parse_args(["decode", "--help"]), Ok(CliCommand::Help));
        // `decode` is a subcommand only in first place.
        assert!(matches!(parse_args(["--json", "x", "decode"]), Err(CliError::UnexpectedArgument(_))));
        assert_eq!(cli_run(["decode"]), EXIT_USAGE);
        assert_eq!(cli_run(["decode", "/nonexistent/com1.txt"]), EXIT_ERROR);
    }

    #[test]
    fn help() {
        assert_eq!(parse_args(["-h"]), Ok(CliCommand::Help));
        assert_eq!(
            parse_args(["--machine", "pc", "--help"]),
            Ok(CliCommand::Help)
        );
        assert_eq!(cli_run(["--help"]), 0);
    }

    #[test]
    fn errors() {
        let cases: &[(&[&str], CliError)] = &[
            (&["--bogus"], CliError::UnknownOption("--bogus".into())),
            (&["--bogus=1"], CliError::UnknownOption("--bogus".into())),
            (&["-x"], CliError::UnknownOption("-x".into())),
            (&["stray"], CliError::UnexpectedArgument("stray".into())),
            (&["--machine"], CliError::MissingValue("--machine")),
            (&["--help=yes"], CliError::UnexpectedValue("--help")),
            (
                &["--no-default-devices=1"],
                CliError::UnexpectedValue("--no-default-devices"),
            ),
            (
                &["--machine", "virt"],
                CliError::InvalidValue {
                    option: "--machine",
                    value: "virt".into(),
                    expected: "q35 or pc",
                },
            ),
            (
                &["--accel=hvf"],
                CliError::InvalidValue {
                    option: "--accel",
                    value: "hvf".into(),
                    expected: "tcg or kvm",
                },
            ),
            (
                &["--device", ""],
                CliError::InvalidValue {
                    option: "--device",
                    value: "".into(),
                    expected: "a non-empty value",
                },
            ),
        ];
        for (args, expected) in cases {
            assert_eq!(
                parse_args(args.iter().copied()).as_ref(),
                Err(expected),
                "{args:?}"
            );
        }
        for bad in ["0", "-1", "abc", "inf", "NaN", ""] {
            let err = parse_args(["--timeout", bad]).unwrap_err();
            assert!(
                matches!(
                    err,
                    CliError::InvalidValue {
                        option: "--timeout",
                        ..
                    }
                ),
                "{bad}: {err:?}"
            );
        }
        assert_eq!(cli_run(["--machine", "virt"]), EXIT_USAGE);
        let msg = CliError::UnexpectedArgument("-d".into()).to_string();
        assert!(msg.contains("--qemu-arg=-d"), "{msg}");
    }

    #[test]
    fn no_oracle_and_a_long_append() {
        assert!(run_opts(&[]).config.oracle);
        assert!(!run_opts(&["--no-oracle"]).config.oracle);
        assert_eq!(parse_args(["--no-oracle=1"]), Err(CliError::UnexpectedValue("--no-oracle")));
        // 4095 bytes fit QEMU's PVH buffer only without the `oracle ` word.
        let fits = "x".repeat(crate::qemu::PVH_CMDLINE_MAX);
        assert!(run_opts(&["--no-oracle", "--append", &fits]).config.append.is_some());
        let err = parse_args(["--append", fits.as_str()]).unwrap_err();
        assert!(matches!(&err, CliError::Config(m) if m.contains("4102 bytes") && m.contains("--no-oracle")), "{err}");
        let long = "x".repeat(crate::qemu::PVH_CMDLINE_MAX + 1);
        assert!(matches!(parse_args(["--no-oracle", "--append", long.as_str()]), Err(CliError::Config(_))));
        // Refused before anything is built or started: a QEMU that does not exist is never tried (5).
        assert_eq!(cli_run(["--no-oracle", "--qemu", "/nonexistent/qemu", "--elf", "/nonexistent/fw", "--append", long.as_str()]), EXIT_USAGE);
        // The same line through GRUB is not QEMU's PVH buffer.
        assert!(run_opts(&["--boot", "iso-bios", "--append", &long]).config.append.is_some());
        // matrix: every line a cell boots (scenario=all becomes several, each longer).
        let Ok(CliCommand::Matrix(m)) = parse_args(["matrix", "--no-oracle"]) else { panic!("matrix --no-oracle") };
        assert!(!m.oracle);
        let near = format!("scenario=all {}", "x".repeat(crate::qemu::PVH_CMDLINE_MAX - 20));
        assert!(matches!(parse_args(["matrix", "--no-oracle", "--append", near.as_str()]), Err(CliError::Config(_))));
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
        assert!(matches!(parse_args([bad]), Err(CliError::NotUtf8(_))));
    }
}
