//! Capability walks: the standard list from 0x34 (PCI 3.0 6.7) and the PCIe extended list from 0x100
//! (PCIe 4.0 7.6). Both survive loops, self-pointers and pointers into the header or past the space:
//! the walk stops there and reports a [`CapError`].

use super::config::{Bdf, ConfigRegion};
use super::regs;
use alloc::vec::Vec;

/// One capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    /// Capability ID (8 bits standard, 16 bits extended).
    pub id: u16,
    /// Offset in configuration space.
    pub offset: u16,
    /// From the extended (0x100+) list.
    pub extended: bool,
}

/// Standard capability IDs used here.
pub mod id {
    /// Power management.
    pub const PM: u16 = 0x01;
    /// MSI.
    pub const MSI: u16 = 0x05;
    /// Vendor specific.
    pub const VENDOR: u16 = 0x09;
    /// PCI Express.
    pub const PCIE: u16 = 0x10;
    /// MSI-X.
    pub const MSIX: u16 = 0x11;
}

/// What stopped a walk early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapError {
    /// A next pointer leads back to a capability already visited.
    Loop {
        /// Offset of the capability whose next pointer closes the loop.
        from: u16,
        /// Where it points.
        to: u16,
    },
    /// A pointer into the header (below 0x40, or below 0x100 for the extended list) or past the space.
    BadPointer {
        /// Where the pointer was read (0x34 for the list head).
        from: u16,
        /// The pointer.
        to: u16,
    },
    /// A capability whose registers run past the end of the 256-byte standard space (an MSI or MSI-X
    /// structure placed too high). It is not listed, so its mode is not used.
    PastEnd {
        /// Offset of the capability.
        at: u16,
        /// Its ID.
        id: u16,
    },
    /// More capabilities than the walk keeps (32 standard + extended).
    TooMany,
    /// The capability header read all-ones: the function vanished or the list is garbage.
    AllOnes {
        /// Offset of the bad header.
        at: u16,
    },
}

impl core::fmt::Display for CapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Loop { from, to } => write!(f, "capability loop: {from:#x} points back to {to:#x}"),
            Self::BadPointer { from, to } => write!(f, "capability pointer at {from:#x} is invalid ({to:#x})"),
            Self::PastEnd { at, id } => {
                write!(f, "{} capability at {at:#x} runs past the end of the standard space", name(*id, false))
            }
            Self::TooMany => write!(f, "capability list longer than its space holds (48 standard, 480 extended); rest ignored"),
            Self::AllOnes { at } => write!(f, "capability header at {at:#x} reads all-ones"),
        }
    }
}

/// Capabilities found, and the problem that ended a walk early, if any.
#[derive(Debug, Clone, Default)]
pub struct CapList {
    /// In list order, standard first.
    pub caps: Vec<Capability>,
    /// Problems (at most one per list).
    pub problems: heapless::Vec<CapError, 2>,
}

impl CapList {
    /// First capability with `id` in the standard list.
    pub fn find(&self, id: u16) -> Option<u16> {
        self.caps.iter().find(|c| !c.extended && c.id == id).map(|c| c.offset)
    }

    /// First capability with `id` in the extended list.
    pub fn find_extended(&self, id: u16) -> Option<u16> {
        self.caps.iter().find(|c| c.extended && c.id == id).map(|c| c.offset)
    }
}

/// Smallest size of the standard capabilities whose registers are read here (PCI 3.0 6.8.1: 32-bit MSI
/// without masking; 6.8.2: MSI-X), so none of those reads leaves the 256-byte space.
fn min_len(id: u16) -> u16 {
    match id {
        id::MSI => 0x0A,
        id::MSIX => 0x0C,
        _ => 2,
    }
}

/// Linux's PCI_FIND_CAP_TTL: no real device has more standard capabilities.
const STANDARD_TTL: usize = 48;

/// Walks both lists of `bdf`.
pub fn walk(cfg: &impl ConfigRegion, bdf: Bdf) -> CapList {
    let mut list = CapList::default();
    let status = cfg.read16(bdf, regs::STATUS);
    if status != 0xFFFF && status & regs::status::CAP_LIST != 0 {
        if let Err(e) = walk_standard(cfg, bdf, &mut list) {
            let _ = list.problems.push(e);
        }
    }
    // Extended capabilities exist only in PCIe functions reached through ECAM, and only where their 4 KiB
    // space reaches the CPU (not below a conventional PCI bridge): has_extended_space.
    if list.find(id::PCIE).is_some() && has_extended_space(cfg, bdf) {
        if let Err(e) = walk_extended(cfg, bdf, &mut list) {
            let _ = list.problems.push(e);
        }
    }
    list
}

fn walk_standard(cfg: &impl ConfigRegion, bdf: Bdf, list: &mut CapList) -> Result<(), CapError> {
    let mut visited = [false; 64]; // one flag per dword of the 256-byte space
    let mut from = regs::CAP_PTR;
    let mut ptr = (cfg.read8(bdf, regs::CAP_PTR) & 0xFC) as u16;
    for _ in 0..STANDARD_TTL {
        if ptr == 0 {
            return Ok(());
        }
        if ptr < 0x40 {
            return Err(CapError::BadPointer { from, to: ptr });
        }
        if visited[ptr as usize / 4] {
            return Err(CapError::Loop { from, to: ptr });
        }
        visited[ptr as usize / 4] = true;
        let header = cfg.read16(bdf, ptr);
        if header == 0xFFFF {
            return Err(CapError::AllOnes { at: ptr });
        }
        let id = header & 0xFF;
        if ptr + min_len(id) > 0x100 {
            return Err(CapError::PastEnd { at: ptr, id });
        }
        list.caps.push(Capability { id, offset: ptr, extended: false });
        from = ptr + 1;
        ptr = (header >> 8) & 0xFC;
    }
    // 48 capabilities fill every dword from 0x40; a 49th pointer can only lead back.
    if ptr == 0 {
        Ok(())
    } else {
        Err(CapError::TooMany)
    }
}

/// Whether `bdf` has the 4 KiB configuration space of a PCIe function, as Linux's
/// pci_cfg_space_size_ext decides it: the dword at 0x100 reads all-ones where the space ends at 256 bytes
/// (a PCIe function below a conventional PCI bridge: the bridge forwards no extended configuration
/// request, and QEMU answers all-ones past 256 bytes on such a bus), and a space whose every 256-byte
/// block from 0x100 repeats the ID dword at 0x00 is the 256-byte space aliased (pci_ext_cfg_is_aliased).
pub fn has_extended_space(cfg: &impl ConfigRegion, bdf: Bdf) -> bool {
    if cfg.space_size() <= 0x100 {
        return false;
    }
    let first = cfg.read32(bdf, 0x100);
    if first == 0xFFFF_FFFF {
        return false;
    }
    let id = cfg.read32(bdf, 0x00);
    let aliased = (0x100..cfg.space_size()).step_by(0x100).all(|pos| cfg.read32(bdf, pos) == id);
    !aliased
}

fn walk_extended(cfg: &impl ConfigRegion, bdf: Bdf, list: &mut CapList) -> Result<(), CapError> {
    let mut visited = [0u64; 16]; // one bit per dword of the 4 KiB space
    let mut from = 0x100;
    let mut ptr: u16 = 0x100;
    // (4096 - 256) / 8: the most 8-byte-apart headers that fit, Linux's bound too.
    for _ in 0..480 {
        if !(0x100..=0xFFC).contains(&ptr) {
            return Err(CapError::BadPointer { from, to: ptr });
        }
        let dword = ptr as usize / 4;
        if visited[dword / 64] & (1 << (dword % 64)) != 0 {
            return Err(CapError::Loop { from, to: ptr });
        }
        visited[dword / 64] |= 1 << (dword % 64);
        let header = cfg.read32(bdf, ptr);
        if header == 0xFFFF_FFFF {
            return Err(CapError::AllOnes { at: ptr });
        }
        if header == 0 {
            return Ok(()); // no extended capabilities (PCIe 7.6.3: a zero header at 0x100)
        }
        list.caps.push(Capability { id: (header & 0xFFFF) as u16, offset: ptr, extended: true });
        let next = ((header >> 20) & 0xFFC) as u16;
        if next == 0 {
            return Ok(());
        }
        from = ptr;
        ptr = next;
    }
    Err(CapError::TooMany)
}

/// Short name of a capability, for reports.
pub fn name(id: u16, extended: bool) -> &'static str {
    if extended {
        match id {
            0x0001 => "aer",
            0x0002 => "vc",
            0x0003 => "dsn",
            0x0004 => "power-budget",
            0x000B => "vsec",
            0x000D => "acs",
            0x000E => "ari",
            0x0010 => "sriov",
            0x0015 => "resizable-bar",
            0x0018 => "ltr",
            0x0019 => "secondary-pcie",
            0x001E => "l1ss",
            _ => "ext-unknown",
        }
    } else {
        match id {
            0x01 => "pm",
            0x03 => "vpd",
            0x05 => "msi",
            0x09 => "vendor",
            0x0A => "debug-port",
            0x0D => "bridge-subsystem",
            0x10 => "pcie",
            0x11 => "msix",
            0x12 => "sata",
            0x13 => "af",
            0x14 => "ea",
            _ => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::sim::SimConfig;
    use super::*;

    fn device(extended: bool) -> (SimConfig, Bdf) {
        let sim = SimConfig { extended, ..Default::default() };
        let bdf = sim.add(Bdf::new(0, 2, 0), 0x8086, 0x10d3, 0x020000);
        sim.poke(bdf, 0x06, &regs::status::CAP_LIST.to_le_bytes());
        (sim, bdf)
    }

    #[test]
    fn a_pcie_function_whose_space_ends_at_256_bytes_has_no_extended_list_and_no_problem() {
        // A PCIe endpoint below a conventional PCI bridge: 0x100 reads all-ones (QEMU, and Linux's
        // pci_cfg_space_size_ext takes that as a 256-byte space).
        let (sim, bdf) = device(true);
        sim.poke(bdf, 0x34, &[0xE0]);
        sim.poke(bdf, 0xE0, &[0x10, 0x00]);
        sim.poke(bdf, 0x100, &u32::MAX.to_le_bytes());
        let list = walk(&sim, bdf);
        assert!(list.problems.is_empty(), "{:?}", list.problems);
        assert_eq!(list.caps.len(), 1);
        assert!(!has_extended_space(&sim, bdf));
        // The 256-byte space aliased over the 4 KiB (every block from 0x100 repeats the ID dword).
        let (sim, bdf) = device(true);
        sim.poke(bdf, 0x34, &[0xE0]);
        sim.poke(bdf, 0xE0, &[0x10, 0x00]);
        for pos in (0x100..0x1000).step_by(0x100) {
            sim.poke(bdf, pos, &(0x10d3_8086u32).to_le_bytes());
        }
        let list = walk(&sim, bdf);
        assert!(list.problems.is_empty() && list.caps.len() == 1, "{:?}", list);
        // A real extended header at 0x100 is still walked, and all-ones further on is still a problem.
        let (sim, bdf) = device(true);
        sim.poke(bdf, 0x34, &[0xE0]);
        sim.poke(bdf, 0xE0, &[0x10, 0x00]);
        sim.poke(bdf, 0x100, &(0x0001u32 | 1 << 16 | 0x140 << 20).to_le_bytes());
        sim.poke(bdf, 0x140, &u32::MAX.to_le_bytes());
        let list = walk(&sim, bdf);
        assert_eq!(list.problems.as_slice(), &[CapError::AllOnes { at: 0x140 }]);
    }

    #[test]
    fn walks_e1000e_like_lists() {
        let (sim, bdf) = device(true);
        sim.poke(bdf, 0x34, &[0xC8]);
        sim.poke(bdf, 0xC8, &[0x01, 0xD0]);
        sim.poke(bdf, 0xD0, &[0x05, 0xE0]);
        sim.poke(bdf, 0xE0, &[0x10, 0xA0]);
        sim.poke(bdf, 0xA0, &[0x11, 0x00]);
        sim.poke(bdf, 0x100, &(0x0001u32 | 1 << 16 | 0x140 << 20).to_le_bytes());
        sim.poke(bdf, 0x140, &(0x0003u32 | 1 << 16).to_le_bytes());
        let list = walk(&sim, bdf);
        let ids: std::vec::Vec<_> = list.caps.iter().map(|c| (c.id, c.offset, c.extended)).collect();
        assert_eq!(
            ids,
            [(1, 0xC8, false), (5, 0xD0, false), (0x10, 0xE0, false), (0x11, 0xA0, false), (1, 0x100, true), (3, 0x140, true)]
        );
        assert!(list.problems.is_empty());
        assert_eq!(list.find(id::MSIX), Some(0xA0));
    }

    #[test]
    fn self_pointer_is_a_loop() {
        let (sim, bdf) = device(false);
        sim.poke(bdf, 0x34, &[0x40]);
        sim.poke(bdf, 0x40, &[0x05, 0x40]);
        let list = walk(&sim, bdf);
        assert_eq!(list.caps.len(), 1);
        assert_eq!(list.problems[0], CapError::Loop { from: 0x41, to: 0x40 });
    }

    #[test]
    fn longer_loop_is_detected() {
        let (sim, bdf) = device(false);
        sim.poke(bdf, 0x34, &[0x40]);
        sim.poke(bdf, 0x40, &[0x01, 0x50]);
        sim.poke(bdf, 0x50, &[0x05, 0x60]);
        sim.poke(bdf, 0x60, &[0x11, 0x40]);
        let list = walk(&sim, bdf);
        assert_eq!(list.caps.len(), 3);
        assert!(matches!(list.problems[0], CapError::Loop { to: 0x40, .. }));
    }

    #[test]
    fn pointer_into_header_is_rejected() {
        let (sim, bdf) = device(false);
        sim.poke(bdf, 0x34, &[0x10]);
        let list = walk(&sim, bdf);
        assert!(list.caps.is_empty());
        assert_eq!(list.problems[0], CapError::BadPointer { from: 0x34, to: 0x10 });
    }

    #[test]
    fn pointers_past_the_space_cannot_be_formed_and_structures_past_it_are_rejected() {
        // An 8-bit pointer of 0xFF is masked to 0xFC (as Linux does): it cannot point past 0xFF.
        let (sim, bdf) = device(false);
        sim.poke(bdf, 0x34, &[0xFF]);
        sim.poke(bdf, 0xFC, &[0x01, 0x00]);
        let list = walk(&sim, bdf);
        assert_eq!((list.caps[0].offset, list.problems.len()), (0xFC, 0));
        // An MSI-X structure (12 bytes) at 0xF8 would be read from 0x100..0x104: refused, not listed.
        sim.poke(bdf, 0x34, &[0x40]);
        sim.poke(bdf, 0x40, &[0x01, 0xF8]);
        sim.poke(bdf, 0xF8, &[0x11, 0x00]);
        let list = walk(&sim, bdf);
        assert_eq!(list.problems.as_slice(), &[CapError::PastEnd { at: 0xF8, id: id::MSIX }]);
        assert_eq!(list.find(id::MSIX), None, "the mode is not offered");
        // An MSI structure (at least 10 bytes) at 0xF8 likewise.
        sim.poke(bdf, 0xF8, &[0x05, 0x00]);
        assert_eq!(walk(&sim, bdf).problems[0], CapError::PastEnd { at: 0xF8, id: id::MSI });
        // An extended next pointer of 0xFFF is masked to 0xFFC, the last dword of the 4 KiB space.
        let (sim, bdf) = device(true);
        sim.poke(bdf, 0x34, &[0x40]);
        sim.poke(bdf, 0x40, &[0x10, 0x00]);
        sim.poke(bdf, 0x100, &(0x0001u32 | 0xFFF << 20).to_le_bytes());
        sim.poke(bdf, 0xFFC, &0x0003u32.to_le_bytes());
        let list = walk(&sim, bdf);
        assert!(list.problems.is_empty(), "{:?}", list.problems);
        assert_eq!(list.find_extended(0x0003), Some(0xFFC));
    }

    #[test]
    fn extended_pointer_into_the_standard_space_is_rejected() {
        let (sim, bdf) = device(true);
        sim.poke(bdf, 0x34, &[0x40]);
        sim.poke(bdf, 0x40, &[0x10, 0x00]);
        sim.poke(bdf, 0x100, &(0x0001u32 | 0x140 << 20).to_le_bytes());
        sim.poke(bdf, 0x140, &(0x0003u32 | 0x0FC << 20).to_le_bytes());
        assert_eq!(walk(&sim, bdf).problems[0], CapError::BadPointer { from: 0x140, to: 0xFC });
    }

    #[test]
    fn function_vanishing_mid_walk_reads_all_ones() {
        // Extended list: the second header reads all-ones (the function went away).
        let (sim, bdf) = device(true);
        sim.poke(bdf, 0x34, &[0x40]);
        sim.poke(bdf, 0x40, &[0x10, 0x00]);
        sim.poke(bdf, 0x100, &(0x0001u32 | 0x140 << 20).to_le_bytes());
        sim.poke(bdf, 0x140, &u32::MAX.to_le_bytes());
        let list = walk(&sim, bdf);
        assert_eq!(list.problems.as_slice(), &[CapError::AllOnes { at: 0x140 }]);
        assert_eq!(list.caps.len(), 2, "capabilities before the all-ones header are kept");
    }

    #[test]
    fn low_pointer_bits_are_ignored_like_linux() {
        let (sim, bdf) = device(false);
        sim.poke(bdf, 0x34, &[0x43]);
        sim.poke(bdf, 0x40, &[0x05, 0x00]);
        assert_eq!(walk(&sim, bdf).find(id::MSI), Some(0x40));
    }

    #[test]
    fn no_cap_list_bit_means_no_walk() {
        let (sim, bdf) = device(false);
        sim.poke(bdf, 0x06, &[0, 0]);
        sim.poke(bdf, 0x34, &[0x40]);
        sim.poke(bdf, 0x40, &[0x05, 0x00]);
        assert!(walk(&sim, bdf).caps.is_empty());
    }

    #[test]
    fn extended_loops_and_bad_pointers_stop_the_walk() {
        let (sim, bdf) = device(true);
        sim.poke(bdf, 0x34, &[0x40]);
        sim.poke(bdf, 0x40, &[0x10, 0x00]);
        sim.poke(bdf, 0x100, &(0x0001u32 | 0x100 << 20).to_le_bytes());
        let list = walk(&sim, bdf);
        assert_eq!(list.problems[0], CapError::Loop { from: 0x100, to: 0x100 });
        sim.poke(bdf, 0x100, &(0x0001u32 | 0x040 << 20).to_le_bytes());
        assert_eq!(walk(&sim, bdf).problems[0], CapError::BadPointer { from: 0x100, to: 0x40 });
    }

    #[test]
    fn endless_extended_chain_stops_at_linux_bound() {
        // Headers 4 bytes apart from 0x100 to the end of the space, no loop: the walk stops after 480
        // (Linux's bound) with TooMany, keeping the 480 it read.
        let (sim, bdf) = device(true);
        sim.poke(bdf, 0x34, &[0x40]);
        sim.poke(bdf, 0x40, &[0x10, 0x00]);
        for at in (0x100u32..0x1000).step_by(4) {
            let next = if at + 4 < 0x1000 { at + 4 } else { 0 };
            sim.poke(bdf, at as usize, &(0x000Bu32 | next << 20).to_le_bytes());
        }
        let list = walk(&sim, bdf);
        assert_eq!(list.problems.as_slice(), &[CapError::TooMany]);
        assert_eq!(list.caps.iter().filter(|c| c.extended).count(), 480);
    }

    #[test]
    fn all_ones_function_reports_nothing_or_all_ones() {
        let (sim, bdf) = device(false);
        sim.poke(bdf, 0x34, &[0x40]);
        sim.poke(bdf, 0x40, &[0xFF, 0xFF]);
        assert_eq!(walk(&sim, bdf).problems[0], CapError::AllOnes { at: 0x40 });
        // An absent function reads all-ones everywhere: Status 0xFFFF is not trusted.
        assert!(walk(&sim, Bdf::new(9, 0, 0)).caps.is_empty());
    }

    #[test]
    fn longest_chain_is_kept_whole() {
        // 48 capabilities, one in every dword from 0x40 (the .bss list kept 32 and dropped the rest).
        let (sim, bdf) = device(false);
        sim.poke(bdf, 0x34, &[0x40]);
        for i in 0..48usize {
            let at = 0x40 + i * 4;
            let next = if i == 47 { 0 } else { (at + 4) as u8 };
            sim.poke(bdf, at, &[0x09, next]);
        }
        let list = walk(&sim, bdf);
        assert_eq!(list.caps.len(), 48);
        assert!(list.problems.is_empty(), "{:?}", list.problems);
    }
}
