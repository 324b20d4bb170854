//! An inclusive address range: the unit of ACPI `_CRS` windows, bridge windows and the allocator's free lists.

/// An address range, both ends inclusive (as ACPI's `_MIN`/`_MAX` and a bridge's base/limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    /// First address.
    pub start: u64,
    /// Last address.
    pub last: u64,
}

impl AddressRange {
    /// Bytes covered (saturating at 2^64 - 1).
    pub fn len(&self) -> u64 {
        (self.last - self.start).saturating_add(1)
    }

    /// Never empty: `start <= last` is an invariant of every range made here.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether the two ranges share an address.
    pub fn overlaps(&self, other: &AddressRange) -> bool {
        self.start <= other.last && other.start <= self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ends_are_inclusive() {
        let r = AddressRange { start: 0x1000, last: 0x1FFF };
        assert_eq!(r.len(), 0x1000);
        assert_eq!(AddressRange { start: 7, last: 7 }.len(), 1, "one address");
        assert_eq!(AddressRange { start: 0, last: u64::MAX }.len(), u64::MAX, "the whole space saturates");
        assert!(!r.is_empty());
        assert!(r.overlaps(&AddressRange { start: 0x1FFF, last: 0x2000 }), "sharing the last address");
        assert!(r.overlaps(&AddressRange { start: 0, last: 0x1000 }), "sharing the first address");
        assert!(!r.overlaps(&AddressRange { start: 0x2000, last: 0x2FFF }), "touching is not overlapping");
        assert!(!r.overlaps(&AddressRange { start: 0, last: 0xFFF }));
    }
}
