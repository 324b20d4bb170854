//! Enumeration: every root bus (bus 0, or the host bridges the ACPI tables describe) and every bus a bridge
//! leads to, never a brute-force sweep of all 256 buses. Multifunction devices are probed for functions 1-7 only when function 0 says so.

use super::bar::{self, Bar, BarError};
use super::caps::{self, CapError, CapList};
use super::config::{Bdf, ConfigRegion};
use super::regs;
use alloc::vec::Vec;

/// One PCI function as found.
#[derive(Debug, Clone)]
pub struct Function {
    /// Address.
    pub bdf: Bdf,
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// Class code: class << 16 | subclass << 8 | prog-if.
    pub class: u32,
    /// Revision ID.
    pub revision: u8,
    /// Header type, without the multifunction bit.
    pub header_type: u8,
    /// Implemented BARs.
    pub bars: heapless::Vec<Bar, 6>,
    /// Capabilities.
    pub caps: CapList,
    /// Interrupt pin (0 none, 1-4 INTA-INTD).
    pub interrupt_pin: u8,
    /// Interrupt line as the boot firmware left it.
    pub interrupt_line: u8,
    /// Bridges: secondary and subordinate bus.
    pub bridge_buses: Option<(u8, u8)>,
    /// Problems met while reading this function.
    pub problems: Vec<PciProblem>,
}

impl Function {
    /// The BAR with `index`, if implemented.
    pub fn bar(&self, index: u8) -> Option<&Bar> {
        self.bars.iter().find(|b| b.index == index)
    }
}

/// Something wrong with a function or the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PciProblem {
    /// Capability walk stopped early.
    Capability(CapError),
    /// A BAR could not be decoded.
    Bar(BarError),
    /// Header type other than 0, 1 (or 2, CardBus, which is listed without BARs).
    UnknownHeaderType(u8),
    /// A bridge's secondary bus is not above its own bus, outside the decoded range, or already scanned.
    BadSecondaryBus {
        /// The secondary bus number found.
        secondary: u8,
    },
    /// The Vendor ID read all-ones while the function was being read, after it had answered: it was
    /// surprise-removed (or config reads fail). What was read is garbage; the function is not listed.
    Vanished,
}

impl core::fmt::Display for PciProblem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Capability(e) => write!(f, "{e}"),
            Self::Bar(e) => write!(f, "{e}"),
            Self::UnknownHeaderType(t) => write!(f, "unknown header type {t:#x}; BARs and bridges not read"),
            Self::BadSecondaryBus { secondary } => {
                write!(f, "bridge secondary bus {secondary:#x} is not a new bus below this one; not followed")
            }
            Self::Vanished => write!(f, "function vanished while being read (all-ones); not listed"),
        }
    }
}

/// What enumeration found.
#[derive(Debug)]
pub struct Enumeration {
    /// Functions, sorted by BDF (as many as the platform has: the heap holds them).
    pub functions: Vec<Function>,
    /// Topology problems (not tied to one function's own registers).
    pub problems: Vec<(Bdf, PciProblem)>,
    /// Buses scanned, in order.
    pub buses_scanned: Vec<u8>,
    /// The root buses scanned (no bridge leads to them), in order.
    pub root_buses: Vec<u8>,
}

impl Enumeration {
    /// An empty result.
    pub const fn new() -> Self {
        Enumeration { functions: Vec::new(), problems: Vec::new(), buses_scanned: Vec::new(), root_buses: Vec::new() }
    }

    /// The function at `bdf`.
    pub fn get(&self, bdf: Bdf) -> Option<&Function> {
        self.functions.iter().find(|f| f.bdf == bdf)
    }
}

impl Default for Enumeration {
    fn default() -> Self {
        Self::new()
    }
}

/// Enumerates buses `bus_start..=bus_end`, starting at `bus_start` and following bridges, into `out`.
pub fn enumerate(cfg: &impl ConfigRegion, bus_start: u8, bus_end: u8, out: &mut Enumeration) {
    enumerate_roots(cfg, &[(bus_start, bus_end)], out)
}

/// Whether a Vendor ID read means "no function here": all-ones (nothing answered) or 0 (Linux's
/// `pci_bus_generic_read_dev_vendor_id` treats 0x0000 the same: some bridges and broken windows return it,
/// and memory posing as an ECAM window reads 0).
pub fn absent(vendor: u16) -> bool {
    vendor == 0xFFFF || vendor == 0
}

/// Enumerates every root bus `(first, last)` (host bridges from the ACPI tables, lowest first), each from its
/// root bus along its bridges, into `out`. A bridge's secondary bus must lie in its own root's range, and a bus
/// already scanned (from another root) is not scanned again.
pub fn enumerate_roots(cfg: &impl ConfigRegion, roots: &[(u8, u8)], out: &mut Enumeration) {
    *out = Enumeration::new();
    for &(bus_start, bus_end) in roots {
        if out.buses_scanned.contains(&bus_start) {
            continue;
        }
        out.root_buses.push(bus_start);
        enumerate_root(cfg, bus_start, bus_end, out);
    }
    crate::sort::sort_by_key(&mut out.functions, |f| f.bdf);
}

/// Finds peer root buses no table describes, as Linux's `pcibios_scan_specific_bus` does (with
/// `pci=lastbus=255`): every bus number not reached yet whose function 0 of any device answers is scanned as a
/// root bus, with what its bridges lead to. 32 reads per bus number not reached. Call after
/// [`enumerate_roots`]; returns the root buses found.
pub fn enumerate_peer_buses(cfg: &impl ConfigRegion, out: &mut Enumeration) -> Vec<u8> {
    let mut found = Vec::new();
    for bus in 0..=255u8 {
        if out.buses_scanned.contains(&bus) {
            continue;
        }
        if (0..32).any(|dev| !absent(cfg.read16(Bdf::new(bus, dev, 0), regs::VENDOR_ID))) {
            found.push(bus);
            out.root_buses.push(bus);
            enumerate_root(cfg, bus, 0xFF, out);
        }
    }
    crate::sort::sort_by_key(&mut out.functions, |f| f.bdf);
    found
}

/// One root bus, with everything its bridges lead to.
fn enumerate_root(cfg: &impl ConfigRegion, bus_start: u8, bus_end: u8, out: &mut Enumeration) {
    // (bus, whether it is the link of a PCIe downstream-facing port: only device 0 can be there).
    let mut pending: Vec<(u8, bool)> = Vec::new();
    pending.push((bus_start, false));
    while let Some((bus, link)) = pending.pop() {
        if out.buses_scanned.contains(&bus) {
            continue;
        }
        out.buses_scanned.push(bus);
        // Children found on this bus, pushed in reverse so the lowest secondary bus is scanned first.
        let mut children: Vec<(u8, bool)> = Vec::new();
        // A downstream port's link leads to one device, number 0 (PCIe 4.0 7.3.1; other numbers are not
        // forwarded unless ARI Forwarding is on, see `downstream_port`). Linux's only_one_child() skips
        // them the same way; each skipped probe is a trap under a hypervisor.
        let devices = if link { 1 } else { 32 };
        for dev in 0..devices {
            let f0 = Bdf::new(bus, dev, 0);
            if absent(cfg.read16(f0, regs::VENDOR_ID)) {
                continue;
            }
            let multifunction = cfg.read8(f0, regs::HEADER_TYPE) & 0x80 != 0;
            let funcs = if multifunction { 8 } else { 1 };
            for func in 0..funcs {
                let bdf = Bdf::new(bus, dev, func);
                if absent(cfg.read16(bdf, regs::VENDOR_ID)) {
                    continue;
                }
                let function = read_function(cfg, bdf);
                if function.problems.contains(&PciProblem::Vanished) {
                    out.problems.push((bdf, PciProblem::Vanished));
                    continue;
                }
                if let Some((secondary, _)) = function.bridge_buses {
                    let valid = secondary > bus
                        && secondary >= bus_start
                        && secondary <= bus_end
                        && !out.buses_scanned.contains(&secondary)
                        && !pending.iter().any(|p| p.0 == secondary)
                        && !children.iter().any(|c| c.0 == secondary);
                    if valid {
                        children.push((secondary, downstream_port(cfg, &function)));
                    } else {
                        out.problems.push((bdf, PciProblem::BadSecondaryBus { secondary }));
                    }
                }
                out.functions.push(function);
            }
        }
        for child in children.iter().rev() {
            pending.push(*child);
        }
    }
}

/// Whether the bus below `f` is a link that only device 0 can answer on: `f` is a PCIe Root Port, Switch
/// Downstream Port or PCI/PCI-X-to-PCIe bridge (PCI Express Capabilities register, Device/Port Type 4, 6
/// or 8: PCIe 4.0 7.5.3.2; Linux's `pcie_downstream_port`), and ARI Forwarding is off (Device Control 2
/// bit 5, 7.5.3.16: with it on, which a boot firmware may have set, an ARI device's functions 8-255 answer
/// as device numbers 1-31).
fn downstream_port(cfg: &impl ConfigRegion, f: &Function) -> bool {
    const ROOT_PORT: u16 = 4;
    const DOWNSTREAM_PORT: u16 = 6;
    const PCI_TO_PCIE_BRIDGE: u16 = 8;
    const DEVICE_CONTROL_2: u16 = 0x28;
    const ARI_FORWARDING: u16 = 1 << 5;
    let Some(at) = f.caps.find(super::caps::id::PCIE) else { return false };
    let port_type = (cfg.read16(f.bdf, at + 2) >> 4) & 0xF;
    matches!(port_type, ROOT_PORT | DOWNSTREAM_PORT | PCI_TO_PCIE_BRIDGE) && cfg.read16(f.bdf, at + DEVICE_CONTROL_2) & ARI_FORWARDING == 0
}

/// Reads one function's identity, BARs and capabilities. A function whose Vendor ID reads all-ones (or 0)
/// before or after (absent, or surprise-removed meanwhile) comes back with nothing but [`PciProblem::Vanished`].
pub fn read_function(cfg: &impl ConfigRegion, bdf: Bdf) -> Function {
    let vendor = cfg.read16(bdf, regs::VENDOR_ID);
    let class_rev = cfg.read32(bdf, regs::CLASS_REVISION);
    let header_type = cfg.read8(bdf, regs::HEADER_TYPE) & 0x7F;
    let mut problems = Vec::new();
    let (bars, bar_problems, bridge_buses) = match header_type {
        0 => {
            let (b, p) = bar::probe(cfg, bdf, 6);
            (b, p, None)
        }
        1 => {
            let (b, p) = bar::probe(cfg, bdf, 2);
            let secondary = cfg.read8(bdf, regs::SECONDARY_BUS);
            let subordinate = cfg.read8(bdf, regs::SUBORDINATE_BUS);
            (b, p, Some((secondary, subordinate)))
        }
        2 => (heapless::Vec::new(), heapless::Vec::new(), None),
        other => {
            problems.push(PciProblem::UnknownHeaderType(other));
            (heapless::Vec::new(), heapless::Vec::new(), None)
        }
    };
    for p in bar_problems {
        problems.push(PciProblem::Bar(p));
    }
    let caps = caps::walk(cfg, bdf);
    for p in caps.problems.iter() {
        problems.push(PciProblem::Capability(*p));
    }
    let mut function = Function {
        bdf,
        vendor,
        device: cfg.read16(bdf, regs::DEVICE_ID),
        class: class_rev >> 8,
        revision: class_rev as u8,
        header_type,
        bars,
        caps,
        interrupt_pin: cfg.read8(bdf, regs::INTERRUPT_PIN),
        interrupt_line: cfg.read8(bdf, regs::INTERRUPT_LINE),
        bridge_buses,
        problems,
    };
    // Read last: a function removed at any point above reads all-ones here, and everything read is dropped.
    if absent(vendor) || absent(cfg.read16(bdf, regs::VENDOR_ID)) {
        function.bars.clear();
        function.caps = CapList::default();
        function.bridge_buses = None;
        function.problems.clear();
        function.problems.push(PciProblem::Vanished);
    }
    function
}

#[cfg(test)]
mod tests {
    use super::super::config::sim::SimConfig;
    use super::*;

    fn bridge(sim: &SimConfig, bdf: Bdf, secondary: u8) {
        sim.add(bdf, 0x1b36, 0x000c, 0x060400);
        sim.poke(bdf, 0x0E, &[0x01]);
        sim.poke(bdf, 0x19, &[secondary, secondary]);
    }

    #[test]
    fn follows_bridges_and_multifunction() {
        let sim = SimConfig::default();
        sim.add(Bdf::new(0, 0, 0), 0x8086, 0x29c0, 0x060000);
        sim.add(Bdf::new(0, 31, 0), 0x8086, 0x2918, 0x060100);
        sim.poke(Bdf::new(0, 31, 0), 0x0E, &[0x80]);
        sim.add(Bdf::new(0, 31, 3), 0x8086, 0x2930, 0x0c0500);
        bridge(&sim, Bdf::new(0, 7, 0), 1);
        sim.add(Bdf::new(1, 0, 0), 0x1234, 0x11e8, 0x00ff00);
        // A function on bus 5 that no bridge leads to must not be found.
        sim.add(Bdf::new(5, 0, 0), 0x1234, 0x11e8, 0x00ff00);
        // Function 3 of a non-multifunction device is not probed.
        sim.add(Bdf::new(0, 2, 0), 0x8086, 0x10d3, 0x020000);
        sim.add(Bdf::new(0, 2, 3), 0x8086, 0x10d3, 0x020000);
        let mut e = Enumeration::new();
        enumerate(&sim, 0, 255, &mut e);
        let bdfs: std::vec::Vec<String> = e.functions.iter().map(|f| f.bdf.to_string()).collect();
        assert_eq!(bdfs, ["00:00.0", "00:02.0", "00:07.0", "00:1f.0", "00:1f.3", "01:00.0"]);
        assert_eq!(e.buses_scanned.as_slice(), &[0, 1]);
        assert!(e.problems.is_empty());
        assert_eq!(e.get(Bdf::new(1, 0, 0)).unwrap().class, 0x00ff00);
    }

    #[test]
    fn only_device_0_is_probed_below_a_pcie_downstream_port() {
        let sim = SimConfig::default();
        // A root port (PCI Express capability at 0x40, Device/Port Type 4) leading to bus 2.
        let port = Bdf::new(0, 0x1c, 0);
        bridge(&sim, port, 2);
        sim.poke(port, 0x06, &[0x10]); // Status.Capabilities List
        sim.poke(port, 0x34, &[0x40]);
        sim.poke(port, 0x40, &[0x10, 0x00, 0x42, 0x00]);
        sim.add(Bdf::new(2, 0, 0), 0x1b36, 0x0010, 0x010802);
        // Device 3 on the port's link is not forwarded by real hardware and must not be probed.
        sim.add(Bdf::new(2, 3, 0), 0x1234, 0x11e8, 0x00ff00);
        // A conventional PCI-to-PCI bridge's bus has 32 device numbers.
        bridge(&sim, Bdf::new(0, 7, 0), 1);
        sim.add(Bdf::new(1, 5, 0), 0x1234, 0x11e8, 0x00ff00);
        let mut e = Enumeration::new();
        enumerate(&sim, 0, 255, &mut e);
        let bdfs: std::vec::Vec<String> = e.functions.iter().map(|f| f.bdf.to_string()).collect();
        assert_eq!(bdfs, ["00:07.0", "00:1c.0", "01:05.0", "02:00.0"]);
        // With ARI Forwarding on (Device Control 2 bit 5), device numbers 1-31 answer: all are probed.
        sim.poke(port, 0x40 + 0x28, &[0x20, 0x00]);
        enumerate(&sim, 0, 255, &mut e);
        let bdfs: std::vec::Vec<String> = e.functions.iter().map(|f| f.bdf.to_string()).collect();
        assert_eq!(bdfs, ["00:07.0", "00:1c.0", "01:05.0", "02:00.0", "02:03.0"]);
    }

    #[test]
    fn every_function_and_bridge_of_a_large_bus_is_followed() {
        // 40 bridges on bus 0 (multifunction slots), each leading to a bus with an 8-function device:
        // 360 functions (128 were kept before, and 32 bridges per bus followed).
        let sim = SimConfig::default();
        for i in 0..40u8 {
            let bdf = Bdf::new(0, 1 + i / 8, i % 8);
            bridge(&sim, bdf, i + 1);
            sim.poke(bdf, 0x0E, &[0x81]);
            for func in 0..8 {
                let f = Bdf::new(i + 1, 0, func);
                sim.add(f, 0x1234, 0x11e8, 0x00ff00);
                sim.poke(f, 0x0E, &[0x80]);
            }
        }
        let mut e = Enumeration::new();
        enumerate(&sim, 0, 255, &mut e);
        assert!(e.problems.is_empty(), "{:?}", e.problems);
        assert_eq!((e.functions.len(), e.buses_scanned.len()), (360, 41));
    }

    #[test]
    fn bridge_loops_and_backward_buses_are_reported_not_followed() {
        let sim = SimConfig::default();
        bridge(&sim, Bdf::new(0, 1, 0), 1);
        bridge(&sim, Bdf::new(1, 0, 0), 0); // points back up
        bridge(&sim, Bdf::new(0, 2, 0), 1); // second bridge claiming bus 1
        let mut e = Enumeration::new();
        enumerate(&sim, 0, 255, &mut e);
        assert_eq!(e.buses_scanned.as_slice(), &[0, 1]);
        assert_eq!(e.problems.len(), 2);
    }

    /// A configuration space whose functions all vanish (read all-ones, ignore writes) after `reads` reads.
    struct Vanishing {
        sim: SimConfig,
        reads: core::cell::Cell<u32>,
    }

    impl ConfigRegion for Vanishing {
        fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
            if self.reads.get() == 0 {
                return u32::MAX;
            }
            self.reads.set(self.reads.get() - 1);
            self.sim.read32(bdf, offset)
        }
        fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
            if self.reads.get() > 0 {
                self.sim.write32(bdf, offset, value)
            }
        }
        fn write16(&self, bdf: Bdf, offset: u16, value: u16) {
            if self.reads.get() > 0 {
                self.sim.write16(bdf, offset, value)
            }
        }
        fn write8(&self, bdf: Bdf, offset: u16, value: u8) {
            if self.reads.get() > 0 {
                self.sim.write8(bdf, offset, value)
            }
        }
        fn space_size(&self) -> u16 {
            self.sim.space_size()
        }
    }

    #[test]
    fn absent_function_reads_as_vanished_not_as_a_device() {
        let sim = SimConfig::default();
        let f = read_function(&sim, Bdf::new(3, 0, 0));
        assert_eq!(f.problems.as_slice(), &[PciProblem::Vanished]);
        assert!(f.bars.is_empty() && f.caps.caps.is_empty() && f.bridge_buses.is_none());
    }

    #[test]
    fn function_removed_mid_read_is_reported_and_not_listed() {
        let sim = SimConfig::default();
        sim.add(Bdf::new(0, 0, 0), 0x8086, 0x29c0, 0x060000);
        let nvme = sim.add(Bdf::new(0, 3, 0), 0x1b36, 0x0010, 0x010802);
        sim.bar(nvme, 0, 0xFFFF_C004, 0xFEA1_0004);
        sim.bar(nvme, 1, 0xFFFF_FFFF, 0);
        sim.poke(nvme, 0x06, &regs::status::CAP_LIST.to_le_bytes());
        sim.poke(nvme, 0x34, &[0x40]);
        sim.poke(nvme, 0x40, &[0x11, 0x00]);
        // Count the reads a full enumeration takes, then pull the plug at every point of 00:03.0's read.
        let full = Vanishing { sim, reads: core::cell::Cell::new(u32::MAX) };
        let mut e = Enumeration::new();
        enumerate(&full, 0, 0, &mut e);
        assert_eq!(e.functions.len(), 2);
        assert!(e.get(nvme).is_some_and(|f| f.problems.is_empty()), "the uncut read is clean");
        let total = u32::MAX - full.reads.get();
        let mut vanished_seen = 0;
        for n in 0..total {
            full.reads.set(n);
            enumerate(&full, 0, 0, &mut e);
            // Listed only if read whole (the plug was pulled after its last read).
            if let Some(f) = e.get(nvme) {
                assert!(f.problems.is_empty() && f.bars.len() == 1, "cut at read {n}: half-read function listed: {f:?}");
                assert_eq!(f.caps.find(caps::id::MSIX), Some(0x40), "cut at read {n}");
            }
            if e.problems.as_slice() == [(nvme, PciProblem::Vanished)] {
                vanished_seen += 1;
            }
        }
        assert!(vanished_seen > 0, "removal after the Vendor ID check is reported as Vanished");
    }

    #[test]
    fn every_root_bus_is_enumerated_once() {
        let sim = SimConfig::default();
        sim.add(Bdf::new(0, 0, 0), 0x8086, 0x29c0, 0x060000);
        // A pxb-pcie expander's own device on bus 0, its root bus 0x80 with a root port to 0x81.
        sim.add(Bdf::new(0, 3, 0), 0x1b36, 0x000b, 0x060000);
        bridge(&sim, Bdf::new(0x80, 0, 0), 0x81);
        sim.add(Bdf::new(0x81, 0, 0), 0x1234, 0x11e8, 0x00ff00);
        // A pxb with a device directly on its root bus 0x40.
        sim.add(Bdf::new(0x40, 2, 0), 0x1234, 0x11e8, 0x00ff00);
        let mut e = Enumeration::new();
        enumerate(&sim, 0, 255, &mut e);
        assert_eq!(e.functions.len(), 2, "from bus 0 alone the expanders' buses are not reached");
        enumerate_roots(&sim, &[(0, 0x3F), (0x40, 0x41), (0x80, 0x81)], &mut e);
        let bdfs: std::vec::Vec<String> = e.functions.iter().map(|f| f.bdf.to_string()).collect();
        assert_eq!(bdfs, ["00:00.0", "00:03.0", "40:02.0", "80:00.0", "81:00.0"]);
        assert_eq!(e.buses_scanned.as_slice(), &[0, 0x40, 0x80, 0x81]);
        assert_eq!(e.root_buses.as_slice(), &[0, 0x40, 0x80]);
        assert!(e.problems.is_empty(), "{:?}", e.problems);
    }

    #[test]
    fn a_bus_reached_from_one_root_is_not_rescanned_from_another() {
        let sim = SimConfig::default();
        // A bridge on bus 0 claims bus 0x80, which is also a root bus.
        bridge(&sim, Bdf::new(0, 1, 0), 0x80);
        sim.add(Bdf::new(0x80, 0, 0), 0x1234, 0x11e8, 0x00ff00);
        let mut e = Enumeration::new();
        enumerate_roots(&sim, &[(0, 0xFF), (0x80, 0x80)], &mut e);
        assert_eq!(e.functions.iter().filter(|f| f.bdf.bus == 0x80).count(), 1);
        assert_eq!(e.buses_scanned.as_slice(), &[0, 0x80]);
        assert_eq!(e.root_buses.as_slice(), &[0], "bus 0x80 was reached through the bridge");
        // With bus 0's range ending below it, the bridge's bus is outside its root: reported, scanned as a root.
        enumerate_roots(&sim, &[(0, 0x7F), (0x80, 0x80)], &mut e);
        assert_eq!(e.functions.iter().filter(|f| f.bdf.bus == 0x80).count(), 1);
        assert_eq!(e.problems.as_slice(), &[(Bdf::new(0, 1, 0), PciProblem::BadSecondaryBus { secondary: 0x80 })]);
    }

    #[test]
    fn peer_root_buses_are_found_by_probing_when_no_table_lists_them() {
        let sim = SimConfig::default();
        sim.add(Bdf::new(0, 0, 0), 0x8086, 0x1237, 0x060000);
        bridge(&sim, Bdf::new(0, 1, 0), 1);
        sim.add(Bdf::new(1, 0, 0), 0x1234, 0x11e8, 0x00ff00);
        // A pxb's root bus 0x40 with a bridge to 0x41, and an edu at device 5 of root bus 0x60.
        bridge(&sim, Bdf::new(0x40, 0, 0), 0x41);
        sim.add(Bdf::new(0x41, 1, 0), 0x1234, 0x11e8, 0x00ff00);
        sim.add(Bdf::new(0x60, 5, 0), 0x1234, 0x11e8, 0x00ff00);
        let mut e = Enumeration::new();
        enumerate(&sim, 0, 255, &mut e);
        assert_eq!(e.functions.len(), 3);
        let found = enumerate_peer_buses(&sim, &mut e);
        assert_eq!(found.as_slice(), &[0x40, 0x60]);
        let bdfs: std::vec::Vec<String> = e.functions.iter().map(|f| f.bdf.to_string()).collect();
        assert_eq!(bdfs, ["00:00.0", "00:01.0", "01:00.0", "40:00.0", "41:01.0", "60:05.0"]);
        assert_eq!(e.root_buses.as_slice(), &[0, 0x40, 0x60]);
        // Nothing more to find: a second probe finds nothing and lists nothing twice.
        assert!(enumerate_peer_buses(&sim, &mut e).is_empty());
        assert_eq!(e.functions.len(), 6);
    }

    #[test]
    fn vendor_id_zero_is_absent() {
        let sim = SimConfig::default();
        sim.add(Bdf::new(0, 0, 0), 0x8086, 0x1237, 0x060000);
        // Memory posing as configuration space reads 0 everywhere: no phantom function.
        sim.add(Bdf::new(0, 5, 0), 0x0000, 0x0000, 0);
        sim.add(Bdf::new(0, 6, 0), 0x1234, 0x11e8, 0x00ff00);
        sim.poke(Bdf::new(0, 6, 0), 0x0E, &[0x80]);
        sim.add(Bdf::new(0, 6, 1), 0x0000, 0x11e8, 0x00ff00);
        let mut e = Enumeration::new();
        enumerate(&sim, 0, 255, &mut e);
        let bdfs: std::vec::Vec<String> = e.functions.iter().map(|f| f.bdf.to_string()).collect();
        assert_eq!(bdfs, ["00:00.0", "00:06.0"]);
    }

    #[test]
    fn bus_range_limits_the_walk() {
        let sim = SimConfig::default();
        bridge(&sim, Bdf::new(0, 1, 0), 9);
        sim.add(Bdf::new(9, 0, 0), 0x1234, 0x11e8, 0);
        let mut e = Enumeration::new();
        enumerate(&sim, 0, 7, &mut e);
        assert_eq!(e.functions.len(), 1);
        assert_eq!(e.problems[0].1, PciProblem::BadSecondaryBus { secondary: 9 });
    }
}
