//! MSI (PCI 3.0 6.8.1), programmed in Linux's order (msi_capability_init, __pci_write_msi_msg,
//! pci_msi_shutdown): Enable cleared, vectors masked, message written and flushed, INTx disabled, Enable
//! set, vectors unmasked.

use super::{clear_and_set_ctrl, Ctrl, IrqError};
use crate::bus::pci::config::update_command;
use crate::bus::pci::{regs, Bdf, ConfigRegion};
use crate::irq::message::MsiMessage;

/// Message Control, at cap + 2.
pub const CONTROL: u16 = 2;
/// Message Control: MSI Enable.
pub const ENABLE: u16 = 1 << 0;
/// Message Control: Multiple Message Capable (log2), bits 3:1.
pub const MMC_SHIFT: u16 = 1;
/// Message Control: Multiple Message Enable (log2), bits 6:4.
pub const MME_SHIFT: u16 = 4;
/// Message Control: 64-bit address capable.
pub const ADDR64: u16 = 1 << 7;
/// Message Control: per-vector masking capable.
pub const PER_VECTOR_MASK: u16 = 1 << 8;

/// The MSI capability and its register layout (which differs for 32- and 64-bit functions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsiCapability {
    /// Capability offset.
    pub offset: u16,
    /// log2 of the vectors the function can send (0-5).
    pub multiple_capable: u8,
    /// 64-bit address.
    pub is_64: bool,
    /// Per-vector Mask and Pending registers exist.
    pub maskable: bool,
}

/// A bad MSI capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsiError {
    /// Multiple Message Capable holds a reserved value (6 or 7).
    ReservedMultipleMessage(u8),
}

impl core::fmt::Display for MsiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::ReservedMultipleMessage(v) => write!(f, "MSI Multiple Message Capable {v} is reserved"),
        }
    }
}

impl MsiCapability {
    /// Vectors the function can send.
    pub fn max_vectors(&self) -> u16 {
        1 << self.multiple_capable
    }
    /// Message Address (low).
    pub fn address_lo(&self) -> u16 {
        self.offset + 4
    }
    /// Message Upper Address (64-bit only).
    pub fn address_hi(&self) -> Option<u16> {
        self.is_64.then_some(self.offset + 8)
    }
    /// Message Data.
    pub fn data(&self) -> u16 {
        self.offset + if self.is_64 { 0x0C } else { 0x08 }
    }
    /// Mask Bits (cap+0x0C for 32-bit, cap+0x10 for 64-bit), if maskable.
    pub fn mask(&self) -> Option<u16> {
        self.maskable.then_some(self.offset + if self.is_64 { 0x10 } else { 0x0C })
    }
    /// Pending Bits, if maskable.
    pub fn pending(&self) -> Option<u16> {
        self.maskable.then_some(self.offset + if self.is_64 { 0x14 } else { 0x10 })
    }
}

/// Reads the capability at `offset`.
pub fn read_capability(cfg: &impl ConfigRegion, bdf: Bdf, offset: u16) -> Result<MsiCapability, MsiError> {
    let control = cfg.read16(bdf, offset + CONTROL);
    let mmc = ((control >> MMC_SHIFT) & 7) as u8;
    if mmc > 5 {
        return Err(MsiError::ReservedMultipleMessage(mmc));
    }
    Ok(MsiCapability { offset, multiple_capable: mmc, is_64: control & ADDR64 != 0, maskable: control & PER_VECTOR_MASK != 0 })
}

/// Writes the message address (low, then high on a 64-bit function) of the MSI capability `cap`, as
/// __pci_write_msi_msg does (no flush: [`flush_and_verify`] follows).
pub fn write_address(cfg: &(impl ConfigRegion + ?Sized), bdf: Bdf, cap: &MsiCapability, address: u64) {
    cfg.write32(bdf, cap.address_lo(), address as u32);
    if let Some(hi) = cap.address_hi() {
        cfg.write32(bdf, hi, (address >> 32) as u32);
    }
}

/// Writes the message data of the MSI capability `cap` (16 bits: PCI 3.0 6.8.1.8).
pub fn write_data(cfg: &(impl ConfigRegion + ?Sized), bdf: Bdf, cap: &MsiCapability, data: u32) {
    cfg.write16(bdf, cap.data(), data as u16);
}

/// Reads Message Control to flush the posted message writes (__pci_write_msi_msg's final read) and then
/// the message back: whether the function holds `msg`.
pub fn flush_and_verify(cfg: &(impl ConfigRegion + ?Sized), bdf: Bdf, cap: &MsiCapability, msg: &MsiMessage) -> bool {
    let _ = cfg.read16(bdf, cap.offset + CONTROL);
    let lo_ok = cfg.read32(bdf, cap.address_lo()) == msg.address as u32;
    let hi_ok = cap.address_hi().is_none_or(|hi| cfg.read32(bdf, hi) == (msg.address >> 32) as u32);
    let data_ok = cfg.read16(bdf, cap.data()) == msg.data as u16;
    lo_ok && hi_ok && data_ok
}

/// A function with MSI enabled.
#[derive(Debug)]
pub struct MsiFunction {
    bdf: Bdf,
    cap: MsiCapability,
    count: u16,
}

impl MsiFunction {
    /// Enables MSI with `count` vectors (power of two) whose first message is `msg`.
    pub fn enable(cfg: &impl ConfigRegion, bdf: Bdf, cap: MsiCapability, msg: MsiMessage, count: u16) -> Result<MsiFunction, IrqError> {
        if cap.address_hi().is_none() && msg.address >> 32 != 0 {
            return Err(IrqError::ReadBack { entry: 0 });
        }
        let control_at = cap.offset + CONTROL;
        clear_and_set_ctrl(cfg, bdf, cap.offset, ENABLE, 0, Ctrl::Always);
        let bits = |n: u16| if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
        let all = bits(count);
        // Linux msi_capability_init (msi_multi_mask): every vector the function can send is masked, not
        // only those about to be enabled; the enabled ones are unmasked once MSI is on.
        if let Some(mask) = cap.mask() {
            cfg.write32(bdf, mask, cfg.read32(bdf, mask) | bits(cap.max_vectors().max(count)));
        }
        update_command(cfg, bdf, regs::command::BUS_MASTER, 0);
        // __pci_write_msi_msg: Multiple Message Enable, address, data, then a read of Control to flush.
        let mme = count.trailing_zeros() as u16;
        let control = clear_and_set_ctrl(cfg, bdf, cap.offset, 7 << MME_SHIFT, mme << MME_SHIFT, Ctrl::Always);
        let control = (control & !(7 << MME_SHIFT)) | (mme << MME_SHIFT);
        cfg.write32(bdf, cap.address_lo(), msg.address as u32);
        if let Some(hi) = cap.address_hi() {
            cfg.write32(bdf, hi, (msg.address >> 32) as u32);
        }
        cfg.write16(bdf, cap.data(), msg.data as u16);
        let _ = cfg.read16(bdf, control_at);
        let lo_ok = cfg.read32(bdf, cap.address_lo()) == msg.address as u32;
        let hi_ok = cap.address_hi().is_none_or(|hi| cfg.read32(bdf, hi) == (msg.address >> 32) as u32);
        let data_ok = cfg.read16(bdf, cap.data()) == msg.data as u16;
        if !(lo_ok && hi_ok && data_ok) {
            return Err(IrqError::ReadBack { entry: 0 });
        }
        // PCI 3.0 6.8.1: with MSI enabled the function must not assert INTx; disable it explicitly too.
        update_command(cfg, bdf, regs::command::INTX_DISABLE, 0);
        clear_and_set_ctrl(cfg, bdf, cap.offset, 0, ENABLE, Ctrl::Known(control));
        if let Some(mask) = cap.mask() {
            cfg.write32(bdf, mask, cfg.read32(bdf, mask) & !all);
        }
        Ok(MsiFunction { bdf, cap, count })
    }

    /// Whether the function has per-vector mask bits.
    pub fn maskable(&self) -> bool {
        self.cap.maskable
    }

    /// The capability.
    pub fn capability(&self) -> MsiCapability {
        self.cap
    }

    /// Vectors enabled.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// Sets the Mask Bits of every vector the function can send (`true`: all masked, as the order
    /// rules require while a live message changes) or writes `bits` back; returns the bits it found.
    /// `None` when the function has no mask bits.
    pub fn mask_all(&self, cfg: &(impl ConfigRegion + ?Sized), restore: Option<u32>) -> Option<u32> {
        let at = self.cap.mask()?;
        let bits = cfg.read32(self.bdf, at);
        let all = if self.cap.max_vectors() >= 32 { u32::MAX } else { (1u32 << self.cap.max_vectors()) - 1 };
        cfg.write32(self.bdf, at, restore.unwrap_or(bits | all));
        Some(bits)
    }

    /// Masks or unmasks vector `i`; false when the function has no mask bits or `i` is out of range.
    pub fn set_mask(&mut self, cfg: &impl ConfigRegion, i: u16, masked: bool) -> bool {
        let Some(mask) = self.cap.mask() else { return false };
        if i >= self.count {
            return false;
        }
        let bits = cfg.read32(self.bdf, mask);
        let new = if masked { bits | 1 << i } else { bits & !(1 << i) };
        cfg.write32(self.bdf, mask, new);
        true
    }

    /// Pending bit of vector `i`, if the function has one.
    pub fn pending(&self, cfg: &impl ConfigRegion, i: u16) -> Option<bool> {
        let pending = self.cap.pending()?;
        (i < self.count).then(|| cfg.read32(self.bdf, pending) & (1 << i) != 0)
    }

    /// Masks every vector (if maskable) and clears Enable; INTx stays disabled.
    pub fn shutdown(&mut self, cfg: &impl ConfigRegion) {
        if let Some(mask) = self.cap.mask() {
            let all = if self.count >= 32 { u32::MAX } else { (1u32 << self.count) - 1 };
            cfg.write32(self.bdf, mask, cfg.read32(self.bdf, mask) | all);
        }
        clear_and_set_ctrl(cfg, self.bdf, self.cap.offset, ENABLE, 0, Ctrl::Always);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::pci::config::sim::SimConfig;

    fn msi_device(control: u16) -> (SimConfig, Bdf) {
        let sim = SimConfig::default();
        let bdf = sim.add(Bdf::new(0, 4, 0), 0x1234, 0x11e8, 0x00ff00);
        sim.poke(bdf, 0x40, &[0x05, 0x00]);
        sim.poke(bdf, 0x42, &control.to_le_bytes());
        (sim, bdf)
    }

    #[test]
    fn layouts_for_32_and_64_bit() {
        let (sim, bdf) = msi_device(ADDR64 | PER_VECTOR_MASK);
        let c = read_capability(&sim, bdf, 0x40).unwrap();
        assert_eq!((c.data(), c.mask(), c.pending()), (0x4C, Some(0x50), Some(0x54)));
        let (sim, bdf) = msi_device(PER_VECTOR_MASK | (2 << MMC_SHIFT));
        let c = read_capability(&sim, bdf, 0x40).unwrap();
        assert_eq!((c.address_hi(), c.data(), c.mask(), c.pending()), (None, 0x48, Some(0x4C), Some(0x50)));
        assert_eq!(c.max_vectors(), 4);
        let (sim, bdf) = msi_device(6 << MMC_SHIFT);
        assert_eq!(read_capability(&sim, bdf, 0x40), Err(MsiError::ReservedMultipleMessage(6)));
    }

    #[test]
    fn reserved_multiple_message_capable_values_are_refused() {
        for mmc in [6u16, 7] {
            let (sim, bdf) = msi_device(ADDR64 | PER_VECTOR_MASK | (mmc << MMC_SHIFT));
            assert_eq!(read_capability(&sim, bdf, 0x40), Err(MsiError::ReservedMultipleMessage(mmc as u8)));
        }
        // A function that vanished reads Message Control 0xFFFF: MMC 7, refused rather than 128 vectors.
        let sim = SimConfig::default();
        assert_eq!(read_capability(&sim, Bdf::new(7, 0, 0), 0x40), Err(MsiError::ReservedMultipleMessage(7)));
    }

    #[test]
    fn enable_writes_in_linux_order() {
        let (sim, bdf) = msi_device(ADDR64 | PER_VECTOR_MASK | (1 << MMC_SHIFT));
        let cap = read_capability(&sim, bdf, 0x40).unwrap();
        let msg = crate::irq::message::compose(0, 0x40).unwrap();
        let mut f = MsiFunction::enable(&sim, bdf, cap, msg, 2).unwrap();
        let w: std::vec::Vec<(u16, u32)> = sim.writes.borrow().iter().map(|w| (w.1, w.3)).collect();
        let pos = |off: u16| w.iter().position(|x| x.0 == off).unwrap();
        let enable_at = w.iter().rposition(|x| x.0 == 0x42 && x.1 as u16 & ENABLE != 0).unwrap();
        assert!(pos(0x50) < pos(0x44), "vectors masked before the message is written");
        assert!(pos(0x44) < enable_at && pos(0x4C) < enable_at, "message before Enable");
        assert!(w.iter().position(|x| x.0 == 0x04 && x.1 as u16 & regs::command::INTX_DISABLE != 0).unwrap() < enable_at);
        assert_eq!(sim.read16(bdf, 0x42) & (7 << MME_SHIFT), 1 << MME_SHIFT, "2 vectors enabled");
        assert_eq!(sim.read32(bdf, 0x44), 0xFEE0_0000);
        assert_eq!(sim.read16(bdf, 0x4C), 0x40);
        assert_eq!(sim.read32(bdf, 0x50) & 3, 0, "unmasked after enable");
        assert!(f.set_mask(&sim, 1, true));
        assert_eq!(sim.read32(bdf, 0x50) & 3, 2);
        f.shutdown(&sim);
        assert_eq!(sim.read16(bdf, 0x42) & ENABLE, 0);
    }

    #[test]
    fn vectors_the_function_can_send_but_not_enabled_stay_masked() {
        // 8 capable (MMC = 3), 2 enabled: the first mask write covers all 8 (msi_multi_mask), and only the
        // 2 enabled are unmasked.
        let (sim, bdf) = msi_device(ADDR64 | PER_VECTOR_MASK | (3 << MMC_SHIFT));
        let cap = read_capability(&sim, bdf, 0x40).unwrap();
        let msg = crate::irq::message::compose(0, 0x40).unwrap();
        let _f = MsiFunction::enable(&sim, bdf, cap, msg, 2).unwrap();
        let first_mask = sim.writes.borrow().iter().find(|w| w.1 == 0x50).map(|w| w.3).unwrap();
        assert_eq!(first_mask & 0xFF, 0xFF);
        assert_eq!(sim.read32(bdf, 0x50) & 0xFF, 0xFC);
    }
}
