//! The firmware's heap: the largest RAM region the boot memory map gives (E820 type 1) between 1 MiB and
//! 3 GiB, less the firmware image and the boot information, managed by `linked_list_allocator` (first
//! fit, freed blocks merged). What the platform decides (functions, driven devices, INTx sharers, the
//! access trace, DMA pages) is sized from it instead of fixed capacities in .bss.
//!
//! Below 3 GiB the boot tables (boot/pvh.s) identity-map RAM write-back cached, so a heap address is the
//! physical address, and the bus address a device uses (no IOMMU is set up): DMA pages come from here too.
//! Allocation runs with interrupts off, so a handler may allocate (the trace grows from INTx handlers).
//! A request the heap cannot meet ends in `handle_alloc_error`, which panics with the size: the run
//! fails loudly; containers that can go on without (the trace) use `try_reserve` and report it.

use crate::boot::MemRegion;
use core::ops::Range;

/// E820 type of usable RAM.
const RAM: u32 = 1;
/// Lowest address used: below 1 MiB lie the real-mode IVT (a negative control's sentinel at 0), the
/// PVH start info, the EBDA and the BIOS.
pub const FLOOR: u64 = 1 << 20;
/// First address not used: from 3 GiB up the boot tables map uncached (the PCI hole).
pub const CEILING: u64 = 3 << 30;

/// The largest 4 KiB-aligned span of usable RAM in `[floor, ceiling)` that no other memory-map region
/// (reserved, ACPI, NVS, unusable: an overlap is bad input and loses) and no `reserved` range touches.
pub fn largest_free(memmap: &[MemRegion], reserved: &[Range<u64>], floor: u64, ceiling: u64) -> Option<Range<u64>> {
    let blockers = || {
        memmap
            .iter()
            .filter(|r| r.kind != RAM)
            .map(|r| r.addr..r.addr.saturating_add(r.size))
            .chain(reserved.iter().cloned())
            .filter(|b| b.start < b.end)
    };
    let mut best: Option<Range<u64>> = None;
    for r in memmap.iter().filter(|r| r.kind == RAM) {
        let lo = r.addr.max(floor);
        let hi = r.addr.saturating_add(r.size).min(ceiling);
        if lo >= hi {
            continue;
        }
        // A free span starts at the region's start or where a blocker ends, and runs to the next blocker.
        for start in core::iter::once(lo).chain(blockers().map(|b| b.end).filter(|&e| e > lo && e < hi)) {
            if blockers().any(|b| b.start <= start && start < b.end) {
                continue;
            }
            let end = blockers().map(|b| b.start).filter(|&s| s > start).fold(hi, u64::min);
            let Some(start) = start.checked_next_multiple_of(4096) else { continue };
            let end = end & !4095;
            if start < end && best.as_ref().is_none_or(|b| end - start > b.end - b.start) {
                best = Some(start..end);
            }
        }
    }
    best
}

#[cfg(target_os = "none")]
mod global {
    use core::alloc::{GlobalAlloc, Layout};
    use core::ptr::NonNull;
    use linked_list_allocator::Heap;

    struct Locked(spin::Mutex<Heap>);

    // SAFETY: every call takes the lock with interrupts off (single CPU: no handler can interleave), and
    // `Heap` hands out each block once until it is deallocated with the same layout.
    unsafe impl GlobalAlloc for Locked {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            crate::arch::cpu::without_interrupts(|| self.0.lock().allocate_first_fit(layout).map_or(core::ptr::null_mut(), |p| p.as_ptr()))
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            if let Some(p) = NonNull::new(ptr) {
                // SAFETY: the caller (GlobalAlloc's contract) passes a block this allocator gave with `layout`.
                crate::arch::cpu::without_interrupts(|| unsafe { self.0.lock().deallocate(p, layout) })
            }
        }
    }

    #[global_allocator]
    static HEAP: Locked = Locked(spin::Mutex::new(Heap::empty()));

    /// Hands `region` to the heap (once per boot; a restart in place boots afresh).
    ///
    /// # Safety
    /// `region` must be RAM that is identity-mapped writable, used by nothing else for the rest of the run
    /// (not the image, not the boot information still to be read), and nothing may have been allocated yet.
    pub unsafe fn init(region: core::ops::Range<u64>) {
        let size = (region.end - region.start) as usize;
        let bottom = core::ptr::with_exposed_provenance_mut::<u8>(region.start as usize);
        // SAFETY: the caller guarantees the region is unused writable RAM, mapped at its physical address.
        crate::arch::cpu::without_interrupts(|| unsafe { HEAP.0.lock().init(bottom, size) });
    }

    /// Heap size and bytes in use.
    pub fn usage() -> (usize, usize) {
        crate::arch::cpu::without_interrupts(|| {
            let h = HEAP.0.lock();
            (h.size(), h.used())
        })
    }
}

#[cfg(target_os = "none")]
pub use global::{init, usage};

/// Heap kept free for the run's own bookkeeping (lists, records, strings): a container that could take
/// the heap whole (DMA pages for one more driver, a larger trace) stops short of it and reports its limit,
/// so running out is a named capacity problem and not a failed allocation elsewhere.
pub const RESERVE: usize = 512 << 10;

/// Whether `bytes` more can be taken while [`RESERVE`] stays free (always on the host).
pub fn can_spare(bytes: usize) -> bool {
    #[cfg(target_os = "none")]
    {
        let (size, used) = usage();
        size.saturating_sub(used) >= bytes.saturating_add(RESERVE)
    }
    #[cfg(not(target_os = "none"))]
    {
        let _ = bytes;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ram(addr: u64, size: u64) -> MemRegion {
        MemRegion { addr, size, kind: RAM }
    }

    fn reserved(addr: u64, size: u64) -> MemRegion {
        MemRegion { addr, size, kind: 2 }
    }

    /// QEMU q35 with 128 MiB under SeaBIOS/PVH: low RAM, the BIOS area, RAM from 1 MiB less SeaBIOS's
    /// top, the ECAM window; the image at 1 MiB.
    #[test]
    fn q35_map_gives_ram_above_the_image() {
        let map = [
            ram(0, 0x9fc00),
            reserved(0x9fc00, 0x400),
            reserved(0xf0000, 0x10000),
            ram(0x100000, 0x7fe0000 - 0x100000),
            reserved(0x7fe0000, 0x20000),
            reserved(0xb0000000, 0x10000000),
            reserved(0xfffc0000, 0x40000),
        ];
        let image = 0x100000..0x4a3456;
        let r = largest_free(&map, &[image], FLOOR, CEILING).unwrap();
        assert_eq!(r, 0x4a4000..0x7fe0000);
    }

    #[test]
    fn blockers_split_regions_and_the_largest_piece_wins() {
        let map = [ram(0x100000, 0x1000_0000), reserved(0x800_0000, 0x1000)];
        // The reserved page inside RAM (bad input) and a boot-information range both cut the region.
        let r = largest_free(&map, &[0x100000..0x200000, 0x900_0000..0x900_0100], FLOOR, CEILING).unwrap();
        assert_eq!(r, 0x200000..0x800_0000);
        // Only below the ceiling and above the floor.
        let r = largest_free(&[ram(0, 0x2_0000_0000)], &[], FLOOR, CEILING).unwrap();
        assert_eq!(r, FLOOR..CEILING);
    }

    #[test]
    fn no_usable_ram_gives_none() {
        assert_eq!(largest_free(&[], &[], FLOOR, CEILING), None);
        assert_eq!(largest_free(&[ram(0, 0x9f000)], &[], FLOOR, CEILING), None);
        let everything = [0..u64::MAX, 0..0];
        assert_eq!(largest_free(&[ram(0x100000, 0x1000)], &everything, FLOOR, CEILING), None);
        // Sizes near 2^64 saturate instead of wrapping.
        let r = largest_free(&[ram(u64::MAX - 10, 100), ram(0x200000, 0x3000)], &[], FLOOR, CEILING);
        assert_eq!(r, Some(0x200000..0x203000));
    }
}
