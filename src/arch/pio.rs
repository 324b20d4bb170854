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

/// Reads `width` (1, 2 or 4) bytes at I/O port `port` for the platform firmware's AML (an ACPI
/// SystemIO OperationRegion field, ACPI 6.5 §5.5.2.4.1), as Linux's interpreter does; `None` for another
/// width or a port range past 0xFFFF. Only reads: the AML's writes never reach the hardware
/// (`app/aml_regions.rs`).
pub fn read_for_aml(port: u16, width: u8) -> Option<u32> {
    port.checked_add(u16::from(width).checked_sub(1)?)?;
    // SAFETY: an `in` instruction reads a device register and touches no memory this program owns; the
    // port is one the platform firmware's own AML reads (the side effect a read can have on a device is
    // the one the firmware's author accepted, and Linux's interpreter makes the same read).
    unsafe {
        match width {
            1 => Some(u32::from(Port::<u8>::new(port).read())),
            2 => Some(u32::from(Port::<u16>::new(port).read())),
            4 => Some(Port::<u32>::new(port).read()),
            _ => None,
        }
    }
}
