//! NVMe controller (QEMU nvme; NVMe Base 1.4 sections 3.1, 5 and 7.6): taken back from the boot firmware,
//! admin queues set up, and optionally I/O queue pairs whose completion queues signal their own interrupt
//! vectors. Source 0 is an Identify Controller on the admin queue (whose CQ always uses vector 0); source
//! k >= 1 is a Flush on I/O queue k, completing on vector k.
//!
//! MSI-X must be enabled before the controller is (qemu-7.2-facts.md section 2: QEMU binds a CQ's vector
//! when the CQ is created; enabled later, the completion interrupt is lost).

use super::{Driver, DriverError, InterruptSource, IrqRequest, StartError};
use crate::bus::pci::config::PlatformConfig;
use crate::modes::{DeviceIrq, IrqMode};
use crate::arch::dma::DmaPage;
use crate::arch::mmio::MmioWindow;
use crate::bus::pci::bar;
use crate::bus::pci::enumerate::Function;
use crate::bus::pci::{regs, Bdf, ConfigRegion};
use crate::time;
use heapless::Vec;

/// Controller registers (NVMe 1.4 Figure 78).
pub mod reg {
    /// Controller Capabilities (64-bit).
    pub const CAP: u64 = 0x00;
    /// Version.
    pub const VS: u64 = 0x08;
    /// Interrupt Mask Set (INTx and MSI only).
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
/// Depth of every queue used here.
pub const DEPTH: u16 = 16;
/// Most I/O queue pairs driven.
pub const MAX_IO_QUEUES: usize = 8;
const CSTS_RDY: u32 = 1;
const CSTS_CFS: u32 = 1 << 1;
/// Admin opcodes (NVMe 1.4 Figure 139) and the NVM Flush opcode.
mod opc {
    pub const CREATE_IO_SQ: u32 = 0x01;
    pub const CREATE_IO_CQ: u32 = 0x05;
    pub const IDENTIFY: u32 = 0x06;
    pub const SET_FEATURES: u32 = 0x09;
    pub const ASYNC_EVENT_REQUEST: u32 = 0x0C;
    pub const FLUSH: u32 = 0x00;
}
/// Feature Identifier: Number of Queues (NVMe Base 2.0 5.27.1.5; 1.4 5.21.1.7).
const FID_NUMBER_OF_QUEUES: u32 = 0x07;
/// All namespaces (NVMe 1.4 3.2.1.1): a Flush needs no particular namespace to exist.
const NSID_BROADCAST: u32 = 0xFFFF_FFFF;

/// One submission/completion queue pair.
#[derive(Debug)]
struct QueuePair {
    qid: u16,
    sq: DmaPage,
    cq: DmaPage,
    sq_tail: u16,
    cq_head: u16,
    phase: bool,
    outstanding: Option<u16>,
}

impl QueuePair {
    fn new(qid: u16) -> Result<QueuePair, DriverError> {
        let page = || DmaPage::alloc().ok_or(DriverError::NoDmaMemory);
        Ok(QueuePair { qid, sq: page()?, cq: page()?, sq_tail: 0, cq_head: 0, phase: true, outstanding: None })
    }

    fn reset(&mut self) {
        self.sq_tail = 0;
        self.cq_head = 0;
        self.phase = true;
        self.outstanding = None;
        for off in (0..4096).step_by(8) {
            self.cq.write64(off, 0);
        }
    }
}

/// The NVMe driver state.
#[derive(Debug)]
pub struct Nvme {
    regs: MmioWindow,
    vendor: u16,
    stride: u64,
    timeout_us: u64,
    queues: Vec<QueuePair, { MAX_IO_QUEUES + 1 }>,
    data: DmaPage,
    next_cid: u16,
    enabled: bool,
    /// Reads the function's Status.Interrupt (its INTx level, whatever Interrupt Disable says), when the
    /// caller gave one ([`Nvme::watch_intx_level`]): used to find a level left asserted by a previous
    /// owner when the controller is taken over.
    intx_level: Option<LevelProbe>,
    /// Stale INTx assertions drained at the last enable (see [`Nvme::enable`]).
    drained: u32,
    /// I/O queue pairs the controller granted ([`Nvme::set_queue_count`]); none created beyond them.
    granted: Option<u16>,
}

/// Where the function's Status register is read.
#[derive(Clone, Copy)]
struct LevelProbe(&'static (dyn ConfigRegion + Sync), Bdf);

impl core::fmt::Debug for LevelProbe {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Status.Interrupt of {}", self.1)
    }
}

/// Most CQ head doorbell writes spent draining a stale INTx level: one per completion queue the
/// previous owner can have left pending (QEMU 7.2 counts them in `cq_pending`); 64 I/O queues and the
/// admin queue by default.
const MAX_STALE_DRAINS: u32 = 65;

impl Nvme {
    /// Maps BAR0 and disables the controller (SeaBIOS leaves it enabled with queues in its own memory).
    pub fn new(function: &Function) -> Result<Nvme, DriverError> {
        let bar0 = function.bar(0).ok_or(DriverError::Bar(0))?;
        let regs = bar::window(function.bdf, bar0).map_err(|_| DriverError::Bar(0))?;
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
        let mut queues = Vec::new();
        let _ = queues.push(QueuePair::new(0)?);
        let mut this = Nvme {
            regs,
            vendor: function.vendor,
            stride,
            timeout_us,
            queues,
            data: DmaPage::alloc().ok_or(DriverError::NoDmaMemory)?,
            next_cid: 1,
            enabled: false,
            intx_level: None,
            drained: 0,
            granted: None,
        };
        this.disable()?;
        Ok(this)
    }

    fn sq_doorbell(&self, qid: u16) -> u64 {
        reg::DOORBELLS + (2 * qid as u64) * self.stride
    }

    fn cq_doorbell(&self, qid: u16) -> u64 {
        reg::DOORBELLS + (2 * qid as u64 + 1) * self.stride
    }

    /// CC.EN = 0 and wait for CSTS.RDY = 0 (NVMe 1.4 7.6.2: a controller reset; I/O queues are gone).
    pub fn disable(&mut self) -> Result<(), DriverError> {
        let cc = self.regs.read32(reg::CC);
        if cc & 1 != 0 {
            self.regs.write32(reg::CC, cc & !1);
        }
        self.enabled = false;
        self.queues.truncate(1);
        if !time::wait_until(self.timeout_us, || self.regs.read32(reg::CSTS) & CSTS_RDY == 0) {
            return Err(DriverError::Timeout("CSTS.RDY = 0"));
        }
        Ok(())
    }

    /// Programs the admin queues and enables the controller (NVMe 1.4 7.6.1).
    pub fn enable(&mut self) -> Result<(), DriverError> {
        self.queues.truncate(1);
        let admin = &mut self.queues[0];
        admin.reset();
        let depth = (DEPTH - 1) as u32;
        self.regs.write32(reg::AQA, depth << 16 | depth);
        self.regs.write64(reg::ASQ, admin.sq.phys());
        self.regs.write64(reg::ACQ, admin.cq.phys());
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
        self.drain_stale_intx()
    }

    /// Gives the driver a way to read the function's INTx level (Status.Interrupt), so that taking the
    /// controller over copes with a line a previous owner left asserted ([`Nvme::enable`]).
    pub fn watch_intx_level(&mut self, cfg: &'static (dyn ConfigRegion + Sync), bdf: Bdf) {
        self.intx_level = Some(LevelProbe(cfg, bdf));
    }

    /// Stale INTx assertions drained at the last enable.
    pub fn drained_stale_intx(&self) -> u32 {
        self.drained
    }

    /// A controller that was just enabled has no command outstanding and an empty admin completion
    /// queue, so with INTMS clear (a controller reset clears it, NVMe 1.4 3.1.3) it has no reason to
    /// assert INTx. A level found asserted now was left by a previous owner that never consumed its
    /// completions. Measured on QEMU 7.2 after a crash restart: its nvme keeps the pin asserted across
    /// the controller reset and never lowers it again on its own, so every later completion goes unseen
    /// (it keeps the interrupt status and its count of completion queues with pending entries,
    /// `cq_pending`, which the reset does not clear; a head doorbell at an empty queue decrements it). A robust driver acknowledges it
    /// before it unmasks the line: a CQ head doorbell write at the (empty) head is the acknowledgement
    /// (NVMe 1.4 3.1.25, the host consumed everything up to the head), repeated while the level stays
    /// up, at most once per queue the previous owner can have left pending. Before the line is enabled,
    /// so nothing is counted. Only MSI-X off: with MSI-X on, the controller does not use its pin.
    fn drain_stale_intx(&mut self) -> Result<(), DriverError> {
        self.drained = 0;
        let Some(LevelProbe(cfg, bdf)) = self.intx_level else { return Ok(()) };
        // Status.Interrupt shows the function's INTx level whatever Interrupt Disable says (PCI 3.0 6.2.3).
        let level = || cfg.read16(bdf, regs::STATUS) & regs::status::INTERRUPT != 0;
        while level() {
            if self.drained == MAX_STALE_DRAINS {
                return Err(DriverError::Unexpected("INTx still asserted with nothing pending, after CQ head doorbell writes", self.drained as u64));
            }
            let head = self.queues[0].cq_head;
            self.regs.write32(self.cq_doorbell(0), head as u32);
            self.drained += 1;
        }
        Ok(())
    }

    /// Creates `n` I/O queue pairs; pair k's completion queue signals interrupt vector k (MSI-X entry k).
    /// Admin commands here are polled; their completions still raise vector 0.
    pub fn create_io_queues(&mut self, n: usize) -> Result<(), DriverError> {
        for _ in 0..n.min(MAX_IO_QUEUES) {
            self.create_io_queue()?;
        }
        Ok(())
    }

    /// Creates the next I/O queue pair k, whose completion queue signals vector k.
    pub fn create_io_queue(&mut self) -> Result<(), DriverError> {
        let k = self.queues.len() as u16;
        if k as usize > MAX_IO_QUEUES {
            return Err(DriverError::NoSuchSource(k as usize));
        }
        if self.granted.is_some_and(|g| k > g) {
            return Err(DriverError::Unexpected("I/O queue beyond what Set Features (Number of Queues) granted", k as u64));
        }
        let pair = QueuePair::new(k)?;
        let (cq, sq) = (pair.cq.phys(), pair.sq.phys());
        let size = ((DEPTH - 1) as u32) << 16 | k as u32;
        // Create I/O Completion Queue: CDW11 = interrupt vector << 16 | IEN | PC (NVMe 1.4 5.3).
        self.admin(opc::CREATE_IO_CQ, cq, size, (k as u32) << 16 | 0b11)?;
        // Create I/O Submission Queue: CDW11 = CQID << 16 | PC (NVMe 1.4 5.4).
        self.admin(opc::CREATE_IO_SQ, sq, size, (k as u32) << 16 | 0b1)?;
        self.queues.push(pair).map_err(|_| DriverError::NoSuchSource(k as usize))?;
        Ok(())
    }

    /// Submits an admin command, waits for its completion and returns its Dword 0.
    fn admin(&mut self, opcode: u32, prp1: u64, cdw10: u32, cdw11: u32) -> Result<u32, DriverError> {
        let cid = self.submit(0, opcode, 0, prp1, cdw10, cdw11);
        let q = &self.queues[0];
        let at = q.cq_head as usize * 16 + 12;
        let phase = q.phase;
        if !time::wait_until(self.timeout_us, || (q.cq.read32(at) & (1 << 16) != 0) == phase) {
            return Err(DriverError::Timeout("admin command completion"));
        }
        self.complete(0, cid)
    }

    fn submit(&mut self, q: usize, opcode: u32, nsid: u32, prp1: u64, cdw10: u32, cdw11: u32) -> u16 {
        let cid = self.next_cid;
        self.next_cid = self.next_cid.wrapping_add(1).max(1);
        let queue = &mut self.queues[q];
        let sqe = queue.sq_tail as usize * 64;
        for off in (0..64).step_by(8) {
            queue.sq.write64(sqe + off, 0);
        }
        queue.sq.write32(sqe, opcode | (cid as u32) << 16);
        queue.sq.write32(sqe + 4, nsid);
        queue.sq.write64(sqe + 24, prp1);
        queue.sq.write32(sqe + 40, cdw10);
        queue.sq.write32(sqe + 44, cdw11);
        queue.sq_tail = (queue.sq_tail + 1) % DEPTH;
        let (qid, tail) = (queue.qid, queue.sq_tail);
        self.regs.write32(self.sq_doorbell(qid), tail as u32);
        cid
    }

    /// Consumes the completion at queue `q`'s head, checks it, and writes the CQ head doorbell (which also
    /// deasserts INTx when the queue is empty).
    fn complete(&mut self, q: usize, expected_cid: u16) -> Result<u32, DriverError> {
        let queue = &mut self.queues[q];
        let cqe = queue.cq_head as usize * 16;
        let dw0 = queue.cq.read32(cqe);
        let dw3 = queue.cq.read32(cqe + 12);
        if (dw3 & (1 << 16) != 0) != queue.phase {
            return Err(DriverError::Timeout("completion queue entry"));
        }
        let cid = (dw3 & 0xFFFF) as u16;
        let status = dw3 >> 17;
        queue.cq_head = (queue.cq_head + 1) % DEPTH;
        if queue.cq_head == 0 {
            queue.phase = !queue.phase;
        }
        let (qid, head) = (queue.qid, queue.cq_head);
        self.regs.write32(self.cq_doorbell(qid), head as u32);
        if cid != expected_cid {
            return Err(DriverError::Unexpected("completion command id", cid as u64));
        }
        if status != 0 {
            return Err(DriverError::Unexpected("completion status", status as u64));
        }
        Ok(dw0)
    }

    /// Submits an Asynchronous Event Request on the admin queue (NVMe 1.4 5.2): it completes only when the
    /// controller has an event to report, so on an idle controller never. Returns its command id.
    pub fn submit_async_event_request(&mut self) -> Result<u16, DriverError> {
        if !self.enabled {
            self.enable()?;
        }
        Ok(self.submit(0, opc::ASYNC_EVENT_REQUEST, 0, 0, 0, 0))
    }

    /// Waits up to `us` for admin command `cid` to complete and consumes its completion; a typed
    /// [`DriverError::Timeout`] if none came (the command stays outstanding until the controller is
    /// disabled).
    pub fn wait_admin_completion(&mut self, cid: u16, us: u64) -> Result<(), DriverError> {
        let q = &self.queues[0];
        let at = q.cq_head as usize * 16 + 12;
        let phase = q.phase;
        if !time::wait_until(us, || (q.cq.read32(at) & (1 << 16) != 0) == phase) {
            return Err(DriverError::Timeout("admin command completion"));
        }
        self.complete(0, cid).map(|_| ())
    }

    /// Asks for `wanted` I/O submission and completion queues with Set Features, Number of Queues (NVMe
    /// Base 2.0 5.27.1.5; 1.4 5.21.1.7: CDW11 NCQR in 31:16 and NSQR in 15:0, both 0's based; completion
    /// Dword 0 NCQA and NSQA, 0's based) and returns how many queue pairs the controller granted, which
    /// may be fewer (or more) than asked; only that many I/O queues may be created. Before any I/O queue
    /// exists (a controller may refuse it later).
    pub fn set_queue_count(&mut self, wanted: u16) -> Result<u16, DriverError> {
        let n = wanted.max(1) as u32 - 1;
        let dw0 = self.admin(opc::SET_FEATURES, 0, FID_NUMBER_OF_QUEUES, n << 16 | n)?;
        let granted = granted_pairs(dw0);
        self.granted = Some(granted);
        Ok(granted)
    }

    /// NVMe version register.
    pub fn version(&self) -> u32 {
        self.regs.read32(reg::VS)
    }

    /// Masks (`true`) or unmasks the INTx/MSI interrupt at the controller (INTMS/INTMC, vector 0).
    pub fn mask_interrupt(&mut self, masked: bool) {
        self.regs.write32(if masked { reg::INTMS } else { reg::INTMC }, 1);
    }
}

impl InterruptSource for Nvme {
    fn sources(&self) -> usize {
        self.queues.len()
    }

    fn trigger(&mut self, i: usize) -> Result<(), DriverError> {
        if i >= self.queues.len() {
            return Err(DriverError::NoSuchSource(i));
        }
        if !self.enabled {
            self.enable()?;
        }
        // A command of this source still outstanding (its interrupt was never acknowledged: a check that
        // stopped at a lost interrupt): its completion is consumed first, or the next acknowledge would
        // find it at the head in place of the new command's.
        if self.queues[i].outstanding.is_some() {
            self.acknowledge(i)?;
        }
        let cid = if i == 0 {
            let data = self.data.phys();
            self.submit(0, opc::IDENTIFY, 0, data, 1, 0) // CNS 1: Identify Controller
        } else {
            self.submit(i, opc::FLUSH, NSID_BROADCAST, 0, 0, 0)
        };
        self.queues[i].outstanding = Some(cid);
        Ok(())
    }

    fn stop(&mut self) -> Result<(), DriverError> {
        self.disable()
    }

    fn late_message_us(&self) -> Option<u64> {
        // QEMU 7.2's NVMe model keeps no timer that sends a message: it raises a completion through
        // msix_notify in the main-loop pass that posts it (the one a trigger's completion waits for), only
        // while msix_enabled, and a disabled controller (stop) posts none. Only the fence.
        Some(0)
    }

    fn add_source(&mut self) -> Result<(), DriverError> {
        self.create_io_queue()
    }

    fn reinitialize(&mut self, vectors: usize) -> Result<(), DriverError> {
        // After a reset the controller is disabled and its queues are gone; AQA/ASQ/ACQ may survive, but
        // are rewritten anyway (qemu-7.2-facts.md section 9).
        self.enabled = false;
        self.queues.truncate(1);
        self.enable()?;
        let wanted = vectors.saturating_sub(1);
        if wanted > 0 {
            self.set_queue_count(wanted as u16)?;
        }
        self.create_io_queues(wanted)
    }

    fn acknowledge(&mut self, i: usize) -> Result<(), DriverError> {
        let cid = self.queues.get_mut(i).and_then(|q| q.outstanding.take()).ok_or(DriverError::NoSuchSource(i))?;
        // The interrupt may race the CQE's visibility only on real hardware; give it a moment.
        let q = &self.queues[i];
        let at = q.cq_head as usize * 16 + 12;
        let phase = q.phase;
        time::wait_until(100_000, || (q.cq.read32(at) & (1 << 16) != 0) == phase);
        self.complete(i, cid)?;
        if i == 0 {
            // The identify data came by DMA: its PCI vendor ID field must match config space.
            let vid = (self.data.read32(0) & 0xFFFF) as u16;
            if vid != self.vendor {
                return Err(DriverError::Unexpected("Identify VID", vid as u64));
            }
        }
        Ok(())
    }
}

/// I/O queue pairs granted by a Number of Queues completion's Dword 0 (NCQA 31:16, NSQA 15:0, 0's based):
/// a pair needs one of each.
pub fn granted_pairs(dw0: u32) -> u16 {
    let nsqa = (dw0 & 0xFFFF) as u16;
    let ncqa = (dw0 >> 16) as u16;
    nsqa.min(ncqa).saturating_add(1)
}

impl Drop for Nvme {
    fn drop(&mut self) {
        // Stop DMA into pages about to be returned to the pool.
        let _ = self.disable();
    }
}

/// I/O queue pairs (and so MSI-X vectors beyond the admin queue's) driven on each controller.
pub const IO_QUEUES: usize = 4;

impl Driver for Nvme {
    const NAME: &'static str = "nvme";
    /// Admin queue on vector 0, and in MSI-X mode I/O queues 1..=N on vectors 1..=N.
    const VECTORS: u16 = 1 + IO_QUEUES as u16;
    const SOURCES: usize = 1 + IO_QUEUES;

    fn matches(f: &Function) -> bool {
        f.class == 0x010802 && f.header_type == 0
    }

    fn start(irq: &mut IrqRequest<'_>) -> Result<(Self, DeviceIrq<'static, PlatformConfig>), StartError> {
        let f = irq.function();
        let mode = irq.mode();
        // MSI-X before CC.EN: QEMU binds the admin CQ's vector when the controller is enabled.
        let mut dev = Nvme::new(f)?;
        // Taking the controller over copes with an INTx level a previous owner left asserted (drained
        // at enable, see Nvme::enable): in INTx mode the controller is enabled before its line is, so
        // nothing stale reaches the handler.
        dev.watch_intx_level(irq.cfg(), f.bdf);
        if mode == IrqMode::Intx {
            dev.enable()?;
        }
        // QEMU rejects a CQ vector other than 0 without MSI-X.
        let mut vectors = irq.enable(Self::VECTORS)?;
        if mode != IrqMode::Intx {
            dev.enable()?;
        }
        if mode == IrqMode::Msix {
            // Only as many I/O queues as the controller grants (Set Features, Number of Queues), and
            // only as many vectors as queues (Linux's nvme_setup_io_queues: the vectors are freed and
            // allocated again for the granted count).
            let vectors_io = vectors.vectors().len().saturating_sub(1);
            let granted = dev.set_queue_count(IO_QUEUES as u16)? as usize;
            let queues = vectors_io.min(granted);
            if granted < IO_QUEUES {
                irq.fewer = Some(alloc::format!(
                    "controller granted {granted} of {IO_QUEUES} I/O queues (Set Features, Number of Queues): {} of {} sources driven",
                    1 + queues,
                    1 + IO_QUEUES
                ));
            }
            if queues < vectors_io {
                vectors.reenable_msix(f, 1 + queues as u16, irq.apic_id()).map_err(|e| StartError::Irq(mode, e))?;
            }
            dev.create_io_queues(queues)?;
        }
        Ok((dev, vectors))
    }

    fn takeover_problem(&self) -> Option<alloc::string::String> {
        (self.drained_stale_intx() > 0).then(|| {
            alloc::format!(
                "INTx found asserted with nothing pending at takeover (left by a previous owner); acknowledged with {} CQ head doorbell write(s) before the line was enabled",
                self.drained_stale_intx()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::granted_pairs;

    #[test]
    fn granted_queue_pairs_are_the_smaller_of_both_counts_zero_based() {
        assert_eq!(granted_pairs(0), 1);
        assert_eq!(granted_pairs(0x0003_0003), 4);
        assert_eq!(granted_pairs(0x0000_0003), 1, "one completion queue limits the pairs");
        assert_eq!(granted_pairs(0x003F_0001), 2, "two submission queues limit the pairs");
        assert_eq!(granted_pairs(0xFFFF_FFFF), u16::MAX, "65536 pairs saturate rather than wrap to 0");
    }
}
