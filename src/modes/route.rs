//! Where a function's INTx arrives, in this order:
//! 1. ACPI, as Linux's `acpi_pci_irq_lookup` (`drivers/acpi/pci_irq.c`): the `_PRT` of the function's bus's
//!    ACPI companion (the host bridge for a root bus, else the bridge above found by its chain of `_ADR`s
//!    from the root bridge down, as `acpi_find_child_device` matches them) with the function's own slot
//!    and pin; where that companion has no `_PRT`, the pin swizzled to the bridge and the bridge's bus
//!    tried, up to the root bridge's `_PRT`. A link's GSI is its `_CRS` (APIC mode); a link or `_PRT` that
//!    cannot be evaluated statically is a route error (undescribed), never a guessed GSI. On bus 0 of the
//!    known chipsets the rule's GSI is held against it (q35: GSI 16 + PIRQ; i440fx: the PIIX3 registers);
//! 2. without ACPI, the MP table's I/O interrupt entries: the function's own bus, device and pin, then each
//!    bridge above it with the swizzled pin, up to a bus the table covers (Linux's `pirq_enable_irq`; no
//!    fuzzy match on another pin of the device, see `platform::mptable`), cross-checked on i440fx with the
//!    PIIX3 PIRQ registers;
//! 3. the chipset's rule, on the two host bridges whose wiring is known (QEMU's q35: GSI 16 + PIRQ; QEMU's
//!    i440fx: the PIIX3 PIRQ route registers through the MADT's interrupt source overrides). QEMU's pc DSDT
//!    builds its `_PRT` at run time from those same registers, so with ACPI the rule is what `_PRT` says;
//!    without ACPI it covers what SeaBIOS's MP table leaves out (pins of bridges other than their own).

use crate::bus::pci::enumerate::{Enumeration, Function};
use crate::bus::pci::{Bdf, ConfigRegion};
use crate::irq::intx::IntxRoute;
use crate::irq::routing::{self, Pin};
use crate::platform::acpi::{MadtInfo, Polarity, TriggerMode};
use crate::platform::mptable;
use crate::platform::namespace::{Cause, NsError, PciNamespace, Route, Target};

/// The host chipset, told apart by the host bridge at 00:00.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chipset {
    /// Q35 / ICH9 (host bridge 8086:29c0).
    Q35,
    /// i440FX / PIIX3 (host bridge 8086:1237).
    I440fx,
    /// Anything else.
    Unknown,
}

impl Chipset {
    /// Identifies the chipset from the enumeration.
    pub fn detect(pci: &Enumeration) -> Chipset {
        match pci.get(Bdf::new(0, 0, 0)).map(|f| (f.vendor, f.device)) {
            Some((0x8086, 0x29c0)) => Chipset::Q35,
            Some((0x8086, 0x1237)) => Chipset::I440fx,
            _ => Chipset::Unknown,
        }
    }
}

/// Which table or rule gave the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteSource {
    /// The DSDT's APIC-mode routing package.
    Dsdt,
    /// The q35 chipset rule (no usable DSDT routing).
    ChipsetRule,
    /// PIIX3 PIRQ route registers, through the MADT overrides.
    PiixPirq,
    /// An I/O interrupt entry of the MP table.
    MpTable,
}

impl RouteSource {
    /// Report name.
    pub fn name(self) -> &'static str {
        match self {
            RouteSource::Dsdt => "dsdt",
            RouteSource::ChipsetRule => "chipset",
            RouteSource::PiixPirq => "piix-pirq",
            RouteSource::MpTable => "mp-table",
        }
    }
}

/// A resolved route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed {
    /// GSI, trigger and polarity.
    pub route: IntxRoute,
    /// Where it came from.
    pub source: RouteSource,
    /// The bus-0 slot and pin the interrupt arrives at after swizzling.
    pub root: (u8, Pin),
    /// The chipset rule's GSI when it disagrees with the table used (q35: the DSDT; i440fx: the MP table).
    pub disagreement: Option<u32>,
}

/// Why no route was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    /// Interrupt Pin is 0 (no INTx) or above 4.
    NoPin(u8),
    /// No bridge leads to the function's bus.
    NoBridgeTo(u8),
    /// The DSDT has no entry for the root slot and pin, and no rule applies.
    Unrouted {
        /// Root slot.
        slot: u8,
        /// Root pin (0 = INTA).
        pin: Pin,
    },
    /// The PIIX3 route register for the PIRQ is disabled or reserved.
    PirqDisabled {
        /// PIRQ (0 = A).
        pirq: u8,
        /// The register's value.
        value: u8,
    },
    /// No PIIX3 at 00:01.0.
    NoPiix,
    /// The platform cannot route INTx at all (no IOAPIC described, or no routing source), for this reason.
    Unavailable(&'static str),
    /// The MP table has no entry for the function or any bridge above it, and no chipset rule applies.
    NoMpEntry {
        /// Root slot.
        slot: u8,
        /// Root pin (0 = INTA).
        pin: Pin,
    },
    /// The function's interrupt arrives at another root bus than the first, which no ACPI `_PRT`
    /// describes and no chipset rule covers: no trustworthy route.
    OtherRootBus(u8),
    /// The `_PRT` that describes the function's route (of its bus's companion or one above) cannot be
    /// evaluated statically.
    PrtUnevaluable(&'static NsError),
    /// The `_PRT` entry names a link whose current interrupt cannot be read statically (or that is
    /// disabled: msifw runs no `_SRS`).
    LinkUnresolved(&'static NsError),
}

impl RouteError {
    /// Whether the platform simply does not describe the route (a SKIP, not a device failure).
    pub fn undescribed(&self) -> bool {
        matches!(
            self,
            Self::NoPin(_)
                | Self::Unrouted { .. }
                | Self::NoMpEntry { .. }
                | Self::Unavailable(_)
                | Self::OtherRootBus(_)
                | Self::PrtUnevaluable(_)
                | Self::LinkUnresolved(_)
        )
    }
}

impl core::fmt::Display for RouteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoPin(p) => write!(f, "no INTx (Interrupt Pin {p})"),
            Self::NoBridgeTo(b) => write!(f, "no bridge leads to bus {b:#x}"),
            Self::Unrouted { slot, pin } => write!(f, "no route for root slot {slot} INT{}", (b'A' + pin) as char),
            Self::PirqDisabled { pirq, value } => {
                write!(f, "PIRQ{} route register {value:#x} is disabled or reserved", (b'A' + pirq) as char)
            }
            Self::NoPiix => write!(f, "no PIIX3 at 00:01.0 to read the PIRQ routing from"),
            Self::Unavailable(why) => write!(f, "{why}"),
            Self::NoMpEntry { slot, pin } => write!(
                f,
                "the MP table has no entry for it or a bridge above it (root slot {slot} INT{}), and the host bridge has no known rule",
                (b'A' + pin) as char
            ),
            Self::OtherRootBus(b) => {
                write!(f, "it is on root bus {b:#04x}, which no ACPI _PRT describes and no chipset rule covers")
            }
            Self::PrtUnevaluable(e) => write!(f, "its routing _PRT {e}"),
            Self::LinkUnresolved(e) => write!(f, "its interrupt link {e}"),
        }
    }
}

/// The bus-0 slot and pin that `f`'s INTx arrives at, swizzled through each bridge on the way up.
pub fn root_slot_pin(pci: &Enumeration, f: &Function) -> Result<(u8, Pin), RouteError> {
    if f.interrupt_pin == 0 || f.interrupt_pin > 4 {
        return Err(RouteError::NoPin(f.interrupt_pin));
    }
    let mut pin = f.interrupt_pin - 1;
    let mut bdf = f.bdf;
    let root = pci.buses_scanned.first().copied().unwrap_or(0);
    for _ in 0..256 {
        if bdf.bus == root {
            return Ok((bdf.dev, pin));
        }
        let bridge = pci.functions.iter().find(|b| b.bridge_buses.is_some_and(|(sec, _)| sec == bdf.bus));
        let Some(bridge) = bridge else {
            if pci.root_buses.contains(&bdf.bus) {
                return Err(RouteError::OtherRootBus(bdf.bus));
            }
            return Err(RouteError::NoBridgeTo(bdf.bus));
        };
        pin = routing::swizzle(bdf.dev, pin);
        bdf = bridge.bdf;
    }
    Err(RouteError::NoBridgeTo(bdf.bus))
}

/// What the ACPI namespace says about a function's INTx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiRoute {
    /// A `_PRT` entry: the route, and the bus, slot and pin it was matched at.
    Found(IntxRoute, u8, u8, Pin),
    /// No companion on the way up has a `_PRT` (a root bus the namespace does not describe, a root bridge
    /// without `_PRT`): other sources decide.
    NotDescribed,
}

/// The bridge functions from the root bus down to the one whose secondary bus is `bus`, and that root bus
/// (`None`: a bridge chain that does not lead up to a bus without a bridge above).
fn bridges_above(pci: &Enumeration, bus: u8) -> Option<(u8, alloc::vec::Vec<&Function>)> {
    let mut chain = alloc::vec::Vec::new();
    let mut at = bus;
    for _ in 0..256 {
        match pci.functions.iter().find(|b| b.bridge_buses.is_some_and(|(sec, _)| sec == at)) {
            Some(b) => {
                chain.push(b);
                at = b.bdf.bus;
            }
            None => {
                chain.reverse();
                return Some((at, chain));
            }
        }
    }
    None
}

/// The `_PRT` of `bus`'s ACPI companion: `None` when there is no companion with one.
fn companion_prt(ns: &'static PciNamespace, pci: &Enumeration, bus: u8) -> Option<Result<&'static [Route], &'static NsError>> {
    let (root_bus, chain) = bridges_above(pci, bus)?;
    // The host bridge whose bus range starts at the root bus (Linux: the root's secondary bus).
    let root = ns.roots.iter().find(|r| r.present && r.segment() == Ok(0) && r.buses.as_ref().is_ok_and(|b| b.0 == root_bus))?;
    if chain.is_empty() {
        return match &root.prt {
            Ok(Some(prt)) => Some(Ok(prt)),
            Err(e) => Some(Err(e)),
            Ok(None) => None,
        };
    }
    // Linux acpi_find_child_device: each bridge's companion is the child of the one above whose _ADR is
    // exactly (device << 16 | function).
    let adrs = chain.iter().map(|b| Some((u32::from(b.bdf.dev) << 16) | u32::from(b.bdf.func)));
    let adrs: alloc::vec::Vec<Option<u32>> = adrs.collect();
    root.bridges.iter().find(|b| b.adr_chain == adrs).map(|b| b.prt.as_deref())
}

/// `f`'s INTx as Linux's `acpi_pci_irq_lookup` finds it: its own bus's companion `_PRT` with its slot and
/// pin, else swizzled through each bridge above and that bridge's bus's companion tried.
pub fn acpi_lookup(pci: &Enumeration, ns: &'static PciNamespace, f: &Function) -> Result<AcpiRoute, RouteError> {
    let mut pin = f.interrupt_pin.checked_sub(1).filter(|p| *p < 4).ok_or(RouteError::NoPin(f.interrupt_pin))?;
    let mut bdf = f.bdf;
    for _ in 0..256 {
        let bridge = pci.functions.iter().find(|b| b.bridge_buses.is_some_and(|(sec, _)| sec == bdf.bus));
        match companion_prt(ns, pci, bdf.bus) {
            Some(Err(e)) => return Err(RouteError::PrtUnevaluable(e)),
            Some(Ok(prt)) => {
                if let Some(entry) = prt.iter().find(|r| r.slot == bdf.dev && r.pin == pin) {
                    let route = match &entry.target {
                        // ACPI 6.5 §6.2.13: a GSI entry is level-triggered, active low (Linux likewise).
                        Target::Gsi(gsi) => IntxRoute { gsi: *gsi, level: true, active_low: true },
                        Target::Link { resolved: Ok(l), .. } => IntxRoute { gsi: l.gsi, level: l.level, active_low: l.active_low },
                        Target::Link { resolved: Err(e), .. } => return Err(RouteError::LinkUnresolved(e)),
                    };
                    return Ok(AcpiRoute::Found(route, bdf.bus, bdf.dev, pin));
                }
                if bridge.is_none() {
                    // The root bridge's _PRT has no entry for it: the namespace says nothing routes it.
                    return Err(RouteError::Unrouted { slot: bdf.dev, pin });
                }
            }
            None => {}
        }
        let Some(bridge) = bridge else {
            return Ok(AcpiRoute::NotDescribed);
        };
        pin = routing::swizzle(bdf.dev, pin);
        bdf = bridge.bdf;
    }
    Err(RouteError::NoBridgeTo(bdf.bus))
}

/// The MP table's PCI interrupt entries, as routes.
pub trait MpRoutes {
    /// The route the entry for PCI bus `bus`, device `dev`, pin `pin` gives.
    fn pci(&self, bus: u8, dev: u8, pin: Pin) -> Option<IntxRoute>;
    /// The route of any PCI entry arriving at `gsi` (its trigger and polarity are the line's).
    fn to_gsi(&self, gsi: u32) -> Option<IntxRoute>;
}

/// An MP table lookup.
pub type MpLookup<'a> = &'a dyn MpRoutes;

/// The routing sources of the platform, in the order [`resolve`] tries them.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    /// The host chipset.
    pub chipset: Chipset,
    /// The ACPI namespace's `_PRT`s (with a root bridge whose `_PRT` is usable).
    pub acpi: Option<&'static PciNamespace>,
    /// The MP table (given only when there is no ACPI).
    pub mp: Option<MpLookup<'a>>,
    /// The MADT, for the PIIX3 rule's ISA overrides.
    pub madt: Option<&'a MadtInfo>,
}

impl core::fmt::Debug for Sources<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sources").field("chipset", &self.chipset).field("acpi", &self.acpi.is_some()).field("mp", &self.mp.is_some()).finish()
    }
}

/// Resolves `f`'s INTx route on this platform.
pub fn resolve(pci: &Enumeration, cfg: &dyn ConfigRegion, sources: &Sources<'_>, f: &Function) -> Result<Routed, RouteError> {
    let chipset = sources.chipset;
    if let Some(ns) = sources.acpi {
        let found = match acpi_lookup(pci, ns, f) {
            // A link the boot firmware left disabled (Linux would program it with _SRS, which msifw does not
            // run): where the chipset's own wiring is known, it routes (ICH9: PIRQx reaches IOAPIC input
            // 16 + x whatever the route register says).
            Err(RouteError::LinkUnresolved(e)) if matches!(e.cause, Cause::LinkDisabled) && chipset == Chipset::Q35 => {
                let (slot, pin) = root_slot_pin(pci, f).map_err(|_| RouteError::LinkUnresolved(e))?;
                let route = IntxRoute { gsi: routing::q35_chipset_gsi(slot, pin), level: true, active_low: false };
                return Ok(Routed { route, source: RouteSource::ChipsetRule, root: (slot, pin), disagreement: None });
            }
            other => other?,
        };
        if let AcpiRoute::Found(route, bus, slot, pin) = found {
            // The chipset's own rule for a bus-0 slot, held against the table.
            let rule = match (chipset, bus) {
                (Chipset::Q35, 0) => Some(routing::q35_chipset_gsi(slot, pin)),
                (Chipset::I440fx, 0) => piix_route(cfg, sources.madt, slot, pin).ok().map(|r| r.gsi),
                _ => None,
            };
            return Ok(Routed { route, source: RouteSource::Dsdt, root: (slot, pin), disagreement: rule.filter(|&g| g != route.gsi) });
        }
    }
    let (slot, pin) = root_slot_pin(pci, f)?;
    if let Some(mp) = sources.mp {
        if let Some(route) = mp_route(pci, mp, f) {
            // On i440fx the PIIX3 registers say the same (SeaBIOS writes each entry from them); on q35 both the
            // ISA IRQ of the MP entry and GSI 16-23 of the rule carry the interrupt, so there is nothing to hold.
            let rule = match chipset {
                Chipset::I440fx => piix_route(cfg, sources.madt, slot, pin).ok().map(|r| r.gsi),
                _ => None,
            };
            return Ok(Routed { route, source: RouteSource::MpTable, root: (slot, pin), disagreement: rule.filter(|&g| g != route.gsi) });
        }
    }
    match chipset {
        Chipset::Q35 => Ok(Routed {
            route: IntxRoute { gsi: routing::q35_chipset_gsi(slot, pin), level: true, active_low: false },
            source: RouteSource::ChipsetRule,
            root: (slot, pin),
            disagreement: None,
        }),
        Chipset::I440fx => {
            let mut route = piix_route(cfg, sources.madt, slot, pin)?;
            // Without a MADT, a line the MP table routes other PCI interrupts to has the trigger and polarity
            // it declares there (a shared line has one configuration).
            if let Some(line) = sources.mp.filter(|_| sources.madt.is_none()).and_then(|mp| mp.to_gsi(route.gsi)) {
                route = IntxRoute { gsi: route.gsi, ..line };
            }
            Ok(Routed { route, source: RouteSource::PiixPirq, root: (slot, pin), disagreement: None })
        }
        Chipset::Unknown if sources.mp.is_some() => Err(RouteError::NoMpEntry { slot, pin }),
        Chipset::Unknown => Err(RouteError::Unrouted { slot, pin }),
    }
}

/// The MP table's route for `f`: its own bus, device and pin first, then each bridge above it with the pin
/// swizzled, as Linux's `pirq_enable_irq` walks up when a secondary bus has no entries.
fn mp_route(pci: &Enumeration, mp: MpLookup<'_>, f: &Function) -> Option<IntxRoute> {
    let mut pin = f.interrupt_pin.checked_sub(1).filter(|p| *p < 4)?;
    let mut bdf = f.bdf;
    let root = pci.buses_scanned.first().copied().unwrap_or(0);
    for _ in 0..256 {
        if let Some(route) = mp.pci(bdf.bus, bdf.dev, pin) {
            return Some(route);
        }
        if bdf.bus == root {
            return None;
        }
        let bridge = pci.functions.iter().find(|b| b.bridge_buses.is_some_and(|(sec, _)| sec == bdf.bus))?;
        pin = routing::swizzle(bdf.dev, pin);
        bdf = bridge.bdf;
    }
    None
}

/// The PIIX3 rule: the PIRQ of the root slot and pin, its route register at 00:01.0, and the MADT's override
/// for that ISA IRQ.
fn piix_route(cfg: &dyn ConfigRegion, madt: Option<&MadtInfo>, slot: u8, pin: Pin) -> Result<IntxRoute, RouteError> {
    let piix = Bdf::new(0, 1, 0);
    if cfg.read16(piix, 0) != 0x8086 {
        return Err(RouteError::NoPiix);
    }
    let pirq = routing::piix_pirq(slot, pin);
    let value = cfg.read8(piix, 0x60 + pirq as u16);
    let irq = routing::piix_route_irq(value).ok_or(RouteError::PirqDisabled { pirq, value })?;
    // PCI interrupts routed to an ISA IRQ: the MADT override gives the GSI and may give trigger and
    // polarity; "conforming" means the PCI default, level and active-low (ACPI 6.5 5.2.12.5).
    let (gsi, level, active_low) = match madt.map(|m| m.isa_irq_route(irq)) {
        Some(r) => (r.gsi, !matches!(r.trigger, TriggerMode::Edge), !matches!(r.polarity, Polarity::ActiveHigh)),
        None => (irq as u32, true, true),
    };
    Ok(IntxRoute { gsi, level, active_low })
}

/// The MP table's PCI entries as routes: an entry's IOAPIC ID and input made a GSI.
struct MpTableRoutes<'a> {
    table: &'a mptable::MpTable<'static>,
    ioapic_ids: &'a [(u8, u32)],
}

impl MpTableRoutes<'_> {
    fn route(&self, i: mptable::PciInterrupt) -> Option<IntxRoute> {
        let base = match i.io_apic {
            mptable::ALL_IO_APICS => self.ioapic_ids.first()?.1,
            id => self.ioapic_ids.iter().find(|(i, _)| *i == id)?.1,
        };
        Some(IntxRoute { gsi: base + u32::from(i.input), level: i.level, active_low: i.active_low })
    }
}

impl MpRoutes for MpTableRoutes<'_> {
    fn pci(&self, bus: u8, dev: u8, pin: u8) -> Option<IntxRoute> {
        self.route(self.table.pci_interrupt(bus, dev, pin)?)
    }
    fn to_gsi(&self, gsi: u32) -> Option<IntxRoute> {
        self.table
            .pci_entries()
            .filter_map(|i| self.table.pci_interrupt(i.bus, i.irq >> 2, i.irq & 3))
            .filter_map(|i| self.route(i))
            .find(|r| r.gsi == gsi)
    }
}

/// What INTx routing needs from the platform: every INTx route of the run is resolved through
/// [`Routing::resolve`].
pub struct Routing<'a> {
    /// The host chipset, for its rule.
    pub chipset: Chipset,
    /// The MADT, for the PIIX3 rule's ISA overrides.
    pub madt: Option<&'a MadtInfo>,
    /// The ACPI namespace's `_PRT`s, when a present root bridge has a usable one.
    pub acpi: Option<&'static PciNamespace>,
    /// The MP table, as a routing source (only without ACPI).
    pub mp: Option<&'a mptable::MpTable<'static>>,
    /// Each IOAPIC's (ID, first GSI), for the MP table's destinations.
    pub ioapic_ids: &'a [(u8, u32)],
    /// Why INTx cannot be routed at all on this platform (reported once, not per function).
    pub unavailable: Option<&'static str>,
}

impl core::fmt::Debug for Routing<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Routing")
            .field("chipset", &self.chipset)
            .field("acpi", &self.acpi.is_some())
            .field("mp", &self.mp.is_some())
            .field("unavailable", &self.unavailable)
            .finish()
    }
}

impl Routing<'_> {
    /// Why no function can have INTx here, from the platform's sources: no IOAPIC described, or no table
    /// and no chipset rule to route with.
    pub fn unavailable_reason(ioapics: usize, acpi: bool, mp: Option<&mptable::MpTable<'_>>, dsdt: bool, chipset: Chipset) -> Option<&'static str> {
        let mp_entries = mp.is_some_and(|t| t.pci_entries().next().is_some());
        match (ioapics, acpi, mp) {
            (0, false, None) => Some("no IOAPIC is described: no ACPI tables and no MP table"),
            (0, false, Some(_)) => Some("no usable IOAPIC: no ACPI tables, and the MP table lists none msifw can use"),
            (0, true, _) => Some("no usable IOAPIC in the ACPI MADT"),
            _ if dsdt || mp_entries || chipset != Chipset::Unknown => None,
            (_, false, None) => Some("no INTx routing source: no ACPI tables, no MP table, and no known rule for this host bridge"),
            (_, false, Some(_)) => {
                Some("no INTx routing source: no ACPI tables, an MP table without PCI interrupt entries, and no known rule for this host bridge")
            }
            (_, true, _) => Some("no INTx routing source: no root bridge _PRT msifw can evaluate, and no known rule for this host bridge"),
        }
    }

    /// Where INTx routing comes from, for the `platform` record.
    pub fn kind(&self) -> &'static str {
        let mp_entries = self.mp.is_some_and(|t| t.pci_entries().next().is_some());
        match (self.unavailable, self.acpi, mp_entries) {
            (Some(_), _, _) => "none",
            (None, Some(_), _) => "acpi-prt",
            (None, None, true) => "mp-table",
            (None, None, false) => "chipset",
        }
    }

    /// `f`'s INTx route ([`resolve`] over these sources): the one place the lookups are built.
    pub fn resolve(&self, pci: &Enumeration, cfg: &dyn ConfigRegion, f: &Function) -> Result<Routed, RouteError> {
        if let Some(why) = self.unavailable {
            return Err(RouteError::Unavailable(why));
        }
        let mp_routes = self.mp.map(|table| MpTableRoutes { table, ioapic_ids: self.ioapic_ids });
        let sources = Sources {
            chipset: self.chipset,
            acpi: self.acpi,
            mp: mp_routes.as_ref().map(|m| m as MpLookup),
            madt: self.madt,
        };
        resolve(pci, cfg, &sources, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::pci::config::sim::SimConfig;
    use crate::bus::pci::enumerate;

    fn only(chipset: Chipset) -> Sources<'static> {
        Sources { chipset, acpi: None, mp: None, madt: None }
    }

    use crate::platform::namespace::{BridgePrt, BusSource, LinkIrq, RootBridge};

    fn root_bridge(path: &str, first: u8, prt: Option<Result<std::vec::Vec<Route>, NsError>>, bridges: std::vec::Vec<BridgePrt>) -> RootBridge {
        RootBridge {
            path: path.into(),
            present: true,
            sta: Ok(None),
            bbn: Ok(Some(first.into())),
            seg: Ok(None),
            uid: Ok(None),
            buses: Ok((first, 0xFF)),
            buses_from: BusSource::Bbn,
            crs_raw: Ok(None),
            crs: Ok(None),
            cba: Ok(None),
            prt: match prt {
                None => Ok(None),
                Some(Ok(p)) => Ok(Some(p)),
                Some(Err(e)) => Err(e),
            },
            bridges,
        }
    }

    fn gsi(slot: u8, pin: u8, gsi: u32) -> Route {
        Route { slot, pin, target: Target::Gsi(gsi) }
    }

    fn namespace(roots: std::vec::Vec<RootBridge>) -> &'static PciNamespace {
        Box::leak(Box::new(PciNamespace { roots, links: std::vec::Vec::new(), problems: std::vec::Vec::new() }))
    }

    fn q35_prt() -> std::vec::Vec<Route> {
        (0..32).flat_map(|s| (0..4).map(move |p| gsi(s, p, routing::q35_chipset_gsi(s, p)))).collect()
    }

    fn acpi(ns: &'static PciNamespace, chipset: Chipset) -> Sources<'static> {
        Sources { acpi: Some(ns), ..only(chipset) }
    }

    fn failed(path: &str) -> NsError {
        NsError { path: path.into(), cause: Cause::LinkDisabled }
    }

    fn q35_with_root_port() -> (SimConfig, Enumeration) {
        let sim = SimConfig::default();
        sim.add(Bdf::new(0, 0, 0), 0x8086, 0x29c0, 0x060000);
        let rp = sim.add(Bdf::new(0, 7, 0), 0x1b36, 0x000c, 0x060400);
        sim.poke(rp, 0x0E, &[0x01]);
        sim.poke(rp, 0x19, &[1, 1]);
        let edu = sim.add(Bdf::new(1, 0, 0), 0x1234, 0x11e8, 0x00ff00);
        sim.poke(edu, 0x3D, &[1]);
        let e1000e = sim.add(Bdf::new(0, 2, 0), 0x8086, 0x10d3, 0x020000);
        sim.poke(e1000e, 0x3D, &[1]);
        let mut e = Enumeration::new();
        enumerate::enumerate(&sim, 0, 255, &mut e);
        (sim, e)
    }

    #[test]
    fn q35_rule_and_swizzle() {
        let (sim, e) = q35_with_root_port();
        let edu = e.get(Bdf::new(1, 0, 0)).unwrap();
        let r = resolve(&e, &sim, &only(Chipset::Q35), edu).unwrap();
        assert_eq!((r.route.gsi, r.root, r.source), (23, (7, 0), RouteSource::ChipsetRule));
        assert!(r.route.level && !r.route.active_low);
        assert_eq!(Chipset::detect(&e), Chipset::Q35);
    }

    #[test]
    fn dsdt_wins_and_disagreement_is_reported() {
        let (sim, e) = q35_with_root_port();
        let f = e.get(Bdf::new(0, 2, 0)).unwrap();
        let good = namespace(vec![root_bridge("\\_SB.PCI0", 0, Some(Ok(q35_prt())), vec![])]);
        let r = resolve(&e, &sim, &acpi(good, Chipset::Q35), f).unwrap();
        assert_eq!((r.route, r.source, r.disagreement), (IntxRoute { gsi: 22, level: true, active_low: true }, RouteSource::Dsdt, None));
        let odd = namespace(vec![root_bridge("\\_SB.PCI0", 0, Some(Ok(vec![gsi(2, 0, 19)])), vec![])]);
        let r = resolve(&e, &sim, &acpi(odd, Chipset::Q35), f).unwrap();
        assert_eq!((r.route.gsi, r.disagreement), (19, Some(22)));
    }

    /// 01:00.0 (edu, INTA) behind the root port at 00:07.0.
    fn edu(e: &Enumeration) -> &Function {
        e.get(Bdf::new(1, 0, 0)).unwrap()
    }

    #[test]
    fn a_bridge_prt_is_used_with_the_functions_own_slot_and_pin() {
        let (sim, e) = q35_with_root_port();
        // The root port's companion (_ADR 0x70000) has a _PRT of its own (an AMD bridge's GSIs).
        let port = BridgePrt { path: "\\_SB.PCI0.RP07".into(), adr_chain: vec![Some(0x0007_0000)], prt: Ok(vec![gsi(0, 0, 40), gsi(0, 1, 41)]) };
        let ns = namespace(vec![root_bridge("\\_SB.PCI0", 0, Some(Ok(q35_prt())), vec![port])]);
        let r = resolve(&e, &sim, &acpi(ns, Chipset::Q35), edu(&e)).unwrap();
        assert_eq!((r.route.gsi, r.root, r.source, r.disagreement), (40, (0, 0), RouteSource::Dsdt, None), "not the swizzled root entry (23)");
        // A bridge _PRT under another _ADR chain is not this port's.
        let other = BridgePrt { path: "\\_SB.PCI0.RP06".into(), adr_chain: vec![Some(0x0006_0000)], prt: Ok(vec![gsi(0, 0, 40)]) };
        let ns = namespace(vec![root_bridge("\\_SB.PCI0", 0, Some(Ok(q35_prt())), vec![other])]);
        assert_eq!(resolve(&e, &sim, &acpi(ns, Chipset::Q35), edu(&e)).map(|r| r.route.gsi), Ok(23));
    }

    #[test]
    fn without_a_bridge_prt_the_pin_is_swizzled_to_the_parent() {
        let (sim, e) = q35_with_root_port();
        // No companion _PRT: 01:00.0 INTA -> 00:07.0 INTA, the root _PRT's entry (23 on q35).
        let ns = namespace(vec![root_bridge("\\_SB.PCI0", 0, Some(Ok(q35_prt())), vec![])]);
        let r = resolve(&e, &sim, &acpi(ns, Chipset::Q35), edu(&e)).unwrap();
        assert_eq!((r.route.gsi, r.root, r.source), (23, (7, 0), RouteSource::Dsdt));
        // A bridge _PRT without an entry for the slot and pin: swizzled up as well (Linux walks on).
        let port = BridgePrt { path: "\\_SB.PCI0.RP07".into(), adr_chain: vec![Some(0x0007_0000)], prt: Ok(vec![gsi(1, 0, 40)]) };
        let ns = namespace(vec![root_bridge("\\_SB.PCI0", 0, Some(Ok(q35_prt())), vec![port])]);
        assert_eq!(resolve(&e, &sim, &acpi(ns, Chipset::Q35), edu(&e)).map(|r| r.route.gsi), Ok(23));
        // The root _PRT without the entry: unrouted (a skip), not the chipset rule.
        let ns = namespace(vec![root_bridge("\\_SB.PCI0", 0, Some(Ok(vec![gsi(2, 0, 22)])), vec![])]);
        let r = resolve(&e, &sim, &acpi(ns, Chipset::Q35), edu(&e));
        assert_eq!(r, Err(RouteError::Unrouted { slot: 7, pin: 0 }));
        assert!(r.unwrap_err().undescribed());
    }

    #[test]
    fn a_link_is_resolved_from_its_crs() {
        let (sim, e) = q35_with_root_port();
        let link = |resolved| Route { slot: 7, pin: 0, target: Target::Link { path: "\\_SB.LNKA".into(), index: 0, resolved } };
        let l = LinkIrq { gsi: 17, level: true, active_low: false };
        let ns = namespace(vec![root_bridge("\\_SB.PCI0", 0, Some(Ok(vec![link(Ok(l))])), vec![])]);
        let r = resolve(&e, &sim, &acpi(ns, Chipset::Unknown), edu(&e)).unwrap();
        assert_eq!((r.route, r.source), (IntxRoute { gsi: 17, level: true, active_low: false }, RouteSource::Dsdt));
    }

    #[test]
    fn an_unresolvable_link_or_prt_is_an_undescribed_route_not_a_guess() {
        let (sim, e) = q35_with_root_port();
        let err: &'static NsError = Box::leak(Box::new(NsError { path: "\\_SB.LNKA".into(), cause: Cause::NoInterrupt }));
        let link = Route { slot: 7, pin: 0, target: Target::Link { path: "\\_SB.LNKA".into(), index: 0, resolved: Err(err.clone()) } };
        let ns = namespace(vec![root_bridge("\\_SB.PCI0", 0, Some(Ok(vec![link])), vec![])]);
        let r = resolve(&e, &sim, &acpi(ns, Chipset::Q35), edu(&e));
        assert_eq!(r, Err(RouteError::LinkUnresolved(err)), "not the q35 rule's 23");
        assert!(r.unwrap_err().undescribed());
        assert!(r.unwrap_err().to_string().contains("\\_SB.LNKA"));
        // A bridge _PRT that cannot be evaluated stops the walk (the swizzled root entry may be wrong).
        let port = BridgePrt { path: "\\_SB.PCI0.RP07".into(), adr_chain: vec![Some(0x0007_0000)], prt: Err(failed("\\_SB.PCI0.RP07._PRT")) };
        let ns = namespace(vec![root_bridge("\\_SB.PCI0", 0, Some(Ok(q35_prt())), vec![port])]);
        let r = resolve(&e, &sim, &acpi(ns, Chipset::Q35), edu(&e));
        assert!(matches!(r, Err(RouteError::PrtUnevaluable(e)) if e.path.ends_with("RP07._PRT")), "{r:?}");
    }

    #[test]
    fn a_disabled_link_on_q35_is_routed_by_the_ich9_rule() {
        let (sim, e) = q35_with_root_port();
        let err: &'static NsError = Box::leak(Box::new(failed("\\_SB.LNKA")));
        let link = Route { slot: 7, pin: 0, target: Target::Link { path: "\\_SB.LNKA".into(), index: 0, resolved: Err(err.clone()) } };
        let ns = namespace(vec![root_bridge("\\_SB.PCI0", 0, Some(Ok(vec![link])), vec![])]);
        let r = resolve(&e, &sim, &acpi(ns, Chipset::Q35), edu(&e)).unwrap();
        assert_eq!((r.route.gsi, r.source), (23, RouteSource::ChipsetRule));
        // No rule known: the link's error.
        assert_eq!(resolve(&e, &sim, &acpi(ns, Chipset::Unknown), edu(&e)), Err(RouteError::LinkUnresolved(err)));
    }

    #[test]
    fn another_root_bus_is_routed_from_its_own_root_bridge() {
        let sim = SimConfig::default();
        sim.add(Bdf::new(0, 0, 0), 0x8086, 0x29c0, 0x060000);
        let rp = sim.add(Bdf::new(0x80, 0, 0), 0x1b36, 0x000c, 0x060400);
        sim.poke(rp, 0x0E, &[0x01]);
        sim.poke(rp, 0x19, &[0x81, 0x81]);
        let edu = sim.add(Bdf::new(0x81, 0, 0), 0x1234, 0x11e8, 0x00ff00);
        sim.poke(edu, 0x3D, &[1]);
        let mut e = Enumeration::new();
        enumerate::enumerate_roots(&sim, &[(0, 0x7F), (0x80, 0x81)], &mut e);
        let ns = namespace(vec![
            root_bridge("\\_SB.PCI0", 0, Some(Ok(q35_prt())), vec![]),
            root_bridge("\\_SB.PC80", 0x80, Some(Ok(vec![gsi(0, 0, 18)])), vec![]),
        ]);
        let r = resolve(&e, &sim, &acpi(ns, Chipset::Q35), e.get(edu).unwrap()).unwrap();
        assert_eq!((r.route.gsi, r.root, r.disagreement), (18, (0, 0), None), "no bus-0 rule held against another root bus");
        // Without the expander in the namespace: as before, not routed.
        let ns = namespace(vec![root_bridge("\\_SB.PCI0", 0, Some(Ok(q35_prt())), vec![])]);
        assert_eq!(resolve(&e, &sim, &acpi(ns, Chipset::Q35), e.get(edu).unwrap()), Err(RouteError::OtherRootBus(0x80)));
    }

    #[test]
    fn piix_pirq_registers() {
        let sim = SimConfig::default();
        sim.add(Bdf::new(0, 0, 0), 0x8086, 0x1237, 0x060000);
        let piix = sim.add(Bdf::new(0, 1, 0), 0x8086, 0x7000, 0x060100);
        sim.poke(piix, 0x60, &[10, 10, 11, 0x80]);
        let nvme = sim.add(Bdf::new(0, 3, 0), 0x1b36, 0x0010, 0x010802);
        sim.poke(nvme, 0x3D, &[1]);
        let odd = sim.add(Bdf::new(0, 4, 0), 0x1234, 0x11e8, 0x00ff00);
        sim.poke(odd, 0x3D, &[1]);
        let mut e = Enumeration::new();
        enumerate::enumerate(&sim, 0, 255, &mut e);
        assert_eq!(Chipset::detect(&e), Chipset::I440fx);
        let r = resolve(&e, &sim, &only(Chipset::I440fx), e.get(nvme).unwrap()).unwrap();
        assert_eq!((r.route.gsi, r.source), (11, RouteSource::PiixPirq));
        assert!(r.route.level && r.route.active_low, "no MADT: PCI default level, active-low");
        // Slot 4 INTA -> PIRQD, which is disabled.
        assert_eq!(
            resolve(&e, &sim, &only(Chipset::I440fx), e.get(odd).unwrap()),
            Err(RouteError::PirqDisabled { pirq: 3, value: 0x80 })
        );
    }

    #[test]
    fn no_pin_and_broken_bridge_chain() {
        let (sim, mut e) = q35_with_root_port();
        let mut f = e.get(Bdf::new(0, 2, 0)).unwrap().clone();
        f.interrupt_pin = 0;
        assert_eq!(resolve(&e, &sim, &only(Chipset::Q35), &f), Err(RouteError::NoPin(0)));
        e.functions.retain(|f| f.bdf != Bdf::new(0, 7, 0));
        let edu = e.get(Bdf::new(1, 0, 0)).unwrap().clone();
        assert_eq!(resolve(&e, &sim, &only(Chipset::Q35), &edu), Err(RouteError::NoBridgeTo(1)));
    }

    /// QEMU pc without ACPI: SeaBIOS's MP table lists e1000e (02, INTA -> 10) and a pci-bridge (05, INTA -> 10)
    /// on bus 0; nothing on bus 1. PIIX3 PIRQ registers 10, 10, 11, 11.
    fn pc_with_bridge(bridge_children: &[(u8, u8)]) -> (SimConfig, Enumeration) {
        let sim = SimConfig::default();
        sim.add(Bdf::new(0, 0, 0), 0x8086, 0x1237, 0x060000);
        let piix = sim.add(Bdf::new(0, 1, 0), 0x8086, 0x7000, 0x060100);
        sim.poke(piix, 0x60, &[10, 10, 11, 11]);
        let e1000e = sim.add(Bdf::new(0, 2, 0), 0x8086, 0x10d3, 0x020000);
        sim.poke(e1000e, 0x3D, &[1]);
        let br = sim.add(Bdf::new(0, 5, 0), 0x1b36, 0x0001, 0x060400);
        sim.poke(br, 0x0E, &[0x01]);
        sim.poke(br, 0x19, &[1, 1]);
        sim.poke(br, 0x3D, &[1]);
        for &(dev, pin) in bridge_children {
            let f = sim.add(Bdf::new(1, dev, 0), 0x1234, 0x11e8, 0x00ff00);
            sim.poke(f, 0x3D, &[pin]);
        }
        let mut e = Enumeration::new();
        enumerate::enumerate(&sim, 0, 255, &mut e);
        (sim, e)
    }

    /// SeaBIOS's entries (active-high, level); `bus1_as_3`: a table that lists bus 1 itself.
    struct SeaBiosMp {
        bus1_as_3: bool,
    }

    impl MpRoutes for SeaBiosMp {
        fn pci(&self, bus: u8, dev: u8, pin: Pin) -> Option<IntxRoute> {
            let bus = if self.bus1_as_3 && bus == 1 { 3 } else { bus };
            let line = match (bus, dev, pin) {
                (0, 2, 0) | (0, 5, 0) => 10,
                (3, 0, 0) => 17,
                _ => return None,
            };
            Some(IntxRoute { gsi: line, level: true, active_low: false })
        }
        fn to_gsi(&self, gsi: u32) -> Option<IntxRoute> {
            (gsi == 10 || gsi == 17).then_some(IntxRoute { gsi, level: true, active_low: false })
        }
    }

    const SEABIOS_MP: SeaBiosMp = SeaBiosMp { bus1_as_3: false };

    #[test]
    fn mp_table_entries_and_bridges() {
        let (sim, e) = pc_with_bridge(&[(0, 1), (1, 1)]);
        let mp = Sources { mp: Some(&SEABIOS_MP), ..only(Chipset::I440fx) };
        let r = resolve(&e, &sim, &mp, e.get(Bdf::new(0, 2, 0)).unwrap()).unwrap();
        assert_eq!((r.route, r.source, r.disagreement), (IntxRoute { gsi: 10, level: true, active_low: false }, RouteSource::MpTable, None));
        // 01:00.0 INTA swizzles to the bridge's own INTA, which the table lists.
        let r = resolve(&e, &sim, &mp, e.get(Bdf::new(1, 0, 0)).unwrap()).unwrap();
        assert_eq!((r.route.gsi, r.source, r.root), (10, RouteSource::MpTable, (5, 0)));
        // 01:01.0 INTA swizzles to the bridge slot's INTB, which it does not: the PIIX3 rule (PIRQ (5-1+1)&3 = B
        // -> 10), not the bridge's INTA entry (Linux's fuzzy match), with line 10's trigger and polarity from
        // the table's other entries for it (no MADT).
        let r = resolve(&e, &sim, &mp, e.get(Bdf::new(1, 1, 0)).unwrap()).unwrap();
        assert_eq!((r.route, r.source, r.root), (IntxRoute { gsi: 10, level: true, active_low: false }, RouteSource::PiixPirq, (5, 1)));
        // Without a known chipset rule that is a typed error naming the MP table.
        let unknown = Sources { mp: Some(&SEABIOS_MP), ..only(Chipset::Unknown) };
        assert_eq!(resolve(&e, &sim, &unknown, e.get(Bdf::new(1, 1, 0)).unwrap()), Err(RouteError::NoMpEntry { slot: 5, pin: 1 }));
        assert_eq!(resolve(&e, &sim, &only(Chipset::Unknown), e.get(Bdf::new(1, 1, 0)).unwrap()), Err(RouteError::Unrouted { slot: 5, pin: 1 }));
    }

    #[test]
    fn mp_table_entry_for_the_secondary_bus_wins_and_disagreement_is_reported() {
        let (sim, e) = pc_with_bridge(&[(0, 1)]);
        // A table that lists bus 1 itself (here as bus 3's entry moved to bus 1) is used without swizzling.
        let own = SeaBiosMp { bus1_as_3: true };
        let mp = Sources { mp: Some(&own), ..only(Chipset::I440fx) };
        let r = resolve(&e, &sim, &mp, e.get(Bdf::new(1, 0, 0)).unwrap()).unwrap();
        assert_eq!((r.route.gsi, r.source, r.disagreement), (17, RouteSource::MpTable, Some(10)), "the PIIX3 registers say 10");
        // ACPI routing, where present, comes first.
        let ns = namespace(vec![root_bridge("\\_SB.PCI0", 0, Some(Ok(vec![gsi(5, 0, 20)])), vec![])]);
        let both = Sources { acpi: Some(ns), ..mp };
        assert_eq!(resolve(&e, &sim, &both, e.get(Bdf::new(1, 0, 0)).unwrap()).map(|r| r.source), Ok(RouteSource::Dsdt));
    }

    #[test]
    fn a_function_on_another_root_bus_is_not_routed() {
        let sim = SimConfig::default();
        sim.add(Bdf::new(0, 0, 0), 0x8086, 0x29c0, 0x060000);
        // pxb-pcie root bus 0x80: a root port to 0x81 with edu behind it.
        let rp = sim.add(Bdf::new(0x80, 0, 0), 0x1b36, 0x000c, 0x060400);
        sim.poke(rp, 0x0E, &[0x01]);
        sim.poke(rp, 0x19, &[0x81, 0x81]);
        let edu = sim.add(Bdf::new(0x81, 0, 0), 0x1234, 0x11e8, 0x00ff00);
        sim.poke(edu, 0x3D, &[1]);
        let mut e = Enumeration::new();
        enumerate::enumerate_roots(&sim, &[(0, 0x7F), (0x80, 0x81)], &mut e);
        let edu = e.get(edu).unwrap();
        // Not the q35 rule for slot 0 of bus 0, which would be a false route.
        let r = resolve(&e, &sim, &only(Chipset::Q35), edu);
        assert_eq!(r, Err(RouteError::OtherRootBus(0x80)));
        assert!(r.unwrap_err().undescribed());
    }
}

#[cfg(test)]
mod platform_tests {
    use super::*;
    use crate::physmem::SliceMemory;

    /// An F-segment image with a floating pointer at 0xF0000 and a table at 0xF0010 holding an ISA bus, an
    /// IOAPIC, and (`pci`) a PCI bus with one entry: QEMU's qboot table, or SeaBIOS's in small.
    fn image(pci: bool) -> &'static [u8] {
        let mut entries: std::vec::Vec<u8> = vec![1, 1, b'I', b'S', b'A', b' ', b' ', b' ', 2, 0, 0x11, 1, 0, 0, 0xC0, 0xFE];
        if pci {
            entries.extend_from_slice(&[1, 0, b'P', b'C', b'I', b' ', b' ', b' ', 3, 0, 1, 0, 0, 2 << 2, 0, 10]);
        }
        let mut t: std::vec::Vec<u8> = b"PCMP".to_vec();
        t.extend_from_slice(&((44 + entries.len()) as u16).to_le_bytes());
        t.extend_from_slice(&[4, 0]);
        t.extend_from_slice(&[b' '; 20]);
        t.extend_from_slice(&[0; 6]);
        t.extend_from_slice(&((entries.len() / 8) as u16).to_le_bytes());
        t.extend_from_slice(&0xFEE0_0000u32.to_le_bytes());
        t.extend_from_slice(&[0; 4]);
        t.extend_from_slice(&entries);
        t[7] = 0u8.wrapping_sub(t.iter().fold(0u8, |s, b| s.wrapping_add(*b)));
        let mut fp = vec![b'_', b'M', b'P', b'_', 0x10, 0, 0x0F, 0, 1, 4, 0, 0, 0, 0, 0, 0];
        fp[10] = 0u8.wrapping_sub(fp.iter().fold(0u8, |s, b| s.wrapping_add(*b)));
        fp.extend_from_slice(&t);
        fp.resize(0x1_0000, 0);
        Box::leak(fp.into_boxed_slice())
    }

    fn table(pci: bool) -> &'static mptable::MpTable<'static> {
        let mem: &'static SliceMemory<'static> = Box::leak(Box::new(SliceMemory::new(0xF_0000, image(pci))));
        Box::leak(Box::new(mptable::discover(mem).unwrap().unwrap()))
    }

    fn routing(mp: Option<&'static mptable::MpTable<'static>>, ioapics: usize, chipset: Chipset) -> Routing<'static> {
        Routing {
            chipset,
            madt: None,
            acpi: None,
            mp,
            ioapic_ids: &[(0, 0)],
            unavailable: Routing::unavailable_reason(ioapics, false, mp, false, chipset),
        }
    }

    #[test]
    fn no_acpi_intx_sources() {
        // SeaBIOS: the MP table's PCI entries.
        let r = routing(Some(table(true)), 1, Chipset::I440fx);
        assert_eq!((r.unavailable, r.kind()), (None, "mp-table"));
        // qboot: an MP table without PCI entries; the chipset's rule.
        let r = routing(Some(table(false)), 1, Chipset::I440fx);
        assert_eq!((r.unavailable, r.kind()), (None, "chipset"));
        // Neither ACPI nor an MP table: no IOAPIC, one reason.
        let r = routing(None, 0, Chipset::I440fx);
        assert_eq!((r.unavailable, r.kind()), (Some("no IOAPIC is described: no ACPI tables and no MP table"), "none"));
        // An MP table without PCI entries on a host bridge with no known rule.
        let r = routing(Some(table(false)), 1, Chipset::Unknown);
        assert!(r.unavailable.is_some_and(|w| w.contains("without PCI interrupt entries")), "{:?}", r.unavailable);
        assert_eq!(r.kind(), "none");
        let r = routing(Some(table(false)), 0, Chipset::I440fx);
        assert!(r.unavailable.is_some_and(|w| w.contains("no usable IOAPIC")));
        // With ACPI: the DSDT or the chipset; the MP table is not a source.
        assert_eq!(Routing::unavailable_reason(1, true, None, false, Chipset::Unknown).map(|w| w.contains("no root bridge _PRT")), Some(true));
        assert_eq!(Routing::unavailable_reason(1, true, None, true, Chipset::Unknown), None);
    }

    #[test]
    fn mp_routes_become_gsis_by_ioapic_id() {
        use super::MpRoutes as _;
        let t = table(true);
        let m = MpTableRoutes { table: t, ioapic_ids: &[(0, 24)] };
        assert_eq!(m.pci(0, 2, 0), Some(crate::irq::intx::IntxRoute { gsi: 34, level: true, active_low: false }));
        assert_eq!(m.to_gsi(34).map(|r| r.active_low), Some(false));
        assert_eq!((m.pci(0, 3, 0), m.to_gsi(10)), (None, None));
        let unknown = MpTableRoutes { table: t, ioapic_ids: &[(5, 0)] };
        assert_eq!(unknown.pci(0, 2, 0), None, "an entry for an IOAPIC msifw does not have is not a route");
    }
}
