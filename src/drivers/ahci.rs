//! AHCI host bus adapter (class 0x010601; QEMU's `ich9-ahci` 8086:2922, built into every q35 at 00:1f.2,
//! and `-device ahci`, the same model): one port event raised on demand, in MSI (one vector, no
//! per-vector masking) and INTx (devices-2.md section 3).
//!
//! The event is the D2H Register FIS an HBA posts when the FIS receive engine of a port starts after a
//! reset (PxIS.DHRS, AHCI 1.3.1 section 3.3.5), on the lowest implemented port. It needs no drive and no
//! fixed wait: QEMU posts it on the PxCMD.FRE write for an empty port too (`ahci_init_d2h`, devices-2.md
//! section 3.3), but only once per reset of the port. Commands need a drive (QEMU ignores a command to
//! an empty port, `handle_cmd`), and a COMRESET through PxSCTL.DET must hold DET = 1 for at least 1 ms
//! (section 3.3.11) for every trigger; an HBA reset (GHC.HR, section 10.4.3) has no fixed wait (it is
//! polled until the HBA clears it, which QEMU does at once) and re-arms the port, so every trigger
//! resets the HBA and programs the port again: [`arm_sequence`].
//!
//! Taking the HBA over (Linux's ahci_init_controller and ahci_stop_engine): AHCI mode set, then every
//! implemented port stopped (a boot ROM such as SeaBIOS leaves the port with a disk running, and a
//! crashed kernel leaves its ports running) before anything about interrupts is written.
//!
//! Acknowledge: PxIS then IS, write-1-to-clear, in that order (section 10.7.2.1; QEMU recomputes IS from
//! PxIS and sends another MSI message when IS is written first, devices-2.md section 3.2). That is two
//! writes, so the driver names no single INTx acknowledge write.

use super::{Driver, DriverError, InterruptSource, IrqRequest, StartError};
use crate::arch::dma::DmaPage;
use crate::arch::mmio::MmioWindow;
use crate::bus::pci::bar;
use crate::bus::pci::config::PlatformConfig;
use crate::bus::pci::enumerate::Function;
use crate::modes::DeviceIrq;
use crate::time;

/// PCI class code of an AHCI 1.0 SATA controller (AHCI 1.3.1 section 2.1.3).
pub const CLASS: u32 = 0x01_06_01;

/// The BAR holding the HBA registers (ABAR, section 2.1.11).
pub const ABAR: u8 = 5;

/// Generic host control registers (section 3.1).
pub mod reg {
    /// Host Capabilities.
    pub const CAP: u64 = 0x00;
    /// Global HBA Control.
    pub const GHC: u64 = 0x04;
    /// Interrupt Status: one bit per port, write 1 to clear.
    pub const IS: u64 = 0x08;
    /// Ports Implemented.
    pub const PI: u64 = 0x0C;
    /// First port register block; port `n` at `PORTS + PORT_SIZE * n`.
    pub const PORTS: u64 = 0x100;
    /// Size of one port register block.
    pub const PORT_SIZE: u64 = 0x80;
}

/// Port registers, offsets inside a port block (section 3.3).
pub mod port {
    /// Command List Base Address (1 KiB aligned) and its upper half.
    pub const CLB: u64 = 0x00;
    /// Upper 32 bits of CLB.
    pub const CLBU: u64 = 0x04;
    /// FIS Base Address (256-byte aligned).
    pub const FB: u64 = 0x08;
    /// Upper 32 bits of FB.
    pub const FBU: u64 = 0x0C;
    /// Interrupt Status (write 1 to clear).
    pub const IS: u64 = 0x10;
    /// Interrupt Enable.
    pub const IE: u64 = 0x14;
    /// Command and Status.
    pub const CMD: u64 = 0x18;
    /// Serial ATA Error (write 1 to clear).
    pub const SERR: u64 = 0x30;
}

/// GHC bits (section 3.1.2).
pub mod ghc {
    /// HBA Reset.
    pub const HR: u32 = 1 << 0;
    /// Interrupt Enable.
    pub const IE: u32 = 1 << 1;
    /// AHCI Enable.
    pub const AE: u32 = 1 << 31;
}

/// PxCMD bits (section 3.3.7).
pub mod cmd {
    /// Start (command list processing).
    pub const ST: u32 = 1 << 0;
    /// Spin-Up Device.
    pub const SUD: u32 = 1 << 1;
    /// Power On Device.
    pub const POD: u32 = 1 << 2;
    /// FIS Receive Enable.
    pub const FRE: u32 = 1 << 4;
    /// FIS Receive Running.
    pub const FR: u32 = 1 << 14;
    /// Command List Running.
    pub const CR: u32 = 1 << 15;
}

/// PxIS / PxIE bit of the event used: Device to Host Register FIS Interrupt (section 3.3.5).
pub const DHRS: u32 = 1 << 0;

/// Offset of the received-FIS area in the driver's DMA page (256-byte aligned, section 4.2.1); the
/// command list sits at 0 (1 KiB aligned, 32 headers of 32 bytes).
pub const FIS_OFFSET: u64 = 0x400;

/// How long a port may take to clear PxCMD.CR after ST is cleared, and FR after FRE (section 10.1.2,
/// step 3: "at least 500 milliseconds").
pub const STOP_TIMEOUT_US: u64 = 500_000;
/// How long the HBA may take to clear GHC.HR (section 10.4.3: "1 second").
pub const RESET_TIMEOUT_US: u64 = 1_000_000;

/// Offset of port `n`'s register `r` in ABAR.
pub const fn port_reg(n: u8, r: u64) -> u64 {
    reg::PORTS + reg::PORT_SIZE * n as u64 + r
}

/// The port the event is raised on: the lowest implemented one (PI, section 3.1.4).
pub fn event_port(pi: u32) -> Option<u8> {
    (pi != 0).then(|| pi.trailing_zeros() as u8)
}

/// The writes that, after the HBA reset completed (GHC.HR read back clear), program port `n` with the
/// driver's memory at `dma` and raise one DHRS on it, in order (section 10.1.2 steps 5-7, then 10.4.3:
/// after a reset software re-enables AHCI mode): AHCI mode first; the command list and FIS areas; stale
/// errors and status cleared; only DHRS enabled, then GHC.IE; and last PxCMD.FRE, on which the HBA
/// posts the port's first D2H Register FIS into the FIS area and sets PxIS.DHRS. Nothing is pending when
/// PxIE and GHC.IE are written, so those raise nothing.
pub const fn arm_sequence(n: u8, dma: u64) -> [(u64, u32); 10] {
    let fis = dma + FIS_OFFSET;
    [
        (reg::GHC, ghc::AE),
        (port_reg(n, port::CLB), dma as u32),
        (port_reg(n, port::CLBU), (dma >> 32) as u32),
        (port_reg(n, port::FB), fis as u32),
        (port_reg(n, port::FBU), (fis >> 32) as u32),
        (port_reg(n, port::SERR), u32::MAX),
        (port_reg(n, port::IS), u32::MAX),
        (port_reg(n, port::IE), DHRS),
        (reg::GHC, ghc::AE | ghc::IE),
        (port_reg(n, port::CMD), cmd::POD | cmd::SUD | cmd::FRE),
    ]
}

/// The acknowledge of port `n`'s DHRS, in the order of section 10.7.2.1: the port's PxIS first, then its
/// IS bit (IS would be set again at once while PxIS is pending).
pub const fn ack_sequence(n: u8) -> [(u64, u32); 2] {
    [(port_reg(n, port::IS), DHRS), (reg::IS, 1 << n)]
}

/// The writes that stop the HBA interrupting (GHC.IE and every cause of the port off, pending status
/// cleared, PxIS before IS).
pub const fn quiet_sequence(n: u8) -> [(u64, u32); 4] {
    [
        (reg::GHC, ghc::AE),
        (port_reg(n, port::IE), 0),
        (port_reg(n, port::IS), u32::MAX),
        (reg::IS, u32::MAX),
    ]
}

/// The AHCI driver state.
#[derive(Debug)]
pub struct Ahci {
    regs: MmioWindow,
    /// Command list at 0, received FIS at [`FIS_OFFSET`].
    dma: DmaPage,
    /// The port the event is raised on.
    port: u8,
    /// Ports found running at takeover (PxCMD.ST, CR, FRE or FR set), one bit each.
    found_running: u32,
    /// The event is armed (between start and stop).
    started: bool,
}

impl Ahci {
    /// Maps ABAR, sets AHCI mode, stops every implemented port and resets the HBA: nothing can interrupt
    /// or do DMA afterwards.
    pub fn new(function: &Function) -> Result<Ahci, DriverError> {
        let abar = function.bar(ABAR).ok_or(DriverError::Bar(ABAR))?;
        let regs = bar::window(function.bdf, abar).map_err(|_| DriverError::Bar(ABAR))?;
        if regs.len() < reg::PORTS {
            return Err(DriverError::Bar(ABAR));
        }
        let cap = regs.read32(reg::CAP);
        if cap == u32::MAX {
            return Err(DriverError::Unexpected("CAP", cap as u64));
        }
        // Section 10.1.2 step 1: AHCI mode before any other register is used; GHC.IE stays clear.
        regs.write32(reg::GHC, ghc::AE);
        let pi = regs.read32(reg::PI);
        let port = event_port(pi).ok_or(DriverError::Unexpected("PI (no port implemented)", 0))?;
        if regs.len() < port_reg(port, reg::PORT_SIZE) {
            return Err(DriverError::Bar(ABAR));
        }
        let dma = DmaPage::alloc().ok_or(DriverError::NoDmaMemory)?;
        if dma.phys() >> 32 != 0 && cap & (1 << 31) == 0 {
            return Err(DriverError::Unexpected(
                "DMA page above 4 GiB without CAP.S64A",
                dma.phys(),
            ));
        }
        let mut this = Ahci {
            regs,
            dma,
            port,
            found_running: 0,
            started: false,
        };
        for n in (0..32u8).filter(|n| pi & (1 << n) != 0) {
            if this.regs.len() < port_reg(n, reg::PORT_SIZE) {
                break;
            }
            if this.stop_port(n)? {
                this.found_running |= 1 << n;
            }
        }
        this.reset()?;
        Ok(this)
    }

    /// Stops port `n` (section 10.1.2 step 3, Linux's ahci_stop_engine and ahci_stop_fis_rx): PxCMD.ST
    /// cleared and CR awaited, then FRE cleared and FR awaited. Returns whether it was running.
    fn stop_port(&self, n: u8) -> Result<bool, DriverError> {
        let at = port_reg(n, port::CMD);
        let was = self.regs.read32(at);
        let running = was & (cmd::ST | cmd::CR | cmd::FRE | cmd::FR) != 0;
        if was & (cmd::ST | cmd::CR) != 0 {
            // Section 3.3.7: FRE must stay set while ST is set; ST is cleared alone first.
            self.regs.write32(at, was & !cmd::ST);
            if !time::wait_until(STOP_TIMEOUT_US, || self.regs.read32(at) & cmd::CR == 0) {
                return Err(DriverError::Timeout("PxCMD.CR = 0"));
            }
        }
        let now = self.regs.read32(at);
        if now & (cmd::FRE | cmd::FR) != 0 {
            self.regs.write32(at, now & !(cmd::FRE | cmd::ST));
            if !time::wait_until(STOP_TIMEOUT_US, || self.regs.read32(at) & cmd::FR == 0) {
                return Err(DriverError::Timeout("PxCMD.FR = 0"));
            }
        }
        Ok(running)
    }

    /// HBA reset (section 10.4.3): GHC.HR set, polled until the HBA clears it. Every port is reset
    /// and the interrupt registers are cleared; the ports were stopped before.
    fn reset(&self) -> Result<(), DriverError> {
        self.regs.write32(reg::GHC, ghc::AE | ghc::HR);
        if !time::wait_until(RESET_TIMEOUT_US, || {
            self.regs.read32(reg::GHC) & ghc::HR == 0
        }) {
            return Err(DriverError::Timeout("GHC.HR = 0"));
        }
        Ok(())
    }

    /// Raises the event: an HBA reset, then [`arm_sequence`].
    fn arm(&mut self) -> Result<(), DriverError> {
        self.reset()?;
        for (offset, value) in arm_sequence(self.port, self.dma.phys()) {
            self.regs.write32(offset, value);
        }
        self.started = true;
        Ok(())
    }

    fn quiet(&self) {
        for (offset, value) in quiet_sequence(self.port) {
            self.regs.write32(offset, value);
        }
        let _ = self.regs.read32(reg::GHC);
    }
}

impl Driver for Ahci {
    const NAME: &'static str = "ahci";
    /// One MSI vector (QEMU: `msi_init(.., 1, ..)`), or INTx.
    const VECTORS: u16 = 1;
    const SOURCES: usize = 1;

    fn matches(f: &Function) -> bool {
        f.class == CLASS && f.header_type == 0
    }

    fn start(
        irq: &mut IrqRequest<'_>,
    ) -> Result<(Self, DeviceIrq<'static, PlatformConfig>), StartError> {
        // Ports stopped and the HBA reset before the interrupt mode is enabled: a port a previous owner
        // left running, or status it left pending, never reaches the handler.
        let t0 = time::now_us();
        let mut dev = Ahci::new(irq.function())?;
        crate::info!(
            "{} ahci: event on port {=u8}; ports found running at takeover {=u32:#x}, stopped; HBA reset in {=u64} us",
            irq.function().bdf,
            dev.port,
            dev.found_running,
            time::now_us() - t0
        );
        let vectors = irq.enable(Self::VECTORS)?;
        dev.started = true;
        Ok((dev, vectors))
    }
}

impl InterruptSource for Ahci {
    fn sources(&self) -> usize {
        usize::from(self.started)
    }

    fn trigger(&mut self, i: usize) -> Result<(), DriverError> {
        if i >= self.sources() {
            return Err(DriverError::NoSuchSource(i));
        }
        self.arm()
    }

    fn late_message_us(&self) -> Option<u64> {
        // QEMU's AHCI sends a message only from ahci_check_irq, run by register writes and completed
        // commands (devices-2.md section 3); the trigger's D2H FIS comes from the FIS-receive enable
        // write itself and no command is issued, so no timer or I/O completion is left to send later.
        Some(0)
    }

    fn acknowledge(&mut self, i: usize) -> Result<(), DriverError> {
        if i >= self.sources() {
            return Err(DriverError::NoSuchSource(i));
        }
        for (offset, value) in ack_sequence(self.port) {
            self.regs.write32(offset, value);
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<(), DriverError> {
        self.quiet();
        self.stop_port(self.port)?;
        self.started = false;
        Ok(())
    }

    fn reinitialize(&mut self, _vectors: usize) -> Result<(), DriverError> {
        // A reset of the function cleared GHC.IE and the port's registers; the next trigger programs them.
        self.quiet();
        self.reset()?;
        self.started = true;
        Ok(())
    }
}

impl Drop for Ahci {
    fn drop(&mut self) {
        // No DMA into the page after it is freed: the FIS receive engine stopped.
        self.quiet();
        let _ = self.stop_port(self.port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_port_is_the_lowest_implemented() {
        assert_eq!(event_port(0x3F), Some(0));
        assert_eq!(event_port(0b1010_0000), Some(5));
        assert_eq!(event_port(0), None);
        assert_eq!(port_reg(5, port::CMD), 0x100 + 5 * 0x80 + 0x18);
    }

    #[test]
    fn arming_enables_the_interrupt_before_it_starts_the_fis_engine() {
        let s = arm_sequence(2, 0x1_2345_6000);
        let at = |r: u64, v: Option<u32>| {
            s.iter()
                .position(|w| w.0 == r && v.is_none_or(|v| w.1 == v))
                .unwrap()
        };
        assert_eq!(s[0], (reg::GHC, ghc::AE), "AHCI mode first (10.4.3)");
        assert_eq!(
            s[s.len() - 1],
            (port_reg(2, port::CMD), cmd::POD | cmd::SUD | cmd::FRE),
            "FRE last, ST never"
        );
        assert!(
            at(port_reg(2, port::FB), None) < at(port_reg(2, port::CMD), None),
            "FIS area before FRE (3.3.7)"
        );
        assert_eq!(s[at(port_reg(2, port::FB), None)].1, 0x2345_6400);
        assert_eq!(s[at(port_reg(2, port::FBU), None)].1, 1);
        assert_eq!(
            s[at(port_reg(2, port::CLB), None)].1 % 1024,
            0,
            "command list 1 KiB aligned"
        );
        assert!(
            at(port_reg(2, port::IS), None) < at(port_reg(2, port::IE), None),
            "stale status cleared before enabling"
        );
        assert!(at(port_reg(2, port::IE), Some(DHRS)) < at(reg::GHC, Some(ghc::AE | ghc::IE)));
        assert!(
            s.iter().all(|w| w.0 != reg::GHC || w.1 & ghc::HR == 0),
            "the reset is polled before, not inside"
        );
    }

    #[test]
    fn acknowledge_clears_the_port_before_the_hba() {
        assert_eq!(
            ack_sequence(3),
            [(port_reg(3, port::IS), DHRS), (reg::IS, 1 << 3)],
            "10.7.2.1: PxIS, then IS"
        );
        let q = quiet_sequence(1);
        assert_eq!(q[0], (reg::GHC, ghc::AE), "GHC.IE off first");
        let pxis = q.iter().position(|w| w.0 == port_reg(1, port::IS)).unwrap();
        let is = q.iter().position(|w| w.0 == reg::IS).unwrap();
        assert!(pxis < is);
    }

    #[test]
    fn only_the_ahci_class_on_a_device_header() {
        assert_eq!(CLASS, 0x010601);
    }
}
