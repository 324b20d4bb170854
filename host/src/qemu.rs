//! What to boot and how: [`RunConfig`], the QEMU command line built from it, shell quoting for
//! printing that command, the per-run scratch directory, and [`QemuProcess`], the one way QEMU is
//! started (killed and reaped when dropped).

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Default QEMU binary.
pub const DEFAULT_QEMU: &str = "qemu-system-x86_64";
/// Default run timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Size of the NVMe scratch drive created for every run.
pub const SCRATCH_DRIVE_SIZE: u64 = 1 << 20;
/// File name of the NVMe scratch drive inside the scratch directory.
pub const DRIVE_FILE: &str = "nvme0.img";
/// File name of the COM2 (defmt) capture inside the scratch directory.
pub const COM2_FILE: &str = "com2.bin";

/// QEMU machine type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Machine {
    /// `-M q35`: ICH9, PCIe, ECAM (MCFG).
    #[default]
    Q35,
    /// `-M pc`: i440FX + PIIX3, legacy port I/O config access.
    Pc,
}

impl Machine {
    /// Name as QEMU and the CLI spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Machine::Q35 => "q35",
            Machine::Pc => "pc",
        }
    }

    /// Parses `q35` or `pc`.
    pub fn parse(s: &str) -> Option<Machine> {
        match s {
            "q35" => Some(Machine::Q35),
            "pc" => Some(Machine::Pc),
            _ => None,
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// QEMU accelerator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Accel {
    /// Software emulation (default: fast and deterministic on this kind of machine).
    #[default]
    Tcg,
    /// KVM (nested and slow here; only when asked for).
    Kvm,
}

impl Accel {
    /// Name as QEMU and the CLI spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }

    /// Parses `tcg` or `kvm`.
    pub fn parse(s: &str) -> Option<Accel> {
        match s {
            "tcg" => Some(Accel::Tcg),
            "kvm" => Some(Accel::Kvm),
            _ => None,
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the firmware is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum BootPath {
    /// QEMU's PVH loader (`-kernel ELF -append CMDLINE`), after SeaBIOS (or the `-bios` given).
    #[default]
    Pvh,
    /// A GRUB ISO built for the run (`cargo run -- image`), from a CD under SeaBIOS; GRUB starts the
    /// firmware through Multiboot2.
    IsoBios,
    /// The same ISO under OVMF (UEFI).
    IsoUefi,
}

impl BootPath {
    /// Name on the command line and in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            BootPath::Pvh => "pvh",
            BootPath::IsoBios => "iso-bios",
            BootPath::IsoUefi => "iso-uefi",
        }
    }

    /// From its name.
    pub fn parse(s: &str) -> Option<BootPath> {
        match s {
            "pvh" => Some(BootPath::Pvh),
            "iso-bios" => Some(BootPath::IsoBios),
            "iso-uefi" => Some(BootPath::IsoUefi),
            _ => None,
        }
    }

    /// Whether the firmware comes from an ISO.
    pub fn is_iso(self) -> bool {
        self != BootPath::Pvh
    }
}

/// The ISO of an ISO boot, in the scratch directory.
pub const ISO_FILE: &str = "msifw.iso";

/// Everything that decides one QEMU run. Build it with [`RunConfig::new`] and the builder methods:
///
/// ```
/// use msifw_host::{Machine, RunConfig};
/// let cfg = RunConfig::new().machine(Machine::Pc).device("pci-testdev").timeout_secs(30);
/// assert_eq!(cfg.machine, Machine::Pc);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RunConfig {
    /// Machine type (`-M`).
    pub machine: Machine,
    /// Accelerator (`-accel`).
    pub accel: Accel,
    /// How the firmware is started.
    pub boot: BootPath,
    /// Extra `-device` specs, added after the default devices.
    pub devices: Vec<String>,
    /// Whether to add the default e1000e, nvme and edu devices.
    pub default_devices: bool,
    /// Extra QEMU arguments, passed verbatim at the end of the command line.
    pub qemu_args: Vec<String>,
    /// The CPU topology (`-smp` value, e.g. `4` or `6,sockets=2,cores=3`); `1` by default. A `-smp`
    /// among [`RunConfig::qemu_args`] comes later on the command line and QEMU merges it over this one.
    pub smp: String,
    /// Firmware command line (`-append`).
    pub append: Option<String>,
    /// Wall-clock limit for the run; QEMU is killed when it is reached.
    pub timeout: Duration,
    /// Boot this ELF instead of building the firmware.
    pub elf: Option<PathBuf>,
    /// QEMU binary.
    pub qemu: PathBuf,
    /// Print COM1 lines and report records while the firmware runs (through `println!`, so the
    /// test harness captures them and shows them for failing tests).
    pub echo: bool,
    /// QOM id of a device to hot-remove with QMP `device_del` once the firmware prints
    /// [`UNPLUG_MARKER`] (its `scenario=hot-unplug`); adds a QMP socket to the boot.
    pub unplug: Option<String>,
    /// The oracle ([`crate::oracle`]): the firmware's function list against QEMU's `query-pci` on the
    /// live VM. On by default; the launcher adds the word `oracle` to the firmware command line and a
    /// QMP socket to the boot.
    pub oracle: bool,
    /// QMP requests (`{"execute": ..., "arguments": ...}`) sent to the live VM just before the oracle's
    /// `query-pci`, while the firmware waits: a test makes QEMU's view differ from what the firmware
    /// enumerated (`device_add` of a function it never saw), so the oracle has a mismatch to catch.
    pub before_oracle: Vec<serde_json::Value>,
    /// How long the firmware's first COM1 line may take, instead of [`handover_deadline`]'s figure for
    /// the boot path and accelerator (`None`: that figure). The tests of the early failure set a few
    /// seconds rather than spend 20 s of a CPU in a SeaBIOS that cannot start the firmware.
    pub handover: Option<Duration>,
}

/// The COM1 text after which the host sends `device_del` for [`RunConfig::unplug`].
pub const UNPLUG_MARKER: &str = "hot-unplug: waiting for device_del";
/// The QMP socket of a boot with [`RunConfig::unplug`] or [`RunConfig::oracle`], in the scratch directory.
pub const QMP_SOCKET: &str = "qmp.sock";

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            machine: Machine::default(),
            accel: Accel::default(),
            boot: BootPath::default(),
            devices: Vec::new(),
            default_devices: true,
            qemu_args: Vec::new(),
            smp: "1".to_string(),
            append: None,
            timeout: DEFAULT_TIMEOUT,
            elf: None,
            qemu: PathBuf::from(DEFAULT_QEMU),
            echo: true,
            unplug: None,
            oracle: true,
            before_oracle: Vec::new(),
            handover: None,
        }
    }
}

impl RunConfig {
    /// The default configuration: q35, TCG, default devices, 120 s timeout, freshly built firmware.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the machine type.
    pub fn machine(mut self, machine: Machine) -> Self {
        self.machine = machine;
        self
    }

    /// Sets how the firmware is started.
    pub fn boot(mut self, boot: BootPath) -> Self {
        self.boot = boot;
        self
    }

    /// Sets the accelerator.
    pub fn accel(mut self, accel: Accel) -> Self {
        self.accel = accel;
        self
    }

    /// Adds a `-device SPEC`.
    pub fn device(mut self, spec: impl Into<String>) -> Self {
        self.devices.push(spec.into());
        self
    }

    /// Turns the default devices (e1000e at 02.0, nvme at 03.0, edu at 04.0) on or off.
    pub fn default_devices(mut self, on: bool) -> Self {
        self.default_devices = on;
        self
    }

    /// Sets the CPU topology (QEMU's `-smp` value: `4`, `6,sockets=2,cores=3`, `2,maxcpus=4`).
    pub fn smp(mut self, topology: impl Into<String>) -> Self {
        self.smp = topology.into();
        self
    }

    /// Adds one verbatim QEMU argument.
    pub fn qemu_arg(mut self, arg: impl Into<String>) -> Self {
        self.qemu_args.push(arg.into());
        self
    }

    /// Hot-removes device `id` (QMP `device_del`) when the firmware asks for it.
    pub fn unplug(mut self, id: impl Into<String>) -> Self {
        self.unplug = Some(id.into());
        self
    }

    /// Sets the firmware command line.
    pub fn append(mut self, text: impl Into<String>) -> Self {
        self.append = Some(text.into());
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the timeout in whole seconds.
    pub fn timeout_secs(self, secs: u64) -> Self {
        self.timeout(Duration::from_secs(secs))
    }

    /// Boots this ELF instead of building the firmware.
    pub fn elf(mut self, path: impl Into<PathBuf>) -> Self {
        self.elf = Some(path.into());
        self
    }

    /// Uses this QEMU binary.
    pub fn qemu(mut self, path: impl Into<PathBuf>) -> Self {
        self.qemu = path.into();
        self
    }

    /// Turns live printing of COM1 and report records on or off.
    pub fn echo(mut self, on: bool) -> Self {
        self.echo = on;
        self
    }

    /// Turns the oracle on (default) or off.
    pub fn oracle(mut self, on: bool) -> Self {
        self.oracle = on;
        self
    }

    /// Sets the hand-over deadline (see [`RunConfig::handover`]).
    pub fn handover(mut self, deadline: Duration) -> Self {
        self.handover = Some(deadline);
        self
    }

    /// Sends this QMP request just before the oracle's `query-pci` (see [`RunConfig::before_oracle`]).
    pub fn before_oracle(mut self, request: serde_json::Value) -> Self {
        self.before_oracle.push(request);
        self
    }

    /// The command line the firmware gets: `--append`, with the word `oracle` in front when the oracle
    /// is on (in front, so a firmware that cuts a long line keeps it).
    pub fn firmware_cmdline(&self) -> String {
        let user = self.append.as_deref().unwrap_or("");
        match (self.oracle, user.trim().is_empty()) {
            (false, _) => user.to_string(),
            (true, true) => crate::oracle::WORD.to_string(),
            (true, false) => format!("{} {user}", crate::oracle::WORD),
        }
    }

    /// The machine QEMU will build ([`MachineType::of`]).
    pub fn machine_type(&self) -> MachineType {
        MachineType::of(self)
    }

    /// Checks what QEMU would otherwise take silently or get wrong, before it is started.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.boot == BootPath::Pvh {
            let line = self.firmware_cmdline();
            if line.len() > PVH_CMDLINE_MAX {
                return Err(ConfigError::AppendTooLong { bytes: line.len(), oracle: self.oracle });
            }
        }
        Ok(())
    }
}

/// The longest `-append` a PVH boot carries whole: QEMU 7.2's PVH option ROM copies the command line
/// into a 4096-byte buffer (`CMDLINE_BUFSIZE`, pc-bios/optionrom/pvh_main.c) and reads as many bytes
/// as fw_cfg's `FW_CFG_CMDLINE_SIZE` says, which hw/i386/x86.c sets to `strlen + 1` with no limit: the
/// terminating NUL counts, so 4095 bytes of text fit, and a longer line overruns the buffer.
pub const PVH_CMDLINE_MAX: usize = 4095;

/// A [`RunConfig`] QEMU cannot run as asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The firmware command line does not fit QEMU's PVH buffer ([`PVH_CMDLINE_MAX`]).
    AppendTooLong {
        /// Its length in bytes, the launcher's `oracle` word included.
        bytes: usize,
        /// Whether the oracle word is part of it.
        oracle: bool,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::AppendTooLong { bytes, oracle } => write!(
                f,
                "the firmware command line is {bytes} bytes{}; QEMU's PVH boot carries at most {PVH_CMDLINE_MAX} \
                 (a {}-byte buffer in its PVH option ROM, the terminating NUL included) and would overrun it",
                if *oracle { " with the launcher's `oracle ` word (--no-oracle leaves it out)" } else { "" },
                PVH_CMDLINE_MAX + 1
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The family of a QEMU machine type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachineFamily {
    /// `q35`, `pc-q35-X.Y`.
    Q35,
    /// `pc`, `pc-i440fx-X.Y`.
    Pc,
    /// `microvm`: one UART (no COM2), PCI only with `pcie=on`.
    Microvm,
    /// Anything else.
    Other,
}

/// The machine type QEMU builds, as it is named, with what follows from the name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineType {
    /// As given (`q35`, `pc-i440fx-3.1`, `microvm`).
    pub name: String,
    /// Its family.
    pub family: MachineFamily,
    /// `X.Y` of a versioned type (`pc-q35-3.1`); `None` for the aliases `q35` and `pc` (the newest).
    pub version: Option<(u32, u32)>,
}

impl MachineType {
    /// From a machine type name.
    pub fn parse(name: &str) -> MachineType {
        let version = |rest: &str| {
            let (major, minor) = rest.split_once('.')?;
            Some((major.parse().ok()?, minor.parse().ok()?))
        };
        let (family, version) = match name {
            "q35" => (MachineFamily::Q35, None),
            "pc" => (MachineFamily::Pc, None),
            "microvm" => (MachineFamily::Microvm, None),
            _ => {
                if let Some(v) = name.strip_prefix("pc-q35-").and_then(version) {
                    (MachineFamily::Q35, Some(v))
                } else if let Some(v) = name.strip_prefix("pc-i440fx-").or_else(|| name.strip_prefix("pc-")).and_then(version) {
                    (MachineFamily::Pc, Some(v))
                } else {
                    (MachineFamily::Other, None)
                }
            }
        };
        MachineType { name: name.to_string(), family, version }
    }

    /// The machine `cfg` makes QEMU build: `--machine`, unless a `-M`/`-machine` among the verbatim QEMU
    /// arguments names another type. QEMU merges every `-machine` option given, so the last `type`
    /// counts: the first comma-separated element without `=` (`-M pc-q35-3.1,acpi=off`), or `type=`.
    pub fn of(cfg: &RunConfig) -> MachineType {
        let mut name = cfg.machine.as_str().to_string();
        let mut args = cfg.qemu_args.iter();
        while let Some(arg) = args.next() {
            let option = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'));
            if !matches!(option, Some("M" | "machine")) {
                continue;
            }
            let Some(value) = args.next() else { break };
            for (i, item) in value.split(',').enumerate() {
                match item.split_once('=') {
                    Some(("type", t)) => name = t.to_string(),
                    None if i == 0 && !item.is_empty() && item != "help" && item != "?" => name = item.to_string(),
                    _ => {}
                }
            }
        }
        MachineType::parse(&name)
    }

    /// Whether QEMU can start a PVH kernel on this machine: `Some(false)` for pc and q35 machine
    /// types 3.1 and older (QEMU enables PVH from the 4.0 types: `pvh_enabled`, hw/i386/pc_piix.c and
    /// pc_q35.c); `None` where it is not known.
    pub fn pvh(&self) -> Option<bool> {
        match (self.family, self.version) {
            (MachineFamily::Q35 | MachineFamily::Pc, Some(v)) => Some(v >= (4, 0)),
            (MachineFamily::Q35 | MachineFamily::Pc | MachineFamily::Microvm, None) => Some(true),
            (MachineFamily::Other, _) | (MachineFamily::Microvm, Some(_)) => None,
        }
    }

    /// Whether the machine has a second UART at 0x2f8 for the defmt log: not on microvm, which
    /// creates one; `None` where it is not known.
    pub fn com2(&self) -> Option<bool> {
        match self.family {
            MachineFamily::Q35 | MachineFamily::Pc => Some(true),
            MachineFamily::Microvm => Some(false),
            MachineFamily::Other => None,
        }
    }
}

impl fmt::Display for MachineType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// How long after QEMU starts the firmware's first COM1 line may take before the run is given up as
/// "the firmware never started" (a machine type that cannot PVH-boot, a boot firmware that stops)
/// instead of waiting for the whole timeout. Measured on this project's CI machine (2 cores shared by
/// several agents, load about 4.7; Debian QEMU 7.2; KVM nested), QEMU spawn to the firmware's banner:
///
/// | boot | TCG | KVM |
/// |---|---|---|
/// | PVH (SeaBIOS, then QEMU's PVH option ROM) | 0.17-0.32 s (q35, pc) | 7.0-10.9 s |
/// | GRUB ISO under SeaBIOS | 1.1-1.9 s | 213 s |
/// | GRUB ISO under OVMF | 4.5-6.1 s (OVMF's own lines from 4.2 s) | OVMF stops with "KVM: emulation failure" |
///
/// The deadlines are about ten times those, at least 20 s. A `-bios` among the QEMU arguments (qboot
/// is faster than SeaBIOS; an unknown one may be slower) gets the OVMF figure; a `-S` (start stopped,
/// e.g. for gdb) gets none. [`RunConfig::handover`], when set, replaces the figure.
pub fn handover_deadline(cfg: &RunConfig) -> Option<Duration> {
    if cfg.qemu_args.iter().any(|a| a == "-S" || a == "--S") {
        return None;
    }
    if let Some(deadline) = cfg.handover {
        return Some(deadline);
    }
    let custom_bios = cfg.qemu_args.iter().any(|a| matches!(a.as_str(), "-bios" | "--bios" | "-pflash" | "--pflash"));
    let boot = if custom_bios && cfg.boot == BootPath::Pvh { BootPath::IsoUefi } else { cfg.boot };
    let secs = match (boot, cfg.accel) {
        (BootPath::Pvh, Accel::Tcg) => 20,
        (BootPath::IsoBios, Accel::Tcg) => 30,
        (BootPath::IsoUefi, Accel::Tcg) => 60,
        (BootPath::Pvh, Accel::Kvm) => 120,
        (BootPath::IsoBios | BootPath::IsoUefi, Accel::Kvm) => 2000,
    };
    Some(Duration::from_secs(secs))
}

/// What a QEMU process is started for.
#[derive(Clone, Copy, Debug)]
pub enum Purpose<'a> {
    /// Boot the firmware ELF: COM1 on stdio, COM2 to a file, exit through isa-debug-exit.
    Boot {
        /// The firmware image (`-kernel`).
        elf: &'a Path,
    },
    /// Build the machine but never run it (`-S`), with QMP on stdio: QEMU's own view of the PCI
    /// devices.
    Inspect,
}

/// A QEMU program and its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuCommand {
    /// The QEMU binary.
    pub program: PathBuf,
    /// Its arguments, in order.
    pub args: Vec<String>,
}

impl QemuCommand {
    /// The whole command line, shell-quoted so it can be pasted into a POSIX shell.
    pub fn shell(&self) -> String {
        // The program is the first word, where `a=b` would be an assignment: always through shlex.
        let program = self.program.to_string_lossy();
        let mut out = if program.contains('=') { shlex::try_quote(&program).map_or_else(|_| shell_quote(&program), |q| q.into_owned()) } else { shell_quote(&program) };
        for arg in &self.args {
            out.push(' ');
            out.push_str(&shell_quote(arg));
        }
        out
    }
}

impl fmt::Display for QemuCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shell())
    }
}

/// Builds the QEMU command line for `cfg` (a pure function: it touches no file).
///
/// `scratch` is the directory holding the NVMe drive image ([`DRIVE_FILE`]) and, for a boot, the COM2
/// capture ([`COM2_FILE`]). The order is: machine and fixed options, the boot specifics (or `-S -qmp
/// stdio`), isa-debug-exit, the default devices, the user's `-device`s, then the verbatim QEMU args.
pub fn build_command(cfg: &RunConfig, purpose: Purpose<'_>, scratch: &Path) -> QemuCommand {
    let mut args: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
    // A verbatim QEMU argument that names the accelerator or the CPUs replaces the launcher's own: QEMU
    // keeps the first accelerator that starts, so the launcher's `-accel` first would silently win.
    let user_names = |opts: &[&str]| cfg.qemu_args.iter().any(|a| opts.contains(&a.trim_start_matches('-')));
    let user_accel = user_names(&["accel", "enable-kvm"])
        || cfg.qemu_args.windows(2).any(|w| matches!(w[0].trim_start_matches('-'), "M" | "machine") && w[1].split(',').any(|i| i.starts_with("accel=")));
    push(&["-M", cfg.machine.as_str()]);
    if !user_accel {
        push(&["-accel", cfg.accel.as_str()]);
    }
    push(&["-m", "256M"]);
    if !user_names(&["smp"]) {
        push(&["-smp", cfg.smp.as_str()]);
    }
    push(&[
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
    ]);
    match purpose {
        Purpose::Boot { elf } => {
            match cfg.boot {
                BootPath::Pvh => {
                    args.push("-kernel".into());
                    args.push(path_arg(elf));
                    let text = cfg.firmware_cmdline();
                    if cfg.append.is_some() || !text.is_empty() {
                        args.push("-append".into());
                        args.push(text);
                    }
                }
                // The command line is in the ISO's grub.cfg. A CD with boot index 0 on whatever IDE or
                // AHCI bus the machine has (q35: the ICH9 AHCI at 00:1f.2; pc: PIIX IDE).
                BootPath::IsoBios | BootPath::IsoUefi => {
                    if cfg.boot == BootPath::IsoUefi {
                        args.push("-bios".into());
                        args.push(crate::image::ovmf().map_or_else(|| crate::image::OVMF_PATHS[0].to_string(), |p| path_arg(&p)));
                    }
                    args.push("-drive".into());
                    args.push(format!(
                        "file={},media=cdrom,if=none,id=cd0,readonly=on",
                        qemu_opt_escape(&path_arg(&scratch.join(ISO_FILE)))
                    ));
                    args.extend(["-device".into(), "ide-cd,drive=cd0,bootindex=0".into()]);
                }
            }
            // COM1 (0x3f8): text and report records. COM2 (0x2f8): defmt frames.
            args.extend(["-serial".into(), "stdio".into()]);
            args.push("-serial".into());
            args.push(format!("file:{}", path_arg(&scratch.join(COM2_FILE))));
            if cfg.unplug.is_some() || cfg.oracle {
                args.push("-qmp".into());
                args.push(format!("unix:{},server=on,wait=off", path_arg(&scratch.join(QMP_SOCKET))));
            }
        }
        Purpose::Inspect => {
            args.extend(["-S".into(), "-qmp".into(), "stdio".into()]);
        }
    }
    args.extend([
        "-device".into(),
        "isa-debug-exit,iobase=0xf4,iosize=0x04".into(),
    ]);
    if cfg.default_devices {
        args.extend(["-device".into(), "e1000e,romfile=,addr=02.0".into()]);
        args.push("-drive".into());
        args.push(format!(
            "file={},if=none,id=nvm0,format=raw",
            qemu_opt_escape(&path_arg(&scratch.join(DRIVE_FILE)))
        ));
        args.extend([
            "-device".into(),
            "nvme,serial=msifw0,drive=nvm0,addr=03.0".into(),
        ]);
        args.extend(["-device".into(), "edu,addr=04.0".into()]);
    }
    for (i, spec) in cfg.devices.iter().enumerate() {
        let (extra, spec) = with_drive(i, spec);
        args.extend(extra);
        args.push("-device".into());
        args.push(spec);
    }
    args.extend(cfg.qemu_args.iter().cloned());
    QemuCommand {
        program: cfg.qemu.clone(),
        args,
    }
}

/// A block device given without `drive=` (`--device virtio-blk-pci`, which QEMU refuses alone) gets a
/// 1 MiB drive that reads as zeroes (QEMU's `null-co` driver: no file to make or remove).
fn with_drive(i: usize, spec: &str) -> (Vec<String>, String) {
    let model = spec.split(',').next().unwrap_or("");
    let block = matches!(model, "virtio-blk-pci" | "virtio-blk-pci-transitional" | "virtio-blk-pci-non-transitional");
    if !block || spec.split(',').any(|o| o.starts_with("drive=")) {
        return (Vec::new(), spec.to_string());
    }
    let id = format!("msifw-blk{i}");
    (
        vec!["-drive".into(), format!("driver=null-co,read-zeroes=on,size=1M,if=none,id={id}")],
        format!("{spec},drive={id}"),
    )
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Escapes a value inside a QEMU `key=value,...` option string: a comma is written twice.
pub fn qemu_opt_escape(value: &str) -> String {
    value.replace(',', ",,")
}

/// Quotes one word for a POSIX shell: unchanged when it only has characters a shell leaves alone
/// (after the first word: `=` there would make it an assignment), otherwise quoted by shlex. A word with a NUL byte, which no shell (and no `exec`) can carry, is shown
/// with the NUL as `\0` inside single quotes.
pub fn shell_quote(word: &str) -> String {
    // Characters no POSIX shell treats specially outside a command's first word; QEMU's `key=value,...`
    // options stay readable. (shlex quotes `=`, `,` and `:` too.)
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./=:,+@%".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        return word.to_string();
    }
    match shlex::try_quote(word) {
        Ok(q) => q.into_owned(),
        Err(_) => format!("'{}'", word.replace('\0', "\\0").replace('\'', "'\\''")),
    }
}

/// A fresh directory under [`std::env::temp_dir`] for one run (`msifw-XXXXXX`, made by `tempfile`),
/// holding the NVMe drive image and the COM2 capture. It is removed (with its contents) when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    dir: tempfile::TempDir,
}

impl ScratchDir {
    /// Creates the directory and the 1 MiB drive image.
    pub fn create() -> io::Result<ScratchDir> {
        let dir = ScratchDir { dir: tempfile::Builder::new().prefix("msifw-").tempdir()? };
        let drive = fs::File::create(dir.drive())?;
        drive.set_len(SCRATCH_DRIVE_SIZE)?;
        Ok(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The NVMe drive image.
    pub fn drive(&self) -> PathBuf {
        self.path().join(DRIVE_FILE)
    }

    /// The COM2 capture.
    pub fn com2(&self) -> PathBuf {
        self.path().join(COM2_FILE)
    }

    /// A shell command that recreates this directory's drive image, so a printed QEMU command can be
    /// run again after the directory is gone.
    pub fn recreate_hint(&self) -> String {
        let dir = shell_quote(&self.path().to_string_lossy());
        let drive = shell_quote(&self.drive().to_string_lossy());
        format!("mkdir -p {dir} && truncate -s {SCRATCH_DRIVE_SIZE} {drive}")
    }
}

/// A running QEMU (or any program started the same way), with stdin, stdout and stderr piped. Dropping
/// it kills the process if it still runs and reaps it, so no VM outlives the run that started it: on
/// an early return, an error while waiting, or a panic.
#[derive(Debug)]
pub struct QemuProcess {
    child: Child,
}

impl QemuProcess {
    /// Starts `cmd`.
    pub fn spawn(cmd: &QemuCommand) -> io::Result<QemuProcess> {
        let child = Command::new(&cmd.program).args(&cmd.args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        Ok(QemuProcess { child })
    }

    /// The process, for its pipes and its status.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills it (if it still runs) and waits for it.
    pub fn kill(&mut self) -> io::Result<std::process::ExitStatus> {
        if self.child.try_wait()?.is_none() {
            // It may end between the two calls; the wait below reaps it either way.
            let _ = self.child.kill();
        }
        self.child.wait()
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(cmd: &QemuCommand) -> Vec<&str> {
        cmd.args.iter().map(String::as_str).collect()
    }

    #[test]
    fn boot_command_default_devices() {
        let cfg = RunConfig::new().oracle(false);
        let cmd = build_command(
            &cfg,
            Purpose::Boot {
                elf: Path::new("/fw/msifw"),
            },
            Path::new("/tmp/s"),
        );
        assert_eq!(cmd.program, PathBuf::from("qemu-system-x86_64"));
        assert_eq!(
            strs(&cmd),
            [
                "-M",
                "q35",
                "-accel",
                "tcg",
                "-m",
                "256M",
                "-smp",
                "1",
                "-nodefaults",
                "-display",
                "none",
                "-no-reboot",
                "-kernel",
                "/fw/msifw",
                "-serial",
                "stdio",
                "-serial",
                "file:/tmp/s/com2.bin",
                "-device",
                "isa-debug-exit,iobase=0xf4,iosize=0x04",
                "-device",
                "e1000e,romfile=,addr=02.0",
                "-drive",
                "file=/tmp/s/nvme0.img,if=none,id=nvm0,format=raw",
                "-device",
                "nvme,serial=msifw0,drive=nvm0,addr=03.0",
                "-device",
                "edu,addr=04.0",
            ]
        );
    }

    #[test]
    fn boot_command_user_options_in_order() {
        let cfg = RunConfig::new()
            .machine(Machine::Pc)
            .accel(Accel::Kvm)
            .default_devices(false)
            .device("pci-testdev")
            .device("edu,addr=05.0")
            .qemu_arg("-d")
            .qemu_arg("int")
            .append("scenario=msi verbose")
            .qemu("/opt/qemu")
            .oracle(false);
        let cmd = build_command(
            &cfg,
            Purpose::Boot {
                elf: Path::new("fw.elf"),
            },
            Path::new("/s"),
        );
        assert_eq!(cmd.program, PathBuf::from("/opt/qemu"));
        let args = strs(&cmd);
        assert_eq!(&args[..4], ["-M", "pc", "-accel", "kvm"]);
        let kernel = args.iter().position(|a| *a == "-kernel").unwrap();
        assert_eq!(
            &args[kernel..kernel + 4],
            ["-kernel", "fw.elf", "-append", "scenario=msi verbose"]
        );
        assert!(!args
            .iter()
            .any(|a| a.contains("e1000e") || a.contains("nvme")));
        assert_eq!(
            &args[args.len() - 6..],
            [
                "-device",
                "pci-testdev",
                "-device",
                "edu,addr=05.0",
                "-d",
                "int"
            ]
        );
    }

    #[test]
    fn a_users_accelerator_or_cpus_replace_the_launchers() {
        let boot = Purpose::Boot { elf: Path::new("fw.elf") };
        let args = |cfg: &RunConfig| strs(&build_command(cfg, boot, Path::new("/s"))).iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let count = |a: &[String], w: &str| a.iter().filter(|x| x.as_str() == w).count();
        let plain = args(&RunConfig::new().smp("4"));
        assert_eq!((count(&plain, "-accel"), count(&plain, "-smp")), (1, 1));
        let a = args(&RunConfig::new().smp("4").qemu_arg("-accel").qemu_arg("tcg,thread=single").qemu_arg("-smp").qemu_arg("2"));
        assert_eq!((count(&a, "-accel"), count(&a, "-smp")), (1, 1), "{a:?}");
        assert!(a.windows(2).any(|w| w[0] == "-accel" && w[1] == "tcg,thread=single") && a.windows(2).any(|w| w[0] == "-smp" && w[1] == "2"), "{a:?}");
        let m = args(&RunConfig::new().qemu_arg("-machine").qemu_arg("q35,accel=kvm"));
        assert_eq!(count(&m, "-accel"), 0, "{m:?}");
        assert_eq!(count(&args(&RunConfig::new().qemu_arg("-enable-kvm")), "-accel"), 0);
    }

    #[test]
    fn the_oracle_adds_its_word_and_a_qmp_socket() {
        let boot = |cfg: &RunConfig| build_command(cfg, Purpose::Boot { elf: Path::new("/fw") }, Path::new("/s")).args;
        let args = boot(&RunConfig::new());
        assert!(args.windows(2).any(|w| w == ["-append", "oracle"]), "{args:?}");
        assert!(args.windows(2).any(|w| w == ["-qmp", "unix:/s/qmp.sock,server=on,wait=off"]), "{args:?}");
        let args = boot(&RunConfig::new().append("nomsi  rounds=3"));
        assert!(args.windows(2).any(|w| w == ["-append", "oracle nomsi  rounds=3"]), "{args:?}");
        let args = boot(&RunConfig::new().oracle(false));
        assert!(!args.iter().any(|a| a == "-append" || a == "-qmp"), "{args:?}");
        assert_eq!(RunConfig::new().append("  ").firmware_cmdline(), "oracle");
        assert_eq!(RunConfig::new().append("x").oracle(false).firmware_cmdline(), "x");
    }

    #[test]
    fn append_longer_than_the_pvh_buffer_is_refused() {
        // 4095 bytes of text and the NUL fill QEMU's 4096-byte PVH buffer; one more byte overruns it.
        let fits = RunConfig::new().oracle(false).append("x".repeat(PVH_CMDLINE_MAX));
        assert_eq!(fits.validate(), Ok(()));
        let long = fits.clone().append("x".repeat(PVH_CMDLINE_MAX + 1));
        assert_eq!(long.validate(), Err(ConfigError::AppendTooLong { bytes: 4096, oracle: false }));
        // The oracle's word counts: 7 bytes ("oracle ") more.
        let with_oracle = fits.clone().oracle(true);
        let err = with_oracle.validate().unwrap_err();
        assert_eq!(err, ConfigError::AppendTooLong { bytes: 4102, oracle: true });
        assert!(err.to_string().contains("--no-oracle"), "{err}");
        assert_eq!(RunConfig::new().append("x".repeat(PVH_CMDLINE_MAX - 7)).validate(), Ok(()));
        // GRUB's command line is not QEMU's PVH buffer.
        assert_eq!(long.boot(BootPath::IsoBios).validate(), Ok(()));
    }

    #[test]
    fn machine_type_from_the_qemu_args() {
        let of = |args: &[&str]| {
            let mut cfg = RunConfig::new();
            cfg.qemu_args = args.iter().map(|a| a.to_string()).collect();
            cfg.machine_type()
        };
        assert_eq!(of(&[]).name, "q35");
        assert_eq!(of(&["-M", "pc-q35-3.1"]).name, "pc-q35-3.1");
        assert_eq!(of(&["-machine", "microvm"]).name, "microvm");
        assert_eq!(of(&["--machine", "pc,acpi=off"]).name, "pc");
        assert_eq!(of(&["-machine", "acpi=off"]).name, "q35", "properties only: the type stays");
        assert_eq!(of(&["-machine", "accel=tcg,type=pc-i440fx-7.2"]).name, "pc-i440fx-7.2");
        assert_eq!(of(&["-M", "pc", "-d", "int", "-M", "microvm,pcie=on"]).name, "microvm", "the last type counts");
        assert_eq!(of(&["-d", "-M"]).name, "q35", "a -M without a value");
        let mut cfg = RunConfig::new().machine(Machine::Pc);
        assert_eq!(cfg.machine_type().name, "pc");
        cfg.qemu_args = vec!["-M".into(), "q35".into()];
        assert_eq!(cfg.machine_type().family, MachineFamily::Q35);

        let t = MachineType::parse("pc-i440fx-3.1");
        assert_eq!((t.family, t.version, t.pvh(), t.com2()), (MachineFamily::Pc, Some((3, 1)), Some(false), Some(true)));
        let t = MachineType::parse("pc-q35-4.0");
        assert_eq!((t.family, t.pvh()), (MachineFamily::Q35, Some(true)));
        assert_eq!(MachineType::parse("pc-q35-2.12").pvh(), Some(false));
        assert_eq!(MachineType::parse("pc-1.3").family, MachineFamily::Pc);
        let t = MachineType::parse("microvm");
        assert_eq!((t.family, t.pvh(), t.com2()), (MachineFamily::Microvm, Some(true), Some(false)));
        let t = MachineType::parse("isapc");
        assert_eq!((t.family, t.pvh(), t.com2()), (MachineFamily::Other, None, None));
    }

    #[test]
    fn handover_deadlines() {
        let d = |cfg: RunConfig| handover_deadline(&cfg).map(|d| d.as_secs());
        assert_eq!(d(RunConfig::new()), Some(20));
        assert_eq!(d(RunConfig::new().boot(BootPath::IsoUefi)), Some(60));
        assert_eq!(d(RunConfig::new().accel(Accel::Kvm)), Some(120));
        assert_eq!(d(RunConfig::new().qemu_arg("-bios").qemu_arg("/usr/share/qemu/qboot.rom")), Some(60));
        assert_eq!(d(RunConfig::new().qemu_arg("-s").qemu_arg("-S")), None, "stopped for a debugger");
        assert_eq!(d(RunConfig::new().accel(Accel::Kvm).handover(Duration::from_secs(3))), Some(3));
        assert_eq!(d(RunConfig::new().handover(Duration::from_secs(3)).qemu_arg("-S")), None);
    }

    #[test]
    fn inspect_command_has_no_kernel_or_serial() {
        let cfg = RunConfig::new().append("ignored");
        let cmd = build_command(&cfg, Purpose::Inspect, Path::new("/s"));
        let args = strs(&cmd);
        assert!(args.windows(3).any(|w| w == ["-S", "-qmp", "stdio"]));
        for absent in ["-kernel", "-serial", "-append"] {
            assert!(!args.contains(&absent), "{absent} in {args:?}");
        }
        assert!(args.contains(&"edu,addr=04.0"));
    }

    #[test]
    fn drive_path_commas_are_escaped() {
        let cmd = build_command(&RunConfig::new(), Purpose::Inspect, Path::new("/tmp/a,b"));
        assert!(cmd
            .args
            .contains(&"file=/tmp/a,,b/nvme0.img,if=none,id=nvm0,format=raw".to_string()));
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(
            shell_quote("plain-word_1.2/x=y:z,w"),
            "plain-word_1.2/x=y:z,w"
        );
        assert_eq!(shell_quote("e1000e,romfile="), "e1000e,romfile=");
        // What a shell reads back is the word.
        for word in ["", "two words", "it's", "$HOME;rm", "a\"b`c`\\", "tab\tnew\nline", "*?[x]~#!", "-append"] {
            let quoted = shell_quote(word);
            assert_eq!(shlex::split(&quoted), Some(vec![word.to_string()]), "{word:?} -> {quoted}");
        }
        assert!(shell_quote("nul\0byte").starts_with('\''));
        let cmd = QemuCommand {
            program: "q".into(),
            args: vec!["-append".into(), "a b".into()],
        };
        assert_eq!(shlex::split(&cmd.shell()), Some(vec!["q".to_string(), "-append".into(), "a b".into()]));
        let cmd = QemuCommand { program: "/opt/a=b/qemu".into(), args: vec!["x=y".into()] };
        assert_eq!(cmd.shell(), "'/opt/a=b/qemu' x=y");
    }

    #[test]
    fn a_block_device_without_a_drive_gets_one_that_reads_zeroes() {
        let (extra, spec) = with_drive(3, "virtio-blk-pci,num-queues=2");
        assert_eq!(extra, ["-drive", "driver=null-co,read-zeroes=on,size=1M,if=none,id=msifw-blk3"]);
        assert_eq!(spec, "virtio-blk-pci,num-queues=2,drive=msifw-blk3");
        let (extra, spec) = with_drive(0, "virtio-blk-pci,drive=d0");
        assert!(extra.is_empty());
        assert_eq!(spec, "virtio-blk-pci,drive=d0");
        assert!(with_drive(0, "virtio-rng-pci").0.is_empty());
    }

    #[test]
    fn scratch_dir_lifecycle() {
        let dir = ScratchDir::create().unwrap();
        let path = dir.path().to_path_buf();
        assert_eq!(fs::metadata(dir.drive()).unwrap().len(), SCRATCH_DRIVE_SIZE);
        let other = ScratchDir::create().unwrap();
        assert_ne!(other.path(), dir.path());
        assert!(dir.recreate_hint().starts_with("mkdir -p "));
        drop(dir);
        assert!(!path.exists());
    }

    /// Whether process `pid` exists (a zombie still does: only a reaped process is gone).
    fn exists(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }

    fn sleeper() -> QemuCommand {
        QemuCommand { program: "sleep".into(), args: vec!["30".into()] }
    }

    #[test]
    fn a_process_is_killed_and_reaped_when_dropped() {
        let p = QemuProcess::spawn(&sleeper()).unwrap();
        let pid = p.id();
        assert!(exists(pid));
        drop(p);
        assert!(!exists(pid), "pid {pid} left behind");
        // Also when a panic unwinds past it.
        let (tx, rx) = std::sync::mpsc::channel();
        let unwound = std::panic::catch_unwind(move || {
            let p = QemuProcess::spawn(&sleeper()).unwrap();
            tx.send(p.id()).unwrap();
            panic!("a failing check while QEMU runs");
        });
        assert!(unwound.is_err());
        let pid = rx.recv().unwrap();
        assert!(!exists(pid), "pid {pid} left behind by a panic");
        // One that ended by itself is reaped too.
        let mut p = QemuProcess::spawn(&QemuCommand { program: "true".into(), args: vec![] }).unwrap();
        let pid = p.id();
        assert!(p.child().wait().unwrap().success());
        drop(p);
        assert!(!exists(pid));
    }

    #[test]
    fn machine_and_accel_names() {
        assert_eq!(Machine::parse("q35"), Some(Machine::Q35));
        assert_eq!(Machine::parse("pc"), Some(Machine::Pc));
        assert_eq!(Machine::parse("Q35"), None);
        assert_eq!(Accel::parse("kvm"), Some(Accel::Kvm));
        assert_eq!(Accel::parse("hvf"), None);
        assert_eq!(Machine::Pc.to_string(), "pc");
    }
}
