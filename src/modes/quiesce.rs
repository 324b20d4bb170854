//! Quieting: leaving functions unable to interrupt or master the bus, as Linux's PCI core does at
//! enumeration (pci_msi_init, pci_msix_init, pci_intx) and after a driver lets go of a function.

use super::{clear_and_set_ctrl, msi, msix, Ctrl};
use crate::bus::pci::config::update_command;
use crate::bus::pci::enumerate::Function;
use crate::bus::pci::{caps, regs, ConfigRegion};

/// Makes every function in `functions` unable to interrupt, as if a crashed kernel had left it live:
/// MSI Enable cleared, MSI-X Enable cleared with the Function Mask set (pci_msi_init/pci_msix_init do
/// the same at enumeration), INTx disabled, and Bus Master off for every endpoint until a driver owns it
/// (a bridge keeps its Bus Master: it forwards its children's MSI writes upstream). MSI-X entries are
/// not masked one by one here: that happens when MSI-X is enabled successfully, as in Linux (a device
/// that honours the mask bits while MSI-X is disabled would otherwise be blocked in MSI mode).
///
/// Two passes: the first sets every Function Mask (and does the rest), the second clears MSI-X Enable
/// [`msix::DISABLE_SETTLE_US`] later, once, for all functions.
pub fn all(cfg: &(impl ConfigRegion + ?Sized), functions: &[Function]) {
    let mut msix_was_enabled = false;
    for f in functions {
        if let Some(at) = f.caps.find(caps::id::MSI) {
            clear_and_set_ctrl(cfg, f.bdf, at, msi::ENABLE, 0, Ctrl::IfChanged);
        }
        if let Some(at) = f.caps.find(caps::id::MSIX) {
            let control = clear_and_set_ctrl(cfg, f.bdf, at, 0, msix::FUNCTION_MASK, Ctrl::IfChanged);
            msix_was_enabled |= control & msix::ENABLE != 0;
        }
        let clear = if f.header_type == 0 { regs::command::BUS_MASTER } else { 0 };
        update_command(cfg, f.bdf, regs::command::INTX_DISABLE, clear);
    }
    if !msix_was_enabled {
        return;
    }
    crate::time::timers_run_by(crate::time::now_us() + msix::DISABLE_SETTLE_US);
    for f in functions {
        if let Some(at) = f.caps.find(caps::id::MSIX) {
            clear_and_set_ctrl(cfg, f.bdf, at, msix::ENABLE, 0, Ctrl::IfChanged);
        }
    }
}

/// Leaves a function msifw does not drive (any more) unable to interrupt or master the bus: MSI off,
/// MSI-X off (Function Mask first, Enable cleared after the settle QEMU's e1000e needs), INTx disabled
/// (where the function implements the bit) and Bus Master off for an endpoint, as [`all`] leaves it.
pub fn function(cfg: &(impl ConfigRegion + ?Sized), f: &Function) {
    if let Some(at) = f.caps.find(caps::id::MSI) {
        clear_and_set_ctrl(cfg, f.bdf, at, msi::ENABLE, 0, Ctrl::IfChanged);
    }
    if let Some(at) = f.caps.find(caps::id::MSIX) {
        let control = cfg.read16(f.bdf, at + msix::CONTROL);
        if control & msix::ENABLE != 0 {
            clear_and_set_ctrl(cfg, f.bdf, at, 0, msix::FUNCTION_MASK, Ctrl::Known(control));
            crate::time::timers_run_by(crate::time::now_us() + msix::DISABLE_SETTLE_US);
            clear_and_set_ctrl(cfg, f.bdf, at, msix::ENABLE, msix::FUNCTION_MASK, Ctrl::Known(control));
        }
    }
    // A bridge keeps its Bus Master: it forwards its children's MSI writes upstream.
    let bus_master = if f.header_type == 0 { regs::command::BUS_MASTER } else { 0 };
    update_command(cfg, f.bdf, regs::command::INTX_DISABLE, bus_master);
}
