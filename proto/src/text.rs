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

/// The fragments bytes 0x80-0xFF (entries 0-127) and the [`CONTROLS`] (entries 128-155) stand for.
pub const DICTIONARY: [&str; 156] = [
    "intx-storm",
    "hot-unplug",
    "crash-restart",
    "reset-restore",
    "stuck-command",
    "write-order",
    "msix-delivery",
    "intx-delivery",
    "unowned-vector",
    "pci-roots",
    "pci-config",
    "pci-buses",
    "msix-vector-mask",
    "msix-function-mask",
    "msi-vector-mask",
    "msi-delivery",
    "lapic-self-ipi",
    "intx-hold",
    "dispatch-benchmark",
    "shutdown",
    "incremental",
    "reenable",
    "capacity",
    "soak",
    " interrupt",
    "vector",
    " the",
    " no",
    "entry",
    " after",
    "deliver",
    "Asynchronous Event Request",
    "in",
    "on",
    "device",
    " unclaimed",
    " a",
    "table",
    "masked",
    " expected",
    "round",
    "trigger",
    "source",
    "timed out",
    " with",
    " us; Identify",
    " failed",
    " (",
    " message",
    " INTx",
    "no",
    "MSI-X",
    "programmed",
    "or",
    " was",
    " freed",
    "host bridge",
    "while",
    " driven",
    " disable",
    " us",
    " from",
    "APIC",
    "it",
    "time",
    " counted",
    " exactly",
    " be",
    " to",
    " of",
    " rearm",
    " problem",
    " completed",
    "acpi",
    "the",
    " unmask",
    "raised",
    " through",
    "at",
    " firmware carried",
    "set",
    "caught:",
    "bridge-subsystem",
    " still",
    " stage B quieted",
    " reach",
    " lost",
    "selftest",
    "out",
    "msifw",
    " this",
    " could",
    "stack-overflow",
    " did",
    "an",
    " held",
    "pci.assign",
    "resizable-bar",
    "after",
    " exhausted",
    " reused",
    "cleared",
    " bus",
    " enabled",
    " checked",
    " 1",
    " 0xCF8/0xCFC",
    "power-budget",
    " provoke:",
    " rule",
    " show",
    "GSI",
    " left",
    "apic",
    " fences",
    "INTx unavailable",
    " physical 0",
    " cache",
    " found",
    " entries",
    " ACPI",
    "space",
    "pcie",
    "virtio-net",
    "peer-probe",
    " come back",
    "):",
    "is",
    " every",
    " mode",
    " 2:",
    " has",
    ", which",
    " ms",
    "msix",
    " Identify",
    "detected:",
    " expose",
    " MP",
    "irq.",
    "scenario",
    " verdict",
    "self-ipi",
    " Bus Master",
    "first",
    " live",
    " level",
    " stale",
    "quiet",
    " read",
    " event,",
    "BARs",
    "),",
    "default",
    "stage A",
    " shut down",
];

/// The byte that stands for dictionary entry `i`.
fn code(i: usize) -> u8 {
    if i < 128 {
        0x80 | i as u8
    } else {
        CONTROLS[i - 128]
    }
}

/// The dictionary entry byte `b` stands for, if it stands for one.
fn entry(b: u8) -> Option<&'static str> {
    match b {
        0x80.. => Some(DICTIONARY[(b & 0x7f) as usize]),
        _ => CONTROLS
            .iter()
            .position(|&c| c == b)
            .map(|i| DICTIONARY[128 + i]),
    }
}

/// Appends the wire form of `text` to `out`.
pub fn compress(text: &str, out: &mut Vec<u8>) {
    let bytes = text.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let best = DICTIONARY
            .iter()
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

/// The text whose wire form is `wire`, or `None` when the bytes are not one.
pub fn expand(wire: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(wire.len() * 2);
    let mut bytes = wire.iter();
    while let Some(&b) = bytes.next() {
        match (b, entry(b)) {
            (ESCAPE, _) => out.push(*bytes.next()?),
            (_, Some(e)) => out.extend_from_slice(e.as_bytes()),
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
        let expected = ["a", DICTIONARY[0], DICTIONARY[128], "\u{1}"].concat();
        assert_eq!(expand(&[b'a', 0x80, 1, ESCAPE, 1]), Some(expected));
    }

    #[test]
    fn the_dictionary_has_no_duplicates_and_no_escapes() {
        for (i, e) in DICTIONARY.iter().enumerate() {
            assert!(
                e.len() >= 2 && e.is_ascii() && !e.contains('\u{7f}'),
                "{e:?}"
            );
            assert!(!DICTIONARY[..i].contains(e), "{e:?} twice");
        }
    }
}
