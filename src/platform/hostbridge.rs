//! PCI host bridges (root buses) described in the DSDT or an SSDT, without an AML interpreter.
//!
//! A host bridge is a `Device` with `_HID` or `_CID` `PNP0A03` (PCI) or `PNP0A08` (PCI Express) (ACPI 6.5
//! §6.1.5, PCI Firmware 3.3 §4.1.1). What it decodes comes from objects inside it (or inside a `Scope` naming
//! it): `_SEG` (segment group, §6.5.6), `_BBN` (base bus number, §6.5.5), `_UID`, `_CRS` (its bus-number range
//! from a WordBusNumber descriptor, §6.4.3.5) and `_CBA` (the ECAM base, §6.5.7, for a bridge without an MCFG
//! entry). QEMU 7.2 emits these shapes, all of which this module reads:
//! - q35 `PCI0`: `_HID` EisaId PNP0A08, `_CID` PNP0A03, `_ADR`, `_UID`; `_CRS` in a `Scope(\_SB.PCI0)`, its
//!   WordBusNumber ending below the first expander's bus (`build_dsdt`, `hw/i386/acpi-build.c`);
//! - pc `PCI0`: `_HID` PNP0A03, the same `_CRS` scope;
//! - `pxb-pcie` / `pxb` expanders: `Scope(\_SB){ Device(PCxx){ Name(_UID, bus) Name(_BBN, bus) Name(_HID ...)
//!   [Name(_CID ...) Method(_OSC)] Method(_PRT){ While ... } Name(_CRS, ResourceTemplate(){ ... WordBusNumber
//!   }) } }`, named after their bus number;
//! - microvm with `pcie=on` (`acpi_dsdt_add_gpex`, `hw/pci-host/gpex-acpi.c`): `_HID` and `_CID` as strings,
//!   `_SEG` 0, `_BBN` 0, a static `Name(_PRT, Package)`, `Method(_CBA){ Return (0xE0000000) }` and a `_CRS`
//!   with WordBusNumber 0-0xFF; no MCFG.
//!
//! Names are attributed to the innermost `Device` around them, so a child's `_HID` (the microvm `RES0`
//! PNP0C02 inside `PCI0`, the link devices) never makes its parent a host bridge or lends it a `_CRS`. Values
//! that only a Method gives (`_BBN` read from a chipset register, a `_CRS` patched at run time) are reported as
//! [`Value::NotStatic`], never guessed.
//!
//! Every function is total: any byte string gives a value, never a panic; all scans are bounded by the
//! table's length times a small constant ([`MAX_HOST_BRIDGES`] candidates, [`aml::MAX_CANDIDATES`] names each).

#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo
    )
)]

use core::fmt;

use heapless::Vec;

use super::crs;
use super::aml::{
    self, innermost_device, Aml, Hit, Kind, NameHits, DEVICE_OP, EXT_OP_PREFIX, METHOD_OP, NAME_OP, PACKAGE_OP, RETURN_OP,
    STRING_PREFIX,
};

/// Most host bridges kept (QEMU allows one expander per bus number; real machines have up to 8 or so).
pub const MAX_HOST_BRIDGES: usize = 32;
/// Problems kept per discovery: one per bridge (its `_CRS`) and the too-many-bridges one, so none is dropped
/// (that one starts the peer-bus probe).
pub const MAX_PROBLEMS: usize = MAX_HOST_BRIDGES + 1;

/// EisaId("PNP0A03") and EisaId("PNP0A08") as the DWordConst reads little-endian (ACPI 6.5 §19.6.35: the
/// compressed vendor 0x41D0 and product 0x0A03 stored big-endian).
const EISA_PNP0A03: u64 = 0x030A_D041;
const EISA_PNP0A08: u64 = 0x080A_D041;

/// A static value, or why there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Value<T> {
    /// No such object.
    #[default]
    Absent,
    /// A Name with a constant of the expected type (or, for `_CBA`, a Method that only returns a constant).
    Static(T),
    /// A Method, or a Name of another type: it needs an interpreter.
    NotStatic,
}

impl<T: Copy> Value<T> {
    /// The static value, if any.
    pub fn get(&self) -> Option<T> {
        match *self {
            Value::Static(v) => Some(v),
            _ => None,
        }
    }
}

/// What the bridge's `_PRT` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrtKind {
    /// None: INTx of its root bus is not described.
    #[default]
    Absent,
    /// `Name(_PRT, Package)`: static data.
    Static,
    /// `Method(_PRT)`: only an interpreter can say (QEMU's expanders build it in a While loop).
    Method,
}

/// One host bridge as described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostBridge {
    /// The last NameSeg of its path (`PCI0`, `PC80`).
    pub name: [u8; 4],
    /// Index of the table it was found in (as given to [`HostBridges::add_table`]).
    pub table: u8,
    /// Offset of its `Device` opcode in that table.
    pub at: usize,
    /// `_HID` or `_CID` says PCI Express (PNP0A08).
    pub pcie: bool,
    /// `_SEG`.
    pub seg: Value<u64>,
    /// `_BBN`.
    pub bbn: Value<u64>,
    /// `_UID` (an integer; a string `_UID` is [`Value::NotStatic`]).
    pub uid: Value<u64>,
    /// The bus-number range of its static `_CRS`; `Static(None)` when the template has no WordBusNumber.
    pub crs_buses: Value<Option<(u8, u8)>>,
    /// A `_CRS` that could not be decoded.
    pub crs_error: Option<crs::CrsError>,
    /// `_CBA`: the ECAM base of its segment (the address bus 0 would have).
    pub cba: Value<u64>,
    /// Its `_PRT`.
    pub prt: PrtKind,
    /// `_STA` (absent: present and enabled, ACPI 6.5 §6.3.7).
    pub sta: Value<u64>,
}

impl HostBridge {
    /// Whether a static `_STA` says it is not present (bit 0 clear); a Method `_STA` counts as present.
    pub fn absent(&self) -> bool {
        matches!(self.sta, Value::Static(v) if v & 1 == 0)
    }

    /// The buses below it, as Linux's `acpi_pci_root_add` decides: the `_CRS` bus range, else `_BBN` (0 when
    /// absent) to 0xFF.
    pub fn buses(&self) -> Result<(u8, u8), BridgeError> {
        if let Value::Static(Some(range)) = self.crs_buses {
            return Ok(range);
        }
        match self.bbn {
            Value::Absent => Ok((0, 0xFF)),
            Value::Static(b) => u8::try_from(b)
                .map(|b| (b, 0xFF))
                .map_err(|_| BridgeError::BadBbn(b)),
            Value::NotStatic => Err(BridgeError::BusesNotStatic),
        }
    }

    /// Its segment group (0 when `_SEG` is absent, ACPI 6.5 §6.5.6).
    pub fn segment(&self) -> Result<u16, BridgeError> {
        match self.seg {
            Value::Absent => Ok(0),
            Value::Static(s) => u16::try_from(s).map_err(|_| BridgeError::BadSegment(s)),
            Value::NotStatic => Err(BridgeError::SegmentNotStatic),
        }
    }

    /// Its path's last NameSeg, printable.
    pub fn display_name(&self) -> Seg {
        Seg(self.name)
    }
}

/// A NameSeg written with non-printable bytes as `?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seg(pub [u8; 4]);

impl fmt::Display for Seg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.0 {
            fmt::Write::write_char(
                f,
                if b.is_ascii_graphic() {
                    char::from(b)
                } else {
                    '?'
                },
            )?;
        }
        Ok(())
    }
}

/// Why a host bridge's buses cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeError {
    /// `_BBN` above 255.
    BadBbn(u64),
    /// `_SEG` above 0xFFFF.
    BadSegment(u64),
    /// No static `_CRS` bus range and `_BBN` is a Method.
    BusesNotStatic,
    /// `_SEG` is a Method.
    SegmentNotStatic,
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadBbn(b) => write!(f, "_BBN {b:#x} is not a bus number"),
            Self::BadSegment(s) => write!(f, "_SEG {s:#x} is not a segment group number"),
            Self::BusesNotStatic => f.write_str("no static _CRS bus range and _BBN is a Method"),
            Self::SegmentNotStatic => f.write_str("_SEG is a Method"),
        }
    }
}

/// Something in the tables that discovery could not use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryProblem {
    /// More than [`MAX_HOST_BRIDGES`] host bridges: the rest are not listed.
    TooManyBridges,
    /// A `_CRS` of a host bridge could not be decoded.
    Crs {
        /// The bridge.
        bridge: [u8; 4],
        /// Why.
        error: crs::CrsError,
    },
}

impl fmt::Display for DiscoveryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooManyBridges => write!(f, "more than {MAX_HOST_BRIDGES} PCI host bridges in the ACPI tables; the root buses of the rest are found by the peer-bus probe"),
            Self::Crs { bridge, error } => write!(f, "host bridge {}: {error}", Seg(bridge)),
        }
    }
}

/// Every host bridge found, in table order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostBridges {
    /// The bridges.
    pub bridges: Vec<HostBridge, MAX_HOST_BRIDGES>,
    /// What could not be used.
    pub problems: Vec<DiscoveryProblem, MAX_PROBLEMS>,
}

impl HostBridges {
    /// Adds the host bridges of one definition block (DSDT or SSDT; header included or not). `table` is the
    /// caller's index for it, kept in [`HostBridge::table`].
    pub fn add_table(&mut self, aml: &[u8], table: u8) {
        let mut seen: Vec<usize, MAX_HOST_BRIDGES> = Vec::new();
        for seg in [*b"_HID", *b"_CID"] {
            for hit in NameHits::new(aml, seg, Kind::Name).take(4 * MAX_HOST_BRIDGES) {
                if !names_pci_host(aml, hit) {
                    continue;
                }
                let Some(device) = innermost_device(aml, 0, hit.op_at) else {
                    continue;
                };
                if seen.contains(&device.op_at) {
                    continue;
                }
                if seen.push(device.op_at).is_err() || self.bridges.is_full() {
                    if !self.problems.contains(&DiscoveryProblem::TooManyBridges) {
                        let _ = self.problems.push(DiscoveryProblem::TooManyBridges);
                    }
                    return;
                }
                let bridge = read_bridge(aml, device, table);
                if let Some(error) = bridge.crs_error {
                    let _ = self.problems.push(DiscoveryProblem::Crs {
                        bridge: bridge.name,
                        error,
                    });
                }
                let _ = self.bridges.push(bridge);
            }
        }
    }
}

/// The host bridges of one table ([`HostBridges::add_table`] with index 0).
pub fn host_bridges(aml: &[u8]) -> HostBridges {
    let mut out = HostBridges::default();
    out.add_table(aml, 0);
    out
}

/// Whether `Name(_HID|_CID, x)` at `hit` names PNP0A03 or PNP0A08 (an EisaId, a string, or a package of them).
fn names_pci_host(aml: &[u8], hit: Hit) -> bool {
    pci_host_id(aml, hit).is_some()
}

/// `Some(true)` for PNP0A08, `Some(false)` for PNP0A03, in the Name's value at `hit`.
fn pci_host_id(aml: &[u8], hit: Hit) -> Option<bool> {
    let mut a = Aml::new(aml, hit.name_end, hit.body_end);
    if a.peek().ok()? == PACKAGE_OP {
        a.byte().ok()?;
        let end = a.pkg_length().ok()?;
        let mut inner = a.within(end);
        let count = inner.byte().ok()?;
        let mut found = None;
        for _ in 0..count {
            if let Some(pcie) = id_value(&mut inner)? {
                found = Some(found.unwrap_or(false) | pcie);
            }
        }
        return found;
    }
    id_value(&mut a)?
}

/// One hardware ID: an EisaId integer or a string. `None` when malformed; `Some(None)` for another ID.
fn id_value(a: &mut Aml<'_>) -> Option<Option<bool>> {
    if a.peek().ok()? == STRING_PREFIX {
        a.byte().ok()?;
        let mut s = [0u8; 8];
        let mut n = 0;
        loop {
            let b = a.byte().ok()?;
            if b == 0 {
                break;
            }
            if let Some(c) = s.get_mut(n) {
                *c = b;
            }
            n += 1;
        }
        return Some(match s.get(..n) {
            Some(b"PNP0A03") => Some(false),
            Some(b"PNP0A08") => Some(true),
            _ => None,
        });
    }
    Some(match a.integer().ok()? {
        EISA_PNP0A03 => Some(false),
        EISA_PNP0A08 => Some(true),
        _ => None,
    })
}

/// The last NameSeg of the Device at `device`.
fn device_name(aml: &[u8], device: Hit) -> [u8; 4] {
    let mut a = Aml::new(aml, device.op_at + 2, aml.len());
    let _ = a.pkg_length();
    a.name_string().ok().flatten().unwrap_or(*b"????")
}

/// The object bodies that belong to the device: its own, and every `Scope` whose path ends in its name.
fn bodies(aml: &[u8], device: Hit, name: [u8; 4]) -> Vec<(usize, usize), { aml::MAX_CANDIDATES }> {
    let mut out = Vec::new();
    let _ = out.push((device.name_end, device.body_end));
    for scope in NameHits::new(aml, name, Kind::Scope).take(aml::MAX_CANDIDATES - 1) {
        let _ = out.push((scope.name_end, scope.body_end));
    }
    out
}

/// A Name or Method directly in a host bridge's body (not inside a nested Device or Method).
#[derive(Debug, Clone, Copy)]
struct Obj {
    kind: Kind,
    seg: [u8; 4],
    hit: Hit,
}

/// The names a host bridge's objects are looked up by.
const WANTED: [[u8; 4]; 11] = [
    *b"_HID", *b"_CID", *b"_SEG", *b"_BBN", *b"_UID", *b"_CRS", *b"_CBA", *b"_PRT", *b"_STA",
    *b"_ADR", *b"_OSC",
];
/// Most such objects kept per bridge (11 names, each possibly in several bodies).
const MAX_OBJS: usize = 64;

/// One forward pass over each body: the wanted Names and Methods at its top level. A nested `Device` and a
/// `Method`'s body are skipped whole, so a child's `_HID` or `_CRS` is never taken for the bridge's, and a
/// Method whose one-byte PkgLength is 0x08 (the NameOp) is not read as a Name.
fn own_list(aml: &[u8], bodies: &[(usize, usize)]) -> Vec<Obj, MAX_OBJS> {
    let mut out = Vec::new();
    for &(start, end) in bodies {
        let end = end.min(aml.len());
        let mut i = start;
        while i < end {
            let op = aml.get(i).copied().unwrap_or(0);
            // `PkgLength NameString` after the opcode(s) at `at`: the object's end and its name's end.
            let header = |at: usize| -> Option<(usize, usize, Option<[u8; 4]>)> {
                let mut a = Aml::new(aml, at, end);
                let body_end = a.pkg_length().ok()?;
                let name = a.name_string().ok()?;
                Some((body_end, a.pos, name))
            };
            if op == EXT_OP_PREFIX && aml.get(i + 1) == Some(&DEVICE_OP) {
                if let Some((body_end, _, Some(_))) = header(i + 2) {
                    i = body_end;
                    continue;
                }
            } else if op == METHOD_OP {
                if let Some((body_end, name_end, Some(seg))) = header(i + 1) {
                    if WANTED.contains(&seg)
                        && out
                            .push(Obj {
                                kind: Kind::Method,
                                seg,
                                hit: Hit {
                                    op_at: i,
                                    name_end,
                                    body_end,
                                },
                            })
                            .is_err()
                    {
                        return out;
                    }
                    i = body_end;
                    continue;
                }
            } else if op == NAME_OP {
                let mut a = Aml::new(aml, i + 1, end);
                if let Ok(Some(seg)) = a.name_string() {
                    if WANTED.contains(&seg)
                        && out
                            .push(Obj {
                                kind: Kind::Name,
                                seg,
                                hit: Hit {
                                    op_at: i,
                                    name_end: a.pos,
                                    body_end: end,
                                },
                            })
                            .is_err()
                    {
                        return out;
                    }
                    i = a.pos;
                    continue;
                }
            }
            i += 1;
        }
    }
    out
}

/// The objects named `seg` of `kind` directly in the device, over all its bodies.
fn own_objects(objs: &[Obj], seg: [u8; 4], kind: Kind) -> impl Iterator<Item = Hit> + '_ {
    objs.iter()
        .filter(move |o| o.seg == seg && o.kind == kind)
        .map(|o| o.hit)
}

/// An integer-valued object: `Name(seg, <integer>)`, or a Method.
fn integer_object(aml: &[u8], objs: &[Obj], seg: [u8; 4]) -> Value<u64> {
    if let Some(hit) = own_objects(objs, seg, Kind::Name).next() {
        return match Aml::new(aml, hit.name_end, hit.body_end).integer() {
            Ok(v) => Value::Static(v),
            Err(_) => Value::NotStatic,
        };
    }
    if own_objects(objs, seg, Kind::Method).next().is_some() {
        return Value::NotStatic;
    }
    Value::Absent
}

/// `_CBA`: a Name, or `Method(_CBA, 0){ Return (<integer>) }` (QEMU's GPEX).
/// An integer object given by a Name, or by a Method that only returns a constant
/// (`Method(_CBA){ Return (0xE0000000) }` in QEMU's GPEX, `Method(_BBN){ Return (Zero) }` on real firmware).
fn constant_object(aml: &[u8], objs: &[Obj], seg: [u8; 4]) -> Value<u64> {
    match integer_object(aml, objs, seg) {
        Value::NotStatic => {}
        other => return other,
    }
    for hit in own_objects(objs, seg, Kind::Method) {
        let mut a = Aml::new(aml, hit.name_end, hit.body_end);
        let parsed = (|| {
            let _flags = a.byte().ok()?;
            (a.byte().ok()? == RETURN_OP).then_some(())?;
            let v = a.integer().ok()?;
            (a.pos == hit.body_end).then_some(v)
        })();
        if let Some(v) = parsed {
            return Value::Static(v);
        }
    }
    Value::NotStatic
}

fn read_bridge(aml: &[u8], device: Hit, table: u8) -> HostBridge {
    let name = device_name(aml, device);
    let bodies = bodies(aml, device, name);
    let objs = own_list(aml, &bodies);
    // Every own _HID/_CID Name is looked at, however many there are (no fixed-capacity copy: more than 16
    // once panicked, found by the `hostbridge` fuzz target).
    let pcie = [*b"_HID", *b"_CID"]
        .iter()
        .flat_map(|&seg| own_objects(&objs, seg, Kind::Name))
        .any(|hit| pci_host_id(aml, hit) == Some(true));
    let prt = if own_objects(&objs, *b"_PRT", Kind::Name).next().is_some() {
        PrtKind::Static
    } else if own_objects(&objs, *b"_PRT", Kind::Method).next().is_some() {
        PrtKind::Method
    } else {
        PrtKind::Absent
    };
    // The first static _CRS whose template decodes is the bridge's (QEMU has one; a child's is excluded above).
    let mut crs_buses = Value::Absent;
    let mut crs_error = None;
    for hit in own_objects(&objs, *b"_CRS", Kind::Name) {
        match aml::static_buffer(aml, hit.name_end, hit.body_end)
            .map_err(|e| crs::CrsError::Aml(e.into()))
            .and_then(|(_, t)| crs::parse_template(t))
        {
            Ok(w) => {
                crs_buses = Value::Static(w.buses);
                crs_error = None;
                break;
            }
            Err(e) => {
                crs_error.get_or_insert(e);
                crs_buses = Value::NotStatic;
            }
        }
    }
    if crs_buses == Value::Absent && own_objects(&objs, *b"_CRS", Kind::Method).next().is_some() {
        crs_buses = Value::NotStatic;
    }
    HostBridge {
        name,
        table,
        at: device.op_at,
        pcie,
        seg: constant_object(aml, &objs, *b"_SEG"),
        bbn: constant_object(aml, &objs, *b"_BBN"),
        uid: constant_object(aml, &objs, *b"_UID"),
        crs_buses,
        crs_error,
        cba: constant_object(aml, &objs, *b"_CBA"),
        sta: constant_object(aml, &objs, *b"_STA"),
        prt,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Root buses
// ---------------------------------------------------------------------------------------------------------------

/// One root bus to enumerate: the buses `first..=last` below a host bridge of segment 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootBus {
    /// The root bus number.
    pub first: u8,
    /// The last bus number it decodes.
    pub last: u8,
    /// The host bridge's name.
    pub bridge: [u8; 4],
    /// Its `_PRT`.
    pub prt: PrtKind,
    /// Its `_CBA`, if static.
    pub cba: Option<u64>,
}

/// Why a host bridge gives no root bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootProblem {
    /// Its buses or segment cannot be read.
    Unusable {
        /// The bridge.
        bridge: [u8; 4],
        /// Why.
        error: BridgeError,
    },
    /// It is in a segment other than 0: msifw reaches only segment 0, so its functions are not enumerated.
    OtherSegment {
        /// The bridge.
        bridge: [u8; 4],
        /// Its segment.
        segment: u16,
    },
    /// Its root bus only a Method gives (`_BBN` and `_CRS` both Methods): found by the peer-bus probe instead.
    BusUnknown {
        /// The bridge.
        bridge: [u8; 4],
    },
    /// Its root bus lies inside another bridge's range: it is not scanned twice.
    Overlap {
        /// The bridge left out.
        bridge: [u8; 4],
        /// The bridge whose range holds it.
        other: [u8; 4],
    },
}

impl RootProblem {
    /// Whether functions may have been missed because of it (a run that had it cannot pass).
    pub fn misses_functions(&self) -> bool {
        matches!(self, Self::Unusable { .. } | Self::OtherSegment { .. })
    }
}

impl fmt::Display for RootProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Unusable { bridge, error } => write!(
                f,
                "host bridge {}: {error}; its root bus is not enumerated",
                Seg(bridge)
            ),
            Self::OtherSegment { bridge, segment } => {
                write!(f, "host bridge {} is in PCI segment {segment}; msifw reaches only segment 0, so its functions are not enumerated", Seg(bridge))
            }
            Self::BusUnknown { bridge } => write!(
                f,
                "host bridge {}: _BBN and _CRS are Methods, so its root bus is found by probing the bus numbers not reached",
                Seg(bridge)
            ),
            Self::Overlap { bridge, other } => {
                write!(
                    f,
                    "host bridge {}'s root bus lies inside {}'s bus range; not scanned twice",
                    Seg(bridge),
                    Seg(other)
                )
            }
        }
    }
}

/// The root buses of segment 0 to enumerate, lowest first, with disjoint ranges; and what was left out.
///
/// A bridge whose static `_STA` says absent is skipped (as Linux does). A bus range from a static `_CRS` is
/// authoritative: a later root bus inside it is left out ([`RootProblem::Overlap`]). A range from `_BBN` alone
/// runs to 0xFF and is cut before the next root bus. A bridge whose root bus only a Method gives ([`RootProblem::BusUnknown`], most
/// real firmware's `PCI0`) asks for the peer-bus probe.
pub fn root_buses(
    bridges: &HostBridges,
) -> (
    Vec<RootBus, MAX_HOST_BRIDGES>,
    Vec<RootProblem, MAX_HOST_BRIDGES>,
) {
    let mut candidates: Vec<(RootBus, bool), MAX_HOST_BRIDGES> = Vec::new();
    let mut problems: Vec<RootProblem, MAX_HOST_BRIDGES> = Vec::new();
    for b in bridges.bridges.iter().filter(|b| !b.absent()) {
        match b.segment() {
            Err(error) => {
                let _ = problems.push(RootProblem::Unusable {
                    bridge: b.name,
                    error,
                });
                continue;
            }
            Ok(segment) if segment != 0 => {
                let _ = problems.push(RootProblem::OtherSegment {
                    bridge: b.name,
                    segment,
                });
                continue;
            }
            Ok(_) => {}
        }
        match b.buses() {
            Err(BridgeError::BusesNotStatic) => {
                let _ = problems.push(RootProblem::BusUnknown { bridge: b.name });
            }
            Err(error) => {
                let _ = problems.push(RootProblem::Unusable {
                    bridge: b.name,
                    error,
                });
            }
            Ok((first, last)) => {
                let known = matches!(b.crs_buses, Value::Static(Some(_)));
                let root = RootBus {
                    first,
                    last: last.max(first),
                    bridge: b.name,
                    prt: b.prt,
                    cba: b.cba.get(),
                };
                let _ = candidates.push((root, known));
            }
        }
    }
    // Among equal root buses the first listed stays: the sort key holds the listing order (a Vec's index).
    let mut order: Vec<(u8, usize), MAX_HOST_BRIDGES> = candidates
        .iter()
        .enumerate()
        .map(|(i, (r, _))| (r.first, i))
        .collect();
    order.sort_unstable();
    let candidates: Vec<(RootBus, bool), MAX_HOST_BRIDGES> = order
        .iter()
        .filter_map(|&(_, i)| candidates.get(i).copied())
        .collect();
    let mut kept: Vec<(RootBus, bool), MAX_HOST_BRIDGES> = Vec::new();
    for (root, known) in candidates {
        let inside = kept.iter().find(|(r, k)| {
            r.first == root.first || (*k && (r.first..=r.last).contains(&root.first))
        });
        if let Some((other, _)) = inside {
            let _ = problems.push(RootProblem::Overlap {
                bridge: root.bridge,
                other: other.bridge,
            });
            continue;
        }
        let _ = kept.push((root, known));
    }
    // A range from _BBN alone reaching into a later root bus ends just before it (a static one cannot: the
    // later root bus would lie inside it and have been left out above).
    let firsts: Vec<u8, MAX_HOST_BRIDGES> = kept.iter().map(|(r, _)| r.first).collect();
    let mut roots: Vec<RootBus, MAX_HOST_BRIDGES> = Vec::new();
    for (i, (mut r, _)) in kept.into_iter().enumerate() {
        if let Some(&next) = firsts.get(i + 1) {
            r.last = r.last.min(next - 1);
        }
        let _ = roots.push(r);
    }
    (roots, problems)
}

/// Whether some host bridge's root bus is unknown, so the bus numbers not reached must be probed.
pub fn needs_peer_probe(problems: &[RootProblem]) -> bool {
    problems
        .iter()
        .any(|p| matches!(p, RootProblem::BusUnknown { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec as StdVec;

    // ---- AML builders ---------------------------------------------------------------------------------------

    fn pkg(body: &[u8]) -> StdVec<u8> {
        // PkgLength counts itself: 1 byte up to 63, else 2 bytes (enough for these tests).
        let mut out = StdVec::new();
        if body.len() < 0x3F {
            out.push((body.len() + 1) as u8);
        } else {
            let len = body.len() + 2;
            assert!(len < 0x1000);
            out.push(0x40 | (len & 0x0F) as u8);
            out.push((len >> 4) as u8);
        }
        out.extend_from_slice(body);
        out
    }
    fn device(name: &[u8], body: &[u8]) -> StdVec<u8> {
        [
            &[EXT_OP_PREFIX, DEVICE_OP][..],
            &pkg(&[name, body].concat()),
        ]
        .concat()
    }
    fn scope(name: &[u8], body: &[u8]) -> StdVec<u8> {
        [&[0x10][..], &pkg(&[name, body].concat())].concat()
    }
    fn name(seg: &[u8], value: &[u8]) -> StdVec<u8> {
        [&[NAME_OP][..], seg, value].concat()
    }
    fn method(seg: &[u8], body: &[u8]) -> StdVec<u8> {
        [&[METHOD_OP][..], &pkg(&[seg, &[0x00], body].concat())].concat()
    }
    fn byte(v: u8) -> StdVec<u8> {
        vec![0x0A, v]
    }
    fn dword(v: u32) -> StdVec<u8> {
        [&[0x0C][..], &v.to_le_bytes()].concat()
    }
    fn string(s: &str) -> StdVec<u8> {
        [&[STRING_PREFIX][..], s.as_bytes(), &[0]].concat()
    }
    fn eisa(pcie: bool) -> StdVec<u8> {
        dword(if pcie { EISA_PNP0A08 } else { EISA_PNP0A03 } as u32)
    }
    /// `Buffer(){ WordBusNumber(first..last), EndTag }`.
    fn crs_buses(first: u16, last: u16) -> StdVec<u8> {
        let mut t = vec![0x88, 13, 0, 2, 0x0C, 0];
        for v in [0, first, last, 0, last - first + 1] {
            t.extend_from_slice(&v.to_le_bytes());
        }
        t.extend_from_slice(&[0x79, 0]);
        [&[0x11][..], &pkg(&[&byte(t.len() as u8)[..], &t].concat())].concat()
    }
    fn table(body: &[u8]) -> StdVec<u8> {
        let mut t = b"DSDT".to_vec();
        t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
        t.extend_from_slice(&[0; 28]);
        t.extend_from_slice(body);
        t
    }

    /// QEMU 7.2's pxb / pxb-pcie expander device, as `build_dsdt` emits it (the `_PRT` While loop shortened).
    fn qemu_expander(bus: u8, pcie: bool, last: u8) -> StdVec<u8> {
        let nm = format!("PC{bus:02X}");
        let mut body = [
            name(b"_UID", &byte(bus)),
            name(b"_BBN", &byte(bus)),
            name(b"_HID", &eisa(pcie)),
        ]
        .concat();
        if pcie {
            body.extend(name(b"_CID", &eisa(false)));
            body.extend(method(b"_OSC", &[0xA4, 0x68]));
        }
        // Method(_PRT){ Local0 = Package(128){} ... While (Local1 < 128) { ... } Return (Local0) }
        body.extend(method(
            b"_PRT",
            &[
                0x70, 0x12, 0x02, 0x80, 0x60, 0xA2, 0x04, 0x95, 0x61, 0x01, 0xA4, 0x60,
            ],
        ));
        body.extend(name(b"_CRS", &crs_buses(bus.into(), last.into())));
        scope(b"\\_SB_", &device(nm.as_bytes(), &body))
    }

    /// QEMU 7.2 q35's `PCI0` (IDs and a `_CRS` in a separate scope, children with their own `_HID`/`_CRS`).
    fn qemu_q35_pci0(last: u8) -> StdVec<u8> {
        let child = device(
            b"GSIA",
            &[
                name(b"_HID", &dword(0x0F0C_D041)),
                name(b"_CRS", &crs_buses(0, 0xFF)),
            ]
            .concat(),
        );
        let pci0 = device(
            b"PCI0",
            &[
                name(b"_HID", &eisa(true)),
                name(b"_CID", &eisa(false)),
                name(b"_ADR", &[0]),
                name(b"_UID", &[0]),
                child,
            ]
            .concat(),
        );
        [
            scope(b"\\_SB_", &pci0),
            scope(
                b"\\/\x02_SB_PCI0",
                &name(b"_CRS", &crs_buses(0, last.into())),
            ),
        ]
        .concat()
    }

    // ---- QEMU shapes ----------------------------------------------------------------------------------------

    #[test]
    fn q35_with_two_pxb_pcie_expanders() {
        let dsdt = table(
            &[
                qemu_q35_pci0(0x7F),
                qemu_expander(0x80, true, 0x81),
                qemu_expander(0xA0, true, 0xA3),
            ]
            .concat(),
        );
        let b = host_bridges(&dsdt);
        assert!(b.problems.is_empty(), "{:?}", b.problems);
        let names: StdVec<[u8; 4]> = b.bridges.iter().map(|b| b.name).collect();
        assert_eq!(names, [*b"PCI0", *b"PC80", *b"PCA0"]);
        let pci0 = b.bridges[0];
        assert!(pci0.pcie);
        assert_eq!(
            (pci0.uid, pci0.bbn, pci0.crs_buses, pci0.prt),
            (
                Value::Static(0),
                Value::Absent,
                Value::Static(Some((0, 0x7F))),
                PrtKind::Absent
            )
        );
        let pc80 = b.bridges[1];
        assert!(pc80.pcie);
        assert_eq!(
            (pc80.uid, pc80.bbn, pc80.crs_buses, pc80.prt),
            (
                Value::Static(0x80),
                Value::Static(0x80),
                Value::Static(Some((0x80, 0x81))),
                PrtKind::Method
            )
        );
        let (roots, problems) = root_buses(&b);
        assert!(problems.is_empty(), "{problems:?}");
        let ranges: StdVec<(u8, u8)> = roots.iter().map(|r| (r.first, r.last)).collect();
        assert_eq!(ranges, [(0, 0x7F), (0x80, 0x81), (0xA0, 0xA3)]);
    }

    #[test]
    fn pc_pxb_is_pnp0a03_only() {
        let dsdt = table(
            &[
                qemu_expander(0x40, false, 0x41),
                qemu_expander(0x60, false, 0x62),
            ]
            .concat(),
        );
        let b = host_bridges(&dsdt);
        assert_eq!(b.bridges.len(), 2);
        assert!(b
            .bridges
            .iter()
            .all(|b| !b.pcie && b.prt == PrtKind::Method));
        assert_eq!(b.bridges[1].buses(), Ok((0x60, 0x62)));
    }

    #[test]
    fn microvm_gpex_with_string_ids_cba_and_a_reserved_child() {
        let res0 = device(
            b"RES0",
            &[
                name(b"_HID", &string("PNP0C02")),
                name(b"_CRS", &crs_buses(0, 0)),
            ]
            .concat(),
        );
        let pci0 = device(
            b"PCI0",
            &[
                name(b"_HID", &string("PNP0A08")),
                name(b"_CID", &string("PNP0A03")),
                name(b"_SEG", &[0]),
                name(b"_BBN", &[0]),
                name(b"_UID", &[0]),
                name(b"_PRT", &[0x12, 0x02, 0x00]),
                method(b"_CBA", &[&[RETURN_OP][..], &dword(0xE000_0000)].concat()),
                name(b"_CRS", &crs_buses(0, 0xFF)),
                res0,
            ]
            .concat(),
        );
        let b = host_bridges(&table(&scope(b"\\_SB_", &pci0)));
        assert_eq!(b.bridges.len(), 1, "RES0 (PNP0C02) is not a host bridge");
        let p = b.bridges[0];
        assert_eq!(
            (p.pcie, p.seg, p.cba, p.prt, p.crs_buses),
            (
                true,
                Value::Static(0),
                Value::Static(0xE000_0000),
                PrtKind::Static,
                Value::Static(Some((0, 0xFF)))
            )
        );
        let (roots, _) = root_buses(&b);
        assert_eq!(roots[0].cba, Some(0xE000_0000));
    }

    #[test]
    fn a_childs_crs_is_not_the_bridges() {
        // PCI0 has no _CRS of its own; its child's (with a bus range) must not be taken.
        let child = device(b"CHLD", &name(b"_CRS", &crs_buses(5, 6)));
        let dsdt = table(&device(
            b"PCI1",
            &[
                name(b"_HID", &eisa(false)),
                name(b"_BBN", &byte(0x20)),
                child,
            ]
            .concat(),
        ));
        let b = host_bridges(&dsdt);
        assert_eq!(b.bridges[0].crs_buses, Value::Absent);
        assert_eq!(
            b.bridges[0].buses(),
            Ok((0x20, 0xFF)),
            "Linux: _BBN to 0xff without a _CRS bus range"
        );
        // A child with a PNP0A03 _CID is a bridge of its own, not its parent.
        let inner = device(b"INNR", &name(b"_CID", &eisa(false)));
        let dsdt = table(&device(
            b"OUTR",
            &[name(b"_HID", &dword(0x1234)), inner].concat(),
        ));
        let names: StdVec<[u8; 4]> = host_bridges(&dsdt).bridges.iter().map(|b| b.name).collect();
        assert_eq!(names, [*b"INNR"]);
    }

    #[test]
    fn cid_package_and_methods() {
        let cid = [
            &[PACKAGE_OP][..],
            &pkg(&[&[2][..], &dword(0x1234), &eisa(true)].concat()),
        ]
        .concat();
        let dsdt = table(&device(
            b"PCI0",
            &[
                name(b"_HID", &dword(0x5678)),
                name(b"_CID", &cid),
                method(b"_BBN", &[0xA4, 0x60]),
                method(b"_CRS", &[0xA4, 0x60]),
            ]
            .concat(),
        ));
        let b = host_bridges(&dsdt);
        assert_eq!(b.bridges.len(), 1);
        let p = b.bridges[0];
        assert!(p.pcie);
        assert_eq!((p.bbn, p.crs_buses), (Value::NotStatic, Value::NotStatic));
        assert_eq!(p.buses(), Err(BridgeError::BusesNotStatic));
        let (roots, problems) = root_buses(&b);
        assert!(roots.is_empty());
        // Real firmware's usual shape: the root bus is found by the peer-bus probe, nothing is missed.
        assert_eq!(
            problems.as_slice(),
            &[RootProblem::BusUnknown { bridge: *b"PCI0" }]
        );
        assert!(!problems[0].misses_functions() && needs_peer_probe(&problems));
        // `Method(_BBN){ Return (0x20) }` and `Method(_STA){ Return (Zero) }` are constants.
        let dsdt = table(&device(
            b"PCI1",
            &[
                name(b"_HID", &eisa(false)),
                method(b"_BBN", &[&[RETURN_OP][..], &byte(0x20)].concat()),
            ]
            .concat(),
        ));
        assert_eq!(host_bridges(&dsdt).bridges[0].buses(), Ok((0x20, 0xFF)));
        let dsdt = table(&device(
            b"PCI1",
            &[
                name(b"_HID", &eisa(false)),
                method(b"_STA", &[RETURN_OP, 0x00]),
            ]
            .concat(),
        ));
        let b = host_bridges(&dsdt);
        assert!(b.bridges[0].absent());
        assert_eq!(
            root_buses(&b),
            (Vec::new(), Vec::new()),
            "an absent bridge is skipped"
        );
    }

    #[test]
    fn other_segments_overlaps_and_clipping() {
        let bridge = |nm: &[u8], seg: u8, first: u8, last: u8| {
            device(
                nm,
                &[
                    name(b"_HID", &eisa(false)),
                    name(b"_SEG", &byte(seg)),
                    name(b"_CRS", &crs_buses(first.into(), last.into())),
                ]
                .concat(),
            )
        };
        let dsdt = table(
            &[
                bridge(b"PCI0", 0, 0, 0xFF),
                bridge(b"PCI1", 1, 0, 0xFF),
                bridge(b"PCI2", 0, 0x80, 0x8F),
                bridge(b"PCI3", 0, 0x80, 0x80),
            ]
            .concat(),
        );
        let (roots, problems) = root_buses(&host_bridges(&dsdt));
        // PCI2 starts inside PCI0's 0-0xff: it is left out (its buses are PCI0's); PCI3 likewise.
        let ranges: StdVec<(u8, u8)> = roots.iter().map(|r| (r.first, r.last)).collect();
        assert_eq!(ranges, [(0, 0xFF)]);
        assert!(problems.contains(&RootProblem::OtherSegment {
            bridge: *b"PCI1",
            segment: 1
        }));
        assert!(problems.contains(&RootProblem::Overlap {
            bridge: *b"PCI2",
            other: *b"PCI0"
        }));
        // Listed the other way round, the same: a static _CRS range is authoritative.
        let dsdt = table(&[bridge(b"PCI2", 0, 0x80, 0x8F), bridge(b"PCI0", 0, 0, 0xFF)].concat());
        let (roots, problems) = root_buses(&host_bridges(&dsdt));
        let ranges: StdVec<(u8, u8)> = roots.iter().map(|r| (r.first, r.last)).collect();
        assert_eq!(ranges, [(0, 0xFF)]);
        assert_eq!(
            problems.as_slice(),
            &[RootProblem::Overlap {
                bridge: *b"PCI2",
                other: *b"PCI0"
            }]
        );
        // A range from _BBN alone (to 0xff) ends before the next root bus, silently (Supermicro's PCI0/PCI1
        // with Method _CRS); two static ranges that overlap are cut with a problem.
        let bbn_only = device(
            b"PCI0",
            &[name(b"_HID", &eisa(false)), name(b"_BBN", &[0])].concat(),
        );
        let dsdt = table(&[bbn_only, bridge(b"PCI1", 0, 0x80, 0xFE)].concat());
        let (roots, problems) = root_buses(&host_bridges(&dsdt));
        let ranges: StdVec<(u8, u8)> = roots.iter().map(|r| (r.first, r.last)).collect();
        assert_eq!(
            (ranges.as_slice(), problems.as_slice()),
            (&[(0, 0x7F), (0x80, 0xFE)][..], &[][..])
        );
        let dsdt = table(
            &[
                bridge(b"PCI0", 0, 0x10, 0x8F),
                bridge(b"PCI1", 0, 0x90, 0xFF),
                bridge(b"PCI9", 0, 0, 0x20),
            ]
            .concat(),
        );
        let (roots, problems) = root_buses(&host_bridges(&dsdt));
        let ranges: StdVec<(u8, u8)> = roots.iter().map(|r| (r.first, r.last)).collect();
        assert_eq!(
            ranges,
            [(0, 0x20), (0x90, 0xFF)],
            "the lower root bus's static range wins"
        );
        assert_eq!(
            problems.as_slice(),
            &[RootProblem::Overlap {
                bridge: *b"PCI0",
                other: *b"PCI9"
            }]
        );
        // A static range cut by the next root bus's number (only _BBN known there) is reported.
        let next = device(
            b"PCI1",
            &[name(b"_HID", &eisa(false)), name(b"_BBN", &byte(0x40))].concat(),
        );
        let dsdt = table(&[bridge(b"PCI0", 0, 0, 0x7F), next].concat());
        let (roots, problems) = root_buses(&host_bridges(&dsdt));
        let ranges: StdVec<(u8, u8)> = roots.iter().map(|r| (r.first, r.last)).collect();
        assert_eq!(ranges, [(0, 0x7F)]);
        assert_eq!(
            problems.as_slice(),
            &[RootProblem::Overlap {
                bridge: *b"PCI1",
                other: *b"PCI0"
            }]
        );
    }

    #[test]
    fn no_host_bridge_and_references_are_not_definitions() {
        assert!(host_bridges(&table(&[])).bridges.is_empty());
        // `Return (_HID)` and a _HID outside every device.
        let dsdt = table(&[&[RETURN_OP][..], b"_HID", &name(b"_HID", &eisa(false))].concat());
        assert!(host_bridges(&dsdt).bridges.is_empty());
    }

    #[test]
    fn too_many_bridges_are_reported() {
        let many: StdVec<u8> = (0..MAX_HOST_BRIDGES + 3)
            .flat_map(|i| device(format!("P{i:03}").as_bytes(), &name(b"_HID", &eisa(false))))
            .collect();
        let b = host_bridges(&table(&many));
        assert_eq!(b.bridges.len(), MAX_HOST_BRIDGES);
        assert_eq!(b.problems.as_slice(), &[DiscoveryProblem::TooManyBridges]);
    }

    // ---- The real tables ------------------------------------------------------------------------------------

    const Q35_TABLES: &[u8] = include_bytes!("acpi/qemu-7.2-q35-tables.dat");
    const PC_TABLES: &[u8] = include_bytes!("acpi/qemu-7.2-pc-tables.dat");

    #[test]
    fn qemu_7_2_default_machines_have_one_root_bus() {
        for (dsdt, pcie) in [
            (&Q35_TABLES[0x40..0x40 + 8263], true),
            (&PC_TABLES[0x40..0x40 + 6416], false),
        ] {
            let b = host_bridges(dsdt);
            assert_eq!(b.bridges.len(), 1, "{:?}", b.bridges);
            assert_eq!((b.bridges[0].name, b.bridges[0].pcie), (*b"PCI0", pcie));
            let (roots, problems) = root_buses(&b);
            assert!(problems.is_empty());
            assert_eq!((roots[0].first, roots[0].last), (0, 0xFF));
        }
    }

    /// The body of `fuzz/fuzz_targets/hostbridge.rs`, run here over its seeds' shapes (the fuzz crate needs a
    /// nightly toolchain).
    fn fuzz_body(data: &[u8]) {
        use crate::platform::ecam::{self, Claim, EcamSource, EcamWindow, Owner};
        let mut bridges = HostBridges::default();
        bridges.add_table(data, 0);
        bridges.add_table(data, 1);
        for b in bridges.bridges.iter() {
            let _ = (b.buses(), b.segment());
        }
        let (roots, problems) = root_buses(&bridges);
        for w in roots.windows(2) {
            assert!(
                w[0].first <= w[0].last && w[0].last < w[1].first,
                "root bus ranges overlap: {roots:?}"
            );
        }
        for p in problems.iter() {
            let _ = p.misses_functions();
        }
        let claims = [
            Claim {
                start: 0,
                end: 0x1000_0000,
                owner: Owner::Memory(1),
            },
            Claim {
                start: 0xFEC0_0000,
                end: 0xFEC0_1000,
                owner: Owner::IoApic(0),
            },
        ];
        for r in roots.iter() {
            if let Some(base) = r.cba {
                let w = EcamWindow {
                    base,
                    bus_start: r.first,
                    bus_end: r.last,
                    source: EcamSource::Cba(r.bridge),
                };
                let _ = ecam::check_window(&w, &claims);
            }
        }
    }

    #[test]
    fn fuzz_entry_point_on_the_seed_shapes() {
        let expanders = table(
            &[
                qemu_q35_pci0(0x7F),
                qemu_expander(0x80, true, 0x81),
                qemu_expander(0xA0, true, 0xA3),
            ]
            .concat(),
        );
        for seed in [
            &Q35_TABLES[0x40..0x40 + 8263],
            &PC_TABLES[0x40..0x40 + 6416],
            &expanders[..],
        ] {
            fuzz_body(seed);
            let mut rng = 0x9E37_79B9_7F4A_7C15u64;
            for _ in 0..500 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let mut t = seed.to_vec();
                let i = (rng as usize) % t.len();
                t[i] = (rng >> 40) as u8;
                t.truncate(t.len() - (rng >> 20) as usize % 64);
                fuzz_body(&t);
            }
        }
    }

    /// Found by the `hostbridge` fuzz target: a device with more than 16 own `_HID`/`_CID` Names panicked
    /// (a fixed-capacity copy of them overflowed). Now all are read: the 17th `_CID` says PNP0A08.
    #[test]
    fn many_hid_cid_names_are_all_read() {
        let mut body = [name(b"_HID", &eisa(false)), name(b"_BBN", &byte(0))].concat();
        for _ in 0..16 {
            body.extend(name(b"_CID", &eisa(false)));
        }
        body.extend(name(b"_CID", &eisa(true)));
        let dsdt = table(&device(b"PCI0", &body));
        let b = host_bridges(&dsdt);
        assert_eq!(b.bridges.len(), 1);
        assert!(b.bridges[0].pcie, "the 17th _CID (PNP0A08) was not read");
        let _ = root_buses(&b);
    }

    /// Every truncation and byte flip of the q35 table with expanders ends in a value, never a panic.
    #[test]
    fn hostile_input_never_panics() {
        let dsdt = table(&[qemu_q35_pci0(0x7F), qemu_expander(0x80, true, 0x81)].concat());
        for cut in 0..dsdt.len() {
            let b = host_bridges(&dsdt[..cut]);
            let _ = root_buses(&b);
        }
        let mut x = 0x1234_5678_9ABC_DEF0u64;
        for _ in 0..3000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut t = dsdt.clone();
            let i = (x as usize) % t.len();
            t[i] = (x >> 32) as u8;
            let _ = root_buses(&host_bridges(&t));
        }
    }
}
/// Real machines' tables (`../shared/acpi-corpus`, beside the project for every developer and CI run) against
/// what ACPICA evaluated for them.
#[cfg(test)]
mod corpus {
    use super::*;
    use std::{path::Path, string::String as StdString, vec::Vec as StdVec};

    /// The value of `"key": <number or null>` in one root bridge's JSON text.
    fn field(obj: &str, key: &str) -> Option<u64> {
        let at = obj.find(&format!("\"{key}\": "))? + key.len() + 4;
        let digits: StdString = obj[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.parse().ok()
    }

    #[test]
    fn every_root_bridge_acpica_finds_is_found_with_its_static_values() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/acpi-corpus");
        let mut machines: StdVec<_> = std::fs::read_dir(&root)
            .unwrap_or_else(|e| panic!("{}: {e} (the corpus is part of ../shared)", root.display()))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("oracle.json").exists())
            .collect();
        machines.sort();
        assert!(machines.len() >= 30, "{} machines", machines.len());
        let (mut probed, mut checked) = (0, 0);
        for m in &machines {
            let mut files: StdVec<_> = std::fs::read_dir(m)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .collect();
            files.retain(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n == "dsdt.dat" || (n.starts_with("ssdt") && n.ends_with(".dat"))
            });
            files.sort();
            let mut b = HostBridges::default();
            for (i, f) in files.iter().enumerate() {
                b.add_table(&std::fs::read(f).unwrap(), i as u8);
            }
            let oracle = std::fs::read_to_string(m.join("oracle.json")).unwrap();
            let start = oracle.find("\"root_bridges\"").unwrap();
            let end = oracle[start..]
                .find("\n \"links\"")
                .map_or(oracle.len(), |e| start + e);
            let section = &oracle[start..end];
            for obj in section.split("{\n   \"path\": \"").skip(1) {
                let path = &obj[..obj.find('"').unwrap()];
                let seg = path.rsplit('.').next().unwrap().as_bytes();
                let ours = b
                    .bridges
                    .iter()
                    .find(|x| x.name == seg)
                    .unwrap_or_else(|| panic!("{}: {path} not found", m.display()));
                checked += 1;
                if let (Some(want), Value::Static(got)) = (field(obj, "bbn"), ours.bbn) {
                    assert_eq!(got, want, "{}: {path} _BBN", m.display());
                }
                if let (Some(want), Value::Static(got)) = (field(obj, "uid"), ours.uid) {
                    assert_eq!(got, want, "{}: {path} _UID", m.display());
                }
                if let (Some(want), Value::Static(got)) = (field(obj, "seg"), ours.seg) {
                    assert_eq!(got, want, "{}: {path} _SEG", m.display());
                }
            }
            let (roots, problems) = root_buses(&b);
            assert!(
                problems.iter().all(|p| !p.misses_functions()),
                "{}: {problems:?}",
                m.display()
            );
            probed += usize::from(needs_peer_probe(&problems) || roots.is_empty());
        }
        assert!(checked >= 38, "{checked} root bridges compared");
        // Most real firmware gives the root bus through Methods: the probe then finds it.
        assert!(
            probed > machines.len() / 2,
            "{probed} of {} machines need the probe",
            machines.len()
        );
    }
}
