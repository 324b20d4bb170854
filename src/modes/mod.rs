//! Interrupt modes of a function: MSI-X, MSI (and, later, INTx). Drivers and scenarios use only the
//! [`DeviceIrq`] handle: allocate and enable, mask, unmask, count, free (on drop).

#[deny(unsafe_code)]
pub mod conformance;
#[deny(unsafe_code)]
pub mod msi;
#[deny(unsafe_code)]
pub mod msix;
// Its host test maps two heap buffers as MSI-X table and PBA windows.
#[cfg_attr(test, allow(unsafe_code))]
pub mod order;
#[deny(unsafe_code)]
pub mod policy;
#[deny(unsafe_code)]
pub mod quiesce;
#[deny(unsafe_code)]
pub mod route;

use crate::bus::pci::bar::MapError;
use crate::bus::pci::enumerate::Function;
use crate::bus::pci::{Bdf, ConfigRegion};
use crate::irq::message::{self, MessageError, MsiMessage};
use crate::irq::vector::{VectorBlock, VectorError};
use crate::irq::{dispatch, intx};
use heapless::Vec;

/// Most vectors one function gets.
pub const MAX_VECTORS: usize = 32;

/// The interrupt mode of a function: the wire protocol's enum, defined once for firmware and host.
pub use msifw_proto::record::IrqMode;

/// Why interrupts could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqError {
    /// The function has no capability for the mode.
    NoCapability(IrqMode),
    /// Vector allocation failed.
    Vector(VectorError),
    /// Message composition failed.
    Message(MessageError),
    /// MSI-X capability or table is unusable.
    Msix(msix::MsixError),
    /// MSI capability is unusable.
    Msi(msi::MsiError),
    /// A BAR could not be mapped.
    Map(MapError),
    /// A message written to the device did not read back.
    ReadBack {
        /// Entry (MSI-X) or 0 (MSI).
        entry: u16,
    },
    /// INTx line setup failed.
    Intx(crate::irq::intx::IntxError),
    /// More vectors requested than the function offers or than [`MAX_VECTORS`].
    TooManyVectors {
        /// Requested.
        requested: u16,
        /// Available.
        available: u16,
    },
}

impl core::fmt::Display for IrqError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoCapability(m) => write!(f, "no {} capability", m.name()),
            Self::Vector(e) => write!(f, "{e}"),
            Self::Message(e) => write!(f, "{e}"),
            Self::Msix(e) => write!(f, "{e}"),
            Self::Msi(e) => write!(f, "{e}"),
            Self::Map(e) => write!(f, "{e}"),
            Self::ReadBack { entry } => write!(f, "message of entry {entry} did not read back"),
            Self::Intx(e) => write!(f, "{e}"),
            Self::TooManyVectors { requested, available } => {
                write!(f, "{requested} vectors requested, {available} available")
            }
        }
    }
}

impl From<VectorError> for IrqError {
    fn from(e: VectorError) -> Self {
        IrqError::Vector(e)
    }
}
impl From<MessageError> for IrqError {
    fn from(e: MessageError) -> Self {
        IrqError::Message(e)
    }
}

// The MSI-X variant carries its cache of up to MAX_VECTORS messages; boxing it would need an allocator,
// which the firmware does not have, and there is one State per driven function.
#[allow(clippy::large_enum_variant)]
enum State {
    Msix(msix::MsixFunction),
    Msi(msi::MsiFunction),
    Intx(intx::IntxRoute),
}

impl core::fmt::Debug for State {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            State::Msix(_) => f.write_str("Msix"),
            State::Msi(_) => f.write_str("Msi"),
            State::Intx(r) => write!(f, "Intx(GSI {})", r.gsi),
        }
    }
}

/// Interrupts of one function: its vectors, the mode, and the programmed capability. Dropping it shuts
/// the mode down (entries masked, Enable cleared, INTx left disabled: the function stays quiet) and then
/// frees the vectors.
#[derive(Debug)]
pub struct DeviceIrq<'c, C: ConfigRegion> {
    cfg: &'c C,
    bdf: Bdf,
    state: State,
    vectors: Vec<u8, MAX_VECTORS>,
    baseline: Vec<u64, MAX_VECTORS>,
    /// The mode is set up (cleared by an explicit shutdown, so Drop does not shut it down twice).
    live: bool,
    /// Interrupts delivered until the mode was shut down: after it, the vectors may belong to another
    /// function and an INTx sharer's count is gone with it, so [`DeviceIrq::delivered`] keeps this.
    delivered_at_shutdown: Option<u64>,
    // Declared last: freed after the device is quiet.
    _blocks: Vec<VectorBlock, MAX_VECTORS>,
}

fn messages(apic_id: u32, vectors: &[u8]) -> Result<Vec<MsiMessage, MAX_VECTORS>, IrqError> {
    let mut out = Vec::new();
    for &v in vectors {
        let m = message::compose(apic_id, v)?;
        if !message::in_msi_window(m.address) {
            return Err(MessageError::OutsideMsiWindow(m.address).into());
        }
        let _ = out.push(m);
    }
    Ok(out)
}

impl<'c, C: ConfigRegion> DeviceIrq<'c, C> {
    /// Enables MSI-X with up to `count` vectors (table entries 0..n, n limited by the table size), each
    /// targeting `apic_id`.
    pub fn enable_msix(cfg: &'c C, function: &Function, count: u16, apic_id: u32) -> Result<Self, IrqError> {
        let cap = function.caps.find(crate::bus::pci::caps::id::MSIX).ok_or(IrqError::NoCapability(IrqMode::Msix))?;
        let info = msix::read_capability(cfg, function.bdf, cap);
        if count == 0 {
            return Err(IrqError::TooManyVectors { requested: count, available: info.table_size });
        }
        // As many as asked for, up to the table's size and MAX_VECTORS.
        let count = count.min(info.table_size).min(MAX_VECTORS as u16);
        let mut blocks = Vec::new();
        let mut vectors = Vec::new();
        for _ in 0..count {
            let block = VectorBlock::alloc(1)?;
            let _ = vectors.push(block.base());
            let _ = blocks.push(block);
        }
        let msgs = messages(apic_id, &vectors)?;
        let baseline = vectors.iter().map(|&v| dispatch::count(v)).collect();
        let (table, pba) = msix::map(&info, function)?;
        let state = msix::MsixFunction::enable(cfg, function.bdf, info, table, pba, &msgs)?;
        Ok(DeviceIrq { cfg, bdf: function.bdf, state: State::Msix(state), vectors, baseline, live: true, delivered_at_shutdown: None, _blocks: blocks })
    }

    /// Enables MSI with up to `count` vectors: the largest power of two not above `count` or the
    /// function's Multiple Message Capable, as one aligned block, targeting `apic_id`.
    pub fn enable_msi(cfg: &'c C, function: &Function, count: u16, apic_id: u32) -> Result<Self, IrqError> {
        let cap = function.caps.find(crate::bus::pci::caps::id::MSI).ok_or(IrqError::NoCapability(IrqMode::Msi))?;
        let info = msi::read_capability(cfg, function.bdf, cap).map_err(IrqError::Msi)?;
        if count == 0 {
            return Err(IrqError::TooManyVectors { requested: count, available: info.max_vectors() });
        }
        let wanted = count.min(info.max_vectors());
        let count = 1u16 << (15 - wanted.leading_zeros());
        let block = VectorBlock::alloc(count)?;
        let vectors: Vec<u8, MAX_VECTORS> = block.iter().collect();
        let msg = message::compose(apic_id, block.base())?;
        let baseline = vectors.iter().map(|&v| dispatch::count(v)).collect();
        let state = msi::MsiFunction::enable(cfg, function.bdf, info, msg, count)?;
        let mut blocks = Vec::new();
        let _ = blocks.push(block);
        Ok(DeviceIrq { cfg, bdf: function.bdf, state: State::Msi(state), vectors, baseline, live: true, delivered_at_shutdown: None, _blocks: blocks })
    }

    /// Enables INTx through `route` (the line is shared with any other function routed there).
    pub fn enable_intx(cfg: &'c C, function: &Function, route: intx::IntxRoute) -> Result<Self, IrqError> {
        if function.interrupt_pin == 0 || function.interrupt_pin > 4 {
            return Err(IrqError::NoCapability(IrqMode::Intx));
        }
        let vector = intx::attach(function.bdf, route).map_err(IrqError::Intx)?;
        let mut vectors = Vec::new();
        let _ = vectors.push(vector);
        let mut baseline = Vec::new();
        let _ = baseline.push(intx::count(function.bdf));
        Ok(DeviceIrq { cfg, bdf: function.bdf, state: State::Intx(route), vectors, baseline, live: true, delivered_at_shutdown: None, _blocks: Vec::new() })
    }

    /// In INTx mode, gives the line's handler the driver's acknowledge write (see [`intx::IntxAck`]).
    pub fn set_intx_ack(&mut self, ack: Option<intx::IntxAck>) {
        if let State::Intx(_) = self.state {
            intx::set_ack(self.bdf, ack);
        }
    }

    /// In INTx mode, gives the line's handler the driver's cause register (see [`intx::IntxCause`]).
    pub fn set_intx_cause(&mut self, cause: Option<intx::IntxCause>) {
        if let State::Intx(_) = self.state {
            intx::set_cause(self.bdf, cause);
        }
    }

    /// The mode.
    pub fn mode(&self) -> IrqMode {
        match self.state {
            State::Msix(_) => IrqMode::Msix,
            State::Msi(_) => IrqMode::Msi,
            State::Intx(_) => IrqMode::Intx,
        }
    }

    /// The INTx route, in INTx mode.
    pub fn intx_route(&self) -> Option<intx::IntxRoute> {
        match self.state {
            State::Intx(r) => Some(r),
            _ => None,
        }
    }

    /// After the driver acknowledged source `i` at the device: re-enables a level-triggered INTx that the
    /// handler masked (mask-ack-unmask). Nothing to do for MSI and MSI-X, which are edge messages.
    pub fn rearm(&mut self, _i: usize) {
        if let State::Intx(_) = self.state {
            intx::rearm(self.bdf);
        }
    }

    /// The function.
    pub fn bdf(&self) -> Bdf {
        self.bdf
    }

    /// CPU vectors, in entry order.
    pub fn vectors(&self) -> &[u8] {
        &self.vectors
    }

    /// CPU vector of entry `i`.
    pub fn vector(&self, i: usize) -> Option<u8> {
        self.vectors.get(i).copied()
    }

    /// Interrupts delivered for entry `i` (a running count: compare two readings). For INTx, those the
    /// handler attributed to this function through Status.Interrupt (the vector may be shared).
    pub fn count(&self, i: usize) -> u64 {
        match self.state {
            State::Intx(_) => intx::count(self.bdf),
            _ => self.vector(i).map(dispatch::count).unwrap_or(0),
        }
    }

    /// Interrupts delivered to this function since its interrupts were set up.
    pub fn delivered(&self) -> u64 {
        if let Some(n) = self.delivered_at_shutdown {
            return n;
        }
        (0..self.vectors.len()).zip(self.baseline.iter()).map(|(i, &b)| self.count(i).saturating_sub(b)).sum()
    }

    /// Interrupts counted on all of this function's vectors (a running total: compare two readings).
    pub fn total_counts(&self) -> u64 {
        (0..self.vectors.len()).map(|i| self.count(i)).sum()
    }

    /// Masks entry `i` (MSI-X vector control, or the MSI mask bit if the function has one).
    pub fn mask(&mut self, i: usize, masked: bool) -> bool {
        match &mut self.state {
            State::Msix(m) => m.set_entry_mask(i as u16, masked),
            State::Msi(m) => m.set_mask(self.cfg, i as u16, masked),
            State::Intx(_) => intx::mask(self.bdf, masked),
        }
    }

    /// Whether the function is in MSI mode with per-vector mask bits.
    pub fn msi_maskable(&self) -> bool {
        matches!(&self.state, State::Msi(m) if m.maskable())
    }

    /// Whether entry `i` is pending (MSI-X PBA, or MSI pending bits), when the function reports it.
    pub fn pending(&self, i: usize) -> Option<bool> {
        match &self.state {
            State::Msix(m) => Some(m.pending(i as u16)),
            State::Msi(m) => m.pending(self.cfg, i as u16),
            State::Intx(_) => intx::asserted(self.bdf),
        }
    }

    /// MSI-X: the first entry in use whose table no longer holds the message written to it (a reset wiped
    /// it): (entry, address, data) found. `None` when the table is intact or the mode has no table.
    pub fn table_mismatch(&self) -> Option<(u16, u64, u32)> {
        match &self.state {
            State::Msix(m) => m.table_mismatch(),
            _ => None,
        }
    }

    /// After a function reset (header already restored): writes the interrupt state back. `Full`
    /// rewrites the MSI-X table from the cache; `ConfigOnly` restores what a configuration-space save
    /// holds, which for MSI-X leaves the table as the reset left it. False if a message did not read back.
    pub fn restore(&mut self, what: msix::Restore) -> bool {
        match &mut self.state {
            State::Msix(m) => m.restore(self.cfg, what),
            State::Msi(_) | State::Intx(_) => true,
        }
    }

    /// Shuts the mode down now (MSI-X entries masked and Enable cleared, MSI disabled, or INTx detached) and
    /// frees the vectors; later calls and Drop do nothing more.
    pub fn shutdown(&mut self) {
        if !self.live {
            return;
        }
        self.live = false;
        self.delivered_at_shutdown = Some(self.delivered());
        match &mut self.state {
            State::Msix(m) => m.shutdown(self.cfg),
            State::Msi(m) => m.shutdown(self.cfg),
            State::Intx(_) => intx::detach(self.bdf),
        }
        self._blocks.clear();
    }

    /// Disables the current mode, frees its vectors, and enables MSI-X afresh with up to `count` vectors:
    /// new vectors from the allocator, every message composed anew, nothing taken from the device's table
    /// or an earlier setup (seed 002: re-enabling must not reuse a stale message).
    pub fn reenable_msix(&mut self, function: &Function, count: u16, apic_id: u32) -> Result<(), IrqError> {
        self.shutdown();
        *self = DeviceIrq::enable_msix(self.cfg, function, count, apic_id)?;
        Ok(())
    }

    /// MSI-X: adds one vector while enabled: a new vector from the allocator, its message composed and
    /// written to the next entry (masked while written, read back), then unmasked. Returns the vector.
    pub fn add_msix_vector(&mut self, apic_id: u32) -> Result<u8, IrqError> {
        let State::Msix(m) = &mut self.state else { return Err(IrqError::NoCapability(IrqMode::Msix)) };
        let block = VectorBlock::alloc(1)?;
        let vector = block.base();
        let msg = message::compose(apic_id, vector)?;
        let entry = m.add_entry(msg).ok_or(IrqError::TooManyVectors { requested: self.vectors.len() as u16 + 1, available: m.used() })?;
        if self.vectors.push(vector).is_err() || self._blocks.push(block).is_err() {
            return Err(IrqError::TooManyVectors { requested: entry + 1, available: MAX_VECTORS as u16 });
        }
        let _ = self.baseline.push(dispatch::count(vector));
        Ok(vector)
    }

    /// For negative controls only: unmasks the next unused MSI-X entry with its message zeroed (never
    /// programmed), as a buggy incremental enable would. Returns the entry.
    pub fn expose_unprogrammed_entry(&mut self) -> Option<u16> {
        match &mut self.state {
            State::Msix(m) => m.expose_unprogrammed(),
            _ => None,
        }
    }

    /// For negative controls only: writes `msg` into MSI-X entry `entry` (masked while written, as any
    /// message), whatever vector it names, the way a buggy driver reusing a stale message would.
    pub fn write_stale_message(&mut self, entry: u16, msg: MsiMessage) -> bool {
        match &mut self.state {
            State::Msix(m) => m.rewrite_entry(entry, msg),
            _ => false,
        }
    }

    /// Sets or clears the MSI-X Function Mask. `false` for MSI, INTx, and once the mode is shut down
    /// (nothing is written to a function whose MSI-X is off or that may be gone).
    pub fn function_mask(&mut self, masked: bool) -> bool {
        match &mut self.state {
            State::Msix(m) if self.live => {
                m.set_function_mask(self.cfg, masked);
                true
            }
            State::Msix(_) | State::Msi(_) | State::Intx(_) => false,
        }
    }
}

impl<C: ConfigRegion> Drop for DeviceIrq<'_, C> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// How [`clear_and_set_ctrl`] gets the Message Control value it modifies, and whether it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ctrl {
    /// Read it and write the result (Linux's `pci_msix_clear_and_set_ctrl`).
    Always,
    /// Read it and write only when the result differs (quieting: a function already quiet is not
    /// written to).
    IfChanged,
    /// Modify this value, read earlier in the same sequence, and write it (no second read).
    Known(u16),
}

// Message Control sits at the same place in both capabilities.
const _: () = assert!(msi::CONTROL == msix::CONTROL);

/// Read-modify-write of the Message Control register of the MSI or MSI-X capability at `cap` (cap + 2):
/// the `clear` bits cleared, then the `set` bits set; returns the value it modified. Linux's
/// `pci_msix_clear_and_set_ctrl` (and `pci_msi_set_enable` for MSI). Only the read-write bits may change:
/// MSI-X Enable and Function Mask (PCIe r5.0 7.7.2.2), MSI Enable and Multiple Message Enable (PCIe r5.0
/// 7.7.1.2); the others are read-only and written back as read. Every write of Message Control goes
/// through here.
pub fn clear_and_set_ctrl<C: ConfigRegion + ?Sized>(cfg: &C, bdf: Bdf, cap: u16, clear: u16, set: u16, how: Ctrl) -> u16 {
    let at = cap + msix::CONTROL;
    let old = match how {
        Ctrl::Known(v) => v,
        Ctrl::Always | Ctrl::IfChanged => cfg.read16(bdf, at),
    };
    let new = (old & !clear) | set;
    if how != Ctrl::IfChanged || new != old {
        cfg.write16(bdf, at, new);
    }
    old
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::pci::config::sim::SimConfig;

    #[test]
    fn message_control_read_modify_write() {
        let sim = SimConfig::default();
        let bdf = sim.add(Bdf::new(0, 3, 0), 0x8086, 0x10d3, 0x020000);
        sim.poke(bdf, 0x52, &(msix::ENABLE | 7).to_le_bytes());
        let write = |v: u16| (bdf, 0x52, 2, u32::from(v));
        // Read, clear, set, write; the value read is returned.
        assert_eq!(clear_and_set_ctrl(&sim, bdf, 0x50, msix::ENABLE, msix::FUNCTION_MASK, Ctrl::Always), msix::ENABLE | 7);
        assert_eq!(*sim.writes.borrow(), vec![write(msix::FUNCTION_MASK | 7)]);
        // Always writes even when nothing changes; IfChanged does not.
        clear_and_set_ctrl(&sim, bdf, 0x50, 0, msix::FUNCTION_MASK, Ctrl::Always);
        clear_and_set_ctrl(&sim, bdf, 0x50, 0, msix::FUNCTION_MASK, Ctrl::IfChanged);
        assert_eq!(sim.writes.borrow().len(), 2);
        clear_and_set_ctrl(&sim, bdf, 0x50, msix::FUNCTION_MASK, 0, Ctrl::IfChanged);
        assert_eq!(sim.writes.borrow().last(), Some(&write(7)));
        // Known: the value given is modified, whatever the register holds now.
        assert_eq!(clear_and_set_ctrl(&sim, bdf, 0x50, 0, msix::ENABLE, Ctrl::Known(msix::FUNCTION_MASK | 7)), msix::FUNCTION_MASK | 7);
        assert_eq!(sim.writes.borrow().last(), Some(&write(msix::ENABLE | msix::FUNCTION_MASK | 7)));
    }
}
