//! System description tables (ACPI 6.5 §5.2.6): signatures, the common header and its checksum, and the
//! checked in-place views the `acpi` crate's table structs are read through.

use core::{
    fmt,
    mem::{align_of, size_of},
};

use ::acpi::{madt::Madt, mcfg::Mcfg, sdt::SdtHeader, AcpiError};

use super::{AcpiProblem, PhysMemory};

/// Size of the common SDT header.
pub(super) const SDT_HEADER_LEN: usize = 36;

const _: () = assert!(size_of::<SdtHeader>() == SDT_HEADER_LEN);

/// A 4-byte table signature such as `APIC`. Displayed with non-printable bytes as `?`.
///
/// Hand-written instead of `acpi::sdt::Signature`: that type has no public constructor and its `Display`
/// unwraps UTF-8, which panics on garbage bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 4]);

impl Signature {
    /// Root System Description Table.
    pub const RSDT: Self = Self(*b"RSDT");
    /// Extended System Description Table.
    pub const XSDT: Self = Self(*b"XSDT");
    /// Multiple APIC Description Table.
    pub const MADT: Self = Self(*b"APIC");
    /// PCI Express memory-mapped configuration space table.
    pub const MCFG: Self = Self(*b"MCFG");
    /// Fixed ACPI Description Table.
    pub const FADT: Self = Self(*b"FACP");
    /// Differentiated System Description Table.
    pub const DSDT: Self = Self(*b"DSDT");
    /// IA-PC High Precision Event Timer Table.
    pub const HPET: Self = Self(*b"HPET");
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_ascii(f, &self.0)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

pub(super) fn write_ascii(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    use fmt::Write as _;
    for &b in bytes {
        f.write_char(if b == b' ' || b.is_ascii_graphic() { char::from(b) } else { '?' })?;
    }
    Ok(())
}

/// A table that passed the length and checksum checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableRef {
    /// Its signature.
    pub signature: Signature,
    /// Physical address of its header.
    pub address: u64,
    /// Length in bytes, header included.
    pub length: u32,
    /// The header's revision byte.
    pub revision: u8,
}

/// Sum of all bytes, modulo 256; a valid ACPI structure sums to 0.
///
/// Hand-written: `acpi` keeps its SDT checksum private and its RSDP check over-reads (see module docs).
pub(super) fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b))
}

pub(super) fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

pub(super) fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

pub(super) fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// A table whose header, length and checksum have been checked; `bytes` is exactly `length` bytes.
#[derive(Clone, Copy)]
pub(super) struct Sdt<'m> {
    pub(super) signature: Signature,
    pub(super) address: u64,
    pub(super) bytes: &'m [u8],
}

impl Sdt<'_> {
    pub(super) fn table_ref(&self) -> TableRef {
        TableRef {
            signature: self.signature,
            address: self.address,
            length: u32::try_from(self.bytes.len()).unwrap_or(u32::MAX),
            revision: self.bytes.get(8).copied().unwrap_or(0),
        }
    }
}

/// Why [`load_sdt`] refused a table.
#[derive(Clone, Copy)]
pub(super) enum SdtFault {
    /// Null, or the 36-byte header is not readable.
    Unreadable,
    /// A problem to report as is.
    Problem(AcpiProblem),
}

/// `acpi` table structs this module views in place.
///
/// # Safety
/// Implementors must be `repr(C, packed)` (alignment 1) and valid for every bit pattern.
pub(super) unsafe trait PackedTable {}
// SAFETY: `repr(C, packed)`; integers, byte arrays and `Signature([u8; 4])` only.
unsafe impl PackedTable for SdtHeader {}
// SAFETY: `repr(C, packed)`; an `SdtHeader`, two `u32`s and a zero-sized `PhantomPinned`.
unsafe impl PackedTable for Madt {}
// SAFETY: `repr(C, packed)`; an `SdtHeader` and a `u64`.
unsafe impl PackedTable for Mcfg {}

/// Views the start of `bytes` as `T`, keeping the whole slice's provenance (the `acpi` accessors read past the
/// fixed part into the entries that follow it).
pub(super) fn view<T: PackedTable>(bytes: &[u8]) -> Option<&T> {
    const { assert!(align_of::<T>() == 1) };
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: `bytes` holds at least `size_of::<T>()` initialised bytes, borrowed immutably for the returned
    // lifetime; `T` has alignment 1 and accepts any bit pattern (`PackedTable`).
    Some(unsafe { &*bytes.as_ptr().cast::<T>() })
}

/// Reads and checks the table at `address`: readable header, `36 <= length`, readable body, then the `acpi`
/// crate's header check (signature, ASCII OEM ids, checksum).
pub(super) fn load_sdt<M: PhysMemory + ?Sized>(mem: &M, address: u64, expected: Option<Signature>) -> Result<Sdt<'_>, SdtFault> {
    let header = mem.bytes(address, SDT_HEADER_LEN).ok_or(SdtFault::Unreadable)?;
    let mut sig = [0u8; 4];
    sig.copy_from_slice(header.get(..4).ok_or(SdtFault::Unreadable)?);
    let signature = Signature(sig);
    let length = le_u32(header, 4).ok_or(SdtFault::Unreadable)?;
    if expected.is_some_and(|e| e != signature) {
        return Err(SdtFault::Problem(AcpiProblem::BadSdtSignature { expected, found: signature, address }));
    }
    let too_short = SdtFault::Problem(AcpiProblem::TableTooShort { signature, address, length });
    let len = usize::try_from(length).map_err(|_| too_short)?;
    if len < SDT_HEADER_LEN {
        return Err(too_short);
    }
    let bytes = mem.bytes(address, len).ok_or(SdtFault::Problem(AcpiProblem::TableOutsideMemory {
        signature,
        address,
        length,
    }))?;
    let sdt_header: &SdtHeader = view(bytes).ok_or(too_short)?;
    let own_signature = sdt_header.signature;
    // `validate` sums `length` bytes from the header: `bytes` is exactly that long, and the header was viewed
    // from it, so the read stays inside the checked slice.
    sdt_header.validate(own_signature).map_err(|e| {
        SdtFault::Problem(match e {
            AcpiError::SdtInvalidOemId(_) | AcpiError::SdtInvalidTableId(_) => {
                AcpiProblem::BadSdtOemId { signature, address }
            }
            AcpiError::SdtInvalidChecksum(_) => AcpiProblem::BadSdtChecksum { signature, address },
            _ => AcpiProblem::BadSdtSignature { expected, found: signature, address },
        })
    })?;
    Ok(Sdt { signature, address, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::acpi::testimage::*;
    use crate::platform::acpi::*;

    #[test]
    fn an_sdt_shorter_than_its_header_or_fixed_part_is_skipped() {
        // 20 < 36: shorter than the SDT header.
        let (img, addrs) = build(&[with_length(qemu_madt().table(), 20), mcfg(&[QEMU_MCFG])], false);
        let t = img.parse();
        assert_eq!(
            problems(&t),
            [AcpiProblem::TableTooShort { signature: Signature::MADT, address: addrs[1], length: 20 }]
        );
        assert!(t.madt.is_none());

        // 40: a valid header, but shorter than the MADT's 44-byte fixed part; same for the MCFG.
        let (img, addrs) = build(&[with_length(qemu_madt().table(), 40), with_length(mcfg(&[]), 40)], false);
        let t = img.parse();
        assert_eq!(
            problems(&t),
            [
                AcpiProblem::TableTooShort { signature: Signature::MADT, address: addrs[1], length: 40 },
                AcpiProblem::TableTooShort { signature: Signature::MCFG, address: addrs[2], length: 40 }
            ]
        );
        assert!(t.madt.is_none());
        assert!(t.mcfg.is_empty());
    }

    #[test]
    fn an_sdt_longer_than_memory_is_skipped() {
        let (img, addrs) = build(&[with_length(qemu_madt().table(), 0x40_0000), mcfg(&[QEMU_MCFG])], false);
        let t = img.parse();
        assert_eq!(
            problems(&t),
            [AcpiProblem::TableOutsideMemory { signature: Signature::MADT, address: addrs[1], length: 0x40_0000 }]
        );
        assert!(t.madt.is_none());
        assert_eq!(t.mcfg.len(), 1);
    }

    #[test]
    fn a_madt_with_a_bad_checksum_is_not_used() {
        let (mut img, addrs) = qemu_like(false);
        img.put(addrs[1] + 44 + 3, &[7]); // first LAPIC's APIC id
        let t = img.parse();
        assert_eq!(problems(&t), [AcpiProblem::BadSdtChecksum { signature: Signature::MADT, address: addrs[1] }]);
        assert!(t.madt.is_none());
        assert_eq!(t.mcfg.len(), 1, "the other tables are still used");
    }

    #[test]
    fn bad_rsdt_xsdt_and_mcfg_checksums_are_reported() {
        // RSDT (revision 0 RSDP, so no XSDT to fall back on): nothing is found.
        let (mut img, _) = qemu_like(false);
        let rsdt_at = u64::from(le_u32(&rsdp_bytes(&img), 16).unwrap());
        img.put(rsdt_at + 9, &[0x55]);
        let t = img.parse();
        assert_eq!(problems(&t)[0], AcpiProblem::BadSdtChecksum { signature: Signature::RSDT, address: rsdt_at });
        assert!(problems(&t).contains(&AcpiProblem::NoRootTable), "{:?}", t.problems);
        assert!(t.madt.is_none() && t.mcfg.is_empty());
        // XSDT and RSDT both bad: nothing is found either.
        let (mut img, _) = qemu_like(true);
        let r = rsdp_bytes(&img);
        let (rsdt_at, xsdt_at) = (u64::from(le_u32(&r, 16).unwrap()), le_u64(&r, 24).unwrap());
        img.put(rsdt_at + 9, &[0x55]);
        img.put(xsdt_at + 9, &[0x55]);
        let t = img.parse();
        assert!(problems(&t).contains(&AcpiProblem::BadSdtChecksum { signature: Signature::XSDT, address: xsdt_at }));
        assert!(problems(&t).contains(&AcpiProblem::NoRootTable), "{:?}", t.problems);
        // MCFG: not used, so configuration access falls back to ports; the MADT is still used.
        let (mut img, addrs) = qemu_like(false);
        img.put(addrs[2] + 44, &[0x01]); // first allocation's base address, low byte
        let t = img.parse();
        assert_eq!(problems(&t)[0], AcpiProblem::BadSdtChecksum { signature: Signature::MCFG, address: addrs[2] });
        assert!(t.mcfg.is_empty());
        assert!(t.madt.is_some());
    }

    #[test]
    fn a_non_ascii_oem_id_is_rejected_by_the_acpi_crate_check() {
        let mut m = qemu_madt().table();
        m[10] = 0xFF;
        let len = m.len();
        fix_checksum(&mut m, 9, 0..len);
        let (img, addrs) = build(&[m, mcfg(&[QEMU_MCFG])], false);
        assert_eq!(
            problems(&img.parse()),
            [AcpiProblem::BadSdtOemId { signature: Signature::MADT, address: addrs[1] }]
        );
    }
}
