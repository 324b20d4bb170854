//! Legacy INTx through the IOAPIC: shared, level-triggered lines.
//!
//! A line (GSI) gets one vector and one redirection entry, shared by every function routed to it. The
//! handler, run in interrupt context, asks each sharer's Status.Interrupt (PCI 3.0 6.2.3) whether it is the
//! one asserting, counts it, and masks it until its driver has acknowledged the device: with
//! Command.Interrupt Disable where the function supports it (probed like Linux's pci_intx_mask_supported),
//! else by masking the redirection entry. Without that, the still-asserted level would be delivered again
//! right after EOI. A line that keeps firing with no sharer claiming it is masked by the storm guard.
//!
//! A line with one function only, whose driver names the single register write that acknowledges it at
//! the device ([`IntxAck`]), skips configuration space: the interrupt entry makes that write itself, once
//! (armed per vector, [`crate::arch::idt::arm_ack_once`]), as a Linux driver's handler acknowledges its
//! own device. The function is then held until `rearm` all the same: a second interrupt before then
//! reaches the handler, which asks Status.Interrupt as on a shared line; the function's own is masked
//! until `rearm` (and counted then), anything else is unclaimed. Under a hypervisor the write takes
//! effect before the EOI; on hardware it is posted, so an EOI that beats it can bring the interrupt once
//! more, which the hold turns into one unclaimed interrupt (each claim restarts the storm guard's count).

use crate::arch::idt;
use crate::arch::ioapic::IoApic;
use crate::arch::mmio::MmioWindow;
use crate::bus::pci::config::update_command;
use crate::bus::pci::{regs, Bdf, ConfigRegion};
use crate::irq::cpus::{self, AllocError};
use crate::irq::message::{self, Delivery, Destination};
use crate::irq::vector::{Pool, VectorBlock, VectorError};
use alloc::vec::Vec;
use spin::{Mutex, Once};

/// Unclaimed interrupts in a row after which a line is masked as a storm.
pub const STORM_THRESHOLD: u32 = 1000;
/// Deliveries of a line with no sharer asserting, taken per claim as re-deliveries of the claimed (held)
/// sharer's level: an EOI reached the IOAPIC before the deassertion did, and the IOAPIC sent the still
/// high level again. This host's KVM does it on every claim: it ends each interrupt it injects with an EOI
/// of its own before the handler runs (README, Every CPU), so Remote IRR clears while the function still
/// asserts and the copy is taken once the handler returns. They are counted in the sharer's record
/// ([`redeliveries`]); more than this per claim is unclaimed, and a storm.
pub const REDELIVERIES_PER_CLAIM: u8 = 2;

/// An IOAPIC and the GSIs it serves.
#[derive(Debug, Clone, Copy)]
pub struct IoApicRange {
    /// The chip.
    pub chip: IoApic,
    /// First GSI.
    pub gsi_base: u32,
    /// Redirection entries.
    pub entries: u32,
}

/// Where a function's INTx arrives, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntxRoute {
    /// Global system interrupt.
    pub gsi: u32,
    /// Level-triggered (PCI INTx always is).
    pub level: bool,
    /// Active-low polarity.
    pub active_low: bool,
}

/// Why a line could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntxError {
    /// No IOAPIC serves the GSI.
    NoIoApic(u32),
    /// No vector left.
    Vector(VectorError),
    /// The line exists with another trigger or polarity.
    Conflict(u32),
    /// The storm guard masked the line; a new sharer would never be heard.
    StormMasked(u32),
    /// The function is not on any line.
    NotAttached(Bdf),
    /// The destination cannot be written into a redirection entry.
    Destination(message::MessageError),
}

impl core::fmt::Display for IntxError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoIoApic(gsi) => write!(f, "no IOAPIC serves GSI {gsi}"),
            Self::Vector(e) => write!(f, "{e}"),
            Self::Conflict(gsi) => write!(f, "GSI {gsi} already set up with another trigger or polarity"),
            Self::StormMasked(gsi) => write!(f, "GSI {gsi} was masked by the storm guard"),
            Self::NotAttached(bdf) => write!(f, "{bdf} is on no INTx line"),
            Self::Destination(e) => write!(f, "{e}"),
        }
    }
}

/// The single 32-bit register write that acknowledges a function's interrupt at the device and so
/// deasserts its INTx, with no other effect: given by the function's driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntxAck {
    /// The 4-byte register.
    reg: MmioWindow,
    value: u32,
}

impl IntxAck {
    /// Writing `value` to the 32-bit register at `offset` in `regs`; None if it lies outside.
    pub fn new(regs: &MmioWindow, offset: u64, value: u32) -> Option<IntxAck> {
        Some(IntxAck { reg: regs.sub(offset, 4)?, value })
    }

    /// Physical address of the register.
    pub fn address(&self) -> u64 {
        self.reg.base()
    }

    /// The value written.
    pub fn value(&self) -> u32 {
        self.value
    }
}

/// A function's read-to-clear interrupt cause register, given by its driver: reading it acknowledges
/// the function's interrupts (the device deasserts INTx) and a set bit of `enabled` says the function was
/// asserting. The handler asks it instead of Status.Interrupt for a function without Interrupt Disable:
/// PCI 2.3 added both bits, and an older function (Bochs' e1000) leaves Status.Interrupt clear while it
/// asserts. Linux's handlers ask their device the same way (e1000_intr reads ICR, IRQ_NONE on 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntxCause {
    reg: MmioWindow,
    enabled: u32,
}

impl IntxCause {
    /// The 32-bit read-to-clear register at `offset` in `regs`, whose bits in `enabled` are the causes
    /// the driver enabled; None if it lies outside.
    pub fn new(regs: &MmioWindow, offset: u64, enabled: u32) -> Option<IntxCause> {
        Some(IntxCause { reg: regs.sub(offset, 4)?, enabled })
    }
}

/// Whether a sharer asserts INTx, in the handler: through Status.Interrupt (PCI 3.0 6.2.3; `command_status`
/// is the Command/Status dword) unless the function lacks Interrupt Disable and its driver gave a cause
/// register (`cause_enabled`: its enabled bits), which is then read (acknowledging the device) and decides.
fn sharer_asserts(intx_disable: bool, cause_enabled: Option<u32>, command_status: impl FnOnce() -> u32, read_cause: impl FnOnce() -> u32) -> bool {
    match cause_enabled {
        Some(enabled) if !intx_disable => read_cause() & enabled != 0,
        _ => {
            let command_status = command_status();
            // Status.Interrupt is set whatever Interrupt Disable says (PCI 3.0 6.2.3): a function with INTx
            // disabled does not drive the line even when its status shows a pending interrupt.
            (command_status >> 16) as u16 & regs::status::INTERRUPT != 0 && command_status as u16 & regs::command::INTX_DISABLE == 0
        }
    }
}

#[derive(Debug)]
struct Sharer {
    bdf: Bdf,
    /// Command.Interrupt Disable works on this function.
    intx_disable: bool,
    /// The driver's cause register, asked when `intx_disable` is false ([`IntxCause`]).
    cause: Option<IntxCause>,
    /// Interrupts claimed.
    count: u64,
    /// Claimed by the handler, waiting for `rearm` (masked, unless `acked`).
    held: bool,
    /// The driver's acknowledge write, used while the function is alone on its line.
    ack: Option<IntxAck>,
    /// `ack` is armed in the interrupt entry of the line's vector.
    armed: bool,
    /// Claimed through `ack` (nothing masked).
    acked: bool,
    /// Interrupt Disable set through [`mask`]: the function does not drive the line.
    masked: bool,
    /// Re-deliveries of this sharer's level the hold absorbed ([`REDELIVERIES_PER_CLAIM`]).
    redelivered: u64,
    /// Re-deliveries still taken for the current claim.
    absorb: u8,
}

#[derive(Debug)]
struct Line {
    route: IntxRoute,
    chip: IoApic,
    index: u32,
    /// The line's vector, on `cpu`.
    block: VectorBlock,
    /// The CPU the entry is aimed at, and its APIC ID.
    cpu: usize,
    apic_id: u32,
    /// A destination other than `apic_id`, physical and fixed (set_destination): then the line's vector
    /// may arrive on any CPU.
    dest: Option<(Destination, Delivery)>,
    /// Vectors the line is served on besides `block`, during and after a move: the new one before the
    /// entry points there, the old one until it drained from its CPU (kept when it did not).
    others: Vec<(usize, VectorBlock)>,
    /// As many as the platform routes to the line (pc puts every PCI function on two GSIs).
    sharers: Vec<Sharer>,
    unclaimed_in_a_row: u32,
    unclaimed: u64,
    storm_masked: bool,
    /// Entry masked by the handler for a sharer without Interrupt Disable.
    held_by_entry: bool,
}

impl Line {
    /// A line for `route` aimed at the default CPU, with its own vector there; nothing programmed yet.
    fn new(route: IntxRoute) -> Result<Line, IntxError> {
        let (chip, index) = locate(route.gsi).ok_or(IntxError::NoIoApic(route.gsi))?;
        let apic_id = *APIC_ID.get().unwrap_or(&0) as u32;
        let cpu = cpus::by_apic_id(apic_id).unwrap_or_else(cpus::current);
        let block = line_vector(cpu).map_err(|e| match e {
            AllocError::Vector(v) => IntxError::Vector(v),
            AllocError::Cpu(_) => IntxError::Vector(VectorError::Exhausted { requested: 1 }),
        })?;
        Ok(Line {
            route,
            chip,
            index,
            block,
            cpu,
            apic_id,
            dest: None,
            others: Vec::new(),
            sharers: Vec::new(),
            unclaimed_in_a_row: 0,
            unclaimed: 0,
            storm_masked: false,
            held_by_entry: false,
        })
    }
}

/// A vector for a line on `cpu`: from the INTx pool, or from the message vectors once that is used up
/// (as Linux takes IOAPIC vectors from the one pool).
fn line_vector(cpu: usize) -> Result<VectorBlock, AllocError> {
    cpus::alloc_on(cpu, Pool::Intx, 1).or_else(|_| cpus::alloc_on(cpu, Pool::Message, 1))
}

impl Line {
    /// Whether an interrupt on `vector` on CPU `cpu` is this line's.
    fn serves(&self, cpu: usize, vector: u8) -> bool {
        let on = |c: usize, b: &VectorBlock| b.base() == vector && (c == cpu || self.dest.is_some());
        on(self.cpu, &self.block) || self.others.iter().any(|(c, b)| on(*c, b))
    }

    /// The redirection entry aiming the line at its destination on its vector, masked or not.
    fn entry(&self, masked: bool) -> Result<message::Redirection, IntxError> {
        let (dest, delivery) = self.dest.unwrap_or((Destination::Physical(self.apic_id), Delivery::Fixed));
        message::compose_redirection(dest, delivery, self.block.base(), self.route.level, self.route.active_low, masked)
            .map_err(IntxError::Destination)
    }

    /// Programs the entry (masked first, then high, then low: IoApic::program_entry).
    fn program(&self, masked: bool) -> Result<(), IntxError> {
        let e = self.entry(masked)?;
        self.chip.program_entry(self.index, e.low, e.high);
        Ok(())
    }

    /// Removes the handler of every vector the line is served on.
    fn clear_handlers(&self) {
        cpus::clear_handler_on(self.cpu, self.block.base());
        for (c, b) in self.others.iter() {
            cpus::clear_handler_on(*c, b.base());
        }
    }

    /// Whether nothing but a move holds the entry masked (the handler's hold and the storm guard win).
    fn may_unmask(&self) -> bool {
        !self.held_by_entry && !self.storm_masked
    }
}

impl Line {
    /// Takes in an acknowledge the interrupt entry made on its own: the interrupt was the armed sharer's,
    /// claimed and held like one the handler claims.
    fn settle(&mut self) {
        let vector = self.block.base();
        let cpu = self.cpu;
        for s in self.sharers.iter_mut().filter(|s| s.armed && !idt::ack_armed_on(cpu, vector)) {
            s.armed = false;
            s.claim_acked();
            self.unclaimed_in_a_row = 0;
        }
    }

    /// Takes the entry's acknowledge back (settling one it made meanwhile).
    fn disarm(&mut self) {
        let vector = self.block.base();
        for s in self.sharers.iter_mut().filter(|s| s.armed) {
            s.armed = false;
            if !idt::disarm_ack_on(self.cpu, vector) {
                s.claim_acked();
                self.unclaimed_in_a_row = 0;
            }
        }
    }

    /// Arms the entry's acknowledge when the line has one sharer, with an acknowledge write, neither held
    /// nor masked, on a line the storm guard left alone.
    fn arm(&mut self) {
        let vector = self.block.base();
        let storm_masked = self.storm_masked;
        // The interrupt entry's acknowledge is armed per CPU and vector (arch::idt): a line aimed at
        // several CPUs is acknowledged by the handler.
        if self.dest.is_some() {
            return;
        }
        let cpu = self.cpu;
        if let [s] = self.sharers.as_mut_slice() {
            // The entry asks Status.Interrupt before it counts: only through ECAM (not ports, which the
            // interrupted code may be using), else every interrupt goes to the handler.
            let status = CONFIG.get().and_then(|cfg| cfg.command_status_address(s.bdf));
            if let (Some(ack), Some(status), false, false, false, false) = (s.ack, status, s.held, s.masked, s.armed, storm_masked) {
                // The driver gave this write as acknowledging the interrupt and nothing else; it stays
                // armed only while the function is attached and alone on the line (`disarm` on any change).
                s.armed = idt::arm_ack_once_on(cpu, vector, &ack.reg, ack.value, status);
            }
        }
    }
}

impl Sharer {
    fn claim_acked(&mut self) {
        self.count += 1;
        // A function the handler already holds with Interrupt Disable stays held so: its `rearm` must
        // clear it (the entry does not take an interrupt of a function with INTx disabled, but one that
        // raced the handler's hold can be counted here).
        self.acked = !self.held || self.acked;
        self.held = true;
        self.absorb = REDELIVERIES_PER_CLAIM;
    }
}

static IOAPICS: Mutex<Vec<IoApicRange>> = Mutex::new(Vec::new());
/// Lines released after taking interrupts nobody claimed, for the report.
static HISTORY: Mutex<Vec<LineReport>> = Mutex::new(Vec::new());

fn remember(line: &Line) {
    if line.unclaimed > 0 {
        let mut h = HISTORY.lock();
        h.push(LineReport { gsi: line.route.gsi, vector: line.block.base(), unclaimed: line.unclaimed, storm_masked: line.storm_masked });
    }
}

/// How long a move waits for Remote IRR to clear and for the old vector to drain (us); only a line or
/// CPU that does not answer costs it.
pub const MOVE_TIMEOUT_US: u64 = 200_000;

/// Why a line could not be moved or re-aimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetargetError {
    /// The line (or the function on it).
    Intx(IntxError),
    /// No vector on the new CPU (or no such CPU).
    Vector(AllocError),
    /// Remote IRR of the line's entry (GSI) stayed set: the level interrupt delivered before the move
    /// was not ended, and the entry cannot change vector until it is (its EOI matches on the vector).
    RemoteIrr(u32),
    /// The old vector stayed pending or in service on the old CPU (CPU, vector): kept, not freed.
    OldVectorBusy(usize, u8),
}

/// Where `bdf`'s line is aimed: (CPU, APIC ID, vector), when at one CPU.
pub fn target(bdf: Bdf) -> Option<(usize, u32, u8)> {
    lines(|lines| {
        let line = lines.iter().find(|l| l.sharers.iter().any(|s| s.bdf == bdf))?;
        line.dest.is_none().then(|| (line.cpu, line.apic_id, line.block.base()))
    })
}

/// The destination and delivery `bdf`'s line entry carries, when set by [`set_destination`].
pub fn destination(bdf: Bdf) -> Option<(Destination, Delivery)> {
    lines(|lines| lines.iter().find(|l| l.sharers.iter().any(|s| s.bdf == bdf)).and_then(|l| l.dest))
}

/// Masks the entry of `gsi`'s line and waits until its Remote IRR is clear (a level interrupt already
/// delivered has been ended by its CPU's EOI). False on timeout (the entry is left masked).
fn mask_and_settle(chip: IoApic, index: u32) -> bool {
    chip.set_masked(index, true);
    crate::time::wait_until(MOVE_TIMEOUT_US, || chip.entry_low(index) & crate::arch::ioapic::RTE_REMOTE_IRR == 0)
}

/// Moves the line `bdf` is on (every sharer with it) to CPU `cpu` (APIC ID `apic_id`) on a fresh vector
/// there. Linux's way for an IOAPIC line (the irq core masks it around the move): the entry masked, its
/// Remote IRR let clear, rewritten (destination, then vector: IoApic::program_entry), `between` run, and
/// unmasked unless the handler or the storm guard holds it masked; a level still asserted is delivered
/// at the unmask to the new CPU. With `unmasked` (a negative control) the live entry is rewritten one
/// register at a time: destination, `between`, vector. The old vector is freed once it is neither
/// pending nor in service on the old CPU. Returns the old and new (CPU, APIC ID, vector).
#[allow(clippy::type_complexity)]
pub fn retarget(bdf: Bdf, cpu: usize, apic_id: u32, unmasked: bool, between: &mut dyn FnMut()) -> Result<((usize, u32, u8), (usize, u32, u8)), RetargetError> {
    let block = line_vector(cpu).map_err(RetargetError::Vector)?;
    let new_vector = block.base();
    let found = lines(|lines| {
        let line = lines.iter_mut().find(|l| l.sharers.iter().any(|s| s.bdf == bdf))?;
        line.disarm();
        // Served on the new vector before the entry can point there.
        cpus::set_handler_on(cpu, new_vector, handle);
        line.others.push((cpu, block));
        Some((line.chip, line.index, line.route.gsi, (line.cpu, line.apic_id, line.block.base())))
    });
    let Some((chip, index, gsi, old)) = found else {
        // `block` was dropped with the closure: nothing to undo.
        return Err(RetargetError::Intx(IntxError::NotAttached(bdf)));
    };
    // The line's new state, with the entry as it is to be written.
    let commit = |lines: &mut Vec<Line>| -> Option<(message::Redirection, bool)> {
        let line = lines.iter_mut().find(|l| l.route.gsi == gsi)?;
        let at = line.others.iter().position(|(c, b)| *c == cpu && b.base() == new_vector)?;
        let (_, incoming) = line.others.swap_remove(at);
        let outgoing = core::mem::replace(&mut line.block, incoming);
        line.others.push((line.cpu, outgoing));
        line.cpu = cpu;
        line.apic_id = apic_id;
        line.dest = None;
        let entry = line.entry(true).ok()?;
        Some((entry, line.may_unmask()))
    };
    if unmasked {
        let e = lines(commit).ok_or(RetargetError::Intx(IntxError::NotAttached(bdf)))?;
        // Live: the destination first (the old vector now reaches the new CPU), then the vector.
        chip.write_high(index, e.0.high);
        between();
        let low = chip.entry_low(index) & crate::arch::ioapic::RTE_MASKED;
        chip.write_low(index, (e.0.low & !crate::arch::ioapic::RTE_MASKED) | low);
    } else {
        if !mask_and_settle(chip, index) {
            lines(|lines| {
                if let Some(line) = lines.iter_mut().find(|l| l.route.gsi == gsi) {
                    if let Some(at) = line.others.iter().position(|(c, b)| *c == cpu && b.base() == new_vector) {
                        line.others.swap_remove(at);
                        cpus::clear_handler_on(cpu, new_vector);
                    }
                    if line.may_unmask() {
                        line.chip.set_masked(line.index, false);
                    }
                    line.arm();
                }
            });
            return Err(RetargetError::RemoteIrr(gsi));
        }
        let e = lines(|lines| {
            let e = commit(lines)?;
            chip.program_entry(index, e.0.low, e.0.high);
            Some(e)
        })
        .ok_or(RetargetError::Intx(IntxError::NotAttached(bdf)))?;
        between();
        lines(|lines| {
            if let Some(line) = lines.iter().find(|l| l.route.gsi == gsi) {
                if line.may_unmask() {
                    line.chip.set_masked(line.index, false);
                }
            }
        });
        let _ = e;
    }
    // What the old CPU took on the old vector before the move is handled there; then it is freed.
    let drained = cpus::drain(old.0, &[old.2], MOVE_TIMEOUT_US);
    lines(|lines| {
        if let Some(line) = lines.iter_mut().find(|l| l.route.gsi == gsi) {
            if drained {
                if let Some(at) = line.others.iter().position(|(c, b)| *c == old.0 && b.base() == old.2) {
                    cpus::clear_handler_on(old.0, old.2);
                    line.others.swap_remove(at);
                }
            }
            line.arm();
        }
    });
    if !drained {
        return Err(RetargetError::OldVectorBusy(old.0, old.2));
    }
    Ok((old, (cpu, apic_id, new_vector)))
}

/// Aims `bdf`'s line at `dest` with `delivery` on its current vector (for the destination-mode checks:
/// the caller owns the vector, and its handler, on every CPU the destination reaches). The entry is
/// masked, its Remote IRR let clear, rewritten, and unmasked unless held. A physical, fixed destination
/// of an online CPU makes that CPU the line's target again.
pub fn set_destination(bdf: Bdf, dest: Destination, delivery: Delivery) -> Result<(), RetargetError> {
    message::compose_redirection(dest, delivery, 0x30, false, false, true).map_err(|e| RetargetError::Intx(IntxError::Destination(e)))?;
    let found = lines(|lines| {
        let line = lines.iter_mut().find(|l| l.sharers.iter().any(|s| s.bdf == bdf))?;
        line.disarm();
        Some((line.chip, line.index, line.route.gsi))
    });
    let Some((chip, index, gsi)) = found else { return Err(RetargetError::Intx(IntxError::NotAttached(bdf))) };
    let settled = mask_and_settle(chip, index);
    lines(|lines| {
        let Some(line) = lines.iter_mut().find(|l| l.route.gsi == gsi) else { return Ok(()) };
        if settled {
            match dest {
                Destination::Physical(id) if delivery == Delivery::Fixed && cpus::by_apic_id(id) == Some(line.cpu) => line.dest = None,
                _ => line.dest = Some((dest, delivery)),
            }
            line.program(true)?;
        }
        if line.may_unmask() {
            line.chip.set_masked(line.index, false);
        }
        line.arm();
        Ok(())
    })
    .map_err(RetargetError::Intx)?;
    if !settled {
        return Err(RetargetError::RemoteIrr(gsi));
    }
    Ok(())
}

/// Lines that were released after taking unclaimed interrupts (spurious for the firmware).
pub fn history() -> Vec<LineReport> {
    crate::arch::cpu::without_interrupts(|| HISTORY.lock().clone())
}
static LINES: Mutex<Vec<Line>> = Mutex::new(Vec::new());
static CONFIG: Once<&'static (dyn ConfigRegion + Sync)> = Once::new();
static APIC_ID: Once<u8> = Once::new();

fn lines<R>(f: impl FnOnce(&mut Vec<Line>) -> R) -> R {
    crate::arch::cpu::without_interrupts(|| f(&mut LINES.lock()))
}

/// Tells the INTx layer about the platform: its IOAPICs, configuration access and the CPU to target.
pub fn init(ioapics: &[IoApicRange], cfg: &'static (dyn ConfigRegion + Sync), apic_id: u8) {
    let mut list = IOAPICS.lock();
    list.clear();
    list.extend_from_slice(ioapics);
    CONFIG.call_once(|| cfg);
    APIC_ID.call_once(|| apic_id);
}

fn locate(gsi: u32) -> Option<(IoApic, u32)> {
    IOAPICS
        .lock()
        .iter()
        // `gsi - base < entries`, not `gsi < base + entries`: a hostile MADT's base near 2^32 must not overflow.
        .find(|r| gsi >= r.gsi_base && gsi - r.gsi_base < r.entries)
        .map(|r| (r.chip, gsi - r.gsi_base))
}

/// Whether Command.Interrupt Disable works on `bdf`: toggle it and check that exactly that bit changed
/// (Linux's pci_intx_mask_supported). Command is restored.
/// Interrupts are off throughout, so the handler cannot change Command in between.
pub fn probe_intx_disable(cfg: &dyn ConfigRegion, bdf: Bdf) -> bool {
    crate::arch::cpu::without_interrupts(|| {
        let orig = cfg.read16(bdf, regs::COMMAND);
        let toggled = orig ^ regs::command::INTX_DISABLE;
        cfg.write16(bdf, regs::COMMAND, toggled);
        let read = cfg.read16(bdf, regs::COMMAND);
        cfg.write16(bdf, regs::COMMAND, orig);
        read == toggled
    })
}

fn set_intx_disable(cfg: &dyn ConfigRegion, bdf: Bdf, disabled: bool) {
    let (set, clear) = if disabled { (regs::command::INTX_DISABLE, 0) } else { (0, regs::command::INTX_DISABLE) };
    update_command(cfg, bdf, set, clear);
}

/// Joins `bdf` to the line of `route` (creating it: vector, redirection entry, handler) and enables its
/// INTx (Command.Interrupt Disable cleared). Returns the line's vector.
pub fn attach(bdf: Bdf, route: IntxRoute) -> Result<u8, IntxError> {
    let cfg = *CONFIG.get().ok_or(IntxError::NoIoApic(route.gsi))?;
    let intx_disable = probe_intx_disable(cfg, bdf);
    let vector = lines(|lines| {
        let idx = match lines.iter().position(|l| l.route.gsi == route.gsi) {
            Some(i) => {
                if lines[i].route != route {
                    return Err(IntxError::Conflict(route.gsi));
                }
                if lines[i].storm_masked {
                    return Err(IntxError::StormMasked(route.gsi));
                }
                i
            }
            None => {
                lines.push(Line::new(route)?);
                lines.len() - 1
            }
        };
        let line = &mut lines[idx];
        if !line.sharers.iter().any(|s| s.bdf == bdf) {
            // A shared line needs Status.Interrupt: no entry acknowledge any more.
            line.disarm();
            line.sharers.push(Sharer {
                bdf,
                intx_disable,
                cause: None,
                count: 0,
                held: false,
                ack: None,
                armed: false,
                acked: false,
                masked: false,
                redelivered: 0,
                absorb: 0,
            });
        }
        cpus::set_handler_on(line.cpu, line.block.base(), handle);
        Ok(line.block.base())
    })?;
    // The sharer is registered before its INTx is enabled, so its first assertion is claimed.
    set_intx_disable(cfg, bdf, false);
    lines(|lines| {
        if let Some(line) = lines.iter().find(|l| l.route.gsi == route.gsi) {
            // Left alone while another sharer holds the line masked at the entry; rearm unmasks it.
            if line.may_unmask() {
                line.program(false)?;
            }
        }
        Ok(())
    })?;
    Ok(vector)
}

/// Removes `bdf` from its line: INTx disabled at the function; the last sharer masks the entry and frees
/// the vector.
pub fn detach(bdf: Bdf) {
    if let Some(cfg) = CONFIG.get() {
        set_intx_disable(*cfg, bdf, true);
    }
    lines(|lines| {
        let Some(i) = lines.iter().position(|l| l.sharers.iter().any(|s| s.bdf == bdf)) else { return };
        let line = &mut lines[i];
        line.disarm();
        for s in line.sharers.iter().filter(|s| s.bdf == bdf && s.redelivered > 0) {
            RETIRED.lock().push((bdf, s.redelivered));
        }
        line.sharers.retain(|s| s.bdf != bdf);
        // The entry masked for a sharer that has left is unmasked once no remaining sharer holds it so.
        if line.held_by_entry && !line.sharers.iter().any(|s| s.held && !s.acked && !s.intx_disable) {
            line.held_by_entry = false;
            if !line.storm_masked && !line.sharers.is_empty() {
                line.chip.set_masked(line.index, false);
            }
        }
        line.arm();
        if line.sharers.is_empty() {
            remember(line);
            line.chip.set_masked(line.index, true);
            line.clear_handlers();
            lines.swap_remove(i);
        }
    });
}

/// Sets up the line of `route` with no sharer (unmasked): whatever asserts it is unclaimed, which is how
/// the storm guard is exercised. Released with [`release`].
pub fn watch(route: IntxRoute) -> Result<u8, IntxError> {
    let vector = lines(|lines| {
        if lines.iter().any(|l| l.route.gsi == route.gsi) {
            return Err(IntxError::Conflict(route.gsi));
        }
        let line = Line::new(route)?;
        let vector = line.block.base();
        cpus::set_handler_on(line.cpu, vector, handle);
        lines.push(line);
        Ok(vector)
    })?;
    lines(|lines| match lines.iter().find(|l| l.route.gsi == route.gsi) {
        Some(line) => line.program(false),
        None => Ok(()),
    })?;
    Ok(vector)
}

/// Masks every redirection entry of every IOAPIC (the storm breaker of the crash-restart trap window).
/// Safe to call from an interrupt handler: it takes no lock.
pub fn mask_every_entry() {
    if let Some(list) = IOAPICS.try_lock() {
        for r in list.iter() {
            r.chip.mask_all();
        }
    }
}

/// Masks and removes the line of `gsi` (sharers or not) and frees its vector.
pub fn release(gsi: u32) {
    lines(|lines| {
        if let Some(i) = lines.iter().position(|l| l.route.gsi == gsi) {
            let line = &mut lines[i];
            line.disarm();
            line.chip.set_masked(line.index, true);
            line.clear_handlers();
            lines.swap_remove(i);
        }
    });
}

/// The counters of the line of `gsi`.
pub fn line(gsi: u32) -> Option<LineReport> {
    report().into_iter().find(|l| l.gsi == gsi)
}

/// Interrupts claimed by `bdf`.
pub fn count(bdf: Bdf) -> u64 {
    lines(|lines| {
        let line = lines.iter_mut().find(|l| l.sharers.iter().any(|s| s.bdf == bdf))?;
        line.settle();
        line.sharers.iter().find(|s| s.bdf == bdf).map(|s| s.count)
    })
    .unwrap_or(0)
}

/// Re-deliveries absorbed for sharers that have left their line, by function.
static RETIRED: Mutex<Vec<(Bdf, u64)>> = Mutex::new(Vec::new());

/// Re-deliveries of `bdf`'s level that its hold absorbed (see [`REDELIVERIES_PER_CLAIM`]), over the run
/// (kept when it leaves its line).
pub fn redeliveries(bdf: Bdf) -> u64 {
    lines(|lines| {
        let live: u64 = lines.iter().flat_map(|l| l.sharers.iter()).filter(|s| s.bdf == bdf).map(|s| s.redelivered).sum();
        live + RETIRED.lock().iter().filter(|(b, _)| *b == bdf).map(|(_, n)| n).sum::<u64>()
    })
}

/// Re-enables `bdf`'s INTx after its driver acknowledged the device (the second half of mask-ack-unmask).
pub fn rearm(bdf: Bdf) {
    let Some(cfg) = CONFIG.get() else { return };
    lines(|lines| {
        for line in lines.iter_mut() {
            line.settle();
            let Some(s) = line.sharers.iter_mut().find(|s| s.bdf == bdf) else { continue };
            // What holds the function back: nothing (the entry acknowledged it at the device), Interrupt
            // Disable, or the line's entry.
            let (mut enable, mut unmask) = (false, false);
            if s.held {
                s.held = false;
                if core::mem::take(&mut s.acked) {
                    // Acknowledged at the device by the interrupt entry: nothing was masked.
                } else if s.intx_disable {
                    enable = true;
                } else if line.held_by_entry && !line.storm_masked {
                    line.held_by_entry = false;
                    unmask = true;
                }
            }
            // The entry's acknowledge is armed before the function drives the line again (as in `mask`):
            // the interrupt that brings, taken on whichever CPU the line is aimed at, finds it.
            line.arm();
            if enable {
                set_intx_disable(*cfg, bdf, false);
            }
            if unmask {
                line.chip.set_masked(line.index, false);
            }
        }
    });
}

/// Masks (`true`) or unmasks `bdf`'s INTx at the function (Interrupt Disable), for mask/pending checks.
/// False if the function does not support it.
pub fn mask(bdf: Bdf, masked: bool) -> bool {
    let Some(cfg) = CONFIG.get() else { return false };
    let supported = lines(|lines| lines.iter().flat_map(|l| l.sharers.iter()).any(|s| s.bdf == bdf && s.intx_disable));
    if !supported {
        return false;
    }
    // Masked: the entry's acknowledge is taken back before the function stops driving the line.
    // Unmasked: it is armed before the function drives the line again.
    let mark = |lines: &mut Vec<Line>| {
        if let Some(line) = lines.iter_mut().find(|l| l.sharers.iter().any(|s| s.bdf == bdf)) {
            line.disarm();
            if let Some(s) = line.sharers.iter_mut().find(|s| s.bdf == bdf) {
                s.masked = masked;
            }
            line.arm();
        }
    };
    lines(mark);
    set_intx_disable(*cfg, bdf, masked);
    true
}

/// Gives the handler `bdf`'s acknowledge write (or takes it back), for when the function is alone on its
/// line. Its driver must be ready for the write to be made in interrupt context from then on.
pub fn set_ack(bdf: Bdf, ack: Option<IntxAck>) {
    lines(|lines| {
        if let Some(line) = lines.iter_mut().find(|l| l.sharers.iter().any(|s| s.bdf == bdf)) {
            line.disarm();
            if let Some(s) = line.sharers.iter_mut().find(|s| s.bdf == bdf) {
                s.ack = ack;
            }
            line.arm();
        }
    });
}

/// Gives the handler `bdf`'s cause register (or takes it back), asked when the function lacks Interrupt
/// Disable ([`IntxCause`]). Its driver must be ready for the register to be read in interrupt context.
pub fn set_cause(bdf: Bdf, cause: Option<IntxCause>) {
    lines(|lines| {
        for s in lines.iter_mut().flat_map(|l| l.sharers.iter_mut()).filter(|s| s.bdf == bdf) {
            s.cause = cause;
        }
    });
}

/// Whether `bdf` asserts INTx now (Status.Interrupt).
pub fn asserted(bdf: Bdf) -> Option<bool> {
    let cfg = CONFIG.get()?;
    Some(cfg.read16(bdf, regs::STATUS) & regs::status::INTERRUPT != 0)
}

/// What the storm guard did to a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineReport {
    /// GSI.
    pub gsi: u32,
    /// Vector.
    pub vector: u8,
    /// Interrupts no sharer claimed.
    pub unclaimed: u64,
    /// Masked by the storm guard.
    pub storm_masked: bool,
}

/// Every line's counters.
pub fn report() -> Vec<LineReport> {
    lines(|lines| {
        lines
            .iter()
            .map(|l| LineReport { gsi: l.route.gsi, vector: l.block.base(), unclaimed: l.unclaimed, storm_masked: l.storm_masked })
            .collect()
    })
}

/// A delivery no sharer asserts after a claim: the claimed sharer's level delivered again (an EOI beat
/// the deassertion), counted to it within [`REDELIVERIES_PER_CLAIM`] per claim, a held sharer's first.
/// Under KVM such a delivery can also arrive after the driver's rearm (the entry's acknowledge, armed
/// again then, leaves it to the handler since Status.Interrupt is clear), so the bound of the last claim
/// stands until the next claim. False when it is unclaimed.
fn absorb_redelivery(sharers: &mut [Sharer]) -> bool {
    let held = sharers.iter().position(|s| s.held && s.absorb > 0);
    match held.or_else(|| sharers.iter().position(|s| s.absorb > 0)).map(|i| &mut sharers[i]) {
        Some(s) => {
            s.absorb -= 1;
            s.redelivered += 1;
            true
        }
        None => false,
    }
}

/// The handler of every INTx vector, for a caller that aims a line at more CPUs than its target (the
/// destination-mode checks own the line's vector there and register this on it; see [`set_destination`]).
pub fn handler() -> crate::irq::dispatch::Handler {
    handle
}

/// The interrupt handler of every INTx vector (interrupt context, before EOI).
fn handle(vector: u8) {
    let Some(cfg) = CONFIG.get() else { return };
    // Interrupts are off in the handler, so the lock cannot be held by the interrupted code path
    // (every other user takes it with interrupts disabled).
    let mut lines = LINES.lock();
    let cpu = cpus::current();
    let Some(line) = lines.iter_mut().find(|l| l.serves(cpu, vector)) else { return };
    // An acknowledge the entry made for an earlier interrupt is counted first; this one is then another.
    line.settle();
    let mut claimed = false;
    let (armed_cpu, armed_vector) = (line.cpu, line.block.base());
    for s in line.sharers.iter_mut() {
        // A held sharer is masked and waits for its driver: Interrupt Disable does not clear
        // Status.Interrupt (PCI 3.0 6.2.3), so without this check another sharer's interrupt, or an EOI
        // that beat the Deassert_INTx message, would count it twice (VFIO checks `!masked` the same way).
        // One held after the entry's acknowledge is not masked: it is asked like any other.
        if s.held && !s.acked {
            continue;
        }
        // Command and Status in one dword read (a trap each under a hypervisor): Status.Interrupt says
        // whether this sharer asserts, Command is what the Interrupt Disable write below starts from
        // (interrupts are off here, so the read-modify-write cannot be interleaved).
        let mut command_status = 0;
        let asserting = sharer_asserts(
            s.intx_disable,
            s.cause.map(|c| c.enabled),
            || {
                command_status = cfg.read32(s.bdf, regs::COMMAND);
                command_status
            },
            || s.cause.map_or(0, |c| c.reg.read32(0)),
        );
        if !asserting {
            continue;
        }
        claimed = true;
        if s.armed {
            // The entry's acknowledge was armed after this interrupt passed the entry (a `rearm` on another
            // CPU than the line's, or the function asserting only after the entry asked it). The sharer is
            // held below, so the acknowledge is taken back: armed, the next delivery of the line (a level
            // delivered again) would be taken by the entry as a new interrupt of the held function. One the
            // entry made meanwhile (the handler running on another CPU) was an interrupt of its own.
            s.armed = false;
            if !idt::disarm_ack_on(armed_cpu, armed_vector) {
                s.count += 1;
            }
        }
        if s.held {
            // Acknowledged by the entry and asserting again before its driver's `rearm`: held off now and
            // counted when `rearm` lets it through, as the generic path would have it.
            s.acked = false;
        } else {
            s.count += 1;
            s.held = true;
        }
        s.absorb = REDELIVERIES_PER_CLAIM;
        if s.intx_disable {
            // PCI 3.0 6.2.2: Interrupt Disable (Command bit 10) stops the function asserting INTx.
            cfg.write16(s.bdf, regs::COMMAND, command_status as u16 | regs::command::INTX_DISABLE);
        } else {
            line.held_by_entry = true;
            line.chip.set_masked(line.index, true);
        }
    }
    if claimed {
        line.unclaimed_in_a_row = 0;
        return;
    }
    if absorb_redelivery(&mut line.sharers) {
        return;
    }
    line.unclaimed += 1;
    line.unclaimed_in_a_row += 1;
    if line.unclaimed_in_a_row >= STORM_THRESHOLD && !line.storm_masked {
        line.storm_masked = true;
        line.chip.set_masked(line.index, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sharer(dev: u8) -> Sharer {
        Sharer {
            bdf: Bdf::new(0, dev, 0),
            intx_disable: true,
            cause: None,
            count: 0,
            held: false,
            ack: None,
            armed: false,
            acked: false,
            masked: false,
            redelivered: 0,
            absorb: 0,
        }
    }

    #[test]
    fn redeliveries_after_a_claim_are_counted_to_the_held_sharer_within_the_bound() {
        let mut sharers = [sharer(3), sharer(4)];
        // Nothing held: a delivery nobody asserts is unclaimed.
        assert!(!absorb_redelivery(&mut sharers));
        // 00:04.0 claimed (held until rearm): up to two re-deliveries are its own, the third is unclaimed.
        sharers[1].claim_acked();
        assert!(absorb_redelivery(&mut sharers));
        assert!(absorb_redelivery(&mut sharers));
        assert!(!absorb_redelivery(&mut sharers), "a third re-delivery per claim is unclaimed (storm guard)");
        assert_eq!((sharers[0].redelivered, sharers[1].redelivered), (0, 2));
        // A new claim restarts the bound, which stands after the rearm until the next claim.
        sharers[1].claim_acked();
        assert!(absorb_redelivery(&mut sharers));
        sharers[1].held = false;
        assert!(absorb_redelivery(&mut sharers));
        assert!(!absorb_redelivery(&mut sharers));
        assert_eq!(sharers[1].redelivered, 4);
        // A held sharer's level is taken first.
        sharers[0].claim_acked();
        sharers[1].claim_acked();
        sharers[1].held = false;
        assert!(absorb_redelivery(&mut sharers));
        assert_eq!((sharers[0].redelivered, sharers[1].redelivered), (1, 4));
    }

    #[test]
    fn an_interrupt_disable_hold_survives_a_claim_by_the_entry() {
        // Claimed by the entry alone: held, nothing masked, so rearm has nothing to undo.
        let mut s = sharer(5);
        s.claim_acked();
        assert!(s.held && s.acked && s.count == 1);
        // Held by the handler with Interrupt Disable (held, not acked): a claim counted through the
        // entry afterwards must leave it so, or rearm would never clear Interrupt Disable.
        let mut s = sharer(5);
        s.count = 1;
        s.held = true;
        s.claim_acked();
        assert!(s.held && !s.acked && s.count == 2, "the Interrupt Disable hold is kept");
    }

    #[test]
    fn a_function_without_interrupt_disable_is_asked_through_its_cause_register() {
        const STATUS_INTERRUPT: u32 = (regs::status::INTERRUPT as u32) << 16;
        let never = || -> u32 { panic!("not asked") };
        // Bochs' e1000: Status.Interrupt stays clear while it asserts; its ICR says so (and the read acks it).
        assert!(sharer_asserts(false, Some(1), || 0, || 0x8000_0001), "cause bit set: the function asserts");
        assert!(!sharer_asserts(false, Some(1), never, || 0x8000_0004), "only a cause it enabled counts");
        assert!(!sharer_asserts(false, Some(1), never, || 0), "no cause: another sharer's interrupt");
        // With Interrupt Disable (PCI 2.3) Status.Interrupt is there: the cause register is not read.
        assert!(sharer_asserts(true, Some(1), || STATUS_INTERRUPT, never));
        assert!(!sharer_asserts(true, Some(1), || 0, never));
        assert!(!sharer_asserts(true, None, || STATUS_INTERRUPT | regs::command::INTX_DISABLE as u32, never), "disabled: not driving the line");
        // No cause register: Status.Interrupt, as before.
        assert!(sharer_asserts(false, None, || STATUS_INTERRUPT, never));
        assert!(!sharer_asserts(false, None, || 0, never));
    }
}
