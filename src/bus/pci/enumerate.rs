//! Enumeration: bus 0 (or the first ECAM bus) and every bus a bridge leads to, never a brute-force sweep
//! of all 256 buses. Multifunction devices are probed for functions 1-7 only when function 0 says so.

use super::bar::{self, Bar, BarError};
use super::caps::{self, CapError, CapList};
use super::config::{Bdf, ConfigRegion};
use super::regs;
use heapless::Vec;

/// Most functions kept (32 devices behind root ports plus the chipset fit).
pub const MAX_FUNCTIONS: usize = 128;

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
    pub bars: Vec<Bar, 6>,
    /// Capabilities.
    pub caps: CapList,
    /// Interrupt pin (0 none, 1-4 INTA-INTD).
    pub interrupt_pin: u8,
    /// Interrupt line as the boot firmware left it.
    pub interrupt_line: u8,
    /// Bridges: secondary and subordinate bus.
    pub bridge_buses: Option<(u8, u8)>,
    /// Problems met while reading this function.
    pub problems: Vec<PciProblem, 8>,
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
    /// More functions than [`MAX_FUNCTIONS`]: the rest were not listed.
    TooManyFunctions,
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
            Self::TooManyFunctions => write!(f, "more than {MAX_FUNCTIONS} functions; the rest are not listed"),
        }
    }
}

/// What enumeration found.
#[derive(Debug)]
pub struct Enumeration {
    /// Functions, sorted by BDF.
    pub functions: Vec<Function, MAX_FUNCTIONS>,
    /// Topology problems (not tied to one function's own registers).
    pub problems: Vec<(Bdf, PciProblem), 16>,
    /// Buses scanned, in order.
    pub buses_scanned: Vec<u8, 256>,
}

impl Enumeration {
    /// An empty result.
    pub const fn new() -> Self {
        Enumeration { functions: Vec::new(), problems: Vec::new(), buses_scanned: Vec::new() }
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
    *out = Enumeration::new();
    let mut pending: Vec<u8, 256> = Vec::new();
    let _ = pending.push(bus_start);
    while let Some(bus) = pending.pop() {
        if out.buses_scanned.contains(&bus) {
            continue;
        }
        let _ = out.buses_scanned.push(bus);
        // Children found on this bus, pushed in reverse so the lowest secondary bus is scanned first.
        let mut children: Vec<u8, 32> = Vec::new();
        for dev in 0..32u8 {
            let f0 = Bdf::new(bus, dev, 0);
            if cfg.read16(f0, regs::VENDOR_ID) == 0xFFFF {
                continue;
            }
            let multifunction = cfg.read8(f0, regs::HEADER_TYPE) & 0x80 != 0;
            let funcs = if multifunction { 8 } else { 1 };
            for func in 0..funcs {
                let bdf = Bdf::new(bus, dev, func);
                if cfg.read16(bdf, regs::VENDOR_ID) == 0xFFFF {
                    continue;
                }
                let function = read_function(cfg, bdf);
                if let Some((secondary, _)) = function.bridge_buses {
                    let valid = secondary > bus
                        && secondary >= bus_start
                        && secondary <= bus_end
                        && !out.buses_scanned.contains(&secondary)
                        && !pending.contains(&secondary)
                        && !children.contains(&secondary);
                    if valid {
                        let _ = children.push(secondary);
                    } else {
                        let _ = out.problems.push((bdf, PciProblem::BadSecondaryBus { secondary }));
                    }
                }
                if out.functions.push(function).is_err() {
                    let _ = out.problems.push((bdf, PciProblem::TooManyFunctions));
                    return;
                }
            }
        }
        for child in children.iter().rev() {
            let _ = pending.push(*child);
        }
    }
    out.functions.sort_unstable_by_key(|f| f.bdf);
}

/// Reads one function's identity, BARs and capabilities.
pub fn read_function(cfg: &impl ConfigRegion, bdf: Bdf) -> Function {
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
        2 => (Vec::new(), Vec::new(), None),
        other => {
            let _ = problems.push(PciProblem::UnknownHeaderType(other));
            (Vec::new(), Vec::new(), None)
        }
    };
    for p in bar_problems {
        let _ = problems.push(PciProblem::Bar(p));
    }
    let caps = caps::walk(cfg, bdf);
    for p in caps.problems.iter() {
        let _ = problems.push(PciProblem::Capability(*p));
    }
    Function {
        bdf,
        vendor: cfg.read16(bdf, regs::VENDOR_ID),
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
    }
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
