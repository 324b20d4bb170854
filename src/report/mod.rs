//! The report: one frame per record on COM1 (docs/protocol.md), the record types of `msifw-proto`
//! encoded with postcard. Records stream out as results arrive, so a run that dies midway still leaves
//! what it found. A scenario's frame follows its verdict in words on the same line, for a person
//! watching the serial console.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use msifw_proto::record::{self as wire, Outcome, Record, Text};

/// Formatted text for a record field (borrowed when the text has no arguments).
pub fn text(args: fmt::Arguments) -> Text<'static> {
    match args.as_str() {
        Some(s) => Text::from(s),
        None => Text::from(alloc::fmt::format(args)),
    }
}

/// The wire form of a function's address.
pub fn bdf(b: crate::bus::pci::config::Bdf) -> wire::Bdf {
    wire::Bdf {
        bus: b.bus,
        dev: b.dev,
        func: b.func,
    }
}

/// The line `record` is sent as, without the line end: a scenario's verdict in words (the detail only
/// for a failure), then the frame.
pub fn line(record: &Record) -> Result<Vec<u8>, msifw_proto::frame::EncodeError> {
    let mut out = Vec::new();
    if let Record::Scenario(s) = record {
        use core::fmt::Write;
        let mut head = String::new();
        let _ = match s.bdf {
            Some(b) => write!(head, "{} {b} {}", s.result.label(), s.name),
            None => write!(head, "{} - {}", s.result.label(), s.name),
        };
        if s.control {
            head.push_str(" (control)");
        }
        if s.result == Outcome::Fail {
            head.push_str(": ");
            head.push_str(&s.detail);
        }
        // The text before a frame never holds a frame mark of its own.
        out.extend(head.bytes().map(|b| {
            if b == msifw_proto::frame::MARK {
                b'-'
            } else {
                b
            }
        }));
        out.push(b' ');
    }
    msifw_proto::frame::encode(record, &mut out)?;
    Ok(out)
}

/// Sends `record` on COM1.
pub fn emit(record: &Record) {
    match line(record) {
        // A frame is ASCII and its head is made of text (its `~` replaced), so the line is UTF-8.
        Ok(bytes) => crate::println!("{}", core::str::from_utf8(&bytes).unwrap_or("msifw: a report line that is not UTF-8")),
        Err(e) => crate::println!(
            "msifw: the {} record could not be encoded: {}",
            record.kind(),
            e
        ),
    }
}

/// Counts of scenario outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Passed.
    pub passed: u32,
    /// Failed.
    pub failed: u32,
    /// Skipped.
    pub skipped: u32,
}

impl Summary {
    /// Counts one outcome.
    pub fn add(&mut self, o: Outcome) {
        match o {
            // The firmware itself reports only pass, fail and skip; the host turns them into xfail and xpass.
            Outcome::Pass | Outcome::Xpass => self.passed += 1,
            Outcome::Fail | Outcome::Xfail => self.failed += 1,
            Outcome::Skip => self.skipped += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use msifw_proto::frame::{split, Piece};

    fn scenario(result: Outcome, detail: &str) -> Record<'_> {
        Record::Scenario(wire::Scenario {
            name: "msix-delivery".into(),
            bdf: Some(wire::Bdf {
                bus: 0,
                dev: 2,
                func: 0,
            }),
            result,
            detail: detail.into(),
            control: false,
        })
    }

    #[test]
    fn a_scenario_line_reads_as_a_verdict_and_holds_the_record() {
        let pass = scenario(Outcome::Pass, "10 interrupts on 5 vector(s)");
        let l = String::from_utf8(line(&pass).unwrap()).unwrap();
        assert!(l.starts_with("PASS 00:02.0 msix-delivery ~"), "{l}");
        assert!(
            !l.contains("10 interrupts"),
            "a pass's detail is in the frame only: {l}"
        );
        let pieces = split(&l);
        assert_eq!(pieces[1], Piece::Frame(Ok(pass.clone())), "{l}");

        // A failure says why in words too; a `~` in its words is no frame mark.
        let fail = scenario(Outcome::Fail, "nothing arrived ~AAAAAAAAAAAA");
        let l = String::from_utf8(line(&fail).unwrap()).unwrap();
        assert!(
            l.starts_with("FAIL 00:02.0 msix-delivery: nothing arrived -AAAAAAAAAAAA ~"),
            "{l}"
        );
        let frames: Vec<_> = split(&l)
            .into_iter()
            .filter(|p| matches!(p, Piece::Frame(_)))
            .collect();
        assert_eq!(frames, [Piece::Frame(Ok(fail.clone()))]);
    }

    #[test]
    fn other_records_are_a_frame_alone() {
        let end = Record::End(wire::End {
            passed: 1,
            failed: 2,
            skipped: 3,
        });
        let l = line(&end).unwrap();
        assert!(l.starts_with(b"~") && l.ends_with(b"~"), "{l:?}");
    }

    #[test]
    fn formatted_text_borrows_when_it_can() {
        assert!(matches!(
            text(format_args!("static")).0,
            alloc::borrow::Cow::Borrowed("static")
        ));
        assert_eq!(text(format_args!("{} vectors", 5)).as_str(), "5 vectors");
    }

    #[test]
    fn summary_counts() {
        let mut s = Summary::default();
        for o in [Outcome::Pass, Outcome::Pass, Outcome::Fail, Outcome::Skip] {
            s.add(o);
        }
        assert_eq!(
            s,
            Summary {
                passed: 2,
                failed: 1,
                skipped: 1
            }
        );
    }
}
