//! What the ACPI namespace says about PCI: root bridges, their bus ranges and segments, and every `_PRT`
//! turned into INTx routes, from the DSDT and every SSDT evaluated by `msifw-aml` (ACPI 6.5 §6.1, §6.2.13,
//! §6.5.5, §6.5.6), read the way Linux reads them (`drivers/acpi/pci_root.c`, `pci_irq.c`, `pci_link.c`).
//!
//! [`load`] is pure: every operation-region access goes to the caller's [`Regions`] (the firmware's reads
//! the hardware, the host's pre-flight and tests answer from an overlay). A PCI_Config access reaches it
//! with a flat address ([`pci_config_address`]) for the function the region's device decodes, located as
//! ACPICA's `AcpiHwDerivePciId` does: the root bridge's `_SEG` and `_BBN`, then the `_ADR` of each device
//! from below the root bridge down to the region's, each bridge on the way giving its secondary bus.
//!
//! What cannot be evaluated is a typed [`NsError`] naming the object's path and what stopped it (an
//! opcode, a region, a budget), and a [`NsProblem`] when it matters to the run; nothing panics.

#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use alloc::boxed::Box;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;

use msifw_aml::pci::{self, PrtEntry};
use msifw_aml::{Aml, Budget, ErrorKind, Limits, NodeId, Obj, Regions, Value};

use super::crs::{self, CrsError, HostWindows};

/// Address space ids (ACPI 6.5 §19.6.100, Table 19.405).
pub const SPACE_SYSTEM_MEMORY: u8 = 0;
/// System I/O.
pub const SPACE_SYSTEM_IO: u8 = 1;
/// PCI configuration space.
pub const SPACE_PCI_CONFIG: u8 = 2;

/// The flat address a PCI_Config access reaches [`Regions`] with: segment in bits 47:32, bus 27:20,
/// device 19:15, function 14:12, the register offset 11:0 (ECAM's layout, with the segment above).
pub const fn pci_config_address(seg: u16, bus: u8, dev: u8, func: u8, offset: u16) -> u64 {
    (seg as u64) << 32
        | (bus as u64) << 20
        | ((dev & 0x1F) as u64) << 15
        | ((func & 7) as u64) << 12
        | (offset & 0xFFF) as u64
}

/// The parts of a [`pci_config_address`]: (segment, bus, device, function, offset).
pub const fn split_pci_config_address(addr: u64) -> (u16, u8, u8, u8, u16) {
    (
        (addr >> 32) as u16,
        (addr >> 20) as u8,
        ((addr >> 15) & 0x1F) as u8,
        ((addr >> 12) & 7) as u8,
        (addr & 0xFFF) as u16,
    )
}

/// What the namespace says about PCI.
#[derive(Debug, Clone, Default)]
pub struct PciNamespace {
    /// Every root bridge (`_HID`/`_CID` PNP0A03 or PNP0A08), in namespace order, present or not.
    pub roots: Vec<RootBridge>,
    /// Every interrupt link a `_PRT` names, and every other PNP0C0F device.
    pub links: Vec<Link>,
    /// What went wrong, one line each.
    pub problems: Vec<NsProblem>,
}

/// A `_UID`: an Integer or a String (ACPI 6.5 §6.1.12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uid {
    /// An Integer.
    Int(u64),
    /// A String.
    Str(String),
}

/// An object's value: `Ok(None)` when the object does not exist.
pub type Opt<T> = Result<Option<T>, NsError>;

/// A PCI root bridge.
#[derive(Debug, Clone)]
pub struct RootBridge {
    /// Its namespace path (`\_SB.PCI0`).
    pub path: String,
    /// Present per `_STA` bit 0 (ACPI 6.5 §6.3.7; no `_STA` means present; one that cannot be evaluated
    /// is taken as present, and [`RootBridge::sta`] keeps the error).
    pub present: bool,
    /// `_STA`.
    pub sta: Opt<u64>,
    /// `_BBN`.
    pub bbn: Opt<u64>,
    /// `_SEG` (absent: segment 0).
    pub seg: Opt<u64>,
    /// `_UID`.
    pub uid: Opt<Uid>,
    /// The bus range: the `_CRS` bus-number descriptor (producer or consumer, as Linux's
    /// `get_root_bridge_busnr_callback` takes it), else `_BBN` to 0xFF, else 0 to 0xFF without `_BBN`.
    pub buses: Result<(u8, u8), NsError>,
    /// Where [`RootBridge::buses`] came from.
    pub buses_from: BusSource,
    /// `_CRS`, the raw resource template.
    pub crs_raw: Opt<Vec<u8>>,
    /// `_CRS` decoded into windows (`crs::parse_template`).
    pub crs: Opt<Result<HostWindows, CrsError>>,
    /// `_CBA`, the ECAM base (ACPI 6.5 §6.5.7).
    pub cba: Opt<u64>,
    /// `_PRT` (`Ok(None)`: the bridge has none).
    pub prt: Opt<Vec<Route>>,
    /// Every device below it with a `_PRT`, depth first in namespace order.
    pub bridges: Vec<BridgePrt>,
}

impl RootBridge {
    /// The segment: `_SEG`, 0 without one.
    pub fn segment(&self) -> Result<u16, NsError> {
        match &self.seg {
            Ok(None) => Ok(0),
            Ok(Some(s)) => Ok(*s as u16),
            Err(e) => Err(e.clone()),
        }
    }
}

/// Where a root bridge's bus range came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusSource {
    /// A bus-number descriptor of `_CRS`.
    Crs,
    /// `_BBN` (to 0xFF).
    Bbn,
    /// Neither: 0 to 0xFF.
    Default,
    /// Not known (see the error).
    Unknown,
}

/// A device below a root bridge with a `_PRT` (a PCI-to-PCI bridge, a root port).
#[derive(Debug, Clone)]
pub struct BridgePrt {
    /// Its namespace path.
    pub path: String,
    /// The `_ADR` of each device from below the root bridge down to this one (`device << 16 | function`);
    /// `None` where one could not be evaluated (then it matches no PCI function).
    pub adr_chain: Vec<Option<u32>>,
    /// Its `_PRT`.
    pub prt: Result<Vec<Route>, NsError>,
}

/// One `_PRT` entry: INTx `pin` of device `slot` on the bus below the `_PRT`'s device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The device number.
    pub slot: u8,
    /// 0-3 for INTA-INTD.
    pub pin: u8,
    /// Where it goes.
    pub target: Target,
}

/// Where a `_PRT` entry's interrupt goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A GSI (level-triggered, active low: ACPI 6.5 §6.2.13).
    Gsi(u32),
    /// A link device's resource.
    Link {
        /// The link's path.
        path: String,
        /// The resource index in the entry.
        index: u32,
        /// The link's interrupt, where its `_STA` and `_CRS` evaluate.
        resolved: Result<LinkIrq, NsError>,
    },
}

/// A link device's current interrupt, from its `_CRS` (Linux `acpi_pci_link_check_current`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkIrq {
    /// The GSI (an IRQ descriptor's IRQ is its GSI in APIC mode).
    pub gsi: u32,
    /// Level-triggered (else edge).
    pub level: bool,
    /// Active low (else high).
    pub active_low: bool,
}

/// A PNP0C0F interrupt link device.
#[derive(Debug, Clone)]
pub struct Link {
    /// Its path.
    pub path: String,
    /// `_STA`.
    pub sta: Opt<u64>,
    /// Its current interrupt.
    pub irq: Result<LinkIrq, NsError>,
}

/// What could not be evaluated, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsError {
    /// The object asked for (`\_SB.PCI0._PRT`).
    pub path: String,
    /// Why.
    pub cause: Cause,
}

/// Why an object could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The evaluator stopped: what stopped it, the method or scope it was in, the table (load order)
    /// and byte offset.
    Aml {
        /// What stopped it.
        kind: AmlCause,
        /// The method or scope being evaluated.
        scope: String,
        /// The table, by load order (0 the DSDT).
        table: u16,
        /// The byte offset in that table.
        offset: u32,
    },
    /// A value of the wrong type (a `_PRT` that is not a package of 4-element packages, a `_CRS` that is
    /// not a buffer).
    Type,
    /// A link whose `_STA` says it is disabled, or whose `_CRS` lists no interrupt (Linux then
    /// programs one through `_SRS`, which msifw does not).
    LinkDisabled,
    /// A link `_CRS` without an IRQ or Extended Interrupt descriptor.
    NoInterrupt,
    /// A root bridge without a bus range (`_CRS` has none and `_BBN` failed).
    NoBusRange,
}

/// What stopped the evaluator ([`msifw_aml::ErrorKind`] with the region named).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmlCause {
    /// An opcode the evaluator does not know.
    UnknownOpcode(u16),
    /// A known opcode it does not evaluate statically.
    Unsupported(u16),
    /// An operation-region access that could not be answered: the address space and the region's path.
    Region {
        /// ACPI 6.5 §19.6.100 address space id.
        space: u8,
        /// The OperationRegion.
        region: String,
    },
    /// A name resolving to nothing.
    NotFound,
    /// A name defined twice.
    Exists,
    /// Bytes that are not AML.
    Malformed,
    /// An operand of the wrong type.
    Type,
    /// Division by zero.
    DivideByZero,
    /// `Fatal`.
    Fatal,
    /// A budget ran out.
    Budget(Budget),
}

impl fmt::Display for AmlCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownOpcode(op) => write!(f, "unknown opcode {op:#x}"),
            Self::Unsupported(op) => write!(f, "opcode {op:#x} not evaluated statically"),
            Self::Region { space, region } => {
                write!(f, "{} region {region} not answerable", space_name(*space))
            }
            Self::NotFound => f.write_str("a name resolves to nothing"),
            Self::Exists => f.write_str("a name defined twice"),
            Self::Malformed => f.write_str("malformed AML"),
            Self::Type => f.write_str("an operand of the wrong type"),
            Self::DivideByZero => f.write_str("division by zero"),
            Self::Fatal => f.write_str("Fatal executed"),
            Self::Budget(b) => write!(
                f,
                "{} budget exhausted",
                match b {
                    Budget::Steps => "step",
                    Budget::Depth => "depth",
                    Budget::Memory => "memory",
                }
            ),
        }
    }
}

fn space_name(space: u8) -> &'static str {
    match space {
        SPACE_SYSTEM_MEMORY => "SystemMemory",
        SPACE_SYSTEM_IO => "SystemIO",
        SPACE_PCI_CONFIG => "PCI_Config",
        3 => "EmbeddedControl",
        4 => "SMBus",
        5 => "SystemCMOS",
        6 => "PciBarTarget",
        7 => "IPMI",
        8 => "GeneralPurposeIO",
        9 => "GenericSerialBus",
        10 => "PCC",
        _ => "OEM",
    }
}

impl fmt::Display for NsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path)?;
        match &self.cause {
            Cause::Aml {
                kind,
                scope,
                table,
                offset,
            } => {
                write!(f, "cannot evaluate statically: {kind} in {scope} (table {table} offset {offset:#x})")
            }
            Cause::Type => f.write_str("value of the wrong type"),
            Cause::LinkDisabled => {
                f.write_str("link disabled (no current interrupt; msifw does not run _SRS)")
            }
            Cause::NoInterrupt => f.write_str("_CRS has no interrupt descriptor"),
            Cause::NoBusRange => {
                f.write_str("no bus range (_CRS has none, _BBN cannot be evaluated)")
            }
        }
    }
}

/// One problem of the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsProblem {
    /// A table that is not a DSDT or SSDT or whose header is bad: its index in the list given.
    BadTable(usize),
    /// Something in a table that failed to load (the rest loaded).
    Load(NsError),
    /// More load failures than are kept: how many in all.
    MoreLoadProblems(u32),
    /// `\_PIC(1)` failed: `_PRT`s may take their PIC-mode branch.
    Pic(NsError),
    /// A root bridge value routing needs could not be evaluated.
    Root(NsError),
    /// A `_PRT` that could not be evaluated (root bridge or bridge).
    Prt(NsError),
    /// A `_PRT` entry that addresses no PCI device (device above 31, pin above 3): its `_PRT` path, slot
    /// and pin as given; left out.
    BadEntry {
        /// The `_PRT`'s device.
        path: String,
        /// The device number given.
        slot: u64,
        /// The pin given.
        pin: u64,
    },
}

impl fmt::Display for NsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadTable(i) => write!(f, "AML table {i} is not a loadable DSDT/SSDT; skipped"),
            Self::Load(NsError {
                cause:
                    Cause::Aml {
                        kind,
                        scope,
                        table,
                        offset,
                    },
                ..
            }) => {
                write!(f, "load: table {table} offset {offset:#x} (in {scope}): {kind}; the rest of the table loaded")
            }
            Self::Load(e) => write!(f, "load: {e}"),
            Self::MoreLoadProblems(n) => write!(f, "load: {n} problems in all"),
            Self::Pic(e) => write!(f, "\\_PIC(1): {e}"),
            Self::Root(e) => write!(f, "root bridge: {e}"),
            Self::Prt(e) => write!(f, "_PRT: {e}"),
            Self::BadEntry { path, slot, pin } => {
                write!(f, "{path}._PRT: entry for device {slot:#x} pin {pin} addresses no PCI device; left out")
            }
        }
    }
}

// ---- The region adapter ---------------------------------------------------------------------------------

/// A PCI_Config region's function: segment, the root bridge's `_BBN`, the `_ADR` chain below it.
#[derive(Debug, Clone)]
struct PciLocation {
    seg: u16,
    bbn: u8,
    chain: Vec<u32>,
}

type RegionMap = Rc<RefCell<Vec<(NodeId, Option<PciLocation>)>>>;

/// Passes accesses to the caller's regions, PCI_Config ones with the function located.
struct Located<'r> {
    inner: &'r mut dyn Regions,
    map: RegionMap,
}

impl Located<'_> {
    fn locate(&mut self, region: NodeId, offset: u64) -> Option<u64> {
        let loc = self
            .map
            .borrow()
            .iter()
            .find(|(n, _)| *n == region)?
            .1
            .clone()?;
        let offset = u16::try_from(offset).ok().filter(|o| *o < 0x1000)?;
        let mut bus = loc.bbn;
        let (last, above) = loc.chain.split_last()?;
        // AcpiHwDerivePciId: each device above the region's is a bridge whose secondary bus the next
        // one sits on (header type 1 or 2, PCI 3.0 §6.1; secondary bus number at 0x19).
        for adr in above {
            let (dev, func) = ((adr >> 16) as u8, (adr & 0xFFFF) as u8);
            let header = self.inner.read(
                region,
                SPACE_PCI_CONFIG,
                pci_config_address(loc.seg, bus, dev, func, 0x0E),
                1,
            )?;
            if !matches!(header & 0x7F, 1 | 2) {
                return None;
            }
            bus = self.inner.read(
                region,
                SPACE_PCI_CONFIG,
                pci_config_address(loc.seg, bus, dev, func, 0x19),
                1,
            )? as u8;
        }
        let (dev, func) = ((last >> 16) as u8, (last & 0xFFFF) as u8);
        if dev > 31 || func > 7 {
            return None;
        }
        Some(pci_config_address(loc.seg, bus, dev, func, offset))
    }
}

impl Regions for Located<'_> {
    fn read(&mut self, region: NodeId, space: u8, addr: u64, width: u8) -> Option<u64> {
        let addr = if space == SPACE_PCI_CONFIG {
            self.locate(region, addr)?
        } else {
            addr
        };
        self.inner.read(region, space, addr, width)
    }

    fn write(&mut self, region: NodeId, space: u8, addr: u64, width: u8, value: u64) -> bool {
        let addr = if space == SPACE_PCI_CONFIG {
            match self.locate(region, addr) {
                Some(a) => a,
                None => return false,
            }
        } else {
            addr
        };
        self.inner.write(region, space, addr, width, value)
    }
}

// ---- Loading and evaluating ---------------------------------------------------------------------------

fn error(aml: &Aml, path: String, e: msifw_aml::Error) -> NsError {
    let kind = match e.kind {
        ErrorKind::UnknownOpcode(op) => AmlCause::UnknownOpcode(op),
        ErrorKind::Unsupported(op) => AmlCause::Unsupported(op),
        ErrorKind::Region { space, region } => AmlCause::Region {
            space,
            region: aml.path(region),
        },
        ErrorKind::NotFound => AmlCause::NotFound,
        ErrorKind::Exists => AmlCause::Exists,
        ErrorKind::Malformed => AmlCause::Malformed,
        ErrorKind::Type => AmlCause::Type,
        ErrorKind::DivideByZero => AmlCause::DivideByZero,
        ErrorKind::Fatal => AmlCause::Fatal,
        ErrorKind::Budget(b) => AmlCause::Budget(b),
    };
    NsError {
        path,
        cause: Cause::Aml {
            kind,
            scope: aml.path(e.scope),
            table: e.table,
            offset: e.offset,
        },
    }
}

fn child_path(aml: &Aml, node: NodeId, seg: &str) -> String {
    format!("{}.{seg}", aml.path(node))
}

/// `seg` below `node` as an Integer.
fn integer(aml: &mut Aml, node: NodeId, seg: &[u8; 4]) -> Opt<u64> {
    match aml.eval_child(node, seg) {
        None => Ok(None),
        Some(Ok(Value::Int(v))) => Ok(Some(v)),
        Some(Ok(_)) => Err(NsError {
            path: seg_path(aml, node, seg),
            cause: Cause::Type,
        }),
        Some(Err(e)) => Err(error(aml, seg_path(aml, node, seg), e)),
    }
}

/// `\_SB.PCI0._STA`: the path of `seg` below `node`.
fn seg_path(aml: &Aml, node: NodeId, seg: &[u8; 4]) -> String {
    let keep = seg.iter().rposition(|&b| b != b'_').map_or(1, |p| p + 1);
    let s: String = seg.iter().take(keep).map(|&b| char::from(b)).collect();
    child_path(aml, node, &s)
}

fn from_eval<T>(aml: &Aml, node: NodeId, seg: &[u8; 4], v: pci::Eval<T>) -> Opt<T> {
    match v {
        None => Ok(None),
        Some(Ok(v)) => Ok(Some(v)),
        Some(Err(e)) if e.kind == ErrorKind::Type && e.offset == 0 && e.table == 0 => {
            Err(NsError {
                path: seg_path(aml, node, seg),
                cause: Cause::Type,
            })
        }
        Some(Err(e)) => Err(error(aml, seg_path(aml, node, seg), e)),
    }
}

/// Loads `tables` (the DSDT first, then the SSDTs in XSDT order) into one namespace, calls `\_PIC(1)` and
/// reads every root bridge, every `_PRT` and every link. Operation-region accesses go to `regions`
/// (PCI_Config ones at [`pci_config_address`]).
pub fn load(tables: &[&[u8]], regions: &mut dyn Regions) -> PciNamespace {
    load_with(tables, regions, Limits::default())
}

/// [`load`] with the evaluator's budgets given (the firmware fits the memory budget to its heap).
pub fn load_with(tables: &[&[u8]], regions: &mut dyn Regions, limits: Limits) -> PciNamespace {
    let map: RegionMap = Rc::new(RefCell::new(Vec::new()));
    let mut aml = Aml::new(Box::new(Located {
        inner: regions,
        map: map.clone(),
    }));
    aml.limits = limits;
    let mut ns = PciNamespace::default();
    for (i, t) in tables.iter().enumerate() {
        if aml.load(t).is_err() {
            ns.problems.push(NsProblem::BadTable(i));
        }
    }
    let (load_problems, count) = aml.problems();
    let load_problems = load_problems.to_vec();
    for e in load_problems.iter() {
        let p = aml.path(e.scope);
        ns.problems.push(NsProblem::Load(error(&aml, p, *e)));
    }
    if count as usize > load_problems.len() {
        ns.problems.push(NsProblem::MoreLoadProblems(count));
    }
    let located = locate_pci_regions(&mut aml);
    *map.borrow_mut() = located;
    if let Some(Err(e)) = pci::set_apic_mode(&mut aml) {
        ns.problems
            .push(NsProblem::Pic(error(&aml, String::from("\\_PIC"), e)));
    }
    // Every PNP0C0F link once; a _PRT naming another device evaluates it when first met.
    let mut links: Vec<(NodeId, Link)> = Vec::new();
    for l in pci::links(&mut aml) {
        let link = link_from(&aml, l.node, l.sta, l.crs);
        links.push((l.node, link));
    }
    for r in pci::root_bridges(&mut aml) {
        let root = root_bridge(&mut aml, r, &mut links, &mut ns.problems);
        ns.roots.push(root);
    }
    ns.links = links.into_iter().map(|(_, l)| l).collect();
    ns
}

/// Every PCI_Config OperationRegion with the function its device decodes (ACPI 6.5 §6.5.4: the region's
/// device's `_ADR`, under the nearest root bridge's `_SEG` and `_BBN`; ACPICA `AcpiEvPciConfigRegionSetup`).
fn locate_pci_regions(aml: &mut Aml) -> Vec<(NodeId, Option<PciLocation>)> {
    let mut out = Vec::new();
    for id in 0..aml.len() as NodeId {
        if !matches!(
            aml.node(id).map(|n| &n.obj),
            Some(Obj::Region(SPACE_PCI_CONFIG, ..))
        ) {
            continue;
        }
        let mut chain = Vec::new();
        let mut at = aml.node(id).map_or(0, |n| n.parent);
        let mut root = None;
        let mut ok = true;
        // ACPICA: the region's parent device up to the first PNP0A03/PNP0A08 device; without one, the
        // namespace root stands in (bus 0, segment 0).
        while at != msifw_aml::ROOT && chain.len() < 32 {
            if aml.is_device(at) && pci::has_id(aml, at, &[b"PNP0A03", b"PNP0A08"]) {
                root = Some(at);
                break;
            }
            if aml.is_device(at) {
                match aml.eval_child(at, b"_ADR") {
                    Some(Ok(Value::Int(a))) => chain.push(a as u32),
                    // ACPICA: a device without _ADR is skipped; one whose _ADR fails ends the setup.
                    None => {}
                    Some(_) => ok = false,
                }
            }
            at = aml.node(at).map_or(msifw_aml::ROOT, |n| n.parent);
        }
        // ACPICA: the device is the region's own parent, the root bridge itself included (its `_ADR`,
        // 0 when it has none: the host bridge's function on `_BBN`).
        if let (true, Some(r)) = (chain.is_empty(), root) {
            match aml.eval_child(r, b"_ADR") {
                Some(Ok(Value::Int(a))) => chain.push(a as u32),
                None => chain.push(0),
                Some(_) => ok = false,
            }
        }
        chain.reverse();
        let (seg, bbn) = match root {
            Some(r) => {
                let seg = match aml.eval_child(r, b"_SEG") {
                    Some(Ok(Value::Int(s))) => s as u16,
                    None => 0,
                    Some(_) => {
                        ok = false;
                        0
                    }
                };
                let bbn = match aml.eval_child(r, b"_BBN") {
                    Some(Ok(Value::Int(b))) => b as u8,
                    None => 0,
                    Some(_) => {
                        ok = false;
                        0
                    }
                };
                (seg, bbn)
            }
            None => (0, 0),
        };
        let loc = (ok && !chain.is_empty()).then_some(PciLocation { seg, bbn, chain });
        out.push((id, loc));
    }
    out
}

/// The bus ranges of a host bridge's `_CRS` as Linux's `get_root_bridge_busnr_callback` reads them:
/// every bus-number address descriptor with a length, producer or consumer, as `_MIN` to `_MIN + _LEN - 1`.
fn bus_ranges(crs: &[u8]) -> Vec<(u64, u64)> {
    msifw_aml::resource::addresses(crs)
        .iter()
        .filter(|a| a.rtype == 2 && a.len > 0)
        .map(|a| (a.min, a.min.saturating_add(a.len - 1)))
        .collect()
}

fn uid(aml: &mut Aml, node: NodeId, v: pci::Eval<Value>) -> Opt<Uid> {
    match from_eval(aml, node, b"_UID", v)? {
        None => Ok(None),
        Some(Value::Int(i)) => Ok(Some(Uid::Int(i))),
        Some(Value::Str(s)) => Ok(Some(Uid::Str(s.iter().map(|&b| char::from(b)).collect()))),
        Some(_) => Err(NsError {
            path: seg_path(aml, node, b"_UID"),
            cause: Cause::Type,
        }),
    }
}

fn root_bridge(
    aml: &mut Aml,
    r: pci::RootBridge,
    links: &mut Vec<(NodeId, Link)>,
    problems: &mut Vec<NsProblem>,
) -> RootBridge {
    let path = aml.path(r.node);
    let sta = from_eval(aml, r.node, b"_STA", r.sta);
    let bbn = from_eval(aml, r.node, b"_BBN", r.bbn);
    let seg = from_eval(aml, r.node, b"_SEG", r.seg);
    let uid = uid(aml, r.node, r.uid);
    let crs_raw = from_eval(aml, r.node, b"_CRS", r.crs);
    let bus_ranges = match &crs_raw {
        Ok(Some(b)) => bus_ranges(b),
        _ => Vec::new(),
    };
    let crs = match &crs_raw {
        Ok(Some(b)) => Ok(Some(crs::parse_template(b))),
        Ok(None) => Ok(None),
        Err(e) => Err(e.clone()),
    };
    let cba = integer(aml, r.node, b"_CBA");
    // ACPI 6.5 §6.3.7: bit 0 present; no _STA means all bits set.
    let present = !matches!(sta, Ok(Some(s)) if s & 1 == 0);
    // Linux acpi_pci_root_add: the _CRS bus range; failing that [_BBN, 0xFF]; no _BBN: [0, 0xFF].
    let (buses, buses_from) = match bus_ranges.last() {
        Some(&(lo, hi)) => (Ok((lo.min(0xFF) as u8, hi.min(0xFF) as u8)), BusSource::Crs),
        None => match &bbn {
            Ok(Some(b)) => (Ok(((*b).min(0xFF) as u8, 0xFF)), BusSource::Bbn),
            Ok(None) => (Ok((0, 0xFF)), BusSource::Default),
            Err(e) => (
                Err(NsError {
                    path: path.clone(),
                    cause: e.cause.clone(),
                }),
                BusSource::Unknown,
            ),
        },
    };
    if present {
        for e in [sta.as_ref().err(), seg.as_ref().err(), buses.as_ref().err()]
            .into_iter()
            .flatten()
        {
            problems.push(NsProblem::Root(e.clone()));
        }
    }
    let prt_path = format!("{path}._PRT");
    let prt = match r.prt {
        None => Ok(None),
        Some(Ok(entries)) => Ok(Some(routes(aml, &path, &entries, links, problems))),
        Some(Err(e)) => {
            let e = error(aml, prt_path, e);
            if present {
                problems.push(NsProblem::Prt(e.clone()));
            }
            Err(e)
        }
    };
    let mut bridges = Vec::new();
    for b in r.bridges {
        let bpath = aml.path(b.node);
        let adr_chain = b.chain_adr.iter().map(|a| match a {
            Some(Ok(v)) => Some(*v as u32),
            _ => None,
        });
        let adr_chain = adr_chain.collect();
        let prt = match b.prt {
            Ok(entries) => Ok(routes(aml, &bpath, &entries, links, problems)),
            Err(e) => {
                let e = error(aml, format!("{bpath}._PRT"), e);
                if present {
                    problems.push(NsProblem::Prt(e.clone()));
                }
                Err(e)
            }
        };
        bridges.push(BridgePrt {
            path: bpath,
            adr_chain,
            prt,
        });
    }
    RootBridge {
        path,
        present,
        sta,
        bbn,
        seg,
        uid,
        buses,
        buses_from,
        crs_raw,
        crs,
        cba,
        prt,
        bridges,
    }
}

fn routes(
    aml: &mut Aml,
    owner: &str,
    entries: &[PrtEntry],
    links: &mut Vec<(NodeId, Link)>,
    problems: &mut Vec<NsProblem>,
) -> Vec<Route> {
    let mut out = Vec::with_capacity(entries.len());
    for e in entries {
        let (slot, pin) = (e.slot(), e.pin);
        if slot > 31 || pin > 3 {
            problems.push(NsProblem::BadEntry {
                path: String::from(owner),
                slot,
                pin,
            });
            continue;
        }
        let target = match e.source {
            None => Target::Gsi(e.index as u32),
            Some(n) => {
                let l = match links.iter().find(|(id, _)| *id == n) {
                    Some((_, l)) => l.clone(),
                    None => {
                        let l = link(aml, n);
                        links.push((n, l.clone()));
                        l
                    }
                };
                Target::Link {
                    path: l.path,
                    index: e.index as u32,
                    resolved: l.irq,
                }
            }
        };
        out.push(Route {
            slot: slot as u8,
            pin: pin as u8,
            target,
        });
    }
    out
}

/// A link's current interrupt: `_STA` (disabled: none), then the first interrupt of the first IRQ or
/// Extended Interrupt descriptor of `_CRS` (Linux `acpi_pci_link_get_current`, `..._check_current`).
fn link(aml: &mut Aml, node: NodeId) -> Link {
    let sta = aml.eval_child(node, b"_STA").map(|r| {
        r.and_then(|v| match v {
            Value::Int(i) => Ok(i),
            _ => Err(msifw_aml::Error {
                kind: ErrorKind::Type,
                table: 0,
                offset: 0,
                scope: node,
            }),
        })
    });
    let crs = aml.eval_child(node, b"_CRS").map(|r| {
        r.and_then(|v| match v {
            Value::Buf(b) => Ok(b),
            _ => Err(msifw_aml::Error {
                kind: ErrorKind::Type,
                table: 0,
                offset: 0,
                scope: node,
            }),
        })
    });
    link_from(aml, node, sta, crs)
}

/// A link from its evaluated `_STA` and `_CRS`.
fn link_from(aml: &Aml, node: NodeId, sta: pci::Eval<u64>, crs: pci::Eval<Vec<u8>>) -> Link {
    let path = aml.path(node);
    let sta = from_eval(aml, node, b"_STA", sta);
    let irq = match &sta {
        Err(e) => Err(e.clone()),
        // ACPI 6.5 §6.3.7 bit 1: enabled.
        Ok(Some(s)) if s & 2 == 0 => Err(NsError {
            path: path.clone(),
            cause: Cause::LinkDisabled,
        }),
        Ok(_) => match from_eval(aml, node, b"_CRS", crs) {
            Ok(None) => Err(NsError {
                path: format!("{path}._CRS"),
                cause: Cause::Aml {
                    kind: AmlCause::NotFound,
                    scope: path.clone(),
                    table: 0,
                    offset: 0,
                },
            }),
            Err(e) => Err(e),
            Ok(Some(b)) => match msifw_aml::resource::irqs(&b).first() {
                None => Err(NsError {
                    path: format!("{path}._CRS"),
                    cause: Cause::NoInterrupt,
                }),
                Some(i) => match i.irqs.first() {
                    None | Some(0) => Err(NsError {
                        path: path.clone(),
                        cause: Cause::LinkDisabled,
                    }),
                    Some(&gsi) => Ok(LinkIrq {
                        gsi,
                        level: i.level,
                        active_low: i.active_low,
                    }),
                },
            },
        },
    };
    Link { path, sta, irq }
}

// ---- Root buses ----------------------------------------------------------------------------------------

/// One root bus to enumerate: the buses `first..=last` below a present host bridge of segment 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootBus {
    /// The root bus number.
    pub first: u8,
    /// The last bus number it decodes.
    pub last: u8,
    /// The host bridge's last name segment (`PCI0`; `----` for a bus no table lists).
    pub bridge: [u8; 4],
    /// Its `_CBA`.
    pub cba: Option<u64>,
}

/// Why a present host bridge gives no root bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootProblem {
    /// Its segment cannot be evaluated.
    Unusable(NsError),
    /// It is in a segment other than 0, which msifw does not reach: its functions are not enumerated.
    OtherSegment {
        /// The bridge's path.
        bridge: String,
        /// Its segment.
        segment: u16,
    },
    /// Its bus range cannot be evaluated: the peer-bus probe finds its root bus instead.
    BusUnknown(NsError),
    /// Its root bus lies inside another bridge's `_CRS` range (or is the same): not scanned twice.
    Overlap {
        /// The bridge left out.
        bridge: String,
        /// The bridge whose range holds it.
        other: String,
    },
}

impl RootProblem {
    /// Whether functions may have been missed because of it (a run that had it cannot pass).
    pub fn misses_functions(&self) -> bool {
        matches!(self, Self::Unusable(_) | Self::OtherSegment { .. })
    }
}

impl fmt::Display for RootProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unusable(e) => write!(f, "host bridge segment unknown: {e}; its root bus is not enumerated"),
            Self::OtherSegment { bridge, segment } => write!(
                f,
                "host bridge {bridge} is in PCI segment {segment}; msifw reaches only segment 0, so its functions are not enumerated"
            ),
            Self::BusUnknown(e) => write!(f, "host bridge bus range unknown ({e}); probing the bus numbers not reached"),
            Self::Overlap { bridge, other } => {
                write!(f, "host bridge {bridge}'s root bus lies inside {other}'s bus range; not scanned twice")
            }
        }
    }
}

/// The last segment of a path, padded with `_` (`\_SB.PCI0` -> `PCI0`).
pub fn last_segment(path: &str) -> [u8; 4] {
    let mut seg = *b"____";
    let last = path.rsplit(['.', '\\']).next().unwrap_or("");
    for (d, s) in seg.iter_mut().zip(last.bytes()) {
        *d = s;
    }
    seg
}

/// The root buses of segment 0 to enumerate, lowest first, with disjoint ranges; and what was left out.
/// Absent bridges (`_STA`) are skipped, as Linux does. A `_CRS` bus range is authoritative: a later root bus
/// inside it is left out ([`RootProblem::Overlap`]); one from `_BBN` (or neither) runs to 0xFF and is cut
/// before the next root bus.
pub fn root_buses(ns: &PciNamespace) -> (Vec<RootBus>, Vec<RootProblem>) {
    let mut candidates: Vec<(RootBus, bool, &str)> = Vec::new();
    let mut problems = Vec::new();
    for r in ns.roots.iter().filter(|r| r.present) {
        match r.segment() {
            Err(e) => {
                problems.push(RootProblem::Unusable(e));
                continue;
            }
            Ok(0) => {}
            Ok(segment) => {
                problems.push(RootProblem::OtherSegment {
                    bridge: r.path.clone(),
                    segment,
                });
                continue;
            }
        }
        match &r.buses {
            Err(e) => problems.push(RootProblem::BusUnknown(e.clone())),
            Ok((first, last)) => {
                let cba = r.cba.clone().ok().flatten();
                let root = RootBus {
                    first: *first,
                    last: (*last).max(*first),
                    bridge: last_segment(&r.path),
                    cba,
                };
                candidates.push((root, r.buses_from == BusSource::Crs, &r.path));
            }
        }
    }
    // Among equal root buses the first listed stays (a stable sort).
    crate::sort::sort_by_key(&mut candidates, |(r, _, _)| r.first);
    let mut kept: Vec<(RootBus, bool, &str)> = Vec::new();
    for (root, known, path) in candidates {
        let inside = kept.iter().find(|(r, k, _)| {
            r.first == root.first || (*k && (r.first..=r.last).contains(&root.first))
        });
        if let Some((_, _, other)) = inside {
            problems.push(RootProblem::Overlap {
                bridge: String::from(path),
                other: String::from(*other),
            });
            continue;
        }
        kept.push((root, known, path));
    }
    let firsts: Vec<u8> = kept.iter().map(|(r, _, _)| r.first).collect();
    let mut roots = Vec::new();
    for (i, (mut r, _, _)) in kept.into_iter().enumerate() {
        if let Some(&next) = firsts.get(i + 1) {
            r.last = r.last.min(next.saturating_sub(1));
        }
        roots.push(r);
    }
    (roots, problems)
}

/// Whether some present host bridge's root bus is unknown, so the bus numbers not reached must be probed.
pub fn needs_peer_probe(problems: &[RootProblem]) -> bool {
    problems
        .iter()
        .any(|p| matches!(p, RootProblem::BusUnknown(_)))
}

/// Whether INTx routing can come from the namespace: some present root bridge's `_PRT` evaluated.
pub fn has_routing(ns: &PciNamespace) -> bool {
    ns.roots
        .iter()
        .any(|r| r.present && matches!(r.prt, Ok(Some(_))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use msifw_aml::Overlay;
    use std::path::{Path, PathBuf};
    use std::string::ToString;
    use std::vec;

    const Q35_TABLES: &[u8] = include_bytes!("acpi/qemu-7.2-q35-tables.dat");
    const PC_TABLES: &[u8] = include_bytes!("acpi/qemu-7.2-pc-tables.dat");

    fn q35_dsdt() -> &'static [u8] {
        &Q35_TABLES[0x40..0x40 + 8263]
    }
    fn pc_dsdt() -> &'static [u8] {
        &PC_TABLES[0x40..0x40 + 6416]
    }

    fn gsi(r: &Route) -> Option<u32> {
        match &r.target {
            Target::Gsi(g) => Some(*g),
            Target::Link {
                resolved: Ok(l), ..
            } => Some(l.gsi),
            Target::Link { .. } => None,
        }
    }

    /// PCI configuration space of a few functions by [`pci_config_address`]; every access is logged.
    #[derive(Default)]
    struct FakeConfig {
        bytes: Vec<(u64, u8)>,
        log: Vec<(u8, u64, u8)>,
    }

    impl Regions for FakeConfig {
        fn read(&mut self, _: NodeId, space: u8, addr: u64, width: u8) -> Option<u64> {
            self.log.push((space, addr, width));
            if space != SPACE_PCI_CONFIG {
                return None;
            }
            let mut v = 0;
            for i in 0..u64::from(width) {
                v |= u64::from(self.bytes.iter().find(|(a, _)| *a == addr + i)?.1) << (8 * i);
            }
            Some(v)
        }
        fn write(&mut self, _: NodeId, _: u8, _: u64, _: u8, _: u64) -> bool {
            false
        }
    }

    #[test]
    fn q35_root_bridge_and_prt_from_qemus_own_dsdt() {
        let ns = load(&[q35_dsdt()], &mut Overlay::new());
        assert!(ns.problems.is_empty(), "{:?}", ns.problems);
        let [r] = ns.roots.as_slice() else {
            panic!("{:?}", ns.roots)
        };
        assert_eq!(
            (r.path.as_str(), r.present, r.segment(), r.buses_from),
            ("\\_SB.PCI0", true, Ok(0), BusSource::Crs)
        );
        assert_eq!(r.buses, Ok((0, 0xFF)));
        assert!(
            matches!(&r.crs, Ok(Some(Ok(w))) if w.buses == Some((0, 0xFF)) && !w.mem.is_empty())
        );
        // PRTA after \_PIC(1): every slot's four pins on the GSIx links (ICH9: GSI 16 + (slot + pin) % 4,
        // slots 25-31 their own; QEMU 7.2 facts: e1000e at slot 2 INTA is GSI 22).
        let prt = r.prt.as_ref().unwrap().as_ref().unwrap();
        assert_eq!(prt.len(), 128);
        let at = |s, p| prt.iter().find(|e| e.slot == s && e.pin == p).and_then(gsi);
        assert_eq!(at(2, 0), Some(22));
        assert_eq!(at(31, 0), Some(16));
        assert!(prt.iter().all(|e| matches!(&e.target, Target::Link { path, index: 0, resolved: Ok(LinkIrq { gsi: 16..=23, level: true, active_low: false }) } if path.starts_with("\\_SB.GSI"))), "{prt:?}");
    }

    /// pc's `_PRT` is a While loop over LNKA-LNKD (LNKS for the PIIX4 ACPI function), whose `_CRS` read
    /// the PIIX3 PIRQ route registers (00:01.0, 0x60-0x63) through a PCI_Config region.
    #[test]
    fn pc_links_read_the_piix3_pirq_registers_of_the_isa_bridge() {
        let mut cfg = FakeConfig::default();
        for (i, irq) in [10u8, 10, 11, 11].into_iter().enumerate() {
            cfg.bytes
                .push((pci_config_address(0, 0, 1, 0, 0x60 + i as u16), irq));
        }
        let ns = load(&[pc_dsdt()], &mut cfg);
        assert!(ns.problems.is_empty(), "{:?}", ns.problems);
        let prt = ns.roots[0].prt.as_ref().unwrap().as_ref().unwrap();
        assert_eq!(prt.len(), 128);
        // PIIX: slot s pin p goes to LNK[(s + p - 1) % 4] (A..D); LNKS (SCI, IRQ 9) for slot 1 INTA.
        for e in prt {
            let want = match (e.slot, e.pin) {
                (1, 0) => 9,
                (s, p) => [10, 10, 11, 11][(usize::from(s) + usize::from(p) + 3) % 4],
            };
            assert_eq!(gsi(e), Some(want), "{e:?}");
        }
        assert!(
            cfg.log.iter().all(|&(space, addr, _)| {
                let (seg, bus, dev, func, offset) = split_pci_config_address(addr);
                space == SPACE_PCI_CONFIG
                    && (seg, bus, dev, func) == (0, 0, 1, 0)
                    && (0x60..0x64).contains(&offset)
            }),
            "{:?}",
            cfg.log
        );
    }

    #[test]
    fn a_link_the_tables_alone_cannot_answer_is_an_error_naming_the_region() {
        let ns = load(&[pc_dsdt()], &mut Overlay::new());
        let e = ns.roots[0]
            .prt
            .as_ref()
            .unwrap()
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.slot == 3)
            .unwrap();
        let Target::Link {
            path,
            resolved: Err(err),
            ..
        } = &e.target
        else {
            panic!("{e:?}")
        };
        assert!(path.starts_with("\\_SB.LNK"));
        assert!(
            matches!(&err.cause, Cause::Aml { kind: AmlCause::Region { space: SPACE_PCI_CONFIG, region }, .. } if region.starts_with("\\_SB.PCI0")),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("cannot evaluate statically: PCI_Config region"),
            "{err}"
        );
    }

    // ---- Hand-made AML --------------------------------------------------------------------------------

    fn pkg(body: &[u8]) -> Vec<u8> {
        // PkgLength (ACPI 6.5 §20.2.4), two bytes: enough for these tests.
        let n = body.len() + 2;
        assert!(n < 0x1000);
        let mut v = vec![0x40 | (n & 0xF) as u8, (n >> 4) as u8];
        v.extend_from_slice(body);
        v
    }
    fn device(name: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = name.to_vec();
        b.extend_from_slice(body);
        [&[0x5B, 0x82][..], &pkg(&b)].concat()
    }
    fn method(name: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = name.to_vec();
        b.push(0);
        b.extend_from_slice(body);
        [&[0x14][..], &pkg(&b)].concat()
    }
    fn name_int(name: &[u8; 4], v: u32) -> Vec<u8> {
        [&[0x08][..], name, &[0x0C], &v.to_le_bytes()].concat()
    }
    const HID_PNP0A03: u32 = 0x030A_D041;
    fn dsdt(body: &[u8]) -> Vec<u8> {
        let mut t = b"DSDT".to_vec();
        t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
        t.extend_from_slice(&[2, 0]);
        t.extend_from_slice(b"MSIFW TEST    ");
        t.extend_from_slice(&[0; 12]);
        t.extend_from_slice(body);
        t
    }

    #[test]
    fn a_prt_that_never_returns_is_a_budget_error_naming_it() {
        let t = dsdt(&device(
            b"PCI0",
            &[
                name_int(b"_HID", HID_PNP0A03),
                method(b"_PRT", &[0xA2, 0x02, 0x01]),
            ]
            .concat(),
        ));
        let ns = load(&[&t], &mut Overlay::new());
        let r = &ns.roots[0];
        let err = r.prt.as_ref().unwrap_err();
        assert_eq!(err.path, "\\PCI0._PRT");
        assert!(
            matches!(
                err.cause,
                Cause::Aml {
                    kind: AmlCause::Budget(Budget::Steps),
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(ns.problems, [NsProblem::Prt(err.clone())]);
    }

    #[test]
    fn sta_bbn_and_the_bus_range() {
        // Absent _STA: present; _STA 0: absent, and its failures are no problem; _BBN 0x80 without a
        // _CRS: buses 0x80-0xFF.
        let t = dsdt(
            &[
                device(b"PCI0", &name_int(b"_HID", HID_PNP0A03)),
                device(
                    b"PCI1",
                    &[
                        name_int(b"_HID", HID_PNP0A03),
                        name_int(b"_STA", 0),
                        method(b"_PRT", &[0xFF]),
                    ]
                    .concat(),
                ),
                device(
                    b"PCI2",
                    &[
                        name_int(b"_HID", HID_PNP0A03),
                        name_int(b"_BBN", 0x80),
                        name_int(b"_SEG", 1),
                    ]
                    .concat(),
                ),
            ]
            .concat(),
        );
        let ns = load(&[&t], &mut Overlay::new());
        let got: Vec<_> = ns
            .roots
            .iter()
            .map(|r| {
                (
                    r.path.as_str(),
                    r.present,
                    r.buses.clone(),
                    r.buses_from,
                    r.segment(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("\\PCI0", true, Ok((0, 0xFF)), BusSource::Default, Ok(0)),
                ("\\PCI1", false, Ok((0, 0xFF)), BusSource::Default, Ok(0)),
                ("\\PCI2", true, Ok((0x80, 0xFF)), BusSource::Bbn, Ok(1)),
            ]
        );
        assert!(ns.roots[1].prt.is_err());
        assert!(ns.problems.is_empty(), "{:?}", ns.problems);
    }

    #[test]
    fn root_buses_of_several_bridges() {
        // PCI0 from _CRS 00-7f; PC80 from _BBN 0x80 (to 0xFF, cut before PCF0); PCF0 _BBN 0xF0; PCI1 in
        // segment 1; PCI2 inside PCI0's _CRS range; PCI3 absent.
        let crs = |lo: u8, hi: u8| -> Vec<u8> {
            let t = [
                0x88,
                0x0D,
                0x00,
                0x02,
                0x0C,
                0x00,
                0,
                0,
                lo,
                0,
                hi,
                0,
                0,
                0,
                hi - lo + 1,
                0,
                0x79,
                0x00,
            ];
            [
                &[0x08][..],
                b"_CRS",
                &[0x11, (t.len() + 3) as u8, 0x0A, t.len() as u8],
                &t,
            ]
            .concat()
        };
        let t = dsdt(
            &[
                device(
                    b"PCF0",
                    &[name_int(b"_HID", HID_PNP0A03), name_int(b"_BBN", 0xF0)].concat(),
                ),
                device(
                    b"PCI0",
                    &[name_int(b"_HID", HID_PNP0A03), crs(0, 0x7F)].concat(),
                ),
                device(
                    b"PC80",
                    &[
                        name_int(b"_HID", HID_PNP0A03),
                        name_int(b"_BBN", 0x80),
                        name_int(b"_CBA", 0xB000_0000),
                    ]
                    .concat(),
                ),
                device(
                    b"PCI1",
                    &[name_int(b"_HID", HID_PNP0A03), name_int(b"_SEG", 1)].concat(),
                ),
                device(
                    b"PCI2",
                    &[name_int(b"_HID", HID_PNP0A03), name_int(b"_BBN", 0x10)].concat(),
                ),
                device(
                    b"PCI3",
                    &[
                        name_int(b"_HID", HID_PNP0A03),
                        name_int(b"_STA", 0),
                        name_int(b"_BBN", 0x20),
                    ]
                    .concat(),
                ),
            ]
            .concat(),
        );
        let ns = load(&[&t], &mut Overlay::new());
        assert!(ns.problems.is_empty(), "{:?}", ns.problems);
        let (roots, problems) = root_buses(&ns);
        let got: Vec<_> = roots
            .iter()
            .map(|r| (r.first, r.last, &r.bridge, r.cba))
            .collect();
        assert_eq!(
            got,
            [
                (0, 0x7F, b"PCI0", None),
                (0x80, 0xEF, b"PC80", Some(0xB000_0000)),
                (0xF0, 0xFF, b"PCF0", None)
            ]
        );
        assert_eq!(
            problems,
            [
                RootProblem::OtherSegment {
                    bridge: "\\PCI1".to_string(),
                    segment: 1
                },
                RootProblem::Overlap {
                    bridge: "\\PCI2".to_string(),
                    other: "\\PCI0".to_string()
                }
            ]
        );
        assert!(problems[0].misses_functions() && !problems[1].misses_functions());
        assert!(problems[0]
            .to_string()
            .contains("\\PCI1 is in PCI segment 1"));
        assert_eq!(last_segment("\\_SB.PC0"), *b"PC0_");
    }

    #[test]
    fn garbage_tables_are_problems_not_panics() {
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        for n in 0..200 {
            let mut t = dsdt(&[]);
            for _ in 0..(n * 7 % 300) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                t.push(rng as u8);
            }
            let len = t.len() as u32;
            t[4..8].copy_from_slice(&len.to_le_bytes());
            let _ = load(&[&t, b"SSDT"], &mut Overlay::zero_filled());
        }
        let ns = load(&[b"XSDT0000"], &mut Overlay::new());
        assert_eq!(ns.problems, [NsProblem::BadTable(0)]);
    }

    // ---- Real machines (../shared/acpi-corpus beside the project; absent: nothing to check) ----------

    fn machine(name: &str) -> Option<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/acpi-corpus");
        let Ok(dir) = std::fs::read_dir(&root) else {
            std::eprintln!(
                "{}: absent, the corpus test has nothing to check",
                root.display()
            );
            return None;
        };
        dir.flatten().map(|e| e.path()).find(|p| {
            p.file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with(name))
        })
    }

    fn oracle_prt(prt: &serde_json::Value) -> Vec<(u64, u64, Option<String>, u64)> {
        let mut v: Vec<_> = prt["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["slot"].as_u64().unwrap(),
                    e["pin"].as_u64().unwrap(),
                    e["source"].as_str().map(|s| s.to_string()),
                    e["index"].as_u64().unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    }

    fn our_prt(prt: &[Route]) -> Vec<(u64, u64, Option<String>, u64)> {
        let mut v: Vec<_> = prt
            .iter()
            .map(|r| match &r.target {
                Target::Gsi(g) => (u64::from(r.slot), u64::from(r.pin), None, u64::from(*g)),
                Target::Link { path, index, .. } => (
                    u64::from(r.slot),
                    u64::from(r.pin),
                    Some(path.clone()),
                    u64::from(*index),
                ),
            })
            .collect();
        v.sort();
        v
    }

    /// Servers with several root bridges (uncore buses at 0xFF, PCI2/PCI3 absent) and a PCH desktop
    /// whose root ports rotate INTx: root bridges, their `_STA`, bus ranges and every `_PRT` as ACPICA.
    #[test]
    fn corpus_machines_match_acpica() {
        for name in [
            "Supermicro_X10DAi",
            "Intel_NUC7i5BNH",
            "ASRock_H510M",
            "Hewlett-Packard_ProLiant-DL380-G5",
            "Fujitsu_PRIMERGY",
        ] {
            let Some(m) = machine(name) else { return };
            let oracle: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(m.join("oracle.json")).unwrap())
                    .unwrap();
            let files: Vec<Vec<u8>> = oracle["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| std::fs::read(m.join(f.as_str().unwrap())).unwrap())
                .collect();
            let tables: Vec<&[u8]> = files.iter().map(|t| t.as_slice()).collect();
            let ns = load(&tables, &mut Overlay::zero_filled());
            let roots = oracle["root_bridges"].as_array().unwrap();
            let mut ours: Vec<&str> = ns.roots.iter().map(|r| r.path.as_str()).collect();
            let mut theirs: Vec<&str> = roots.iter().map(|r| r["path"].as_str().unwrap()).collect();
            ours.sort();
            theirs.sort();
            assert_eq!(ours, theirs, "{name}");
            let mut bridge_entries = 0;
            for o in roots {
                let r = ns
                    .roots
                    .iter()
                    .find(|r| r.path == o["path"].as_str().unwrap())
                    .unwrap();
                let sta = o["sta"].as_u64();
                assert_eq!(r.sta, Ok(sta), "{name} {}", r.path);
                assert_eq!(
                    r.present,
                    sta.is_none_or(|s| s & 1 != 0),
                    "{name} {}",
                    r.path
                );
                if let Some(b) = o["bbn"].as_u64() {
                    assert_eq!(r.bbn, Ok(Some(b)), "{name} {}", r.path);
                }
                if o["prt"]["status"] == "ok" {
                    let ours = r.prt.as_ref().unwrap().as_ref().unwrap();
                    assert_eq!(our_prt(ours), oracle_prt(&o["prt"]), "{name} {}", r.path);
                }
                for ob in o["bridges"].as_array().unwrap() {
                    let b = r
                        .bridges
                        .iter()
                        .find(|b| b.path == ob["path"].as_str().unwrap())
                        .unwrap_or_else(|| panic!("{name}: {} missing", ob["path"]));
                    let chain: Vec<Option<u32>> = ob["chain_adr"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| a.as_u64().map(|a| a as u32))
                        .collect();
                    assert_eq!(b.adr_chain, chain, "{name} {}", b.path);
                    if ob["prt"]["status"] == "ok" {
                        assert_eq!(
                            our_prt(b.prt.as_ref().unwrap()),
                            oracle_prt(&ob["prt"]),
                            "{name} {}",
                            b.path
                        );
                        bridge_entries += b.prt.as_ref().unwrap().len();
                    }
                }
            }
            assert!(
                bridge_entries > 0 || name.contains("ProLiant"),
                "{name}: no bridge _PRT compared"
            );
            for (path, o) in oracle["links"].as_object().unwrap() {
                let Some(l) = ns.links.iter().find(|l| l.path == *path) else {
                    continue;
                };
                assert_eq!(l.sta, Ok(o["sta"].as_u64()), "{name} {path}");
                let want = o["_crs"].as_array().and_then(|d| d.first()).and_then(|d| {
                    Some((
                        d["irqs"].as_array()?.first()?.as_u64()?,
                        d["level"].as_bool()?,
                        d["active_low"].as_bool()?,
                    ))
                });
                match (&l.irq, want) {
                    (Ok(i), Some(w)) => assert_eq!(
                        (u64::from(i.gsi), i.level, i.active_low),
                        w,
                        "{name} {path}"
                    ),
                    (Err(e), w) => assert!(
                        matches!(e.cause, Cause::LinkDisabled) && w.is_none_or(|w| w.0 == 0)
                            || o["sta"].as_u64().is_some_and(|s| s & 2 == 0),
                        "{name} {path}: {e} vs {w:?}"
                    ),
                    (Ok(i), None) => panic!("{name} {path}: {i:?}, ACPICA no _CRS"),
                }
            }
        }
    }
}
