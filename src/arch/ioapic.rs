//! I/O APIC (82093AA datasheet; Intel ICH9 datasheet 13.5): indirect registers through IOREGSEL/IOWIN.

use core::ptr::NonNull;

use volatile::access::WriteOnly;
use volatile::{VolatileFieldAccess, VolatilePtr};

/// IOAPIC version register (max redirection entry in bits 23:16).
const REG_VERSION: u32 = 0x01;
/// First redirection table register (two 32-bit halves per entry).
const REG_REDTBL: u32 = 0x10;
/// Redirection entry: interrupt mask.
pub const RTE_MASKED: u32 = 1 << 16;
/// Redirection entry: level-triggered.
pub const RTE_LEVEL: u32 = 1 << 15;
/// Redirection entry: Remote IRR (a level interrupt delivered and not yet ended by EOI).
pub const RTE_REMOTE_IRR: u32 = 1 << 14;

/// The IOAPIC's memory-mapped registers (82093AA datasheet 3.0; ICH9 datasheet 13.5.1, Table 13-3): an index,
/// a data window onto the register it selects, and (version 0x20 and later) the EOI register.
#[repr(C)]
#[derive(VolatileFieldAccess)]
struct Registers {
    /// IOREGSEL: which indirect register `iowin` reads and writes.
    ioregsel: u32,
    _reserved0: [u32; 3],
    /// IOWIN: the selected register.
    iowin: u32,
    _reserved1: [u32; 11],
    /// EOI (ICH9 13.5.5): writing a vector ends the pending level interrupt of the entries with that vector.
    #[access(WriteOnly)]
    eoi: u32,
}

/// IOREGSEL and IOWIN are one index/data pair per chip: two CPUs must not interleave their accesses
/// (82093AA 3.0: the index selects what the window reads or writes). One lock for every IOAPIC keeps it
/// simple; the pair is held for two register accesses with interrupts off.
static PAIR: spin::Mutex<()> = spin::Mutex::new(());

const _: () = assert!(core::mem::offset_of!(Registers, iowin) == 0x10);
const _: () = assert!(core::mem::offset_of!(Registers, eoi) == 0x40);

/// One IOAPIC.
#[derive(Debug, Clone, Copy)]
pub struct IoApic {
    base: u64,
}

impl IoApic {
    /// The IOAPIC at `base`.
    ///
    /// # Safety
    /// `base` must be the identity-mapped, uncached register page of an IOAPIC (from a checksummed MADT),
    /// used by nobody else.
    pub const unsafe fn new(base: u64) -> Self {
        IoApic { base }
    }

    fn registers(&self) -> VolatilePtr<'_, Registers> {
        // SAFETY: `new`'s contract: `base` is the identity-mapped, uncached register page of an IOAPIC (non-null,
        // page-aligned, so aligned for `Registers`, which fits in the page) that nothing else accesses.
        unsafe { VolatilePtr::new(NonNull::new_unchecked(self.base as *mut Registers)) }
    }

    fn read(&self, reg: u32) -> u32 {
        let r = self.registers();
        // Interrupts are off so a handler cannot change IOREGSEL between the two accesses, and the lock
        // keeps other CPUs from doing so.
        crate::arch::cpu::without_interrupts(|| {
            let _pair = PAIR.lock();
            r.ioregsel().write(reg);
            r.iowin().read()
        })
    }

    fn write(&self, reg: u32, value: u32) {
        let r = self.registers();
        // As in `read`.
        crate::arch::cpu::without_interrupts(|| {
            let _pair = PAIR.lock();
            r.ioregsel().write(reg);
            r.iowin().write(value);
        })
    }

    /// Number of redirection entries; `None` if the register reads as absent (all-ones).
    pub fn entries(&self) -> Option<u32> {
        let version = self.read(REG_VERSION);
        (version != u32::MAX).then(|| ((version >> 16) & 0xFF) + 1)
    }

    /// Programs redirection entry `index` (ICH9 datasheet 13.5.8; 82093AA 3.2.4): fixed delivery,
    /// physical destination `apic_id`, `vector`, trigger and polarity, masked or not. The entry is written
    /// masked first (with its final trigger and polarity: a transient edge entry would clear Remote IRR in
    /// QEMU), high half before low, so it never fires half-programmed.
    pub fn program(&self, index: u32, vector: u8, apic_id: u8, level: bool, active_low: bool, masked: bool) {
        let low = vector as u32
            | if active_low { 1 << 13 } else { 0 }
            | if level { 1 << 15 } else { 0 }
            | if masked { RTE_MASKED } else { 0 };
        self.program_entry(index, low, (apic_id as u32) << 24);
    }

    /// Programs redirection entry `index` with the halves `low` (vector, delivery and destination mode,
    /// polarity, trigger, mask) and `high` (destination in 63:56) in [`IoApic::program`]'s order: low
    /// masked first, then high, then low as given (82093AA 3.2.4: the entry is two registers written one at a
    /// time, so it is kept masked while it is inconsistent).
    pub fn program_entry(&self, index: u32, low: u32, high: u32) {
        self.write(REG_REDTBL + 2 * index, low | RTE_MASKED);
        self.write(REG_REDTBL + 2 * index + 1, high);
        self.write(REG_REDTBL + 2 * index, low);
    }

    /// Writes only the low half (vector, modes, mask) of entry `index`, as it is: no masking around it.
    /// For the retargeting negative controls, which rewrite a live entry one register at a time.
    pub fn write_low(&self, index: u32, low: u32) {
        self.write(REG_REDTBL + 2 * index, low);
    }

    /// Writes only the high half (destination) of entry `index`, as it is (see [`IoApic::write_low`]).
    pub fn write_high(&self, index: u32, high: u32) {
        self.write(REG_REDTBL + 2 * index + 1, high);
    }

    /// The high half of entry `index` (destination in bits 31:24).
    pub fn entry_high(&self, index: u32) -> u32 {
        self.read(REG_REDTBL + 2 * index + 1)
    }

    /// Masks or unmasks entry `index`, keeping the rest.
    pub fn set_masked(&self, index: u32, masked: bool) {
        let low = self.read(REG_REDTBL + 2 * index);
        let new = if masked { low | RTE_MASKED } else { low & !RTE_MASKED };
        if new != low {
            self.write(REG_REDTBL + 2 * index, new);
        }
    }

    /// The low half of entry `index` (vector, flags, Remote IRR in bit 14, delivery status in bit 12).
    pub fn entry_low(&self, index: u32) -> u32 {
        self.read(REG_REDTBL + 2 * index)
    }

    /// Masks every redirection entry: whatever a previous owner routed stays silent. As Linux's
    /// clear_IO_APIC_pin: the mask bit is set with the rest of the entry kept (a level entry stays level, so
    /// the IOAPIC keeps following its pin: rewriting it as edge would leave a level a crashed owner left
    /// asserted latched, and it would fire as a phantom level interrupt once the entry is reprogrammed), and
    /// a Remote IRR the previous owner never acknowledged is cleared: through the EOI register (IOAPIC
    /// version 0x20 and later) or by switching the entry to edge and back.
    pub fn mask_all(&self) -> u32 {
        let n = self.entries().unwrap_or(0).min(240);
        let version = self.read(REG_VERSION) & 0xFF;
        for i in 0..n {
            let low = self.read(REG_REDTBL + 2 * i);
            let masked = low | RTE_MASKED;
            self.write(REG_REDTBL + 2 * i, masked);
            if low & RTE_LEVEL != 0 && low & RTE_REMOTE_IRR != 0 {
                if version >= 0x20 {
                    // An IOAPIC 0x20+ has the EOI register (ICH9 datasheet 13.5.5).
                    self.registers().eoi().write(low & 0xFF);
                } else {
                    self.write(REG_REDTBL + 2 * i, masked & !RTE_LEVEL);
                    self.write(REG_REDTBL + 2 * i, masked);
                }
            }
        }
        n
    }
}
