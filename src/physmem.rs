//! Read access to physical memory that refuses what is not there: the boot information and the ACPI
//! tables are read through it, from the identity map in the firmware and from byte buffers in host tests.

/// Read access to physical memory, refusing what is not there.
///
/// Hand-written instead of `acpi::AcpiHandler`: that trait's `map_physical_region` has no way to fail, so it
/// cannot refuse a null or out-of-range address taken from a table.
pub trait PhysMemory {
    /// The `len` bytes at physical address `phys`, or `None` if any of them is not readable (or `phys` is 0).
    fn bytes(&self, phys: u64, len: usize) -> Option<&[u8]>;
}

impl<M: PhysMemory + ?Sized> PhysMemory for &M {
    fn bytes(&self, phys: u64, len: usize) -> Option<&[u8]> {
        (**self).bytes(phys, len)
    }
}

/// Physical memory read through the identity map (virtual == physical), up to a caller-given limit.
#[derive(Debug, Clone, Copy)]
pub struct IdentityMemory {
    start: u64,
    limit: u64,
}

impl IdentityMemory {
    /// Reads of `[1, limit)` through the identity map; address 0 and anything reaching `limit` are refused.
    ///
    /// # Safety
    /// For as long as the value (or a slice it returned) is in use, every byte in `[1, limit)` must be
    /// identity-mapped, readable, and free of read side effects (RAM, ROM or firmware-reserved memory, no device
    /// MMIO), and nothing may write to the bytes of a returned slice while it is alive. `limit` must not exceed
    /// the identity-mapped range (4 GiB on this firmware).
    pub const unsafe fn new(limit: u64) -> Self {
        Self { start: 1, limit }
    }

    /// Reads of `[start, limit)` only (`start` at least 1); everything else is refused.
    ///
    /// # Safety
    /// As for [`IdentityMemory::new`], for the bytes of `[start, limit)`.
    pub const unsafe fn window(start: u64, limit: u64) -> Self {
        Self { start: if start == 0 { 1 } else { start }, limit }
    }

    /// The first address that is refused.
    pub const fn limit(&self) -> u64 {
        self.limit
    }
}

impl PhysMemory for IdentityMemory {
    fn bytes(&self, phys: u64, len: usize) -> Option<&[u8]> {
        if phys < self.start || phys >= self.limit {
            return None;
        }
        let end = phys.checked_add(u64::try_from(len).ok()?)?;
        if end > self.limit {
            return None;
        }
        let addr = usize::try_from(phys).ok()?;
        let ptr = core::ptr::with_exposed_provenance::<u8>(addr);
        // SAFETY: `ptr` is non-null (phys != 0) and `[phys, phys + len)` lies below `limit`, which the caller of
        // `new` promised is identity-mapped, readable and not written while the slice lives; u8 needs no
        // alignment; `len` fits in isize because `phys + len <= limit <= 4 GiB` (also a `new` precondition).
        Some(unsafe { core::slice::from_raw_parts(ptr, len) })
    }
}

/// Physical memory backed by a byte slice: physical address `base + i` is `bytes[i]`. Used by host tests.
#[derive(Debug, Clone, Copy)]
pub struct SliceMemory<'a> {
    base: u64,
    bytes: &'a [u8],
}

impl<'a> SliceMemory<'a> {
    /// Memory whose first byte `bytes[0]` is at physical address `base`.
    pub const fn new(base: u64, bytes: &'a [u8]) -> Self {
        Self { base, bytes }
    }
}

impl PhysMemory for SliceMemory<'_> {
    fn bytes(&self, phys: u64, len: usize) -> Option<&[u8]> {
        if phys == 0 {
            return None;
        }
        let start = usize::try_from(phys.checked_sub(self.base)?).ok()?;
        self.bytes.get(start..start.checked_add(len)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_memory_refuses_null_and_beyond_the_limit() {
        // SAFETY: only refused requests are made below, so no memory is read.
        let mem = unsafe { IdentityMemory::new(0x1000_0000) };
        assert_eq!(mem.limit(), 0x1000_0000);
        assert!(mem.bytes(0, 1).is_none());
        assert!(mem.bytes(0x0FFF_FFFF, 2).is_none());
        assert!(mem.bytes(0x1000_0000, 0).is_none());
        assert!(mem.bytes(u64::MAX, 2).is_none());
        assert!(mem.bytes(1, usize::MAX).is_none());
    }

    #[test]
    fn slice_memory_bounds() {
        let data = [1u8, 2, 3, 4];
        let mem = SliceMemory::new(0x1000, &data);
        assert_eq!(mem.bytes(0x1001, 3), Some(&data[1..]));
        assert_eq!(mem.bytes(0x1004, 0), Some(&[][..]));
        assert_eq!(mem.bytes(0x1001, 4), None);
        assert_eq!(mem.bytes(0xFFF, 1), None);
        assert_eq!(mem.bytes(0x1001, usize::MAX), None);
        assert_eq!(SliceMemory::new(0, &data).bytes(0, 1), None, "address 0 is null");
    }
}
