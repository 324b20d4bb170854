//! The interrupt dispatcher: counts every vector, runs the handler registered for it, sends EOI.
//! Exceptions (0-31) are fatal and reported on COM1.
//!
//! Handlers, vector ownership and unowned counts are per CPU (kept in each CPU's block, arch::percpu):
//! an interrupt is judged against the CPU it arrived on, so a vector that CPU 1 owns but CPU 2 does not
//! is counted unowned when it reaches CPU 2. The functions without `_on` mean CPU 0 where they name one
//! vector's owner or handler, and the sum over every CPU where they count.

use crate::arch::{idt, idt::InterruptFrame, lapic, percpu};
use core::sync::atomic::{AtomicU64, Ordering};

static SPURIOUS: AtomicU64 = AtomicU64::new(0);

/// A handler run in interrupt context for one vector, before EOI.
pub type Handler = fn(vector: u8);

/// Installs the dispatcher on every IDT vector, and sets the fast-path flags of every CPU's vectors (of
/// those with a block now, and of each CPU that gets one later).
pub fn install() {
    idt::set_dispatcher(exception, dispatch);
    percpu::on_new_block(prepare_cpu);
    (0..percpu::len()).for_each(prepare_cpu);
}

/// Sets the fast-path flag of every vector of CPU `cpu` from its handlers and ownership.
fn prepare_cpu(cpu: usize) {
    for v in 32..=255u8 {
        refresh_fast(cpu, v);
    }
}

/// Whether `vector` needs nothing but a count and an EOI on `cpu`, so the interrupt entry can do it alone:
/// not the spurious vector (no EOI) or the 8259 range (EOI only if in service), no handler there, and not
/// a device vector nobody owns there (those are counted as unowned here).
fn needs_only_eoi(cpu: &percpu::PerCpu, vector: u8) -> bool {
    vector != lapic::SPURIOUS_VECTOR
        && !(0x20..0x30).contains(&vector)
        && cpu.handlers[vector as usize].load(Ordering::Acquire) == 0
        && (!(0x30..=0xEF).contains(&vector) || cpu.owned[vector as usize].load(Ordering::Acquire))
}

fn refresh_fast(cpu: usize, vector: u8) {
    if let Some(b) = percpu::block(cpu) {
        idt::set_fast_on(cpu, vector, needs_only_eoi(b, vector));
    }
}

/// Every exception is fatal here (the firmware takes no page faults or breakpoints on purpose).
fn exception(frame: &mut InterruptFrame) {
    crate::console::fatal_exception(frame);
}

fn dispatch(vector: u8) {
    idt::count_interrupt(vector);
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
    // Judged against the CPU the interrupt arrived on.
    let cpu = percpu::current();
    let raw = cpu.handlers[vector as usize].load(Ordering::Acquire);
    if raw == 0 && (0x30..=0xEF).contains(&vector) && !cpu.owned[vector as usize].load(Ordering::Acquire) {
        cpu.unowned[vector as usize].fetch_add(1, Ordering::Relaxed);
    }
    if raw != 0 {
        // SAFETY: the handler slots only hold 0 or a `Handler` stored by `set_handler_on`.
        let handler: Handler = unsafe { core::mem::transmute::<usize, Handler>(raw) };
        handler(vector);
    }
    lapic::eoi();
}

/// Registers a handler for `vector` on CPU 0 (replacing any other).
pub fn set_handler(vector: u8, handler: Handler) {
    set_handler_on(0, vector, handler);
}

/// Registers a handler for `vector` on CPU `cpu` (replacing any other); nothing for a CPU without a block.
pub fn set_handler_on(cpu: usize, vector: u8, handler: Handler) {
    let Some(b) = percpu::block(cpu) else { return };
    // The entry stops taking the fast path before the handler appears: an interrupt in between must reach
    // the dispatcher, which then runs the handler.
    idt::set_fast_on(cpu, vector, false);
    b.handlers[vector as usize].store(handler as usize, Ordering::Release);
    refresh_fast(cpu, vector);
}

/// Removes the handler of `vector` on CPU 0.
pub fn clear_handler(vector: u8) {
    clear_handler_on(0, vector);
}

/// Removes the handler of `vector` on CPU `cpu`.
pub fn clear_handler_on(cpu: usize, vector: u8) {
    let Some(b) = percpu::block(cpu) else { return };
    idt::set_fast_on(cpu, vector, false);
    b.handlers[vector as usize].store(0, Ordering::Release);
    refresh_fast(cpu, vector);
}

/// Interrupts delivered on `vector` since boot, summed over every CPU.
pub fn count(vector: u8) -> u64 {
    idt::interrupts(vector)
}

/// Interrupts delivered on `vector` on CPU `cpu` since boot (0 for a CPU without a block).
pub fn count_on(cpu: usize, vector: u8) -> u64 {
    idt::interrupts_on(cpu, vector)
}

/// Interrupts delivered on any vector in `range`, on every CPU.
pub fn total(range: core::ops::RangeInclusive<u8>) -> u64 {
    range.map(count).sum()
}

/// Marks `vector` allocated (`true`) or free on CPU 0.
pub fn set_owned(vector: u8, owned: bool) {
    set_owned_on(0, vector, owned);
}

/// Marks `vector` allocated (`true`) or free on CPU `cpu`; called by the vector allocator.
pub fn set_owned_on(cpu: usize, vector: u8, owned: bool) {
    let Some(b) = percpu::block(cpu) else { return };
    // As in `set_handler_on`: off the fast path first, so an interrupt during the change is judged by the
    // dispatcher against the new ownership.
    idt::set_fast_on(cpu, vector, false);
    b.owned[vector as usize].store(owned, Ordering::Release);
    refresh_fast(cpu, vector);
}

/// Whether `vector` is allocated on CPU `cpu`.
pub fn owned_on(cpu: usize, vector: u8) -> bool {
    percpu::block(cpu).is_some_and(|b| b.owned[vector as usize].load(Ordering::Acquire))
}

/// Interrupts that arrived on device vectors nobody owned, as (vector, count summed over every CPU), for
/// the report.
pub fn unowned() -> impl Iterator<Item = (u8, u64)> {
    (0x30u8..=0xEF).filter_map(|v| {
        let n: u64 = percpu::blocks().map(|b| b.unowned[v as usize].load(Ordering::Relaxed)).sum();
        (n > 0).then_some((v, n))
    })
}

/// Interrupts that arrived on CPU `cpu` on device vectors it did not own, as (vector, count).
pub fn unowned_on(cpu: usize) -> impl Iterator<Item = (u8, u64)> {
    let block = percpu::block(cpu);
    (0x30u8..=0xEF).filter_map(move |v| {
        let n = block.map_or(0, |b| b.unowned[v as usize].load(Ordering::Relaxed));
        (n > 0).then_some((v, n))
    })
}

/// Reads and clears the unowned count of `vector` on every CPU, and returns their sum (a check that
/// provoked them on purpose takes its own).
pub fn take_unowned(vector: u8) -> u64 {
    (0..percpu::len()).map(|cpu| take_unowned_on(cpu, vector)).sum()
}

/// Reads and clears the unowned count of `vector` on CPU `cpu`.
pub fn take_unowned_on(cpu: usize, vector: u8) -> u64 {
    percpu::block(cpu).map_or(0, |b| b.unowned[vector as usize].swap(0, Ordering::Relaxed))
}

/// Spurious interrupts (LAPIC spurious vector and 8259 vectors), on every CPU.
pub fn spurious() -> u64 {
    SPURIOUS.load(Ordering::Relaxed)
}
