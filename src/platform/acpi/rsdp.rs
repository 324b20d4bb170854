//! The Root System Description Pointer (ACPI 6.5 §5.2.5): where a BIOS puts it, its checksums, and the
//! root table addresses it holds.

use core::{fmt, ops::Range};

use super::sdt::{checksum, le_u16, le_u32, le_u64, write_ascii};
use super::{AcpiProblem, PhysMemory, PlatformTables};

/// Size of the ACPI 1.0 RSDP, covered by its first checksum.
const RSDP_V1_LEN: usize = 20;
/// Size of the ACPI 2.0+ RSDP, covered by the extended checksum.
const RSDP_V2_LEN: usize = 36;
/// Upper bound on a v2 RSDP `Length` we are willing to checksum (the spec fixes it at 36).
const RSDP_MAX_LEN: usize = 4096;
/// "RSD PTR " (with the trailing space).
const RSDP_SIGNATURE: [u8; 8] = *b"RSD PTR ";

/// The 6-byte OEM id from the RSDP (`BOCHS ` on QEMU). Displayed with non-printable bytes as `?`.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct OemId(pub [u8; 6]);

impl fmt::Display for OemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_ascii(f, &self.0)
    }
}

impl fmt::Debug for OemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// The physical range below 1 MiB the BIOS may put the RSDP in (ACPI 6.5 §5.2.5.1).
pub const BIOS_RSDP_AREA: Range<u64> = 0xE0000..0x100000;
/// BDA word holding the EBDA segment.
const EBDA_SEGMENT_PTR: u64 = 0x40E;
/// Where an EBDA can sit.
const EBDA_AREA: Range<u64> = 0x80000..0xA0000;

/// The RSDP fields we use, after validation.
pub(super) struct RsdpFields {
    pub(super) rsdt: u32,
    /// The XSDT address, only if the RSDP is revision >= 2, its extended checksum holds and it is non-zero.
    pub(super) xsdt: Option<u64>,
}

/// Checks the RSDP at `address` and reads its fields, reporting what is wrong.
///
/// Hand-written at fixed offsets (ACPI 6.5 Table 5.3): `acpi::rsdp::Rsdp` needs 36 readable bytes even for a
/// 20-byte v1 RSDP, its `validate` reads an unchecked `length` and skips the v1 checksum of a v2 RSDP, and its
/// v2 accessors panic on a v1 RSDP.
pub(super) fn read_rsdp<M: PhysMemory + ?Sized>(address: u64, mem: &M, out: &mut PlatformTables) -> Option<RsdpFields> {
    if address == 0 {
        out.report(AcpiProblem::RsdpNotFound);
        return None;
    }
    let Some(v1) = mem.bytes(address, RSDP_V1_LEN) else {
        out.report(AcpiProblem::RsdpUnreadable { address });
        return None;
    };
    if v1.get(..8) != Some(&RSDP_SIGNATURE[..]) {
        out.report(AcpiProblem::BadRsdpSignature { address });
        return None;
    }
    if checksum(v1) != 0 {
        out.report(AcpiProblem::BadRsdpChecksum { address });
        return None;
    }
    let revision = v1.get(15).copied().unwrap_or(0);
    let mut oem_id = [0u8; 6];
    if let Some(id) = v1.get(9..15) {
        oem_id.copy_from_slice(id);
    }
    let rsdt = le_u32(v1, 16).unwrap_or(0);
    out.rsdp_revision = revision;
    out.oem_id = OemId(oem_id);

    // Revision 2 is ACPI 2.0; revision 1 was never defined, so like Linux treat only >= 2 as extended.
    let xsdt = if revision >= 2 { read_rsdp_extension(address, mem, out) } else { None };
    Some(RsdpFields { rsdt, xsdt })
}

/// Checks the ACPI 2.0 part of the RSDP; returns the XSDT address if it can be trusted and is non-zero.
fn read_rsdp_extension<M: PhysMemory + ?Sized>(address: u64, mem: &M, out: &mut PlatformTables) -> Option<u64> {
    let length = mem.bytes(address, RSDP_V2_LEN).and_then(|b| le_u32(b, 20));
    let Some(length) = length else {
        out.report(AcpiProblem::BadRsdpLength { address, length: 0 });
        return None;
    };
    let full = usize::try_from(length)
        .ok()
        .filter(|len| (RSDP_V2_LEN..=RSDP_MAX_LEN).contains(len))
        .and_then(|len| mem.bytes(address, len));
    let Some(full) = full else {
        out.report(AcpiProblem::BadRsdpLength { address, length });
        return None;
    };
    if checksum(full) != 0 {
        out.report(AcpiProblem::BadRsdpExtendedChecksum { address });
        return None;
    }
    le_u64(full, 24).filter(|&xsdt| xsdt != 0)
}

/// Whether a valid RSDP (signature, checksum, and extended checksum for revision >= 2) is at `address`.
fn is_valid_rsdp<M: PhysMemory + ?Sized>(mem: &M, address: u64) -> bool {
    let Some(v1) = mem.bytes(address, RSDP_V1_LEN) else { return false };
    if v1.get(..8) != Some(&RSDP_SIGNATURE[..]) || checksum(v1) != 0 {
        return false;
    }
    if v1.get(15).is_some_and(|&rev| rev >= 2) {
        let full = mem
            .bytes(address, RSDP_V2_LEN)
            .and_then(|b| le_u32(b, 20))
            .and_then(|len| usize::try_from(len).ok())
            .filter(|len| (RSDP_V2_LEN..=RSDP_MAX_LEN).contains(len))
            .and_then(|len| mem.bytes(address, len));
        return full.is_some_and(|b| checksum(b) == 0);
    }
    true
}

/// Scans `ranges` on 16-byte boundaries for a valid RSDP ("RSD PTR ", checksum, and extended checksum for
/// revision >= 2) and returns the first one's address. Unreadable parts of a range are skipped.
///
/// Hand-written instead of `acpi::rsdp::Rsdp::search_for_on_bios`: that one maps fixed BIOS addresses through
/// the infallible handler, takes no ranges, and over-reads on a bogus v2 length.
pub fn find_rsdp_in<M: PhysMemory + ?Sized>(mem: &M, ranges: &[Range<u64>]) -> Option<u64> {
    ranges.iter().find_map(|range| {
        let first = range.start.checked_add(15)? & !15;
        let mut address = first;
        while address < range.end {
            if is_valid_rsdp(mem, address) {
                return Some(address);
            }
            address = address.checked_add(16)?;
        }
        None
    })
}

/// The areas a BIOS may put the RSDP in (ACPI 6.5 §5.2.5.1): the first KiB of the EBDA (found through the BDA
/// word at 0x40E; an empty range if that does not point into 0x80000..0xA0000), then 0xE0000..0x100000.
pub fn bios_rsdp_ranges<M: PhysMemory + ?Sized>(mem: &M) -> [Range<u64>; 2] {
    let ebda = mem
        .bytes(EBDA_SEGMENT_PTR, 2)
        .and_then(|b| le_u16(b, 0))
        .map(|segment| u64::from(segment) << 4)
        .filter(|start| EBDA_AREA.contains(start))
        .map_or(0..0, |start| start..start.saturating_add(1024));
    [ebda, BIOS_RSDP_AREA]
}

/// Looks for the RSDP where a BIOS puts it ([`bios_rsdp_ranges`]), for when the boot protocol hands none over.
pub fn find_rsdp_bios<M: PhysMemory + ?Sized>(mem: &M) -> Option<u64> {
    find_rsdp_in(mem, &bios_rsdp_ranges(mem))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::acpi::testimage::*;
    use crate::platform::acpi::*;

    #[test]
    fn a_bad_rsdp_checksum_stops_the_walk() {
        let (mut img, _) = qemu_like(false);
        img.put(RSDP_AT + 8, &[0x42]);
        let t = img.parse();
        assert_eq!(problems(&t), [AcpiProblem::BadRsdpChecksum { address: RSDP_AT }]);
        assert_eq!((t.root, t.madt.is_none(), t.mcfg.len(), t.dsdt), (None, true, 0, None));
    }

    #[test]
    fn a_missing_or_unreadable_or_unsigned_rsdp_is_reported() {
        let (img, _) = qemu_like(false);
        assert_eq!(problems(&parse(0, &img.mem())), [AcpiProblem::RsdpNotFound]);
        assert_eq!(problems(&parse(END - 4, &img.mem())), [AcpiProblem::RsdpUnreadable { address: END - 4 }]);
        assert_eq!(
            problems(&parse(RSDP_AT + 16, &img.mem())),
            [AcpiProblem::BadRsdpSignature { address: RSDP_AT + 16 }]
        );
    }

    #[test]
    fn a_bad_extended_checksum_keeps_the_rsdt_but_not_the_xsdt() {
        let (mut img, _) = qemu_like(true);
        img.put(RSDP_AT + 33, &[0x99]); // reserved byte, covered only by the extended checksum
        let t = img.parse();
        assert_eq!(problems(&t), [AcpiProblem::BadRsdpExtendedChecksum { address: RSDP_AT }]);
        assert_eq!(t.rsdp_revision, 2);
        assert_eq!(t.root_kind(), Some(RootTableKind::Rsdt));
        assert!(t.madt.is_some());
    }

    #[test]
    fn a_bad_v2_rsdp_length_keeps_the_rsdt_but_not_the_xsdt() {
        for length in [20u32, 5000, u32::MAX] {
            let (mut img, _) = qemu_like(true);
            let mut r = rsdp_bytes(&img);
            r[20..24].copy_from_slice(&length.to_le_bytes());
            fix_checksum(&mut r, 32, 0..36);
            img.put(RSDP_AT, &r);
            let t = img.parse();
            assert_eq!(problems(&t), [AcpiProblem::BadRsdpLength { address: RSDP_AT, length }]);
            assert_eq!(t.root_kind(), Some(RootTableKind::Rsdt));
        }
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // one-element lists of ranges are the point here
    fn rsdp_scan_finds_only_aligned_valid_rsdps() {
        let mut img = Image::new();
        let good = rsdp_v2(0x1234, 0x5678);
        let mut bad = good.clone();
        bad[8] ^= 1;
        img.put(0xE0100, &bad); // bad checksum
        img.put(0xE0208, &good); // not 16-byte aligned
        let mut bad_ext = good.clone();
        bad_ext[33] = 1;
        img.put(0xE0300, &bad_ext); // bad extended checksum
        img.put(0xF0010, &good);
        let mem = img.mem();
        assert_eq!(find_rsdp_in(&mem, &[BIOS_RSDP_AREA]), Some(0xF0010));
        assert_eq!(find_rsdp_in(&mem, &[0xE0000..0xF0000]), None);
        assert_eq!(find_rsdp_in(&mem, &[0xE0200..0xE0300]), None, "the copy at 0xE0208 is not 16-byte aligned");
        assert_eq!(find_rsdp_in(&mem, &[0xF0001..0xF0100]), Some(0xF0010), "a range start is rounded up");
        // Ranges reaching outside memory, or wrapping, end the scan of that range without panicking.
        assert_eq!(find_rsdp_in(&mem, &[0..0x100, u64::MAX - 20..u64::MAX, 0xF0000..0xF0020]), Some(0xF0010));
    }

    #[test]
    fn bios_rsdp_search_looks_at_the_ebda_first() {
        let mut low = vec![0u8; 0x100000];
        let mut put = |addr: usize, data: &[u8]| low[addr..addr + data.len()].copy_from_slice(data);
        put(0x40E, &0x9FC0u16.to_le_bytes());
        put(0x9FC10, &rsdp_v0(0x1111));
        put(0xF59E0, &rsdp_v0(0x2222));
        let mem = SliceMemory::new(0, &low);
        assert_eq!(bios_rsdp_ranges(&mem), [0x9FC00..0xA0000, BIOS_RSDP_AREA]);
        assert_eq!(find_rsdp_bios(&mem), Some(0x9FC10));
        low[0x40E..0x410].copy_from_slice(&0x1234u16.to_le_bytes()); // not an EBDA segment
        let mem = SliceMemory::new(0, &low);
        assert_eq!(bios_rsdp_ranges(&mem)[0], 0..0);
        assert_eq!(find_rsdp_bios(&mem), Some(0xF59E0));
    }
}
