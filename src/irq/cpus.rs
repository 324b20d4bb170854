//! The CPUs an interrupt can be aimed at, as the interrupt modes see them: index -> APIC ID, a vector on
//! a given CPU, the counts there, and running a few instructions on a CPU with its interrupts off.
//!
//! Glue over the per-CPU interrupt core (`irq::vector` / `irq::dispatch` per CPU, `arch::percpu`) and the
//! SMP layer (`arch::smp`: which CPUs are online, `call_on`, IPIs). An index that is not online is a
//! typed error, so a retarget to a CPU that is not running fails loudly instead of pretending.

use crate::irq::dispatch::{self, Handler};
use crate::irq::vector::{Pool, VectorBlock, VectorError};
use alloc::vec::Vec;

/// Why something could not be done on a CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuError {
    /// No such CPU online (unknown index, offline, or failed to start).
    NotOnline(usize),
    /// The CPU did not take the call within its timeout (nothing ran there).
    CallTimeout(usize),
    /// The call ran past its timeout and the CPU was stopped.
    Stuck(usize),
}

impl core::fmt::Display for CpuError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotOnline(c) => write!(f, "CPU {c} is not online"),
            Self::CallTimeout(c) => write!(f, "CPU {c} did not take the call in time"),
            Self::Stuck(c) => write!(f, "CPU {c} ran the call past its timeout and was stopped"),
        }
    }
}

/// Index of the CPU running this.
pub fn current() -> usize {
    crate::arch::percpu::index()
}

/// Indices of the online CPUs, in index order.
pub fn online() -> Vec<usize> {
    crate::arch::smp::online()
}

fn is_online(cpu: usize) -> bool {
    online().contains(&cpu)
}

/// APIC ID of CPU `cpu`, if it is online.
pub fn apic_id(cpu: usize) -> Option<u32> {
    if !is_online(cpu) {
        return None;
    }
    crate::arch::smp::apic_id(cpu)
}

/// The online CPU whose APIC ID is `apic_id`.
pub fn by_apic_id(apic_id: u32) -> Option<usize> {
    online().into_iter().find(|&c| self::apic_id(c) == Some(apic_id))
}

/// Why [`alloc_on`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocError {
    /// The CPU is not there.
    Cpu(CpuError),
    /// Its vectors ran out (or a bad count).
    Vector(VectorError),
}

/// Allocates `count` vectors of `pool` on CPU `cpu` (online).
pub fn alloc_on(cpu: usize, pool: Pool, count: u16) -> Result<VectorBlock, AllocError> {
    if !is_online(cpu) {
        return Err(AllocError::Cpu(CpuError::NotOnline(cpu)));
    }
    VectorBlock::alloc_on(cpu, pool, count).map_err(AllocError::Vector)
}

/// Whether vector `vector` is held (allocated) on CPU `cpu`.
pub fn allocated_on(cpu: usize, vector: u8) -> bool {
    dispatch::owned_on(cpu, vector)
}

/// Interrupts delivered on `vector` on CPU `cpu` since boot.
pub fn count_on(cpu: usize, vector: u8) -> u64 {
    dispatch::count_on(cpu, vector)
}

/// Registers `handler` for `vector` on CPU `cpu`.
pub fn set_handler_on(cpu: usize, vector: u8, handler: Handler) {
    dispatch::set_handler_on(cpu, vector, handler);
}

/// Removes the handler of `vector` on CPU `cpu`.
pub fn clear_handler_on(cpu: usize, vector: u8) {
    dispatch::clear_handler_on(cpu, vector);
}

/// Runs `f` on CPU `cpu` with its interrupts off there (inline on the CPU running this), and waits at
/// most `timeout_us` for it.
pub fn call_on(cpu: usize, f: &(dyn Fn() + Sync), timeout_us: u64) -> Result<(), CpuError> {
    use crate::arch::smp::SmpError;
    crate::arch::smp::call_on(cpu, f, timeout_us).map_err(|e| match e {
        SmpError::Timeout(c) => CpuError::CallTimeout(c),
        SmpError::Stuck(c) => CpuError::Stuck(c),
        _ => CpuError::NotOnline(cpu),
    })
}

/// Sends a fixed, physical-destination IPI on `vector` to the CPU with APIC ID `apic_id` (SDM 11.6.1).
pub fn send_ipi(apic_id: u32, vector: u8) {
    crate::arch::lapic::send_ipi(apic_id, vector);
}

/// Waits until none of `vectors` is pending (IRR) or in service (ISR) on CPU `cpu`, at most `timeout_us`:
/// whatever was raised on them has been handled there. Linux's vector cleanup checks the old vector in
/// the old CPU's IRR before freeing it ("Paranoia", arch/x86/kernel/apic/vector.c) and tries again later
/// if it is set; here the CPU takes its pending interrupts between the checks, with interrupts on.
pub fn drain(cpu: usize, vectors: &[u8], timeout_us: u64) -> bool {
    use core::sync::atomic::{AtomicBool, Ordering};
    let deadline = crate::time::now_us() + timeout_us;
    loop {
        let busy = AtomicBool::new(false);
        let check = || {
            if vectors.iter().any(|&v| crate::arch::lapic::requested(v) || crate::arch::lapic::in_service(v)) {
                busy.store(true, Ordering::Relaxed);
            }
        };
        if call_on(cpu, &check, timeout_us).is_ok() && !busy.load(Ordering::Relaxed) {
            return true;
        }
        if crate::time::now_us() > deadline {
            return false;
        }
        crate::arch::cpu::relax();
    }
}
