//! xHCI host controller (class 0x0C0330: QEMU's `qemu-xhci` 1b36:000d and `nec-usb-xhci` 1033:0194;
//! xHCI 1.2): halted and reset, a command ring and interrupter 0's event ring set up, then run. Source 0
//! is a No-Op command (TRB type 23, xHCI 1.2 section 4.6.2), whose Command Completion Event is written to
//! interrupter 0's event ring and raises its interrupt (MSI-X entry 0, MSI vector 0, or INTx).
//!
//! Sources 1-15 are interrupters 1-15, one per vector. Every event a controller posts without a USB
//! device goes to interrupter 0: Command Completion (xHCI 1.2 section 4.11.4.1; QEMU's
//! `xhci_process_commands` posts to 0), Port Status Change and MFINDEX wrap. Only a Transfer TRB's
//! Interrupter Target (section 4.17.1) reaches another interrupter, so with a USB device on a root port
//! the driver enables a slot for it, addresses it (polled, interrupts off), and source n is a
//! GET_DESCRIPTOR(Device) control transfer whose Status Stage targets interrupter n with IOC; its Transfer
//! Event raises interrupter n. Without a device, or in INTx mode (interrupter 0 drives the pin), only
//! interrupter 0 is driven, on one vector, and `irq_reason` says why.
//!
//! Order that matters on QEMU 7.2 (devices-2.md section 2.4): MSI-X must be enabled before IMAN.IE and
//! USBCMD are written, or QEMU never marks the vector used and the message is lost; so the interrupt mode
//! is set up between the ring set-up and IMAN.IE/USBCMD.RS.

use super::{Driver, DriverError, InterruptSource, IrqRequest, StartError};
use crate::arch::dma::DmaPage;
use crate::arch::mmio::MmioWindow;
use crate::bus::pci::bar;
use crate::bus::pci::config::PlatformConfig;
use crate::bus::pci::enumerate::Function;
use crate::irq::intx::IntxAck;
use crate::modes::DeviceIrq;
use crate::time;

/// Programming interface class: serial bus controller, USB, xHCI.
pub const CLASS: u32 = 0x0C_0330;

/// Capability registers (xHCI 1.2 section 5.3), offsets from BAR0.
pub mod cap {
    /// CAPLENGTH (7:0) and HCIVERSION (31:16).
    pub const CAPLENGTH: u64 = 0x00;
    /// Structural parameters 1: MaxSlots 7:0, MaxIntrs 18:8, MaxPorts 31:24.
    pub const HCSPARAMS1: u64 = 0x04;
    /// Structural parameters 2: ERST Max 7:4, Max Scratchpad Buffers Hi 25:21 and Lo 31:27.
    pub const HCSPARAMS2: u64 = 0x08;
    /// Capability parameters 1: CSZ bit 2 (64-byte contexts).
    pub const HCCPARAMS1: u64 = 0x10;
    /// Doorbell offset.
    pub const DBOFF: u64 = 0x14;
    /// Runtime register space offset.
    pub const RTSOFF: u64 = 0x18;
}

/// Operational registers (xHCI 1.2 section 5.4), offsets from CAPLENGTH.
pub mod op {
    /// USB Command.
    pub const USBCMD: u64 = 0x00;
    /// USB Status.
    pub const USBSTS: u64 = 0x04;
    /// Page size (bit n: 2^(n+12) bytes supported).
    pub const PAGESIZE: u64 = 0x08;
    /// Command Ring Control (64-bit).
    pub const CRCR: u64 = 0x18;
    /// Device Context Base Address Array Pointer (64-bit).
    pub const DCBAAP: u64 = 0x30;
    /// Configure: MaxSlotsEn 7:0.
    pub const CONFIG: u64 = 0x38;
    /// Port 1's Status and Control; port n's at + 0x10 * (n - 1).
    pub const PORTSC: u64 = 0x400;
}

/// USBCMD bits (xHCI 1.2 section 5.4.1).
pub mod usbcmd {
    /// Run/Stop.
    pub const RS: u32 = 1 << 0;
    /// Host Controller Reset.
    pub const HCRST: u32 = 1 << 1;
    /// Interrupter Enable.
    pub const INTE: u32 = 1 << 2;
    /// Host System Error Enable.
    pub const HSEE: u32 = 1 << 3;
    /// Enable Wrap Event (MFINDEX wrap events every 2.048 s on QEMU: kept off).
    pub const EWE: u32 = 1 << 10;
}

/// USBSTS bits (xHCI 1.2 section 5.4.2).
pub mod usbsts {
    /// HCHalted.
    pub const HCH: u32 = 1 << 0;
    /// Host System Error.
    pub const HSE: u32 = 1 << 2;
    /// Event Interrupt (RW1C).
    pub const EINT: u32 = 1 << 3;
    /// Controller Not Ready.
    pub const CNR: u32 = 1 << 11;
    /// Host Controller Error.
    pub const HCE: u32 = 1 << 12;
}

/// Interrupter register set n (xHCI 1.2 section 5.5.2), offsets inside it; the set is at runtime base +
/// 0x20 + 0x20 * n.
pub mod intr {
    /// Interrupter Management: IP bit 0 (RW1C), IE bit 1.
    pub const IMAN: u64 = 0x00;
    /// Interrupter Moderation.
    pub const IMOD: u64 = 0x04;
    /// Event Ring Segment Table Size.
    pub const ERSTSZ: u64 = 0x08;
    /// Event Ring Segment Table Base Address (64-bit).
    pub const ERSTBA: u64 = 0x10;
    /// Event Ring Dequeue Pointer (64-bit): DESI 2:0, EHB bit 3 (RW1C).
    pub const ERDP: u64 = 0x18;
    /// IMAN.IP.
    pub const IMAN_IP: u32 = 1 << 0;
    /// IMAN.IE.
    pub const IMAN_IE: u32 = 1 << 1;
    /// ERDP.EHB.
    pub const ERDP_EHB: u64 = 1 << 3;
}

/// TRB types (xHCI 1.2 table 6-91).
pub mod trb {
    /// Link.
    pub const LINK: u32 = 6;
    /// No Op Command.
    pub const NOOP_COMMAND: u32 = 23;
    /// Command Completion Event.
    pub const COMMAND_COMPLETION: u32 = 33;
    /// Completion code Success (table 6-90).
    pub const SUCCESS: u32 = 1;
}

/// TRBs in the command ring, the last one a Link TRB back to the first.
pub const COMMAND_RING_TRBS: usize = 64;
/// TRBs in interrupter 0's one event ring segment (16..4096, xHCI 1.2 table 6-40).
pub const EVENT_RING_TRBS: usize = 64;
/// Longest wait for USBSTS.HCH after Run/Stop is cleared: 16 ms (xHCI 1.2 section 5.4.1, USBCMD R/S:
/// the controller halts within 16 microframes; Linux's XHCI_MAX_HALT_USEC).
pub const HALT_US: u64 = 16_000;
/// Longest wait for HCRST and CNR to clear (Linux's xhci_reset waits up to 10 s on real controllers).
pub const RESET_US: u64 = 1_000_000;
/// Longest wait for an event after its command was rung.
pub const EVENT_US: u64 = 100_000;

/// The dwords of a TRB with its cycle bit, dword 3 last (it hands the TRB to the other side).
pub const fn trb_dwords(
    parameter: u64,
    status: u32,
    kind: u32,
    flags: u32,
    cycle: bool,
) -> [u32; 4] {
    [
        parameter as u32,
        (parameter >> 32) as u32,
        status,
        kind << 10 | flags | cycle as u32,
    ]
}

/// A Link TRB to `target` with Toggle Cycle (xHCI 1.2 section 6.4.4.1).
pub const fn link_trb(target: u64, cycle: bool) -> [u32; 4] {
    trb_dwords(target, 0, trb::LINK, 1 << 1, cycle)
}

/// A No Op Command TRB (xHCI 1.2 section 6.4.3.1).
pub const fn noop_command_trb(cycle: bool) -> [u32; 4] {
    trb_dwords(0, 0, trb::NOOP_COMMAND, 0, cycle)
}

/// Producer side of a ring whose last TRB is a Link TRB with Toggle Cycle (the command ring).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Producer {
    /// Next TRB written.
    pub enqueue: usize,
    /// Producer Cycle State.
    pub cycle: bool,
    /// TRBs in the ring, the Link TRB included.
    pub size: usize,
}

impl Producer {
    /// A fresh ring: enqueue at 0, cycle 1 (xHCI 1.2 section 4.9.2, RCS = 1 in CRCR).
    pub const fn new(size: usize) -> Self {
        Producer {
            enqueue: 0,
            cycle: true,
            size,
        }
    }

    /// The slot for the next TRB and its cycle bit; the second value is `Some(cycle)` when the ring
    /// wrapped, i.e. the Link TRB in the last slot must be handed over with that cycle bit.
    pub fn push(&mut self) -> (usize, bool, Option<bool>) {
        let at = (self.enqueue, self.cycle);
        self.enqueue += 1;
        let mut link = None;
        if self.enqueue == self.size - 1 {
            link = Some(self.cycle);
            self.enqueue = 0;
            self.cycle = !self.cycle;
        }
        (at.0, at.1, link)
    }
}

/// Consumer side of an event ring of one segment (xHCI 1.2 section 4.9.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consumer {
    /// Next TRB read.
    pub dequeue: usize,
    /// Consumer Cycle State: a TRB whose cycle bit equals it is valid.
    pub cycle: bool,
    /// TRBs in the segment.
    pub size: usize,
}

impl Consumer {
    /// A fresh ring: dequeue at 0, CCS = 1.
    pub const fn new(size: usize) -> Self {
        Consumer {
            dequeue: 0,
            cycle: true,
            size,
        }
    }

    /// Whether a TRB whose dword 3 is `dword3` at the dequeue position belongs to the producer's pass.
    pub const fn valid(&self, dword3: u32) -> bool {
        (dword3 & 1 != 0) == self.cycle
    }

    /// Steps past the TRB at the dequeue position, toggling CCS at the end of the segment.
    pub fn advance(&mut self) {
        self.dequeue += 1;
        if self.dequeue == self.size {
            self.dequeue = 0;
            self.cycle = !self.cycle;
        }
    }

    /// The ERDP value that hands everything before the dequeue position back to the controller and
    /// clears EHB (RW1C): segment index 0 (DESI).
    pub const fn erdp(&self, base: u64) -> u64 {
        (base + 16 * self.dequeue as u64) | intr::ERDP_EHB
    }
}

/// The writes that give interrupter `n` (register set at `set`) its event ring, in the order xHCI 1.2
/// section 4.9.4 gives (and 5.5.2.3.2: writing ERSTBA is what makes the controller read the table, so it
/// comes last; QEMU 7.2 reads the table on the ERSTBA high write): ERSTSZ, ERDP, ERSTBA, each 64-bit
/// register low dword first (section 5.1). Offsets from the interrupter set; all 32-bit.
pub const fn event_ring_writes(erst: u64, ring: u64) -> [(u64, u32); 5] {
    [
        (intr::ERSTSZ, 1),
        (intr::ERDP, ring as u32),
        (intr::ERDP + 4, (ring >> 32) as u32),
        (intr::ERSTBA, erst as u32),
        (intr::ERSTBA + 4, (erst >> 32) as u32),
    ]
}

/// Scratchpad buffers a controller asks for (HCSPARAMS2, xHCI 1.2 section 5.3.4).
pub const fn scratchpad_buffers(hcsparams2: u32) -> u32 {
    (hcsparams2 >> 21 & 0x1F) << 5 | hcsparams2 >> 27
}

/// What the quiet path did to a controller before MSI-X was touched ([`halt_before_quiet`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takeover {
    /// It was halted already.
    Halted,
    /// It was running (USBCMD given) and halted within [`HALT_US`].
    Stopped(u32),
    /// It was running and did not halt.
    StillRunning(u32),
}

/// Most interrupters driven (QEMU's xHCIs have 16, one per MSI-X entry).
pub const MAX_INTERRUPTERS: usize = 16;
/// TRBs in a USB device's control endpoint ring: 63 usable (21 three-TRB control transfers, so none
/// straddles the Link TRB) and the Link TRB.
pub const CONTROL_RING_TRBS: usize = 64;
/// TRB types on a transfer ring and of a Transfer Event (xHCI 1.2 table 6-91).
pub mod xfer {
    /// Setup Stage.
    pub const SETUP: u32 = 2;
    /// Data Stage.
    pub const DATA: u32 = 3;
    /// Status Stage.
    pub const STATUS: u32 = 4;
    /// Enable Slot Command.
    pub const ENABLE_SLOT: u32 = 9;
    /// Address Device Command.
    pub const ADDRESS_DEVICE: u32 = 11;
    /// Transfer Event.
    pub const TRANSFER_EVENT: u32 = 32;
    /// Completion code Short Packet.
    pub const SHORT_PACKET: u32 = 13;
}

/// The three TRBs of a GET_DESCRIPTOR(Device, 18 bytes) control transfer into `buffer`, the Status
/// Stage's Interrupter Target `target` and IOC set (xHCI 1.2 sections 6.4.1.2.1-3, 4.17.1), with cycle
/// bit `cycle`.
pub const fn get_descriptor_trbs(buffer: u64, target: u32, cycle: bool) -> [[u32; 4]; 3] {
    // bmRequestType 0x80 (device to host), bRequest 6, wValue 0x0100 (Device descriptor), wLength 18.
    let setup: u64 = 0x80 | 6 << 8 | 0x0100 << 16 | 18 << 48;
    [
        // IDT (bit 6), TRT = 3 (IN data stage, bits 17:16), length 8.
        trb_dwords(setup, 8, xfer::SETUP, 1 << 6 | 3 << 16, cycle),
        // DIR = IN (bit 16).
        trb_dwords(buffer, 18, xfer::DATA, 1 << 16, cycle),
        // DIR = OUT (0) after an IN data stage; IOC (bit 5); Interrupter Target in status 31:22.
        trb_dwords(0, target << 22, xfer::STATUS, 1 << 5, cycle),
    ]
}

/// One interrupter's event ring (xHCI 1.2 section 4.17: each interrupter has its own).
#[derive(Debug)]
struct Interrupter {
    /// Offset of its register set in BAR0.
    set: u64,
    erst: DmaPage,
    events: DmaPage,
    consumer: Consumer,
    /// The TRB whose completion raises it, rung and not yet acknowledged.
    outstanding: Option<u64>,
}

/// The USB device whose control transfers reach interrupters other than 0.
#[derive(Debug)]
struct UsbDevice {
    slot: u8,
    port: u8,
    _input: DmaPage,
    _output: DmaPage,
    ring: DmaPage,
    producer: Producer,
    data: DmaPage,
}

/// The driver state.
#[derive(Debug)]
pub struct Xhci {
    regs: MmioWindow,
    op: u64,
    doorbells: u64,
    rtsoff: u64,
    max_intrs: usize,
    /// 64-byte contexts (HCCPARAMS1.CSZ).
    csz: bool,
    dcbaa: DmaPage,
    commands: DmaPage,
    producer: Producer,
    intrs: heapless::Vec<Interrupter, MAX_INTERRUPTERS>,
    usb: Option<UsbDevice>,
    running: bool,
    /// USBCMD as found when the driver took the controller (it should be halted: the quiet path halts it).
    found_usbcmd: u32,
}

/// Maps BAR0 and finds the operational registers; `None` when there is no usable BAR0.
fn map(f: &Function) -> Result<(MmioWindow, u64), DriverError> {
    let bar0 = f.bar(0).ok_or(DriverError::Bar(0))?;
    let regs = bar::window(f.bdf, bar0).map_err(|_| DriverError::Bar(0))?;
    if regs.len() < 0x1000 {
        return Err(DriverError::Bar(0));
    }
    let caplength = regs.read32(cap::CAPLENGTH);
    if caplength == u32::MAX {
        return Err(DriverError::Unexpected("CAPLENGTH", caplength as u64));
    }
    let op = u64::from(caplength & 0xFF);
    if op < 0x20 || op + 0x400 > regs.len() {
        return Err(DriverError::Unexpected("CAPLENGTH", caplength as u64));
    }
    Ok((regs, op))
}

/// Clears Run/Stop (and the interrupt enables) and waits for HCHalted, as Linux's quirk_usb_handoff_xhci
/// does for every xHCI before anything else touches it: a controller a previous owner left running
/// keeps writing events and raising interrupts (xHCI 1.2 section 4.2: halt before reset).
fn halt(regs: &MmioWindow, op: u64) -> Takeover {
    let cmd = regs.read32(op + op::USBCMD);
    if regs.read32(op + op::USBSTS) & usbsts::HCH != 0 && cmd & usbcmd::RS == 0 {
        return Takeover::Halted;
    }
    // xHCI 1.2 section 5.4.1: clearing R/S stops the controller; it sets HCH within 16 microframes.
    regs.write32(
        op + op::USBCMD,
        cmd & !(usbcmd::RS | usbcmd::INTE | usbcmd::HSEE | usbcmd::EWE),
    );
    if time::wait_until(HALT_US, || regs.read32(op + op::USBSTS) & usbsts::HCH != 0) {
        Takeover::Stopped(cmd)
    } else {
        Takeover::StillRunning(cmd)
    }
}

/// The quiet path's step for an xHCI (before any MSI or MSI-X register is touched): a controller left
/// running by a previous owner is halted first, so nothing it posts meanwhile turns into a message or an
/// INTx level while its interrupt mode is taken away. `None` for a function that is not an xHCI or has
/// no usable BAR0 (Memory Space decoding off: then it cannot be reached and is left to Bus Master off).
pub fn halt_before_quiet(cfg: &PlatformConfig, f: &Function) -> Option<Takeover> {
    use crate::bus::pci::{regs as pci, ConfigRegion};
    if !<Xhci as Driver>::matches(f) || cfg.read16(f.bdf, pci::COMMAND) & pci::command::MEMORY == 0
    {
        return None;
    }
    let (regs, op) = map(f).ok()?;
    let t = halt(&regs, op);
    match t {
        Takeover::Halted => {}
        Takeover::Stopped(cmd) => crate::info!(
            "{} xhci: found running (USBCMD {=u32:#x}), halted before quieting",
            f.bdf,
            cmd
        ),
        Takeover::StillRunning(cmd) => crate::warn!(
            "{} xhci: found running (USBCMD {=u32:#x}), did not halt in 16 ms",
            f.bdf,
            cmd
        ),
    }
    Some(t)
}

impl Xhci {
    /// Maps BAR0, halts and resets the controller, and sets up DCBAA, the command ring and interrupter
    /// 0's event ring. Interrupts stay off (IMAN.IE and USBCMD.INTE clear) until [`Xhci::enable_interrupts`].
    pub fn new(f: &Function) -> Result<Xhci, DriverError> {
        let (regs, op) = map(f)?;
        let found_usbcmd = regs.read32(op + op::USBCMD);
        if let Takeover::StillRunning(_) = halt(&regs, op) {
            return Err(DriverError::Timeout("USBSTS.HCH = 1 after USBCMD.RS = 0"));
        }
        let hcsparams1 = regs.read32(cap::HCSPARAMS1);
        let hcsparams2 = regs.read32(cap::HCSPARAMS2);
        let hccparams1 = regs.read32(cap::HCCPARAMS1);
        let dboff = u64::from(regs.read32(cap::DBOFF) & !0x3);
        let rtsoff = u64::from(regs.read32(cap::RTSOFF) & !0x1F);
        let max_intrs = ((hcsparams1 >> 8 & 0x7FF) as usize).min(MAX_INTERRUPTERS);
        if dboff + 4 * 256 > regs.len()
            || rtsoff + 0x20 + 0x20 * max_intrs as u64 > regs.len()
            || max_intrs == 0
        {
            return Err(DriverError::Unexpected(
                "DBOFF/RTSOFF/MaxIntrs outside BAR0",
                dboff << 32 | rtsoff,
            ));
        }
        let scratchpads = scratchpad_buffers(hcsparams2);
        if scratchpads != 0 {
            return Err(DriverError::Unexpected(
                "scratchpad buffers required (not provided by msifw)",
                scratchpads as u64,
            ));
        }
        let mut this = Xhci {
            regs,
            op,
            doorbells: dboff,
            rtsoff,
            max_intrs,
            csz: hccparams1 & (1 << 2) != 0,
            dcbaa: DmaPage::alloc().ok_or(DriverError::NoDmaMemory)?,
            commands: DmaPage::alloc().ok_or(DriverError::NoDmaMemory)?,
            producer: Producer::new(COMMAND_RING_TRBS),
            intrs: heapless::Vec::new(),
            usb: None,
            running: false,
            found_usbcmd,
        };
        this.reset()?;
        if this.opr(op::PAGESIZE) & 1 == 0 {
            return Err(DriverError::Unexpected(
                "PAGESIZE without 4 KiB pages",
                this.opr(op::PAGESIZE) as u64,
            ));
        }
        // xHCI 1.2 section 4.2 steps: MaxSlotsEn, DCBAAP, the command ring (CRCR), then the event ring.
        let max_slots = hcsparams1 & 0xFF;
        this.set_opr(op::CONFIG, max_slots);
        this.set_opr(op::DCBAAP, this.dcbaa.phys() as u32);
        this.set_opr(op::DCBAAP + 4, (this.dcbaa.phys() >> 32) as u32);
        let ring = this.commands.phys();
        // CRCR: ring pointer | RCS = 1, low dword first (QEMU latches the ring on the high write).
        this.set_opr(op::CRCR, ring as u32 | 1);
        this.set_opr(op::CRCR + 4, (ring >> 32) as u32);
        this.add_interrupter()?;
        Ok(this)
    }

    /// Gives the next interrupter its event ring: one segment table entry (ring base, size; xHCI 1.2
    /// section 6.5), then ERSTSZ, ERDP, ERSTBA ([`event_ring_writes`]).
    fn add_interrupter(&mut self) -> Result<(), DriverError> {
        let n = self.intrs.len();
        if n >= self.max_intrs {
            return Err(DriverError::NoSuchSource(n));
        }
        let i = Interrupter {
            set: self.rtsoff + 0x20 + 0x20 * n as u64,
            erst: DmaPage::alloc().ok_or(DriverError::NoDmaMemory)?,
            events: DmaPage::alloc().ok_or(DriverError::NoDmaMemory)?,
            consumer: Consumer::new(EVENT_RING_TRBS),
            outstanding: None,
        };
        i.erst.write64(0, i.events.phys());
        i.erst.write32(8, EVENT_RING_TRBS as u32);
        i.erst.write32(12, 0);
        for (offset, value) in event_ring_writes(i.erst.phys(), i.events.phys()) {
            self.regs.write32(i.set + offset, value);
        }
        self.intrs.push(i).map_err(|_| DriverError::NoSuchSource(n))
    }

    fn opr(&self, r: u64) -> u32 {
        self.regs.read32(self.op + r)
    }

    fn set_opr(&self, r: u64, v: u32) {
        self.regs.write32(self.op + r, v)
    }

    /// USBCMD.HCRST on a halted controller, then wait for HCRST and USBSTS.CNR to clear (xHCI 1.2 section
    /// 4.2 and 5.4.1: software must not set HCRST while HCH is 0, nor write operational registers while
    /// CNR is 1).
    fn reset(&mut self) -> Result<(), DriverError> {
        self.set_opr(op::USBCMD, usbcmd::HCRST);
        if !time::wait_until(RESET_US, || self.opr(op::USBCMD) & usbcmd::HCRST == 0) {
            return Err(DriverError::Timeout("USBCMD.HCRST = 0"));
        }
        if !time::wait_until(RESET_US, || self.opr(op::USBSTS) & usbsts::CNR == 0) {
            return Err(DriverError::Timeout("USBSTS.CNR = 0"));
        }
        self.running = false;
        Ok(())
    }

    /// USBCMD.R/S with interrupts off (INTE and every IMAN.IE clear), and wait for HCH to clear.
    fn start_running(&mut self) -> Result<(), DriverError> {
        self.set_opr(op::USBCMD, usbcmd::RS);
        if !time::wait_until(HALT_US, || self.opr(op::USBSTS) & usbsts::HCH == 0) {
            return Err(DriverError::Timeout("USBSTS.HCH = 0 after USBCMD.RS = 1"));
        }
        let sts = self.opr(op::USBSTS);
        if sts & (usbsts::HSE | usbsts::HCE) != 0 {
            return Err(DriverError::Unexpected(
                "USBSTS (host system or controller error)",
                sts as u64,
            ));
        }
        self.running = true;
        Ok(())
    }

    /// IMAN.IE on every interrupter with a ring, then USBCMD.INTE (xHCI 1.2 section 4.2, last steps).
    /// Call with the interrupt mode set up; anything interrupter 0 posted while interrupts were off has
    /// been consumed and its IP cleared, so this raises nothing.
    pub fn enable_interrupts(&mut self) {
        for i in self.intrs.iter() {
            self.regs.write32(i.set + intr::IMAN, intr::IMAN_IE);
        }
        self.set_opr(op::USBCMD, usbcmd::RS | usbcmd::INTE);
    }

    /// Puts a command on the command ring and rings the host controller doorbell; the TRB's address.
    fn ring_command(&mut self, kind: u32, parameter: u64, flags: u32) -> u64 {
        let (at, cycle, link) = self.producer.push();
        let addr = self.commands.phys() + 16 * at as u64;
        write_trb(
            &self.commands,
            at,
            trb_dwords(parameter, 0, kind, flags, cycle),
        );
        if let Some(c) = link {
            write_trb(
                &self.commands,
                COMMAND_RING_TRBS - 1,
                link_trb(self.commands.phys(), c),
            );
        }
        // Doorbell 0, DB Target 0: the command ring (xHCI 1.2 section 5.6).
        self.regs.write32(self.doorbells, 0);
        addr
    }

    /// Consumes every event on interrupter `n`'s ring; the one for TRB `trb` (of type `kind`) must be
    /// among them with a good completion code; returns its status and control dwords. Then ERDP with EHB
    /// (xHCI 1.2 sections 4.17.2 and 5.5.2.3.3). Port Status Change events on interrupter 0 (a USB
    /// device's port) are consumed and ignored.
    fn consume(&mut self, n: usize, trb: u64, kind: u32) -> Result<(u32, u32), DriverError> {
        let regs = self.regs;
        let i = &mut self.intrs[n];
        let at = |c: &Consumer| c.dequeue * 16;
        let ev = &i.events;
        if !time::wait_until(EVENT_US, || {
            i.consumer.valid(ev.read32(at(&i.consumer) + 12))
        }) {
            return Err(DriverError::Timeout(if kind == trb::COMMAND_COMPLETION {
                "Command Completion Event"
            } else {
                "Transfer Event"
            }));
        }
        let mut result = Err(DriverError::Unexpected("no event for the TRB rung", trb));
        while i.consumer.valid(ev.read32(at(&i.consumer) + 12)) {
            let o = at(&i.consumer);
            let (parameter, status, control) = (ev.read64(o), ev.read32(o + 8), ev.read32(o + 12));
            i.consumer.advance();
            let got = control >> 10 & 0x3F;
            let code = status >> 24;
            if got == PORT_STATUS_CHANGE && n == 0 {
                continue;
            }
            if got != kind {
                result = Err(DriverError::Unexpected("event TRB type", got as u64));
            } else if parameter != trb {
                result = Err(DriverError::Unexpected("event for another TRB", parameter));
            } else if code != trb::SUCCESS && code != xfer::SHORT_PACKET {
                result = Err(DriverError::Unexpected("completion code", code as u64));
            } else if result.is_err() {
                result = Ok((status, control));
            }
        }
        let erdp = i.consumer.erdp(i.events.phys());
        regs.write32(i.set + intr::ERDP, erdp as u32);
        regs.write32(i.set + intr::ERDP + 4, (erdp >> 32) as u32);
        result
    }

    /// A command completed while interrupts are off (polled): its completion's control dword, and
    /// interrupter 0's IP cleared.
    fn command_polled(
        &mut self,
        kind: u32,
        parameter: u64,
        flags: u32,
    ) -> Result<u32, DriverError> {
        let trb = self.ring_command(kind, parameter, flags);
        let r = self.consume(0, trb, trb::COMMAND_COMPLETION);
        self.regs
            .write32(self.intrs[0].set + intr::IMAN, intr::IMAN_IP);
        r.map(|(_, control)| control)
    }

    /// Finds the first root hub port with a device connected, enables it (a USB2 port needs a reset:
    /// xHCI 1.2 section 4.3.1), and gives it a slot: Enable Slot, then Address Device with an input
    /// context for the slot and its control endpoint (sections 4.3.2-4.3.3, 4.6.5). Interrupts are off.
    /// `None` when no port has a device.
    fn address_first_device(&mut self) -> Result<Option<UsbDevice>, DriverError> {
        let ports = (self.regs.read32(cap::HCSPARAMS1) >> 24) as u64;
        // Only ports whose PORTSC lies inside BAR0.
        let ports = ports.min((self.regs.len() - self.op - op::PORTSC) / 0x10);
        let Some(port) =
            (1..=ports).find(|p| self.opr(op::PORTSC + 0x10 * (p - 1)) & portsc::CCS != 0)
        else {
            return Ok(None);
        };
        let portsc_at = op::PORTSC + 0x10 * (port - 1);
        if self.opr(portsc_at) & portsc::PED == 0 {
            // PR, keeping PP (RW1C change bits and PED written 0).
            self.set_opr(portsc_at, portsc::PP | portsc::PR);
            if !time::wait_until(RESET_US, || self.opr(portsc_at) & portsc::PRC != 0) {
                return Err(DriverError::Timeout("PORTSC.PRC after a port reset"));
            }
        }
        let sc = self.opr(portsc_at);
        // Clear the change bits (RW1C), PP kept.
        self.set_opr(portsc_at, portsc::PP | (sc & portsc::CHANGES));
        if sc & portsc::PED == 0 {
            return Err(DriverError::Unexpected(
                "PORTSC (port not enabled after reset)",
                sc as u64,
            ));
        }
        let speed = sc >> 10 & 0xF;
        let control = self.command_polled(xfer::ENABLE_SLOT, 0, 0)?;
        let slot = (control >> 24) as u8;
        if slot == 0 {
            return Err(DriverError::Unexpected("Enable Slot gave slot", 0));
        }
        let page = || DmaPage::alloc().ok_or(DriverError::NoDmaMemory);
        let (input, output, ring, data) = (page()?, page()?, page()?, page()?);
        let ctx = if self.csz { 64 } else { 32 };
        // Input Control Context: add the Slot Context (A0) and EP0's (A1).
        input.write32(4, 0b11);
        // Slot Context: Context Entries 1, Speed, Root Hub Port Number (xHCI 1.2 section 6.2.2).
        input.write32(ctx, 1 << 27 | speed << 20);
        input.write32(ctx + 4, (port as u32) << 16);
        // EP0 Context: CErr 3, EP Type 4 (control), Max Packet Size, TR Dequeue Pointer | DCS, Average
        // TRB Length 8 (section 6.2.3).
        let mps = match speed {
            4.. => 512,
            3 => 64,
            _ => 8,
        };
        input.write32(2 * ctx + 4, 3 << 1 | 4 << 3 | mps << 16);
        input.write64(2 * ctx + 8, ring.phys() | 1);
        input.write32(2 * ctx + 16, 8);
        self.dcbaa.write64(8 * slot as usize, output.phys());
        self.command_polled(xfer::ADDRESS_DEVICE, input.phys(), (slot as u32) << 24)?;
        Ok(Some(UsbDevice {
            slot,
            port: port as u8,
            _input: input,
            _output: output,
            ring,
            producer: Producer::new(CONTROL_RING_TRBS),
            data,
        }))
    }

    /// Queues a GET_DESCRIPTOR control transfer on the device's control endpoint whose Status Stage
    /// targets interrupter `n`, and rings the slot's doorbell (DB Target 1: EP0). The Status TRB's address.
    fn ring_transfer(&mut self, n: usize) -> Result<u64, DriverError> {
        let dev = self.usb.as_mut().ok_or(DriverError::NoSuchSource(n))?;
        let (first, cycle, _) = dev.producer.push();
        let (second, _, _) = dev.producer.push();
        let (third, _, link) = dev.producer.push();
        let trbs = get_descriptor_trbs(dev.data.phys(), n as u32, cycle);
        // Later TRBs first, the first one (handing the TD over) last.
        write_trb(&dev.ring, third, trbs[2]);
        write_trb(&dev.ring, second, trbs[1]);
        if let Some(c) = link {
            write_trb(
                &dev.ring,
                CONTROL_RING_TRBS - 1,
                link_trb(dev.ring.phys(), c),
            );
        }
        write_trb(&dev.ring, first, trbs[0]);
        self.regs.write32(self.doorbells + 4 * dev.slot as u64, 1);
        Ok(dev.ring.phys() + 16 * third as u64)
    }

    /// Consumes the completion of what raised interrupter `n`.
    fn complete(&mut self, n: usize, trb: u64) -> Result<(), DriverError> {
        if n == 0 {
            return self.consume(0, trb, trb::COMMAND_COMPLETION).map(|_| ());
        }
        self.consume(n, trb, xfer::TRANSFER_EVENT)?;
        // The device descriptor came by DMA: bLength 18, bDescriptorType 1.
        let head = self.usb.as_ref().map_or(0, |d| d.data.read32(0) & 0xFFFF);
        if head != 0x0112 {
            return Err(DriverError::Unexpected(
                "device descriptor bLength/bDescriptorType",
                head as u64,
            ));
        }
        Ok(())
    }

    /// USBCMD = 0 and wait for HCH: no more events, DMA or interrupts.
    fn halt(&mut self) -> Result<(), DriverError> {
        self.running = false;
        match halt(&self.regs, self.op) {
            Takeover::StillRunning(_) => {
                Err(DriverError::Timeout("USBSTS.HCH = 1 after USBCMD.RS = 0"))
            }
            _ => {
                // IE off, a pending IP cleared (RW1C).
                for i in self.intrs.iter() {
                    self.regs.write32(i.set + intr::IMAN, intr::IMAN_IP);
                }
                Ok(())
            }
        }
    }
}

/// Port Status Change Event TRB type.
const PORT_STATUS_CHANGE: u32 = 34;

/// PORTSC bits (xHCI 1.2 section 5.4.8).
pub mod portsc {
    /// Current Connect Status.
    pub const CCS: u32 = 1 << 0;
    /// Port Enabled/Disabled (RW1C: writing 1 disables).
    pub const PED: u32 = 1 << 1;
    /// Port Reset.
    pub const PR: u32 = 1 << 4;
    /// Port Power.
    pub const PP: u32 = 1 << 9;
    /// Port Reset Change.
    pub const PRC: u32 = 1 << 21;
    /// Every change bit (CSC, PEC, WRC, OCC, PRC, PLC, CEC; RW1C).
    pub const CHANGES: u32 = 0x7F << 17;
}

/// Writes a TRB at index `i`, dword 3 (with the cycle bit) last.
fn write_trb(page: &DmaPage, i: usize, d: [u32; 4]) {
    let o = i * 16;
    page.write32(o, d[0]);
    page.write32(o + 4, d[1]);
    page.write32(o + 8, d[2]);
    page.write32(o + 12, d[3]);
}

impl InterruptSource for Xhci {
    fn sources(&self) -> usize {
        if self.running {
            self.intrs.len()
        } else {
            0
        }
    }

    fn trigger(&mut self, i: usize) -> Result<(), DriverError> {
        if i >= self.sources() {
            return Err(DriverError::NoSuchSource(i));
        }
        // Raised again before the previous completion was acknowledged (the INTx handler cleared IMAN.IP
        // alone): that event is consumed first and ERDP written with EHB, since the controller raises
        // nothing for a new event while EHB is set (xHCI 1.2 section 4.17.2, interrupt moderation; QEMU
        // 7.2 the same). IMAN is left alone, so a level held off at the function stays the function's.
        if let Some(previous) = self.intrs[i].outstanding.take() {
            self.complete(i, previous)?;
        }
        let trb = if i == 0 {
            self.ring_command(trb::NOOP_COMMAND, 0, 0)
        } else {
            self.ring_transfer(i)?
        };
        self.intrs[i].outstanding = Some(trb);
        Ok(())
    }

    fn acknowledge(&mut self, i: usize) -> Result<(), DriverError> {
        if i >= self.sources() {
            return Err(DriverError::NoSuchSource(i));
        }
        let trb = self.intrs[i]
            .outstanding
            .take()
            .ok_or(DriverError::NoSuchSource(i))?;
        // As Linux's xhci_irq: USBSTS.EINT (RW1C), then IMAN.IP (RW1C, keeping IE; with MSI or MSI-X the
        // controller has cleared it already, xHCI 1.2 section 5.5.2.1), then the events, then ERDP.
        self.set_opr(op::USBSTS, usbsts::EINT);
        self.regs.write32(
            self.intrs[i].set + intr::IMAN,
            intr::IMAN_IE | intr::IMAN_IP,
        );
        self.complete(i, trb)
    }

    fn intx_ack(&self) -> Option<IntxAck> {
        // IMAN.IP written 1 to clear with IE kept: the INTx level is IP & IE & USBCMD.INTE (interrupter 0).
        IntxAck::new(
            &self.regs,
            self.intrs[0].set + intr::IMAN,
            intr::IMAN_IE | intr::IMAN_IP,
        )
    }

    fn stop(&mut self) -> Result<(), DriverError> {
        self.halt()
    }
}

impl Drop for Xhci {
    fn drop(&mut self) {
        // Stop DMA into pages about to be returned to the pool.
        let _ = self.halt();
    }
}

impl Driver for Xhci {
    const NAME: &'static str = "xhci";
    /// One vector per interrupter: MSI-X entry n (MSI vector n) is interrupter n's.
    const VECTORS: u16 = MAX_INTERRUPTERS as u16;
    const SOURCES: usize = MAX_INTERRUPTERS;

    fn matches(f: &Function) -> bool {
        f.class == CLASS && f.header_type == 0
    }

    fn start(
        irq: &mut IrqRequest<'_>,
    ) -> Result<(Self, DeviceIrq<'static, PlatformConfig>), StartError> {
        let mut dev = Xhci::new(irq.function())?;
        // Running with interrupts off: a USB device's slot is set up with polled commands.
        dev.start_running()?;
        dev.usb = dev.address_first_device()?;
        // MSI-X enabled before IMAN.IE and USBCMD (see the module comment).
        // Interrupters other than 0 only get events through a USB device's transfers: without one, one
        // vector.
        let vectors = irq.enable(if dev.usb.is_some() { Self::VECTORS } else { 1 })?;
        let granted = vectors.vectors().len().min(dev.max_intrs);
        let driven = if dev.usb.is_some() { granted } else { 1 };
        for _ in 1..driven {
            dev.add_interrupter()?;
        }
        if driven < Self::SOURCES {
            irq.fewer = Some(match (&dev.usb, irq.mode()) {
                (None, _) => alloc::format!(
                    "interrupter 0 only: no USB device attached (only a Transfer TRB's Interrupter Target reaches interrupters 1-{}; commands and port events go to interrupter 0)",
                    dev.max_intrs - 1
                ),
                (Some(_), crate::modes::IrqMode::Intx) => alloc::string::String::from("interrupter 0 only: INTx is interrupter 0's"),
                (Some(d), _) => alloc::format!(
                    "{driven} interrupters of {} ({} vector(s), {} interrupters); transfers on the device at port {}",
                    Self::SOURCES,
                    vectors.vectors().len(),
                    dev.max_intrs,
                    d.port
                ),
            });
        }
        dev.enable_interrupts();
        Ok((dev, vectors))
    }

    fn takeover_problem(&self) -> Option<alloc::string::String> {
        (self.found_usbcmd & usbcmd::RS != 0).then(|| {
            alloc::format!(
                "controller found running at takeover (USBCMD {:#x}) after the quiet path; halted",
                self.found_usbcmd
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ring_is_programmed_erstsz_erdp_erstba_low_dword_first() {
        let w = event_ring_writes(0x1_2345_6000, 0x2_0000_7000);
        let regs: std::vec::Vec<u64> = w.iter().map(|x| x.0).collect();
        assert_eq!(
            regs,
            [
                intr::ERSTSZ,
                intr::ERDP,
                intr::ERDP + 4,
                intr::ERSTBA,
                intr::ERSTBA + 4
            ],
            "xHCI 1.2 4.9.4: ERSTBA last"
        );
        assert_eq!(w[0].1, 1, "one segment");
        assert_eq!((w[1].1, w[2].1), (0x7000, 2));
        assert_eq!((w[3].1, w[4].1), (0x2345_6000, 1));
    }

    #[test]
    fn trbs_carry_type_and_cycle_in_dword3() {
        assert_eq!(noop_command_trb(true), [0, 0, 0, 23 << 10 | 1]);
        assert_eq!(noop_command_trb(false), [0, 0, 0, 23 << 10]);
        assert_eq!(
            link_trb(0x1_0000_2000, true),
            [0x2000, 1, 0, 6 << 10 | 2 | 1],
            "Toggle Cycle set"
        );
    }

    #[test]
    fn command_ring_wraps_through_its_link_trb_and_toggles_cycle() {
        let mut p = Producer::new(4);
        assert_eq!(p.push(), (0, true, None));
        assert_eq!(p.push(), (1, true, None));
        assert_eq!(
            p.push(),
            (2, true, Some(true)),
            "slot 3 is the Link TRB, handed over with the old cycle"
        );
        assert_eq!(p.push(), (0, false, None), "second pass with cycle 0");
        assert_eq!(p.push(), (1, false, None));
        assert_eq!(p.push(), (2, false, Some(false)));
        assert_eq!(p.push(), (0, true, None));
    }

    #[test]
    fn event_ring_consumer_toggles_at_the_segment_end_and_acks_with_ehb() {
        let mut c = Consumer::new(2);
        assert!(c.valid(33 << 10 | 1) && !c.valid(33 << 10));
        c.advance();
        assert_eq!(c.erdp(0x8000), 0x8010 | 0x8);
        c.advance();
        assert_eq!((c.dequeue, c.cycle), (0, false));
        assert!(c.valid(0) && !c.valid(1), "second pass: cycle 0 is valid");
        assert_eq!(c.erdp(0x8000), 0x8008);
    }

    #[test]
    fn control_transfer_targets_its_interrupter_on_the_status_stage() {
        let t = get_descriptor_trbs(0x5000, 7, true);
        assert_eq!(
            t[0],
            [0x0100_0680, 0x0012_0000, 8, 2 << 10 | 1 << 6 | 3 << 16 | 1],
            "Setup: IDT, TRT IN, length 8"
        );
        assert_eq!(
            t[1],
            [0x5000, 0, 18, 3 << 10 | 1 << 16 | 1],
            "Data: IN, 18 bytes"
        );
        assert_eq!(
            t[2],
            [0, 0, 7 << 22, 4 << 10 | 1 << 5 | 1],
            "Status: Interrupter Target 7, IOC, OUT"
        );
        assert_eq!(
            get_descriptor_trbs(0, 0, false)[2][3] & 1,
            0,
            "cycle bit 0 on the second pass"
        );
    }

    #[test]
    fn scratchpad_count_joins_hi_and_lo() {
        assert_eq!(scratchpad_buffers(0x0000_000F), 0, "QEMU: none");
        assert_eq!(scratchpad_buffers(0xF800_0000), 31);
        assert_eq!(scratchpad_buffers(0x0020_0000 | 0x0800_0000), 33);
    }
}
