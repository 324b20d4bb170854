//! Frames: how a [`Record`] travels on COM1 among text lines (docs/protocol.md).
//!
//! A frame is `~`, the base85 (the Z85 alphabet, a last group of `n` bytes as `n + 1` characters) of
//! `[VERSION] ++ postcard(record) ++ crc16(both, little-endian)`, and `~`. It is printable ASCII without spaces, so it passes through
//! terminals, capture programs that rewrite line ends, and a person's serial console unharmed, and the
//! host finds it anywhere in a line of boot-loader text. The firmware puts each frame on a line of its
//! own (a scenario's after its human-readable verdict). A frame that is cut off, damaged or of another
//! version is reported as such and never takes the text or the frames after it with it.

use alloc::vec::Vec;

use crate::record::Record;

/// Why a record could not be encoded (postcard's error).
pub type EncodeError = postcard::Error;

/// The protocol version, the first byte of every frame. Version 0 was the JSON lines
/// (`msifw-report {...}`) of msifw before this crate; version 1 the frames before the `platform` record's
/// `cpus` and the host-only outcomes `xfail` and `xpass`.
pub const VERSION: u8 = 2;

/// The oldest frame version [`decode`] reads: a version 1 frame is a version 2 one whose `platform`
/// record has no `cpus` (read as an empty list: topology unknown), so old captures still decode.
pub const OLDEST: u8 = 1;

/// The byte before and after a frame's base85.
pub const MARK: u8 = b'~';

/// The fewest base85 characters a frame has (the smallest record, `end`, with version and CRC): a `~`
/// before fewer is text.
pub const MIN_CHARS: usize = 9;

/// Z85's digits (ZeroMQ RFC 32): printable, without space, quotes, backslash or `~`.
const ALPHABET: &[u8; 85] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/// Appends the base85 of `raw`: each group of four bytes (big-endian) as five digits, most significant
/// first; a last group of `n` bytes is padded with zeros and its first `n + 1` digits kept.
fn base85(raw: &[u8], out: &mut Vec<u8>) {
    for chunk in raw.chunks(4) {
        let mut group = [0u8; 4];
        group[..chunk.len()].copy_from_slice(chunk);
        let n = u32::from_be_bytes(group);
        let digits = [
            n / 85u32.pow(4),
            n / 85u32.pow(3),
            n / 85u32.pow(2),
            n / 85,
            n,
        ]
        .map(|d| ALPHABET[(d % 85) as usize]);
        out.extend_from_slice(&digits[..chunk.len() + 1]);
    }
}

/// The bytes whose [`base85`] `chars` are, or `None` when they are not the base85 of any (a group
/// over 2^32, a dangling digit, or a last group that does not encode back to itself).
fn unbase85(chars: &[u8]) -> Option<Vec<u8>> {
    if chars.len() % 5 == 1 {
        return None;
    }
    let mut raw = Vec::with_capacity(chars.len() * 4 / 5);
    for chunk in chars.chunks(5) {
        // A short group is padded with the highest digit, so that its kept bytes come out whole.
        let mut n = 0u64;
        for i in 0..5 {
            n = n * 85 + chunk.get(i).map_or(Some(84), |&c| digit(c))? as u64;
        }
        let bytes = u32::try_from(n).ok()?.to_be_bytes();
        raw.extend_from_slice(&bytes[..chunk.len() - 1]);
    }
    let mut again = Vec::with_capacity(chars.len());
    base85(&raw, &mut again);
    (again == chars).then_some(raw)
}

/// CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xFFFF, no reflection).
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc = 0xffffu16;
    for &b in bytes {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Appends the frame of `record` (marks included, no line end) to `out`.
pub fn encode(record: &Record, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let mut raw = Vec::with_capacity(64);
    raw.push(VERSION);
    let mut raw = postcard::serialize_with_flavor(record, Bytes(raw))?;
    let crc = crc16(&raw);
    raw.extend_from_slice(&crc.to_le_bytes());
    out.reserve(raw.len() * 5 / 4 + 4);
    out.push(MARK);
    base85(&raw, out);
    out.push(MARK);
    Ok(())
}

/// Postcard's output: a `Vec` whose writes are calls, not inlined into every field of every record (the
/// firmware image is smaller by several kilobytes so).
struct Bytes(Vec<u8>);

impl postcard::ser_flavors::Flavor for Bytes {
    type Output = Vec<u8>;

    #[inline(never)]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    #[inline(never)]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.0)
    }
}

/// Whether `c` can be part of a frame's characters (between its marks).
pub fn is_frame_char(c: u8) -> bool {
    digit(c).is_some()
}

fn digit(c: u8) -> Option<u32> {
    ALPHABET.iter().position(|&d| d == c).map(|d| d as u32)
}

/// Why a frame found in the text gave no record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// No closing `~`: the output stopped inside the frame (a crash, a capture cut off).
    Cut,
    /// The characters do not add up to whole bytes, or the CRC does not match: damaged on the way.
    Damaged,
    /// A frame of another protocol version (a firmware and a host tool of different versions).
    Version(u8),
    /// The bytes are not a record of this version (with a matching CRC: the two ends disagree).
    Record(postcard::Error),
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrameError::Cut => f.write_str("frame cut off (no closing `~`)"),
            FrameError::Damaged => f.write_str("frame damaged (its CRC does not match)"),
            FrameError::Version(v) => write!(
                f,
                "frame of protocol version {v}, this tool reads versions {OLDEST} to {VERSION}"
            ),
            FrameError::Record(e) => write!(f, "frame is not a version {VERSION} record: {e}"),
        }
    }
}

/// The record in a frame's base85 (without the marks).
pub fn decode(chars: &[u8]) -> Result<Record<'static>, FrameError> {
    let raw = unbase85(chars).ok_or(FrameError::Damaged)?;
    let Some(body_len) = raw.len().checked_sub(2).filter(|&n| n > 0) else {
        return Err(FrameError::Damaged);
    };
    let (body, crc) = raw.split_at(body_len);
    if crc16(body) != u16::from_le_bytes([crc[0], crc[1]]) {
        return Err(FrameError::Damaged);
    }
    let record = match body[0] {
        VERSION => postcard::take_from_bytes::<Record>(&body[1..]),
        1 => v1::take(&body[1..]),
        v => return Err(FrameError::Version(v)),
    };
    match record {
        Ok((record, [])) => Ok(record),
        Ok(_) => Err(FrameError::Record(postcard::Error::DeserializeBadEncoding)),
        Err(e) => Err(FrameError::Record(e)),
    }
}

/// Version 1 records: the same as version 2 but for the `platform` record, which had no `cpus`, and the
/// `function` record, which had no `vector_cpus`.
mod v1 {
    use alloc::vec::Vec;

    use serde::Deserialize;

    use crate::record::{Bar, BarAssignment, Bdf, Capability, ConfigAccess, FinalState, Function, IntxRoute, IrqMode, Outcome, Platform, Record, Text};

    /// The version 1 `function` record, field for field.
    #[derive(Deserialize)]
    struct FunctionV1<'a> {
        bdf: Bdf,
        vendor: u16,
        device: u16,
        class: u32,
        header_type: u8,
        bars: Vec<Bar>,
        capabilities: Vec<Capability<'a>>,
        irq_mode: IrqMode,
        modes_offered: Vec<IrqMode>,
        irq_reason: Option<Text<'a>>,
        intx: Option<IntxRoute<'a>>,
        vectors: Vec<u8>,
        interrupts: u64,
        intx_redeliveries: u64,
        driver: Option<Text<'a>>,
        problems: Vec<Text<'a>>,
        final_state: FinalState,
    }

    /// The version 1 `platform` record, field for field.
    #[derive(Deserialize)]
    struct PlatformV1<'a> {
        apic_id: u32,
        x2apic: bool,
        config_access: ConfigAccess,
        ioapics: u32,
        cmdline: Text<'a>,
        boot: Text<'a>,
        loader: Option<Text<'a>>,
        bar_assignment: BarAssignment<'a>,
        timer_fence: Text<'a>,
        intx_routing: Text<'a>,
        config_reason: Text<'a>,
        root_source: Text<'a>,
        root_buses: Text<'a>,
    }

    /// A version 1 record from its postcard bytes (after the version byte), and the bytes after it.
    pub(super) fn take(bytes: &[u8]) -> postcard::Result<(Record<'static>, &[u8])> {
        // The `function` record's tag is 1, one varint byte.
        if bytes.first() == Some(&1) {
            let (f, rest) = postcard::take_from_bytes::<FunctionV1>(&bytes[1..])?;
            let function = Function {
                bdf: f.bdf,
                vendor: f.vendor,
                device: f.device,
                class: f.class,
                header_type: f.header_type,
                bars: f.bars,
                capabilities: f.capabilities,
                irq_mode: f.irq_mode,
                modes_offered: f.modes_offered,
                irq_reason: f.irq_reason,
                intx: f.intx,
                vectors: f.vectors,
                interrupts: f.interrupts,
                intx_redeliveries: f.intx_redeliveries,
                driver: f.driver,
                problems: f.problems,
                final_state: f.final_state,
                vector_cpus: Vec::new(),
            };
            return Ok((Record::Function(function), rest));
        }
        // The `platform` record's tag is 0, one varint byte.
        if bytes.first() != Some(&0) {
            let (record, rest) = postcard::take_from_bytes::<Record>(bytes)?;
            // Version 1 had three outcomes.
            if let Record::Scenario(s) = &record {
                if matches!(s.result, Outcome::Xfail | Outcome::Xpass) {
                    return Err(postcard::Error::DeserializeBadEnum);
                }
            }
            return Ok((record, rest));
        }
        let (p, rest) = postcard::take_from_bytes::<PlatformV1>(&bytes[1..])?;
        let platform = Platform {
            apic_id: p.apic_id,
            x2apic: p.x2apic,
            config_access: p.config_access,
            ioapics: p.ioapics,
            cmdline: p.cmdline,
            boot: p.boot,
            loader: p.loader,
            bar_assignment: p.bar_assignment,
            timer_fence: p.timer_fence,
            intx_routing: p.intx_routing,
            config_reason: p.config_reason,
            root_source: p.root_source,
            root_buses: p.root_buses,
            cpus: Vec::new(),
        };
        Ok((Record::Platform(platform), rest))
    }
}

/// A piece of a line: text, or a frame (with the record it holds or why it holds none).
// Pieces are short-lived scan results, taken apart at once.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Text between frames.
    Text(&'a str),
    /// A frame.
    Frame(Result<Record<'static>, FrameError>),
}

/// Splits one line of text into text and frames, in order. Never fails: text that only looks like the
/// start of a frame stays text, and a bad frame is a [`Piece::Frame`] with its error, after which the
/// scan goes on.
pub fn split(line: &str) -> Vec<Piece<'_>> {
    let bytes = line.as_bytes();
    let mut pieces = Vec::new();
    let (mut text_from, mut at) = (0, 0);
    while let Some(start) = bytes[at..].iter().position(|&b| b == MARK).map(|i| at + i) {
        let run = bytes[start + 1..]
            .iter()
            .take_while(|&&b| digit(b).is_some())
            .count();
        if run < MIN_CHARS {
            at = start + 1;
            continue;
        }
        let end = start + 1 + run;
        if start > text_from {
            pieces.push(Piece::Text(&line[text_from..start]));
        }
        if bytes.get(end) == Some(&MARK) {
            let frame = decode(&bytes[start + 1..end]);
            // A damaged frame's closing mark may be the opening one of the next (a frame cut short and
            // followed by another on the same line): look at it again.
            at = if frame == Err(FrameError::Damaged) {
                end
            } else {
                end + 1
            };
            pieces.push(Piece::Frame(frame));
        } else {
            pieces.push(Piece::Frame(Err(FrameError::Cut)));
            at = end;
        }
        text_from = at;
    }
    if text_from < bytes.len() {
        pieces.push(Piece::Text(&line[text_from..]));
    }
    pieces
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::record::*;
    use alloc::string::String;
    use alloc::vec;
    use std::format;

    fn bdf(dev: u8) -> Bdf {
        Bdf {
            bus: 0,
            dev,
            func: 0,
        }
    }

    /// One record of every kind, every optional field both set and not.
    fn every_kind() -> Vec<Record<'static>> {
        let function = Function {
            bdf: bdf(2),
            vendor: 0x8086,
            device: 0x10d3,
            class: 0x020000,
            header_type: 0,
            bars: vec![
                Bar {
                    index: 0,
                    kind: BarKind::Mem32,
                    prefetchable: false,
                    address: 0xfeb0_0000,
                    size: 128 << 10,
                },
                Bar {
                    index: 2,
                    kind: BarKind::Io,
                    prefetchable: false,
                    address: 0xc040,
                    size: 32,
                },
                Bar {
                    index: 4,
                    kind: BarKind::Mem64,
                    prefetchable: true,
                    address: u64::MAX - 0xfff,
                    size: 1 << 40,
                },
            ],
            capabilities: vec![
                Capability {
                    id: 0x11,
                    name: "msix".into(),
                    offset: 0xa0,
                    extended: false,
                },
                Capability {
                    id: 0x1,
                    name: "aer".into(),
                    offset: 0x100,
                    extended: true,
                },
            ],
            irq_mode: IrqMode::Msix,
            modes_offered: vec![IrqMode::Msix, IrqMode::Msi, IrqMode::Intx],
            irq_reason: Some("msix=off on the command line".into()),
            intx: Some(IntxRoute {
                gsi: 22,
                trigger: Trigger::Level,
                polarity: Polarity::Low,
                source: "dsdt".into(),
            }),
            vectors: vec![48, 49, 255],
            vector_cpus: vec![Some(0), Some(3), None],
            interrupts: u64::MAX,
            intx_redeliveries: 3,
            driver: Some("e1000e".into()),
            problems: vec![
                "a problem".into(),
                String::from("ünïcode ~ \"quoted\"\n").into(),
            ],
            final_state: FinalState {
                command: 0x507,
                bus_master: true,
                intx_disabled: true,
                msi_enabled: Some(false),
                msix_enabled: None,
            },
        };
        let bare = Function {
            bars: vec![],
            capabilities: vec![],
            irq_mode: IrqMode::None,
            modes_offered: vec![],
            irq_reason: None,
            intx: None,
            vectors: vec![],
            driver: None,
            problems: vec![],
            ..function.clone()
        };
        let platform = Platform {
            apic_id: 0,
            x2apic: false,
            config_access: ConfigAccess::Ecam(0xb000_0000),
            ioapics: 1,
            cmdline: "oracle scenario=all".into(),
            boot: "pvh".into(),
            loader: None,
            bar_assignment: BarAssignment::BootFirmware,
            timer_fence: "hpet".into(),
            intx_routing: "acpi-prt".into(),
            config_reason: "ECAM from mcfg at 0xb0000000".into(),
            root_source: "acpi".into(),
            root_buses: "00-ff PCI0".into(),
            cpus: vec![],
        };
        let other_platform = Platform {
            apic_id: u32::MAX,
            x2apic: true,
            config_access: ConfigAccess::Port,
            loader: Some("GRUB 2.06".into()),
            bar_assignment: BarAssignment::Msifw("acpi-crs".into()),
            cpus: vec![
                Cpu { index: 0, apic_id: u32::MAX, acpi_uid: 0, logical_id: 1, state: CpuState::Online },
                Cpu { index: 1, apic_id: 4, acpi_uid: 3, logical_id: 0, state: CpuState::Offline },
                Cpu { index: 2, apic_id: 5, acpi_uid: 4, logical_id: 0, state: CpuState::Failed("no answer to INIT-SIPI-SIPI in 10 ms".into()) },
            ],
            ..platform.clone()
        };
        let dispatch = Dispatch {
            source: "msix".into(),
            bdf: Some(bdf(3)),
            vector: 0x30,
            path: "handler".into(),
            n: 1000,
            dispatched: 1000,
            fast: 999,
            entry_min: 1,
            entry_median: 2,
            entry_p99: 3,
            path_min: 4,
            path_median: 5,
            path_p99: 6,
            tsc_per_us: 2900,
        };
        vec![
            Record::Platform(platform),
            Record::Platform(other_platform),
            Record::Function(function),
            Record::Function(bare),
            Record::Scenario(Scenario {
                name: "msix-delivery".into(),
                bdf: Some(bdf(2)),
                result: Outcome::Pass,
                detail: "10 interrupts".into(),
                control: false,
            }),
            Record::Scenario(Scenario {
                name: "shutdown".into(),
                bdf: None,
                result: Outcome::Fail,
                detail: "".into(),
                control: true,
            }),
            Record::Scenario(Scenario {
                name: "x".into(),
                bdf: None,
                result: Outcome::Skip,
                detail: "not asked".into(),
                control: false,
            }),
            Record::Scenario(Scenario {
                name: "dest-logical-flat".into(),
                bdf: None,
                result: Outcome::Xfail,
                detail: "".into(),
                control: false,
            }),
            Record::Scenario(Scenario {
                name: "dest-lowest-priority".into(),
                bdf: None,
                result: Outcome::Xpass,
                detail: "".into(),
                control: false,
            }),
            Record::Problem(Problem {
                source: "acpi.mcfg".into(),
                detail: "two segments".into(),
            }),
            Record::End(End {
                passed: 1,
                failed: 0,
                skipped: u32::MAX,
            }),
            Record::Phase(Phase {
                name: "enumeration".into(),
                us: 1234,
            }),
            Record::Accesses(Accesses {
                bdf: bdf(31),
                present: false,
                phase: "setup".into(),
                config_reads: 1,
                config_writes: 2,
                mmio_reads: 3,
                mmio_writes: 4,
            }),
            Record::Dispatch(dispatch.clone()),
            Record::Dispatch(Dispatch {
                bdf: None,
                source: "self-ipi".into(),
                ..dispatch
            }),
        ]
    }

    fn frame(record: &Record) -> String {
        let mut out = Vec::new();
        encode(record, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn records(line: &str) -> Vec<Result<Record<'static>, FrameError>> {
        split(line)
            .into_iter()
            .filter_map(|p| {
                if let Piece::Frame(f) = p {
                    Some(f)
                } else {
                    None
                }
            })
            .collect()
    }

    #[test]
    fn every_record_kind_round_trips() {
        for record in every_kind() {
            let f = frame(&record);
            assert!(
                f.bytes().all(|b| b.is_ascii_graphic()),
                "a frame is printable without spaces: {f}"
            );
            assert_eq!(f.as_bytes()[0], MARK);
            assert_eq!(
                split(&f),
                [Piece::Frame(Ok(record.clone()))],
                "{}",
                record.kind()
            );
        }
    }

    #[test]
    fn the_smallest_frame_is_not_shorter_than_min_chars() {
        let end = frame(&Record::End(End::default()));
        assert_eq!(end.len() - 2, MIN_CHARS);
    }

    #[test]
    fn frames_are_found_in_noisy_text() {
        let all = every_kind();
        let mut line = String::from("GRUB ~ loading~~ ~short~ ");
        for r in &all {
            line.push_str(&frame(r));
            line.push_str(" ~/usr/share/x.cfg ");
        }
        line.push_str("SeaBIOS (version 1.16)");
        let found: Vec<_> = records(&line);
        // `~/usr/share/x.cfg ` is a run of base85 characters without a closing mark: a cut frame.
        let whole: Vec<_> = found
            .iter()
            .filter_map(|f| f.as_ref().ok())
            .cloned()
            .collect();
        assert_eq!(whole, all);
        let texts: String = split(&line)
            .into_iter()
            .filter_map(|p| {
                if let Piece::Text(t) = p {
                    Some(t)
                } else {
                    None
                }
            })
            .collect();
        assert!(
            texts.starts_with("GRUB ~ loading~~ ~short~ ")
                && texts.ends_with("SeaBIOS (version 1.16)"),
            "{texts}"
        );
    }

    #[test]
    fn a_frame_cut_off_does_not_take_what_follows() {
        let all = every_kind();
        let whole = frame(&all[2]);
        for cut in MIN_CHARS + 1..whole.len() - 1 {
            // Cut, then the firmware's panic line (it starts on a line of its own, but a capture program may
            // join them), then the next frame.
            let line = format!("{} panic: boom {}", &whole[..cut], frame(&all[4]));
            let found = records(&line);
            assert_eq!(found.len(), 2, "{line}");
            assert_eq!(found[0], Err(FrameError::Cut));
            assert_eq!(found[1], Ok(all[4].clone()));
            assert!(
                split(&line).contains(&Piece::Text(" panic: boom ")),
                "{line}"
            );
            // Cut and directly followed by the next frame: the next one survives.
            let line = format!("{}{}", &whole[..cut], frame(&all[4]));
            let found = records(&line);
            assert_eq!(found.last(), Some(&Ok(all[4].clone())), "{line}");
            assert!(
                found[..found.len() - 1].iter().all(|f| f.is_err()),
                "{line}"
            );
        }
    }

    #[test]
    fn damage_is_caught_by_the_crc() {
        let f = frame(&every_kind()[2]);
        for at in 1..f.len() - 1 {
            let mut bytes = f.clone().into_bytes();
            bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
            let line = String::from_utf8(bytes).unwrap();
            assert_eq!(records(&line), [Err(FrameError::Damaged)], "byte {at}");
        }
    }

    #[test]
    fn another_version_and_a_wrong_record_are_named() {
        let encode_raw = |raw: &[u8]| {
            let mut raw = raw.to_vec();
            let crc = crc16(&raw);
            raw.extend_from_slice(&crc.to_le_bytes());
            let mut s = vec![MARK];
            base85(&raw, &mut s);
            s.push(MARK);
            String::from_utf8(s).unwrap()
        };
        assert_eq!(
            records(&encode_raw(&[VERSION + 1, 4, 0, 0, 0])),
            [Err(FrameError::Version(VERSION + 1))]
        );
        assert_eq!(
            records(&encode_raw(&[0, 4, 0, 0, 0])),
            [Err(FrameError::Version(0))]
        );
        // A `problem` (tag 3) whose detail is cut short, and an `end` (tag 4) with a byte too many.
        assert!(matches!(
            records(&encode_raw(&[VERSION, 3, 3, b'a', b'b', b'c', 5, b'x']))[..],
            [Err(FrameError::Record(_))]
        ));
        assert!(matches!(
            records(&encode_raw(&[VERSION, 4, 1, 2, 3, 9]))[..],
            [Err(FrameError::Record(_))]
        ));
        // An unknown tag.
        assert!(matches!(
            records(&encode_raw(&[VERSION, 99, 0, 0, 0]))[..],
            [Err(FrameError::Record(_))]
        ));
        assert_eq!(
            records(&encode_raw(&[VERSION, 4, 1, 2, 3])),
            [Ok(Record::End(End {
                passed: 1,
                failed: 2,
                skipped: 3
            }))]
        );
    }

    /// The frame of `record` with version byte `version` (postcard bytes as this version writes them).
    fn frame_as(version: u8, record: &Record) -> String {
        let mut raw = vec![version];
        raw.extend(postcard::to_allocvec(record).unwrap());
        let crc = crc16(&raw);
        raw.extend_from_slice(&crc.to_le_bytes());
        let mut s = vec![MARK];
        base85(&raw, &mut s);
        s.push(MARK);
        String::from_utf8(s).unwrap()
    }

    #[test]
    fn version_1_frames_still_decode() {
        // A version 1 `platform` record is a version 2 one without `cpus`: its bytes are the version 2
        // encoding with the empty list's length byte (the last byte) left off.
        for record in every_kind() {
            let mut v1 = postcard::to_allocvec(&record).unwrap();
            if let Record::Platform(p) = &record {
                if !p.cpus.is_empty() {
                    continue;
                }
                assert_eq!(v1.pop(), Some(0), "an empty `cpus` is one byte, last");
            }
            // A version 1 `function` record is a version 2 one without `vector_cpus`, its last field.
            let record = match record {
                Record::Function(f) => {
                    v1 = postcard::to_allocvec(&Record::Function(Function { vector_cpus: Vec::new(), ..f.clone() })).unwrap();
                    assert_eq!(v1.pop(), Some(0), "an empty `vector_cpus` is one byte, last");
                    Record::Function(Function { vector_cpus: Vec::new(), ..f })
                }
                other => other,
            };
            if let Record::Scenario(s) = &record {
                if matches!(s.result, Outcome::Xfail | Outcome::Xpass) {
                    // Version 1 had no such outcome.
                    let line = frame_as(1, &record);
                    assert!(matches!(records(&line)[..], [Err(FrameError::Record(_))]), "{line}");
                    continue;
                }
            }
            let mut raw = vec![1];
            raw.extend(v1);
            let crc = crc16(&raw);
            raw.extend_from_slice(&crc.to_le_bytes());
            let mut line = vec![MARK];
            base85(&raw, &mut line);
            line.push(MARK);
            let line = String::from_utf8(line).unwrap();
            assert_eq!(records(&line), [Ok(record.clone())], "{}", record.kind());
        }
        // A version 1 `platform` record with a byte too many (what a version 2 one with CPUs looks like
        // to it) is no record.
        let with_cpus = every_kind().into_iter().find(|r| matches!(r, Record::Platform(p) if !p.cpus.is_empty())).unwrap();
        assert!(matches!(records(&frame_as(1, &with_cpus))[..], [Err(FrameError::Record(_))]));
    }

    #[test]
    fn crc_matches_the_catalogue() {
        // CRC-16/CCITT-FALSE check value.
        assert_eq!(crc16(b"123456789"), 0x29b1);
    }
}
