//! The IA-PC HPET table (IA-PC HPET Specification 1.0a §3.2.4): where the event timer block is.

use super::sdt::le_u64;
use super::{PhysMemory, PlatformTables, Signature};

/// Why the HPET table's event timer block cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HpetTableError {
    /// The table (length given) ends before its Base Address (IA-PC HPET 1.0a Table 3: 56 bytes).
    TooShort(u32),
    /// The table could no longer be read.
    Unreadable,
    /// The Base Address is not in system memory space (address space ID given).
    NotMemory(u8),
    /// The Base Address is zero.
    NoAddress,
}

impl core::fmt::Display for HpetTableError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooShort(len) => write!(f, "HPET table of {len} bytes ends before its base address (56 needed)"),
            Self::Unreadable => write!(f, "HPET table unreadable"),
            Self::NotMemory(id) => write!(f, "HPET base address in address space {id}, not system memory"),
            Self::NoAddress => write!(f, "HPET base address is zero"),
        }
    }
}

/// The event timer block address from the first valid HPET table (IA-PC HPET 1.0a 3.2.4, Table 3: Base
/// Address is a Generic Address Structure at offset 40, address space ID at 40, address at 44), or None
/// if no HPET table is listed.
pub fn hpet_base<M: PhysMemory + ?Sized>(tables: &PlatformTables, mem: &M) -> Option<Result<u64, HpetTableError>> {
    let t = tables.table(Signature::HPET)?;
    if t.length < 56 {
        return Some(Err(HpetTableError::TooShort(t.length)));
    }
    let Some(bytes) = mem.bytes(t.address, 56) else { return Some(Err(HpetTableError::Unreadable)) };
    let (Some(&space), Some(address)) = (bytes.get(40), le_u64(bytes, 44)) else {
        return Some(Err(HpetTableError::Unreadable));
    };
    Some(match (space, address) {
        (0, 0) => Err(HpetTableError::NoAddress),
        (0, a) => Ok(a),
        (id, _) => Err(HpetTableError::NotMemory(id)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::acpi::testimage::*;

    /// QEMU's HPET table body (after the header): event timer block ID, Base Address GAS, number, minimum
    /// tick, page protection.
    fn hpet_body(space: u8, address: u64) -> StdVec<u8> {
        let mut b = StdVec::new();
        b.extend_from_slice(&0x8086_A201u32.to_le_bytes());
        b.extend_from_slice(&[space, 0, 0, 0]);
        b.extend_from_slice(&address.to_le_bytes());
        b.extend_from_slice(&[0, 0, 0, 0]);
        b
    }

    fn with_hpet(table: StdVec<u8>) -> Image {
        let mut img = Image::new();
        let hpet = img.add(&table);
        let root = img.add(&rsdt(&[hpet]));
        img.put(RSDP_AT, &rsdp_v0(root as u32));
        img
    }

    #[test]
    fn hpet_base_address_is_read_and_bad_tables_are_typed_errors() {
        let img = with_hpet(sdt(b"HPET", 1, &hpet_body(0, 0xFED0_0000)));
        let t = img.parse();
        assert_eq!(hpet_base(&t, &img.mem()), Some(Ok(0xFED0_0000)));

        let img = with_hpet(sdt(b"HPET", 1, &hpet_body(1, 0xFED0_0000)));
        assert_eq!(hpet_base(&img.parse(), &img.mem()), Some(Err(HpetTableError::NotMemory(1))));

        let img = with_hpet(sdt(b"HPET", 1, &hpet_body(0, 0)));
        assert_eq!(hpet_base(&img.parse(), &img.mem()), Some(Err(HpetTableError::NoAddress)));

        let img = with_hpet(sdt(b"HPET", 1, &hpet_body(0, 0xFED0_0000)[..6]));
        assert_eq!(hpet_base(&img.parse(), &img.mem()), Some(Err(HpetTableError::TooShort(42))));

        let (img, _) = qemu_like(false);
        assert_eq!(hpet_base(&img.parse(), &img.mem()), None, "no HPET table listed");
    }
}
