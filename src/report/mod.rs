//! The report: one JSON object per line on COM1, prefixed `msifw-report ` (docs/protocol.md). Records
//! stream out as results arrive, so a run that dies midway still leaves what it found.

use alloc::string::String;
use core::fmt::Write;

/// Builds one JSON object, on the heap: a function with many problems or capabilities is reported whole.
#[derive(Debug)]
pub struct Record {
    buf: String,
    first: bool,
}

impl Record {
    /// A record of `kind`.
    pub fn new(kind: &str) -> Record {
        let mut r = Record::object();
        r.str("kind", kind);
        r
    }

    /// A plain JSON object (for array elements).
    pub fn object() -> Record {
        let mut r = Record { buf: String::new(), first: true };
        r.buf.push('{');
        r
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.buf.push(',');
        }
        self.first = false;
        let _ = write!(self.buf, "\"{key}\":");
    }

    /// A string field.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        push_json_str(&mut self.buf, value);
        self
    }

    /// A string field from formatting.
    pub fn fmt(&mut self, key: &str, args: core::fmt::Arguments) -> &mut Self {
        let mut s = String::new();
        let _ = s.write_fmt(args);
        self.str(key, &s)
    }

    /// A number field.
    pub fn num(&mut self, key: &str, value: u64) -> &mut Self {
        self.key(key);
        let _ = write!(self.buf, "{value}");
        self
    }

    /// A boolean field.
    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key);
        self.buf.push_str(if value { "true" } else { "false" });
        self
    }

    /// A null field.
    pub fn null(&mut self, key: &str) -> &mut Self {
        self.key(key);
        self.buf.push_str("null");
        self
    }

    /// A raw JSON value (an array or object built with [`Array`]).
    pub fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        self.key(key);
        self.buf.push_str(json);
        self
    }

    /// The finished JSON text.
    pub fn finish(&mut self) -> &str {
        self.buf.push('}');
        &self.buf
    }

    /// Finishes and prints the record on COM1.
    pub fn emit(&mut self) {
        let line = self.finish();
        crate::println!("msifw-report {}", line);
    }
}

/// A JSON array being built.
#[derive(Debug)]
pub struct Array {
    buf: String,
}

impl Array {
    /// `[`.
    pub fn new() -> Array {
        let mut buf = String::new();
        buf.push('[');
        Array { buf }
    }

    fn sep(&mut self) {
        if self.buf.len() > 1 {
            self.buf.push(',');
        }
    }

    /// A number element.
    pub fn num(&mut self, v: u64) {
        self.sep();
        let _ = write!(self.buf, "{v}");
    }

    /// A string element.
    pub fn str(&mut self, v: &str) {
        self.sep();
        push_json_str(&mut self.buf, v);
    }

    /// A finished record as an element (an object).
    pub fn object(&mut self, record: &str) {
        self.sep();
        self.buf.push_str(record);
    }

    /// `]` and the text.
    pub fn finish(&mut self) -> &str {
        self.buf.push(']');
        &self.buf
    }
}

impl Default for Array {
    fn default() -> Self {
        Self::new()
    }
}

/// Appends `s` as a JSON string literal (quotes, backslashes and control characters escaped).
pub fn push_json_str(buf: &mut String, s: &str) {
    buf.push('"');
    for c in s.chars() {
        let escaped = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            _ => None,
        };
        match escaped {
            Some(e) => {
                buf.push_str(e);
            }
            None if (c as u32) < 0x20 => {
                let _ = write!(buf, "\\u{:04x}", c as u32);
            }
            None => {
                buf.push(c);
            }
        }
    }
    buf.push('"');
}

/// Scenario result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Passed.
    Pass,
    /// Failed.
    Fail,
    /// Not run, with the reason in the detail.
    Skip,
}

impl Outcome {
    /// Report name.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Skip => "skip",
        }
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
            Outcome::Pass => self.passed += 1,
            Outcome::Fail => self.failed += 1,
            Outcome::Skip => self.skipped += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_valid_json_with_escapes() {
        let mut r = Record::new("scenario");
        r.str("name", "a \"quoted\" \\ name\n").num("n", 5).bool("control", false).null("bdf");
        let mut a = Array::new();
        a.num(1);
        a.str("x");
        r.raw("list", a.finish());
        assert_eq!(
            r.finish(),
            r#"{"kind":"scenario","name":"a \"quoted\" \\ name\n","n":5,"control":false,"bdf":null,"list":[1,"x"]}"#
        );
        let mut c = Record::new("x");
        c.str("s", "\u{1}");
        assert_eq!(c.finish(), r#"{"kind":"x","s":"\u0001"}"#);
    }

    #[test]
    fn long_records_are_kept_whole() {
        // The .bss buffers cut a record at 4096 bytes and an array at 2048 (the host then rejected the
        // line): a function with many problems.
        let mut problems = Array::new();
        for i in 0..200 {
            problems.str(&std::format!("problem {i} with a long explanation of what went wrong"));
        }
        let mut r = Record::new("function");
        r.fmt("detail", format_args!("{}", "x".repeat(1000))).raw("problems", problems.finish());
        let text = r.finish();
        assert!(text.len() > 10_000 && text.ends_with("wrong\"]}"), "{}", &text[text.len() - 40..]);
    }

    #[test]
    fn summary_counts() {
        let mut s = Summary::default();
        for o in [Outcome::Pass, Outcome::Pass, Outcome::Fail, Outcome::Skip] {
            s.add(o);
        }
        assert_eq!(s, Summary { passed: 2, failed: 1, skipped: 1 });
    }
}
