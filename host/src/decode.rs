//! Decoding the firmware's defmt log (COM2) with defmt-decoder and the firmware ELF.

use std::fmt;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

use defmt_decoder::{DecodeError, Encoding, Frame, Table};

/// One decoded log frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefmtLine {
    /// `TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR`, or `None` for `println!` frames.
    pub level: Option<String>,
    /// The timestamp as the firmware's `defmt::timestamp!` formats it, if it defines one.
    pub timestamp: Option<String>,
    /// The message.
    pub message: String,
}

impl fmt::Display for DefmtLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<5}", self.level.as_deref().unwrap_or(""))?;
        if let Some(ts) = &self.timestamp {
            write!(f, " {ts}")?;
        }
        write!(f, " {}", self.message)
    }
}

/// Something wrong in the COM2 byte stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamIssue {
    /// A frame could not be decoded (corrupt bytes, or an ELF that does not match the firmware
    /// that ran). `after` frames had been decoded before it.
    Malformed {
        /// Frames decoded before this one.
        after: usize,
    },
    /// The stream ends in the middle of a frame (the firmware stopped, or did not drain COM2 before
    /// exiting).
    Truncated {
        /// Bytes of the incomplete frame.
        bytes: usize,
    },
    /// defmt-decoder panicked on a frame; it was skipped.
    DecoderPanicked {
        /// Frames decoded before this one.
        after: usize,
    },
    /// The encoding cannot resynchronise after an error (raw encoding); the rest was not decoded.
    Abandoned {
        /// Frames decoded before the error.
        after: usize,
    },
}

impl fmt::Display for StreamIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamIssue::Malformed { after } => {
                write!(f, "malformed frame after {after} good frame(s) (corrupt data, or the ELF does not match the firmware that ran)")
            }
            StreamIssue::Truncated { bytes } => {
                write!(
                    f,
                    "stream ends inside a frame ({bytes} byte(s) without a terminator)"
                )
            }
            StreamIssue::DecoderPanicked { after } => {
                write!(
                    f,
                    "defmt-decoder panicked on the frame after {after} good frame(s); skipped"
                )
            }
            StreamIssue::Abandoned { after } => {
                write!(f, "raw defmt encoding cannot resynchronise; decoding stopped after {after} frame(s)")
            }
        }
    }
}

/// State of the defmt table of the ELF.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableStatus {
    /// The ELF has a defmt table with this encoding.
    Found(Encoding),
    /// The ELF has no `.defmt` section (the firmware does not use defmt, or was linked without
    /// `defmt.x`).
    Missing,
    /// The ELF could not be read.
    ElfUnreadable(String),
    /// defmt-decoder rejected the table (e.g. a defmt version this decoder does not support).
    Invalid(String),
    /// Not read: there is no COM2 stream to decode (a capture decoded without `--com2`).
    NoCapture,
    /// The firmware ran but COM2 carried nothing: the machine has no second UART (why, for the user).
    NoCom2(String),
}

/// The decoded COM2 stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefmtLog {
    /// Whether and how the table was found.
    pub table: TableStatus,
    /// Bytes received on COM2.
    pub bytes: usize,
    /// Decoded frames, in order.
    pub lines: Vec<DefmtLine>,
    /// Problems in the stream.
    pub issues: Vec<StreamIssue>,
}

impl DefmtLog {
    /// A log for a run whose table could not be had.
    pub fn without_table(table: TableStatus, bytes: usize) -> DefmtLog {
        DefmtLog {
            table,
            bytes,
            lines: Vec::new(),
            issues: Vec::new(),
        }
    }

    /// Text for the user: a header line, the frames, then the issues.
    pub fn render(&self) -> String {
        let mut out = String::new();
        match &self.table {
            TableStatus::Found(_) => {
                let _ = writeln!(
                    out,
                    "defmt (COM2, {} bytes, {} frames):",
                    self.bytes,
                    self.lines.len()
                );
            }
            TableStatus::Missing => {
                let _ = writeln!(
                    out,
                    "defmt: the ELF has no defmt table (.defmt section); {} byte(s) on COM2 not decoded",
                    self.bytes
                );
            }
            TableStatus::ElfUnreadable(e) => {
                let _ = writeln!(
                    out,
                    "defmt: could not read the ELF ({e}); {} byte(s) on COM2 not decoded",
                    self.bytes
                );
            }
            TableStatus::Invalid(e) => {
                let _ = writeln!(out, "defmt: the ELF's defmt table is unusable ({e}); {} byte(s) on COM2 not decoded", self.bytes);
            }
            TableStatus::NoCapture => {
                out.push_str("defmt: no COM2 capture (the firmware's defmt log goes to COM2; decode it with --com2 FILE)\n");
            }
            TableStatus::NoCom2(why) => {
                let _ = writeln!(out, "defmt: no log: COM2 carried no bytes: {why}; the firmware's defmt log (phase times, warnings) is absent, the report on COM1 is complete");
            }
        }
        for line in &self.lines {
            let _ = writeln!(out, "  {line}");
        }
        for issue in &self.issues {
            let _ = writeln!(out, "  defmt: {issue}");
        }
        out
    }
}

/// Decodes a COM2 capture with the defmt table of `elf`. Never panics on bad input.
pub fn decode_defmt(elf: &[u8], com2: &[u8]) -> DefmtLog {
    let table = match catch_unwind(|| Table::parse(elf)) {
        Ok(Ok(Some(table))) => table,
        Ok(Ok(None)) => return DefmtLog::without_table(TableStatus::Missing, com2.len()),
        Ok(Err(e)) => {
            return DefmtLog::without_table(TableStatus::Invalid(format!("{e:#}")), com2.len())
        }
        Err(_) => {
            return DefmtLog::without_table(
                TableStatus::Invalid("defmt-decoder panicked".into()),
                com2.len(),
            )
        }
    };
    decode_with_table(&table, com2)
}

/// Decodes a COM2 capture with an already parsed table.
pub fn decode_with_table(table: &Table, com2: &[u8]) -> DefmtLog {
    let encoding = table.encoding();
    let mut log = DefmtLog {
        table: TableStatus::Found(encoding),
        bytes: com2.len(),
        lines: Vec::new(),
        issues: Vec::new(),
    };
    let mut decoder = table.new_stream_decoder();
    decoder.received(com2);
    // Every call consumes at least one byte or returns UnexpectedEof, so this bound is never hit
    // by a correct decoder; it only guards against a decoder that stops making progress.
    for _ in 0..=com2.len() {
        let step = catch_unwind(AssertUnwindSafe(|| match decoder.decode() {
            Ok(frame) => Ok(to_line(&frame)),
            Err(e) => Err(e),
        }));
        let after = log.lines.len();
        match step {
            Ok(Ok(line)) => log.lines.push(line),
            Ok(Err(DecodeError::UnexpectedEof)) => break,
            Ok(Err(DecodeError::Malformed)) => {
                log.issues.push(StreamIssue::Malformed { after });
                if !encoding.can_recover() {
                    log.issues.push(StreamIssue::Abandoned { after });
                    break;
                }
            }
            Err(_) => {
                log.issues.push(StreamIssue::DecoderPanicked { after });
                if !encoding.can_recover() {
                    log.issues.push(StreamIssue::Abandoned { after });
                    break;
                }
            }
        }
    }
    if encoding == Encoding::Rzcobs {
        // rzcobs frames end with a zero byte: anything after the last one is an incomplete frame.
        let tail = match com2.iter().rposition(|&b| b == 0) {
            Some(pos) => com2.len() - pos - 1,
            None => com2.len(),
        };
        if tail > 0 {
            log.issues.push(StreamIssue::Truncated { bytes: tail });
        }
    }
    log
}

fn to_line(frame: &Frame<'_>) -> DefmtLine {
    DefmtLine {
        level: frame.level().map(|l| l.as_str().to_ascii_uppercase()),
        timestamp: frame.display_timestamp().map(|t| t.to_string()),
        message: frame.display_message().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table as defmt-decoder would build it from an ELF (Table is only constructible through
    /// its serde implementation outside defmt-decoder).
    fn table(encoding: &str, timestamp: bool) -> Table {
        let ts = if timestamp {
            serde_json::json!({"string": {"tag": "Timestamp", "string": "{=u32:us}"}, "raw_symbol": "ts"})
        } else {
            serde_json::Value::Null
        };
        let json = serde_json::json!({
            "timestamp": ts,
            "entries": {
                "0": {"string": {"tag": "Info", "string": "hello {=u8}"}, "raw_symbol": "a"},
                "1": {"string": {"tag": "Warn", "string": "vector {=u8} at {=u32:#x}"}, "raw_symbol": "b"},
                "2": {"string": {"tag": "Println", "string": "plain"}, "raw_symbol": "c"}
            },
            "bitflags": {},
            "encoding": encoding
        });
        serde_json::from_value(json).expect("test table")
    }

    /// rzcobs encoder, as in defmt's `encoding/rzcobs.rs`.
    fn rzcobs(frame: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut run, mut zeros) = (0u8, 0u8);
        for &byte in frame {
            if run < 7 {
                if byte == 0 {
                    zeros |= 1 << run;
                } else {
                    out.push(byte);
                }
                run += 1;
                if run == 7 && zeros != 0 {
                    out.push(zeros);
                    run = 0;
                    zeros = 0;
                }
            } else if byte == 0 {
                out.push((run - 7) | 0x80);
                run = 0;
                zeros = 0;
            } else {
                out.push(byte);
                run += 1;
                if run == 134 {
                    out.push(0xff);
                    run = 0;
                    zeros = 0;
                }
            }
        }
        match run {
            0 => {}
            1..=6 => out.push((zeros | (0xff << run)) & 0x7f),
            _ => out.push((run - 7) | 0x80),
        }
        out.push(0);
        out
    }

    #[test]
    fn decodes_rzcobs_frames_with_timestamps() {
        let t = table("Rzcobs", true);
        let mut stream = vec![0u8]; // defmt starts the stream with a separator
        stream.extend(rzcobs(&[0, 0, 0xd2, 0x04, 0, 0, 42])); // index 0, ts 1234 us, 42
        stream.extend(rzcobs(&[1, 0, 0x40, 0x42, 0x0f, 0, 48, 0, 0, 0xe0, 0xfe])); // index 1
        let log = decode_with_table(&t, &stream);
        assert_eq!(log.issues, vec![]);
        let text: Vec<String> = log.lines.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "INFO  0.001234 hello 42",
                "WARN  1.000000 vector 48 at 0xfee00000"
            ]
        );
    }

    #[test]
    fn decodes_raw_frames_without_timestamps() {
        let t = table("Raw", false);
        let log = decode_with_table(&t, &[0, 0, 7, 2, 0]);
        let text: Vec<String> = log.lines.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["INFO  hello 7", "      plain"]);
        assert_eq!(log.lines[1].level, None);
    }

    #[test]
    fn empty_stream() {
        for enc in ["Rzcobs", "Raw"] {
            let log = decode_with_table(&table(enc, true), &[]);
            assert!(
                log.lines.is_empty() && log.issues.is_empty(),
                "{enc}: {log:?}"
            );
        }
    }

    #[test]
    fn garbage_is_reported_not_fatal() {
        let t = table("Rzcobs", true);
        // A bad frame (unknown index 0x7777), a good one, then a truncated tail.
        let mut stream = rzcobs(&[0x77, 0x77, 1, 2, 3, 4]);
        stream.extend(rzcobs(&[0, 0, 1, 0, 0, 0, 5]));
        stream.extend([0x12, 0x34]);
        let log = decode_with_table(&t, &stream);
        assert_eq!(log.lines.len(), 1);
        assert_eq!(log.lines[0].message, "hello 5");
        assert_eq!(
            log.issues,
            vec![
                StreamIssue::Malformed { after: 0 },
                StreamIssue::Truncated { bytes: 2 }
            ]
        );

        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for enc in ["Rzcobs", "Raw"] {
            let log = decode_with_table(&table(enc, true), &noise);
            assert!(!log.issues.is_empty(), "{enc}");
            let _ = log.render();
        }
        let raw = decode_with_table(&table("Raw", false), &[9, 9, 9]);
        assert_eq!(
            raw.issues,
            vec![
                StreamIssue::Malformed { after: 0 },
                StreamIssue::Abandoned { after: 0 }
            ]
        );
    }

    #[test]
    fn elf_without_table_or_not_an_elf() {
        // The test binary itself is an ELF without a .defmt section.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let log = decode_defmt(&exe, &[1, 2, 3]);
        assert_eq!(log.table, TableStatus::Missing);
        assert!(log.render().contains("no defmt table"), "{}", log.render());
        let log = decode_defmt(b"not an elf", &[]);
        assert!(
            matches!(log.table, TableStatus::Invalid(_)),
            "{:?}",
            log.table
        );
        let log = decode_defmt(&[], &[]);
        assert!(
            matches!(log.table, TableStatus::Invalid(_)),
            "{:?}",
            log.table
        );
    }
}
