//! NVMe controller (QEMU nvme; NVMe Base 1.4 sections 3.1 and 7.6): taken back from the boot firmware,
//! admin queues set up, Identify Controller commands completing on the admin CQ, which always signals
//! vector 0. MSI-X must be enabled before the controller is (qemu-7.2-facts.md section 2: QEMU binds the
//! admin CQ's vector at CC.EN; enabled later, the completion interrupt is lost).

use super::{DriverError, InterruptSource};
use crate::arch::dma::DmaPage;
use crate::arch::mmio::MmioWindow;
use crate::bus::pci::bar;
use crate::bus::pci::enumerate::Function;
use crate::time;

/// Controller registers (NVMe 1.4 Figure 78).
pub mod reg {
    /// Controller Capabilities (64-bit).
    pub const CAP: u64 = 0x00;
    /// Version.
    pub const VS: u64 = 0x08;
    /// Interrupt Mask Set.
    pub const INTMS: u64 = 0x0C;
    /// Interrupt Mask Clear.
    pub const INTMC: u64 = 0x10;
    /// Controller Configuration.
    pub const CC: u64 = 0x14;
    /// Controller Status.
    pub const CSTS: u64 = 0x1C;
    /// Admin Queue Attributes.
    pub const AQA: u64 = 0x24;
    /// Admin Submission Queue base (64-bit).
    pub const ASQ: u64 = 0x28;
    /// Admin Completion Queue base (64-bit).
    pub const ACQ: u64 = 0x30;
    /// First doorbell (SQ0 tail).
    pub const DOORBELLS: u64 = 0x1000;
}

/// CC value: EN, CSS = NVM, MPS = 4 KiB, IOSQES = 6 (64 B), IOCQES = 4 (16 B).
pub const CC_ENABLE: u32 = 0x0046_0001;
/// Admin queue depth used here.
pub const ADMIN_DEPTH: u16 = 16;
const CSTS_RDY: u32 = 1;
const CSTS_CFS: u32 = 1 << 1;
const OPC_IDENTIFY: u32 = 0x06;

/// The NVMe driver state.
#[derive(Debug)]
pub struct Nvme {
    regs: MmioWindow,
    vendor: u16,
    stride: u64,
    timeout_us: u64,
    asq: DmaPage,
    acq: DmaPage,
    data: DmaPage,
    sq_tail: u16,
    cq_head: u16,
    phase: bool,
    next_cid: u16,
    outstanding: Option<u16>,
    enabled: bool,
}

impl Nvme {
    /// Maps BAR0 and disables the controller (SeaBIOS leaves it enabled with queues in its own memory).
    pub fn new(function: &Function) -> Result<Nvme, DriverError> {
        let bar0 = function.bar(0).ok_or(DriverError::Bar(0))?;
        let regs = bar::window(bar0).map_err(|_| DriverError::Bar(0))?;
        if regs.len() < 0x2000 {
            return Err(DriverError::Bar(0));
        }
        let cap = regs.read64(reg::CAP);
        if cap == u64::MAX {
            return Err(DriverError::Unexpected("CAP", cap));
        }
        let stride = 4u64 << ((cap >> 32) & 0xF);
        // CAP.TO is in 500 ms units: the longest the controller may take to change CSTS.RDY.
        let timeout_us = ((cap >> 24) & 0xFF).max(1) * 500_000;
        let alloc = || DmaPage::alloc().ok_or(DriverError::NoDmaMemory);
        let mut this = Nvme {
            regs,
            vendor: function.vendor,
            stride,
            timeout_us,
            asq: alloc()?,
            acq: alloc()?,
            data: alloc()?,
            sq_tail: 0,
            cq_head: 0,
            phase: true,
            next_cid: 1,
            outstanding: None,
            enabled: false,
        };
        this.disable()?;
        Ok(this)
    }

    fn doorbell(&self, index: u64) -> u64 {
        reg::DOORBELLS + index * self.stride
    }

    /// CC.EN = 0 and wait for CSTS.RDY = 0 (NVMe 1.4 7.6.2: a controller reset).
    pub fn disable(&mut self) -> Result<(), DriverError> {
        let cc = self.regs.read32(reg::CC);
        if cc & 1 != 0 {
            self.regs.write32(reg::CC, cc & !1);
        }
        self.enabled = false;
        if !time::wait_until(self.timeout_us, || self.regs.read32(reg::CSTS) & CSTS_RDY == 0) {
            return Err(DriverError::Timeout("CSTS.RDY = 0"));
        }
        Ok(())
    }

    /// Programs the admin queues and enables the controller (NVMe 1.4 7.6.1).
    pub fn enable(&mut self) -> Result<(), DriverError> {
        self.sq_tail = 0;
        self.cq_head = 0;
        self.phase = true;
        self.outstanding = None;
        for off in (0..4096).step_by(8) {
            self.acq.write64(off, 0);
        }
        let depth = (ADMIN_DEPTH - 1) as u32;
        self.regs.write32(reg::AQA, depth << 16 | depth);
        self.regs.write64(reg::ASQ, self.asq.phys());
        self.regs.write64(reg::ACQ, self.acq.phys());
        self.regs.write32(reg::CC, CC_ENABLE);
        let ready = time::wait_until(self.timeout_us, || self.regs.read32(reg::CSTS) & (CSTS_RDY | CSTS_CFS) != 0);
        let csts = self.regs.read32(reg::CSTS);
        if csts & CSTS_CFS != 0 {
            return Err(DriverError::Unexpected("CSTS (controller fatal status)", csts as u64));
        }
        if !ready {
            return Err(DriverError::Timeout("CSTS.RDY = 1"));
        }
        self.enabled = true;
        Ok(())
    }

    /// Submits Identify Controller (CNS 1) into the admin SQ and rings its doorbell.
    fn submit_identify(&mut self) -> u16 {
        let cid = self.next_cid;
        self.next_cid = self.next_cid.wrapping_add(1).max(1);
        let sqe = self.sq_tail as usize * 64;
        for off in (0..64).step_by(8) {
            self.asq.write64(sqe + off, 0);
        }
        self.asq.write32(sqe, OPC_IDENTIFY | (cid as u32) << 16);
        self.asq.write64(sqe + 24, self.data.phys()); // PRP1
        self.asq.write32(sqe + 40, 1); // CDW10: CNS = 1, Identify Controller
        self.sq_tail = (self.sq_tail + 1) % ADMIN_DEPTH;
        self.regs.write32(self.doorbell(0), self.sq_tail as u32);
        cid
    }

    /// Consumes the completion at the CQ head, checks it, and writes the CQ head doorbell (which also
    /// deasserts INTx when the queue is empty).
    fn complete(&mut self, expected_cid: u16) -> Result<(), DriverError> {
        let cqe = self.cq_head as usize * 16;
        let dw3 = self.acq.read32(cqe + 12);
        let phase = dw3 & (1 << 16) != 0;
        if phase != self.phase {
            return Err(DriverError::Timeout("completion queue entry"));
        }
        let cid = (dw3 & 0xFFFF) as u16;
        let status = dw3 >> 17;
        self.cq_head = (self.cq_head + 1) % ADMIN_DEPTH;
        if self.cq_head == 0 {
            self.phase = !self.phase;
        }
        self.regs.write32(self.doorbell(1), self.cq_head as u32);
        if cid != expected_cid {
            return Err(DriverError::Unexpected("completion command id", cid as u64));
        }
        if status != 0 {
            return Err(DriverError::Unexpected("completion status", status as u64));
        }
        // The identify data came by DMA: its PCI vendor ID field must match config space.
        let vid = (self.data.read32(0) & 0xFFFF) as u16;
        if vid != self.vendor {
            return Err(DriverError::Unexpected("Identify VID", vid as u64));
        }
        Ok(())
    }

    /// NVMe version register.
    pub fn version(&self) -> u32 {
        self.regs.read32(reg::VS)
    }
}

impl InterruptSource for Nvme {
    fn sources(&self) -> usize {
        1
    }

    fn trigger(&mut self, i: usize) -> Result<(), DriverError> {
        if i != 0 {
            return Err(DriverError::NoSuchSource(i));
        }
        if !self.enabled {
            self.enable()?;
        }
        let cid = self.submit_identify();
        self.outstanding = Some(cid);
        Ok(())
    }

    fn acknowledge(&mut self, i: usize) -> Result<(), DriverError> {
        if i != 0 {
            return Err(DriverError::NoSuchSource(i));
        }
        let cid = self.outstanding.take().ok_or(DriverError::NoSuchSource(i))?;
        // The interrupt may race the CQE's visibility only on real hardware; give it a moment.
        let cqe = self.cq_head as usize * 16;
        let phase = self.phase;
        time::wait_until(100_000, || (self.acq.read32(cqe + 12) & (1 << 16) != 0) == phase);
        self.complete(cid)
    }
}

impl Drop for Nvme {
    fn drop(&mut self) {
        // Stop DMA into pages about to be returned to the pool.
        let _ = self.disable();
    }
}
