//! What the boot protocol hands over, copied into owned storage before anything can reuse that memory:
//! PVH's `hvm_start_info` (qemu-7.2-facts.md section 7) or the Multiboot2 boot information (GRUB, BIOS or
//! UEFI: Multiboot2 spec 1.0, 3.6).

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

/// EAX at the Multiboot2 entry (checked in boot/pvh.s).
pub const MULTIBOOT2_MAGIC: u32 = 0x36D7_6289;
/// Largest Multiboot2 information read (GRUB's is a few KiB, with an EFI memory map tens of KiB).
pub const MAX_MULTIBOOT2: u32 = 1 << 20;

/// How the firmware was entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BootProtocol {
    /// QEMU's PVH loader (`-kernel`).
    #[default]
    Pvh,
    /// A Multiboot2 loader (GRUB).
    Multiboot2,
}

impl BootProtocol {
    /// Name in the report.
    pub fn name(self) -> &'static str {
        match self {
            BootProtocol::Pvh => "pvh",
            BootProtocol::Multiboot2 => "multiboot2",
        }
    }
}

/// Longest command line held, in bytes: QEMU's PVH command-line buffer (4096 bytes with its NUL; the
/// launcher refuses a longer `--append`). A longer line (a Multiboot2 loader's can be) is a capacity
/// failure of the run, never a silently shorter line: the words past the limit would be lost.
pub const MAX_CMDLINE: usize = 4096;
/// Memory-map entries held, after adjacent entries of the same type are merged: far beyond real platforms
/// (QEMU's E820 has under 10, a UEFI map a few hundred before merging). The map is read before the heap
/// exists, so this is a fixed array; more entries are a capacity failure of the run (a dropped region could
/// put the heap or an ECAM check on wrong ground).
pub const MAX_MEMMAP: usize = 512;
/// Boot problems listed; beyond them [`BootInfo::problems_dropped`] counts the rest.
pub const MAX_BOOT_PROBLEMS: usize = 8;

/// The boot information msifw keeps.
#[derive(Debug, Clone, Default)]
pub struct BootInfo {
    /// Firmware command line (QEMU `-append`).
    pub cmdline: String<MAX_CMDLINE>,
    /// RSDP physical address, if the loader found one.
    pub rsdp: Option<u64>,
    /// E820 memory map.
    pub memmap: Vec<MemRegion, MAX_MEMMAP>,
    /// Problems met while copying (truncations, bad magic), each listed once.
    pub problems: Vec<BootProblem, MAX_BOOT_PROBLEMS>,
    /// Problems beyond [`MAX_BOOT_PROBLEMS`], counted only.
    pub problems_dropped: u32,
    /// The protocol it came by.
    pub protocol: BootProtocol,
    /// The boot loader's name (Multiboot2 tag 2), if it gave one.
    pub loader: String<64>,
}

/// Bad or surprising boot information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootProblem {
    /// `hvm_start_info.magic` was not 0x336EC578.
    BadMagic(u32),
    /// The start_info pointer could not be read.
    Unreadable(u64),
    /// The command line is longer than [`MAX_CMDLINE`] bytes (its length, or `None` when it runs past what
    /// was read): a capacity failure, the words past the limit are lost.
    CmdlineTooLong(Option<u64>),
    /// A Multiboot2 command-line tag without its NUL; the line is taken up to the tag's end.
    CmdlineUnterminated,
    /// The command line was not UTF-8; it was ignored.
    CmdlineNotUtf8,
    /// More memory-map entries (this many given) than [`MAX_MEMMAP`] after merging: a capacity failure,
    /// the rest were dropped.
    MemmapTruncated(u64),
    /// The memory map at this address could not be read (or wrapped past 2^64); entries from there on were dropped.
    MemmapUnreadable(u64),
    /// The Multiboot2 information's total_size is below its 16-byte minimum or above [`MAX_MULTIBOOT2`].
    Multiboot2Size(u32),
    /// A Multiboot2 tag at this offset is shorter than its header or runs past total_size; the rest was
    /// dropped.
    Multiboot2Tag(u32),
}

impl BootProblem {
    /// A limit of msifw's own dropped part of the boot information: the run must fail, naming it.
    pub fn is_capacity(&self) -> bool {
        matches!(self, Self::CmdlineTooLong(_) | Self::MemmapTruncated(_))
    }
}

impl core::fmt::Display for BootProblem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadMagic(m) => write!(f, "hvm_start_info magic {m:#x}, expected {START_INFO_MAGIC:#x}"),
            Self::Unreadable(a) => write!(f, "hvm_start_info at {a:#x} is not readable"),
            Self::CmdlineTooLong(Some(n)) => {
                write!(f, "command line of {n} bytes, longer than the {MAX_CMDLINE} bytes msifw holds (MAX_CMDLINE); cut, words past the limit lost")
            }
            Self::CmdlineTooLong(None) => write!(f, "command line longer than the {MAX_CMDLINE} bytes msifw holds (MAX_CMDLINE); cut, words past the limit lost"),
            Self::CmdlineUnterminated => write!(f, "Multiboot2 command line without its NUL; taken up to the end of its tag"),
            Self::CmdlineNotUtf8 => write!(f, "command line is not UTF-8; ignored"),
            Self::MemmapTruncated(n) => {
                write!(f, "{n} memory map entries, more than the {MAX_MEMMAP} msifw holds after merging (MAX_MEMMAP); the rest dropped")
            }
            Self::MemmapUnreadable(a) => write!(f, "memory map at {a:#x} unreadable; later entries dropped"),
            Self::Multiboot2Size(n) => write!(f, "Multiboot2 information of {n} bytes; at most {MAX_MULTIBOOT2} read"),
            Self::Multiboot2Tag(at) => write!(f, "Multiboot2 tag at offset {at:#x} malformed; later tags dropped"),
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
    /// Lists `p` once, or counts it when the list is full.
    fn report(&mut self, p: BootProblem) {
        if !self.problems.contains(&p) && self.problems.push(p).is_err() {
            self.problems_dropped += 1;
        }
    }

    /// Adds a memory-map entry, merged into the previous one when it is of the same type and directly
    /// follows it. False when the map is full.
    fn add_region(&mut self, r: MemRegion) -> bool {
        if let Some(last) = self.memmap.last_mut() {
            if last.kind == r.kind && last.addr.checked_add(last.size) == Some(r.addr) {
                if let Some(size) = last.size.checked_add(r.size) {
                    last.size = size;
                    return true;
                }
            }
        }
        self.memmap.push(r).is_ok()
    }

    /// Copies `hvm_start_info` at `addr` (layout: include/hw/xen/start_info.h). Never panics.
    pub fn from_pvh(mem: &impl PhysMemory, addr: u64) -> BootInfo {
        let mut info = BootInfo::default();
        let Some(magic) = read_u32(mem, addr, 0) else {
            info.report(BootProblem::Unreadable(addr));
            return info;
        };
        if magic != START_INFO_MAGIC {
            info.report(BootProblem::BadMagic(magic));
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
            for i in 0..u64::from(memmap_entries) {
                let e = i * 24;
                let (Some(a), Some(s), Some(k)) =
                    (read_u64(mem, memmap_paddr, e), read_u64(mem, memmap_paddr, e + 8), read_u32(mem, memmap_paddr, e + 16))
                else {
                    info.report(BootProblem::MemmapUnreadable(memmap_paddr));
                    break;
                };
                if !info.add_region(MemRegion { addr: a, size: s, kind: k }) {
                    info.report(BootProblem::MemmapTruncated(u64::from(memmap_entries)));
                    break;
                }
            }
        }
        info
    }

    /// The first address past the Multiboot2 information at `addr` (its total_size, clamped to
    /// [`MAX_MULTIBOOT2`] and to 4 GiB), from a memory that can read its first 8 bytes.
    pub fn multiboot2_end(mem: &impl PhysMemory, addr: u64) -> u64 {
        let size = read_u32(mem, addr, 0).unwrap_or(8).clamp(8, MAX_MULTIBOOT2);
        addr.saturating_add(size as u64).min(1 << 32)
    }

    /// Copies the Multiboot2 boot information at `addr` (spec 3.6): command line (tag 1), boot loader name
    /// (2), memory map (6), and the RSDP (15, ACPI 2.0+, preferred over 14, ACPI 1.0), whose address is
    /// that of the copy inside the information. Reads stay inside total_size. Never panics.
    pub fn from_multiboot2(mem: &impl PhysMemory, addr: u64) -> BootInfo {
        let mut info = BootInfo { protocol: BootProtocol::Multiboot2, ..BootInfo::default() };
        let Some(total) = read_u32(mem, addr, 0) else {
            info.report(BootProblem::Unreadable(addr));
            return info;
        };
        if !(16..=MAX_MULTIBOOT2).contains(&total) {
            info.report(BootProblem::Multiboot2Size(total));
        }
        let total = total.min(MAX_MULTIBOOT2) as u64;
        let (mut rsdp_v1, mut rsdp_v2) = (None, None);
        // Tags start at offset 8 and are 8-byte aligned (spec 3.6.1).
        let mut at = 8u64;
        while at + 8 <= total {
            let (Some(kind), Some(size)) = (read_u32(mem, addr, at), read_u32(mem, addr, at + 4)) else {
                info.report(BootProblem::Multiboot2Tag(at as u32));
                break;
            };
            let size = size as u64;
            if size < 8 || at + size > total {
                info.report(BootProblem::Multiboot2Tag(at as u32));
                break;
            }
            let body = addr + at + 8;
            let body_len = size - 8;
            match kind {
                0 => break,
                1 => {
                    // Several command-line tags (one is usual) read as one line, a space between.
                    info.copy_cmdline_bounded(mem, body, body_len)
                }
                2 => {
                    // The loader's name is informational: a name cut short or not UTF-8 is kept as far as it
                    // goes and costs no problem entry.
                    let bytes = mem.bytes(body, body_len.min(64) as usize).unwrap_or(&[]);
                    let bytes = &bytes[..bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len())];
                    let name = match core::str::from_utf8(bytes) {
                        Ok(s) => s,
                        Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
                    };
                    for c in name.trim().chars() {
                        if info.loader.push(c).is_err() {
                            break;
                        }
                    }
                }
                6 => info.copy_multiboot2_memmap(mem, body, body_len),
                14 if body_len >= 20 => rsdp_v1 = Some(body),
                15 if body_len >= 36 => rsdp_v2 = Some(body),
                _ => {}
            }
            at = (at + size + 7) & !7;
        }
        info.rsdp = rsdp_v2.or(rsdp_v1);
        info
    }

    /// Multiboot2 memory map tag body: entry_size, entry_version, then entries of {base_addr u64,
    /// length u64, type u32, reserved u32} (spec 3.6.8); the types are E820's.
    fn copy_multiboot2_memmap(&mut self, mem: &impl PhysMemory, body: u64, len: u64) {
        let Some(entry_size) = read_u32(mem, body, 0) else { return };
        let entry_size = entry_size as u64;
        if entry_size < 24 || len < 8 {
            self.report(BootProblem::MemmapUnreadable(body));
            return;
        }
        let entries = (len - 8) / entry_size;
        for i in 0..entries {
            let e = body + 8 + i * entry_size;
            let (Some(a), Some(s), Some(k)) = (read_u64(mem, e, 0), read_u64(mem, e, 8), read_u32(mem, e, 16)) else {
                self.report(BootProblem::MemmapUnreadable(e));
                break;
            };
            if !self.add_region(MemRegion { addr: a, size: s, kind: k }) {
                self.report(BootProblem::MemmapTruncated(entries));
                break;
            }
        }
    }

    /// A NUL-terminated string in the `len` bytes at `addr` (a Multiboot2 tag's body) appended to the
    /// command line, a space before it when the line has words already. Its whole length is known from the
    /// tag, so a line longer than [`MAX_CMDLINE`] is reported with that length.
    fn copy_cmdline_bounded(&mut self, mem: &impl PhysMemory, addr: u64, len: u64) {
        let Some(bytes) = usize::try_from(len).ok().and_then(|n| mem.bytes(addr, n)) else {
            self.report(BootProblem::Unreadable(addr));
            return;
        };
        let text = match bytes.iter().position(|&b| b == 0) {
            Some(n) => &bytes[..n],
            None => {
                self.report(BootProblem::CmdlineUnterminated);
                bytes
            }
        };
        self.append_cmdline(text, true);
    }

    /// Appends `text` (trimmed, a space before it when the line has words already). A line that does not
    /// fit is cut at a character boundary and reported as [`BootProblem::CmdlineTooLong`]; one that is not
    /// UTF-8 is ignored. `whole`: `text` is all of it (its length is the line's).
    fn append_cmdline(&mut self, text: &[u8], whole: bool) {
        let Ok(s) = core::str::from_utf8(text) else {
            self.report(BootProblem::CmdlineNotUtf8);
            return;
        };
        let s = s.trim();
        if s.is_empty() {
            return;
        }
        let sep = usize::from(!self.cmdline.is_empty());
        let needed = self.cmdline.len() + sep + s.len();
        if needed > MAX_CMDLINE {
            self.report(BootProblem::CmdlineTooLong(whole.then_some(needed as u64)));
        }
        if sep == 1 && self.cmdline.push(' ').is_err() {
            return;
        }
        for c in s.chars() {
            if self.cmdline.push(c).is_err() {
                break;
            }
        }
    }

    /// The NUL-terminated PVH command line at `addr`: up to [`MAX_CMDLINE`] bytes, its NUL included (QEMU's
    /// buffer); no NUL within them is a line longer than msifw holds.
    fn copy_cmdline(&mut self, mem: &impl PhysMemory, addr: u64) {
        let mut bytes: Vec<u8, MAX_CMDLINE> = Vec::new();
        let mut terminated = false;
        for i in 0..MAX_CMDLINE as u64 + 1 {
            match addr.checked_add(i).and_then(|a| mem.bytes(a, 1)) {
                Some(&[b]) if b != 0 => {
                    if bytes.push(b).is_err() {
                        break;
                    }
                }
                _ => {
                    terminated = true;
                    break;
                }
            }
        }
        if !terminated {
            self.report(BootProblem::CmdlineTooLong(None));
        }
        // A cut line may end inside a character: taken up to the last whole one.
        let text = match core::str::from_utf8(&bytes) {
            Err(e) if !terminated && e.error_len().is_none() => &bytes[..e.valid_up_to()],
            _ => &bytes[..],
        };
        self.append_cmdline(text, terminated);
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
        // Three adjacent RAM entries are held as one.
        assert_eq!(info.memmap.as_slice(), &[MemRegion { addr: 0, size: 0x300000, kind: 1 }]);
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
        for b in &mut img.0[0x1000..0x1000 + 5000] {
            *b = b'a';
        }
        let info = BootInfo::from_pvh(&img.mem(), BASE);
        assert_eq!(info.problems.as_slice(), &[BootProblem::CmdlineTooLong(None)]);
        assert!(info.problems[0].is_capacity(), "a cut command line fails the run");
        assert_eq!(info.cmdline.len(), MAX_CMDLINE);
    }

    #[test]
    fn a_pvh_command_line_filling_qemus_buffer_is_held_whole() {
        // QEMU's PVH buffer is 4096 bytes with the NUL: 4095 characters, the last word intact.
        for len in [4095, 4096] {
            let mut img = image(b"", 0);
            let line = "x".repeat(len - 6) + " bench";
            img.0[0x1000..0x1000 + len].copy_from_slice(line.as_bytes());
            img.0[0x1000 + len] = 0;
            let info = BootInfo::from_pvh(&img.mem(), BASE);
            assert!(info.problems.is_empty(), "{len}: {:?}", info.problems);
            assert_eq!(info.cmdline.len(), len);
            assert!(info.cmdline.ends_with(" bench"));
        }
    }

    /// A PVH start info whose memory map has these entries, in a buffer big enough for them.
    fn image_with_map(map: &[(u64, u64, u32)]) -> Buf {
        let mut m = vec![0u8; 0x1000 + map.len() * 24];
        m[0..4].copy_from_slice(&START_INFO_MAGIC.to_le_bytes());
        m[0x28..0x30].copy_from_slice(&(BASE + 0x1000).to_le_bytes());
        m[0x30..0x34].copy_from_slice(&(map.len() as u32).to_le_bytes());
        for (i, &(a, s, k)) in map.iter().enumerate() {
            let e = 0x1000 + i * 24;
            m[e..e + 8].copy_from_slice(&a.to_le_bytes());
            m[e + 8..e + 16].copy_from_slice(&s.to_le_bytes());
            m[e + 16..e + 20].copy_from_slice(&k.to_le_bytes());
        }
        Buf(m)
    }

    #[test]
    fn adjacent_memmap_entries_of_one_type_are_merged() {
        // A UEFI-style map: hundreds of adjacent RAM pieces (boot services, conventional, loader) in a row.
        let mut map: std::vec::Vec<(u64, u64, u32)> = (0..600).map(|i| (i * 0x1000, 0x1000, 1)).collect();
        map.push((600 * 0x1000, 0x1000, 2));
        map.push((0x1000_0000, 0x1000, 1));
        let info = BootInfo::from_pvh(&image_with_map(&map).mem(), BASE);
        assert!(info.problems.is_empty(), "{:?}", info.problems);
        assert_eq!(
            info.memmap.as_slice(),
            &[
                MemRegion { addr: 0, size: 600 * 0x1000, kind: 1 },
                MemRegion { addr: 600 * 0x1000, size: 0x1000, kind: 2 },
                MemRegion { addr: 0x1000_0000, size: 0x1000, kind: 1 }
            ]
        );
    }

    #[test]
    fn a_memory_map_beyond_the_limit_fails_the_run_naming_it() {
        // Alternating types cannot be merged: 300 entries are held whole, 600 overflow.
        let map = |n: u64| (0..n).map(|i| (i * 0x1000, 0x1000, 1 + (i % 2) as u32)).collect::<std::vec::Vec<_>>();
        let info = BootInfo::from_pvh(&image_with_map(&map(300)).mem(), BASE);
        assert!(info.problems.is_empty());
        assert_eq!(info.memmap.len(), 300);
        let info = BootInfo::from_pvh(&image_with_map(&map(600)).mem(), BASE);
        assert_eq!(info.problems.as_slice(), &[BootProblem::MemmapTruncated(600)]);
        assert!(info.problems[0].is_capacity());
        assert!(info.problems[0].to_string().contains("MAX_MEMMAP"));
        assert_eq!(info.memmap.len(), MAX_MEMMAP);
        // Entries past the end of readable memory stop the copy without a panic.
        let info = BootInfo::from_pvh(&image(b"\0", 500).mem(), BASE);
        assert!(info.problems.contains(&BootProblem::MemmapUnreadable(BASE + 0x2000)));
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

    /// A Multiboot2 information block at BASE with the given tags (type, body), 8-byte aligned, end tag
    /// appended.
    fn mb2(tags: &[(u32, std::vec::Vec<u8>)]) -> Buf {
        let mut m = vec![0u8; 8];
        for (kind, body) in tags.iter().chain(std::iter::once(&(0u32, std::vec::Vec::new()))) {
            while !m.len().is_multiple_of(8) {
                m.push(0);
            }
            m.extend_from_slice(&kind.to_le_bytes());
            m.extend_from_slice(&(8 + body.len() as u32).to_le_bytes());
            m.extend_from_slice(body);
        }
        let total = m.len() as u32;
        m[0..4].copy_from_slice(&total.to_le_bytes());
        Buf(m)
    }

    fn mmap_body(entries: &[(u64, u64, u32)]) -> std::vec::Vec<u8> {
        let mut b = std::vec::Vec::new();
        b.extend_from_slice(&24u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        for &(a, s, k) in entries {
            b.extend_from_slice(&a.to_le_bytes());
            b.extend_from_slice(&s.to_le_bytes());
            b.extend_from_slice(&k.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
        }
        b
    }

    #[test]
    fn multiboot2_cmdline_loader_memmap_and_rsdp() {
        let mut rsdp_v1 = b"RSD PTR ".to_vec();
        rsdp_v1.resize(20, 0);
        let mut rsdp_v2 = b"RSD PTR ".to_vec();
        rsdp_v2.resize(36, 0);
        let img = mb2(&[
            (1, b" irq.00:02.0=msi  rounds=3\0".to_vec()),
            (2, b"GRUB 2.06-13+deb12u2\0".to_vec()),
            (14, rsdp_v1),
            (6, mmap_body(&[(0, 0x9FC00, 1), (0x100000, 0x7F00000, 1), (0xFEFFC000, 0x4000, 2)])),
            (15, rsdp_v2),
            (99, vec![1, 2, 3]),
        ]);
        let info = BootInfo::from_multiboot2(&img.mem(), BASE);
        assert!(info.problems.is_empty(), "{:?}", info.problems);
        assert_eq!(info.protocol, BootProtocol::Multiboot2);
        assert_eq!(info.cmdline.as_str(), "irq.00:02.0=msi  rounds=3");
        assert_eq!(info.loader.as_str(), "GRUB 2.06-13+deb12u2");
        assert_eq!(info.memmap.len(), 3);
        assert_eq!(info.memmap[1], MemRegion { addr: 0x100000, size: 0x7F00000, kind: 1 });
        assert_eq!(info.ram_top(), 0x8000000);
        // The ACPI 2.0 copy wins over the 1.0 one; both live inside the information.
        let rsdp = info.rsdp.unwrap();
        assert_eq!(&img.0[(rsdp - BASE) as usize..][..8], b"RSD PTR ");
        assert_eq!(img.0[(rsdp - BASE) as usize - 8], 15);
        assert_eq!(BootInfo::multiboot2_end(&img.mem(), BASE), BASE + img.0.len() as u64);
    }

    #[test]
    fn multiboot2_only_acpi_1_and_no_cmdline() {
        let mut rsdp_v1 = b"RSD PTR ".to_vec();
        rsdp_v1.resize(20, 0);
        let img = mb2(&[(14, rsdp_v1)]);
        let info = BootInfo::from_multiboot2(&img.mem(), BASE);
        assert!(info.problems.is_empty());
        assert_eq!(img.0[(info.rsdp.unwrap() - BASE) as usize - 8], 14);
        assert!(info.cmdline.is_empty() && info.memmap.is_empty() && info.loader.is_empty());
    }

    #[test]
    fn multiboot2_bad_sizes_are_reported_not_followed() {
        // A tag claiming to run past total_size: reported, nothing after it read.
        let mut img = mb2(&[(1, b"nomsi\0".to_vec()), (1, b"x\0".to_vec())]);
        img.0[8 + 16 + 4..8 + 16 + 8].copy_from_slice(&0x1000u32.to_le_bytes());
        let info = BootInfo::from_multiboot2(&img.mem(), BASE);
        assert_eq!(info.cmdline.as_str(), "nomsi");
        assert_eq!(info.problems.as_slice(), &[BootProblem::Multiboot2Tag(24)]);
        // A tag shorter than its own header.
        let mut img = mb2(&[(1, b"a\0".to_vec())]);
        img.0[12..16].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(BootInfo::from_multiboot2(&img.mem(), BASE).problems.as_slice(), &[BootProblem::Multiboot2Tag(8)]);
        // total_size out of range: reported and clamped; an unreadable address.
        let mut img = mb2(&[]);
        img.0[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let info = BootInfo::from_multiboot2(&img.mem(), BASE);
        assert_eq!(info.problems[0], BootProblem::Multiboot2Size(u32::MAX));
        assert_eq!(BootInfo::multiboot2_end(&img.mem(), BASE), BASE + MAX_MULTIBOOT2 as u64);
        assert_eq!(BootInfo::from_multiboot2(&img.mem(), 8).problems.as_slice(), &[BootProblem::Unreadable(8)]);
        // A memory map with a bad entry size, and a command line without its NUL.
        let mut body = mmap_body(&[(0, 0x1000, 1)]);
        body[0..4].copy_from_slice(&8u32.to_le_bytes());
        let img = mb2(&[(6, body), (1, b"abc".to_vec())]);
        let info = BootInfo::from_multiboot2(&img.mem(), BASE);
        assert!(info.memmap.is_empty());
        assert!(matches!(info.problems[0], BootProblem::MemmapUnreadable(_)));
        assert_eq!(info.problems[1], BootProblem::CmdlineUnterminated);
        assert!(!info.problems[1].is_capacity());
        assert_eq!(info.cmdline.as_str(), "abc");
    }

    #[test]
    fn a_multiboot2_command_line_longer_than_held_is_a_capacity_failure_with_its_length() {
        let mut long = b"nomsi ".repeat(1000);
        long.push(0);
        let info = BootInfo::from_multiboot2(&mb2(&[(1, long)]).mem(), BASE);
        assert_eq!(info.problems.as_slice(), &[BootProblem::CmdlineTooLong(Some(5999))]);
        assert!(info.problems[0].is_capacity());
        assert_eq!(info.cmdline.len(), MAX_CMDLINE);
        // Two tags are one line, a space between; together within the limit, nothing is reported.
        let info = BootInfo::from_multiboot2(&mb2(&[(1, b"nomsi\0".to_vec()), (1, b" bench \0".to_vec())]).mem(), BASE);
        assert!(info.problems.is_empty());
        assert_eq!(info.cmdline.as_str(), "nomsi bench");
    }

}
