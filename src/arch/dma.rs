//! DMA-able pages: 4 KiB-aligned runs from the heap (arch::heap: RAM from the boot memory map, below
//! 3 GiB, identity-mapped), so a page's address is the bus address a device uses (no IOMMU translation is
//! set up). As many as the platform's RAM holds (40 nvme controllers take 440 pages, 1.7 MiB; the old
//! .bss pool had 192). Pages are RAII handles:
//! one page ([`DmaPage`]) or a physically contiguous run of them ([`DmaRegion`], for structures larger than
//! a page such as a legacy virtqueue).

use core::alloc::Layout;

/// Size of one page.
pub const PAGE_SIZE: usize = 4096;

/// A run of heap pages owned by one handle: the accessors every handle shares.
#[derive(Debug)]
struct Run {
    /// Address of the first byte (identity-mapped: physical = virtual).
    base: usize,
    pages: usize,
}

impl Run {
    fn layout(pages: usize) -> Option<Layout> {
        Layout::from_size_align(pages.checked_mul(PAGE_SIZE)?, PAGE_SIZE).ok()
    }

    /// `pages` zeroed pages, or None when the heap cannot give them (or `pages` is 0).
    fn alloc(pages: usize) -> Option<Run> {
        if pages == 0 {
            return None;
        }
        let layout = Self::layout(pages)?;
        if !crate::arch::heap::can_spare(layout.size() + layout.align()) {
            return None;
        }
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            return None;
        }
        Some(Run { base: ptr as usize, pages })
    }

    fn size(&self) -> usize {
        self.pages * PAGE_SIZE
    }

    fn ptr<T>(&self, offset: usize) -> usize {
        let size = core::mem::size_of::<T>();
        assert!(
            offset.is_multiple_of(size) && offset + size <= self.size(),
            "DMA access at {offset:#x} (size {size}) out of bounds"
        );
        self.base + offset
    }

    fn read<T: Copy>(&self, offset: usize) -> T {
        // SAFETY: in bounds and aligned (checked); this handle owns the block; volatile because a device
        // writes it behind the compiler's back.
        unsafe { core::ptr::read_volatile(self.ptr::<T>(offset) as *const T) }
    }

    fn write<T: Copy>(&self, offset: usize, value: T) {
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile(self.ptr::<T>(offset) as *mut T, value) }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(layout) = Self::layout(self.pages) {
            // SAFETY: allocated in `alloc` with this same layout, and freed once, here.
            unsafe { alloc::alloc::dealloc(self.base as *mut u8, layout) }
        }
    }
}

/// A zeroed 4 KiB page a device may read and write.
#[derive(Debug)]
pub struct DmaPage {
    run: Run,
}

impl DmaPage {
    /// Takes a free page, zeroed. `None` when the heap is exhausted.
    pub fn alloc() -> Option<DmaPage> {
        Some(DmaPage { run: Run::alloc(1)? })
    }

    /// Physical (= bus) address.
    pub fn phys(&self) -> u64 {
        self.run.base as u64
    }

    /// Volatile 32-bit read (the device may have written it).
    pub fn read32(&self, offset: usize) -> u32 {
        self.run.read(offset)
    }

    /// Volatile 32-bit write.
    pub fn write32(&self, offset: usize, value: u32) {
        self.run.write(offset, value)
    }

    /// Volatile 64-bit read.
    pub fn read64(&self, offset: usize) -> u64 {
        self.run.read(offset)
    }

    /// Volatile 64-bit write.
    pub fn write64(&self, offset: usize, value: u64) {
        self.run.write(offset, value)
    }
}

/// Zeroed, physically contiguous 4 KiB pages a device may read and write, for structures that span
/// pages (a legacy virtqueue's used ring sits a page boundary after its descriptors).
#[derive(Debug)]
pub struct DmaRegion {
    run: Run,
}

impl DmaRegion {
    /// Takes `pages` contiguous free pages, zeroed. `None` when no such run is free (or `pages` is 0).
    pub fn alloc(pages: usize) -> Option<DmaRegion> {
        Some(DmaRegion { run: Run::alloc(pages)? })
    }

    /// Physical (= bus) address of the first byte; 4 KiB-aligned.
    pub fn phys(&self) -> u64 {
        self.run.base as u64
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.run.size()
    }

    /// Volatile 8-bit read.
    pub fn read8(&self, offset: usize) -> u8 {
        self.run.read(offset)
    }

    /// Volatile 8-bit write.
    pub fn write8(&self, offset: usize, value: u8) {
        self.run.write(offset, value)
    }

    /// Volatile 16-bit read.
    pub fn read16(&self, offset: usize) -> u16 {
        self.run.read(offset)
    }

    /// Volatile 16-bit write.
    pub fn write16(&self, offset: usize, value: u16) {
        self.run.write(offset, value)
    }

    /// Volatile 32-bit read.
    pub fn read32(&self, offset: usize) -> u32 {
        self.run.read(offset)
    }

    /// Volatile 32-bit write.
    pub fn write32(&self, offset: usize, value: u32) {
        self.run.write(offset, value)
    }

    /// Volatile 64-bit read.
    pub fn read64(&self, offset: usize) -> u64 {
        self.run.read(offset)
    }

    /// Volatile 64-bit write.
    pub fn write64(&self, offset: usize, value: u64) {
        self.run.write(offset, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_is_contiguous_aligned_zeroed() {
        let region = DmaRegion::alloc(3).expect("3 pages");
        assert_eq!(region.phys() % PAGE_SIZE as u64, 0);
        assert_eq!(region.size(), 3 * PAGE_SIZE);
        assert!((0..region.size()).step_by(8).all(|off| region.read64(off) == 0), "zeroed");
        // Every byte of the run is addressable through one handle, across page boundaries.
        region.write16(PAGE_SIZE - 2, 0xBEEF);
        region.write32(2 * PAGE_SIZE + 4092, 0x1234_5678);
        assert_eq!(region.read16(PAGE_SIZE - 2), 0xBEEF);
        assert_eq!(region.read8(2 * PAGE_SIZE + 4095), 0x12);
    }

    #[test]
    fn more_pages_than_the_old_static_pool_are_given() {
        // The .bss pool held 192 pages; 40 nvme controllers with 5 queue pairs need 440.
        let pages: std::vec::Vec<DmaPage> = (0..440).map(|_| DmaPage::alloc().expect("a page")).collect();
        assert!(pages.iter().all(|p| p.phys() % PAGE_SIZE as u64 == 0));
    }

    #[test]
    fn impossible_runs_are_refused() {
        assert!(DmaRegion::alloc(0).is_none());
        assert!(DmaRegion::alloc(usize::MAX / 2).is_none());
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn access_past_the_run_panics() {
        let region = DmaRegion::alloc(1).expect("a free page");
        region.read16(PAGE_SIZE);
    }
}
