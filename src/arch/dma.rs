//! DMA-able pages: 4 KiB pages from a static pool in .bss, identity-mapped, so a page's address is the
//! bus address a device uses (no IOMMU translation is set up). Pages are RAII handles.

use spin::Mutex;

/// Pages in the pool (768 KiB of .bss).
pub const POOL_PAGES: usize = 192;
const WORDS: usize = POOL_PAGES / 64;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

static mut POOL: [Page; POOL_PAGES] = [const { Page([0; 4096]) }; POOL_PAGES];
static USED: Mutex<[u64; WORDS]> = Mutex::new([0; WORDS]);

/// A zeroed 4 KiB page a device may read and write.
#[derive(Debug)]
pub struct DmaPage {
    index: usize,
}

impl DmaPage {
    /// Takes a free page, zeroed. `None` when the pool is exhausted.
    pub fn alloc() -> Option<DmaPage> {
        let index = crate::arch::cpu::without_interrupts(|| {
            let mut used = USED.lock();
            let index = (0..POOL_PAGES).find(|i| used[i / 64] & (1 << (i % 64)) == 0)?;
            used[index / 64] |= 1 << (index % 64);
            Some(index)
        })?;
        let page = DmaPage { index };
        for off in (0..4096).step_by(8) {
            page.write64(off, 0);
        }
        Some(page)
    }

    /// Physical (= bus) address.
    pub fn phys(&self) -> u64 {
        // SAFETY: only the address of the pool element is taken; no reference is created.
        (unsafe { core::ptr::addr_of!(POOL[self.index]) }) as u64
    }

    fn ptr(&self, offset: usize, size: usize) -> usize {
        assert!(offset.is_multiple_of(size) && offset + size <= 4096, "DMA page access at {offset:#x} out of bounds");
        self.phys() as usize + offset
    }

    /// Volatile 32-bit read (the device may have written it).
    pub fn read32(&self, offset: usize) -> u32 {
        // SAFETY: in bounds and aligned (checked); this handle owns the page; volatile because a device
        // writes it behind the compiler's back.
        unsafe { core::ptr::read_volatile(self.ptr(offset, 4) as *const u32) }
    }

    /// Volatile 32-bit write.
    pub fn write32(&self, offset: usize, value: u32) {
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile(self.ptr(offset, 4) as *mut u32, value) }
    }

    /// Volatile 64-bit read.
    pub fn read64(&self, offset: usize) -> u64 {
        // SAFETY: as in `read32`.
        unsafe { core::ptr::read_volatile(self.ptr(offset, 8) as *const u64) }
    }

    /// Volatile 64-bit write.
    pub fn write64(&self, offset: usize, value: u64) {
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile(self.ptr(offset, 8) as *mut u64, value) }
    }
}

impl Drop for DmaPage {
    fn drop(&mut self) {
        crate::arch::cpu::without_interrupts(|| USED.lock()[self.index / 64] &= !(1 << (self.index % 64)));
    }
}
