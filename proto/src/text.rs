//! Free text in a record (a scenario's detail, a problem, a name the firmware does not enumerate), and
//! its wire form: the report's own words replaced by one byte each.
//!
//! Most of the report's bytes are text, and its text is mostly the same few hundred words. On the wire a
//! text is postcard bytes (a varint length, then the bytes) in which a byte 0x80-0xFF stands for entry
//! `byte - 0x80` of [`DICTIONARY`], a control character other than NUL, tab, LF and CR for one of its
//! entries 128-155, `0x7F` says that the next byte is itself (a byte of a non-ASCII character, a control
//! character, or `0x7F`), and any other byte is that ASCII character. The encoder takes the longest entry
//! that matches at each place. Any text round-trips; words not in the dictionary only cost their length.
//!
//! The dictionary starts with the scenario names, whole; the rest was chosen by a greedy search over the firmware's report messages (the verdict texts of
//! `src/scenarios`, counted three times as they are in every run's report, and the problem and verdict
//! texts of `src/app`) and its names (scenarios, capabilities, drivers, problem sources, counted three
//! times): each step took the fragment that saved the most bytes over that corpus. It is part of
//! the wire format: change it only with [`crate::frame::VERSION`].

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Deref;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The byte before a byte that stands for itself.
pub const ESCAPE: u8 = 0x7f;

/// The control characters that stand for entries 128-155 of the dictionary (all but NUL, tab, line feed
/// and carriage return, which stand for themselves).
const CONTROLS: [u8; 28] = [
    1, 2, 3, 4, 5, 6, 7, 8, 0x0b, 0x0c, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
    29, 30, 31,
];

/// The fragments bytes 0x80-0xFF (entries 0-127) and the [`CONTROLS`] (entries 128-155) stand for, each
/// ended by a line feed (one string, not an array of 156 references: 2.5 KB less in the firmware image).
pub const DICTIONARY: &str = concat!(
    "intx-storm\n",
    "hot-unplug\n",
    "crash-restart\n",
    "reset-restore\n",
    "stuck-command\n",
    "write-order\n",
    "msix-delivery\n",
    "intx-delivery\n",
    "unowned-vector\n",
    "pci-roots\n",
    "pci-config\n",
    "pci-buses\n",
    "msix-vector-mask\n",
    "msix-function-mask\n",
    "msi-vector-mask\n",
    "msi-delivery\n",
    "lapic-self-ipi\n",
    "intx-hold\n",
    "dispatch-benchmark\n",
    "shutdown\n",
    "incremental\n",
    "reenable\n",
    "capacity\n",
    "soak\n",
    " interrupt\n",
    "vector\n",
    " the\n",
    " no\n",
    "entry\n",
    " after\n",
    "deliver\n",
    "Asynchronous Event Request\n",
    "in\n",
    "on\n",
    "device\n",
    " unclaimed\n",
    " a\n",
    "table\n",
    "masked\n",
    " expected\n",
    "round\n",
    "trigger\n",
    "source\n",
    "timed out\n",
    " with\n",
    " us; Identify\n",
    " failed\n",
    " (\n",
    " message\n",
    " INTx\n",
    "no\n",
    "MSI-X\n",
    "programmed\n",
    "or\n",
    " was\n",
    " freed\n",
    "host bridge\n",
    "while\n",
    " driven\n",
    " disable\n",
    " us\n",
    " from\n",
    "APIC\n",
    "it\n",
    "time\n",
    " counted\n",
    " exactly\n",
    " be\n",
    " to\n",
    " of\n",
    " rearm\n",
    " problem\n",
    " completed\n",
    "acpi\n",
    "the\n",
    " unmask\n",
    "raised\n",
    " through\n",
    "at\n",
    " firmware carried\n",
    "set\n",
    "caught:\n",
    "bridge-subsystem\n",
    " still\n",
    " stage B quieted\n",
    " reach\n",
    " lost\n",
    "selftest\n",
    "out\n",
    "msifw\n",
    " this\n",
    " could\n",
    "stack-overflow\n",
    " did\n",
    "an\n",
    " held\n",
    "pci.assign\n",
    "resizable-bar\n",
    "after\n",
    " exhausted\n",
    " reused\n",
    "cleared\n",
    " bus\n",
    " enabled\n",
    " checked\n",
    " 1\n",
    " 0xCF8/0xCFC\n",
    "power-budget\n",
    " provoke:\n",
    " rule\n",
    " show\n",
    "GSI\n",
    " left\n",
    "apic\n",
    " fences\n",
    "INTx unavailable\n",
    " physical 0\n",
    " cache\n",
    " found\n",
    " entries\n",
    " ACPI\n",
    "space\n",
    "pcie\n",
    "virtio-net\n",
    "peer-probe\n",
    " come back\n",
    "):\n",
    "is\n",
    " every\n",
    " mode\n",
    " 2:\n",
    " has\n",
    ", which\n",
    " ms\n",
    "msix\n",
    " Identify\n",
    "detected:\n",
    " expose\n",
    " MP\n",
    "irq.\n",
    "scenario\n",
    " verdict\n",
    "self-ipi\n",
    " Bus Master\n",
    "first\n",
    " live\n",
    " level\n",
    " stale\n",
    "quiet\n",
    " read\n",
    " event,\n",
    "BARs\n",
    "),\n",
    "default\n",
    "stage A\n",
    " shut down\n",
);

/// The dictionary's entries, in order.
pub fn entries() -> impl Iterator<Item = &'static str> {
    DICTIONARY.split_terminator('\n')
}

/// The byte that stands for dictionary entry `i`.
fn code(i: usize) -> u8 {
    if i < 128 {
        0x80 | i as u8
    } else {
        CONTROLS[i - 128]
    }
}

/// The index of the dictionary entry byte `b` stands for, if it stands for one.
fn entry(b: u8) -> Option<usize> {
    match b {
        0x80.. => Some((b & 0x7f) as usize),
        // Printable ASCII, the common case, is no control (and not searched for).
        0x20.. => None,
        _ => CONTROLS.iter().position(|&c| c == b).map(|i| 128 + i),
    }
}

/// The number of dictionary entries (its line feeds).
const ENTRIES: usize = {
    let b = DICTIONARY.as_bytes();
    let (mut i, mut n) = (0, 0);
    while i < b.len() {
        if b[i] == b'\n' {
            n += 1;
        }
        i += 1;
    }
    n
};

/// Where each entry starts and ends in [`DICTIONARY`], found when the crate is compiled: the encoder
/// runs for every record the firmware sends, and splitting the dictionary at each place of each text
/// took most of the firmware's report time under TCG (README "Performance").
const SPANS: [(u16, u16); ENTRIES] = {
    let b = DICTIONARY.as_bytes();
    let mut spans = [(0u16, 0u16); ENTRIES];
    let (mut i, mut k, mut start) = (0, 0, 0);
    while i < b.len() {
        if b[i] == b'\n' {
            spans[k] = (start as u16, i as u16);
            k += 1;
            start = i + 1;
        }
        i += 1;
    }
    spans
};

/// The entries' indices ordered by their first byte (stable), and for each ASCII byte where its entries
/// start in that order and how many there are: at each place of a text only the few entries that start
/// with its byte are tried. (Entries are printable ASCII, see the tests.)
const BY_FIRST: ([u8; ENTRIES], [(u8, u8); 128]) = {
    let d = DICTIONARY.as_bytes();
    let mut order = [0u8; ENTRIES];
    let mut buckets = [(0u8, 0u8); 128];
    let mut n = 0;
    let mut byte = 0;
    while byte < 128 {
        let start = n;
        let mut k = 0;
        while k < ENTRIES {
            if d[SPANS[k].0 as usize] as usize == byte {
                order[n] = k as u8;
                n += 1;
            }
            k += 1;
        }
        buckets[byte] = (start as u8, (n - start) as u8);
        byte += 1;
    }
    assert!(n == ENTRIES, "an entry starts with a byte above 0x7f");
    (order, buckets)
};

/// Each entry's first four bytes as a little-endian word (zero past its end) and the mask of the bytes it
/// has: a candidate is tested with one comparison of the text's next four bytes, and only one that
/// agrees there and is longer is compared further (issue 16: a record took 56,000 instructions to encode
/// on the host, most of them in calls to compare candidates byte by byte).
const PREFIX: [(u32, u32); ENTRIES] = {
    let d = DICTIONARY.as_bytes();
    let mut out = [(0u32, 0u32); ENTRIES];
    let mut k = 0;
    while k < ENTRIES {
        let (s, e) = SPANS[k];
        let mut j = 0;
        while j < 4 && (s as usize + j) < e as usize {
            out[k].0 |= (d[s as usize + j] as u32) << (8 * j);
            out[k].1 |= 0xff << (8 * j);
            j += 1;
        }
        k += 1;
    }
    out
};

/// Appends the wire form of `text` to `out`: at each place the longest entry that matches there (of
/// equally long ones the last, which cannot happen: entries are distinct), else the byte itself.
pub fn compress(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    let dictionary = DICTIONARY.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let first = rest[0];
        let mut head = [0u8; 4];
        let n4 = rest.len().min(4);
        head[..n4].copy_from_slice(&rest[..n4]);
        let head = u32::from_le_bytes(head);
        let mut best: Option<(usize, usize)> = None;
        if let Some(&(start, n)) = BY_FIRST.1.get(first as usize) {
            for &i in &BY_FIRST.0[start as usize..][..n as usize] {
                let (prefix, mask) = PREFIX[i as usize];
                if head & mask != prefix {
                    continue;
                }
                let (s, e) = SPANS[i as usize];
                let e = &dictionary[s as usize..e as usize];
                if best.is_none_or(|(_, len)| e.len() >= len) && rest.starts_with(e) {
                    best = Some((i as usize, e.len()));
                }
            }
        }
        match best {
            Some((i, len)) => {
                out.push(code(i));
                at += len;
            }
            None => {
                if first == ESCAPE || entry(first).is_some() {
                    out.push(ESCAPE);
                }
                out.push(first);
                at += 1;
            }
        }
    }
}

/// The text whose wire form is `wire`, or `None` when the bytes are not one.
pub fn expand(wire: &[u8]) -> Option<String> {
    let dictionary: Vec<&str> = entries().collect();
    let mut out = Vec::with_capacity(wire.len() * 2);
    let mut bytes = wire.iter();
    while let Some(&b) = bytes.next() {
        match (b, entry(b)) {
            (ESCAPE, _) => out.push(*bytes.next()?),
            (_, Some(i)) => out.extend_from_slice(dictionary[i].as_bytes()),
            (_, None) => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// Text in a record: borrowed where the firmware has it at hand, owned where it was formatted or decoded.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Text<'a>(pub Cow<'a, str>);

impl Text<'_> {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0.into_owned()
    }
}

impl Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(s: &'a str) -> Self {
        Text(Cow::Borrowed(s))
    }
}

impl From<String> for Text<'_> {
    fn from(s: String) -> Self {
        Text(Cow::Owned(s))
    }
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut wire = Vec::with_capacity(self.0.len());
        compress(&self.0, &mut wire);
        s.serialize_bytes(&wire)
    }
}

struct TextVisitor;

impl Visitor<'_> for TextVisitor {
    type Value = Text<'static>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the bytes of a text")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        expand(v)
            .map(Text::from)
            .ok_or_else(|| E::custom("not the wire form of a text"))
    }
}

impl<'de> Deserialize<'de> for Text<'_> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_bytes(TextVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(s: &str) -> Vec<u8> {
        let mut wire = Vec::new();
        compress(s, &mut wire);
        assert_eq!(expand(&wire).as_deref(), Some(s), "{wire:?}");
        wire
    }

    #[test]
    fn any_text_round_trips() {
        for s in [
            "",
            "a",
            "\u{7f}",
            "\u{1}\u{1f}\u{b}\r\n",
            "ünïcode ~ \"quoted\"\n\t\u{0}",
            "interrupt",
            " interrupts interrupt",
            "msix-delivery",
            "日本語",
        ] {
            round_trip(s);
        }
        let all: String = (0..=0x10ffu32).filter_map(char::from_u32).collect();
        round_trip(&all);
    }

    /// The encoder before the entries' spans were found at compile time: the wire form must not change.
    fn compress_by_splitting(text: &str, out: &mut Vec<u8>) {
        let bytes = text.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            let best = entries()
                .enumerate()
                .filter(|(_, e)| bytes[at..].starts_with(e.as_bytes()))
                .max_by_key(|(_, e)| e.len());
            match best {
                Some((i, e)) => {
                    out.push(code(i));
                    at += e.len();
                }
                None => {
                    let b = bytes[at];
                    if b == ESCAPE || entry(b).is_some() {
                        out.push(ESCAPE);
                    }
                    out.push(b);
                    at += 1;
                }
            }
        }
    }

    #[test]
    fn the_wire_form_is_that_of_the_splitting_encoder() {
        let mut texts: Vec<String> = entries().map(String::from).collect();
        texts.push(DICTIONARY.into());
        texts.push(DICTIONARY.replace('\n', " "));
        texts.push((0..=0x2ffu32).filter_map(char::from_u32).collect());
        texts.push("5 entries masked: pending set, nothing delivered; delivered exactly once on unmask".into());
        texts.push("\u{7f}\u{1}msix-vector-mask interrupts intx-stormy".into());
        for t in &texts {
            let (mut new, mut old) = (Vec::new(), Vec::new());
            compress(t, &mut new);
            compress_by_splitting(t, &mut old);
            assert_eq!(new, old, "{t:?}");
        }
        assert_eq!(SPANS.len(), entries().count());
    }

    #[test]
    fn the_reports_words_take_a_byte() {
        let detail =
            "5 entries masked: pending set, nothing delivered; delivered exactly once on unmask";
        let wire = round_trip(detail);
        assert!(
            wire.len() * 10 < detail.len() * 7,
            "{} of {} bytes",
            wire.len(),
            detail.len()
        );
        assert_eq!(round_trip("crash-restart").len(), 1);
    }

    #[test]
    fn bytes_that_are_no_text_are_refused() {
        assert_eq!(expand(&[ESCAPE]), None, "an escape at the end");
        assert_eq!(expand(&[ESCAPE, 0xff]), None, "not UTF-8");
        let d: Vec<&str> = entries().collect();
        let expected = ["a", d[0], d[128], "\u{1}"].concat();
        assert_eq!(expand(&[b'a', 0x80, 1, ESCAPE, 1]), Some(expected));
    }

    #[test]
    fn the_dictionary_has_no_duplicates_and_no_escapes() {
        let d: Vec<&str> = entries().collect();
        assert_eq!(d.len(), 128 + CONTROLS.len());
        for (i, e) in d.iter().enumerate() {
            assert!(
                e.len() >= 2 && e.bytes().all(|b| (0x20..0x7f).contains(&b)),
                "{e:?}"
            );
            assert!(!d[..i].contains(e), "{e:?} twice");
        }
    }
}
