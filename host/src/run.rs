//! Booting the firmware in QEMU: streaming COM1, enforcing the timeout, decoding COM2 and judging
//! the result.

use std::fmt;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::decode::{decode_defmt, DefmtLog, TableStatus};
use crate::exit::{judge, Exit, QemuExit, Verdict};
use crate::firmware::{firmware_elf, FirmwareError};
use crate::oracle::Oracle;
use crate::qemu::{build_command, handover_deadline, Accel, MachineType, Purpose, QemuCommand, QemuProcess, RunConfig, ScratchDir, QMP_SOCKET, UNPLUG_MARKER};
use crate::qmp::QmpClient;
use crate::report::{describe_record, Problem, Report};

/// Prefix of echoed COM1 text lines.
pub const COM1_PREFIX: &str = "com1| ";
/// Prefix of echoed report records.
pub const REPORT_ECHO_PREFIX: &str = "report| ";
/// How often QEMU is polled while COM1 is quiet.
const POLL: Duration = Duration::from_millis(100);
/// How long to wait for the last output after QEMU ended.
const GRACE: Duration = Duration::from_secs(2);

/// Why a run could not be carried out (as opposed to a run whose firmware failed, which is an
/// [`Exit`] in a [`RunOutcome`]).
#[derive(Debug)]
pub enum RunError {
    /// The firmware could not be built.
    Firmware(FirmwareError),
    /// The ELF given with `--elf` / [`RunConfig::elf`] does not exist.
    ElfNotFound(PathBuf),
    /// The scratch directory could not be created.
    Scratch(io::Error),
    /// The boot image (ISO) could not be made.
    Image(crate::image::ImageError),
    /// QEMU could not be started.
    Spawn {
        /// The QEMU program.
        program: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Waiting for QEMU failed.
    Wait(io::Error),
    /// The configuration asks for what QEMU cannot do (checked before QEMU starts).
    Config(crate::qemu::ConfigError),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Firmware(e) => write!(f, "{e}"),
            RunError::ElfNotFound(p) => write!(f, "the ELF {} does not exist", p.display()),
            RunError::Scratch(e) => write!(f, "could not create the scratch directory: {e}"),
            RunError::Image(e) => write!(f, "could not make the boot image: {e}"),
            RunError::Spawn { program, source } => write!(
                f,
                "could not start {}: {source} (is QEMU installed? `apt-get install qemu-system-x86`, or pass --qemu PATH)",
                program.display()
            ),
            RunError::Wait(e) => write!(f, "waiting for QEMU failed: {e}"),
            RunError::Config(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Firmware(e) => Some(e),
            RunError::Scratch(e) | RunError::Wait(e) | RunError::Spawn { source: e, .. } => Some(e),
            RunError::ElfNotFound(_) => None,
            RunError::Image(e) => Some(e),
            RunError::Config(e) => Some(e),
        }
    }
}

impl From<FirmwareError> for RunError {
    fn from(e: FirmwareError) -> Self {
        RunError::Firmware(e)
    }
}

/// Everything one run produced: a QEMU boot ([`run`]) or a serial capture decoded afterwards
/// ([`crate::capture::decode_capture`]).
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// The verdict.
    pub exit: Exit,
    /// Host-side findings that explain the verdict (empty for a clean pass).
    pub findings: Vec<String>,
    /// The parsed report.
    pub report: Report,
    /// All COM1 output, report lines included, as received (lines joined with `\n`).
    pub com1: String,
    /// COM1 as raw bytes, exactly as QEMU printed it or as the capture file holds it.
    pub com1_bytes: Vec<u8>,
    /// COM2 as raw bytes (the defmt stream).
    pub com2_bytes: Vec<u8>,
    /// The decoded COM2 defmt log.
    pub defmt: DefmtLog,
    /// The firmware ELF: the one booted, or the one whose defmt table decoded a capture's COM2
    /// (`None` for a capture decoded without COM2).
    pub elf: Option<PathBuf>,
    /// Where the output came from.
    pub source: Source,
    /// The oracle: the report's functions against QEMU's `query-pci` ([`crate::oracle`]).
    pub oracle: Oracle,
}

/// Where a [`RunOutcome`]'s output came from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A QEMU boot by this launcher.
    Qemu(QemuRun),
    /// Serial captures from a machine, decoded with `cargo run -- decode`.
    Capture(CaptureSource),
}

/// What only a QEMU boot has.
#[derive(Clone, Debug)]
pub struct QemuRun {
    /// How QEMU ended.
    pub exit: QemuExit,
    /// The QEMU command that ran.
    pub command: QemuCommand,
    /// QEMU's stderr.
    pub stderr: String,
    /// Machine type QEMU built, as named (`q35`, `pc-q35-3.1`, `microvm`): `--machine`, or the
    /// `-M`/`-machine` given with `--qemu-arg` ([`MachineType::of`]).
    pub machine: String,
    /// Accelerator.
    pub accel: Accel,
    /// Wall time of the QEMU run.
    pub elapsed: Duration,
}

/// The files a decoded capture came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureSource {
    /// The COM1 capture.
    pub com1: PathBuf,
    /// The COM2 capture, if there was one.
    pub com2: Option<PathBuf>,
    /// What was cleaned out of the COM1 capture (boot loader output, terminal escapes, bytes that
    /// are not UTF-8), for the user; not problems of the firmware.
    pub notes: Vec<String>,
}

impl RunOutcome {
    /// The QEMU side of the run, or `None` for a decoded capture.
    pub fn qemu(&self) -> Option<&QemuRun> {
        match &self.source {
            Source::Qemu(q) => Some(q),
            Source::Capture(_) => None,
        }
    }

    /// Whether the run passed.
    pub fn passed(&self) -> bool {
        self.exit == Exit::Passed
    }

    /// The firmware's problem records followed by the host's findings (source `host`).
    pub fn problems(&self) -> Vec<Problem> {
        let mut all = self.report.problems.clone();
        all.extend(self.findings.iter().map(|f| Problem {
            source: "host".into(),
            detail: f.clone(),
        }));
        all
    }

    /// Records what the oracle found; a failed oracle fails a run that would otherwise have passed
    /// (exit status 1), and its `oracle:` line becomes a finding of any run that did not pass.
    pub fn set_oracle(&mut self, oracle: Oracle) {
        if oracle.failed() {
            self.findings.push(oracle.line());
            if self.exit == Exit::Passed {
                self.exit = Exit::Failed;
            }
        }
        self.oracle = oracle;
    }

    /// The closing line: `msifw: N passed, N failed, N skipped`. A run that did not pass but has no
    /// failed scenario counts as one failure, so the line never reads `0 failed` for a failed run.
    pub fn summary_line(&self) -> String {
        let c = self.report.counts();
        let failed = if self.exit != Exit::Passed && c.failed == 0 && c.xpassed == 0 {
            1
        } else {
            c.failed
        };
        // Expected failures and unexpected passes only when there are any (README "Known deviations").
        let mut x = String::new();
        if c.xfailed > 0 || c.xpassed > 0 {
            x = format!(", {} xfail, {} xpass", c.xfailed, c.xpassed);
        }
        format!(
            "msifw: {} passed, {} failed, {} skipped{x}",
            c.passed, failed, c.skipped
        )
    }

    /// The end-of-run text: defmt log, function table, scenarios, problems, verdict (with QEMU's
    /// stderr when the run did not pass) and the summary line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&self.defmt.render());
        out.push('\n');
        let cpus = self.report.render_cpus();
        if !cpus.is_empty() {
            out.push_str(&cpus);
            out.push('\n');
        }
        out.push_str(&self.report.render_functions());
        out.push('\n');
        out.push_str(&self.report.render_scenarios());
        out.push_str(&self.report.render_deviations());
        let problems = self.problems();
        if !problems.is_empty() {
            out.push_str("\nproblems:\n");
            for p in &problems {
                let _ = writeln!(out, "  [{}] {}", p.source, p.detail);
            }
        }
        out.push('\n');
        match &self.source {
            Source::Qemu(q) => {
                let _ = writeln!(
                    out,
                    "msifw: {} on {} ({}) in {:.2}s: QEMU {}",
                    self.exit,
                    q.machine,
                    q.accel,
                    q.elapsed.as_secs_f64(),
                    q.exit
                );
                if !self.passed() {
                    let stderr = q.stderr.trim_end();
                    if stderr.is_empty() {
                        out.push_str("qemu stderr: (empty)\n");
                    } else {
                        out.push_str("qemu stderr:\n");
                        for line in stderr.lines() {
                            let _ = writeln!(out, "  {line}");
                        }
                    }
                    let _ = writeln!(out, "rerun QEMU by hand: {}", q.command.shell());
                }
            }
            Source::Capture(c) => {
                let com2 = match &c.com2 {
                    Some(path) => format!("COM2 {}", path.display()),
                    None => "no COM2 capture".to_string(),
                };
                let _ = writeln!(
                    out,
                    "msifw: {} in a capture: COM1 {}, {com2}",
                    self.exit,
                    c.com1.display()
                );
                for note in &c.notes {
                    let _ = writeln!(out, "capture: {note}");
                }
            }
        }
        out.push_str(&self.oracle.line());
        out.push('\n');
        out.push_str(&self.summary_line());
        out.push('\n');
        out
    }

    /// The `--json` document.
    pub fn to_json(&self) -> Value {
        let mut platform = serde_json::Map::new();
        match &self.source {
            Source::Qemu(q) => {
                platform.insert("source".into(), json!("qemu"));
                platform.insert("machine".into(), json!(q.machine));
                platform.insert("accel".into(), json!(q.accel.as_str()));
                platform.insert("qemu_command".into(), json!(q.command.shell()));
            }
            Source::Capture(c) => {
                platform.insert("source".into(), json!("capture"));
                platform.insert("com1_capture".into(), json!(c.com1.display().to_string()));
                let com2 = c.com2.as_ref().map(|p| p.display().to_string());
                platform.insert("com2_capture".into(), json!(com2));
                let elf = self.elf.as_ref().map(|p| p.display().to_string());
                platform.insert("elf".into(), json!(elf));
            }
        }
        if let Some(p) = &self.report.platform {
            if let Ok(Value::Object(fields)) = serde_json::to_value(p) {
                platform.extend(fields);
            }
        }
        let c = self.report.counts();
        json!({
            "schema_version": crate::report::SCHEMA_VERSION,
            "platform": platform,
            "functions": self.report.functions,
            "scenarios": self.report.scenarios,
            "problems": self.problems(),
            "summary": {"passed": c.passed, "failed": c.failed, "skipped": c.skipped, "xfailed": c.xfailed, "xpassed": c.xpassed},
            "deviations": crate::deviations::to_json(self.report.deviations.as_ref()),
            "oracle": self.oracle.to_json(),
            "com2": {
                "bytes": self.com2_bytes.len(),
                "missing": match &self.defmt.table { TableStatus::NoCom2(why) => json!(why), _ => Value::Null },
            },
            "exit": self.exit.as_str(),
        })
    }
}

/// COM1 line by line: the raw bytes, the text, and the report records in it. A QEMU boot feeds the
/// lines as QEMU prints them; a decoded capture feeds the lines of its file ([`crate::capture`]).
#[derive(Clone, Debug, Default)]
pub struct Com1Log {
    /// Raw bytes, line ends included.
    pub bytes: Vec<u8>,
    /// The text lines, each followed by `\n`.
    pub text: String,
    /// The records so far.
    pub report: Report,
    /// Whether any line arrived.
    pub output: bool,
    /// Print each line as it arrives: text as `com1| ...`, records as `report| ...`.
    pub echo: bool,
}

impl Com1Log {
    /// An empty log.
    pub fn new(echo: bool) -> Com1Log {
        Com1Log { echo, ..Com1Log::default() }
    }

    /// Feeds one raw line (its `\n` or `\r\n` included or not) and returns its text.
    pub fn push_raw_line(&mut self, raw: &[u8]) -> String {
        self.bytes.extend_from_slice(raw);
        let line = line_text(raw);
        self.push_line(&line);
        line
    }

    /// Feeds one text line (without its line end).
    pub fn push_line(&mut self, line: &str) {
        self.output = true;
        self.text.push_str(line);
        self.text.push('\n');
        match self.report.push_line(line) {
            None if self.echo => println!("{COM1_PREFIX}{}", printable(line)),
            None => {}
            Some(Ok(record)) if self.echo => {
                println!("{REPORT_ECHO_PREFIX}{}", describe_record(&record))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) if self.echo => {
                println!("{COM1_PREFIX}{}", printable(line));
                println!("{REPORT_ECHO_PREFIX}malformed record: {e}");
            }
            Some(Err(_)) => {}
        }
    }
}

/// The text of one raw COM1 line: the line end (`\n`, `\r\n`) removed, bytes that are not UTF-8
/// replaced with U+FFFD.
pub fn line_text(raw: &[u8]) -> String {
    let mut end = raw.len();
    while end > 0 && matches!(raw[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// The defmt log of a COM2 stream, decoded with the table of the ELF at `elf`; without an ELF (a
/// capture decoded without COM2) the log says so. An unreadable ELF is a [`TableStatus`], not an
/// error.
pub fn decode_com2(elf: Option<&Path>, com2: &[u8]) -> DefmtLog {
    match elf.map(fs::read) {
        None => DefmtLog::without_table(TableStatus::NoCapture, com2.len()),
        Some(Ok(bytes)) => decode_defmt(&bytes, com2),
        Some(Err(e)) => DefmtLog::without_table(TableStatus::ElfUnreadable(e.to_string()), com2.len()),
    }
}

/// Turns what COM1 and COM2 carried into an outcome: decodes COM2 with the ELF's defmt table and
/// judges the report with `judge` (given the report and whether COM1 had any output). Shared by a
/// QEMU boot and a decoded capture.
pub fn outcome(
    com1: Com1Log,
    com2: Vec<u8>,
    elf: Option<PathBuf>,
    judge: impl FnOnce(&Report, bool) -> Verdict,
    source: Source,
) -> RunOutcome {
    let defmt = decode_com2(elf.as_deref(), &com2);
    let verdict = judge(&com1.report, com1.output);
    RunOutcome {
        exit: verdict.exit,
        findings: verdict.findings,
        report: com1.report,
        com1: com1.text,
        com1_bytes: com1.bytes,
        com2_bytes: com2,
        defmt,
        elf,
        source,
        oracle: Oracle::Off("decoded capture: no QEMU to ask".into()),
    }
}

/// A COM1 line as it may be shown on a terminal: a boot firmware's terminal escapes (OVMF clears the
/// screen) and other control characters taken out, as a decoded capture has them
/// ([`crate::capture::clean_line`]), instead of acting on the user's terminal.
pub fn printable(line: &str) -> String {
    crate::capture::clean_line(line.as_bytes()).0
}

enum Com1 {
    Line(Vec<u8>),
    Error(io::Error),
}

/// Builds the firmware (unless `cfg.elf` is set), boots it in QEMU and returns what happened.
///
/// With `cfg.echo`, the QEMU command (`qemu: ...`), COM1 lines (`com1| ...`) and report records
/// (`report| ...`) are printed with `println!`/`eprintln!` while QEMU runs.
pub fn run(cfg: &RunConfig) -> Result<RunOutcome, RunError> {
    cfg.validate().map_err(RunError::Config)?;
    let elf = match &cfg.elf {
        // Absolute, so the printed QEMU command works from any directory.
        Some(path) if path.is_file() => fs::canonicalize(path).unwrap_or_else(|_| path.clone()),
        Some(path) => return Err(RunError::ElfNotFound(path.clone())),
        None => firmware_elf()?,
    };
    let scratch = ScratchDir::create().map_err(RunError::Scratch)?;
    if cfg.boot.is_iso() {
        // GRUB reads the command line from the image, so each run gets an image of its own.
        let iso = scratch.path().join(crate::qemu::ISO_FILE);
        crate::image::build_iso(&elf, &cfg.firmware_cmdline(), &iso, scratch.path()).map_err(RunError::Image)?;
        if cfg.boot == crate::qemu::BootPath::IsoUefi && crate::image::ovmf().is_none() {
            return Err(RunError::Image(crate::image::ImageError::ToolsMissing("no OVMF image; `apt-get install ovmf`".into())));
        }
    }
    let machine = cfg.machine_type();
    let cmd = build_command(cfg, Purpose::Boot { elf: &elf }, scratch.path());
    if cfg.echo {
        eprintln!("qemu: {}", cmd.shell());
        if cfg.default_devices {
            eprintln!(
                "qemu: scratch files are removed after the run; to rerun: {}",
                scratch.recreate_hint()
            );
        }
    }
    let start = Instant::now();
    // Its stdin is not the terminal (`-serial stdio` would put it in raw mode) but a pipe, through which
    // the host answers the firmware's oracle wait with a byte on COM1's input. Killed if the run is left
    // early.
    let mut qemu = QemuProcess::spawn(&cmd).map_err(|source| RunError::Spawn { program: cmd.program.clone(), source })?;
    let child = qemu.child();
    let mut com1_input = child.stdin.take();

    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take();
    thread::spawn(move || {
        let Some(stdout) = stdout else { return };
        let mut reader = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => return,
                Ok(_) => {
                    if tx.send(Com1::Line(std::mem::take(&mut buf))).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.send(Com1::Error(e));
                    return;
                }
            }
        }
    });
    let mut stderr = child.stderr.take();
    let (err_tx, err_rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        let _ = err_tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    // The QMP connection is made while the boot firmware runs, so the firmware's oracle wait only
    // covers the question itself.
    let qmp_socket = scratch.path().join(QMP_SOCKET);
    let (qmp_tx, qmp_rx) = mpsc::channel();
    if cfg.oracle || cfg.unplug.is_some() {
        let socket = qmp_socket.clone();
        thread::spawn(move || {
            let _ = qmp_tx.send(QmpClient::connect(&socket, Instant::now() + QMP_CONNECT));
        });
    }
    let mut qmp: Option<Result<QmpClient, String>> = None;

    let mut com1 = Com1Log::new(cfg.echo);
    let mut unplug = cfg.unplug.clone();
    let echo = cfg.echo;
    let started = std::cell::Cell::new(false);
    let mut oracle_asks = 0usize;
    let mut oracle_cost = Duration::ZERO;
    let mut oracle_answer: Option<Result<Vec<crate::qmp::QemuFunction>, String>> = None;
    let mut handle = |msg: Com1| match msg {
        Com1::Line(raw) => {
            let line = com1.push_raw_line(&raw);
            if crate::capture::firmware_start(&printable(&line)).is_some() {
                started.set(true);
            }
            if line.contains(crate::oracle::MARKER) {
                // The firmware waits with bus numbers final: ask QEMU now, then let it go on.
                let t0 = Instant::now();
                oracle_asks += 1;
                if cfg.oracle {
                    let answer = qmp_connection(&mut qmp, &qmp_rx).and_then(|client| {
                        for request in &cfg.before_oracle {
                            client.execute_json("before-oracle request", request).map_err(|e| e.to_string())?;
                        }
                        client.query_pci().map_err(|e| format!("query-pci: {e}"))
                    });
                    oracle_answer = Some(answer);
                }
                let answered = com1_input.as_mut().map(|w| w.write_all(b"\n").and_then(|()| w.flush()));
                oracle_cost += t0.elapsed();
                if let Some(Err(e)) = answered {
                    if echo {
                        eprintln!("msifw: could not answer the firmware's oracle wait on COM1: {e}");
                    }
                }
            }
            if line.contains(UNPLUG_MARKER) {
                if let Some(id) = unplug.take() {
                    let sent = qmp_connection(&mut qmp, &qmp_rx).and_then(|client| {
                        client.execute("device_del", Some(json!({ "id": id }))).map(|_| ()).map_err(|e| e.to_string())
                    });
                    match sent {
                        Ok(()) if echo => println!("{COM1_PREFIX}(host) QMP device_del {id} sent"),
                        Ok(()) => {}
                        Err(e) => eprintln!("msifw: QMP device_del {id} failed: {e}"),
                    }
                }
            }
        }
        Com1::Error(e) => {
            if echo {
                eprintln!("msifw: reading COM1 failed: {e}");
            }
        }
    };

    let deadline = start + cfg.timeout;
    // Given up early when the firmware has not said a word by then (see `handover_deadline`).
    let start_deadline = handover_deadline(cfg).map(|d| start + d).filter(|d| *d < deadline);
    // Stream COM1 until QEMU exits and closes it, or a deadline passes. QEMU is polled as well, so
    // an exited QEMU whose stdout is somehow still held open does not look like a timeout.
    let mut status = None;
    let mut closed = false;
    let mut never_started = false;
    while status.is_none() && !closed {
        let now = Instant::now();
        if !started.get() && start_deadline.is_some_and(|d| now >= d) {
            never_started = true;
            break;
        }
        let left = deadline.saturating_duration_since(now);
        if left.is_zero() {
            break;
        }
        match rx.recv_timeout(left.min(POLL)) {
            Ok(msg) => handle(msg),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => closed = true,
        }
        if let Some(s) = child.try_wait().map_err(RunError::Wait)? {
            status = Some(s);
        }
    }
    if status.is_none() && closed {
        status = wait_until(child, deadline).map_err(RunError::Wait)?;
    }
    let qemu_exit = match status {
        Some(status) => QemuExit::from_status(status),
        None => {
            let _ = child.kill();
            child.wait().map_err(RunError::Wait)?;
            if never_started {
                QemuExit::NeverStarted(start_deadline.map_or(Duration::ZERO, |d| d - start))
            } else {
                QemuExit::TimedOut
            }
        }
    };
    let elapsed = start.elapsed();
    // QEMU is gone and its stdout closed: take what the reader still has. The grace period only
    // matters if something else holds the pipe open; the reader thread is then left behind.
    let grace = Instant::now() + GRACE;
    while let Ok(msg) = rx.recv_timeout(grace.saturating_duration_since(Instant::now())) {
        handle(msg);
    }
    let qemu_stderr = err_rx
        .recv_timeout(grace.saturating_duration_since(Instant::now()))
        .unwrap_or_default();
    if cfg.echo {
        match qemu_exit {
            QemuExit::TimedOut => eprintln!("msifw: timeout after {}s: QEMU killed", cfg.timeout.as_secs_f64()),
            QemuExit::NeverStarted(after) => {
                eprintln!("msifw: the firmware never started: no line from it {}s after QEMU started; QEMU killed", after.as_secs_f64())
            }
            _ => {}
        }
    }

    let com2 = fs::read(scratch.com2()).unwrap_or_default();
    let oracle = if !cfg.oracle {
        Oracle::Off("--no-oracle".into())
    } else {
        match oracle_answer {
            // The function records come at the end of a run: a report without its `end` record (a timeout,
            // a crash) holds only some of them or none, and the firmware's list cannot be held against
            // QEMU's; the run's own failure says why, once, rather than every function "missing".
            Some(Ok(_)) if com1.report.end.is_none() => Oracle::NotTaken(
                "the report stopped before its end (no `end` record): the firmware's function list is incomplete".into(),
            ),
            Some(Ok(functions)) => Oracle::Taken { comparison: crate::oracle::compare(&functions, &com1.report), cost: oracle_cost },
            Some(Err(e)) => Oracle::NotTaken(e),
            None if oracle_asks == 0 && !started.get() => Oracle::NotTaken("not taken: the firmware never started".into()),
            None if oracle_asks == 0 => Oracle::NotTaken(
                "the firmware never said its bus numbers were final (`msifw: oracle: ...` on COM1): it stopped \
                 before, or it does not know the `oracle` word (an older --elf? run with --no-oracle)"
                    .into(),
            ),
            None => Oracle::NotTaken("no answer recorded".into()),
        }
    };
    let source = Source::Qemu(QemuRun {
        exit: qemu_exit,
        command: cmd,
        stderr: qemu_stderr,
        machine: machine.name.clone(),
        accel: cfg.accel,
        elapsed,
    });
    crate::deviations::apply_for_run(&mut com1.report, cfg);
    let mut o = outcome(com1, com2, Some(elf), |report, output| judge(qemu_exit, report, output), source);
    if let QemuExit::NeverStarted(_) = qemu_exit {
        o.findings.extend(never_started_hint(cfg, &machine, &o));
    }
    // COM2 empty although the firmware ran (and logs there from its first steps): no UART took it.
    if o.com2_bytes.is_empty() && started.get() && matches!(o.defmt.table, TableStatus::Found(_)) {
        o.defmt.table = TableStatus::NoCom2(match machine.com2() {
            Some(false) => format!("machine type {} has one UART (COM1) and no COM2 at 0x2f8", machine.name),
            _ => format!("no UART took the bytes at COM2 (0x2f8) on machine type {}", machine.name),
        });
    }
    o.set_oracle(oracle);
    Ok(o)
}

/// The run's QMP connection: the one the connecting thread made (waited for at the first use), or why
/// there is none.
fn qmp_connection<'a>(
    qmp: &'a mut Option<Result<QmpClient, String>>,
    connected: &mpsc::Receiver<Result<QmpClient, crate::qmp::QmpError>>,
) -> Result<&'a mut QmpClient, String> {
    let conn = qmp.get_or_insert_with(|| match connected.recv_timeout(QMP_CONNECT) {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(format!("could not connect to QEMU's QMP socket: {e}")),
        Err(_) => Err("no QMP connection to QEMU".to_string()),
    });
    conn.as_mut().map_err(|e| e.clone())
}

/// How long the host waits for QEMU's QMP socket and for the connection at the firmware's first
/// question.
const QMP_CONNECT: Duration = Duration::from_secs(20);

/// Why the firmware of a run that never printed a line may not have started, when the host can tell.
fn never_started_hint(cfg: &RunConfig, machine: &MachineType, o: &RunOutcome) -> Option<String> {
    if cfg.boot == crate::qemu::BootPath::Pvh && machine.pvh() == Some(false) {
        return Some(format!(
            "machine type {} cannot start a PVH kernel (QEMU enables PVH from the 4.0 machine types): use a \
             newer machine type, or --boot iso-bios",
            machine.name
        ));
    }
    (!o.com1.is_empty()).then(|| "COM1 carried only the boot firmware's or loader's output (above), none of the firmware's".to_string())
}

/// Waits for the child until `deadline`; `None` if it is still running then.
fn wait_until(
    child: &mut Child,
    deadline: Instant,
) -> io::Result<Option<std::process::ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::DefmtLog;
    use crate::report::tests::sample_report;

    fn qemu_outcome(exit: Exit, report: Report) -> RunOutcome {
        RunOutcome {
            exit,
            findings: vec![],
            report,
            com1: String::new(),
            com1_bytes: Vec::new(),
            com2_bytes: Vec::new(),
            defmt: DefmtLog::without_table(TableStatus::Missing, 0),
            elf: Some("/fw".into()),
            source: Source::Qemu(QemuRun {
                exit: QemuExit::Code(1),
                command: QemuCommand {
                    program: "qemu-system-x86_64".into(),
                    args: vec!["-M".into(), "q35".into()],
                },
                stderr: "warning: nic e1000e.0 has no peer\n".into(),
                machine: "q35".into(),
                accel: Accel::Tcg,
                elapsed: Duration::from_millis(150),
            }),
            oracle: Oracle::Off("test".into()),
        }
    }

    fn qemu_exit(o: &RunOutcome) -> QemuExit {
        o.qemu().expect("a QEMU run").exit
    }

    #[test]
    fn json_document() {
        let o = qemu_outcome(Exit::Passed, sample_report());
        let j = o.to_json();
        assert_eq!(j["platform"]["source"], "qemu");
        assert_eq!(j["platform"]["machine"], "q35");
        assert_eq!(j["platform"]["accel"], "tcg");
        assert_eq!(j["platform"]["qemu_command"], "qemu-system-x86_64 -M q35");
        assert_eq!(j["platform"]["ecam_base"], "0xb0000000");
        assert_eq!(j["platform"]["x2apic"], false);
        assert_eq!(j["functions"][0]["bdf"], "00:02.0");
        assert_eq!(j["functions"][0]["bars"][0]["kind"], "mem32");
        assert_eq!(j["functions"][0]["irq_mode"], "msix");
        assert!(j["functions"][0].get("kind").is_none());
        assert_eq!(j["scenarios"][1]["control"], true);
        assert_eq!(j["scenarios"][2]["bdf"], Value::Null);
        assert_eq!(j["problems"][0]["source"], "acpi.mcfg");
        assert_eq!(
            j["summary"],
            json!({"passed": 2, "failed": 0, "skipped": 1, "xfailed": 0, "xpassed": 0})
        );
        assert_eq!(j["exit"], "passed");
    }

    #[test]
    fn rendering_and_summary() {
        let o = qemu_outcome(Exit::Passed, sample_report());
        let text = o.render();
        assert!(
            text.ends_with("msifw: 2 passed, 0 failed, 1 skipped\n"),
            "{text}"
        );
        assert!(text.contains("functions:\n") && text.contains("scenarios:\n"));
        assert!(!text.contains("qemu stderr"), "stderr only for failed runs");

        let mut o = qemu_outcome(Exit::Crash, Report::new());
        o.findings.push("QEMU exited with status 0".into());
        if let Source::Qemu(q) = &mut o.source {
            q.exit = QemuExit::Code(0);
        }
        let text = o.render();
        assert!(
            text.contains("qemu stderr:\n  warning: nic e1000e.0 has no peer"),
            "{text}"
        );
        assert!(text.contains("[host] QEMU exited with status 0"), "{text}");
        assert!(
            text.ends_with("msifw: 0 passed, 1 failed, 0 skipped\n"),
            "{text}"
        );
        assert_eq!(o.to_json()["problems"][0]["source"], "host");
    }

    #[test]
    fn missing_elf_and_qemu_are_errors() {
        let cfg = RunConfig::new().elf("/nonexistent/msifw.elf");
        assert!(matches!(run(&cfg), Err(RunError::ElfNotFound(_))));
        let exe = std::env::current_exe().unwrap();
        let cfg = RunConfig::new()
            .elf(exe)
            .qemu("/nonexistent/qemu")
            .echo(false);
        let err = run(&cfg).unwrap_err();
        assert!(matches!(err, RunError::Spawn { .. }));
        assert!(err.to_string().contains("--qemu"), "{err}");
    }

    /// Boots something that is not a PVH kernel: QEMU refuses it with status 1 and no output,
    /// which must be a crash, not a pass.
    #[test]
    fn qemu_refusing_the_elf_is_a_crash() {
        let exe = std::env::current_exe().unwrap();
        let cfg = RunConfig::new().elf(exe).echo(false).timeout_secs(30);
        let o = run(&cfg).unwrap();
        assert_eq!(o.exit, Exit::Crash, "{}", o.render());
        assert_eq!(qemu_exit(&o), QemuExit::Code(1));
        assert!(!o.qemu().unwrap().stderr.is_empty());
        assert!(o.render().contains("qemu stderr:"));
    }

    /// A stand-in for QEMU: a shell script that ignores its arguments.
    struct FakeQemu {
        dir: ScratchDir,
    }

    impl FakeQemu {
        fn new(body: &str) -> FakeQemu {
            use std::os::unix::fs::PermissionsExt;
            let dir = ScratchDir::create().unwrap();
            let path = dir.path().join("fake-qemu");
            fs::write(&path, format!("#!/bin/sh\n[ -n \"$FAKE_QEMU_PROBE\" ] && exit 0\n{body}\n")).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
            // A process another test thread forked while the script was being written holds its write
            // descriptor until it execs, and exec of the script then fails with ETXTBSY ("Text file
            // busy": one run of the lib tests failed so). Once one probe has run, no process holds it.
            for _ in 0..200 {
                match std::process::Command::new(&path).env("FAKE_QEMU_PROBE", "1").status() {
                    Err(e) if e.raw_os_error() == Some(26) => std::thread::sleep(std::time::Duration::from_millis(5)),
                    _ => break,
                }
            }
            FakeQemu { dir }
        }

        fn config(&self) -> RunConfig {
            // Any existing file will do as the ELF: it is only read for its (absent) defmt table.
            // No oracle: a shell script has no QMP socket to ask.
            RunConfig::new()
                .qemu(self.dir.path().join("fake-qemu"))
                .elf(self.dir.drive())
                .echo(false)
                .oracle(false)
        }
    }

    #[test]
    fn streams_com1_and_parses_records() {
        let fake = FakeQemu::new(
            r#"printf 'msifw: booting\r\n'
echo 'msifw-report {"kind":"scenario","name":"s","bdf":"00:04.0","result":"pass","detail":"ok","control":false}'
echo 'msifw-report {"kind":"end","passed":1,"failed":0,"skipped":0}'
printf 'no newline at the end'
echo 'qemu-ish warning' >&2
exit 1"#,
        );
        let o = run(&fake.config()).unwrap();
        assert_eq!(o.exit, Exit::Passed, "{}", o.render());
        assert_eq!(o.report.scenarios.len(), 1);
        assert!(
            o.com1.starts_with("msifw: booting\nmsifw-report "),
            "{:?}",
            o.com1
        );
        assert!(o.com1.ends_with("no newline at the end\n"), "{:?}", o.com1);
        assert_eq!(o.qemu().unwrap().stderr, "qemu-ish warning\n");
        assert!(o.com1_bytes.starts_with(b"msifw: booting\r\nmsifw-report "), "{:?}", o.com1_bytes);
        assert!(o.com1_bytes.ends_with(b"}\nno newline at the end"), "{:?}", o.com1_bytes);
        assert!(
            matches!(o.defmt.table, TableStatus::Invalid(_)),
            "{:?}",
            o.defmt.table
        );
        assert!(o
            .render()
            .ends_with("msifw: 1 passed, 0 failed, 0 skipped\n"));
    }

    #[test]
    fn exit_codes_from_the_firmware() {
        for (code, exit) in [
            (3, Exit::Failed),
            (5, Exit::Panic),
            (0, Exit::Crash),
            (1, Exit::Failed),
        ] {
            let fake = FakeQemu::new(&format!("echo 'msifw: started'\nexit {code}"));
            let o = run(&fake.config()).unwrap();
            assert_eq!(o.exit, exit, "status {code}: {}", o.render());
        }
        let fake = FakeQemu::new("kill -9 $$");
        let o = run(&fake.config()).unwrap();
        assert_eq!(qemu_exit(&o), QemuExit::Signal(Some(9)));
        assert_eq!(o.exit, Exit::Crash);
    }

    #[test]
    fn timeout_kills_qemu_and_keeps_the_output() {
        let fake = FakeQemu::new("echo 'msifw: waiting for an interrupt'\nexec sleep 30");
        let start = Instant::now();
        let o = run(&fake.config().timeout(Duration::from_millis(700))).unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(o.exit, Exit::Timeout);
        assert_eq!(qemu_exit(&o), QemuExit::TimedOut);
        assert_eq!(o.com1, "msifw: waiting for an interrupt\n");
        assert!(o.findings[0].contains("did not exit in time"));
        assert_eq!(o.to_json()["exit"], "timeout");
    }

    #[test]
    fn timeout_with_a_grandchild_holding_the_pipe() {
        // `sleep` inherits stdout and survives the kill of the shell.
        let fake = FakeQemu::new("echo started\nsleep 5\necho never");
        let start = Instant::now();
        let o = run(&fake.config().timeout(Duration::from_millis(500))).unwrap();
        assert_eq!(o.exit, Exit::Timeout);
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(o.com1, "started\n");
    }
}

/// Scenarios that need a QEMU run of their own (they restart the firmware or leave the devices shut
/// down); the firmware's `scenario=all` leaves them out, and [`run_all`] boots each separately.
pub const OWN_RUN_SCENARIOS: &[&str] = &msifw_proto::names::OWN_BOOT;

/// The firmware command lines a `scenario=all` run needs: the line itself (every scenario that can share
/// a run), then one per [`OWN_RUN_SCENARIOS`] entry with `scenario=all` replaced by that scenario. `None`
/// when the line does not ask for `scenario=all`.
pub fn split_scenario_all(append: &str) -> Option<Vec<String>> {
    let words: Vec<&str> = append.split_ascii_whitespace().collect();
    if !words.contains(&"scenario=all") {
        return None;
    }
    let mut lines = vec![append.trim().to_string()];
    for name in OWN_RUN_SCENARIOS {
        let line: Vec<String> = words
            .iter()
            .map(|w| if *w == "scenario=all" { format!("scenario={name}") } else { (*w).to_string() })
            .collect();
        lines.push(line.join(" "));
    }
    Some(lines)
}

/// Like [`run`], but a firmware command line with `scenario=all` becomes several QEMU runs (see
/// [`split_scenario_all`]) whose scenarios, problems and findings are merged into one outcome: the
/// functions and log of the first run, the worst verdict of all.
pub fn run_all(cfg: &RunConfig) -> Result<RunOutcome, RunError> {
    let Some(lines) = cfg.append.as_deref().and_then(split_scenario_all) else {
        return run(cfg);
    };
    let mut merged: Option<RunOutcome> = None;
    for line in lines {
        let part = run(&cfg.clone().append(line.clone()))?;
        match merged.as_mut() {
            None => merged = Some(part),
            Some(m) => {
                m.report.scenarios.extend(part.report.scenarios);
                if let (Some(mine), Some(theirs)) = (m.report.deviations.as_mut(), part.report.deviations) {
                    mine.not_applied.extend(theirs.not_applied);
                }
                // A cause of the platform is the same in every boot: listed once.
                for p in part.report.problems {
                    if !m.report.problems.contains(&p) {
                        m.report.problems.push(p);
                    }
                }
                m.findings.extend(part.findings.into_iter().map(|f| format!("[{line}] {f}")));
                let (Source::Qemu(mq), Source::Qemu(pq)) = (&mut m.source, part.source) else {
                    unreachable!("run() boots QEMU")
                };
                mq.elapsed += pq.elapsed;
                // The report keeps the first run's functions and so its oracle, unless a later one failed.
                let cost = m.oracle.cost() + part.oracle.cost();
                if part.oracle.failed() && !m.oracle.failed() {
                    m.oracle = part.oracle;
                }
                if let Oracle::Taken { cost: c, .. } = &mut m.oracle {
                    *c = cost;
                }
                if part.exit.code() > m.exit.code() {
                    m.exit = part.exit;
                    mq.exit = pq.exit;
                    mq.command = pq.command;
                    mq.stderr = pq.stderr;
                }
            }
        }
    }
    let mut m = merged.expect("at least one run");
    m.report.end = Some(m.report.counts().as_end());
    Ok(m)
}

#[cfg(test)]
mod scenario_all_tests {
    use super::*;

    #[test]
    fn scenario_all_becomes_one_run_per_own_run_scenario() {
        assert_eq!(split_scenario_all("nomsix"), None);
        let lines = split_scenario_all("nomsix scenario=all rounds=3").unwrap();
        assert_eq!(
            lines,
            [
                "nomsix scenario=all rounds=3",
                "nomsix scenario=crash-restart rounds=3",
                "nomsix scenario=crash-restart-control rounds=3",
                "nomsix scenario=msix-delivery-control rounds=3",
                "nomsix scenario=shutdown-control rounds=3",
            ]
        );
    }
}
