//! The vector allocator. Vectors are RAII handles: dropping a [`VectorBlock`] frees it. Each CPU has its
//! own vector space ([`CpuVectors`]); the functions without `_on` allocate and count on CPU 0.
//!
//! Reserved, and why:
//! - 0x00-0x1F: CPU exceptions (SDM Vol. 3A 7.2);
//! - 0x20-0x2F: the remapped 8259 PICs; they are masked, so anything here is spurious and counted so;
//! - 0xF0-0xFF: system vectors: 0xFF LAPIC spurious, 0xFE LAPIC error, 0xFD self-IPI check, the rest
//!   kept for LAPIC timer and future system use.
//!
//! MSI and MSI-X get 0x30-0xDF (176 vectors), in blocks of a power of two aligned to their size, because a
//! multi-message MSI function modifies the low bits of the message data (PCI 3.0 6.8.1.6). INTx lines get
//! 0xE0-0xEF (16 lines), kept apart so legacy interrupts still work when message vectors run out.

use spin::Mutex;

/// First vector handed to devices.
pub const FIRST_DEVICE_VECTOR: u8 = 0x30;
/// Last vector handed to devices.
pub const LAST_DEVICE_VECTOR: u8 = 0xEF;
/// First vector of the INTx pool; MSI and MSI-X get the device vectors below it.
pub const FIRST_INTX_VECTOR: u8 = 0xE0;

/// Which part of the device vectors an allocation comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// 0x30-0xDF: MSI and MSI-X.
    Message,
    /// 0xE0-0xEF: INTx lines.
    Intx,
}

impl Pool {
    fn range(self) -> (usize, usize) {
        match self {
            Pool::Message => (FIRST_DEVICE_VECTOR as usize, FIRST_INTX_VECTOR as usize - 1),
            Pool::Intx => (FIRST_INTX_VECTOR as usize, LAST_DEVICE_VECTOR as usize),
        }
    }
}
/// Vector of the LAPIC self-IPI check.
pub const SELF_IPI_VECTOR: u8 = 0xFD;

/// Allocation failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorError {
    /// No free aligned block of the requested size.
    Exhausted {
        /// Vectors requested.
        requested: u16,
    },
    /// Count 0, not a power of two, or above 32 (MSI's maximum block).
    BadCount(u16),
    /// The CPU has no vector space: its index is past the CPUs the firmware keeps blocks for.
    NoSuchCpu {
        /// The CPU asked for.
        cpu: usize,
        /// CPUs with a vector space (arch::percpu::len).
        cpus: usize,
    },
    /// The one vector asked for ([`VectorMap::alloc_exact`]) is held already, or is not in the pool.
    Unavailable {
        /// The vector asked for.
        vector: u8,
    },
    /// The heap had no room for the vector map of a CPU.
    NoMemory {
        /// The CPU whose map could not be made.
        cpu: usize,
    },
}

impl core::fmt::Display for VectorError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Exhausted { requested } => write!(f, "no free block of {requested} vectors"),
            Self::BadCount(n) => write!(f, "bad vector count {n}"),
            Self::NoSuchCpu { cpu, cpus } => write!(f, "no vector space for CPU {cpu} ({cpus} CPUs have one)"),
            Self::NoMemory { cpu } => write!(f, "no heap left for the vector map of CPU {cpu}"),
            Self::Unavailable { vector } => write!(f, "vector {vector:#x} is held already or outside its pool"),
        }
    }
}

/// A bitmap over the 256 vectors; the pure part of the allocator.
#[derive(Debug, Clone)]
pub struct VectorMap {
    used: [u64; 4],
}

impl VectorMap {
    /// All device vectors free; everything outside 0x30-0xEF reserved.
    pub const fn new() -> Self {
        let mut map = VectorMap { used: [0; 4] };
        let mut v = 0usize;
        while v < 256 {
            if v < FIRST_DEVICE_VECTOR as usize || v > LAST_DEVICE_VECTOR as usize {
                map.used[v / 64] |= 1 << (v % 64);
            }
            v += 1;
        }
        map
    }

    fn is_used(&self, v: usize) -> bool {
        self.used[v / 64] & (1 << (v % 64)) != 0
    }

    fn set(&mut self, v: usize, used: bool) {
        if used {
            self.used[v / 64] |= 1 << (v % 64);
        } else {
            self.used[v / 64] &= !(1 << (v % 64));
        }
    }

    /// Allocates `count` (power of two, 1-32) contiguous message vectors aligned to `count`; lowest first.
    pub fn alloc(&mut self, count: u16) -> Result<u8, VectorError> {
        self.alloc_in(Pool::Message, count)
    }

    /// Allocates from `pool`.
    pub fn alloc_in(&mut self, pool: Pool, count: u16) -> Result<u8, VectorError> {
        if count == 0 || count > 32 || !count.is_power_of_two() {
            return Err(VectorError::BadCount(count));
        }
        let count = count as usize;
        let (first, last) = pool.range();
        let mut base = first.next_multiple_of(count);
        while base + count <= last + 1 {
            if (base..base + count).all(|v| !self.is_used(v)) {
                (base..base + count).for_each(|v| self.set(v, true));
                return Ok(base as u8);
            }
            base += count;
        }
        Err(VectorError::Exhausted { requested: count as u16 })
    }

    /// Allocates exactly `vector` from `pool` (a control reserving one vector number on purpose).
    pub fn alloc_exact(&mut self, pool: Pool, vector: u8) -> Result<u8, VectorError> {
        let (first, last) = pool.range();
        let v = vector as usize;
        if !(first..=last).contains(&v) || self.is_used(v) {
            return Err(VectorError::Unavailable { vector });
        }
        self.set(v, true);
        Ok(vector)
    }

    /// Frees `count` vectors from `base`. Reserved vectors are never freed.
    pub fn free(&mut self, base: u8, count: u16) {
        for v in base as usize..(base as usize + count as usize).min(256) {
            if (FIRST_DEVICE_VECTOR as usize..=LAST_DEVICE_VECTOR as usize).contains(&v) {
                self.set(v, false);
            }
        }
    }

    /// Free device vectors.
    pub fn free_count(&self) -> usize {
        (FIRST_DEVICE_VECTOR as usize..=LAST_DEVICE_VECTOR as usize).filter(|&v| !self.is_used(v)).count()
    }

    /// Free vectors in `pool`.
    pub fn free_in(&self, pool: Pool) -> usize {
        let (first, last) = pool.range();
        (first..=last).filter(|&v| !self.is_used(v)).count()
    }

    /// Device vectors allocated, in ascending order.
    pub fn allocated(&self) -> alloc::vec::Vec<u8> {
        (FIRST_DEVICE_VECTOR..=LAST_DEVICE_VECTOR).filter(|&v| self.is_used(v as usize)).collect()
    }
}

/// One [`VectorMap`] per CPU: the pure part of the per-CPU allocator. Each CPU has its own 256 vectors
/// (SDM Vol. 3A 11.5: a vector names an entry of the receiving CPU's IDT and IRR), so vector 0x40 on CPU 1
/// and 0x40 on CPU 2 are two different resources. A CPU's map is made the first time it is used; CPUs
/// never used have every device vector free.
#[derive(Debug, Clone, Default)]
pub struct CpuVectors {
    maps: alloc::vec::Vec<VectorMap>,
}

impl CpuVectors {
    /// Every CPU's device vectors free.
    pub const fn new() -> Self {
        CpuVectors { maps: alloc::vec::Vec::new() }
    }

    /// The map of `cpu`, one of `cpus`, made if it is the first use.
    fn map_mut(&mut self, cpu: usize, cpus: usize) -> Result<&mut VectorMap, VectorError> {
        if cpu >= cpus {
            return Err(VectorError::NoSuchCpu { cpu, cpus });
        }
        if self.maps.len() <= cpu {
            let more = cpu + 1 - self.maps.len();
            self.maps.try_reserve(more).map_err(|_| VectorError::NoMemory { cpu })?;
            self.maps.resize(cpu + 1, VectorMap::new());
        }
        Ok(&mut self.maps[cpu])
    }

    /// Allocates `count` vectors (power of two, 1-32, aligned) from `pool` on `cpu`, one of `cpus`.
    pub fn alloc_on(&mut self, cpu: usize, cpus: usize, pool: Pool, count: u16) -> Result<u8, VectorError> {
        self.map_mut(cpu, cpus)?.alloc_in(pool, count)
    }

    /// Allocates exactly `vector` from `pool` on `cpu`, one of `cpus`.
    pub fn alloc_exact_on(&mut self, cpu: usize, cpus: usize, pool: Pool, vector: u8) -> Result<u8, VectorError> {
        self.map_mut(cpu, cpus)?.alloc_exact(pool, vector)
    }

    /// Frees `count` vectors from `base` on `cpu` (nothing for a CPU never used).
    pub fn free_on(&mut self, cpu: usize, base: u8, count: u16) {
        if let Some(m) = self.maps.get_mut(cpu) {
            m.free(base, count);
        }
    }

    /// Free vectors in `pool` on `cpu` (the whole pool for a CPU never used).
    pub fn free_in(&self, cpu: usize, pool: Pool) -> usize {
        self.maps.get(cpu).map_or_else(|| VectorMap::new().free_in(pool), |m| m.free_in(pool))
    }

    /// Device vectors allocated on `cpu`, ascending.
    pub fn allocated_on(&self, cpu: usize) -> alloc::vec::Vec<u8> {
        self.maps.get(cpu).map_or_else(alloc::vec::Vec::new, VectorMap::allocated)
    }
}

impl Default for VectorMap {
    fn default() -> Self {
        Self::new()
    }
}

static VECTORS: Mutex<CpuVectors> = Mutex::new(CpuVectors::new());

/// An allocated block of vectors on one CPU, freed on drop.
#[derive(Debug)]
pub struct VectorBlock {
    base: u8,
    count: u16,
    cpu: usize,
}

impl VectorBlock {
    /// Allocates message vectors on CPU 0.
    pub fn alloc(count: u16) -> Result<VectorBlock, VectorError> {
        Self::alloc_on(0, Pool::Message, count)
    }

    /// Allocates from `pool` on CPU 0.
    pub fn alloc_in(pool: Pool, count: u16) -> Result<VectorBlock, VectorError> {
        Self::alloc_on(0, pool, count)
    }

    /// Allocates `count` vectors from `pool` on CPU `cpu` (one of the CPUs arch::percpu keeps a block for),
    /// and marks them owned there for the dispatcher.
    pub fn alloc_on(cpu: usize, pool: Pool, count: u16) -> Result<VectorBlock, VectorError> {
        let cpus = crate::arch::percpu::len();
        let base = crate::arch::cpu::without_interrupts(|| VECTORS.lock().alloc_on(cpu, cpus, pool, count))?;
        (0..count).for_each(|i| crate::irq::dispatch::set_owned_on(cpu, base + i as u8, true));
        Ok(VectorBlock { base, count, cpu })
    }

    /// Allocates exactly `vector` from `pool` on CPU `cpu` and marks it owned there: a control holds one
    /// vector number on purpose (so a torn message or entry lands on a vector no handler serves there).
    pub fn alloc_exact_on(cpu: usize, pool: Pool, vector: u8) -> Result<VectorBlock, VectorError> {
        let cpus = crate::arch::percpu::len();
        let base = crate::arch::cpu::without_interrupts(|| VECTORS.lock().alloc_exact_on(cpu, cpus, pool, vector))?;
        crate::irq::dispatch::set_owned_on(cpu, base, true);
        Ok(VectorBlock { base, count: 1, cpu })
    }

    /// First vector.
    pub fn base(&self) -> u8 {
        self.base
    }

    /// Number of vectors.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// The CPU whose vectors these are.
    pub fn cpu(&self) -> usize {
        self.cpu
    }

    /// Vector `i` of the block.
    pub fn get(&self, i: u16) -> Option<u8> {
        (i < self.count).then(|| self.base + i as u8)
    }

    /// All vectors of the block.
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..self.count).map(move |i| self.base + i as u8)
    }
}

impl Drop for VectorBlock {
    fn drop(&mut self) {
        self.iter().for_each(|v| crate::irq::dispatch::set_owned_on(self.cpu, v, false));
        crate::arch::cpu::without_interrupts(|| VECTORS.lock().free_on(self.cpu, self.base, self.count));
    }
}

/// Free device vectors on CPU 0.
pub fn free_count() -> usize {
    free_on(0, Pool::Message) + free_on(0, Pool::Intx)
}

/// Free vectors in `pool` on CPU 0.
pub fn free_in(pool: Pool) -> usize {
    free_on(0, pool)
}

/// Free vectors in `pool` on CPU `cpu`.
pub fn free_on(cpu: usize, pool: Pool) -> usize {
    crate::arch::cpu::without_interrupts(|| VECTORS.lock().free_in(cpu, pool))
}

/// Device vectors held on CPU `cpu`, ascending (for the offline leak check).
pub fn allocated_on(cpu: usize) -> alloc::vec::Vec<u8> {
    crate::arch::cpu::without_interrupts(|| VECTORS.lock().allocated_on(cpu))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ranges_are_never_handed_out() {
        let mut m = VectorMap::new();
        assert_eq!(m.free_count(), 192);
        let mut got = std::vec::Vec::new();
        while let Ok(v) = m.alloc(1) {
            got.push(v);
        }
        assert_eq!(got.len(), 176, "message vectors");
        assert!(got.iter().all(|&v| (0x30..=0xDF).contains(&v)));
        assert_eq!(m.alloc(1), Err(VectorError::Exhausted { requested: 1 }));
        // INTx lines still get vectors when message vectors are gone.
        assert_eq!(m.free_in(Pool::Intx), 16);
        assert_eq!(m.alloc_in(Pool::Intx, 1), Ok(0xE0));
    }

    #[test]
    fn blocks_are_aligned_and_contiguous() {
        let mut m = VectorMap::new();
        assert_eq!(m.alloc(1), Ok(0x30));
        assert_eq!(m.alloc(4), Ok(0x34));
        assert_eq!(m.alloc(32), Ok(0x40));
        assert_eq!(m.alloc(2), Ok(0x32));
        assert_eq!(m.alloc(8), Ok(0x38));
    }

    #[test]
    fn free_and_reuse() {
        let mut m = VectorMap::new();
        let a = m.alloc(8).unwrap();
        let b = m.alloc(8).unwrap();
        m.free(a, 8);
        assert_eq!(m.alloc(8), Ok(a));
        assert_ne!(a, b);
        m.free(0xFF, 1); // reserved: stays reserved
        assert_eq!(m.free_count(), 192 - 16);
    }

    #[test]
    fn bad_counts_and_fragmentation() {
        let mut m = VectorMap::new();
        assert_eq!(m.alloc(0), Err(VectorError::BadCount(0)));
        assert_eq!(m.alloc(3), Err(VectorError::BadCount(3)));
        assert_eq!(m.alloc(64), Err(VectorError::BadCount(64)));
        // Take one vector in every 32-block: no 32-block is left, though most vectors are free.
        for base in (0x30..0xF0).step_by(32) {
            m.set(base + 5, true);
        }
        assert_eq!(m.alloc(32), Err(VectorError::Exhausted { requested: 32 }));
        assert!(m.alloc(16).is_ok());
    }

    #[test]
    fn each_cpu_has_its_own_vectors() {
        let mut c = CpuVectors::new();
        // The same vector on two CPUs is two resources.
        assert_eq!(c.alloc_on(0, 4, Pool::Message, 1), Ok(0x30));
        assert_eq!(c.alloc_on(3, 4, Pool::Message, 1), Ok(0x30));
        assert_eq!(c.alloc_on(3, 4, Pool::Message, 4), Ok(0x34));
        assert_eq!(c.allocated_on(0), [0x30]);
        assert_eq!(c.allocated_on(3), [0x30, 0x34, 0x35, 0x36, 0x37]);
        // CPUs in between, never used, have everything free.
        assert!(c.allocated_on(1).is_empty());
        assert_eq!(c.free_in(2, Pool::Message), 176);
        assert_eq!(c.free_in(3, Pool::Message), 171);
        // Freeing on one CPU leaves the other's alone.
        c.free_on(3, 0x30, 1);
        assert_eq!(c.allocated_on(0), [0x30]);
        assert_eq!(c.allocated_on(3), [0x34, 0x35, 0x36, 0x37]);
        c.free_on(3, 0x34, 4);
        assert!(c.allocated_on(3).is_empty());
        assert_eq!(c.free_in(3, Pool::Message), 176);
    }

    #[test]
    fn a_cpu_past_the_known_ones_is_an_error() {
        let mut c = CpuVectors::new();
        assert_eq!(c.alloc_on(4, 4, Pool::Message, 1), Err(VectorError::NoSuchCpu { cpu: 4, cpus: 4 }));
        assert_eq!(c.alloc_on(0, 0, Pool::Intx, 1), Err(VectorError::NoSuchCpu { cpu: 0, cpus: 0 }));
        // No fixed cap: as many CPUs as there are blocks.
        assert_eq!(c.alloc_on(999, 1000, Pool::Intx, 1), Ok(0xE0));
        assert_eq!(c.allocated_on(999), [0xE0]);
        c.free_on(5000, 0x30, 1); // a CPU never used: nothing to free, nothing breaks
    }

    #[test]
    fn one_exact_vector_is_held_only_where_free() {
        let mut c = CpuVectors::new();
        assert_eq!(c.alloc_on(1, 4, Pool::Intx, 1), Ok(0xE0));
        // Held on CPU 1, free on CPU 2.
        assert_eq!(c.alloc_exact_on(1, 4, Pool::Intx, 0xE0), Err(VectorError::Unavailable { vector: 0xE0 }));
        assert_eq!(c.alloc_exact_on(2, 4, Pool::Intx, 0xE0), Ok(0xE0));
        assert_eq!(c.allocated_on(2), [0xE0]);
        // Not the lowest free one: exactly the one asked for, and the lowest stays free.
        assert_eq!(c.alloc_exact_on(2, 4, Pool::Intx, 0xE5), Ok(0xE5));
        assert_eq!(c.alloc_on(2, 4, Pool::Intx, 1), Ok(0xE1));
        // Outside the pool, or reserved, or past the CPUs: refused.
        assert_eq!(c.alloc_exact_on(2, 4, Pool::Intx, 0x40), Err(VectorError::Unavailable { vector: 0x40 }));
        assert_eq!(c.alloc_exact_on(2, 4, Pool::Message, 0xFE), Err(VectorError::Unavailable { vector: 0xFE }));
        assert_eq!(c.alloc_exact_on(4, 4, Pool::Intx, 0xE0), Err(VectorError::NoSuchCpu { cpu: 4, cpus: 4 }));
        // Freed, it can be held again.
        c.free_on(2, 0xE5, 1);
        assert_eq!(c.alloc_exact_on(2, 4, Pool::Intx, 0xE5), Ok(0xE5));
    }

    #[test]
    fn exhaustion_is_per_cpu() {
        let mut c = CpuVectors::new();
        while c.alloc_on(1, 2, Pool::Message, 1).is_ok() {}
        assert_eq!(c.free_in(1, Pool::Message), 0);
        assert_eq!(c.alloc_on(1, 2, Pool::Message, 1), Err(VectorError::Exhausted { requested: 1 }));
        assert_eq!(c.alloc_on(0, 2, Pool::Message, 32), Ok(0x40));
        assert_eq!(c.allocated_on(1).len(), 176);
    }
}
