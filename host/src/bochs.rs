//! `cargo run -- bochs`: the firmware on the Bochs emulator, a second platform beside QEMU.
//!
//! The GRUB ISO of `image` boots as a CD-ROM under Bochs' own BIOS (`BIOS-bochs-latest`) or SeaBIOS;
//! COM1 and COM2 go to files that `decode` reads. Bochs' devices have no MSI: the e1000 (driven, INTx
//! through the IOAPIC, routed from the BIOS's tables), an NE2000 and an ES1370 sound card (slots 3 and 4,
//! no driver: enumerated, checked for conformance and left quiet) and the PIIX3's IDE, UHCI and ACPI
//! functions are on the PCI bus. Debian's build (Debian packages `bochs`, `bochsbios`, `bochs-term`,
//! `vgabios`, `seabios`) has no `nogui` display (`term` is used, with no terminal), is built with its
//! debugger (the `-rc` file says `c`), ignores SIGTERM, and has no isa-debug-exit: the firmware halts,
//! the launcher waits for the report's `end` record on COM1 and kills Bochs by its PID.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::ValueEnum;

use crate::capture::{decode_capture, DecodeConfig};
use crate::run::RunOutcome;

/// The Bochs binary.
pub const DEFAULT_BOCHS: &str = "bochs";
/// Debian packages a Bochs run needs.
pub const PACKAGES: &[&str] = &["bochs", "bochsbios", "bochs-term", "vgabios", "seabios"];
/// Guest memory in MiB.
pub const MEGS: u32 = 256;
/// The CPU model: 64-bit, xAPIC, an IOAPIC beside it (Bochs 2.7's `bochs --help cpu` lists it).
pub const CPU_MODEL: &str = "corei7_sandy_bridge_2600k";
/// The e1000's MAC address.
pub const MAC: &str = "52:54:00:12:34:56";
/// The NE2000's (PCI, 10ec:8029) MAC address.
pub const NE2K_MAC: &str = "52:54:00:12:34:57";
/// Default limit for one boot (measured: the `end` record about 8-12 s after Bochs starts, most of it
/// the BIOS's IDE probe and GRUB).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The BIOS Bochs runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Bios {
    /// Bochs' own (`/usr/share/bochs/BIOS-bochs-latest`): MP table and ACPI tables.
    Bochs,
    /// SeaBIOS (`/usr/share/seabios/bios.bin`).
    Seabios,
}

impl Bios {
    /// The ROM image.
    pub fn rom(self) -> &'static str {
        match self {
            Bios::Bochs => "/usr/share/bochs/BIOS-bochs-latest",
            Bios::Seabios => "/usr/share/seabios/bios.bin",
        }
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Bios::Bochs => "bochs",
            Bios::Seabios => "seabios",
        }
    }
}

/// One Bochs boot.
#[derive(Clone, Debug, PartialEq)]
pub struct BochsConfig {
    /// The BIOS.
    pub bios: Bios,
    /// The firmware ELF; `None` builds it ([`crate::firmware_elf`]).
    pub elf: Option<PathBuf>,
    /// The firmware command line (in grub.cfg).
    pub append: String,
    /// Kill Bochs after this long without the `end` record.
    pub timeout: Duration,
    /// The Bochs binary.
    pub bochs: PathBuf,
}

impl Default for BochsConfig {
    fn default() -> Self {
        BochsConfig {
            bios: Bios::Bochs,
            elf: None,
            append: String::new(),
            timeout: DEFAULT_TIMEOUT,
            bochs: PathBuf::from(DEFAULT_BOCHS),
        }
    }
}

/// Why a Bochs run could not be made.
#[derive(Debug)]
pub enum BochsError {
    /// Bochs or its BIOS is not installed.
    NotInstalled(String),
    /// The firmware did not build.
    Firmware(crate::FirmwareError),
    /// The ISO could not be made.
    Image(crate::image::ImageError),
    /// A scratch file could not be written, or Bochs not started.
    Io(String, std::io::Error),
    /// No `end` record within the timeout (Bochs killed).
    Timeout(Duration, String),
    /// Bochs exited before the report ended.
    Exited(String),
    /// The captures could not be decoded.
    Decode(String),
}

impl fmt::Display for BochsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BochsError::NotInstalled(what) => write!(
                f,
                "{what}: install Bochs with `apt-get install {}`",
                PACKAGES.join(" ")
            ),
            BochsError::Firmware(e) => write!(f, "{e}"),
            BochsError::Image(e) => write!(f, "{e}"),
            BochsError::Io(what, e) => write!(f, "{what}: {e}"),
            BochsError::Timeout(t, log) => write!(
                f,
                "no `end` record on COM1 within {:.0} s; Bochs killed. Its log ends:\n{log}",
                t.as_secs_f64()
            ),
            BochsError::Exited(log) => write!(
                f,
                "Bochs exited before the report's `end` record. Its log ends:\n{log}"
            ),
            BochsError::Decode(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BochsError {}

/// Where the run's files are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BochsFiles {
    /// The ISO (CD-ROM).
    pub iso: PathBuf,
    /// COM1 output.
    pub com1: PathBuf,
    /// COM2 output.
    pub com2: PathBuf,
    /// Bochs' log.
    pub log: PathBuf,
}

impl BochsFiles {
    /// The files in `dir`.
    pub fn in_dir(dir: &Path) -> BochsFiles {
        BochsFiles {
            iso: dir.join("msifw.iso"),
            com1: dir.join("com1.bin"),
            com2: dir.join("com2.bin"),
            log: dir.join("bochs.log"),
        }
    }
}

/// The bochsrc of a run: one CPU of [`CPU_MODEL`], [`MEGS`] MiB, the i440FX, the ISO as CD-ROM on the
/// first IDE channel, COM1 and COM2 to files, an e1000 and an NE2000 with no network behind them and an
/// ES1370 with no sound output, in PCI slots 2-4, the terminal display (Debian's build has no `nogui`).
pub fn bochsrc(bios: Bios, files: &BochsFiles) -> String {
    let q = |p: &Path| p.display().to_string();
    format!(
        "# msifw on Bochs: written for one run by the launcher (host/src/bochs.rs)\n\
         megs: {MEGS}\n\
         cpu: count=1, ips=100000000, model={CPU_MODEL}, reset_on_triple_fault=0\n\
         romimage: file={rom}\n\
         vgaromimage: file=/usr/share/vgabios/vgabios.bin\n\
         display_library: term\n\
         pci: enabled=1, chipset=i440fx, slot1=e1000, slot2=ne2k, slot3=es1370\n\
         ata0-master: type=cdrom, path={iso}, status=inserted\n\
         boot: cdrom\n\
         com1: enabled=1, mode=file, dev={com1}\n\
         com2: enabled=1, mode=file, dev={com2}\n\
         e1000: enabled=1, mac={MAC}, ethmod=null\n\
         ne2k: enabled=1, mac={NE2K_MAC}, ethmod=null\n\
         sound: waveoutdrv=dummy, waveindrv=dummy, midioutdrv=dummy\n\
         es1370: enabled=1, wavemode=0\n\
         mouse: enabled=0\n\
         log: {log}\n\
         panic: action=fatal\n\
         error: action=report\n\
         info: action=report\n\
         debug: action=ignore\n",
        rom = bios.rom(),
        iso = q(&files.iso),
        com1 = q(&files.com1),
        com2 = q(&files.com2),
        log = q(&files.log),
    )
}

/// Whether the COM1 capture at `com1` holds the report's `end` record so far, or the firmware's fatal
/// line (a panic or an exception: the firmware halts then too). Decoded as `decode` does, without COM2.
pub fn report_finished(com1: &Path) -> bool {
    decode_capture(&DecodeConfig::new(com1))
        .is_ok_and(|o| o.report.end.is_some() || o.exit == crate::Exit::Panic)
}

/// A running Bochs, killed by its PID (SIGKILL: it ignores SIGTERM) when dropped.
#[derive(Debug)]
struct BochsProcess(Child);

impl Drop for BochsProcess {
    fn drop(&mut self) {
        // std's kill sends SIGKILL to this child's PID only.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Checks that Bochs and the BIOS images are there.
pub fn check_installed(cfg: &BochsConfig) -> Result<(), BochsError> {
    let found = Command::new(&cfg.bochs)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        return Err(BochsError::NotInstalled(format!(
            "{} not found",
            cfg.bochs.display()
        )));
    }
    for rom in [cfg.bios.rom(), "/usr/share/vgabios/vgabios.bin"] {
        if !Path::new(rom).is_file() {
            return Err(BochsError::NotInstalled(format!("{rom} missing")));
        }
    }
    Ok(())
}

/// Boots the firmware in Bochs once and decodes COM1 and COM2 into the outcome `decode` gives. Prints
/// progress on stderr.
pub fn run_bochs(cfg: &BochsConfig) -> Result<RunOutcome, BochsError> {
    check_installed(cfg)?;
    let elf = match &cfg.elf {
        Some(elf) => elf.clone(),
        None => crate::firmware_elf().map_err(BochsError::Firmware)?,
    };
    let dir = tempfile::tempdir().map_err(|e| BochsError::Io("scratch directory".into(), e))?;
    let files = BochsFiles::in_dir(dir.path());
    crate::image::build_iso(&elf, &cfg.append, &files.iso, dir.path())
        .map_err(BochsError::Image)?;
    let rc = dir.path().join("bochsrc");
    fs::write(&rc, bochsrc(cfg.bios, &files))
        .map_err(|e| BochsError::Io(rc.display().to_string(), e))?;
    // The debugger's command file: continue at once.
    let debugger = dir.path().join("debugger.rc");
    fs::write(&debugger, "c\n").map_err(|e| BochsError::Io(debugger.display().to_string(), e))?;
    eprintln!(
        "bochs: {} -q -f {} -rc {} (BIOS {})",
        cfg.bochs.display(),
        rc.display(),
        debugger.display(),
        cfg.bios.rom()
    );
    let started = Instant::now();
    let child = Command::new(&cfg.bochs)
        .arg("-q")
        .arg("-f")
        .arg(&rc)
        .arg("-rc")
        .arg(&debugger)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| BochsError::Io(format!("starting {}", cfg.bochs.display()), e))?;
    let mut bochs = BochsProcess(child);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if report_finished(&files.com1) {
            break;
        }
        if let Ok(Some(_)) = bochs.0.try_wait() {
            // One last look: the record may have landed as it exited.
            if report_finished(&files.com1) {
                break;
            }
            return Err(BochsError::Exited(log_tail(&files.log)));
        }
        if started.elapsed() > cfg.timeout {
            drop(bochs);
            return Err(BochsError::Timeout(cfg.timeout, log_tail(&files.log)));
        }
    }
    let elapsed = started.elapsed();
    drop(bochs);
    eprintln!(
        "bochs: the report ended {:.1} s after Bochs started; Bochs killed",
        elapsed.as_secs_f64()
    );
    let decode = DecodeConfig {
        com1: files.com1.clone(),
        com2: Some(files.com2.clone()),
        elf: Some(elf),
        echo: true,
    };
    decode_capture(&decode).map_err(|e| BochsError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bochsrc_has_the_files_the_bios_and_the_devices() {
        let files = BochsFiles::in_dir(Path::new("/s"));
        let rc = bochsrc(Bios::Seabios, &files);
        for line in [
            "romimage: file=/usr/share/seabios/bios.bin\n",
            "display_library: term\n",
            "ata0-master: type=cdrom, path=/s/msifw.iso, status=inserted\n",
            "boot: cdrom\n",
            "com1: enabled=1, mode=file, dev=/s/com1.bin\n",
            "com2: enabled=1, mode=file, dev=/s/com2.bin\n",
            "e1000: enabled=1, mac=52:54:00:12:34:56, ethmod=null\n",
            "pci: enabled=1, chipset=i440fx, slot1=e1000, slot2=ne2k, slot3=es1370\n",
            "es1370: enabled=1, wavemode=0\n",
        ] {
            assert!(rc.contains(line), "{line:?} missing in\n{rc}");
        }
        assert!(bochsrc(Bios::Bochs, &files)
            .contains("romimage: file=/usr/share/bochs/BIOS-bochs-latest\n"));
    }
}
