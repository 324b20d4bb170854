//! The pre-flight of `cargo run -- tables DIR`: the firmware's own table parsing and routing, run on a
//! machine's tables as `acpixtract -a` wrote them, so a user knows before flashing what msifw would do.
//!
//! A dump keeps the tables but not where they were, nor the RSDP and XSDT. So the tables are put in a
//! memory image of their own behind a rebuilt RSDP (revision 2) and XSDT that lists them in the dump's
//! order; the DSDT goes where the FADT says it is (its `X_DSDT` and `DSDT` addresses), since the firmware
//! finds it there. From the RSDP on, everything is the firmware's code as it runs on the machine:
//! [`acpi::parse`] (checksums, the MADT, the MCFG, the FADT's DSDT), [`acpi::hpet_base`], and the AML
//! namespace of the DSDT and every SSDT the XSDT lists. Operation-region reads are answered with zero,
//! as ACPICA's `acpiexec` simulates them (the firmware reads the machine's registers there), and each
//! is listed so the user sees what the result depends on.
//!
//! Host only: the result is the host tool's [`msifw_host::tables::Preflight`], which it prints and writes
//! as JSON.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use msifw_host::tables::{self as out, Preflight, TableDir, TableFile, TableSeen};

use msifw_aml::{NodeId, Overlay, Regions};

use super::acpi::{self, PhysMemory, Polarity, Signature, TriggerMode};
use super::namespace::{self, BusSource, Target, Uid};

/// Where the rebuilt RSDP goes; the XSDT and the tables follow. Far above any address a real firmware
/// gives its tables, so the DSDT at the FADT's address never overlaps them; every address here has the
/// same number of hex digits, so one never prints as the start of another.
const IMAGE_BASE: u64 = 0x100_0000_0000;

/// Tables at physical addresses: each region a table (or the RSDP) of its own.
struct Image {
    regions: Vec<(u64, Vec<u8>)>,
    /// Each table file's address in the image, to name files in problems instead of addresses.
    names: Vec<(u64, String)>,
    next: u64,
}

impl PhysMemory for Image {
    fn bytes(&self, phys: u64, len: usize) -> Option<&[u8]> {
        self.regions.iter().find_map(|(base, bytes)| {
            let at = usize::try_from(phys.checked_sub(*base)?).ok()?;
            bytes.get(at..at.checked_add(len)?)
        })
    }
}

impl Image {
    fn add(&mut self, name: &str, bytes: Vec<u8>) -> u64 {
        let at = self.next;
        self.next = (at + bytes.len() as u64 + 0xF) & !0xF;
        self.names.push((at, name.to_string()));
        self.regions.push((at, bytes));
        at
    }

    /// `text` with every image address replaced by the file at it.
    fn name_addresses(&self, text: &str) -> String {
        let mut t = text.to_string();
        for (at, name) in &self.names {
            t = t.replace(&format!("{at:#x}"), name);
        }
        t
    }
}

fn checksum_fix(t: &mut [u8], at: usize, len: usize) {
    t[at] = 0;
    let sum = t[..len].iter().fold(0u8, |a, &b| a.wrapping_add(b));
    t[at] = sum.wrapping_neg();
}

/// An XSDT (ACPI 6.5 §5.2.8) listing `entries`.
fn xsdt(entries: &[u64]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"XSDT");
    t.extend_from_slice(&((36 + 8 * entries.len()) as u32).to_le_bytes());
    t.extend_from_slice(&[1, 0]);
    t.extend_from_slice(b"MSIFW PREFLITE");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"MSFW");
    t.extend_from_slice(&1u32.to_le_bytes());
    for e in entries {
        t.extend_from_slice(&e.to_le_bytes());
    }
    let len = t.len();
    checksum_fix(&mut t, 9, len);
    t
}

/// A revision 2 RSDP (ACPI 6.5 §5.2.5.3) with no RSDT and the XSDT at `xsdt`.
fn rsdp(xsdt: u64) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(b"RSD PTR \0MSIFW \x02");
    r.extend_from_slice(&0u32.to_le_bytes());
    r.extend_from_slice(&36u32.to_le_bytes());
    r.extend_from_slice(&xsdt.to_le_bytes());
    r.extend_from_slice(&[0; 4]);
    checksum_fix(&mut r, 8, 20);
    checksum_fix(&mut r, 32, 36);
    r
}

/// The FADT's DSDT addresses (ACPI 6.5 Table 5.9: DSDT at 40, X_DSDT at 140), whichever are non-zero.
fn dsdt_addresses(fadt: &[u8]) -> Vec<u64> {
    let mut v = Vec::new();
    let field = |at: usize, len: usize| {
        fadt.get(at..at + len)
            .map(|b| b.iter().rev().fold(0u64, |a, &x| (a << 8) | u64::from(x)))
    };
    for a in [field(40, 4), field(140, 8)].into_iter().flatten() {
        if a != 0 && !v.contains(&a) {
            v.push(a);
        }
    }
    v
}

/// Lays the tables out as the firmware would find them: the RSDP's address and the image.
fn lay_out(dir: &TableDir) -> (u64, Image) {
    let mut img = Image {
        regions: Vec::new(),
        names: Vec::new(),
        next: IMAGE_BASE,
    };
    // The RSDP and XSDT are placed first; the XSDT's length is known before the tables' addresses are.
    let rsdp_at = IMAGE_BASE;
    let xsdt_at = IMAGE_BASE + 0x40;
    img.next = (xsdt_at + 36 + 8 * dir.tables.len() as u64 + 0xF) & !0xF;
    let entries: Vec<u64> = dir
        .tables
        .iter()
        .map(|t| img.add(&t.name, t.bytes.clone()))
        .collect();
    img.regions.push((rsdp_at, rsdp(xsdt_at)));
    img.regions.push((xsdt_at, xsdt(&entries)));
    img.names.push((rsdp_at, "the RSDP (rebuilt)".to_string()));
    img.names.push((xsdt_at, "the XSDT (rebuilt)".to_string()));
    for facp in dir.tables.iter().filter(|t| t.signature() == "FACP") {
        for at in dsdt_addresses(&facp.bytes) {
            if at < IMAGE_BASE && !img.regions.iter().any(|(b, _)| *b == at) {
                img.regions.push((at, dir.dsdt.bytes.clone()));
                img.names.push((at, dir.dsdt.name.clone()));
            }
        }
    }
    (rsdp_at, img)
}

fn polarity(p: Polarity) -> String {
    match p {
        Polarity::Conforming => "conforming",
        Polarity::ActiveHigh => "high",
        Polarity::ActiveLow => "low",
    }
    .to_string()
}

fn trigger(t: TriggerMode) -> String {
    match t {
        TriggerMode::Conforming => "conforming",
        TriggerMode::Edge => "edge",
        TriggerMode::Level => "level",
    }
    .to_string()
}

fn madt(m: &acpi::MadtInfo) -> out::Madt {
    out::Madt {
        cpus_enabled: m.local_apics.iter().filter(|c| c.enabled).count(),
        cpus_total: m.local_apics.len(),
        xapic_entries: m.local_apics.iter().filter(|c| !c.x2apic).count(),
        x2apic_entries: m.local_apics.iter().filter(|c| c.x2apic).count(),
        local_apic_address: m.local_apic_address,
        pcat_compat: m.pcat_compat,
        io_apics: m
            .io_apics
            .iter()
            .map(|a| out::IoApic {
                id: a.id,
                address: u64::from(a.address),
                gsi_base: u64::from(a.gsi_base),
            })
            .collect(),
        overrides: m
            .overrides
            .iter()
            .map(|o| out::Override {
                bus: o.bus,
                irq: o.source_irq,
                gsi: u64::from(o.gsi),
                polarity: polarity(o.polarity),
                trigger: trigger(o.trigger),
            })
            .collect(),
        nmi_sources: m.nmi_sources.iter().map(|n| u64::from(n.gsi)).collect(),
    }
}

/// Operation regions as the firmware answers them on the machine (`app/aml_regions.rs`), with the
/// machine's registers unknown here. What an evaluation wrote reads back. A read the firmware makes on
/// the machine (PCI_Config in segment 0 within the 256 bytes of mechanism #1; SystemMemory, which it
/// reads where the memory map says RAM, ACPI or NVS) reads zero here, as ACPICA's `acpiexec` simulates
/// it, and is listed; so does SystemIO (the firmware reads ports as Linux does). A read it never makes
/// (EmbeddedControl, SMBus and every other space) fails here as it fails there, and is listed as refused.
#[derive(Debug, Default)]
struct Simulated {
    /// [`RegionPolicy::Acpiexec`]: every space read as zero, none refused.
    acpiexec: bool,
    overlay: Overlay,
    reads: Vec<(u8, u64, u8)>,
    refused: Vec<(u8, u64, u8)>,
}

/// Whether the firmware reads this on the machine (`app/aml_regions.rs`'s rules, the memory map aside).
fn firmware_reads(space: u8, addr: u64, width: u8) -> bool {
    match space {
        namespace::SPACE_SYSTEM_MEMORY | namespace::SPACE_SYSTEM_IO => true,
        namespace::SPACE_PCI_CONFIG => {
            let (seg, _, _, _, offset) = namespace::split_pci_config_address(addr);
            seg == 0 && usize::from(offset) + usize::from(width) <= 0x100
        }
        _ => false,
    }
}

impl Regions for Simulated {
    fn read(&mut self, region: NodeId, space: u8, addr: u64, width: u8) -> Option<u64> {
        if let Some(v) = self.overlay.read(region, space, addr, width) {
            return Some(v);
        }
        let key = (space, addr, width);
        if !self.acpiexec && !firmware_reads(space, addr, width) {
            if !self.refused.contains(&key) {
                self.refused.push(key);
            }
            return None;
        }
        if !self.reads.contains(&key) {
            self.reads.push(key);
        }
        // Zero for the machine's bytes; bytes AML wrote before read back as written.
        Some((0..u64::from(width.min(8))).fold(0u64, |v, i| {
            let b = self
                .overlay
                .read(region, space, addr.wrapping_add(i), 1)
                .unwrap_or(0);
            v | b << (8 * i)
        }))
    }

    fn write(&mut self, region: NodeId, space: u8, addr: u64, width: u8, value: u64) -> bool {
        self.overlay.write(region, space, addr, width, value)
    }
}

fn region_read(&(space, address, width): &(u8, u64, u8)) -> out::RegionRead {
    let at = if space == namespace::SPACE_PCI_CONFIG {
        let (seg, bus, dev, func, reg) = namespace::split_pci_config_address(address);
        format!("{seg:04x}:{bus:02x}:{dev:02x}.{func} {reg:#x}")
    } else {
        format!("{address:#x}")
    };
    out::RegionRead {
        space: out::space_name(space),
        address,
        width,
        at,
    }
}

fn route(r: &namespace::Route) -> out::Route {
    let (slot, pin) = (u64::from(r.slot), u64::from(r.pin));
    match &r.target {
        Target::Gsi(g) => out::Route {
            slot,
            pin,
            link: None,
            link_index: None,
            gsi: Some(u64::from(*g)),
            link_error: None,
        },
        Target::Link {
            path,
            index,
            resolved,
        } => out::Route {
            slot,
            pin,
            link: Some(path.clone()),
            link_index: Some(u64::from(*index)),
            gsi: resolved.as_ref().ok().map(|l| u64::from(l.gsi)),
            link_error: resolved.as_ref().err().map(ToString::to_string),
        },
    }
}

fn routes(
    prt: Result<&[namespace::Route], &namespace::NsError>,
) -> (Vec<out::Route>, Option<String>) {
    match prt {
        Ok(v) => (v.iter().map(route).collect(), None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    }
}

fn root_bridge(r: &namespace::RootBridge) -> out::RootBridge {
    let (prt, prt_error) = match &r.prt {
        Ok(Some(v)) => routes(Ok(v)),
        Ok(None) => (Vec::new(), None),
        Err(e) => routes(Err(e)),
    };
    let buses = r
        .buses
        .as_ref()
        .ok()
        .map(|&(a, b)| [u64::from(a), u64::from(b)]);
    out::RootBridge {
        path: r.path.clone(),
        present: r.present,
        sta: r.sta.as_ref().ok().copied().flatten(),
        bbn: buses.map(|[a, _]| a).or_else(|| match &r.bbn {
            Ok(b) => Some(b.unwrap_or(0)),
            Err(_) => None,
        }),
        seg: r.segment().ok().map(u64::from),
        uid: match &r.uid {
            Ok(Some(Uid::Int(i))) => Some(i.to_string()),
            Ok(Some(Uid::Str(s))) => Some(s.clone()),
            _ => None,
        },
        buses,
        buses_from: match r.buses_from {
            BusSource::Crs => "_CRS",
            BusSource::Bbn => "_BBN",
            BusSource::Default => "default",
            BusSource::Unknown => "unknown",
        }
        .to_string(),
        has_prt: !matches!(r.prt, Ok(None)),
        prt,
        prt_error,
        bridges: r
            .bridges
            .iter()
            .map(|b| {
                let (prt, prt_error) = routes(b.prt.as_deref());
                out::Bridge {
                    path: b.path.clone(),
                    adr_chain: b.adr_chain.iter().map(|a| a.map(u64::from)).collect(),
                    prt,
                    prt_error,
                }
            })
            .collect(),
    }
}

fn link(l: &namespace::Link) -> out::Link {
    out::Link {
        path: l.path.clone(),
        sta: l.sta.as_ref().ok().copied().flatten(),
        gsi: l.irq.as_ref().ok().map(|i| u64::from(i.gsi)),
        level: l.irq.as_ref().ok().map(|i| i.level),
        active_low: l.irq.as_ref().ok().map(|i| i.active_low),
        error: l.irq.as_ref().err().map(ToString::to_string),
    }
}

/// `text` with the namespace's table numbers (load order) replaced by the files.
fn name_tables(text: &str, files: &[String]) -> String {
    let mut t = text.to_string();
    for (i, f) in files.iter().enumerate().rev() {
        t = t.replace(&format!("table {i} offset"), &format!("{f} offset"));
        t = t.replace(&format!("AML table {i} is"), &format!("AML table {f} is"));
    }
    t
}

/// Every namespace error text of `p` with its table named by file.
fn name_tables_in(p: &mut Preflight, files: &[String]) {
    let fix = |s: &mut Option<String>| {
        if let Some(t) = s.as_mut() {
            *t = name_tables(t, files);
        }
    };
    let fix_routes = |routes: &mut Vec<out::Route>| {
        for r in routes {
            if let Some(t) = r.link_error.as_mut() {
                *t = name_tables(t, files);
            }
        }
    };
    for r in &mut p.root_bridges {
        fix(&mut r.prt_error);
        fix_routes(&mut r.prt);
        for b in &mut r.bridges {
            fix(&mut b.prt_error);
            fix_routes(&mut b.prt);
        }
    }
    for l in &mut p.links {
        fix(&mut l.error);
    }
    for line in &mut p.problems {
        *line = name_tables(line, files);
    }
}

/// How operation-region reads are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionPolicy {
    /// As the firmware answers them on the machine (what `tables DIR` prints): SystemIO and other
    /// spaces refused, PCI_Config and SystemMemory read (zero here).
    Firmware,
    /// Every read answered with zero, as ACPICA's `acpiexec` does for the corpus' `oracle.json`: for
    /// telling the evaluator's shortfalls from the firmware's region policy.
    Acpiexec,
}

/// Runs the firmware's parsing and routing on `dir`'s tables.
pub fn preflight(dir: &TableDir) -> Preflight {
    preflight_with(dir, RegionPolicy::Firmware)
}

/// [`preflight`] with operation-region reads answered by `policy`.
pub fn preflight_with(dir: &TableDir, policy: RegionPolicy) -> Preflight {
    let (rsdp_at, img) = lay_out(dir);
    let tables = acpi::parse(rsdp_at, &img);
    let mut problems: Vec<String> = Vec::new();
    for p in &tables.problems {
        problems.push(format!("acpi: {}", img.name_addresses(&p.to_string())));
    }
    if tables.problems_dropped > 0 {
        problems.push(format!(
            "acpi: {} further problems (not kept by the firmware)",
            tables.problems_dropped
        ));
    }
    let hpet = acpi::hpet_base(&tables, &img).map(|r| match r {
        Ok(base) => out::Hpet {
            base: Some(base),
            error: None,
        },
        Err(e) => out::Hpet {
            base: None,
            error: Some(e.to_string()),
        },
    });
    if let Some(out::Hpet { error: Some(e), .. }) = &hpet {
        problems.push(format!("acpi: {e}"));
    }
    if tables.dsdt.is_none() {
        problems.push(
            "acpi: no DSDT found through the FADT: no AML is evaluated, no root bridge or _PRT"
                .to_string(),
        );
    }
    // The AML the firmware loads: the DSDT the FADT names, then every SSDT the XSDT lists, in its order
    // (as app/platform.rs gathers them).
    let mut aml: Vec<&[u8]> = Vec::new();
    // Each loaded table's file, by load order (the namespace's errors name tables by it).
    let mut aml_files: Vec<String> = Vec::new();
    let file_at = |address: u64| {
        img.names
            .iter()
            .find(|(a, _)| *a == address)
            .map(|(_, n)| n.clone())
    };
    if let Some(bytes) = tables
        .dsdt
        .and_then(|t| img.bytes(t.address, t.length as usize))
    {
        aml.push(bytes);
        aml_files.push(dir.dsdt.name.clone());
        for t in tables
            .tables
            .iter()
            .filter(|t| t.signature == Signature(*b"SSDT"))
        {
            if let Some(bytes) = img.bytes(t.address, t.length as usize) {
                aml.push(bytes);
                aml_files.push(file_at(t.address).unwrap_or_else(|| format!("{:#x}", t.address)));
            }
        }
    }
    let mut regions = Simulated {
        acpiexec: policy == RegionPolicy::Acpiexec,
        ..Simulated::default()
    };
    let ns = if aml.is_empty() {
        namespace::PciNamespace::default()
    } else {
        namespace::load(&aml, &mut regions)
    };
    problems.extend(ns.problems.iter().map(|p| format!("namespace: {p}")));
    // The root buses the firmware enumerates, and why a bridge gives none (platform.rs does the same).
    let (mut root_buses, root_problems) = namespace::root_buses(&ns);
    problems.extend(root_problems.iter().map(|p| format!("pci-roots: {p}")));
    let mut peer_probe = namespace::needs_peer_probe(&root_problems);
    if root_buses.is_empty() && root_problems.is_empty() {
        // No host bridge described: bus 0 and what its bridges lead to, then the peer-bus probe (as
        // app/platform.rs and app::run do).
        root_buses.push(namespace::RootBus {
            first: 0,
            last: 0xFF,
            bridge: *b"----",
            cba: None,
        });
        peer_probe = true;
    }
    let seen = |f: &TableFile| TableSeen {
        file: f.name.clone(),
        signature: f.signature(),
        length: f.bytes.len(),
    };
    let mut p = Preflight {
        schema_version: out::SCHEMA_VERSION,
        dir: dir.dir.display().to_string(),
        tables: core::iter::once(&dir.dsdt)
            .chain(&dir.tables)
            .map(seen)
            .collect(),
        root_bridges: ns.roots.iter().map(root_bridge).collect(),
        root_buses: root_buses
            .iter()
            .map(|b| out::RootBus {
                bridge: b.bridge.iter().map(|&c| char::from(c)).collect(),
                first: b.first,
                last: b.last,
                cba: b.cba,
            })
            .collect(),
        peer_probe,
        madt: tables.madt.as_ref().map(madt),
        mcfg: tables
            .mcfg
            .iter()
            .map(|m| out::Mcfg {
                base: m.base_address,
                segment: m.segment,
                bus_start: m.bus_start,
                bus_end: m.bus_end,
            })
            .collect(),
        hpet,
        links: ns.links.iter().map(link).collect(),
        simulated_reads: regions.reads.iter().map(region_read).collect(),
        refused_reads: regions.refused.iter().map(region_read).collect(),
        problems,
        notes: dir.notes.clone(),
    };
    name_tables_in(&mut p, &aml_files);
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    /// QEMU 7.2 q35's tables (src/platform/acpi/qemu-7.2-q35-tables.dat, the block at 0x0FFE0000 with
    /// the RSDT at 0x0FFE2297) as `acpixtract -a` would write them: the RSDT's entries, then the DSDT.
    fn q35_dir() -> TableDir {
        const BASE: u32 = 0x0FFE_0000;
        let dump: &[u8] = include_bytes!("acpi/qemu-7.2-q35-tables.dat");
        let table = |addr: u32| {
            let at = (addr - BASE) as usize;
            dump[at..at + u32_at(dump, at + 4) as usize].to_vec()
        };
        let rsdt = table(0x0FFE_2297);
        let mut tables = Vec::new();
        let mut dsdt = None;
        for e in rsdt[36..].chunks(4) {
            let t = table(u32_at(e, 0));
            let name = format!("{}.dat", String::from_utf8_lossy(&t[..4]).to_lowercase());
            if &t[..4] == b"FACP" {
                dsdt = Some(TableFile {
                    name: "dsdt.dat".into(),
                    bytes: table(u32_at(&t, 40)),
                });
            }
            tables.push(TableFile { name, bytes: t });
        }
        TableDir {
            dir: PathBuf::from("q35"),
            dsdt: dsdt.unwrap(),
            tables,
            notes: Vec::new(),
        }
    }

    #[test]
    fn qemu_q35_tables_parse_as_the_firmware_parses_them_at_boot() {
        let p = preflight(&q35_dir());
        assert_eq!(p.problems, Vec::<String>::new());
        let files: Vec<&str> = p.tables.iter().map(|t| t.file.as_str()).collect();
        assert_eq!(
            files,
            ["dsdt.dat", "facp.dat", "apic.dat", "hpet.dat", "mcfg.dat", "waet.dat"]
        );
        let m = p.madt.unwrap();
        assert_eq!(
            (
                m.cpus_enabled,
                m.cpus_total,
                m.xapic_entries,
                m.x2apic_entries
            ),
            (2, 2, 2, 0)
        );
        assert_eq!(
            m.io_apics,
            [out::IoApic {
                id: 0,
                address: 0xFEC0_0000,
                gsi_base: 0
            }]
        );
        assert_eq!(m.overrides.len(), 5);
        assert_eq!(
            p.mcfg,
            [out::Mcfg {
                base: 0xB000_0000,
                segment: 0,
                bus_start: 0,
                bus_end: 255
            }]
        );
        assert_eq!(
            p.hpet,
            Some(out::Hpet {
                base: Some(0xFED0_0000),
                error: None
            })
        );
    }

    #[test]
    fn problems_name_the_file_not_the_rebuilt_address() {
        let mut d = q35_dir();
        let apic = d.tables.iter_mut().find(|t| t.name == "apic.dat").unwrap();
        apic.bytes[50] ^= 0xFF;
        let p = preflight(&d);
        assert!(p.madt.is_none());
        assert_eq!(p.problems[0], "acpi: APIC at apic.dat has a bad checksum");
    }

    #[test]
    fn a_fadt_without_a_dsdt_is_a_problem() {
        let mut d = q35_dir();
        let facp = d.tables.iter_mut().find(|t| t.name == "facp.dat").unwrap();
        facp.bytes[40..44].copy_from_slice(&[0; 4]);
        facp.bytes[140..148].copy_from_slice(&[0; 8]);
        checksum_fix(&mut facp.bytes, 9, 244);
        let p = preflight(&d);
        assert!(
            p.problems.iter().any(|l| l.contains("no DSDT")),
            "{:?}",
            p.problems
        );
        assert!(p.root_bridges.is_empty());
    }

    #[test]
    fn region_reads_follow_the_firmwares_rules_and_are_listed() {
        use namespace::{
            pci_config_address, SPACE_PCI_CONFIG, SPACE_SYSTEM_IO, SPACE_SYSTEM_MEMORY,
        };
        let mut r = Simulated::default();
        let pirq = pci_config_address(0, 0, 0x1F, 0, 0x60);
        assert_eq!(
            r.read(0, SPACE_PCI_CONFIG, pirq, 4),
            Some(0),
            "read on the machine: zero here"
        );
        assert_eq!(r.read(0, SPACE_SYSTEM_MEMORY, 0x7000_0000, 1), Some(0));
        assert_eq!(
            r.read(0, SPACE_SYSTEM_IO, 0x64, 1),
            Some(0),
            "the firmware reads ports: zero here"
        );
        assert_eq!(r.read(0, 3, 0x10, 1), None, "it reads no EmbeddedControl");
        let far = pci_config_address(0, 0, 0x1F, 0, 0x100);
        assert_eq!(
            r.read(0, SPACE_PCI_CONFIG, far, 4),
            None,
            "nor past mechanism #1's 256 bytes"
        );
        assert!(r.write(0, SPACE_SYSTEM_IO, 0xB2, 1, 0xA0));
        assert_eq!(
            r.read(0, SPACE_SYSTEM_IO, 0xB2, 1),
            Some(0xA0),
            "what AML wrote reads back"
        );
        assert!(r.write(0, SPACE_PCI_CONFIG, pirq + 1, 1, 0x05));
        assert_eq!(r.read(0, SPACE_PCI_CONFIG, pirq, 4), Some(0x0500));
        assert_eq!(
            r.reads,
            [
                (SPACE_PCI_CONFIG, pirq, 4),
                (SPACE_SYSTEM_MEMORY, 0x7000_0000, 1),
                (SPACE_SYSTEM_IO, 0x64, 1)
            ]
        );
        assert_eq!(r.refused, [(3, 0x10, 1), (SPACE_PCI_CONFIG, far, 4)]);
        let mut all = Simulated {
            acpiexec: true,
            ..Simulated::default()
        };
        assert_eq!(
            all.read(0, SPACE_SYSTEM_IO, 0x64, 1),
            Some(0),
            "acpiexec answers every space"
        );
    }

    #[test]
    fn namespace_errors_name_the_file() {
        let files: Vec<String> = (0..12)
            .map(|i| {
                if i == 0 {
                    "dsdt.dat".into()
                } else {
                    format!("ssdt{i}.dat")
                }
            })
            .collect();
        assert_eq!(
            name_tables(
                "load: table 1 offset 0x24 (in \\): x; in \\_SB (table 10 offset 0x8)",
                &files
            ),
            "load: ssdt1.dat offset 0x24 (in \\): x; in \\_SB (ssdt10.dat offset 0x8)"
        );
        assert_eq!(
            name_tables("AML table 0 is not a loadable DSDT/SSDT", &files),
            "AML table dsdt.dat is not a loadable DSDT/SSDT"
        );
    }

    /// Bytes changed at random in every table (xorshift, fixed seed), half the rounds with checksums
    /// mended so the changes reach the parsers and the evaluator: no panic.
    #[test]
    fn mutated_tables_never_panic() {
        let base = q35_dir();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..60 {
            let mut d = base.clone();
            for _ in 0..1 + next() % 6 {
                let n = d.tables.len() + 1;
                let which = (next() % n as u64) as usize;
                let t = if which == 0 {
                    &mut d.dsdt
                } else {
                    &mut d.tables[which - 1]
                };
                let at = (next() % t.bytes.len() as u64) as usize;
                t.bytes[at] = next() as u8;
                if round % 2 == 0 && t.bytes.len() >= 36 {
                    let len = t.bytes.len();
                    checksum_fix(&mut t.bytes, 9, len);
                }
            }
            let p = preflight(&d);
            let _ = p.problems.len();
        }
    }
}
