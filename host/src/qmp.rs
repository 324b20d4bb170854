//! QEMU's own view of the PCI devices: `query-pci` over QMP.
//!
//! One QMP client, [`QmpClient`], over either transport QEMU offers: every run asks the live VM over
//! its `-qmp unix:` socket while the firmware waits with bus numbers final (the oracle,
//! [`crate::oracle`]); [`qmp_query_pci`] instead starts the same machine with `-S -qmp stdio`, asks
//! over QEMU's stdin and stdout, and quits: the VM never runs, so no firmware is needed, but nothing
//! has programmed bridge bus numbers yet, so functions behind a PCI(e) bridge are not listed (QEMU
//! only walks buses with a configured secondary number); the bridges themselves are.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::qemu::{build_command, Purpose, QemuCommand, QemuProcess, RunConfig, ScratchDir};

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

/// The QEMU command `qmp_query_pci` runs for `cfg` (with `scratch` holding the drive image).
pub fn inspect_command(cfg: &RunConfig, scratch: &ScratchDir) -> QemuCommand {
    build_command(cfg, Purpose::Inspect, scratch.path())
}

/// Starts QEMU with `cfg`'s machine and devices, stopped (`-S`), and returns every PCI function
/// `query-pci` lists, including those on buses behind bridges, in QEMU's order.
pub fn qmp_query_pci(cfg: &RunConfig) -> Result<Vec<QemuFunction>, QmpError> {
    let scratch = ScratchDir::create().map_err(QmpError::Scratch)?;
    let cmd = inspect_command(cfg, &scratch);
    let mut qemu = QemuProcess::spawn(&cmd).map_err(|source| QmpError::Spawn { program: cmd.program.clone(), source })?;
    let child = qemu.child();
    let (stdin, stdout, mut stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let err_thread = thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    });
    // The session runs on a thread of its own, so a QEMU that never answers is killed at the deadline
    // (which closes its stdout and ends the thread).
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let session = || -> Result<Vec<QemuFunction>, QmpError> {
            let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
                return Err(QmpError::Io(io::Error::other("QEMU's stdin or stdout is not a pipe")));
            };
            let mut client = QmpClient::over(stdout, stdin)?;
            let functions = client.query_pci()?;
            // Its answer may not come: QEMU may close the connection as it quits.
            let _ = client.execute("quit", None);
            Ok(functions)
        };
        let _ = tx.send(session());
    });
    let answer = rx.recv_timeout(QMP_TIMEOUT).unwrap_or(Err(QmpError::Timeout));
    // QEMU quits after `quit`; one that has not by the deadline (or that never answered) is killed.
    let deadline = Instant::now() + QMP_TIMEOUT;
    let status = loop {
        match qemu.child().try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline && !matches!(answer, Err(QmpError::Timeout)) => thread::sleep(Duration::from_millis(10)),
            Ok(None) | Err(_) => {
                let _ = qemu.kill();
                break None;
            }
        }
    };
    let stderr = err_thread.join().unwrap_or_default();
    match answer {
        // The connection ended (or could not be written) before the answer: QEMU stopped; its status and
        // stderr say why.
        Err(QmpError::Io(_)) => {
            Err(QmpError::NoAnswer { status: status.map(|s| s.to_string()).unwrap_or_else(|| "killed".into()), stderr })
        }
        other => other,
    }
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

/// A QMP connection to QEMU, past the greeting and `qmp_capabilities`: over a running QEMU's
/// `-qmp unix:PATH,server=on,wait=off` socket ([`QmpClient::connect`]), or over any pair of streams,
/// such as the stdin and stdout of a QEMU started with `-qmp stdio` ([`QmpClient::over`]). QEMU serves
/// one QMP client on a socket at a time, so a run keeps one connection for everything it asks (the
/// oracle's `query-pci`, `--unplug`'s `device_del`).
pub struct QmpClient {
    reader: Box<dyn BufRead + Send>,
    writer: Box<dyn Write + Send>,
}

impl fmt::Debug for QmpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QmpClient")
    }
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
        let reader = stream.try_clone().map_err(QmpError::Io)?;
        QmpClient::over(reader, stream)
    }

    /// A client reading QEMU's side from `from` and writing commands to `to`: reads the greeting and
    /// negotiates capabilities. A pipe has no read timeout: the caller bounds the wait (by killing QEMU,
    /// which ends the stream).
    pub fn over(from: impl Read + Send + 'static, to: impl Write + Send + 'static) -> Result<QmpClient, QmpError> {
        let mut client = QmpClient { reader: Box::new(BufReader::new(from)), writer: Box::new(to) };
        let mut greeting = String::new();
        if client.reader.read_line(&mut greeting).map_err(QmpError::Io)? == 0 {
            return Err(QmpError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "QMP closed before its greeting")));
        }
        let greeting: Value = serde_json::from_str(&greeting).map_err(|e| QmpError::Malformed(format!("greeting not JSON ({e}): {greeting}")))?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Malformed(format!("not a QMP greeting: {greeting}")));
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
        writeln!(self.writer, "{request}").and_then(|()| self.writer.flush()).map_err(QmpError::Io)?;
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line).map_err(QmpError::Io)? == 0 {
                return Err(QmpError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "QMP closed")));
            }
            if line.trim().is_empty() {
                continue;
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

    /// What the client wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Sent(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Sent {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sent {
        fn commands(&self) -> Vec<String> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["execute"].as_str().unwrap().to_string()).collect()
        }
    }

    fn session(text: &'static str) -> (Result<QmpClient, QmpError>, Sent) {
        let sent = Sent::default();
        (QmpClient::over(text.as_bytes(), sent.clone()), sent)
    }

    #[test]
    fn parses_a_session_with_a_bridge() {
        let (client, sent) = session(SESSION);
        let mut client = client.unwrap();
        let f = client.query_pci().unwrap();
        // The SHUTDOWN event before quit's answer is skipped.
        assert_eq!(client.execute("quit", None).unwrap(), serde_json::json!({}));
        assert_eq!(sent.commands(), ["qmp_capabilities", "query-pci", "quit"]);
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
        let (client, _) = session("{\"QMP\":{}}\n{\"return\":{}}\n{\"error\":{\"class\":\"GenericError\",\"desc\":\"nope\"}}\n");
        let err = client.unwrap().query_pci();
        assert!(matches!(&err, Err(QmpError::Command { command: "query-pci", error }) if error == "GenericError: nope"), "{err:?}");
        // The stream ends before the answer.
        let (client, _) = session("{\"QMP\":{}}\n{\"return\":{}}\n");
        assert!(matches!(client.unwrap().query_pci(), Err(QmpError::Io(_))));
        let (client, _) = session("");
        assert!(matches!(client, Err(QmpError::Io(_))));
        let (client, _) = session("garbage\n");
        assert!(matches!(client, Err(QmpError::Malformed(_))));
        let (client, _) = session("{\"return\":{}}\n");
        assert!(matches!(client, Err(QmpError::Malformed(m)) if m.contains("greeting")));
        let (client, _) = session("{\"QMP\":{}}\n{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"x\"}}\n");
        assert!(matches!(client, Err(QmpError::Command { command: "qmp_capabilities", .. })));
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
