//! The few resource descriptors routing reads from a `_CRS` buffer (ACPI 6.5 §6.4): address space
//! descriptors (for a host bridge's bus-number range) and interrupt descriptors (for a link device).

use alloc::vec::Vec;

/// An Address Space descriptor (Word, DWord, QWord or Extended; ACPI 6.5 §6.4.3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Address {
    /// 0 memory, 1 I/O, 2 bus numbers.
    pub rtype: u8,
    /// General flags bit 0: the range is consumed, not produced.
    pub consumer: bool,
    /// Minimum.
    pub min: u64,
    /// Maximum.
    pub max: u64,
    /// Translation offset.
    pub translation: u64,
    /// Length.
    pub len: u64,
}

/// An IRQ or Extended Interrupt descriptor (ACPI 6.5 §6.4.2.1, §6.4.3.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Irq {
    /// The interrupts it lists (IRQ numbers or GSIs).
    pub irqs: Vec<u32>,
    /// Level-triggered (else edge).
    pub level: bool,
    /// Active low (else high).
    pub active_low: bool,
    /// Shared.
    pub shared: bool,
}

/// Calls `f(tag, body)` for each descriptor up to the End Tag; `false` if the buffer is malformed
/// (a descriptor running past the end, no End Tag).
pub fn walk(buf: &[u8], mut f: impl FnMut(u8, &[u8])) -> bool {
    let mut p = 0usize;
    while let Some(&tag) = buf.get(p) {
        let (name, start, len) = if tag & 0x80 == 0 {
            ((tag >> 3) & 0x0F, p + 1, usize::from(tag & 7))
        } else {
            if buf.get(p + 1..p + 3).is_none() {
                return false;
            }
            (tag, p + 3, le(buf, p + 1, 2) as usize)
        };
        if name == 0x0F {
            return true;
        }
        let Some(body) = buf.get(start..start + len) else {
            return false;
        };
        f(name, body);
        p = start + len;
    }
    false
}

fn le(b: &[u8], at: usize, w: usize) -> u64 {
    b.iter()
        .skip(at)
        .take(w)
        .enumerate()
        .fold(0, |a, (i, &x)| a | u64::from(x) << (8 * i))
}

/// Every address space descriptor.
pub fn addresses(buf: &[u8]) -> Vec<Address> {
    let mut v = Vec::new();
    walk(buf, |tag, b| {
        let (w, first) = match tag {
            0x88 => (2, 3),
            0x87 => (4, 3),
            0x8A => (8, 3),
            0x8B => (8, 5),
            _ => return,
        };
        if b.len() < first + 5 * w {
            return;
        }
        let field = |i: usize| le(b, first + i * w, w);
        v.push(Address {
            rtype: b.first().copied().unwrap_or(0),
            consumer: b.get(1).is_some_and(|f| f & 1 != 0),
            min: field(1),
            max: field(2),
            translation: field(3),
            len: field(4),
        });
    });
    v
}

/// Every IRQ and Extended Interrupt descriptor.
pub fn irqs(buf: &[u8]) -> Vec<Irq> {
    let mut v = Vec::new();
    walk(buf, |tag, b| match tag {
        0x04 if b.len() >= 2 => {
            let mask = le(b, 0, 2);
            // Without the flags byte: edge, active high (ACPI 6.5 §6.4.2.1).
            let flags = b.get(2).copied().unwrap_or(1);
            v.push(Irq {
                irqs: (0..16).filter(|i| mask >> i & 1 != 0).collect(),
                level: flags & 1 == 0,
                active_low: flags & 8 != 0,
                shared: flags & 0x10 != 0,
            });
        }
        0x89 if b.len() >= 2 => {
            let flags = b.first().copied().unwrap_or(0);
            let n = usize::from(b.get(1).copied().unwrap_or(0));
            v.push(Irq {
                irqs: (0..n)
                    .take_while(|i| 2 + 4 * i + 4 <= b.len())
                    .map(|i| le(b, 2 + 4 * i, 4) as u32)
                    .collect(),
                level: flags & 2 == 0,
                active_low: flags & 4 != 0,
                shared: flags & 8 != 0,
            });
        }
        _ => {}
    });
    v
}
