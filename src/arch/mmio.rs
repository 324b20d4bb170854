//! Bounds-checked MMIO windows for device BARs and tables.

/// A window of memory-mapped device registers: volatile accesses, bounds-checked against its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioWindow {
    base: u64,
    len: u64,
    /// Routing ID of the function whose BAR this is, for [`crate::accounting`] (None: not a function's).
    owner: Option<u16>,
}

impl MmioWindow {
    /// Creates a window.
    ///
    /// # Safety
    /// `base..base + len` must be identity-mapped device memory (uncached) that no Rust object aliases,
    /// and the caller must own the device behind it for as long as the window is used.
    pub const unsafe fn new(base: u64, len: u64) -> Self {
        Self { base, len, owner: None }
    }

    /// The same window, its accesses counted for the function with routing ID `id`.
    pub const fn owned_by(self, id: u16) -> Self {
        Self { owner: Some(id), ..self }
    }

    /// Physical (= virtual) base address.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A sub-window `offset..offset + len`, or `None` if it does not fit.
    pub fn sub(&self, offset: u64, len: u64) -> Option<MmioWindow> {
        let end = offset.checked_add(len)?;
        (end <= self.len).then_some(MmioWindow { base: self.base + offset, len, owner: self.owner })
    }

    fn count(&self, kind: crate::accounting::Kind) {
        if let Some(id) = self.owner {
            crate::accounting::count(id, kind);
        }
    }

    fn check(&self, offset: u64, size: u64) -> u64 {
        assert!(
            offset.is_multiple_of(size) && offset.checked_add(size).is_some_and(|end| end <= self.len),
            "MMIO access at {offset:#x} (size {size}) outside window {:#x}+{:#x}",
            self.base,
            self.len
        );
        self.base + offset
    }

    /// 32-bit volatile read.
    pub fn read32(&self, offset: u64) -> u32 {
        let addr = self.check(offset, 4);
        self.count(crate::accounting::Kind::MmioRead);
        // SAFETY: in bounds and aligned (checked); `new`'s contract makes the window valid device memory.
        unsafe { core::ptr::read_volatile(addr as *const u32) }
    }

    /// 32-bit volatile write.
    pub fn write32(&self, offset: u64, value: u32) {
        let addr = self.check(offset, 4);
        self.count(crate::accounting::Kind::MmioWrite);
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
    }

    /// 64-bit volatile read.
    pub fn read64(&self, offset: u64) -> u64 {
        let addr = self.check(offset, 8);
        self.count(crate::accounting::Kind::MmioRead);
        // SAFETY: as in `read32`.
        unsafe { core::ptr::read_volatile(addr as *const u64) }
    }

    /// 64-bit volatile write.
    pub fn write64(&self, offset: u64, value: u64) {
        let addr = self.check(offset, 8);
        self.count(crate::accounting::Kind::MmioWrite);
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile(addr as *mut u64, value) }
    }

    /// 8-bit volatile read (registers the spec gives a byte, such as virtio's `device_status`).
    pub fn read8(&self, offset: u64) -> u8 {
        let addr = self.check(offset, 1);
        self.count(crate::accounting::Kind::MmioRead);
        // SAFETY: as in `read32`.
        unsafe { core::ptr::read_volatile(addr as *const u8) }
    }

    /// 8-bit volatile write.
    pub fn write8(&self, offset: u64, value: u8) {
        let addr = self.check(offset, 1);
        self.count(crate::accounting::Kind::MmioWrite);
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile(addr as *mut u8, value) }
    }

    /// 16-bit volatile read.
    pub fn read16(&self, offset: u64) -> u16 {
        let addr = self.check(offset, 2);
        self.count(crate::accounting::Kind::MmioRead);
        // SAFETY: as in `read32`.
        unsafe { core::ptr::read_volatile(addr as *const u16) }
    }

    /// 16-bit volatile write.
    pub fn write16(&self, offset: u64, value: u16) {
        let addr = self.check(offset, 2);
        self.count(crate::accounting::Kind::MmioWrite);
        // SAFETY: as in `read32`.
        unsafe { core::ptr::write_volatile(addr as *mut u16, value) }
    }
}
