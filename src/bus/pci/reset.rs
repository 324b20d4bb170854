//! Function resets and what a configuration-space save holds: Function Level Reset (PCIe 4.0 6.6.2), the
//! Secondary Bus Reset of a bridge (PCI-to-PCI Bridge 1.2 3.2.5.17), and saving/restoring the header
//! registers a reset clears (BARs and Command), as Linux's pci_save_state/pci_restore_state do. The MSI-X
//! table lives in BAR memory, not configuration space: a save does not hold it.

use super::caps::id;
use super::enumerate::Function;
use super::{regs, Bdf, ConfigRegion};

/// PCIe Device Capabilities (cap + 4): Function Level Reset Capability, bit 28.
const DEVCAP_FLR: u32 = 1 << 28;
/// PCIe Device Control (cap + 8): Initiate Function Level Reset, bit 15.
const DEVCTL_FLR: u16 = 1 << 15;
/// Bridge Control: Secondary Bus Reset, bit 6.
const BRIDGE_CTL_SBR: u16 = 1 << 6;
/// How long a function may take to come back from a reset before configuration requests (PCIe 4.0 6.6.1:
/// 100 ms).
pub const RESET_RECOVERY_US: u64 = 100_000;

/// A reset that could not be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetError {
    /// The function has no PCIe capability or does not advertise FLR.
    NoFlr,
    /// The bus has no bridge above it, or the bridge has other functions below it.
    NoPrivateBridge,
    /// The function did not answer after the reset.
    NotBack,
}

impl core::fmt::Display for ResetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoFlr => write!(f, "no Function Level Reset capability"),
            Self::NoPrivateBridge => write!(f, "no bridge whose secondary bus holds only this device"),
            Self::NotBack => write!(f, "function did not answer after the reset"),
        }
    }
}

/// The header registers a reset clears and a configuration-space save restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedHeader {
    bdf: Bdf,
    command: u16,
    bars: [u32; 6],
    count: usize,
}

impl SavedHeader {
    /// Saves Command and the BARs of `f`.
    pub fn save(cfg: &(impl ConfigRegion + ?Sized), f: &Function) -> SavedHeader {
        let count = if f.header_type == 1 { 2 } else { 6 };
        let mut bars = [0; 6];
        for (i, bar) in bars.iter_mut().enumerate().take(count) {
            *bar = cfg.read32(f.bdf, regs::BAR0 + 4 * i as u16);
        }
        SavedHeader { bdf: f.bdf, command: cfg.read16(f.bdf, regs::COMMAND), bars, count }
    }

    /// Writes the BARs back, then Command (decoding last, so nothing answers at a stale address).
    pub fn restore(&self, cfg: &(impl ConfigRegion + ?Sized)) {
        for i in 0..self.count {
            cfg.write32(self.bdf, regs::BAR0 + 4 * i as u16, self.bars[i]);
        }
        cfg.write16(self.bdf, regs::COMMAND, self.command);
    }

    /// Whether the BARs read back as saved (false after a reset cleared them).
    pub fn bars_intact(&self, cfg: &(impl ConfigRegion + ?Sized)) -> bool {
        (0..self.count).all(|i| cfg.read32(self.bdf, regs::BAR0 + 4 * i as u16) == self.bars[i])
    }
}

/// Whether `f` advertises Function Level Reset.
pub fn has_flr(cfg: &(impl ConfigRegion + ?Sized), f: &Function) -> bool {
    f.caps.find(id::PCIE).is_some_and(|cap| cfg.read32(f.bdf, cap + 4) & DEVCAP_FLR != 0)
}

/// Function Level Reset: Initiate FLR, then wait the recovery time.
pub fn function_level_reset(cfg: &(impl ConfigRegion + ?Sized), f: &Function) -> Result<(), ResetError> {
    let cap = f.caps.find(id::PCIE).filter(|_| has_flr(cfg, f)).ok_or(ResetError::NoFlr)?;
    let devctl = cfg.read16(f.bdf, cap + 8);
    cfg.write16(f.bdf, cap + 8, devctl | DEVCTL_FLR);
    crate::time::delay_us(RESET_RECOVERY_US);
    if cfg.read16(f.bdf, regs::VENDOR_ID) == 0xFFFF {
        return Err(ResetError::NotBack);
    }
    Ok(())
}

/// The bridge whose secondary bus `f` sits on, if no other device shares that bus.
pub fn private_bridge<'a>(functions: &'a [Function], f: &Function) -> Option<&'a Function> {
    let bridge = functions.iter().find(|b| b.bridge_buses.is_some_and(|(sec, _)| sec == f.bdf.bus))?;
    let alone = functions.iter().filter(|o| o.bdf.bus == f.bdf.bus).all(|o| o.bdf.dev == f.bdf.dev);
    alone.then_some(bridge)
}

/// Secondary Bus Reset through `bridge`: assert, hold, deassert, wait the recovery time.
pub fn secondary_bus_reset(cfg: &(impl ConfigRegion + ?Sized), bridge: &Function, child: Bdf) -> Result<(), ResetError> {
    let ctl = cfg.read16(bridge.bdf, regs::BRIDGE_CONTROL);
    cfg.write16(bridge.bdf, regs::BRIDGE_CONTROL, ctl | BRIDGE_CTL_SBR);
    crate::time::delay_us(2_000); // Trst: at least 1 ms (PCI 3.0 4.3.2)
    cfg.write16(bridge.bdf, regs::BRIDGE_CONTROL, ctl & !BRIDGE_CTL_SBR);
    crate::time::delay_us(RESET_RECOVERY_US);
    if cfg.read16(child, regs::VENDOR_ID) == 0xFFFF {
        return Err(ResetError::NotBack);
    }
    Ok(())
}
