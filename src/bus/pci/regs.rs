//! Configuration-space register offsets and bits (PCI Local Bus 3.0 ch. 6, PCI Express Base 4.0 ch. 7).

/// Vendor ID (16 bits).
pub const VENDOR_ID: u16 = 0x00;
/// Device ID (16 bits).
pub const DEVICE_ID: u16 = 0x02;
/// Command register (16 bits).
pub const COMMAND: u16 = 0x04;
/// Status register (16 bits).
pub const STATUS: u16 = 0x06;
/// Revision ID (8) + class code (24).
pub const CLASS_REVISION: u16 = 0x08;
/// Header type (8 bits): bits 6:0 layout, bit 7 multifunction.
pub const HEADER_TYPE: u16 = 0x0E;
/// First BAR.
pub const BAR0: u16 = 0x10;
/// Type 1: primary, secondary, subordinate bus numbers.
pub const PRIMARY_BUS: u16 = 0x18;
/// Type 1: secondary bus number.
pub const SECONDARY_BUS: u16 = 0x19;
/// Type 1: subordinate bus number.
pub const SUBORDINATE_BUS: u16 = 0x1A;
/// Capabilities pointer (8 bits), valid when Status.CapList is set.
pub const CAP_PTR: u16 = 0x34;
/// Interrupt line (8 bits): what the boot firmware wrote, an ISA IRQ on QEMU.
pub const INTERRUPT_LINE: u16 = 0x3C;
/// Interrupt pin (8 bits): 0 none, 1-4 INTA-INTD.
pub const INTERRUPT_PIN: u16 = 0x3D;
/// Type 1: bridge control (16 bits).
pub const BRIDGE_CONTROL: u16 = 0x3E;

/// Command bits (PCI 3.0 6.2.2).
pub mod command {
    /// I/O space decoding.
    pub const IO: u16 = 1 << 0;
    /// Memory space decoding.
    pub const MEMORY: u16 = 1 << 1;
    /// Bus master: the function may issue memory writes, including MSI messages.
    pub const BUS_MASTER: u16 = 1 << 2;
    /// SERR# enable.
    pub const SERR: u16 = 1 << 8;
    /// Interrupt Disable: the function must not assert INTx.
    pub const INTX_DISABLE: u16 = 1 << 10;
}

/// Status bits (PCI 3.0 6.2.3).
pub mod status {
    /// Interrupt Status: INTx asserted by this function.
    pub const INTERRUPT: u16 = 1 << 3;
    /// A capability list is present.
    pub const CAP_LIST: u16 = 1 << 4;
}
