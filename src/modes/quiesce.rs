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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::pci::config::sim::SimConfig;
    use crate::bus::pci::{caps, Bdf};

    /// A function with MSI at 0x40 and MSI-X at 0x50 (Message Control values given), Command `command`.
    fn function(sim: &SimConfig, dev: u8, header_type: u8, msi: u16, msix: u16, command: u16) -> Function {
        let bdf = sim.add(Bdf::new(0, dev, 0), 0x8086, 0x10d3, 0x020000);
        sim.poke(bdf, 0x04, &command.to_le_bytes());
        sim.poke(bdf, 0x06, &0x10u16.to_le_bytes());
        sim.poke(bdf, 0x0E, &[header_type]);
        sim.poke(bdf, 0x34, &[0x40]);
        sim.poke(bdf, 0x40, &[0x05, 0x50]);
        sim.poke(bdf, 0x42, &msi.to_le_bytes());
        sim.poke(bdf, 0x50, &[0x11, 0x00]);
        sim.poke(bdf, 0x52, &msix.to_le_bytes());
        Function {
            bdf,
            vendor: 0x8086,
            device: 0x10d3,
            class: 0x020000,
            revision: 0,
            header_type,
            bars: heapless::Vec::new(),
            caps: caps::walk(sim, bdf),
            interrupt_pin: 1,
            interrupt_line: 11,
            bridge_buses: None,
            problems: std::vec::Vec::new(),
        }
    }

    const BM: u16 = regs::command::BUS_MASTER;
    const MEM: u16 = regs::command::MEMORY;
    const INTX_OFF: u16 = regs::command::INTX_DISABLE;

    #[test]
    fn live_functions_left_quiet_in_linux_order() {
        let sim = SimConfig::default();
        let live = function(&sim, 3, 0, msi::ENABLE, msix::ENABLE | 4, MEM | BM);
        let bridge = function(&sim, 4, 1, 0, 0, MEM | BM);
        sim.writes.borrow_mut().clear();
        all(&sim, &[live.clone(), bridge.clone()]);
        let (a, b) = (live.bdf, bridge.bdf);
        assert_eq!(
            *sim.writes.borrow(),
            vec![
                (a, 0x42, 2, 0),
                (a, 0x52, 2, u32::from(msix::ENABLE | msix::FUNCTION_MASK | 4)),
                (a, 0x04, 2, u32::from(MEM | INTX_OFF)),
                // MSI off already: not written; MSI-X Function Mask set although Enable is clear.
                (b, 0x52, 2, u32::from(msix::FUNCTION_MASK)),
                // A bridge keeps Bus Master (it forwards its children's MSI writes).
                (b, 0x04, 2, u32::from(MEM | BM | INTX_OFF)),
                // The second pass, after the settle: MSI-X Enable cleared, Function Mask left set.
                (a, 0x52, 2, u32::from(msix::FUNCTION_MASK | 4)),
            ]
        );
        // Quiet already: a second pass writes nothing at all.
        sim.writes.borrow_mut().clear();
        all(&sim, &[live.clone(), bridge]);
        assert_eq!(*sim.writes.borrow(), vec![]);
    }

    #[test]
    fn a_function_let_go_is_quiet_again() {
        let sim = SimConfig::default();
        let f = function(&sim, 3, 0, 0, msix::ENABLE | 4, MEM | BM | INTX_OFF);
        sim.writes.borrow_mut().clear();
        function_quiet(&sim, &f);
        assert_eq!(
            *sim.writes.borrow(),
            vec![
                (f.bdf, 0x52, 2, u32::from(msix::ENABLE | msix::FUNCTION_MASK | 4)),
                (f.bdf, 0x52, 2, u32::from(msix::FUNCTION_MASK | 4)),
                (f.bdf, 0x04, 2, u32::from(MEM | INTX_OFF)),
            ]
        );
    }

    fn function_quiet(sim: &SimConfig, f: &Function) {
        super::function(sim, f)
    }
}
