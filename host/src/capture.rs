//! Serial captures from a machine without QEMU (`cargo run -- decode`): the raw COM1 text (with the
//! report records) and, if the machine has a second port, the raw COM2 defmt stream, turned into the
//! same [`RunOutcome`] a QEMU boot gives (through [`crate::run::outcome`]).
//!
//! A capture is not what QEMU's stdout is: a boot loader prints before the firmware (GRUB's menu,
//! screen-clearing escapes), terminal programs add escapes and turn `\n` into `\r\r\n`, line noise or
//! a wrong baud rate gives bytes that are not UTF-8, and the user may stop capturing in the middle of
//! a line. [`split_com1`] cleans that up and says what it removed.

use std::fmt;
use std::fs;
use std::io;
use std::path::PathBuf;

use crate::exit::{is_fatal_line, judge_capture};
use crate::firmware::{default_elf_path, firmware_profile_is_release};
use crate::report::{line_records, RecordError};
use msifw_proto::frame::{FrameError, MARK};
use crate::run::{outcome, CaptureSource, Com1Log, RunOutcome, Source};

/// What to decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeConfig {
    /// The COM1 capture.
    pub com1: PathBuf,
    /// The COM2 capture (raw defmt bytes), if the machine has a second port.
    pub com2: Option<PathBuf>,
    /// The firmware ELF whose defmt table decodes COM2; `None` for the one the launcher builds
    /// ([`default_elf_path`], release when the launcher is).
    pub elf: Option<PathBuf>,
    /// Print the COM1 lines (`com1| `) and records (`report| `) as a QEMU boot prints them.
    pub echo: bool,
}

impl DecodeConfig {
    /// Decode `com1` alone, with the default ELF, without echo.
    pub fn new(com1: impl Into<PathBuf>) -> DecodeConfig {
        DecodeConfig { com1: com1.into(), com2: None, elf: None, echo: false }
    }

    /// The ELF this decode reads: the one given, or [`default_elf_path`].
    pub fn elf_path(&self) -> PathBuf {
        self.elf.clone().unwrap_or_else(|| default_elf_path(firmware_profile_is_release()))
    }
}

/// Why a capture could not be decoded at all (what is wrong inside a capture is a finding of the
/// outcome instead).
#[derive(Debug)]
pub enum CaptureError {
    /// A capture file could not be read.
    Read {
        /// `COM1` or `COM2`.
        port: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// There is no ELF to decode COM2 with.
    ElfNotFound {
        /// The path tried.
        path: PathBuf,
        /// Whether it was the launcher's default (no `--elf`).
        default: bool,
    },
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Read { port, path, source } => {
                write!(f, "could not read the {port} capture {}: {source}", path.display())
            }
            CaptureError::ElfNotFound { path, default: true } => write!(
                f,
                "the firmware ELF {} does not exist: pass the ELF of the image that ran with --elf \
                 (an image built beside FILE.iso is FILE.elf), or build it with \
                 `cargo build -p msifw --target x86_64-unknown-none{}`",
                path.display(),
                if firmware_profile_is_release() { " --release" } else { "" }
            ),
            CaptureError::ElfNotFound { path, default: false } => {
                write!(f, "the ELF {} does not exist", path.display())
            }
        }
    }
}

impl std::error::Error for CaptureError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CaptureError::Read { source, .. } => Some(source),
            CaptureError::ElfNotFound { .. } => None,
        }
    }
}

/// A COM1 capture split into the firmware's lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Com1Capture {
    /// The lines from the firmware's first one on, line ends and terminal escapes removed.
    pub lines: Vec<String>,
    /// Whether a line of the firmware was found (one that starts with `msifw-report `, `msifw: ` or
    /// the banner `msifw VERSION: `). Without one, `lines` holds every line.
    pub firmware_found: bool,
    /// Lines left out before the firmware's first one (boot loader output), counting that first line
    /// when something came before the firmware's text on it.
    pub skipped_lines: usize,
    /// Bytes left out before the firmware's first line, that line's own prefix included.
    pub skipped_bytes: usize,
    /// Terminal escape sequences and control characters removed from `lines`.
    pub controls: usize,
    /// Lines in `lines` with bytes that are not UTF-8 (replaced with U+FFFD).
    pub not_utf8: usize,
    /// The last line has no line end: the capture stopped inside it.
    pub cut_off: bool,
    /// Earlier cold boots in the capture (the machine rebooted and the firmware ran again), left out:
    /// only the last boot is decoded. A restart in place (`crash-restart`) is part of its run.
    pub earlier_boots: usize,
}

impl Com1Capture {
    /// What was cleaned out, for the user (not problems of the firmware).
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.skipped_bytes > 0 {
            notes.push(format!(
                "{} byte(s) in {} line(s) before the firmware's first line left out (boot loader output)",
                self.skipped_bytes, self.skipped_lines
            ));
        }
        if self.controls > 0 {
            notes.push(format!("{} terminal escape sequence(s) or control character(s) removed", self.controls));
        }
        if self.not_utf8 > 0 {
            notes.push(format!(
                "{} line(s) hold bytes that are not UTF-8, shown as U+FFFD (line noise, or a baud rate other \
                 than the firmware's 115200 8N1)",
                self.not_utf8
            ));
        }
        if self.cut_off {
            notes.push("the last line has no line end: the capture stopped inside it".to_string());
        }
        if self.earlier_boots > 0 {
            notes.push(format!(
                "{} earlier boot(s) of the firmware in the capture left out: the last boot is decoded (a COM2 capture \
                 should then hold the last boot only)",
                self.earlier_boots
            ));
        }
        notes
    }
}

/// Splits a raw COM1 capture into the firmware's lines: at `\n` (or at `\r` in a capture without
/// any `\n`), line ends and terminal escapes removed, bytes that are not UTF-8 replaced, and the
/// lines before the firmware's first one left out. Never fails: garbage comes out as lines that hold
/// no record.
pub fn split_com1(bytes: &[u8]) -> Com1Capture {
    let mut cap = Com1Capture::default();
    if bytes.is_empty() {
        return cap;
    }
    let sep = if !bytes.contains(&b'\n') && bytes.contains(&b'\r') { b'\r' } else { b'\n' };
    let mut raw: Vec<&[u8]> = bytes.split(|&b| b == sep).collect();
    // After a final separator `split` yields an empty piece; otherwise the last line is cut off,
    // unless it ends in the `\r` of a `\r\n` the capture stopped between.
    if raw.last().is_some_and(|l| l.is_empty()) {
        raw.pop();
    } else {
        cap.cut_off = !raw.last().is_some_and(|l| l.ends_with(b"\r"));
    }
    let mut before: Vec<(usize, String, usize, bool)> = Vec::new();
    for line in raw {
        let (text, controls, not_utf8) = clean_line(line);
        if !cap.firmware_found {
            if let Some(start) = firmware_start(&text) {
                cap.firmware_found = true;
                cap.skipped_bytes = before.iter().map(|(len, ..)| len + 1).sum::<usize>() + start;
                cap.skipped_lines = before.len() + usize::from(start > 0);
                before.clear();
                cap.controls += controls;
                cap.lines.push(text[start..].to_string());
            } else {
                before.push((line.len(), text, controls, not_utf8));
            }
            continue;
        }
        cap.controls += controls;
        cap.not_utf8 += usize::from(not_utf8);
        cap.lines.push(text);
    }
    // No firmware line anywhere: keep everything, there is nothing to tell noise from.
    for (_, text, controls, not_utf8) in before {
        cap.controls += controls;
        cap.not_utf8 += usize::from(not_utf8);
        cap.lines.push(text);
    }
    // The machine rebooted and the firmware ran again: decode the last run.
    let boots: Vec<usize> = cap.lines.iter().enumerate().filter(|(_, l)| is_cold_boot_banner(l)).map(|(i, _)| i).collect();
    if let Some(&last) = boots.last().filter(|_| boots.len() > 1) {
        cap.earlier_boots = boots.len() - 1;
        cap.lines.drain(..last);
    }
    cap
}

/// Whether a line the capture stopped in ends inside a record: a frame without its closing mark (even
/// one shorter than a whole frame can be), or a JSON record of a firmware before the frames that does not
/// parse.
fn ends_inside_a_record(line: &str) -> bool {
    match line_records(line).last() {
        Some(Err(RecordError::Frame(FrameError::Cut) | RecordError::Json(_))) => return true,
        Some(Ok(_)) if line.ends_with(MARK as char) => return false,
        _ => {}
    }
    line.rsplit_once(MARK as char).is_some_and(|(_, tail)| tail.bytes().all(msifw_proto::frame::is_frame_char))
}

/// The firmware's banner of a cold boot, `msifw VERSION: booting` (src/firmware.rs); a restart in place
/// says `restarted in place` instead.
fn is_cold_boot_banner(line: &str) -> bool {
    line.strip_prefix("msifw ").and_then(|r| r.split_once(": ")).is_some_and(|(version, what)| !version.contains(' ') && what == "booting")
}

/// Where the firmware's output starts in a cleaned line: at `msifw-report `, `msifw: `, the banner
/// `msifw VERSION: ` (src/firmware.rs), or a whole frame (with the verdict words before it), whatever a
/// boot loader left before it on the same line.
pub(crate) fn firmware_start(line: &str) -> Option<usize> {
    firmware_text_start(line).or_else(|| frame_start(line))
}

/// Where the first whole frame in `line` starts, or the verdict before it (`PASS `, `FAIL `, `SKIP `).
fn frame_start(line: &str) -> Option<usize> {
    let mut at = 0;
    for piece in msifw_proto::frame::split(line) {
        match piece {
            msifw_proto::frame::Piece::Text(t) => at += t.len(),
            msifw_proto::frame::Piece::Frame(Ok(_)) => {
                let head = ["PASS ", "FAIL ", "SKIP "].iter().filter_map(|l| line[..at].rfind(l)).max();
                return Some(head.unwrap_or(at));
            }
            msifw_proto::frame::Piece::Frame(Err(_)) => return None,
        }
    }
    None
}

fn firmware_text_start(line: &str) -> Option<usize> {
    line.match_indices("msifw").map(|(i, _)| i).find(|&i| {
        let rest = &line[i + "msifw".len()..];
        if rest.starts_with("-report ") || rest.starts_with(": ") {
            return true;
        }
        // The banner: one word (the version) between `msifw ` and `: `.
        rest.strip_prefix(' ')
            .and_then(|r| r.split_once(": "))
            .is_some_and(|(word, _)| !word.is_empty() && !word.contains(char::is_whitespace))
    })
}

/// One raw line as text: trailing `\r`s removed, bytes that are not UTF-8 replaced, terminal escape
/// sequences (CSI `ESC [ ... final`, OSC `ESC ] ... BEL`, two- and three-byte `ESC x`) and other
/// control characters but tab removed. Returns the text, the number removed, and whether the line
/// was not UTF-8.
pub(crate) fn clean_line(raw: &[u8]) -> (String, usize, bool) {
    let mut end = raw.len();
    while end > 0 && raw[end - 1] == b'\r' {
        end -= 1;
    }
    let text = String::from_utf8_lossy(&raw[..end]);
    let not_utf8 = matches!(text, std::borrow::Cow::Owned(_));
    let mut out = String::with_capacity(text.len());
    let mut removed = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            removed += 1;
            match chars.next() {
                // CSI: parameters and intermediates up to a final byte in 0x40..=0x7e.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('\u{40}'..='\u{7e}').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ST (`ESC \`).
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                // Character set designations take one more byte (`ESC ( B`).
                Some('(' | ')' | '*' | '+') => {
                    chars.next();
                }
                _ => {}
            }
        } else if c.is_control() && c != '\t' {
            removed += 1;
        } else {
            out.push(c);
        }
    }
    (out, removed, not_utf8)
}

/// Reads the captures and decodes them into the outcome a QEMU boot of the same firmware gives:
/// report, defmt log (with the ELF's table, when there is a COM2 capture) and verdict
/// ([`judge_capture`]: the report decides; a panic line on COM1 is [`crate::Exit::Panic`]).
pub fn decode_capture(cfg: &DecodeConfig) -> Result<RunOutcome, CaptureError> {
    let read = |port, path: &PathBuf| {
        fs::read(path).map_err(|source| CaptureError::Read { port, path: path.clone(), source })
    };
    let com1 = read("COM1", &cfg.com1)?;
    let (com2, elf) = match &cfg.com2 {
        Some(path) => {
            let com2 = read("COM2", path)?;
            let elf = cfg.elf_path();
            if !elf.is_file() {
                return Err(CaptureError::ElfNotFound { path: elf, default: cfg.elf.is_none() });
            }
            (com2, Some(fs::canonicalize(&elf).unwrap_or(elf)))
        }
        None => (Vec::new(), None),
    };
    Ok(decode_bytes(com1, com2, elf, cfg))
}

/// [`decode_capture`] once the files are read.
fn decode_bytes(com1_bytes: Vec<u8>, com2: Vec<u8>, elf: Option<PathBuf>, cfg: &DecodeConfig) -> RunOutcome {
    let cap = split_com1(&com1_bytes);
    let mut problems = Vec::new();
    let mut lines = cap.lines.as_slice();
    if cap.cut_off {
        if let Some((last, whole)) = lines.split_last() {
            // A record cut off is not a malformed record of the firmware: leave it out and say why.
            if ends_inside_a_record(last) {
                problems.push(format!(
                    "the COM1 capture ends inside a report record ({} bytes, no line end): it was cut off",
                    last.len()
                ));
                lines = whole;
            }
        }
    }
    if com1_bytes.is_empty() {
        problems.push("the COM1 capture is empty (0 bytes)".to_string());
    } else if !cap.firmware_found {
        problems.push(
            "the COM1 capture holds no firmware output (no line starts with `msifw`): check that it is \
             COM1 (I/O 0x3F8), at 115200 8N1, captured from before the firmware started"
                .to_string(),
        );
    }
    let fatal = lines.iter().find(|l| is_fatal_line(l)).cloned();
    let mut log = Com1Log::new(cfg.echo);
    for line in lines {
        log.push_line(line);
    }
    log.bytes = com1_bytes;
    // The host did not launch what the capture came from (a machine, Bochs): no known deviation applies.
    let unknown = "a serial capture: the host did not launch this platform and cannot tell its emulator, version or accelerator";
    crate::deviations::apply_if_relevant(&mut log.report, || crate::deviations::HostPlatform::Unknown(unknown.into()));
    let source = Source::Capture(CaptureSource { com1: cfg.com1.clone(), com2: cfg.com2.clone(), notes: cap.notes() });
    outcome(log, com2, elf, |report, output| judge_capture(report, output, fatal.as_deref(), problems), source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::TableStatus;
    use crate::exit::Exit;
    use crate::qemu::ScratchDir;
    use crate::report::tests::SAMPLE;

    /// The sample report as the firmware prints it: a banner, then the records, CRLF line ends.
    fn firmware_output() -> Vec<u8> {
        let mut out = b"msifw 0.1.0: booting\r\n".to_vec();
        for line in SAMPLE {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    fn decode(com1: &[u8]) -> RunOutcome {
        decode_bytes(com1.to_vec(), Vec::new(), None, &DecodeConfig::new("com1.txt"))
    }

    #[test]
    fn crlf_lines() {
        let cap = split_com1(&firmware_output());
        assert_eq!(cap.lines.len(), SAMPLE.len() + 1);
        assert_eq!(cap.lines[0], "msifw 0.1.0: booting");
        assert_eq!(cap.lines[1], SAMPLE[0]);
        assert!(cap.firmware_found && !cap.cut_off);
        assert_eq!((cap.skipped_bytes, cap.controls, cap.not_utf8), (0, 0, 0));
        assert!(cap.notes().is_empty(), "{:?}", cap.notes());
        // A terminal program's `\r\r\n`, and a capture with `\r` alone.
        let doubled: Vec<u8> = firmware_output().iter().flat_map(|&b| if b == b'\n' { vec![b'\r', b'\n'] } else { vec![b] }).collect();
        assert_eq!(split_com1(&doubled).lines, cap.lines);
        let cr_only: Vec<u8> = firmware_output().into_iter().filter(|&b| b != b'\n').collect();
        assert_eq!(split_com1(&cr_only).lines, cap.lines);

        let o = decode(&firmware_output());
        assert_eq!(o.exit, Exit::Passed, "{}", o.render());
        assert_eq!(o.report.scenarios.len(), 3);
        assert!(o.com1.starts_with("msifw 0.1.0: booting\nmsifw-report "), "{:?}", o.com1);
        assert_eq!(o.com1_bytes, firmware_output());
    }

    #[test]
    fn boot_loader_noise_before_the_first_line() {
        let mut capture = b"\x1b[0m\x1b[30m\x1b[40m\x1b[2J\x1b[01;01H\x1b[0m\x1b[37m\x1b[40mGNU GRUB  version 2.06\r\n".to_vec();
        capture.extend_from_slice(b"*msifw interrupts\r\n  Booting `msifw'\r\n\xff\xfe\r\n\x1b[2J\x1b[H");
        capture.extend(firmware_output());
        let cap = split_com1(&capture);
        assert_eq!(cap.lines, split_com1(&firmware_output()).lines);
        assert_eq!(cap.skipped_lines, 4);
        assert_eq!(cap.not_utf8, 0, "noise that is left out is not counted");
        assert!(cap.notes()[0].contains("4 line(s) before the firmware's first line"), "{:?}", cap.notes());
        // Noise on the firmware's first line itself.
        let cap = split_com1(&[b"GRUB  ".as_slice(), &firmware_output()].concat());
        assert_eq!((cap.skipped_lines, cap.skipped_bytes), (1, 6));
        assert_eq!(cap.lines[0], "msifw 0.1.0: booting");

        let o = decode(&capture);
        assert_eq!(o.exit, Exit::Passed, "{}", o.render());
        assert!(o.render().contains("capture: "), "{}", o.render());
        assert_eq!(o.report, decode(&firmware_output()).report);
    }

    #[test]
    fn escapes_and_bytes_that_are_not_utf8_inside_the_output() {
        let mut capture = firmware_output();
        let at = capture.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
        capture.splice(at..at, b"\x1b]0;title\x07\x1b(Bmsifw: note \x1b[1mbold\x1b[0m \xc3\x28\r\n".iter().copied());
        let cap = split_com1(&capture);
        assert_eq!(cap.lines[1], "msifw: note bold \u{fffd}(");
        assert_eq!((cap.controls, cap.not_utf8), (4, 1));
        let o = decode(&capture);
        assert_eq!(o.exit, Exit::Passed, "text noise does not touch the report: {}", o.render());
        assert!(o.render().contains("not UTF-8"), "{}", o.render());
    }

    #[test]
    fn cut_off_last_line() {
        let full = firmware_output();
        // Cut inside the `end` record: the report is incomplete, and the finding says why.
        let cut = &full[..full.len() - 10];
        let cap = split_com1(cut);
        assert!(cap.cut_off);
        let o = decode(cut);
        assert_eq!(o.exit, Exit::Failed);
        assert!(o.report.malformed.is_empty(), "a cut-off record is not a malformed one");
        assert!(o.findings.iter().any(|f| f.contains("ends inside a report record")), "{:?}", o.findings);
        assert!(o.findings.iter().any(|f| f.contains("no `end` record")), "{:?}", o.findings);
        // Cut between `\r` and `\n`, or just before `\r\n`: the record is whole.
        assert!(!split_com1(&full[..full.len() - 1]).cut_off);
        let o = decode(&full[..full.len() - 2]);
        assert_eq!(o.exit, Exit::Passed, "{}", o.render());
        assert!(o.render().contains("no line end"));
        // A text line cut off stays a text line.
        let mut text = full.clone();
        text.extend_from_slice(b"msifw: after the en");
        let o = decode(&text);
        assert!(o.com1.ends_with("msifw: after the en\n"));
        assert_eq!(o.exit, Exit::Passed, "{}", o.render());
    }

    #[test]
    fn garbage_and_empty_captures() {
        let noise: Vec<u8> = (0..65536u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let o = decode(&noise);
        assert_eq!(o.exit, Exit::Failed);
        assert!(o.findings[0].contains("no firmware output"), "{:?}", o.findings);
        assert!(o.report.is_empty());
        let _ = o.render();
        let _ = o.to_json();

        let o = decode(b"");
        assert_eq!(o.exit, Exit::Failed);
        assert_eq!(o.findings[0], "the COM1 capture is empty (0 bytes)");
        assert!(o.render().contains("defmt: no COM2 capture"), "{}", o.render());
        // Every split of arbitrary bytes holds.
        for len in 0..64 {
            let _ = decode(&noise[..len]);
        }
    }

    #[test]
    fn panic_line_is_a_panic() {
        let mut capture = b"msifw 0.1.0: booting\r\n\r\nmsifw: panic: panicked at src/app/mod.rs:1:1:\r\nboom\r\n".to_vec();
        capture.extend_from_slice(b"\x1b[2J");
        let o = decode(&capture);
        assert_eq!(o.exit, Exit::Panic, "{}", o.render());
        assert!(o.findings[0].contains("msifw: panic: panicked at"), "{:?}", o.findings);
    }

    #[test]
    fn files_elf_and_json() {
        let dir = ScratchDir::create().unwrap();
        let com1 = dir.path().join("com1.txt");
        let com2 = dir.path().join("com2.bin");
        fs::write(&com1, firmware_output()).unwrap();
        fs::write(&com2, [1, 2, 3]).unwrap();

        let missing = DecodeConfig::new(dir.path().join("nope.txt"));
        let err = decode_capture(&missing).unwrap_err();
        assert!(matches!(err, CaptureError::Read { port: "COM1", .. }), "{err:?}");
        assert!(err.to_string().contains("nope.txt"), "{err}");

        let mut cfg = DecodeConfig::new(&com1);
        cfg.com2 = Some(dir.path().join("nope.bin"));
        assert!(matches!(decode_capture(&cfg), Err(CaptureError::Read { port: "COM2", .. })));
        cfg.com2 = Some(com2.clone());
        cfg.elf = Some(dir.path().join("nope.elf"));
        let err = decode_capture(&cfg).unwrap_err();
        assert!(matches!(err, CaptureError::ElfNotFound { default: false, .. }), "{err:?}");

        // An ELF without a defmt table (this test binary): the report still decodes.
        cfg.elf = Some(std::env::current_exe().unwrap());
        let o = decode_capture(&cfg).unwrap();
        assert_eq!(o.defmt.table, TableStatus::Missing);
        assert_eq!(o.exit, Exit::Passed, "{}", o.render());
        assert!(o.render().contains("no defmt table"), "{}", o.render());
        assert_eq!(o.com2_bytes, [1, 2, 3]);
        let j = o.to_json();
        assert_eq!(j["schema_version"], 2, "users' scripts can tell the document's schema");
        assert_eq!(j["platform"]["source"], "capture");
        assert_eq!(j["platform"]["com1_capture"], com1.display().to_string());
        assert_eq!(j["platform"]["com2_capture"], com2.display().to_string());
        assert!(j["platform"].get("machine").is_none() && j["platform"].get("qemu_command").is_none());
        assert_eq!(j["platform"]["ecam_base"], "0xb0000000");
        assert_eq!(j["exit"], "passed");

        // Without COM2 no ELF is needed, not even the default one.
        let o = decode_capture(&DecodeConfig { elf: Some(dir.path().join("nope.elf")), ..DecodeConfig::new(&com1) }).unwrap();
        assert_eq!((o.defmt.table.clone(), o.elf.clone()), (TableStatus::NoCapture, None));
        assert_eq!(o.to_json()["platform"]["com2_capture"], serde_json::Value::Null);
    }

    /// A version 1 firmware's output (frames) and a version 0 one's (JSON lines) for the same run.
    fn frames_and_json() -> (Vec<u8>, Vec<u8>) {
        let all = crate::report::tests::json_and_wire();
        // platform, a function, a passed scenario, a problem, and the end that counts the one scenario.
        let picked = [0, 2, 4, 7];
        let end = (r#"{"kind":"end","passed":1,"failed":0,"skipped":0}"#, msifw_proto::record::Record::End(msifw_proto::record::End { passed: 1, failed: 0, skipped: 0 }));
        let (mut frames, mut json) = (b"msifw 0.1.0: booting\r\n".to_vec(), b"msifw 0.1.0: booting\r\n".to_vec());
        for (j, w) in picked.iter().map(|&i| &all[i]).chain([&end]) {
            frames.extend(format!("{}\r\n", crate::report::tests::frame_line(w)).bytes());
            json.extend(format!("msifw-report {j}\r\n").bytes());
        }
        (frames, json)
    }

    #[test]
    fn frames_decode_as_the_json_lines_did() {
        let (frames, json) = frames_and_json();
        let o = decode(&frames);
        assert_eq!(o.exit, Exit::Passed, "{}", o.render());
        assert_eq!(o.report, decode(&json).report);
        assert_eq!((o.report.functions.len(), o.report.scenarios.len(), o.report.problems.len()), (1, 1, 1));
        assert!(o.com1.contains("\nPASS 00:02.0 msix-delivery ~"), "the verdict in words: {}", o.com1);

        // Behind a boot loader's screen, through a terminal program's `\r\r\n`.
        let mut noisy = b"\x1b[2J\x1b[HGNU GRUB  version 2.06 ~menu~\r\r\n\xff\r\r\n".to_vec();
        noisy.extend(frames.iter().flat_map(|&b| if b == b'\n' { vec![b'\r', b'\n'] } else { vec![b] }));
        let n = decode(&noisy);
        assert_eq!((n.exit, &n.report), (Exit::Passed, &o.report), "{}", n.render());

        // A capture started after the banner: the first frame is where the firmware's output starts.
        let late = &frames[frames.windows(2).position(|w| w == b"\r\n").unwrap() + 2..];
        let l = decode(&[b"garbage ".as_slice(), late].concat());
        assert_eq!((l.exit, &l.report), (Exit::Passed, &o.report), "{}", l.render());
        assert!(split_com1(&[b"garbage ".as_slice(), late].concat()).firmware_found);
    }

    #[test]
    fn a_frame_cut_off_by_the_end_of_the_capture_or_a_crash() {
        let (frames, _) = frames_and_json();
        let full = decode(&frames);
        // The capture stops inside the `end` frame: noted, not a malformed record; what came before stays.
        let cut = &frames[..frames.len() - 8];
        let o = decode(cut);
        assert_eq!(o.exit, Exit::Failed);
        assert!(o.report.malformed.is_empty(), "{:?}", o.report.malformed);
        assert!(o.findings.iter().any(|f| f.contains("ends inside a report record")), "{:?}", o.findings);
        assert!(o.findings.iter().any(|f| f.contains("no `end` record")), "{:?}", o.findings);
        assert_eq!(o.report.scenarios, full.report.scenarios);

        // The firmware crashes inside a frame (its panic line starts a line of its own): the records
        // before it are kept, the panic is found, the cut frame is a malformed record.
        let at = frames.windows(5).rposition(|w| w == b"PASS ").unwrap() + 40;
        let mut crashed = frames[..at].to_vec();
        crashed.extend_from_slice(b"\r\nmsifw: panic: panicked at src/app/mod.rs:1:1:\r\nboom\r\n");
        let c = decode(&crashed);
        assert_eq!(c.exit, Exit::Panic, "{}", c.render());
        assert_eq!(c.report.functions, full.report.functions);
        assert_eq!(c.report.malformed.len(), 1, "{:?}", c.report.malformed);
        assert!(c.report.malformed[0].error.contains("cut off"), "{:?}", c.report.malformed);
    }

    #[test]
    fn only_the_last_of_several_boots_is_decoded() {
        let capture = b"GRUB\r\nmsifw 0.1.0: booting\r\nmsifw-report {\"kind\":\"end\",\"passed\":1,\"failed\":0,\"skipped\":0}\r\n\
msifw 0.1.0: booting\r\nmsifw 0.1.0: restarted in place (devices untouched)\r\nlast\r\n";
        let cap = split_com1(capture);
        assert_eq!(cap.earlier_boots, 1);
        assert_eq!(cap.lines, ["msifw 0.1.0: booting", "msifw 0.1.0: restarted in place (devices untouched)", "last"]);
        assert!(cap.notes().iter().any(|n| n.contains("1 earlier boot")));
        assert_eq!(split_com1(b"msifw 0.1.0: booting\nx\n").earlier_boots, 0);
    }

}
