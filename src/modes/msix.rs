//! MSI-X (PCIe Base 4.0 7.7.2; PCI 3.0 6.8.2), programmed in Linux's order (msix_capability_init,
//! __pci_write_msi_msg, pci_msix_shutdown; see ../shared/platform/linux-msi-reference.md).

use super::{clear_and_set_ctrl, Ctrl, IrqError};
use crate::bus::pci::config::update_command;
use crate::arch::mmio::MmioWindow;
use crate::bus::pci::bar::BarKind;
use crate::bus::pci::enumerate::Function;
use crate::bus::pci::trace::{self, Access, TableField};
use crate::bus::pci::{regs, Bdf, ConfigRegion};
use crate::irq::message::MsiMessage;

/// Message Control, at cap + 2.
pub const CONTROL: u16 = 2;
/// Table offset/BIR, at cap + 4.
pub const TABLE: u16 = 4;
/// PBA offset/BIR, at cap + 8.
pub const PBA: u16 = 8;
/// Message Control: MSI-X Enable.
pub const ENABLE: u16 = 1 << 15;
/// Message Control: Function Mask.
pub const FUNCTION_MASK: u16 = 1 << 14;
/// Message Control: table size N-1.
pub const TABLE_SIZE_MASK: u16 = 0x7FF;

/// Time between the last message a function may have sent and clearing its MSI-X Enable. QEMU 7.2's e1000e
/// arms a per-vector throttle timer (128 us) with every message and asserts, when it expires, that MSI-X
/// is still enabled: clearing Enable inside that window aborts the whole VM
/// (`e1000e_intrmgr_on_msix_throttling_timer`). The timer runs on QEMU's main-loop thread, which a loaded
/// host (parallel QEMU boots on two cores, as `cargo test` runs them) can keep waiting for milliseconds:
/// 2 ms was seen too short once in a full `cargo test`. So the wait is 5 ms and then a fence
/// (`time::timers_run_by`): under TCG every timer due by then has run, however late; under KVM (in-kernel
/// LAPIC) the 5 ms alone leave room.
pub const DISABLE_SETTLE_US: u64 = 5_000;

/// Table entry layout (PCIe 4.0 Figure 7-104): 16 bytes.
pub mod entry {
    /// Message Address (low 32 bits).
    pub const ADDR_LO: u64 = 0x0;
    /// Message Upper Address.
    pub const ADDR_HI: u64 = 0x4;
    /// Message Data.
    pub const DATA: u64 = 0x8;
    /// Vector Control; bit 0 = Mask Bit.
    pub const VECTOR_CONTROL: u64 = 0xC;
    /// Vector Control Mask Bit.
    pub const MASKED: u32 = 1;
    /// Entry size.
    pub const SIZE: u64 = 16;
}

/// The MSI-X capability as read from config space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixCapability {
    /// Capability offset.
    pub offset: u16,
    /// Number of table entries (N).
    pub table_size: u16,
    /// BAR indicator of the table (0-5 valid).
    pub table_bir: u8,
    /// Offset of the table in its BAR.
    pub table_offset: u32,
    /// BAR indicator of the PBA.
    pub pba_bir: u8,
    /// Offset of the PBA in its BAR.
    pub pba_offset: u32,
}

/// Reads the capability at `offset`.
pub fn read_capability(cfg: &impl ConfigRegion, bdf: Bdf, offset: u16) -> MsixCapability {
    let control = cfg.read16(bdf, offset + CONTROL);
    let table = cfg.read32(bdf, offset + TABLE);
    let pba = cfg.read32(bdf, offset + PBA);
    MsixCapability {
        offset,
        table_size: (control & TABLE_SIZE_MASK) + 1,
        table_bir: (table & 7) as u8,
        table_offset: table & !7,
        pba_bir: (pba & 7) as u8,
        pba_offset: pba & !7,
    }
}

/// Where the table and PBA live, and why they might not be usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsixError {
    /// BIR 6 or 7 (reserved).
    ReservedBir(u8),
    /// The BIR names a BAR the function does not implement.
    BarMissing(u8),
    /// The BIR names an I/O BAR.
    BarIsIo(u8),
    /// The BAR is unassigned.
    BarUnassigned(u8),
    /// The table does not fit in its BAR.
    TableOutsideBar,
    /// The PBA does not fit in its BAR.
    PbaOutsideBar,
    /// Table and PBA overlap.
    TableOverlapsPba,
}

impl core::fmt::Display for MsixError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::ReservedBir(b) => write!(f, "MSI-X BIR {b} is reserved"),
            Self::BarMissing(b) => write!(f, "MSI-X BIR {b} names an unimplemented BAR"),
            Self::BarIsIo(b) => write!(f, "MSI-X BIR {b} names an I/O BAR"),
            Self::BarUnassigned(b) => write!(f, "MSI-X BAR {b} is unassigned"),
            Self::TableOutsideBar => write!(f, "MSI-X table extends past its BAR"),
            Self::PbaOutsideBar => write!(f, "MSI-X PBA extends past its BAR"),
            Self::TableOverlapsPba => write!(f, "MSI-X table overlaps the PBA"),
        }
    }
}

/// Table and PBA placement: (BAR index, offset, length) of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixLayout {
    /// Table BAR, offset, length.
    pub table: (u8, u64, u64),
    /// PBA BAR, offset, length.
    pub pba: (u8, u64, u64),
}

/// Checks the table and PBA against the function's BARs (pure).
pub fn locate(cap: &MsixCapability, function: &Function) -> Result<MsixLayout, MsixError> {
    let table_len = cap.table_size as u64 * entry::SIZE;
    let pba_len = (cap.table_size as u64).div_ceil(64) * 8;
    let check = |bir: u8, offset: u64, len: u64, outside: MsixError| -> Result<(u8, u64, u64), MsixError> {
        if bir > 5 {
            return Err(MsixError::ReservedBir(bir));
        }
        let bar = function.bar(bir).ok_or(MsixError::BarMissing(bir))?;
        if bar.kind == BarKind::Io {
            return Err(MsixError::BarIsIo(bir));
        }
        if !bar.assigned() {
            return Err(MsixError::BarUnassigned(bir));
        }
        if offset.checked_add(len).is_none_or(|end| end > bar.size) {
            return Err(outside);
        }
        Ok((bir, offset, len))
    };
    let table = check(cap.table_bir, cap.table_offset as u64, table_len, MsixError::TableOutsideBar)?;
    let pba = check(cap.pba_bir, cap.pba_offset as u64, pba_len, MsixError::PbaOutsideBar)?;
    if table.0 == pba.0 && table.1 < pba.1 + pba.2 && pba.1 < table.1 + table.2 {
        return Err(MsixError::TableOverlapsPba);
    }
    Ok(MsixLayout { table, pba })
}

/// The MSI-X table of one function: typed entry accesses, each recorded in the access trace.
#[derive(Debug, Clone, Copy)]
pub struct MsixTable {
    bdf: Bdf,
    window: MmioWindow,
    size: u16,
}

impl MsixTable {
    /// The table of `bdf` in `window` (`size` entries; the window must hold them).
    pub fn new(bdf: Bdf, window: MmioWindow, size: u16) -> Option<MsixTable> {
        (window.len() >= size as u64 * entry::SIZE).then_some(MsixTable { bdf, window, size })
    }

    /// Entries.
    pub fn size(&self) -> u16 {
        self.size
    }

    fn offset(i: u16, field: TableField) -> u64 {
        i as u64 * entry::SIZE
            + match field {
                TableField::AddrLo => entry::ADDR_LO,
                TableField::AddrHi => entry::ADDR_HI,
                TableField::Data => entry::DATA,
                TableField::Control => entry::VECTOR_CONTROL,
            }
    }

    /// Reads a field of entry `i` (`i` < size).
    pub fn read(&self, i: u16, field: TableField) -> u32 {
        let value = self.window.read32(Self::offset(i, field));
        trace::record(self.bdf, Access::TableRead { entry: i, field, value });
        value
    }

    /// Writes a field of entry `i` (`i` < size).
    pub fn write(&self, i: u16, field: TableField, value: u32) {
        trace::record(self.bdf, Access::TableWrite { entry: i, field, value });
        self.window.write32(Self::offset(i, field), value);
    }
}

/// Maps the table and PBA windows of `function` (checked by [`locate`]).
pub fn map(cap: &MsixCapability, function: &Function) -> Result<(MsixTable, MmioWindow), IrqError> {
    let layout = locate(cap, function).map_err(IrqError::Msix)?;
    let window = |(bir, offset, len): (u8, u64, u64), outside: MsixError| -> Result<MmioWindow, IrqError> {
        let bar = function.bar(bir).ok_or(IrqError::Msix(MsixError::BarMissing(bir)))?;
        crate::bus::pci::bar::window(function.bdf, bar).map_err(IrqError::Map)?.sub(offset, len).ok_or(IrqError::Msix(outside))
    };
    let table = window(layout.table, MsixError::TableOutsideBar)?;
    let pba = window(layout.pba, MsixError::PbaOutsideBar)?;
    let table = MsixTable::new(function.bdf, table, cap.table_size).ok_or(IrqError::Msix(MsixError::TableOutsideBar))?;
    Ok((table, pba))
}

/// A function with MSI-X enabled by [`MsixFunction::enable`].
#[derive(Debug)]
pub struct MsixFunction {
    bdf: Bdf,
    cap: MsixCapability,
    table: MsixTable,
    pba: MmioWindow,
    used: u16,
    /// The message and mask state of each entry in use, as last written: what a restore rewrites (Linux's
    /// desc->msg and desc->pci.msix_ctrl).
    cache: heapless::Vec<(MsiMessage, bool), { super::MAX_VECTORS }>,
    /// When this handle set the Function Mask that is still set (us since boot): a shutdown that follows
    /// keeps [`DISABLE_SETTLE_US`] from then, not from its own start, so one settle can cover several
    /// functions masked together.
    function_masked_at: Option<u64>,
    /// The settle before Enable is cleared while fences are ordered (the driver's
    /// `InterruptSource::late_message_us`); [`DISABLE_SETTLE_US`] unless the driver says.
    disable_settle_us: u64,
}

/// What a restore after a reset writes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// Message Control and every entry in use from the cache (__pci_restore_msix_state).
    Full,
    /// Only Message Control, as a configuration-space save holds it: the table, in BAR memory, is not in
    /// such a save.
    ConfigOnly,
}

impl MsixFunction {
    /// Enables MSI-X and programs entries `0..messages.len()`, in msix_capability_init's order:
    /// 1. Enable | Function Mask (some devices need Enable before the table is accessible; the function
    ///    mask keeps every entry silent meanwhile; PCIe 4.0 7.7.2.2);
    /// 2. each entry masked, then address and data written, then read back (__pci_write_msi_msg);
    /// 3. INTx disabled (PCI 3.0 6.8.2: while MSI-X is enabled the function must not use INTx);
    /// 4. every entry of the table masked, on success only (83dbf898a2d4), so stale entries a previous
    ///    owner left cannot fire;
    /// 5. Function Mask cleared, then the entries in use unmasked.
    ///
    /// On error Function Mask and Enable are cleared again (94185adbfad5).
    pub fn enable(
        cfg: &impl ConfigRegion,
        bdf: Bdf,
        cap: MsixCapability,
        table: MsixTable,
        pba: MmioWindow,
        messages: &[MsiMessage],
    ) -> Result<MsixFunction, IrqError> {
        if messages.len() > table.size() as usize {
            return Err(IrqError::TooManyVectors { requested: messages.len() as u16, available: table.size() });
        }
        // Memory decoding for the table; Bus Master so the function can send the message (a memory write).
        update_command(cfg, bdf, regs::command::MEMORY | regs::command::BUS_MASTER, 0);

        clear_and_set_ctrl(cfg, bdf, cap.offset, 0, ENABLE | FUNCTION_MASK, Ctrl::Always);

        let cache = messages.iter().map(|m| (*m, false)).collect();
        let mut this = MsixFunction { bdf, cap, table, pba, used: messages.len() as u16, cache, function_masked_at: None, disable_settle_us: DISABLE_SETTLE_US };
        for (i, msg) in messages.iter().enumerate() {
            if !this.write_message(i as u16, msg) {
                clear_and_set_ctrl(cfg, bdf, cap.offset, ENABLE | FUNCTION_MASK, 0, Ctrl::Always);
                return Err(IrqError::ReadBack { entry: i as u16 });
            }
        }
        update_command(cfg, bdf, regs::command::INTX_DISABLE, 0);
        for i in 0..table.size() {
            this.set_entry_mask(i, true);
        }
        clear_and_set_ctrl(cfg, bdf, cap.offset, FUNCTION_MASK, 0, Ctrl::Always);
        for i in 0..this.used {
            this.set_entry_mask(i, false);
        }
        Ok(this)
    }

    /// Writes entry `i`'s message with the entry masked (PCIe 4.0 6.1.4.2: changing an unmasked
    /// entry's address or data is undefined), restores its mask state and reads the message back.
    fn write_message(&mut self, i: u16, msg: &MsiMessage) -> bool {
        let t = &self.table;
        let control = t.read(i, TableField::Control);
        if control & entry::MASKED == 0 {
            t.write(i, TableField::Control, control | entry::MASKED);
        }
        t.write(i, TableField::AddrLo, msg.address as u32);
        t.write(i, TableField::AddrHi, (msg.address >> 32) as u32);
        t.write(i, TableField::Data, msg.data);
        if control & entry::MASKED == 0 {
            t.write(i, TableField::Control, control);
        }
        // Read-back flushes the posted writes and proves the table took them.
        let data = t.read(i, TableField::Data);
        let lo = t.read(i, TableField::AddrLo);
        let hi = t.read(i, TableField::AddrHi);
        data == msg.data && lo == msg.address as u32 && hi == (msg.address >> 32) as u32
    }

    /// Sets or clears entry `i`'s Mask Bit, touching only that bit (other Vector Control bits are
    /// reserved or steering tags: endlessm/linux#514). Flushed by a read. False if `i` is out of range.
    pub fn set_entry_mask(&mut self, i: u16, masked: bool) -> bool {
        if i >= self.table.size() {
            return false;
        }
        let control = self.table.read(i, TableField::Control);
        let new = if masked { control | entry::MASKED } else { control & !entry::MASKED };
        if new != control {
            self.table.write(i, TableField::Control, new);
            let _ = self.table.read(i, TableField::Control);
        }
        if let Some(entry) = self.cache.get_mut(i as usize) {
            entry.1 = masked;
        }
        true
    }

    /// The first entry in use whose table contents differ from the cache: (entry, address, data) found.
    pub fn table_mismatch(&self) -> Option<(u16, u64, u32)> {
        self.cache.iter().enumerate().find_map(|(i, (msg, _))| {
            let i = i as u16;
            let lo = self.table.read(i, TableField::AddrLo) as u64;
            let hi = self.table.read(i, TableField::AddrHi) as u64;
            let data = self.table.read(i, TableField::Data);
            let addr = hi << 32 | lo;
            (addr != msg.address || data != msg.data).then_some((i, addr, data))
        })
    }

    /// Entries in use.
    pub fn used(&self) -> u16 {
        self.used
    }

    /// Programs the next unused entry with `msg` (masked while written, read back) and unmasks it: MSI-X
    /// grown by one vector while enabled (Linux's pci_msix_alloc_irq_at; VFIO's incremental enable).
    /// Returns the entry, or `None` when the table is full or the message did not read back.
    pub fn add_entry(&mut self, msg: MsiMessage) -> Option<u16> {
        let i = self.used;
        if i >= self.table.size() || self.cache.push((msg, false)).is_err() {
            return None;
        }
        self.set_entry_mask(i, true);
        let ok = self.write_message(i, &msg);
        self.used += 1;
        if !ok {
            return None;
        }
        self.set_entry_mask(i, false);
        Some(i)
    }

    /// For negative controls only: zeroes the next unused entry's message (as a reset leaves it) and
    /// unmasks it without programming it. Returns the entry.
    pub fn expose_unprogrammed(&mut self) -> Option<u16> {
        let i = self.used;
        if i >= self.table.size() {
            return None;
        }
        self.set_entry_mask(i, true);
        self.table.write(i, TableField::AddrLo, 0);
        self.table.write(i, TableField::AddrHi, 0);
        self.table.write(i, TableField::Data, 0);
        let _ = self.table.read(i, TableField::Data);
        self.set_entry_mask(i, false);
        Some(i)
    }

    /// Moves entry `i` to `msg` while the function may be raising it (retargeting), with `between` run
    /// in the middle:
    /// - `masked` (Linux's __pci_write_msi_msg): the entry masked if it was not, the message written and
    ///   read back, then the mask state restored: a message the function raises meanwhile is held
    ///   pending (PCIe 4.0 6.1.4.5) and sent once, with the new message, at the unmask;
    /// - not `masked` (a negative control): the entry stays unmasked while its message changes.
    ///
    /// `between` runs after the address and before the data when `split` (a function raising then sends
    /// the torn message, new address with old data, unless the entry is masked), else after the whole
    /// message is written and read back, before the unmask. Returns whether the entry reads back `msg`.
    pub fn move_entry(&mut self, i: u16, msg: MsiMessage, masked: bool, split: bool, between: &mut dyn FnMut()) -> bool {
        let Some(&(_, cached_mask)) = self.cache.get(i as usize) else { return false };
        let t = self.table;
        let control = t.read(i, TableField::Control);
        let unmask = masked && control & entry::MASKED == 0;
        if unmask {
            t.write(i, TableField::Control, control | entry::MASKED);
            let _ = t.read(i, TableField::Control);
        }
        t.write(i, TableField::AddrLo, msg.address as u32);
        t.write(i, TableField::AddrHi, (msg.address >> 32) as u32);
        if split {
            between();
        }
        t.write(i, TableField::Data, msg.data);
        let data = t.read(i, TableField::Data);
        let lo = t.read(i, TableField::AddrLo);
        let hi = t.read(i, TableField::AddrHi);
        self.cache[i as usize] = (msg, cached_mask);
        if !split {
            between();
        }
        if unmask {
            t.write(i, TableField::Control, control);
        }
        data == msg.data && lo == msg.address as u32 && hi == (msg.address >> 32) as u32
    }

    /// Rewrites entry `i` with `msg` (masked while written, mask state kept) and updates the cache.
    pub fn rewrite_entry(&mut self, i: u16, msg: MsiMessage) -> bool {
        let Some(&(_, masked)) = self.cache.get(i as usize) else { return false };
        let was = self.table.read(i, TableField::Control) & entry::MASKED != 0;
        if !was {
            self.set_entry_mask(i, true);
        }
        let ok = self.write_message(i, &msg);
        self.cache[i as usize] = (msg, masked);
        if !was {
            self.set_entry_mask(i, false);
        }
        ok
    }

    /// After a reset of the function (and its header restored): writes back what `what` says, in
    /// __pci_restore_msix_state's order: INTx disabled; Enable and Function Mask; each entry's message
    /// (masked while written) and its mask state from the cache; Function Mask cleared.
    pub fn restore(&mut self, cfg: &impl ConfigRegion, what: Restore) -> bool {
        self.function_masked_at = None;
        let cap = self.cap.offset;
        update_command(cfg, self.bdf, regs::command::INTX_DISABLE, 0);
        if what == Restore::ConfigOnly {
            clear_and_set_ctrl(cfg, self.bdf, cap, FUNCTION_MASK, ENABLE, Ctrl::Always);
            return true;
        }
        clear_and_set_ctrl(cfg, self.bdf, cap, 0, ENABLE | FUNCTION_MASK, Ctrl::Always);
        let mut ok = true;
        for i in 0..self.cache.len() {
            let (msg, masked) = self.cache[i];
            ok &= self.write_message(i as u16, &msg);
            self.set_entry_mask(i as u16, masked);
        }
        clear_and_set_ctrl(cfg, self.bdf, cap, FUNCTION_MASK, 0, Ctrl::Always);
        ok
    }

    /// Whether entry `i`'s Pending Bit is set.
    pub fn pending(&self, i: u16) -> bool {
        if i >= self.cap.table_size {
            return false;
        }
        let qword = self.pba.read64((i as u64 / 64) * 8);
        qword & (1 << (i % 64)) != 0
    }

    /// The settle [`Self::shutdown`] keeps between the Function Mask and clearing Enable while fences are
    /// ordered (`time::fences_ordered`), for a driver that knows its device's timers; otherwise it keeps
    /// [`DISABLE_SETTLE_US`].
    pub fn set_disable_settle_us(&mut self, us: u64) {
        self.disable_settle_us = us;
    }

    /// Sets or clears the Function Mask.
    pub fn set_function_mask(&mut self, cfg: &impl ConfigRegion, masked: bool) {
        let (clear, set) = if masked { (0, FUNCTION_MASK) } else { (FUNCTION_MASK, 0) };
        let control = clear_and_set_ctrl(cfg, self.bdf, self.cap.offset, clear, set, Ctrl::Always);
        self.function_masked_at = match (masked, self.function_masked_at) {
            (true, Some(t)) if control & FUNCTION_MASK != 0 => Some(t),
            (true, _) => Some(crate::time::now_us()),
            (false, _) => None,
        };
    }

    /// pci_msix_shutdown: mask every entry in use, then clear Enable. INTx stays disabled, so the
    /// function is left unable to interrupt. Enable is cleared [`DISABLE_SETTLE_US`] (or the driver's
    /// shorter settle, [`Self::set_disable_settle_us`], while fences are ordered) after the Function
    /// Mask was set: here, or earlier through [`Self::set_function_mask`] if it stayed set since (the
    /// caller stopped the device before, so no message can come after it).
    pub fn shutdown(&mut self, cfg: &impl ConfigRegion) {
        for i in 0..self.used {
            self.set_entry_mask(i, true);
        }
        let cap = self.cap.offset;
        let control = cfg.read16(self.bdf, cap + CONTROL);
        // PCIe r5.0 7.7.2.2: Function Mask blocks every vector while Enable still keeps INTx off. A
        // Function Mask found clear (a reset cleared it behind this handle) is set and timed afresh.
        let masked_at = match self.function_masked_at {
            Some(t) if control & FUNCTION_MASK != 0 => t,
            _ => {
                clear_and_set_ctrl(cfg, self.bdf, cap, 0, FUNCTION_MASK, Ctrl::Known(control));
                crate::time::now_us()
            }
        };
        // Waits the settle out, then makes sure the device models' timers due by then have run. The
        // driver's shorter settle holds only with the fence: without it, lateness needs the whole 5 ms.
        let settle = if crate::time::fences_ordered() { self.disable_settle_us } else { DISABLE_SETTLE_US };
        crate::time::timers_run_by(masked_at + settle);
        clear_and_set_ctrl(cfg, self.bdf, cap, ENABLE | FUNCTION_MASK, 0, Ctrl::Known(control));
        self.function_masked_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::pci::bar::Bar;
    use crate::bus::pci::caps::CapList;

    fn function(bars: &[Bar]) -> Function {
        Function {
            bdf: Bdf::new(0, 3, 0),
            vendor: 0x1b36,
            device: 0x0010,
            class: 0x010802,
            revision: 2,
            header_type: 0,
            bars: bars.iter().copied().collect(),
            caps: CapList::default(),
            interrupt_pin: 1,
            interrupt_line: 11,
            bridge_buses: None,
            problems: std::vec::Vec::new(),
        }
    }

    fn mem(index: u8, address: u64, size: u64) -> Bar {
        Bar { index, kind: BarKind::Mem64, prefetchable: false, address, size }
    }

    fn cap(table_size: u16, table: (u8, u32), pba: (u8, u32)) -> MsixCapability {
        MsixCapability { offset: 0x40, table_size, table_bir: table.0, table_offset: table.1, pba_bir: pba.0, pba_offset: pba.1 }
    }

    #[test]
    fn reads_capability_fields_with_bir_masked_off() {
        let sim = crate::bus::pci::config::sim::SimConfig::default();
        let bdf = sim.add(Bdf::new(0, 3, 0), 0x1b36, 0x0010, 0x010802);
        sim.poke(bdf, 0x40, &[0x11, 0x00, 0x40, 0x00]);
        sim.poke(bdf, 0x44, &0x2000u32.to_le_bytes());
        sim.poke(bdf, 0x48, &0x3000u32.to_le_bytes());
        let c = read_capability(&sim, bdf, 0x40);
        assert_eq!(c, cap(65, (0, 0x2000), (0, 0x3000)));
        sim.poke(bdf, 0x44, &0x2003u32.to_le_bytes());
        assert_eq!(read_capability(&sim, bdf, 0x40).table_bir, 3);
        assert_eq!(read_capability(&sim, bdf, 0x40).table_offset, 0x2000, "BIR bits masked off the offset");
    }

    /// A function read from simulated config space: BAR0 a 16 KiB mem64 BAR at `bar0`, BAR2 a 32-byte
    /// I/O BAR, MSI-X at 0x40 with `entries` entries, Table and PBA offset/BIR registers as given.
    fn sim_function(bar0: u32, entries: u16, table: u32, pba: u32) -> (Function, MsixCapability) {
        use crate::bus::pci::config::sim::SimConfig;
        let sim = SimConfig::default();
        let bdf = sim.add(Bdf::new(0, 3, 0), 0x1b36, 0x0010, 0x010802);
        sim.bar(bdf, 0, 0xFFFF_C004, bar0 | 0x4);
        sim.bar(bdf, 1, 0xFFFF_FFFF, 0);
        sim.bar(bdf, 2, 0xFFFF_FFE1, 0xC001);
        sim.poke(bdf, 0x06, &regs::status::CAP_LIST.to_le_bytes());
        sim.poke(bdf, 0x34, &[0x40]);
        sim.poke(bdf, 0x40, &[0x11, 0x00]);
        sim.poke(bdf, 0x42, &(entries - 1).to_le_bytes());
        sim.poke(bdf, 0x44, &table.to_le_bytes());
        sim.poke(bdf, 0x48, &pba.to_le_bytes());
        let f = crate::bus::pci::enumerate::read_function(&sim, bdf);
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        let at = f.caps.find(crate::bus::pci::caps::id::MSIX).expect("MSI-X listed");
        let c = read_capability(&sim, bdf, at);
        (f, c)
    }

    #[test]
    fn bad_layouts_read_from_config_space_are_typed_errors() {
        let check = |bar0, entries, table, pba| {
            let (f, c) = sim_function(bar0, entries, table, pba);
            locate(&c, &f)
        };
        assert!(check(0xFEA1_0000, 65, 0x2000, 0x3000).is_ok(), "QEMU nvme layout");
        assert_eq!(check(0xFEA1_0000, 1, 0x2006, 0x3000), Err(MsixError::ReservedBir(6)));
        assert_eq!(check(0xFEA1_0000, 1, 0x2000, 0x3007), Err(MsixError::ReservedBir(7)));
        // 1024 entries * 16 B at 0x2000 run 8 KiB past the 16 KiB BAR.
        assert_eq!(check(0xFEA1_0000, 1024, 0x2000, 0x1000), Err(MsixError::TableOutsideBar));
        assert_eq!(check(0xFEA1_0000, 1, 0x0000, 0x4000), Err(MsixError::PbaOutsideBar));
        assert_eq!(check(0xFEA1_0000, 65, 0x2000, 0x2100), Err(MsixError::TableOverlapsPba));
        assert_eq!(check(0xFEA1_0000, 65, 0x2000, 0x2000), Err(MsixError::TableOverlapsPba));
        assert_eq!(check(0, 1, 0x2000, 0x3000), Err(MsixError::BarUnassigned(0)), "BAR0 left at address 0");
        assert_eq!(check(0xFEA1_0000, 1, 0x0002, 0x3000), Err(MsixError::BarIsIo(2)));
        assert_eq!(check(0xFEA1_0000, 1, 0x0004, 0x3000), Err(MsixError::BarMissing(4)));
        // The largest table (2048 entries) at the largest offset: no overflow, just outside.
        assert_eq!(check(0xFEA1_0000, 2048, 0xFFFF_FFF8, 0x3000), Err(MsixError::TableOutsideBar));
    }

    #[test]
    fn vanished_function_reads_a_reserved_bir() {
        let sim = crate::bus::pci::config::sim::SimConfig::default();
        let c = read_capability(&sim, Bdf::new(5, 0, 0), 0x40);
        assert_eq!((c.table_bir, c.pba_bir), (7, 7));
        assert_eq!(locate(&c, &function(&[mem(0, 0xFEA1_0000, 0x4000)])), Err(MsixError::ReservedBir(7)));
    }

    #[test]
    fn locates_qemu_layouts() {
        // nvme: 65 entries in BAR0 at 0x2000, PBA at 0x3000, BAR0 16 KiB.
        let f = function(&[mem(0, 0xFEA1_0000, 0x4000)]);
        let l = locate(&cap(65, (0, 0x2000), (0, 0x3000)), &f).unwrap();
        assert_eq!(l.table, (0, 0x2000, 65 * 16));
        assert_eq!(l.pba, (0, 0x3000, 16));
        // e1000e: table and PBA in BAR3.
        let f = function(&[mem(3, 0xFEA8_0000, 0x4000)]);
        assert!(locate(&cap(5, (3, 0), (3, 0x2000)), &f).is_ok());
    }

    #[test]
    fn rejects_bad_layouts() {
        let f = function(&[mem(0, 0xFEA1_0000, 0x4000)]);
        assert_eq!(locate(&cap(1, (6, 0), (0, 0x3000)), &f), Err(MsixError::ReservedBir(6)));
        assert_eq!(locate(&cap(1, (0, 0), (7, 0)), &f), Err(MsixError::ReservedBir(7)));
        assert_eq!(locate(&cap(1, (2, 0), (0, 0x3000)), &f), Err(MsixError::BarMissing(2)));
        assert_eq!(locate(&cap(2048, (0, 0x0), (0, 0x3000)), &f), Err(MsixError::TableOutsideBar));
        assert_eq!(locate(&cap(1, (0, 0), (0, 0x3FFC)), &f), Err(MsixError::PbaOutsideBar));
        assert_eq!(locate(&cap(65, (0, 0x2000), (0, 0x2100)), &f), Err(MsixError::TableOverlapsPba));
        assert_eq!(locate(&cap(1, (0, 0xFFFF_FFF8), (0, 0)), &f), Err(MsixError::TableOutsideBar));
        let unassigned = function(&[mem(0, 0, 0x4000)]);
        assert_eq!(locate(&cap(1, (0, 0), (0, 0x1000)), &unassigned), Err(MsixError::BarUnassigned(0)));
        let io = function(&[Bar { index: 0, kind: BarKind::Io, prefetchable: false, address: 0xC000, size: 0x4000 }]);
        assert_eq!(locate(&cap(1, (0, 0), (0, 0x1000)), &io), Err(MsixError::BarIsIo(0)));
    }
}
