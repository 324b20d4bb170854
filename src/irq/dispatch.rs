//! The interrupt dispatcher: counts every vector, runs the handler registered for it, sends EOI.
//! Exceptions (0-31) are fatal and reported on COM1.

use crate::arch::{idt::InterruptFrame, lapic};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

static HANDLERS: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];
static SPURIOUS: AtomicU64 = AtomicU64::new(0);
/// Device vectors (0x30-0xEF) currently allocated; kept lock-free so the handler can read it.
static OWNED: [AtomicBool; 256] = [const { AtomicBool::new(false) }; 256];
/// Interrupts that arrived on a device vector no one owned (not allocated, no handler).
static UNOWNED: [AtomicU64; 256] = [const { AtomicU64::new(0) }; 256];

/// A handler run in interrupt context for one vector, before EOI.
pub type Handler = fn(vector: u8);

/// Installs the dispatcher on every IDT vector.
pub fn install() {
    crate::arch::idt::set_dispatcher(exception, dispatch);
    for v in 32..=255u8 {
        refresh_fast(v);
    }
}

/// Whether `vector` needs nothing but a count and an EOI, so the interrupt entry can do it alone: not
/// the spurious vector (no EOI) or the 8259 range (EOI only if in service), no handler, and not a
/// device vector nobody owns (those are counted as unowned here).
fn needs_only_eoi(vector: u8) -> bool {
    vector != lapic::SPURIOUS_VECTOR
        && !(0x20..0x30).contains(&vector)
        && HANDLERS[vector as usize].load(Ordering::Acquire) == 0
        && (!(0x30..=0xEF).contains(&vector) || OWNED[vector as usize].load(Ordering::Acquire))
}

fn refresh_fast(vector: u8) {
    crate::arch::idt::set_fast(vector, needs_only_eoi(vector));
}

/// Every exception is fatal here (the firmware takes no page faults or breakpoints on purpose).
fn exception(frame: &mut InterruptFrame) {
    crate::console::fatal_exception(frame);
}

fn dispatch(vector: u8) {
    crate::arch::idt::count_interrupt(vector);
    if vector == lapic::SPURIOUS_VECTOR || (0x20..0x30).contains(&vector) {
        // The LAPIC spurious vector sets no in-service bit and takes no EOI (SDM 11.9). 0x20-0x2F is where
        // the 8259 is remapped, but LINT0 is masked, so anything arriving there came as a fixed interrupt
        // (a stale IOAPIC entry or MSI) with its in-service bit set: it must be ended, or every lower
        // priority class stays blocked and a level entry's Remote IRR stays set.
        SPURIOUS.fetch_add(1, Ordering::Relaxed);
        if vector != lapic::SPURIOUS_VECTOR && lapic::in_service(vector) {
            lapic::eoi();
        }
        return;
    }
    let raw = HANDLERS[vector as usize].load(Ordering::Acquire);
    if raw == 0 && (0x30..=0xEF).contains(&vector) && !OWNED[vector as usize].load(Ordering::Acquire) {
        UNOWNED[vector as usize].fetch_add(1, Ordering::Relaxed);
    }
    if raw != 0 {
        // SAFETY: HANDLERS only holds 0 or a `Handler` stored by `set_handler`.
        let handler: Handler = unsafe { core::mem::transmute::<usize, Handler>(raw) };
        handler(vector);
    }
    lapic::eoi();
}

/// Registers a handler for `vector` (replacing any other).
pub fn set_handler(vector: u8, handler: Handler) {
    // The entry stops taking the fast path before the handler appears: an interrupt in between must reach
    // the dispatcher, which then runs the handler.
    crate::arch::idt::set_fast(vector, false);
    HANDLERS[vector as usize].store(handler as usize, Ordering::Release);
    refresh_fast(vector);
}

/// Removes the handler of `vector`.
pub fn clear_handler(vector: u8) {
    crate::arch::idt::set_fast(vector, false);
    HANDLERS[vector as usize].store(0, Ordering::Release);
    refresh_fast(vector);
}

/// Interrupts delivered on `vector` since boot.
pub fn count(vector: u8) -> u64 {
    crate::arch::idt::interrupts(vector)
}

/// Interrupts delivered on any vector in `range`.
pub fn total(range: core::ops::RangeInclusive<u8>) -> u64 {
    range.map(count).sum()
}

/// Marks `vector` allocated (`true`) or free; called by the vector allocator.
pub fn set_owned(vector: u8, owned: bool) {
    // As in `set_handler`: off the fast path first, so an interrupt during the change is judged by the
    // dispatcher against the new ownership.
    crate::arch::idt::set_fast(vector, false);
    OWNED[vector as usize].store(owned, Ordering::Release);
    refresh_fast(vector);
}

/// Interrupts that arrived on device vectors nobody owned, as (vector, count), for the report.
pub fn unowned() -> impl Iterator<Item = (u8, u64)> {
    (0x30u8..=0xEF).filter_map(|v| {
        let n = UNOWNED[v as usize].load(Ordering::Relaxed);
        (n > 0).then_some((v, n))
    })
}

/// Reads and clears the unowned count of `vector` (a check that provoked them on purpose takes its own).
pub fn take_unowned(vector: u8) -> u64 {
    UNOWNED[vector as usize].swap(0, Ordering::Relaxed)
}

/// Spurious interrupts (LAPIC spurious vector and 8259 vectors).
pub fn spurious() -> u64 {
    SPURIOUS.load(Ordering::Relaxed)
}
