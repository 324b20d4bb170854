//! `cargo run -- tables DIR [--json FILE]`: what msifw would make of a machine's ACPI tables, before
//! flashing it. This file reads the directory `acpixtract -a` writes ([`read_dir`]) and prints and
//! writes the result ([`Preflight::render`], [`Preflight`] as JSON). The result itself comes from the
//! firmware's own table parsers and AML evaluator compiled for the host (`msifw::platform::preflight`),
//! handed in through [`crate::Catalogue::preflight`]: this crate cannot see the firmware crate.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The `--json` document's `schema_version`.
pub const SCHEMA_VERSION: u32 = 1;

/// Length of the common table header (ACPI 6.5 §5.2.6).
const SDT_HEADER_LEN: usize = 36;

/// One table file as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableFile {
    /// Its file name (`ssdt3.dat`).
    pub name: String,
    /// Its bytes, exactly the table's `Length` (a longer file is cut there, and the cut is noted).
    pub bytes: Vec<u8>,
}

impl TableFile {
    /// The table's signature as text (`SSDT`), non-ASCII bytes as `?`.
    pub fn signature(&self) -> String {
        self.bytes
            .iter()
            .take(4)
            .map(|&b| {
                if b.is_ascii_graphic() {
                    char::from(b)
                } else {
                    '?'
                }
            })
            .collect()
    }
}

/// The tables of a directory, as the firmware would find them through the RSDP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableDir {
    /// The directory.
    pub dir: PathBuf,
    /// `dsdt.dat` (the FADT points to it; no XSDT lists it).
    pub dsdt: TableFile,
    /// Every other table with a checksummed header, in the order the XSDT lists them: `xsdt-order.txt`'s
    /// order when the directory has one, else FACP first, then the rest by name, `ssdtN` by number.
    pub tables: Vec<TableFile>,
    /// What the reading left out or changed, one line each, for the problems list.
    pub notes: Vec<String>,
}

/// Why a directory cannot be read as a machine's tables.
#[derive(Debug, PartialEq, Eq)]
pub enum TablesError {
    /// DIR does not exist or is not a directory (a bad argument: exit status 64).
    NotADirectory {
        /// The path given.
        dir: PathBuf,
        /// What the system said.
        reason: String,
    },
    /// A file could not be read.
    Unreadable {
        /// The file.
        file: PathBuf,
        /// What the system said.
        reason: String,
    },
    /// A `.dat` file shorter than a table header, or shorter than its header's `Length`.
    Truncated {
        /// The file.
        file: PathBuf,
        /// Its size.
        size: usize,
        /// The bytes it should have (36 for a header, else the header's `Length`).
        needs: usize,
    },
    /// No `dsdt.dat`.
    NoDsdt {
        /// The directory.
        dir: PathBuf,
    },
    /// `xsdt-order.txt` names a file the directory does not have.
    OrderNamesMissingFile {
        /// The file named.
        name: String,
    },
}

impl TablesError {
    /// The exit status: 64 for a DIR that is not a directory (a bad argument), 5 for tables that
    /// cannot be read (as `decode` does for a capture).
    pub fn exit_code(&self) -> u8 {
        match self {
            TablesError::NotADirectory { .. } => crate::cli::EXIT_USAGE,
            _ => crate::cli::EXIT_ERROR,
        }
    }
}

impl fmt::Display for TablesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TablesError::NotADirectory { dir, reason } => {
                write!(
                    f,
                    "{}: not a directory of table files ({reason})",
                    dir.display()
                )
            }
            TablesError::Unreadable { file, reason } => {
                write!(f, "{}: unreadable: {reason}", file.display())
            }
            TablesError::Truncated { file, size, needs } if *needs == SDT_HEADER_LEN => write!(
                f,
                "{}: truncated: {size} bytes, shorter than a table header ({SDT_HEADER_LEN} bytes)",
                file.display()
            ),
            TablesError::Truncated { file, size, needs } => write!(
                f,
                "{}: truncated: the table's header says {needs} bytes, the file has {size}",
                file.display()
            ),
            TablesError::NoDsdt { dir } => write!(
                f,
                "{}: no dsdt.dat (write the tables with `acpidump > t.txt && acpixtract -a t.txt`)",
                dir.display()
            ),
            TablesError::OrderNamesMissingFile { name } => {
                write!(
                    f,
                    "xsdt-order.txt names {name}, which is not in the directory"
                )
            }
        }
    }
}

impl std::error::Error for TablesError {}

/// Sort key of a file name: its letters, then its number (`ssdt2` before `ssdt10`), then the name.
fn name_key(name: &str) -> (String, u64, String) {
    let stem = name.strip_suffix(".dat").unwrap_or(name);
    let digits = stem.len() - stem.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (letters, number) = stem.split_at(stem.len() - digits);
    (
        letters.to_string(),
        number.parse().unwrap_or(0),
        name.to_string(),
    )
}

/// Reads DIR: every `*.dat` file that holds a table. `dsdt.dat` is required. `facs.dat` (no checksummed
/// header) and the RSDP, RSDT and XSDT (the firmware's list is rebuilt from the files, since
/// `acpixtract` keeps no table addresses) are left out and noted.
pub fn read_dir(dir: &Path) -> Result<TableDir, TablesError> {
    let entries = std::fs::read_dir(dir).map_err(|e| TablesError::NotADirectory {
        dir: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut names = Vec::new();
    for e in entries {
        let e = e.map_err(|e| TablesError::Unreadable {
            file: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.to_ascii_lowercase().ends_with(".dat") {
            names.push(name);
        }
    }
    names.sort_by_key(|n| name_key(n));
    let mut notes = Vec::new();
    let mut dsdt = None;
    let mut tables = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let mut bytes = std::fs::read(&path).map_err(|e| TablesError::Unreadable {
            file: path.clone(),
            reason: e.to_string(),
        })?;
        if bytes.starts_with(b"RSD PTR ") {
            notes.push(format!(
                "{name}: the RSDP is not used (rebuilt to list the files)"
            ));
            continue;
        }
        if bytes.len() < SDT_HEADER_LEN {
            return Err(TablesError::Truncated {
                file: path,
                size: bytes.len(),
                needs: SDT_HEADER_LEN,
            });
        }
        let length = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
        if length > bytes.len() {
            return Err(TablesError::Truncated {
                file: path,
                size: bytes.len(),
                needs: length,
            });
        }
        if length < bytes.len() {
            notes.push(format!(
                "{name}: {} bytes after the table's length ({length}) left out",
                bytes.len() - length
            ));
            bytes.truncate(length);
        }
        let file = TableFile { name, bytes };
        match file.signature().as_str() {
            "FACS" => notes.push(format!("{}: the FACS is not used", file.name)),
            "RSDT" | "XSDT" => notes.push(format!(
                "{}: the {} is not used (rebuilt to list the files)",
                file.name,
                file.signature()
            )),
            _ if file.name.eq_ignore_ascii_case("dsdt.dat") => dsdt = Some(file),
            _ => tables.push(file),
        }
    }
    let dsdt = dsdt.ok_or_else(|| TablesError::NoDsdt {
        dir: dir.to_path_buf(),
    })?;
    let order = dir.join("xsdt-order.txt");
    if order.exists() {
        let text = std::fs::read_to_string(&order).map_err(|e| TablesError::Unreadable {
            file: order.clone(),
            reason: e.to_string(),
        })?;
        let mut ordered = Vec::new();
        for name in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if name.eq_ignore_ascii_case("dsdt.dat") {
                continue;
            }
            if let Some(at) = tables.iter().position(|t| t.name == name) {
                ordered.push(tables.remove(at));
            } else if !notes.iter().any(|n| n.starts_with(&format!("{name}:"))) {
                return Err(TablesError::OrderNamesMissingFile {
                    name: name.to_string(),
                });
            }
        }
        for t in &tables {
            notes.push(format!(
                "{}: not in xsdt-order.txt, listed after the tables it names",
                t.name
            ));
        }
        ordered.append(&mut tables);
        tables = ordered;
    } else if let Some(at) = tables.iter().position(|t| t.signature() == "FACP") {
        let facp = tables.remove(at);
        tables.insert(0, facp);
    }
    Ok(TableDir {
        dir: dir.to_path_buf(),
        dsdt,
        tables,
        notes,
    })
}

// ---- The result -------------------------------------------------------------------------------------

/// What msifw would do on the machine whose tables these are (the `--json` document).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Preflight {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The directory read.
    pub dir: String,
    /// The tables handed to the firmware's parser: the DSDT, then the XSDT's list.
    pub tables: Vec<TableSeen>,
    /// Every PCI root bridge (`_HID`/`_CID` PNP0A03 or PNP0A08) in namespace order.
    pub root_bridges: Vec<RootBridge>,
    /// The root buses msifw enumerates (present host bridges of segment 0, lowest first), each from
    /// its first bus along bridges.
    pub root_buses: Vec<RootBus>,
    /// Whether msifw would also probe the bus numbers no root bus reaches (a host bridge's bus range
    /// unknown), as Linux's `pci=lastbus=255` does.
    pub peer_probe: bool,
    /// The MADT as the firmware parsed it; `None` when it has none it can use.
    pub madt: Option<Madt>,
    /// The MCFG's ECAM windows the firmware keeps.
    pub mcfg: Vec<Mcfg>,
    /// The HPET's event timer block; `None` without an HPET table.
    pub hpet: Option<Hpet>,
    /// The PNP0C0F interrupt link devices.
    pub links: Vec<Link>,
    /// Operation-region reads the firmware makes on the machine (PCI_Config, SystemMemory where the
    /// memory map says RAM, ACPI or NVS), answered with zero here as ACPICA's `acpiexec` does: what
    /// depends on them may differ there.
    pub simulated_reads: Vec<RegionRead>,
    /// Operation-region reads the firmware never makes (SystemIO and other spaces): the evaluation that
    /// needed one fails on the machine as it does here.
    pub refused_reads: Vec<RegionRead>,
    /// Everything msifw would report or could not evaluate, one line each.
    pub problems: Vec<String>,
    /// What reading the directory left out or changed (the FACS, bytes past a table's length, ...).
    pub notes: Vec<String>,
}

/// A table handed to the parser.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableSeen {
    /// The file.
    pub file: String,
    /// Its signature.
    pub signature: String,
    /// Its length in bytes.
    pub length: usize,
}

/// A root bridge.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RootBridge {
    /// Namespace path (`\_SB.PCI0`).
    pub path: String,
    /// Present by `_STA` (bit 0; no `_STA` is present). msifw enumerates only present ones.
    pub present: bool,
    /// `_STA` as evaluated (`None`: no `_STA`).
    pub sta: Option<u64>,
    /// The bus number the bridge starts at, as msifw takes it: the `_CRS` bus range's first, else
    /// `_BBN`, else 0 (`null` when neither can be evaluated).
    pub bbn: Option<u64>,
    /// `_SEG` (0 when absent; `null` when it cannot be evaluated).
    pub seg: Option<u64>,
    /// `_UID`, as text.
    pub uid: Option<String>,
    /// The bus range msifw enumerates: [first, last].
    pub buses: Option<[u64; 2]>,
    /// Where `buses` came from: `_CRS`, `_BBN` (to 0xFF), `default` (0 to 0xFF) or `unknown`.
    pub buses_from: String,
    /// Every `_PRT` entry, resolved.
    pub prt: Vec<Route>,
    /// Why the `_PRT` could not be evaluated (`prt` is then empty); `None` when evaluated or absent.
    pub prt_error: Option<String>,
    /// Whether the bridge has a `_PRT` at all.
    pub has_prt: bool,
    /// Every device below it with a `_PRT`.
    pub bridges: Vec<Bridge>,
}

/// A root bus msifw enumerates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RootBus {
    /// The host bridge's last name segment (`PCI0`).
    pub bridge: String,
    /// Its root bus number.
    pub first: u8,
    /// The last bus number it decodes.
    pub last: u8,
    /// Its `_CBA` (ECAM base), if it has one.
    pub cba: Option<u64>,
}

/// A device below a root bridge with its own `_PRT`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bridge {
    /// Namespace path.
    pub path: String,
    /// `_ADR` of each device from below the root bridge down to this one (`null` where one cannot be
    /// evaluated).
    pub adr_chain: Vec<Option<u64>>,
    /// Every `_PRT` entry, resolved.
    pub prt: Vec<Route>,
    /// Why the `_PRT` could not be evaluated (`prt` is then empty).
    pub prt_error: Option<String>,
}

/// One `_PRT` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Route {
    /// Device number.
    pub slot: u64,
    /// 0-3 for INTA-INTD.
    pub pin: u64,
    /// The link device, when the entry names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The link's resource index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_index: Option<u64>,
    /// The GSI: the entry's own, or the link's static one; `null` when the link's is not static.
    pub gsi: Option<u64>,
    /// Why the link's GSI is not known statically.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link_error: Option<String>,
}

/// A PNP0C0F link device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Link {
    /// Namespace path.
    pub path: String,
    /// `_STA` as evaluated.
    pub sta: Option<u64>,
    /// Its current interrupt (`_CRS`), a GSI in APIC mode.
    pub gsi: Option<u64>,
    /// Level-triggered (else edge).
    pub level: Option<bool>,
    /// Active low (else high).
    pub active_low: Option<bool>,
    /// Why there is no current interrupt.
    pub error: Option<String>,
}

/// The MADT summary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Madt {
    /// Processors enabled.
    pub cpus_enabled: usize,
    /// Processor entries (local APIC and x2APIC).
    pub cpus_total: usize,
    /// Local APIC (type 0) entries.
    pub xapic_entries: usize,
    /// Local x2APIC (type 9) entries.
    pub x2apic_entries: usize,
    /// Local APIC address (after an override entry).
    pub local_apic_address: u64,
    /// PCAT_COMPAT: dual 8259s present.
    pub pcat_compat: bool,
    /// The I/O APICs.
    pub io_apics: Vec<IoApic>,
    /// Interrupt source overrides.
    pub overrides: Vec<Override>,
    /// GSIs wired to NMI.
    pub nmi_sources: Vec<u64>,
}

/// An I/O APIC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IoApic {
    /// Its id.
    pub id: u8,
    /// Its register window.
    pub address: u64,
    /// The GSI of its first input.
    pub gsi_base: u64,
}

/// An interrupt source override.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Override {
    /// Bus (0: ISA).
    pub bus: u8,
    /// ISA IRQ.
    pub irq: u8,
    /// Its GSI.
    pub gsi: u64,
    /// `conforming`, `high` or `low`.
    pub polarity: String,
    /// `conforming`, `edge` or `level`.
    pub trigger: String,
}

/// An MCFG window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mcfg {
    /// ECAM base (the address bus 0 would have).
    pub base: u64,
    /// PCI segment.
    pub segment: u16,
    /// First bus.
    pub bus_start: u8,
    /// Last bus.
    pub bus_end: u8,
}

/// The HPET table's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hpet {
    /// Its event timer block.
    pub base: Option<u64>,
    /// Why it cannot be used.
    pub error: Option<String>,
}

/// An operation-region read of bytes no evaluation wrote, answered with zero.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegionRead {
    /// The region's address space (`SystemMemory`, `SystemIO`, `PCI_Config`, ...).
    pub space: String,
    /// The address (PCI_Config: segment in bits 47:32, bus 27:20, device 19:15, function 14:12,
    /// register 11:0).
    pub address: u64,
    /// Bytes read.
    pub width: u8,
    /// The address as text (`0xfed1f410`, PCI_Config `0000:00:1f.0 0x60`).
    pub at: String,
}

/// ACPI 6.5 Table 5.28's address space names.
pub fn space_name(space: u8) -> String {
    match space {
        0 => "SystemMemory".into(),
        1 => "SystemIO".into(),
        2 => "PCI_Config".into(),
        3 => "EmbeddedControl".into(),
        4 => "SMBus".into(),
        5 => "SystemCMOS".into(),
        6 => "PciBarTarget".into(),
        7 => "IPMI".into(),
        8 => "GeneralPurposeIO".into(),
        9 => "GenericSerialBus".into(),
        10 => "PCC".into(),
        s => format!("space {s:#x}"),
    }
}

fn pin_name(pin: u64) -> String {
    match pin {
        0..=3 => format!("INT{}", char::from(b'A' + pin as u8)),
        p => format!("pin {p}"),
    }
}

fn route_text(r: &Route) -> String {
    let mut s = format!("slot {:>2} {:<5} -> ", r.slot, pin_name(r.pin));
    match (&r.link, r.gsi) {
        (None, Some(g)) => {
            let _ = write!(s, "GSI {g}");
        }
        (Some(l), Some(g)) => {
            let _ = write!(s, "GSI {g} (link {l})");
        }
        (Some(l), None) => {
            let _ = write!(
                s,
                "link {l}: {}",
                r.link_error.as_deref().unwrap_or("GSI not static")
            );
        }
        (None, None) => s.push_str("no GSI"),
    }
    s
}

fn count_unresolved(prt: &[Route]) -> usize {
    prt.iter().filter(|r| r.gsi.is_none()).count()
}

impl Preflight {
    /// `_PRT` entries in all, and those without a GSI, over every root bridge and bridge.
    pub fn entry_counts(&self) -> (usize, usize) {
        let mut total = 0;
        let mut unresolved = 0;
        for r in &self.root_bridges {
            total += r.prt.len();
            unresolved += count_unresolved(&r.prt);
            for b in &r.bridges {
                total += b.prt.len();
                unresolved += count_unresolved(&b.prt);
            }
        }
        (total, unresolved)
    }

    /// The text `cargo run -- tables DIR` prints.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let ssdts = self.tables.iter().filter(|t| t.signature == "SSDT").count();
        let _ = writeln!(
            o,
            "msifw tables: {} ({} tables, {ssdts} SSDTs)",
            self.dir,
            self.tables.len()
        );
        let present = self.root_bridges.iter().filter(|r| r.present).count();
        let _ = writeln!(
            o,
            "root bridges: {} ({present} present)",
            self.root_bridges.len()
        );
        for r in &self.root_bridges {
            let buses = r.buses.map_or("buses unknown".to_string(), |[a, b]| {
                format!("buses {a:02x}-{b:02x}")
            });
            let seg = r.seg.map_or("unknown".to_string(), |s| s.to_string());
            let prt = match (&r.prt_error, r.has_prt) {
                (Some(e), _) => format!("_PRT not evaluated: {e}"),
                (None, false) => "no _PRT".to_string(),
                (None, true) => {
                    format!(
                        "_PRT {} entries ({} without a GSI)",
                        r.prt.len(),
                        count_unresolved(&r.prt)
                    )
                }
            };
            let bridge_entries: usize = r.bridges.iter().map(|b| b.prt.len()).sum();
            let bridge_failed = r.bridges.iter().filter(|b| b.prt_error.is_some()).count();
            let _ = writeln!(
                o,
                "  {}  {}  segment {seg}  {buses}  _UID {}  {prt}; {} bridges with a _PRT, {bridge_entries} entries{}",
                r.path,
                if r.present { "present" } else { "absent (_STA)" },
                r.uid.as_deref().unwrap_or("-"),
                r.bridges.len(),
                if bridge_failed > 0 { format!(", {bridge_failed} not evaluated") } else { String::new() }
            );
        }
        let buses: Vec<String> = self
            .root_buses
            .iter()
            .map(|b| format!("{:02x}-{:02x} {}", b.first, b.last, b.bridge))
            .collect();
        let _ = writeln!(
            o,
            "root buses enumerated: {}{}",
            if buses.is_empty() {
                "none from the tables".to_string()
            } else {
                buses.join(", ")
            },
            if self.peer_probe {
                "; and a probe of every bus number not reached"
            } else {
                ""
            }
        );
        match &self.madt {
            Some(m) => {
                let mode = match (m.xapic_entries, m.x2apic_entries) {
                    (_, 0) => "xAPIC".to_string(),
                    (0, _) => "x2APIC".to_string(),
                    (a, b) => format!("{a} xAPIC and {b} x2APIC entries"),
                };
                let _ = writeln!(
                    o,
                    "MADT: {} of {} CPUs enabled ({mode}), local APIC at {:#x}{}",
                    m.cpus_enabled,
                    m.cpus_total,
                    m.local_apic_address,
                    if m.pcat_compat {
                        ", 8259s present (PCAT_COMPAT)"
                    } else {
                        ""
                    }
                );
                for a in &m.io_apics {
                    let _ = writeln!(
                        o,
                        "  IOAPIC {} at {:#x}, GSI base {}",
                        a.id, a.address, a.gsi_base
                    );
                }
                for v in &m.overrides {
                    let _ = writeln!(
                        o,
                        "  override: bus {} IRQ {} -> GSI {} ({}, {})",
                        v.bus, v.irq, v.gsi, v.polarity, v.trigger
                    );
                }
                for g in &m.nmi_sources {
                    let _ = writeln!(o, "  NMI source: GSI {g}");
                }
            }
            None => o.push_str("MADT: none usable\n"),
        }
        if self.mcfg.is_empty() {
            o.push_str("MCFG: no ECAM window (configuration access through ports 0xCF8/0xCFC)\n");
        }
        for m in &self.mcfg {
            let _ = writeln!(
                o,
                "MCFG: segment {} buses {:02x}-{:02x} at {:#x}",
                m.segment, m.bus_start, m.bus_end, m.base
            );
        }
        match &self.hpet {
            Some(Hpet { base: Some(b), .. }) => {
                let _ = writeln!(o, "HPET: at {b:#x}");
            }
            Some(Hpet { error: Some(e), .. }) => {
                let _ = writeln!(o, "HPET: not usable: {e}");
            }
            _ => o.push_str("HPET: none (the PIT times the checks)\n"),
        }
        for r in &self.root_bridges {
            if r.has_prt && r.prt_error.is_none() {
                let _ = writeln!(
                    o,
                    "_PRT {}{}:",
                    r.path,
                    if r.present { "" } else { " (absent, not used)" }
                );
                for e in &r.prt {
                    let _ = writeln!(o, "  {}", route_text(e));
                }
            }
            for b in &r.bridges {
                let chain: Vec<String> = b
                    .adr_chain
                    .iter()
                    .map(|a| a.map_or("?".to_string(), |a| format!("{a:#x}")))
                    .collect();
                match &b.prt_error {
                    Some(e) => {
                        let _ = writeln!(
                            o,
                            "_PRT {} (_ADR {}): not evaluated: {e}",
                            b.path,
                            chain.join("/")
                        );
                    }
                    None => {
                        let _ = writeln!(o, "_PRT {} (_ADR {}):", b.path, chain.join("/"));
                        for e in &b.prt {
                            let _ = writeln!(o, "  {}", route_text(e));
                        }
                    }
                }
            }
        }
        if !self.links.is_empty() {
            let _ = writeln!(o, "link devices: {}", self.links.len());
        }
        for l in &self.links {
            let sta = l.sta.map_or("-".to_string(), |s| format!("{s:#x}"));
            let what = match (&l.error, l.gsi) {
                (Some(e), _) => format!("no current interrupt: {e}"),
                (None, Some(g)) => format!(
                    "GSI {g}, {}, active {}",
                    if l.level == Some(true) {
                        "level"
                    } else {
                        "edge"
                    },
                    if l.active_low == Some(true) {
                        "low"
                    } else {
                        "high"
                    }
                ),
                (None, None) => "no current interrupt".to_string(),
            };
            let _ = writeln!(o, "  {}  _STA {sta}  {what}", l.path);
        }
        if !self.simulated_reads.is_empty() {
            let _ = writeln!(
                o,
                "region reads msifw makes on the machine, answered with 0 here: {}",
                self.simulated_reads.len()
            );
            for r in &self.simulated_reads {
                let _ = writeln!(o, "  {} {} ({} bytes)", r.space, r.at, r.width);
            }
        }
        for n in &self.notes {
            let _ = writeln!(o, "note: {n}");
        }
        if !self.refused_reads.is_empty() {
            let _ = writeln!(
                o,
                "region reads msifw never makes (the evaluation needing one fails): {}",
                self.refused_reads.len()
            );
            for r in &self.refused_reads {
                let _ = writeln!(o, "  {} {} ({} bytes)", r.space, r.at, r.width);
            }
        }
        let _ = writeln!(o, "problems: {}", self.problems.len());
        for p in &self.problems {
            let _ = writeln!(o, "  {p}");
        }
        let (entries, unresolved) = self.entry_counts();
        let _ = writeln!(
            o,
            "msifw tables: {present} present root bridges, {entries} _PRT entries ({unresolved} without a GSI), {} problems",
            self.problems.len()
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(sig: &[u8; 4], len: usize) -> Vec<u8> {
        let mut t = vec![0u8; len];
        t[..4].copy_from_slice(sig);
        t[4..8].copy_from_slice(&(len as u32).to_le_bytes());
        t
    }

    fn dir_with(files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            std::fs::write(d.path().join(name), bytes).unwrap();
        }
        d
    }

    fn names(t: &TableDir) -> Vec<&str> {
        t.tables.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn ssdts_are_ordered_by_number_and_facp_first() {
        let d = dir_with(&[
            ("dsdt.dat", table(b"DSDT", 40)),
            ("ssdt10.dat", table(b"SSDT", 40)),
            ("ssdt2.dat", table(b"SSDT", 40)),
            ("ssdt1.dat", table(b"SSDT", 40)),
            ("apic.dat", table(b"APIC", 44)),
            ("facp.dat", table(b"FACP", 116)),
            ("facs.dat", table(b"FACS", 64)),
            ("notes.txt", b"not a table".to_vec()),
        ]);
        let t = read_dir(d.path()).unwrap();
        assert_eq!(
            names(&t),
            [
                "facp.dat",
                "apic.dat",
                "ssdt1.dat",
                "ssdt2.dat",
                "ssdt10.dat"
            ]
        );
        assert_eq!(t.dsdt.name, "dsdt.dat");
        assert_eq!(t.notes, ["facs.dat: the FACS is not used"]);
    }

    #[test]
    fn xsdt_order_txt_decides_the_order() {
        let d = dir_with(&[
            ("dsdt.dat", table(b"DSDT", 40)),
            ("ssdt1.dat", table(b"SSDT", 40)),
            ("ssdt2.dat", table(b"SSDT", 40)),
            ("facp.dat", table(b"FACP", 116)),
            ("hpet.dat", table(b"HPET", 56)),
            (
                "xsdt-order.txt",
                b"ssdt2.dat\nfacp.dat\ndsdt.dat\nssdt1.dat\n".to_vec(),
            ),
        ]);
        let t = read_dir(d.path()).unwrap();
        assert_eq!(
            names(&t),
            ["ssdt2.dat", "facp.dat", "ssdt1.dat", "hpet.dat"]
        );
        assert_eq!(
            t.notes,
            ["hpet.dat: not in xsdt-order.txt, listed after the tables it names"]
        );
        std::fs::write(d.path().join("xsdt-order.txt"), "ssdt3.dat\n").unwrap();
        assert_eq!(
            read_dir(d.path()),
            Err(TablesError::OrderNamesMissingFile {
                name: "ssdt3.dat".into()
            })
        );
    }

    #[test]
    fn bad_directories_are_typed_errors() {
        let missing = Path::new("/nonexistent/msifw-tables");
        let e = read_dir(missing).unwrap_err();
        assert!(matches!(e, TablesError::NotADirectory { .. }), "{e:?}");
        assert_eq!(e.exit_code(), 64);

        let d = dir_with(&[("apic.dat", table(b"APIC", 44))]);
        let e = read_dir(d.path()).unwrap_err();
        assert_eq!(
            e,
            TablesError::NoDsdt {
                dir: d.path().to_path_buf()
            }
        );
        assert_eq!(e.exit_code(), 5);
        assert!(e.to_string().contains("no dsdt.dat"), "{e}");

        let mut cut = table(b"SSDT", 100);
        cut.truncate(60);
        let d = dir_with(&[("dsdt.dat", table(b"DSDT", 40)), ("ssdt1.dat", cut)]);
        let e = read_dir(d.path()).unwrap_err();
        assert_eq!(
            e,
            TablesError::Truncated {
                file: d.path().join("ssdt1.dat"),
                size: 60,
                needs: 100
            }
        );
        assert!(
            e.to_string()
                .ends_with("the table's header says 100 bytes, the file has 60"),
            "{e}"
        );

        let d = dir_with(&[("dsdt.dat", b"DSDT".to_vec())]);
        let e = read_dir(d.path()).unwrap_err();
        assert_eq!(
            e,
            TablesError::Truncated {
                file: d.path().join("dsdt.dat"),
                size: 4,
                needs: 36
            }
        );
    }

    #[test]
    fn bytes_past_the_length_are_cut_and_noted() {
        let mut long = table(b"DSDT", 40);
        long.extend_from_slice(&[0xAA; 8]);
        let d = dir_with(&[("dsdt.dat", long)]);
        let t = read_dir(d.path()).unwrap();
        assert_eq!(t.dsdt.bytes.len(), 40);
        assert_eq!(
            t.notes,
            ["dsdt.dat: 8 bytes after the table's length (40) left out"]
        );
    }

    fn route(slot: u64, pin: u64, link: Option<&str>, gsi: Option<u64>) -> Route {
        Route {
            slot,
            pin,
            link: link.map(String::from),
            link_index: link.map(|_| 0),
            gsi,
            link_error: (link.is_some() && gsi.is_none())
                .then(|| "_CRS reads SystemIO 0xc00".to_string()),
        }
    }

    fn sample() -> Preflight {
        Preflight {
            schema_version: SCHEMA_VERSION,
            dir: "t".into(),
            tables: vec![],
            root_bridges: vec![RootBridge {
                path: "\\_SB.PCI0".into(),
                present: true,
                sta: None,
                bbn: Some(0),
                seg: Some(0),
                uid: Some("0".into()),
                buses: Some([0, 0xFF]),
                buses_from: "_CRS".into(),
                prt: vec![
                    route(31, 0, None, Some(16)),
                    route(2, 1, Some("\\_SB.LNKB"), None),
                ],
                prt_error: None,
                has_prt: true,
                bridges: vec![Bridge {
                    path: "\\_SB.PCI0.RP01".into(),
                    adr_chain: vec![Some(0x1C_0000)],
                    prt: vec![route(0, 0, None, Some(16))],
                    prt_error: None,
                }],
            }],
            root_buses: vec![RootBus {
                bridge: "PCI0".into(),
                first: 0,
                last: 0xFF,
                cba: None,
            }],
            peer_probe: false,
            madt: None,
            mcfg: vec![],
            hpet: None,
            links: vec![],
            simulated_reads: vec![],
            refused_reads: vec![],
            problems: vec![],
            notes: vec![],
        }
    }

    #[test]
    fn json_has_the_issues_shape() {
        let j = serde_json::to_value(sample()).unwrap();
        let r = &j["root_bridges"][0];
        assert_eq!(r["path"], "\\_SB.PCI0");
        assert_eq!((r["bbn"].as_u64(), r["seg"].as_u64()), (Some(0), Some(0)));
        assert_eq!(
            r["prt"][0],
            serde_json::json!({"slot": 31, "pin": 0, "gsi": 16})
        );
        let link = &r["prt"][1];
        assert_eq!(
            (&link["slot"], &link["pin"], &link["link"], &link["gsi"]),
            (
                &2.into(),
                &1.into(),
                &"\\_SB.LNKB".into(),
                &serde_json::Value::Null
            )
        );
        assert_eq!(r["bridges"][0]["path"], "\\_SB.PCI0.RP01");
        assert_eq!(r["bridges"][0]["adr_chain"], serde_json::json!([1835008]));
        assert!(j["madt"].is_null() && j["problems"].is_array());
        assert_eq!(j["schema_version"], 1);
    }

    #[test]
    fn text_names_every_entry_and_what_is_not_static() {
        let t = sample().render();
        assert!(t.contains("\\_SB.PCI0  present  segment 0  buses 00-ff  _UID 0  _PRT 2 entries (1 without a GSI)"), "{t}");
        assert!(t.contains("  slot 31 INTA  -> GSI 16\n"), "{t}");
        assert!(
            t.contains("  slot  2 INTB  -> link \\_SB.LNKB: _CRS reads SystemIO 0xc00\n"),
            "{t}"
        );
        assert!(
            t.contains("_PRT \\_SB.PCI0.RP01 (_ADR 0x1c0000):\n  slot  0 INTA  -> GSI 16\n"),
            "{t}"
        );
        assert!(t.ends_with("msifw tables: 1 present root bridges, 3 _PRT entries (1 without a GSI), 0 problems\n"), "{t}");
    }

    #[test]
    fn an_unreadable_file_is_a_typed_error() {
        // A directory named like a table: reading it fails whoever runs the test (root included).
        let d = dir_with(&[("dsdt.dat", table(b"DSDT", 40))]);
        let p = d.path().join("apic.dat");
        std::fs::create_dir(&p).unwrap();
        let e = read_dir(d.path()).unwrap_err();
        assert!(
            matches!(&e, TablesError::Unreadable { file, .. } if *file == p),
            "{e:?}"
        );
        assert_eq!(e.exit_code(), 5);
    }
}
