//! PCI Express root and downstream ports: the hot-plug Command Completed interrupt (PCIe 4.0 6.7.3.2,
//! 7.5.3.10-7.5.3.11), the one port interrupt a guest can raise on demand. Every write to Slot Control is a
//! hot-plug command; the port sets Slot Status.Command Completed when done and, with Hot-Plug Interrupt
//! Enable and Command Completed Interrupt Enable set, interrupts on the message number in its PCIe
//! Capabilities register. QEMU completes each command at once. The driver rewrites Slot Control unchanged
//! apart from the two enables (Power Controller Control and the indicators keep their values, so the slot's
//! device is not powered off), as Linux's pciehp does.

use super::{Driver, DriverError, InterruptSource, IrqRequest, StartError};
use crate::bus::pci::config::PlatformConfig;
use crate::modes::{DeviceIrq, IrqMode};
use crate::bus::pci::caps::id;
use crate::bus::pci::enumerate::Function;
use crate::bus::pci::{Bdf, ConfigRegion};

/// PCIe Capabilities register (cap + 2): device/port type in bits 7:4, Slot Implemented in bit 8.
const PCIE_CAPS: u16 = 0x02;
/// Slot Capabilities (cap + 0x14).
const SLOT_CAP: u16 = 0x14;
/// Slot Control (cap + 0x18).
const SLOT_CTL: u16 = 0x18;
/// Slot Status (cap + 0x1A).
const SLOT_STA: u16 = 0x1A;
/// Slot Capabilities: Hot-Plug Capable.
const SLTCAP_HPC: u32 = 1 << 6;
/// Slot Capabilities: No Command Completed Support.
const SLTCAP_NCCS: u32 = 1 << 18;
/// Slot Control: Command Completed Interrupt Enable.
const SLTCTL_CCIE: u16 = 1 << 4;
/// Slot Control: Hot-Plug Interrupt Enable.
const SLTCTL_HPIE: u16 = 1 << 5;
/// Slot Status: Command Completed (RW1C).
const SLTSTA_CC: u16 = 1 << 4;

/// Slot Status: Attention Button Pressed (RW1C).
const SLTSTA_ABP: u16 = 1 << 0;
/// Slot Control: Power Indicator Control (bits 9:8; 11b = off).
const SLTCTL_PIC_MASK: u16 = 0b11 << 8;
const SLTCTL_PIC_OFF: u16 = 0b11 << 8;
/// Slot Control: Power Controller Control (1 = power off).
const SLTCTL_PCC_OFF: u16 = 1 << 10;

/// Whether the slot below hot-plug port `f` reports Attention Button Pressed (how QEMU's `device_del`
/// asks the guest for a slot: PCIe 4.0 6.7.1.5, 7.5.3.11). Clears the status when set.
pub fn take_attention_button(cfg: &dyn ConfigRegion, f: &Function) -> bool {
    let Some(cap) = f.caps.find(id::PCIE) else { return false };
    let status = cfg.read16(f.bdf, cap + SLOT_STA);
    if status == u16::MAX || status & SLTSTA_ABP == 0 {
        return false;
    }
    // PCIe 4.0 7.5.3.11: RW1C; only ABP is written as 1.
    cfg.write16(f.bdf, cap + SLOT_STA, SLTSTA_ABP);
    true
}

/// Acknowledges every hot-plug event the slot reports (Attention Button Pressed, Power Fault, MRL Sensor
/// Changed, Presence Detect Changed, Command Completed, Data Link Layer State Changed; PCIe 4.0 7.5.3.11,
/// all RW1C), writing 1 only to the bits that are set (QEMU ignores the whole write otherwise). While an
/// enabled event stays set the port's interrupt condition stays true, so the next event raises no new
/// message (PCIe 4.0 6.7.3.4): the Command Completed of the power-off command is one such.
pub fn acknowledge_slot_events(cfg: &dyn ConfigRegion, f: &Function) {
    let Some(cap) = f.caps.find(id::PCIE) else { return };
    let status = cfg.read16(f.bdf, cap + SLOT_STA);
    let events = status & (0x001F | (1 << 8));
    if status != u16::MAX && events != 0 {
        cfg.write16(f.bdf, cap + SLOT_STA, events);
    }
}

/// Powers off the slot below hot-plug port `f` with its power indicator off (PCIe 4.0 7.5.3.10), the
/// answer to an attention button that lets the device go (Linux pciehp's `pciehp_power_off_slot`).
pub fn power_off_slot(cfg: &dyn ConfigRegion, f: &Function) {
    let Some(cap) = f.caps.find(id::PCIE) else { return };
    let ctl = cfg.read16(f.bdf, cap + SLOT_CTL);
    cfg.write16(f.bdf, cap + SLOT_CTL, (ctl & !SLTCTL_PIC_MASK) | SLTCTL_PIC_OFF | SLTCTL_PCC_OFF);
}

/// Whether `f` is a hot-plug-capable root or downstream port with command-completed events.
pub fn is_hotplug_port(cfg: &dyn ConfigRegion, f: &Function) -> bool {
    let Some(cap) = f.caps.find(id::PCIE) else { return false };
    let caps = cfg.read16(f.bdf, cap + PCIE_CAPS);
    let port_type = (caps >> 4) & 0xF;
    let slot = caps & (1 << 8) != 0;
    let sltcap = cfg.read32(f.bdf, cap + SLOT_CAP);
    matches!(port_type, 4 | 6) && slot && sltcap & SLTCAP_HPC != 0 && sltcap & SLTCAP_NCCS == 0
}

/// The port driver.
pub struct PciePort<'c> {
    cfg: &'c (dyn ConfigRegion + Sync),
    bdf: Bdf,
    cap: u16,
    saved_ctl: u16,
}

impl core::fmt::Debug for PciePort<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PciePort").field("bdf", &self.bdf).field("cap", &self.cap).finish()
    }
}

impl<'c> PciePort<'c> {
    /// Checks the port and clears any stale Command Completed status. Slot Control keeps its value until
    /// [`PciePort::enable`].
    pub fn new(cfg: &'c (dyn ConfigRegion + Sync), f: &Function) -> Result<PciePort<'c>, DriverError> {
        let cap = f.caps.find(id::PCIE).ok_or(DriverError::Unexpected("PCIe capability", 0))?;
        if !is_hotplug_port(cfg, f) {
            return Err(DriverError::Unexpected("port without command-completed hot-plug events", cap as u64));
        }
        let saved_ctl = cfg.read16(f.bdf, cap + SLOT_CTL);
        cfg.write16(f.bdf, cap + SLOT_STA, SLTSTA_CC);
        Ok(PciePort { cfg, bdf: f.bdf, cap, saved_ctl })
    }

    /// Turns the hot-plug interrupt on for command completions (call once the interrupt mode is set up):
    /// this write is itself a command, so its completion is acknowledged here.
    pub fn enable(&mut self) -> Result<(), DriverError> {
        let ctl = self.cfg.read16(self.bdf, self.cap + SLOT_CTL);
        self.cfg.write16(self.bdf, self.cap + SLOT_CTL, ctl | SLTCTL_HPIE | SLTCTL_CCIE);
        self.wait_completed()?;
        self.cfg.write16(self.bdf, self.cap + SLOT_STA, SLTSTA_CC);
        Ok(())
    }

    fn wait_completed(&self) -> Result<(), DriverError> {
        // PCIe 4.0 6.7.3.2: a command completes within 1 s.
        if crate::time::wait_until(1_000_000, || self.cfg.read16(self.bdf, self.cap + SLOT_STA) & SLTSTA_CC != 0) {
            Ok(())
        } else {
            Err(DriverError::Timeout("Slot Status.Command Completed"))
        }
    }
}

impl InterruptSource for PciePort<'_> {
    fn sources(&self) -> usize {
        1
    }

    fn trigger(&mut self, i: usize) -> Result<(), DriverError> {
        if i != 0 {
            return Err(DriverError::NoSuchSource(i));
        }
        // Rewrite Slot Control unchanged: a no-op command whose completion interrupts.
        let ctl = self.cfg.read16(self.bdf, self.cap + SLOT_CTL);
        self.cfg.write16(self.bdf, self.cap + SLOT_CTL, ctl);
        Ok(())
    }

    fn acknowledge(&mut self, i: usize) -> Result<(), DriverError> {
        if i != 0 {
            return Err(DriverError::NoSuchSource(i));
        }
        self.wait_completed()?;
        self.cfg.write16(self.bdf, self.cap + SLOT_STA, SLTSTA_CC);
        Ok(())
    }
}

impl Drop for PciePort<'_> {
    fn drop(&mut self) {
        // Back to the boot firmware's Slot Control (interrupt enables off); that is a command too.
        let ctl = self.cfg.read16(self.bdf, self.cap + SLOT_CTL);
        let restored = (ctl & !(SLTCTL_HPIE | SLTCTL_CCIE)) | (self.saved_ctl & (SLTCTL_HPIE | SLTCTL_CCIE));
        self.cfg.write16(self.bdf, self.cap + SLOT_CTL, restored);
        let _ = self.wait_completed();
        self.cfg.write16(self.bdf, self.cap + SLOT_STA, SLTSTA_CC);
    }
}

impl Driver for PciePort<'static> {
    const NAME: &'static str = "pcie-port";
    /// Hot-plug events use the message number in the PCIe Capabilities register (0 on QEMU's ports);
    /// two, so a port with multi-message MSI (ioh3420) gets an aligned block.
    const VECTORS: u16 = 2;
    const SOURCES: usize = 1;

    /// A PCI Express bridge (root or downstream port).
    fn matches(f: &Function) -> bool {
        f.class >> 8 == 0x0604 && f.header_type == 1 && f.caps.find(id::PCIE).is_some()
    }

    /// Only a port with hot-plug command-completed events.
    fn accepts(cfg: &PlatformConfig, f: &Function) -> bool {
        is_hotplug_port(cfg, f)
    }

    fn start(irq: &mut IrqRequest<'_>) -> Result<(Self, DeviceIrq<'static, PlatformConfig>), StartError> {
        if irq.mode() == IrqMode::Intx {
            // Measured on QEMU 7.2 (ioh3420, pcie-root-port): the hot-plug interrupt arrives on the
            // port's GSI but Status.Interrupt stays clear, so no shared-line handler can attribute it.
            return Err(StartError::Declined(
                "port hot-plug interrupts through INTx are not attributable (Status.Interrupt stays clear on QEMU 7.2)",
            ));
        }
        let mut dev = PciePort::new(irq.cfg(), irq.function())?;
        let vectors = irq.enable(Self::VECTORS)?;
        dev.enable()?;
        Ok((dev, vectors))
    }
}
