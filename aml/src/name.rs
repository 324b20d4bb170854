//! The encodings every AML term is made of: PkgLength and NameString (ACPI 6.5 §20.2.4, §20.2.2).

/// A NameString as written: `\` (root), `^`... (parents), then zero or more 4-byte segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameStr<'a> {
    pub root: bool,
    pub up: u16,
    /// The segments, 4 bytes each.
    pub segs: &'a [u8],
}

impl NameStr<'_> {
    /// A single segment without prefix: the only form the upward search of §5.3 applies to.
    pub fn searches_up(&self) -> bool {
        !self.root && self.up == 0 && self.segs.len() == 4
    }
}

/// A segment's lead character (`A`-`Z`, `_`).
pub fn is_lead(b: u8) -> bool {
    b == b'_' || b.is_ascii_uppercase()
}

/// The first byte of a NameString other than NullName.
pub fn starts_name(b: u8) -> bool {
    is_lead(b) || b == b'\\' || b == b'^' || b == 0x2E || b == 0x2F
}

/// Reads a NameString at `*pos`, advancing past it. `None` if it is truncated.
pub fn parse_name<'a>(code: &'a [u8], pos: &mut usize) -> Option<NameStr<'a>> {
    let mut p = *pos;
    let mut root = false;
    let mut up = 0u16;
    if *code.get(p)? == b'\\' {
        root = true;
        p += 1;
    } else {
        while *code.get(p)? == b'^' {
            up = up.saturating_add(1);
            p += 1;
        }
    }
    let count = match *code.get(p)? {
        0x00 => {
            p += 1;
            0
        }
        0x2E => {
            p += 1;
            2
        }
        0x2F => {
            p += 2;
            usize::from(*code.get(p - 1)?)
        }
        _ => 1,
    };
    let segs = code.get(p..p.checked_add(count * 4)?)?;
    *pos = p + count * 4;
    Some(NameStr { root, up, segs })
}

/// Reads a PkgLength's value at `*pos`, advancing past the encoding.
pub fn parse_pkg_len(code: &[u8], pos: &mut usize) -> Option<usize> {
    let start = *pos;
    let lead = *code.get(start)?;
    let extra = usize::from(lead >> 6);
    let mut len = if extra == 0 {
        usize::from(lead & 0x3F)
    } else {
        usize::from(lead & 0x0F)
    };
    for i in 0..extra {
        len |= usize::from(*code.get(start + 1 + i)?) << (4 + 8 * i);
    }
    *pos = start + 1 + extra;
    Some(len)
}

/// Reads a PkgLength at `*pos` and returns the end of the package it measures (the length counts its
/// own bytes), advancing past the encoding. `None` when it is malformed or runs past `limit`.
pub fn parse_pkg_end(code: &[u8], pos: &mut usize, limit: usize) -> Option<usize> {
    let start = *pos;
    let end = start.checked_add(parse_pkg_len(code, pos)?)?;
    (end >= *pos && end <= limit).then_some(end)
}

/// EISA id `PNP0A03` as ACPICA keeps the compressed form (`EISAID()` in ASL).
pub fn eisa(id: &[u8; 7]) -> u64 {
    let c = |b: u8| u32::from(b.wrapping_sub(0x40)) & 0x1F;
    let h = |b: u8| {
        u32::from(if b <= b'9' {
            b.wrapping_sub(b'0')
        } else {
            b.wrapping_sub(b'A' - 10)
        }) & 0xF
    };
    let vendor = (c(id[0]) << 10) | (c(id[1]) << 5) | c(id[2]);
    let product = (h(id[3]) << 12) | (h(id[4]) << 8) | (h(id[5]) << 4) | h(id[6]);
    // Both halves are stored big-endian in the integer's bytes.
    let bytes = [
        (vendor >> 8) as u8,
        vendor as u8,
        (product >> 8) as u8,
        product as u8,
    ];
    u32::from_le_bytes(bytes) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eisa_id_matches_the_compiled_form() {
        assert_eq!(eisa(b"PNP0A03"), 0x030A_D041);
        assert_eq!(eisa(b"PNP0A08"), 0x080A_D041);
        assert_eq!(eisa(b"PNP0C0F"), 0x0F0C_D041);
    }

    #[test]
    fn pkg_length_one_to_four_bytes() {
        let mut p = 0;
        assert_eq!(parse_pkg_end(&[0x05], &mut p, 10), Some(5));
        assert_eq!(p, 1);
        let mut p = 0;
        // 0x4A 0x12: 2-byte encoding, len = 0xA | 0x12 << 4 = 0x12A.
        assert_eq!(parse_pkg_end(&[0x4A, 0x12], &mut p, 0x200), Some(0x12A));
        assert_eq!(p, 2);
        let mut p = 0;
        assert_eq!(
            parse_pkg_end(&[0x4A, 0x12], &mut p, 0x100),
            None,
            "runs past its limit"
        );
        let mut p = 0;
        assert_eq!(
            parse_pkg_end(&[0xC0, 1], &mut p, 1 << 30),
            None,
            "truncated"
        );
    }

    #[test]
    fn name_strings_with_prefixes() {
        let code = b"\\_SB_PCI0";
        let mut p = 0;
        let n = parse_name(code, &mut p).unwrap();
        assert!(n.root && n.segs == b"_SB_" && p == 5);
        let code = b"^^\x2E_SB_PCI0";
        let mut p = 0;
        let n = parse_name(code, &mut p).unwrap();
        assert_eq!((n.root, n.up, n.segs, p), (false, 2, &b"_SB_PCI0"[..], 11));
        let code = b"\x2F\x03ABCDEFGHIJKL";
        let mut p = 0;
        assert_eq!(parse_name(code, &mut p).unwrap().segs.len(), 12);
        let mut p = 0;
        assert_eq!(parse_name(b"\x2F\x09ABCD", &mut p), None, "truncated");
        let mut p = 0;
        assert_eq!(parse_name(b"^^^", &mut p), None);
    }
}
