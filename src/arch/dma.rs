//! DMA-able pages: 4 KiB pages from a static pool in .bss, identity-mapped, so a page's address is the
//! bus address a device uses (no IOMMU translation is set up). Pages are RAII handles: one page
//! ([`DmaPage`]) or a physically contiguous run of them ([`DmaRegion`], for structures larger than a page
//! such as a legacy virtqueue).

use spin::Mutex;

/// Pages in the pool (768 KiB of .bss).
pub const POOL_PAGES: usize = 192;
/// Size of one page.
pub const PAGE_SIZE: usize = 4096;
const WORDS: usize = POOL_PAGES / 64;

#[repr(C, align(4096))]
struct Page([u8; PAGE_SIZE]);

static mut POOL: [Page; POOL_PAGES] = [const { Page([0; PAGE_SIZE]) }; POOL_PAGES];
static USED: Mutex<[u64; WORDS]> = Mutex::new([0; WORDS]);

fn is_used(used: &[u64; WORDS], i: usize) -> bool {
    used[i / 64] & (1 << (i % 64)) != 0
}

/// Marks the first run of `pages` free pages used and returns its first index (first fit).
fn claim(pages: usize) -> Option<usize> {
    if pages == 0 || pages > POOL_PAGES {
        return None;
    }
    crate::arch::cpu::without_interrupts(|| {
        let mut used = USED.lock();
        let first = (0..=POOL_PAGES - pages).find(|&s| (s..s + pages).all(|i| !is_used(&used, i)))?;
        for i in first..first + pages {
            used[i / 64] |= 1 << (i % 64);
        }
        Some(first)
    })
}

fn release(first: usize, pages: usize) {
    crate::arch::cpu::without_interrupts(|| {
        let mut used = USED.lock();
        for i in first..first + pages {
            used[i / 64] &= !(1 << (i % 64));
        }
    })
}

/// Physical (= bus) address of pool page `index`.
fn page_address(index: usize) -> u64 {
    // SAFETY: only the address of the pool element is taken; no reference is created.
    (unsafe { core::ptr::addr_of!(POOL[index]) }) as u64
}

/// A run of pool pages owned by one handle: the accessors every handle shares.
#[derive(Debug)]
struct Run {
    first: usize,
    pages: usize,
}

impl Run {
    fn alloc(pages: usize) -> Option<Run> {
        let run = Run { first: claim(pages)?, pages };
        for off in (0..run.size()).step_by(8) {
            run.write::<u64>(off, 0);
        }
        Some(run)
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
        page_address(self.first) as usize + offset
    }

    fn read<T: Copy>(&self, offset: usize) -> T {
        // SAFETY: in bounds and aligned (checked); this handle owns the pages (contiguous: one array);
        // volatile because a device writes them behind the compiler's back.
        unsafe { core::ptr::read_volatile(self.ptr::<T>(offset) as *const T) }
    }

    fn write<T: Copy>(&self, offset: usize, value: T) {
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile(self.ptr::<T>(offset) as *mut T, value) }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        release(self.first, self.pages);
    }
}

/// A zeroed 4 KiB page a device may read and write.
#[derive(Debug)]
pub struct DmaPage {
    run: Run,
}

impl DmaPage {
    /// Takes a free page, zeroed. `None` when the pool is exhausted.
    pub fn alloc() -> Option<DmaPage> {
        Some(DmaPage { run: Run::alloc(1)? })
    }

    /// Physical (= bus) address.
    pub fn phys(&self) -> u64 {
        page_address(self.run.first)
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
        page_address(self.run.first)
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

    /// The pool is one static: tests that allocate from it run one at a time.
    static POOL_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn serialized() -> std::sync::MutexGuard<'static, ()> {
        POOL_TESTS.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[test]
    fn region_is_contiguous_aligned_zeroed_and_returned_on_drop() {
        let _one_at_a_time = serialized();
        let region = DmaRegion::alloc(3).expect("3 free pages in a fresh pool");
        assert_eq!(region.phys() % PAGE_SIZE as u64, 0);
        assert_eq!(region.size(), 3 * PAGE_SIZE);
        assert!((0..region.size()).step_by(8).all(|off| region.read64(off) == 0), "zeroed");
        // Every byte of the run is addressable through one handle, across page boundaries.
        region.write16(PAGE_SIZE - 2, 0xBEEF);
        region.write32(2 * PAGE_SIZE + 4092, 0x1234_5678);
        assert_eq!(region.read16(PAGE_SIZE - 2), 0xBEEF);
        assert_eq!(region.read8(2 * PAGE_SIZE + 4095), 0x12);
        let (first, pages) = (region.run.first, region.run.pages);
        drop(region);
        let used = USED.lock();
        assert!((first..first + pages).all(|i| !is_used(&used, i)), "pages returned to the pool");
    }

    #[test]
    fn impossible_runs_are_refused() {
        let _one_at_a_time = serialized();
        assert!(DmaRegion::alloc(0).is_none());
        assert!(DmaRegion::alloc(POOL_PAGES + 1).is_none());
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn access_past_the_run_panics() {
        let _one_at_a_time = serialized();
        let region = DmaRegion::alloc(1).expect("a free page");
        region.read16(PAGE_SIZE);
    }
}
