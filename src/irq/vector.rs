//! The vector allocator. Vectors are RAII handles: dropping a [`VectorBlock`] frees it.
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
}

impl core::fmt::Display for VectorError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Exhausted { requested } => write!(f, "no free block of {requested} vectors"),
            Self::BadCount(n) => write!(f, "bad vector count {n}"),
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
}

impl Default for VectorMap {
    fn default() -> Self {
        Self::new()
    }
}

static VECTORS: Mutex<VectorMap> = Mutex::new(VectorMap::new());

/// An allocated block of vectors, freed on drop.
#[derive(Debug)]
pub struct VectorBlock {
    base: u8,
    count: u16,
}

impl VectorBlock {
    /// Allocates message vectors from the global map.
    pub fn alloc(count: u16) -> Result<VectorBlock, VectorError> {
        Self::alloc_in(Pool::Message, count)
    }

    /// Allocates from `pool` of the global map.
    pub fn alloc_in(pool: Pool, count: u16) -> Result<VectorBlock, VectorError> {
        let base = crate::arch::cpu::without_interrupts(|| VECTORS.lock().alloc_in(pool, count))?;
        (0..count).for_each(|i| crate::irq::dispatch::set_owned(base + i as u8, true));
        Ok(VectorBlock { base, count })
    }

    /// First vector.
    pub fn base(&self) -> u8 {
        self.base
    }

    /// Number of vectors.
    pub fn count(&self) -> u16 {
        self.count
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
        self.iter().for_each(|v| crate::irq::dispatch::set_owned(v, false));
        crate::arch::cpu::without_interrupts(|| VECTORS.lock().free(self.base, self.count));
    }
}

/// Free device vectors in the global map.
pub fn free_count() -> usize {
    crate::arch::cpu::without_interrupts(|| VECTORS.lock().free_count())
}

/// Free vectors in `pool` of the global map.
pub fn free_in(pool: Pool) -> usize {
    crate::arch::cpu::without_interrupts(|| VECTORS.lock().free_in(pool))
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
}
