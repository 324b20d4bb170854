//! The Fixed ACPI Description Table (ACPI 6.5 §5.2.9): the DSDT pointer and the fixed-hardware I/O ports.

use heapless::Vec;

use super::sdt::{le_u32, le_u64, load_sdt, Sdt, SdtFault};
use super::{AcpiProblem, PhysMemory, PlatformTables, Signature, TableRef};

/// FADT offset of the 32-bit DSDT address (ACPI 6.5 Table 5.9).
pub(super) const FADT_DSDT_OFFSET: usize = 40;
/// FADT offset of the 64-bit X_DSDT address, present from ACPI 2.0 (FADT length >= 148).
pub(super) const FADT_X_DSDT_OFFSET: usize = 140;

/// The FADT's fixed-hardware I/O blocks (ACPI 6.5 Table 5.9: PM1a_EVT_BLK at 56, PM1b_EVT_BLK 60,
/// PM1a_CNT_BLK 64, PM1b_CNT_BLK 68, PM2_CNT_BLK 72, PM_TMR_BLK 76, GPE0_BLK 80, GPE1_BLK 84, their
/// lengths as bytes at 88-93; PM1 event and control lengths cover each of the a and b blocks). A block is
/// kept when its port is non-zero, its length non-zero and it ends below 0x10000; a FADT too short for
/// a field leaves it out.
pub(super) fn fadt_io_blocks(fadt: &[u8]) -> Vec<(u16, u16), 8> {
    // (port offset, length offset)
    const BLOCKS: [(usize, usize); 8] = [(56, 88), (60, 88), (64, 89), (68, 89), (72, 90), (76, 91), (80, 92), (84, 93)];
    let mut out = Vec::new();
    for (port_at, len_at) in BLOCKS {
        let (Some(port), Some(&len)) = (le_u32(fadt, port_at), fadt.get(len_at)) else { continue };
        if port != 0 && len != 0 && port + len as u32 <= 0x1_0000 {
            let _ = out.push((port as u16, len as u16));
        }
    }
    out
}

/// Follows the FADT to the DSDT: X_DSDT if the FADT is long enough to have it and it is non-zero, else DSDT.
///
/// Hand-written at fixed offsets: `acpi::fadt::Fadt` is the full 276-byte ACPI 6 layout, and viewing a shorter
/// FADT (QEMU's are 116 and 244 bytes) through it would read past the table.
pub(super) fn find_dsdt<M: PhysMemory + ?Sized>(fadt: Sdt<'_>, mem: &M, out: &mut PlatformTables) -> Option<TableRef> {
    let x_dsdt = le_u64(fadt.bytes, FADT_X_DSDT_OFFSET).filter(|&a| a != 0);
    let address = x_dsdt.or_else(|| le_u32(fadt.bytes, FADT_DSDT_OFFSET).map(u64::from))?;
    if address == 0 {
        return None;
    }
    match load_sdt(mem, address, Some(Signature::DSDT)) {
        Ok(sdt) => Some(sdt.table_ref()),
        Err(SdtFault::Unreadable) => {
            out.report(AcpiProblem::BadTableAddress { parent: Signature::FADT, index: 0, address });
            None
        }
        Err(SdtFault::Problem(p)) => {
            out.report(p);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::platform::acpi::testimage::*;

    #[test]
    fn dsdt_is_found_through_x_dsdt_of_a_long_fadt() {
        let mut img = Image::new();
        let old = img.add(&dsdt());
        let new = img.add(&dsdt());
        let fadt_at = img.add(&fadt_v3(old as u32, new));
        let rsdt_at = img.add(&rsdt(&[fadt_at]));
        img.put(RSDP_AT, &rsdp_v0(rsdt_at as u32));
        let t = img.parse();
        assert_eq!(t.dsdt.map(|d| d.address), Some(new));
    }
}
