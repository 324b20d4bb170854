//! Bounds-checked I/O-port windows for device I/O BARs (legacy virtio, for instance).

use x86_64::instructions::port::Port;

/// A window of I/O ports `base..base + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoWindow {
    base: u16,
    len: u16,
}

impl IoWindow {
    /// Creates a window.
    ///
    /// # Safety
    /// `base..base + len` must be an I/O BAR of a function the caller owns (decoding enabled), so that no
    /// other device or firmware component answers these ports.
    pub const unsafe fn new(base: u16, len: u16) -> Self {
        IoWindow { base, len }
    }

    /// Length in ports.
    pub fn len(&self) -> u16 {
        self.len
    }

    /// Whether the window is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn port(&self, offset: u16, size: u16) -> u16 {
        assert!(
            offset.is_multiple_of(size) && offset.checked_add(size).is_some_and(|end| end <= self.len),
            "I/O access at {offset:#x} (size {size}) outside window {:#x}+{:#x}",
            self.base,
            self.len
        );
        self.base + offset
    }

    /// 8-bit read.
    pub fn read8(&self, offset: u16) -> u8 {
        let port = self.port(offset, 1);
        // SAFETY: in bounds (checked); `new`'s contract makes these the owned function's ports.
        unsafe { Port::<u8>::new(port).read() }
    }

    /// 8-bit write.
    pub fn write8(&self, offset: u16, value: u8) {
        let port = self.port(offset, 1);
        // SAFETY: as in `read8`.
        unsafe { Port::<u8>::new(port).write(value) }
    }

    /// 16-bit read.
    pub fn read16(&self, offset: u16) -> u16 {
        let port = self.port(offset, 2);
        // SAFETY: as in `read8`.
        unsafe { Port::<u16>::new(port).read() }
    }

    /// 16-bit write.
    pub fn write16(&self, offset: u16, value: u16) {
        let port = self.port(offset, 2);
        // SAFETY: as in `read8`.
        unsafe { Port::<u16>::new(port).write(value) }
    }

    /// 32-bit read.
    pub fn read32(&self, offset: u16) -> u32 {
        let port = self.port(offset, 4);
        // SAFETY: as in `read8`.
        unsafe { Port::<u32>::new(port).read() }
    }

    /// 32-bit write.
    pub fn write32(&self, offset: u16, value: u32) {
        let port = self.port(offset, 4);
        // SAFETY: as in `read8`.
        unsafe { Port::<u32>::new(port).write(value) }
    }
}
