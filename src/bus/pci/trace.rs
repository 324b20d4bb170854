//! The access trace: every configuration-space access the platform accessor makes, and every MSI-X table
//! access (recorded by `modes::msix`), in order, while tracing is on, together with which functions the
//! firmware owns. `modes::order` holds the record against the spec's rules.
//!
//! The trace grows from the heap (arch::heap), as long as the run needs: a soak on shared INTx lines records
//! every Status read its handler makes. Only a heap that cannot grow it any more stops it; the accesses not
//! recorded are counted (`overflowed`) and the run reports that limit, never silently.

use super::config::Bdf;
#[cfg(not(test))]
use spin::Mutex;

use alloc::vec::Vec;

/// A field of an MSI-X table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableField {
    /// Message Address (low).
    AddrLo,
    /// Message Upper Address.
    AddrHi,
    /// Message Data.
    Data,
    /// Vector Control.
    Control,
}

/// One access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Configuration read of `size` bytes at `offset`.
    ConfigRead {
        /// Offset.
        offset: u16,
        /// 1, 2 or 4.
        size: u8,
        /// Value read.
        value: u32,
    },
    /// Configuration write.
    ConfigWrite {
        /// Offset.
        offset: u16,
        /// 1, 2 or 4.
        size: u8,
        /// Value written.
        value: u32,
    },
    /// MSI-X table read.
    TableRead {
        /// Entry index.
        entry: u16,
        /// Field.
        field: TableField,
        /// Value read.
        value: u32,
    },
    /// A negative control begins (`true`) or ends (`false`) for this function: rule breaks in between
    /// are deliberate.
    Control(bool),
    /// MSI-X table write.
    TableWrite {
        /// Entry index.
        entry: u16,
        /// Field.
        field: TableField,
        /// Value written.
        value: u32,
    },
}

/// An access to one function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// The function.
    pub bdf: Bdf,
    /// What was done.
    pub access: Access,
}

impl core::fmt::Display for Event {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.access {
            Access::ConfigRead { offset, size, value } => write!(f, "{} cfg read{} {offset:#x} = {value:#x}", self.bdf, size * 8),
            Access::ConfigWrite { offset, size, value } => write!(f, "{} cfg write{} {offset:#x} <- {value:#x}", self.bdf, size * 8),
            Access::TableRead { entry, field, value } => write!(f, "{} table[{entry}].{field:?} = {value:#x}", self.bdf),
            Access::TableWrite { entry, field, value } => write!(f, "{} table[{entry}].{field:?} <- {value:#x}", self.bdf),
            Access::Control(on) => write!(f, "{} negative control {}", self.bdf, if on { "begins" } else { "ends" }),
        }
    }
}

/// The trace itself (pure data; the firmware keeps one in a static).
#[derive(Debug)]
pub struct Trace {
    /// Events in order.
    pub events: Vec<Event>,
    /// Functions the firmware owns (it may write them).
    pub owned: Vec<Bdf>,
    /// Events not recorded because the heap could not hold them.
    pub overflowed: u32,
    /// Recording on.
    pub on: bool,
}

impl Trace {
    /// Empty, off.
    pub const fn new() -> Self {
        Trace { events: Vec::new(), owned: Vec::new(), overflowed: 0, on: false }
    }

    /// Appends an event if recording.
    pub fn record(&mut self, bdf: Bdf, access: Access) {
        if !self.on {
            return;
        }
        // Growing doubles the list (and copies it): only while the heap keeps its reserve afterwards.
        let growth = if self.events.len() == self.events.capacity() { self.events.capacity().max(4) * core::mem::size_of::<Event>() } else { 0 };
        if crate::arch::heap::can_spare(growth) && self.events.try_reserve(1).is_ok() {
            self.events.push(Event { bdf, access });
        } else {
            self.overflowed = self.overflowed.saturating_add(1);
        }
    }

    /// Marks `bdf` as owned.
    pub fn own(&mut self, bdf: Bdf) {
        if !self.owned.contains(&bdf) {
            self.owned.push(bdf);
        }
    }

    /// Whether `bdf` is owned.
    pub fn owns(&self, bdf: Bdf) -> bool {
        self.owned.contains(&bdf)
    }
}

impl Default for Trace {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(not(test))]
static TRACE: Mutex<Trace> = Mutex::new(Trace::new());

#[cfg(not(test))]
fn with<R>(f: impl FnOnce(&mut Trace) -> R) -> R {
    crate::arch::cpu::without_interrupts(|| f(&mut TRACE.lock()))
}

// Host tests run in parallel threads: each gets its own trace.
#[cfg(test)]
std::thread_local! {
    static TRACE: std::cell::RefCell<Trace> = const { std::cell::RefCell::new(Trace::new()) };
}

#[cfg(test)]
fn with<R>(f: impl FnOnce(&mut Trace) -> R) -> R {
    TRACE.with(|t| f(&mut t.borrow_mut()))
}

/// Whether the global trace records: read without the lock, so that an access made while tracing is off
/// (the benchmark, every INTx handler outside the traced part of the run) costs one load.
static RECORDING: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

fn set_recording(on: bool) {
    RECORDING.store(on, core::sync::atomic::Ordering::Relaxed);
}

/// Records an access in the global trace (no-op while tracing is off).
pub fn record(bdf: Bdf, access: Access) {
    if cfg!(test) || RECORDING.load(core::sync::atomic::Ordering::Relaxed) {
        with(|t| t.record(bdf, access));
    }
}

/// Starts recording (clearing what was there).
pub fn start() {
    with(|t| {
        t.events.clear();
        t.overflowed = 0;
        t.on = true;
    });
    set_recording(true);
}

/// Stops recording.
pub fn stop() {
    with(|t| t.on = false);
    set_recording(false);
}

/// Runs `f` with recording paused (kept events stay): for long polling loops of status reads, which would
/// fill the trace and break no rule.
pub fn paused<R>(f: impl FnOnce() -> R) -> R {
    let was = with(|t| core::mem::replace(&mut t.on, false));
    set_recording(false);
    let r = f();
    with(|t| t.on = was);
    set_recording(was);
    r
}

/// Marks the start (`true`) or end of a negative control on `bdf`: rule breaks in between are deliberate.
pub fn control(bdf: Bdf, on: bool) {
    record(bdf, Access::Control(on));
}

/// Marks `bdf` as owned by the firmware (a driver or a bridge it enabled).
pub fn own(bdf: Bdf) {
    with(|t| t.own(bdf));
}

/// Runs `f` over the global trace.
pub fn inspect<R>(f: impl FnOnce(&Trace) -> R) -> R {
    with(|t| f(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_keeps_every_access_of_a_long_run() {
        // The .bss trace held 8192 events: a soak on shared INTx lines (a Status read per sharer per
        // interrupt) overflowed it, and every write-order check then failed.
        let mut t = Trace::new();
        t.on = true;
        let bdf = Bdf::new(0, 4, 0);
        for i in 0..100_000u32 {
            t.record(bdf, Access::ConfigRead { offset: 4, size: 4, value: i });
        }
        assert_eq!((t.events.len(), t.overflowed), (100_000, 0));
        for dev in 0..100 {
            t.own(Bdf::new(1, dev % 32, dev / 32));
        }
        assert_eq!(t.owned.len(), 100, "more than 64 owned functions are kept");
        assert!(t.owns(Bdf::new(1, 3, 3)));
    }
}
