//! What the boot protocol hands over (PVH `hvm_start_info`, qemu-7.2-facts.md section 7), copied out of low
//! memory into owned storage before anything can reuse that memory.

use crate::physmem::PhysMemory;
use heapless::{String, Vec};

/// `hvm_start_info.magic`.
pub const START_INFO_MAGIC: u32 = 0x336E_C578;

/// One E820 memory-map entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemRegion {
    /// Physical start.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// E820 type (1 = RAM, 2 = reserved, 3 = ACPI reclaimable, 4 = ACPI NVS).
    pub kind: u32,
}

/// Capacity limits of the copied boot information.
pub const MAX_CMDLINE: usize = 1024;
/// Memory-map entries kept (pvh.bin collects at most 128).
pub const MAX_MEMMAP: usize = 128;

/// The boot information msifw keeps.
#[derive(Debug, Clone, Default)]
pub struct BootInfo {
    /// Firmware command line (QEMU `-append`).
    pub cmdline: String<MAX_CMDLINE>,
    /// RSDP physical address, if the loader found one.
    pub rsdp: Option<u64>,
    /// E820 memory map.
    pub memmap: Vec<MemRegion, MAX_MEMMAP>,
    /// Problems met while copying (truncations, bad magic).
    pub problems: Vec<BootProblem, 4>,
}

/// Bad or surprising boot information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootProblem {
    /// `hvm_start_info.magic` was not 0x336EC578.
    BadMagic(u32),
    /// The start_info pointer could not be read.
    Unreadable(u64),
    /// The command line was longer than [`MAX_CMDLINE`] or not terminated; it was cut.
    CmdlineTruncated,
    /// The command line was not UTF-8; it was ignored.
    CmdlineNotUtf8,
    /// More memory-map entries than [`MAX_MEMMAP`]; the rest were dropped.
    MemmapTruncated(u32),
    /// The memory map at this address could not be read (or wrapped past 2^64); entries from there on were dropped.
    MemmapUnreadable(u64),
}

impl core::fmt::Display for BootProblem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadMagic(m) => write!(f, "hvm_start_info magic {m:#x}, expected {START_INFO_MAGIC:#x}"),
            Self::Unreadable(a) => write!(f, "hvm_start_info at {a:#x} is not readable"),
            Self::CmdlineTruncated => write!(f, "command line longer than {MAX_CMDLINE} bytes; cut"),
            Self::CmdlineNotUtf8 => write!(f, "command line is not UTF-8; ignored"),
            Self::MemmapTruncated(n) => write!(f, "{n} memory map entries; only {MAX_MEMMAP} kept"),
            Self::MemmapUnreadable(a) => write!(f, "memory map at {a:#x} unreadable; later entries dropped"),
        }
    }
}

/// Reads at `base + off`; an address that wraps past 2^64 reads as absent (found by `fuzz/boot_info`).
fn read_u32(mem: &impl PhysMemory, base: u64, off: u64) -> Option<u32> {
    Some(u32::from_le_bytes(mem.bytes(base.checked_add(off)?, 4)?.try_into().ok()?))
}

fn read_u64(mem: &impl PhysMemory, base: u64, off: u64) -> Option<u64> {
    Some(u64::from_le_bytes(mem.bytes(base.checked_add(off)?, 8)?.try_into().ok()?))
}

impl BootInfo {
    /// Copies `hvm_start_info` at `addr` (layout: include/hw/xen/start_info.h). Never panics.
    pub fn from_pvh(mem: &impl PhysMemory, addr: u64) -> BootInfo {
        let mut info = BootInfo::default();
        let Some(magic) = read_u32(mem, addr, 0) else {
            let _ = info.problems.push(BootProblem::Unreadable(addr));
            return info;
        };
        if magic != START_INFO_MAGIC {
            let _ = info.problems.push(BootProblem::BadMagic(magic));
            return info;
        }
        let cmdline_paddr = read_u64(mem, addr, 0x18).unwrap_or(0);
        let rsdp_paddr = read_u64(mem, addr, 0x20).unwrap_or(0);
        let memmap_paddr = read_u64(mem, addr, 0x28).unwrap_or(0);
        let memmap_entries = read_u32(mem, addr, 0x30).unwrap_or(0);
        info.rsdp = (rsdp_paddr != 0).then_some(rsdp_paddr);
        if cmdline_paddr != 0 {
            info.copy_cmdline(mem, cmdline_paddr);
        }
        if memmap_paddr != 0 {
            if memmap_entries as usize > MAX_MEMMAP {
                let _ = info.problems.push(BootProblem::MemmapTruncated(memmap_entries));
            }
            for i in 0..(memmap_entries as usize).min(MAX_MEMMAP) {
                let e = i as u64 * 24;
                let (Some(a), Some(s), Some(k)) =
                    (read_u64(mem, memmap_paddr, e), read_u64(mem, memmap_paddr, e + 8), read_u32(mem, memmap_paddr, e + 16))
                else {
                    let _ = info.problems.push(BootProblem::MemmapUnreadable(memmap_paddr));
                    break;
                };
                let _ = info.memmap.push(MemRegion { addr: a, size: s, kind: k });
            }
        }
        info
    }

    fn copy_cmdline(&mut self, mem: &impl PhysMemory, addr: u64) {
        let mut bytes: Vec<u8, MAX_CMDLINE> = Vec::new();
        let mut terminated = false;
        for i in 0..MAX_CMDLINE as u64 {
            match addr.checked_add(i).and_then(|a| mem.bytes(a, 1)) {
                Some(&[b]) if b != 0 => {
                    let _ = bytes.push(b);
                }
                _ => {
                    terminated = true;
                    break;
                }
            }
        }
        if !terminated {
            let _ = self.problems.push(BootProblem::CmdlineTruncated);
        }
        match core::str::from_utf8(&bytes) {
            Ok(s) => {
                let _ = self.cmdline.push_str(s.trim());
            }
            Err(_) => {
                let _ = self.problems.push(BootProblem::CmdlineNotUtf8);
            }
        }
    }

    /// End of the memory that holds firmware tables: RAM, ACPI reclaimable and NVS regions, and reserved
    /// regions that directly follow one of those (where SeaBIOS puts the ACPI tables). 0 if no map.
    pub fn table_memory_top(&self) -> u64 {
        let end = |r: &MemRegion| r.addr.saturating_add(r.size);
        let mut top = 0;
        for r in self.memmap.iter().filter(|r| matches!(r.kind, 1 | 3 | 4)) {
            top = top.max(end(r));
            // Reserved regions chained after this one.
            // Each step strictly advances `tail`, so the walk ends (fuzz/boot_info found a region at 2^64-1
            // whose saturated end equalled its start, which looped forever).
            let mut tail = end(r);
            while let Some(next) = self.memmap.iter().find(|n| n.kind == 2 && n.addr == tail && end(n) > tail) {
                tail = end(next);
                top = top.max(tail);
            }
        }
        top
    }

    /// Highest end address of RAM (E820 type 1), or 0.
    pub fn ram_top(&self) -> u64 {
        self.memmap.iter().filter(|r| r.kind == 1).map(|r| r.addr.saturating_add(r.size)).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::physmem::SliceMemory;

    /// A memory image whose byte 0 sits at physical address 0x10000 (address 0 is never readable).
    struct Buf(std::vec::Vec<u8>);
    const BASE: u64 = 0x10000;
    impl Buf {
        fn mem(&self) -> SliceMemory<'_> {
            SliceMemory::new(BASE, &self.0)
        }
    }

    fn image(cmdline: &[u8], entries: u32) -> Buf {
        let mut m = vec![0u8; 0x4000];
        m[0..4].copy_from_slice(&START_INFO_MAGIC.to_le_bytes());
        m[0x18..0x20].copy_from_slice(&(BASE + 0x1000).to_le_bytes());
        m[0x20..0x28].copy_from_slice(&0xF59D0u64.to_le_bytes());
        m[0x28..0x30].copy_from_slice(&(BASE + 0x2000).to_le_bytes());
        m[0x30..0x34].copy_from_slice(&entries.to_le_bytes());
        m[0x1000..0x1000 + cmdline.len()].copy_from_slice(cmdline);
        for i in 0..entries.min(100) as usize {
            let e = 0x2000 + i * 24;
            m[e..e + 8].copy_from_slice(&(i as u64 * 0x100000).to_le_bytes());
            m[e + 8..e + 16].copy_from_slice(&0x100000u64.to_le_bytes());
            m[e + 16..e + 20].copy_from_slice(&1u32.to_le_bytes());
        }
        Buf(m)
    }

    #[test]
    fn copies_cmdline_rsdp_and_memmap() {
        let info = BootInfo::from_pvh(&image(b" nomsi scenario=all \0", 3).mem(), BASE);
        assert_eq!(info.cmdline.as_str(), "nomsi scenario=all");
        assert_eq!(info.rsdp, Some(0xF59D0));
        assert_eq!(info.memmap.len(), 3);
        assert_eq!(info.ram_top(), 0x300000);
        assert_eq!(info.table_memory_top(), 0x300000);
        assert!(info.problems.is_empty());
    }

    #[test]
    fn bad_magic_is_reported_and_nothing_trusted() {
        let mut img = image(b"x\0", 1);
        img.0[0] = 0;
        let info = BootInfo::from_pvh(&img.mem(), BASE);
        assert!(matches!(info.problems[0], BootProblem::BadMagic(_)));
        assert!(info.rsdp.is_none() && info.memmap.is_empty());
    }

    #[test]
    fn unreadable_pointer_and_unterminated_cmdline() {
        let info = BootInfo::from_pvh(&image(b"\0", 0).mem(), 0xFFFF_FFFF);
        assert_eq!(info.problems[0], BootProblem::Unreadable(0xFFFF_FFFF));
        let mut img = image(b"", 0);
        for b in &mut img.0[0x1000..0x1000 + 2000] {
            *b = b'a';
        }
        let info = BootInfo::from_pvh(&img.mem(), BASE);
        assert!(info.problems.contains(&BootProblem::CmdlineTruncated));
        assert_eq!(info.cmdline.len(), MAX_CMDLINE);
    }

    #[test]
    fn too_many_memmap_entries_and_truncated_table() {
        let info = BootInfo::from_pvh(&image(b"\0", 500).mem(), BASE);
        assert!(info.problems.contains(&BootProblem::MemmapTruncated(500)));
        // Entries past the end of readable memory stop the copy without a panic.
        assert!(info.memmap.len() <= MAX_MEMMAP);
    }

    #[test]
    fn reserved_region_at_the_top_of_the_address_space_ends_the_walk() {
        let mut info = BootInfo::default();
        let _ = info.memmap.push(MemRegion { addr: 0, size: u64::MAX, kind: 1 });
        let _ = info.memmap.push(MemRegion { addr: u64::MAX, size: 5, kind: 2 });
        assert_eq!(info.table_memory_top(), u64::MAX);
    }

    #[test]
    fn memmap_pointer_that_wraps_is_reported_not_a_panic() {
        // Found by fuzz/boot_info: memmap_paddr near 2^64 made `paddr + i * 24` overflow.
        let mut img = image(b"\0", 0);
        img.0[0x28..0x30].copy_from_slice(&(u64::MAX - 7).to_le_bytes());
        img.0[0x30..0x34].copy_from_slice(&2u32.to_le_bytes());
        let info = BootInfo::from_pvh(&img.mem(), BASE);
        assert!(info.problems.contains(&BootProblem::MemmapUnreadable(u64::MAX - 7)));
        assert!(info.memmap.is_empty());
    }

    #[test]
    fn table_memory_includes_reserved_block_after_ram() {
        let mut info = BootInfo::default();
        for (addr, size, kind) in [(0, 0x9fc00, 1), (0x100000, 0xfed8000, 1), (0xffd8000, 0x28000, 2), (0xb0000000, 0x10000000, 2)] {
            info.memmap.push(MemRegion { addr, size, kind }).unwrap();
        }
        assert_eq!(info.ram_top(), 0xffd8000);
        assert_eq!(info.table_memory_top(), 0x10000000, "ACPI tables in the reserved block after RAM");
    }

    #[test]
    fn non_utf8_cmdline_is_ignored() {
        let info = BootInfo::from_pvh(&image(b"\xff\xfe\0", 0).mem(), BASE);
        assert!(info.problems.contains(&BootProblem::CmdlineNotUtf8));
        assert!(info.cmdline.is_empty());
    }
}
