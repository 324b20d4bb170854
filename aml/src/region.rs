//! Operation-region accesses, answered by the caller (ACPI 6.5 §5.5.2.4, §19.6.100).

use crate::NodeId;
use alloc::vec::Vec;

/// Answers the evaluator's operation-region accesses. `addr` is the region's evaluated offset plus the
/// field's byte offset (for PCI_Config the offset inside the function the region's device decodes;
/// `region` names the region so an implementation can find that device's `_ADR`, `_BBN`, `_SEG`).
/// `width` is 1, 2, 4 or 8 bytes. `None` / `false`: not answerable; the evaluation then ends with
/// [`crate::ErrorKind::Region`].
pub trait Regions {
    /// Reads `width` bytes at `addr` of address space `space`.
    fn read(&mut self, region: NodeId, space: u8, addr: u64, width: u8) -> Option<u64>;
    /// Writes the low `width` bytes of `value` at `addr`.
    fn write(&mut self, region: NodeId, space: u8, addr: u64, width: u8, value: u64) -> bool;
}

/// Regions that hold what the evaluations wrote and nothing else: a read of a byte never written is
/// unanswerable, or zero with [`Overlay::zero_filled`] (what ACPICA's `acpiexec` simulates). Nothing
/// reaches hardware. At most [`Overlay::CAPACITY`] bytes are kept; a write past that is refused (the
/// evaluation then fails with a Region error, never silently).
#[derive(Debug, Default)]
pub struct Overlay {
    bytes: Vec<(u8, u64, u8)>,
    zero: bool,
}

impl Overlay {
    /// Bytes written that the overlay keeps.
    pub const CAPACITY: usize = 4096;

    /// Unwritten bytes are unanswerable.
    pub fn new() -> Self {
        Self::default()
    }

    /// Unwritten bytes read as zero.
    pub fn zero_filled() -> Self {
        Self {
            bytes: Vec::new(),
            zero: true,
        }
    }

    /// Where the byte at (`space`, `addr`) is kept, or where it would go: the bytes are sorted, so a
    /// read costs a binary search, not a walk over every byte written (which made the whole
    /// evaluator's fuzz run spend three quarters of its time here).
    fn find(&self, space: u8, addr: u64) -> Result<usize, usize> {
        self.bytes
            .binary_search_by_key(&(space, addr), |&(s, a, _)| (s, a))
    }
}

impl Regions for Overlay {
    fn read(&mut self, _region: NodeId, space: u8, addr: u64, width: u8) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..u64::from(width.min(8)) {
            let b = match self.find(space, addr.wrapping_add(i)) {
                Ok(at) => self.bytes.get(at).map_or(0, |e| e.2),
                Err(_) if self.zero => 0,
                Err(_) => return None,
            };
            v |= u64::from(b) << (8 * i);
        }
        Some(v)
    }

    fn write(&mut self, _region: NodeId, space: u8, addr: u64, width: u8, value: u64) -> bool {
        for i in 0..u64::from(width.min(8)) {
            let a = addr.wrapping_add(i);
            let b = (value >> (8 * i)) as u8;
            match self.find(space, a) {
                Ok(at) => {
                    if let Some(e) = self.bytes.get_mut(at) {
                        e.2 = b;
                    }
                }
                Err(at) if self.bytes.len() < Self::CAPACITY => {
                    self.bytes.insert(at, (space, a, b))
                }
                Err(_) => return false,
            }
        }
        true
    }
}
