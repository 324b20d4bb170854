//! Configuration-space access: ECAM (PCIe memory-mapped, 4 KiB per function) or the legacy 0xCF8/0xCFC
//! ports (256 bytes per function). With `bar.rs`, the only module of the bus layer with `unsafe`.

use super::trace::{self, Access};
use crate::accounting::Kind;
use core::fmt;
use x86_64::instructions::port::{Port, PortRead, PortWrite};

/// Bus/device/function (segment 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    /// Bus number.
    pub bus: u8,
    /// Device (slot), 0-31.
    pub dev: u8,
    /// Function, 0-7.
    pub func: u8,
}

impl Bdf {
    /// A BDF; `dev` and `func` are masked to their widths.
    pub const fn new(bus: u8, dev: u8, func: u8) -> Self {
        Bdf { bus, dev: dev & 31, func: func & 7 }
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.dev, self.func)
    }
}

#[cfg(target_os = "none")]
impl defmt::Format for Bdf {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "{=u8:02x}:{=u8:02x}.{=u8}", self.bus, self.dev, self.func)
    }
}

/// Sets or clears Command bits of `bdf` with a 16-bit read-modify-write (Status is not touched). The
/// read and the write happen with interrupts disabled: the INTx handler sets Interrupt Disable from
/// interrupt context, and a read-modify-write it interrupted would write that bit back cleared (the
/// race Linux closes with `pci_lock`). Returns the value written (or left).
pub fn update_command<C: ConfigRegion + ?Sized>(cfg: &C, bdf: Bdf, set: u16, clear: u16) -> u16 {
    crate::arch::cpu::without_interrupts(|| {
        let cmd = cfg.read16(bdf, super::regs::COMMAND);
        let new = (cmd | set) & !clear;
        if new != cmd {
            cfg.write16(bdf, super::regs::COMMAND, new);
        }
        new
    })
}

/// Reads and writes of configuration space. Accesses must be naturally aligned; offsets past the space
/// (0x100 for legacy, 0x1000 for ECAM) read all-ones and ignore writes.
pub trait ConfigRegion {
    /// 32-bit read.
    fn read32(&self, bdf: Bdf, offset: u16) -> u32;
    /// 32-bit write.
    fn write32(&self, bdf: Bdf, offset: u16, value: u32);
    /// 16-bit read.
    fn read16(&self, bdf: Bdf, offset: u16) -> u16 {
        (self.read32(bdf, offset & !3) >> ((offset & 2) * 8)) as u16
    }
    /// 16-bit write. Implementations must do a real 16-bit write: a 32-bit read-modify-write would write
    /// back the write-one-to-clear bits of the neighbouring register (Status next to Command).
    fn write16(&self, bdf: Bdf, offset: u16, value: u16);
    /// 8-bit read.
    fn read8(&self, bdf: Bdf, offset: u16) -> u8 {
        (self.read32(bdf, offset & !3) >> ((offset & 3) * 8)) as u8
    }
    /// 8-bit write.
    fn write8(&self, bdf: Bdf, offset: u16, value: u8);
    /// Size of each function's space: 256 (legacy) or 4096 (PCIe ECAM).
    fn space_size(&self) -> u16;
    /// The memory address of `bdf`'s Command/Status dword when configuration space is memory-mapped
    /// (ECAM), for the INTx entry's Status.Interrupt read ([`crate::arch::idt::arm_ack_once`]); `None`
    /// through ports, which an interrupt entry cannot use without racing the code it interrupted.
    fn command_status_address(&self, _bdf: Bdf) -> Option<u64> {
        None
    }
}

/// How configuration space is reached on this platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// ECAM window from ACPI MCFG: `base + (bus << 20 | dev << 15 | func << 12 | offset)`.
    Ecam {
        /// Physical base of the window (for bus 0 of the segment).
        base: u64,
        /// First decoded bus.
        bus_start: u8,
        /// Last decoded bus.
        bus_end: u8,
    },
    /// Configuration mechanism #1 (PCI 3.0 3.2.2.3.2): address to 0xCF8, data at 0xCFC.
    Port,
}

/// The platform's configuration access.
#[derive(Debug, Clone, Copy)]
pub struct PlatformConfig {
    mechanism: Mechanism,
}

impl PlatformConfig {
    /// Uses `mechanism`.
    ///
    /// # Safety
    /// For ECAM, `base` must be the identity-mapped, uncached ECAM window for buses `bus_start..=bus_end`
    /// (from a checksummed MCFG). For ports, the platform must have mechanism #1 (every PC does).
    pub const unsafe fn new(mechanism: Mechanism) -> Self {
        PlatformConfig { mechanism }
    }

    /// The mechanism in use.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    fn ecam_addr(&self, bdf: Bdf, offset: u16, size: u16) -> Option<u64> {
        match self.mechanism {
            Mechanism::Ecam { base, bus_start, bus_end } => {
                let aligned = offset.is_multiple_of(size) && offset + size <= 0x1000;
                let bus_ok = bdf.bus >= bus_start && bdf.bus <= bus_end;
                // The MCFG base address is that of bus 0, even when the range starts above it
                // (PCI Firmware 3.2 4.1.2; Linux's pci_mmcfg address computation does the same).
                (aligned && bus_ok).then(|| {
                    base + ((bdf.bus as u64) << 20)
                        + ((bdf.dev as u64) << 15)
                        + ((bdf.func as u64) << 12)
                        + offset as u64
                })
            }
            Mechanism::Port => None,
        }
    }

    fn port_address(bdf: Bdf, offset: u16) -> u32 {
        0x8000_0000 | (bdf.bus as u32) << 16 | (bdf.dev as u32) << 11 | (bdf.func as u32) << 8 | (offset as u32 & 0xFC)
    }

    fn port_ok(offset: u16, size: u16) -> bool {
        offset.is_multiple_of(size) && offset + size <= 0x100
    }
}

/// Counts an access in [`crate::accounting`].
fn count(bdf: Bdf, kind: Kind) {
    crate::accounting::count(crate::accounting::routing_id(bdf.bus, bdf.dev, bdf.func), kind);
}

/// Whether a write of `size` bytes at `offset` covers the Command register (offset 4, PCI 3.0 6.2.2).
fn covers_command(offset: u16, size: u16) -> bool {
    offset <= 4 && 4 < offset + size
}

/// Makes `write`, timed into [`crate::accounting::command_write`] when it covers the Command register
/// during enumeration or setup (the bench's figure of what QEMU's address-space rebuilds cost).
fn timed_write(offset: u16, size: u16, write: impl FnOnce()) {
    if covers_command(offset, size) && crate::accounting::times_command_writes() {
        let t0 = crate::arch::cpu::rdtsc();
        write();
        crate::accounting::command_write(crate::arch::cpu::rdtsc().wrapping_sub(t0));
    } else {
        write();
    }
}

/// Every access is counted ([`crate::accounting`]) and recorded in the [`trace`] (when tracing is on)
/// before or after it is made.
impl ConfigRegion for PlatformConfig {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        count(bdf, Kind::ConfigRead);
        let value = self.raw_read32(bdf, offset);
        trace::record(bdf, Access::ConfigRead { offset, size: 4, value });
        value
    }
    fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
        count(bdf, Kind::ConfigWrite);
        trace::record(bdf, Access::ConfigWrite { offset, size: 4, value });
        timed_write(offset, 4, || self.raw_write32(bdf, offset, value))
    }
    fn read16(&self, bdf: Bdf, offset: u16) -> u16 {
        count(bdf, Kind::ConfigRead);
        let value = self.raw_read16(bdf, offset);
        trace::record(bdf, Access::ConfigRead { offset, size: 2, value: value as u32 });
        value
    }
    fn write16(&self, bdf: Bdf, offset: u16, value: u16) {
        count(bdf, Kind::ConfigWrite);
        trace::record(bdf, Access::ConfigWrite { offset, size: 2, value: value as u32 });
        timed_write(offset, 2, || self.raw_write16(bdf, offset, value))
    }
    fn read8(&self, bdf: Bdf, offset: u16) -> u8 {
        count(bdf, Kind::ConfigRead);
        let value = self.raw_read8(bdf, offset);
        trace::record(bdf, Access::ConfigRead { offset, size: 1, value: value as u32 });
        value
    }
    fn write8(&self, bdf: Bdf, offset: u16, value: u8) {
        count(bdf, Kind::ConfigWrite);
        trace::record(bdf, Access::ConfigWrite { offset, size: 1, value: value as u32 });
        timed_write(offset, 1, || self.raw_write8(bdf, offset, value))
    }
    fn space_size(&self) -> u16 {
        match self.mechanism {
            Mechanism::Ecam { .. } => 0x1000,
            Mechanism::Port => 0x100,
        }
    }
    fn command_status_address(&self, bdf: Bdf) -> Option<u64> {
        self.ecam_addr(bdf, super::regs::COMMAND, 4)
    }
}

/// Volatile ECAM read. `addr` must come from `ecam_addr`.
fn ecam_read<T: Copy>(addr: u64) -> T {
    // SAFETY: `ecam_addr` yields only addresses of buses inside the MCFG range and offsets inside the
    // function's 4 KiB, naturally aligned for T; `PlatformConfig::new`'s contract makes that window
    // identity-mapped uncached device memory (map_uncached, also below 4 GiB).
    unsafe { core::ptr::read_volatile(addr as *const T) }
}

/// Volatile ECAM write. `addr` must come from `ecam_addr`.
fn ecam_write<T: Copy>(addr: u64, value: T) {
    // SAFETY: as in `ecam_read`.
    unsafe { core::ptr::write_volatile(addr as *mut T, value) }
}

/// Configuration mechanism #1 read: address to 0xCF8, data from `data` (0xCFC-0xCFF).
fn port_read<T: PortRead>(address: u32, data: u16) -> T {
    crate::arch::cpu::without_interrupts(|| {
        // SAFETY: 0xCF8 and 0xCFC-0xCFF are the PC's configuration ports, reserved for this use; with
        // interrupts off no handler can interleave its own address/data pair.
        unsafe {
            Port::<u32>::new(0xCF8).write(address);
            Port::<T>::new(data).read()
        }
    })
}

/// Configuration mechanism #1 write: address to 0xCF8, `value` to `data` (0xCFC-0xCFF).
fn port_write<T: PortWrite>(address: u32, data: u16, value: T) {
    crate::arch::cpu::without_interrupts(|| {
        // SAFETY: as in `port_read`.
        unsafe {
            Port::<u32>::new(0xCF8).write(address);
            Port::<T>::new(data).write(value)
        }
    })
}

impl PlatformConfig {
    fn raw_read32(&self, bdf: Bdf, offset: u16) -> u32 {
        if let Some(addr) = self.ecam_addr(bdf, offset, 4) {
            return ecam_read::<u32>(addr);
        }
        if self.mechanism != Mechanism::Port || !Self::port_ok(offset, 4) {
            return u32::MAX;
        }
        port_read::<u32>(Self::port_address(bdf, offset), 0xCFC)
    }

    fn raw_write32(&self, bdf: Bdf, offset: u16, value: u32) {
        if let Some(addr) = self.ecam_addr(bdf, offset, 4) {
            return ecam_write::<u32>(addr, value);
        }
        if self.mechanism != Mechanism::Port || !Self::port_ok(offset, 4) {
            return;
        }
        port_write::<u32>(Self::port_address(bdf, offset), 0xCFC, value)
    }

    fn raw_read16(&self, bdf: Bdf, offset: u16) -> u16 {
        if let Some(addr) = self.ecam_addr(bdf, offset, 2) {
            return ecam_read::<u16>(addr);
        }
        if self.mechanism != Mechanism::Port || !Self::port_ok(offset, 2) {
            return u16::MAX;
        }
        port_read::<u16>(Self::port_address(bdf, offset), 0xCFC + (offset & 2))
    }

    fn raw_write16(&self, bdf: Bdf, offset: u16, value: u16) {
        if let Some(addr) = self.ecam_addr(bdf, offset, 2) {
            return ecam_write::<u16>(addr, value);
        }
        if self.mechanism != Mechanism::Port || !Self::port_ok(offset, 2) {
            return;
        }
        port_write::<u16>(Self::port_address(bdf, offset), 0xCFC + (offset & 2), value)
    }

    fn raw_read8(&self, bdf: Bdf, offset: u16) -> u8 {
        if let Some(addr) = self.ecam_addr(bdf, offset, 1) {
            return ecam_read::<u8>(addr);
        }
        if self.mechanism != Mechanism::Port || !Self::port_ok(offset, 1) {
            return u8::MAX;
        }
        port_read::<u8>(Self::port_address(bdf, offset), 0xCFC + (offset & 3))
    }

    fn raw_write8(&self, bdf: Bdf, offset: u16, value: u8) {
        if let Some(addr) = self.ecam_addr(bdf, offset, 1) {
            return ecam_write::<u8>(addr, value);
        }
        if self.mechanism != Mechanism::Port || !Self::port_ok(offset, 1) {
            return;
        }
        port_write::<u8>(Self::port_address(bdf, offset), 0xCFC + (offset & 3), value)
    }

}

/// A simulated configuration space for host tests and fuzzing: a 4 KiB (or 256 B) array per function,
/// with BAR sizing emulation.
#[cfg(any(test, feature = "sim"))]
pub mod sim {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// One simulated function.
    #[derive(Clone, Debug)]
    pub struct SimFunction {
        /// Raw bytes.
        pub bytes: Vec<u8>,
        /// BAR size masks: a write of all-ones to BAR n reads back `bar_masks[n]` (0 = unimplemented).
        pub bar_masks: [u32; 6],
    }

    /// Simulated configuration space.
    #[derive(Default, Debug)]
    pub struct SimConfig {
        /// Functions present.
        pub functions: RefCell<BTreeMap<Bdf, SimFunction>>,
        /// Extended (4 KiB) space.
        pub extended: bool,
        /// Every write, in order: (bdf, offset, size, value).
        pub writes: RefCell<Vec<(Bdf, u16, u8, u32)>>,
    }

    impl SimConfig {
        /// Adds a type-0 function with vendor/device/class.
        pub fn add(&self, bdf: Bdf, vendor: u16, device: u16, class: u32) -> Bdf {
            let size = if self.extended { 4096 } else { 256 };
            let mut bytes = vec![0u8; size];
            bytes[0..2].copy_from_slice(&vendor.to_le_bytes());
            bytes[2..4].copy_from_slice(&device.to_le_bytes());
            bytes[8..12].copy_from_slice(&(class << 8).to_le_bytes());
            self.functions.borrow_mut().insert(bdf, SimFunction { bytes, bar_masks: [0; 6] });
            bdf
        }

        /// Sets raw bytes.
        pub fn poke(&self, bdf: Bdf, offset: usize, data: &[u8]) {
            let mut f = self.functions.borrow_mut();
            let func = f.get_mut(&bdf).expect("no such function");
            func.bytes[offset..offset + data.len()].copy_from_slice(data);
        }

        /// Sets a BAR's size mask and current value.
        pub fn bar(&self, bdf: Bdf, index: usize, mask: u32, value: u32) {
            let mut f = self.functions.borrow_mut();
            let func = f.get_mut(&bdf).expect("no such function");
            func.bar_masks[index] = mask;
            let o = 0x10 + index * 4;
            func.bytes[o..o + 4].copy_from_slice(&value.to_le_bytes());
        }

        fn raw_read(&self, bdf: Bdf, offset: u16, size: usize) -> u32 {
            let f = self.functions.borrow();
            let Some(func) = f.get(&bdf) else { return u32::MAX >> (32 - size * 8) };
            let o = offset as usize;
            if o + size > func.bytes.len() {
                return u32::MAX >> (32 - size * 8);
            }
            let mut v = 0u32;
            for i in 0..size {
                v |= (func.bytes[o + i] as u32) << (8 * i);
            }
            v
        }

        fn raw_write(&self, bdf: Bdf, offset: u16, size: usize, value: u32) {
            self.writes.borrow_mut().push((bdf, offset, size as u8, value));
            let mut f = self.functions.borrow_mut();
            let Some(func) = f.get_mut(&bdf) else { return };
            let o = offset as usize;
            if o + size > func.bytes.len() {
                return;
            }
            let mut value = value;
            // BARs: 6 in a type 0 header, 2 in a type 1 (bridge) header.
            let bars_end = if func.bytes[0x0E] & 0x7F == 1 { 0x18 } else { 0x28 };
            if size == 4 && (0x10..bars_end).contains(&o) {
                let idx = (o - 0x10) / 4;
                let mask = func.bar_masks[idx];
                let low_bits = u32::from_le_bytes(func.bytes[o..o + 4].try_into().unwrap()) & 0xF;
                // The type bits are read-only: bits 1:0 of an I/O BAR, 3:0 of a memory BAR (none in the
                // upper half of a 64-bit BAR).
                let lower = if idx > 0 { u32::from_le_bytes(func.bytes[o - 4..o].try_into().unwrap()) } else { 0 };
                let upper_half = idx > 0 && lower & 1 == 0 && (lower >> 1) & 3 == 2 && func.bar_masks[idx - 1] != 0;
                let read_only = if upper_half { 0 } else if low_bits & 1 == 1 { 0x3 } else { 0xF };
                value = if mask == 0 { 0 } else { (value & mask & !read_only) | (low_bits & (read_only | !mask) & 0xF) };
            }
            for i in 0..size {
                func.bytes[o + i] = (value >> (8 * i)) as u8;
            }
        }
    }

    impl SimConfig {
        fn traced_read(&self, bdf: Bdf, offset: u16, size: usize) -> u32 {
            let value = self.raw_read(bdf, offset, size);
            trace::record(bdf, Access::ConfigRead { offset, size: size as u8, value });
            value
        }
        fn traced_write(&self, bdf: Bdf, offset: u16, size: usize, value: u32) {
            trace::record(bdf, Access::ConfigWrite { offset, size: size as u8, value });
            self.raw_write(bdf, offset, size, value)
        }
    }

    /// Like the platform accessor, every access goes to the (thread-local, in tests) trace.
    impl ConfigRegion for SimConfig {
        fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
            self.traced_read(bdf, offset, 4)
        }
        fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
            self.traced_write(bdf, offset, 4, value)
        }
        fn read16(&self, bdf: Bdf, offset: u16) -> u16 {
            self.traced_read(bdf, offset, 2) as u16
        }
        fn write16(&self, bdf: Bdf, offset: u16, value: u16) {
            self.traced_write(bdf, offset, 2, value as u32)
        }
        fn read8(&self, bdf: Bdf, offset: u16) -> u8 {
            self.traced_read(bdf, offset, 1) as u8
        }
        fn write8(&self, bdf: Bdf, offset: u16, value: u8) {
            self.traced_write(bdf, offset, 1, value as u32)
        }
        fn space_size(&self) -> u16 {
            if self.extended {
                4096
            } else {
                256
            }
        }
    }
}
