//! QEMU's own view of the PCI devices: `query-pci` over QMP.
//!
//! Every run asks the live VM through [`QmpClient`] while the firmware waits with bus numbers final
//! (the oracle, [`crate::oracle`]). [`qmp_query_pci`] instead starts the same machine with `-S -qmp
//! stdio`, asks, and quits: the VM never runs, so no firmware is needed, but nothing has programmed
//! bridge bus numbers yet, so functions behind a PCI(e) bridge are not listed (QEMU only walks buses
//! with a configured secondary number); the bridges themselves are.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::qemu::{build_command, Purpose, QemuCommand, RunConfig, ScratchDir};

/// How long QEMU may take to answer (it only has to build the machine).
pub const QMP_TIMEOUT: Duration = Duration::from_secs(30);

/// A BAR region as QEMU sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// I/O ports.
    Io,
    /// Memory.
    Memory,
}

/// One BAR (or ROM, index 6) of a function as QEMU sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QemuRegion {
    /// BAR index; 6 is the expansion ROM.
    pub bar: u8,
    /// I/O or memory.
    pub kind: RegionKind,
    /// 64-bit memory BAR.
    pub mem64: bool,
    /// Prefetchable memory.
    pub prefetch: bool,
    /// Size in bytes.
    pub size: u64,
}

/// One PCI function as QEMU's `query-pci` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuFunction {
    /// Bus number.
    pub bus: u8,
    /// Slot (device) number.
    pub slot: u8,
    /// Function number.
    pub function: u8,
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
    /// Base class.
    pub class: u8,
    /// Subclass.
    pub subclass: u8,
    /// QEMU's description of the class, if it has one.
    pub desc: Option<String>,
    /// The `id=` given on the command line, or empty.
    pub qdev_id: String,
    /// BARs (and ROM) with a size.
    pub regions: Vec<QemuRegion>,
}

impl QemuFunction {
    /// `"00:02.0"`, as in the firmware's report.
    pub fn bdf(&self) -> String {
        format!("{:02x}:{:02x}.{:x}", self.bus, self.slot, self.function)
    }

    /// `"8086:10d3"`.
    pub fn id(&self) -> String {
        format!("{:04x}:{:04x}", self.vendor, self.device)
    }

    /// Class and subclass as 4 hex digits (`"0200"`), the first four digits of the report's class.
    pub fn class_hex(&self) -> String {
        format!("{:02x}{:02x}", self.class, self.subclass)
    }

    /// The BARs 0-5 (without the ROM).
    pub fn bars(&self) -> impl Iterator<Item = &QemuRegion> {
        self.regions.iter().filter(|r| r.bar < 6)
    }
}

/// Why `query-pci` could not be done.
#[derive(Debug)]
pub enum QmpError {
    /// The scratch directory could not be created.
    Scratch(io::Error),
    /// QEMU could not be started.
    Spawn {
        /// The QEMU program.
        program: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Talking to QEMU failed.
    Io(io::Error),
    /// QEMU did not answer in time (it was killed).
    Timeout,
    /// QEMU ended without answering `query-pci`.
    NoAnswer {
        /// QEMU's exit status, as text.
        status: String,
        /// QEMU's stderr.
        stderr: String,
    },
    /// QEMU answered a command with an error.
    Command {
        /// The command.
        command: &'static str,
        /// QEMU's error class and description.
        error: String,
    },
    /// The answer is not what `query-pci` returns.
    Malformed(String),
}

impl fmt::Display for QmpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QmpError::Scratch(e) => write!(f, "could not create the scratch directory: {e}"),
            QmpError::Spawn { program, source } => {
                write!(f, "could not start {}: {source}", program.display())
            }
            QmpError::Io(e) => write!(f, "QMP I/O error: {e}"),
            QmpError::Timeout => write!(
                f,
                "QEMU did not answer query-pci within {}s",
                QMP_TIMEOUT.as_secs()
            ),
            QmpError::NoAnswer { status, stderr } => {
                write!(
                    f,
                    "QEMU ended ({status}) without answering query-pci; its stderr:\n{stderr}"
                )
            }
            QmpError::Command { command, error } => write!(f, "QMP {command} failed: {error}"),
            QmpError::Malformed(what) => write!(f, "unexpected query-pci answer: {what}"),
        }
    }
}

impl std::error::Error for QmpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            QmpError::Scratch(e) | QmpError::Io(e) | QmpError::Spawn { source: e, .. } => Some(e),
            _ => None,
        }
    }
}

const COMMANDS: [&str; 3] = ["qmp_capabilities", "query-pci", "quit"];

/// The QEMU command `qmp_query_pci` runs for `cfg` (with `scratch` holding the drive image).
pub fn inspect_command(cfg: &RunConfig, scratch: &ScratchDir) -> QemuCommand {
    build_command(cfg, Purpose::Inspect, scratch.path())
}

/// Starts QEMU with `cfg`'s machine and devices, stopped (`-S`), and returns every PCI function
/// `query-pci` lists, including those on buses behind bridges, in QEMU's order.
pub fn qmp_query_pci(cfg: &RunConfig) -> Result<Vec<QemuFunction>, QmpError> {
    let scratch = ScratchDir::create().map_err(QmpError::Scratch)?;
    let cmd = inspect_command(cfg, &scratch);
    let mut child = Command::new(&cmd.program)
        .args(&cmd.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| QmpError::Spawn {
            program: cmd.program.clone(),
            source,
        })?;

    // QMP accepts commands before it has sent its greeting; it answers them in order.
    if let Some(mut stdin) = child.stdin.take() {
        let mut text = String::new();
        for c in COMMANDS {
            text.push_str(&format!("{{\"execute\":\"{c}\"}}\n"));
        }
        // A write error here means QEMU already exited; its status and stderr tell why.
        let _ = stdin.write_all(text.as_bytes());
    }
    let (tx, rx) = mpsc::channel();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_thread = thread::spawn(move || {
        let mut buf = String::new();
        let res = stdout
            .as_mut()
            .map(|s| s.read_to_string(&mut buf))
            .unwrap_or(Ok(0));
        let _ = tx.send(res.map(|_| buf));
    });
    let err_thread = thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    });

    let deadline = Instant::now() + QMP_TIMEOUT;
    let output = match rx.recv_timeout(QMP_TIMEOUT) {
        Ok(res) => res.map_err(QmpError::Io),
        Err(_) => Err(QmpError::Timeout),
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline && output.is_ok() => {
                thread::sleep(Duration::from_millis(10))
            }
            Ok(None) | Err(_) => {
                let _ = child.kill();
                break child.wait().ok();
            }
        }
    };
    let _ = out_thread.join();
    let stderr_text = err_thread.join().unwrap_or_default();
    let output = output?;
    match parse_session(&output) {
        Err(QmpError::NoAnswer { .. }) => Err(QmpError::NoAnswer {
            status: status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "killed".into()),
            stderr: stderr_text,
        }),
        other => other,
    }
}

/// Parses QEMU's side of the QMP session: the greeting, events, and one answer per command in
/// command order (`qmp_capabilities`, `query-pci`, `quit`); returns the functions of the `query-pci` answer.
pub fn parse_session(output: &str) -> Result<Vec<QemuFunction>, QmpError> {
    let mut answers = Vec::new();
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let msg: Value = serde_json::from_str(line)
            .map_err(|e| QmpError::Malformed(format!("not JSON ({e}): {line}")))?;
        if msg.get("QMP").is_some() || msg.get("event").is_some() {
            continue;
        }
        answers.push(msg);
    }
    let mut pci = None;
    for (i, answer) in answers.iter().enumerate() {
        let command = COMMANDS.get(i).copied().unwrap_or("?");
        if let Some(err) = answer.get("error") {
            let class = err.get("class").and_then(Value::as_str).unwrap_or("?");
            let desc = err.get("desc").and_then(Value::as_str).unwrap_or("?");
            return Err(QmpError::Command {
                command,
                error: format!("{class}: {desc}"),
            });
        }
        if command == "query-pci" {
            pci = answer.get("return");
        }
    }
    parse_query_pci(pci.ok_or(QmpError::NoAnswer {
        status: String::new(),
        stderr: String::new(),
    })?)
}

/// The functions of a `query-pci` answer (its `return` value): every root bus QEMU lists (bus 0, and
/// each expander bridge's bus), and below each bridge with a secondary bus number, in QEMU's order.
pub fn parse_query_pci(answer: &Value) -> Result<Vec<QemuFunction>, QmpError> {
    let buses = answer
        .as_array()
        .ok_or_else(|| QmpError::Malformed("query-pci did not return an array".into()))?;
    let mut out = Vec::new();
    for bus in buses {
        collect_bus(bus, &mut out)?;
    }
    Ok(out)
}

/// A QMP connection to a running QEMU (its `-qmp unix:PATH,server=on,wait=off` socket), past the
/// greeting and `qmp_capabilities`. QEMU serves one QMP client on such a socket at a time, so a run
/// keeps one connection for everything it asks (the oracle's `query-pci`, `--unplug`'s `device_del`).
#[derive(Debug)]
pub struct QmpClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl QmpClient {
    /// Connects to `socket`, retrying until QEMU has created it or `deadline` passes, and negotiates
    /// capabilities. Each answer may take up to [`QMP_TIMEOUT`].
    pub fn connect(socket: &Path, deadline: Instant) -> Result<QmpClient, QmpError> {
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(e) if Instant::now() >= deadline => return Err(QmpError::Io(e)),
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        };
        stream.set_read_timeout(Some(QMP_TIMEOUT)).map_err(QmpError::Io)?;
        let mut client = QmpClient { reader: BufReader::new(stream.try_clone().map_err(QmpError::Io)?), writer: stream };
        let mut greeting = String::new();
        if client.reader.read_line(&mut greeting).map_err(QmpError::Io)? == 0 {
            return Err(QmpError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "QMP closed before its greeting")));
        }
        client.execute("qmp_capabilities", None)?;
        Ok(client)
    }

    /// Runs one command and returns its `return` value; asynchronous events before the answer are
    /// skipped.
    pub fn execute(&mut self, command: &'static str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let mut request = serde_json::json!({ "execute": command });
        if let Some(args) = arguments {
            request["arguments"] = args;
        }
        self.execute_json(command, &request)
    }

    /// Runs a command given as a whole QMP request (`{"execute": ..., "arguments": ...}`).
    pub fn execute_json(&mut self, label: &'static str, request: &Value) -> Result<Value, QmpError> {
        writeln!(self.writer, "{request}").map_err(QmpError::Io)?;
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line).map_err(QmpError::Io)? == 0 {
                return Err(QmpError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "QMP closed")));
            }
            let answer: Value = serde_json::from_str(&line).map_err(|e| QmpError::Malformed(format!("not JSON ({e}): {line}")))?;
            if let Some(err) = answer.get("error") {
                let class = err.get("class").and_then(Value::as_str).unwrap_or("?");
                let desc = err.get("desc").and_then(Value::as_str).unwrap_or("?");
                return Err(QmpError::Command { command: label, error: format!("{class}: {desc}") });
            }
            if let Some(ret) = answer.get("return") {
                return Ok(ret.clone());
            }
        }
    }

    /// QEMU's PCI functions now (`query-pci` on the live VM, with bus numbers as the guest has
    /// programmed them).
    pub fn query_pci(&mut self) -> Result<Vec<QemuFunction>, QmpError> {
        let answer = self.execute("query-pci", None)?;
        parse_query_pci(&answer)
    }
}

fn collect_bus(bus: &Value, out: &mut Vec<QemuFunction>) -> Result<(), QmpError> {
    let Some(devices) = bus.get("devices") else {
        return Ok(()); // a bridge whose secondary bus is not configured lists no devices
    };
    let devices = devices
        .as_array()
        .ok_or_else(|| QmpError::Malformed("`devices` is not an array".into()))?;
    for dev in devices {
        out.push(parse_function(dev)?);
        if let Some(behind) = dev.get("pci_bridge").and_then(|b| b.get("devices")) {
            collect_bus(&serde_json::json!({ "devices": behind }), out)?;
        }
    }
    Ok(())
}

fn field<'a>(v: &'a Value, path: &[&str]) -> Result<&'a Value, QmpError> {
    let mut cur = v;
    for key in path {
        cur = cur
            .get(key)
            .ok_or_else(|| QmpError::Malformed(format!("no `{}` in {v}", path.join("."))))?;
    }
    Ok(cur)
}

fn uint<T: TryFrom<u64>>(v: &Value, path: &[&str]) -> Result<T, QmpError> {
    field(v, path)?
        .as_u64()
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| QmpError::Malformed(format!("`{}` out of range in {v}", path.join("."))))
}

fn parse_function(dev: &Value) -> Result<QemuFunction, QmpError> {
    let class: u16 = uint(dev, &["class_info", "class"])?;
    let mut regions = Vec::new();
    if let Some(list) = dev.get("regions").and_then(Value::as_array) {
        for r in list {
            let kind = match field(r, &["type"])?.as_str() {
                Some("io") => RegionKind::Io,
                Some("memory") => RegionKind::Memory,
                _ => return Err(QmpError::Malformed(format!("region type in {r}"))),
            };
            regions.push(QemuRegion {
                bar: uint(r, &["bar"])?,
                kind,
                mem64: r
                    .get("mem_type_64")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                prefetch: r.get("prefetch").and_then(Value::as_bool).unwrap_or(false),
                size: uint(r, &["size"])?,
            });
        }
    }
    Ok(QemuFunction {
        bus: uint(dev, &["bus"])?,
        slot: uint(dev, &["slot"])?,
        function: uint(dev, &["function"])?,
        vendor: uint(dev, &["id", "vendor"])?,
        device: uint(dev, &["id", "device"])?,
        class: (class >> 8) as u8,
        subclass: class as u8,
        desc: dev
            .get("class_info")
            .and_then(|c| c.get("desc"))
            .and_then(Value::as_str)
            .map(String::from),
        qdev_id: dev
            .get("qdev_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        regions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::Machine;

    const SESSION: &str = r#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}
{"return": {}}
{"return": [{"bus": 0, "devices": [{"irq_pin": 0, "bus": 0, "qdev_id": "", "slot": 0, "class_info": {"class": 1536, "desc": "Host bridge"}, "id": {"device": 10688, "vendor": 32902}, "function": 0, "regions": []}, {"bus": 0, "slot": 1, "function": 0, "qdev_id": "br1", "class_info": {"class": 1540, "desc": "PCI bridge"}, "id": {"device": 1, "vendor": 6966}, "regions": [{"prefetch": false, "mem_type_64": true, "bar": 0, "size": 256, "address": -1, "type": "memory"}], "pci_bridge": {"bus": {"number": 1, "secondary": 1, "subordinate": 1}, "devices": [{"bus": 1, "slot": 0, "function": 0, "qdev_id": "", "class_info": {"class": 255}, "id": {"device": 4584, "vendor": 4660}, "regions": [{"bar": 0, "size": 1048576, "address": -1, "type": "memory", "prefetch": false, "mem_type_64": false}]}]}}, {"bus": 0, "slot": 2, "function": 0, "qdev_id": "", "class_info": {"class": 512}, "id": {"device": 4307, "vendor": 32902}, "regions": [{"bar": 2, "size": 32, "address": -1, "type": "io"}, {"bar": 6, "size": 262144, "address": -1, "type": "memory", "prefetch": false, "mem_type_64": false}]}]}]}
{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}
{"return": {}}
"#;

    #[test]
    fn parses_a_session_with_a_bridge() {
        let f = parse_session(SESSION).unwrap();
        let bdfs: Vec<String> = f.iter().map(QemuFunction::bdf).collect();
        assert_eq!(bdfs, ["00:00.0", "00:01.0", "01:00.0", "00:02.0"]);
        assert_eq!(f[0].id(), "8086:29c0");
        assert_eq!((f[1].class, f[1].subclass), (0x06, 0x04));
        assert_eq!(f[2].class_hex(), "00ff");
        assert_eq!(
            f[2].regions[0],
            QemuRegion {
                bar: 0,
                kind: RegionKind::Memory,
                mem64: false,
                prefetch: false,
                size: 1 << 20
            }
        );
        assert_eq!(f[3].regions[0].kind, RegionKind::Io);
        assert_eq!(f[3].bars().count(), 1, "the ROM (bar 6) is not a BAR");
    }

    #[test]
    fn command_errors_and_missing_answers() {
        let err = parse_session("{\"QMP\":{}}\n{\"return\":{}}\n{\"error\":{\"class\":\"GenericError\",\"desc\":\"nope\"}}\n");
        assert!(
            matches!(
                err,
                Err(QmpError::Command {
                    command: "query-pci",
                    ..
                })
            ),
            "{err:?}"
        );
        assert!(matches!(
            parse_session("{\"QMP\":{}}\n"),
            Err(QmpError::NoAnswer { .. })
        ));
        assert!(matches!(
            parse_session("garbage\n"),
            Err(QmpError::Malformed(_))
        ));
    }

    fn find<'a>(list: &'a [QemuFunction], bdf: &str) -> &'a QemuFunction {
        list.iter()
            .find(|f| f.bdf() == bdf)
            .unwrap_or_else(|| panic!("{bdf} not in {list:#?}"))
    }

    /// The oracle against the real QEMU (needs `qemu-system-x86_64`, no firmware).
    #[test]
    fn real_qemu_q35_default_devices() {
        let list =
            qmp_query_pci(&RunConfig::new()).unwrap_or_else(|e| panic!("query-pci on q35: {e}"));
        let e1000e = find(&list, "00:02.0");
        assert_eq!(
            (e1000e.id().as_str(), e1000e.class_hex().as_str()),
            ("8086:10d3", "0200")
        );
        let sizes: Vec<(u8, RegionKind, u64)> =
            e1000e.bars().map(|r| (r.bar, r.kind, r.size)).collect();
        assert_eq!(
            sizes,
            [
                (0, RegionKind::Memory, 128 << 10),
                (1, RegionKind::Memory, 128 << 10),
                (2, RegionKind::Io, 32),
                (3, RegionKind::Memory, 16 << 10)
            ]
        );
        let nvme = find(&list, "00:03.0");
        assert_eq!(
            (nvme.id().as_str(), nvme.class_hex().as_str()),
            ("1b36:0010", "0108")
        );
        assert!(nvme.regions[0].mem64);
        let edu = find(&list, "00:04.0");
        assert_eq!(
            (edu.id().as_str(), edu.class_hex().as_str()),
            ("1234:11e8", "00ff")
        );
        assert_eq!(edu.regions[0].size, 1 << 20);
        assert_eq!(find(&list, "00:00.0").id(), "8086:29c0");
        assert_eq!(find(&list, "00:1f.0").class_hex(), "0601");
        assert_eq!(find(&list, "00:1f.2").class_hex(), "0106");
        assert_eq!(find(&list, "00:1f.3").class_hex(), "0c05");
        assert_eq!(list.len(), 7, "{list:#?}");
    }

    #[test]
    fn real_qemu_pc_without_default_devices_and_a_bridge() {
        let cfg = RunConfig::new()
            .machine(Machine::Pc)
            .default_devices(false)
            .device("pci-bridge,chassis_nr=1,id=br1,addr=05.0")
            .device("edu,bus=br1,addr=01.0");
        let list = qmp_query_pci(&cfg).unwrap_or_else(|e| panic!("query-pci on pc: {e}"));
        let bdfs: Vec<String> = list.iter().map(QemuFunction::bdf).collect();
        // PIIX3: host bridge, ISA, IDE, ACPI/PM; the edu behind the unnumbered bridge is invisible.
        assert_eq!(
            bdfs,
            ["00:00.0", "00:01.0", "00:01.1", "00:01.3", "00:05.0"]
        );
        assert_eq!(list[0].id(), "8086:1237");
        assert_eq!(list[4].qdev_id, "br1");
    }

    #[test]
    fn real_qemu_error_is_reported() {
        let cfg = RunConfig::new().device("no-such-device");
        match qmp_query_pci(&cfg) {
            Err(QmpError::NoAnswer { stderr, .. }) => {
                assert!(stderr.contains("no-such-device"), "{stderr}")
            }
            other => panic!("{other:?}"),
        }
        let missing = RunConfig::new().qemu("/nonexistent/qemu");
        assert!(matches!(
            qmp_query_pci(&missing),
            Err(QmpError::Spawn { .. })
        ));
    }
}
