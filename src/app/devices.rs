//! Driven devices: which driver and mode each function gets, setting them all up (with Linux's fallbacks
//! when vectors run out), the checks run on each while all are live, and teardown.

use super::{problem, push_problem, FunctionOutcome, Run, OUTCOMES};
use crate::bus::pci::config::PlatformConfig;
use crate::bus::pci::enumerate::{Enumeration, Function};
use crate::bus::pci::{caps, regs, trace, Bdf};
use crate::cmdline::Options;
use crate::drivers::pcie_port::{self, PciePort};
use crate::drivers::{e1000e::E1000e, edu::Edu, nvme::Nvme, virtio_net::VirtioNet, DriverKind, InterruptSource};
use crate::irq::vector::VectorError;
use crate::modes::route::{self, Chipset, RouteError, Routed};
use crate::modes::{update_command, DeviceIrq, IrqMode};
use crate::platform::{acpi, mptable, prt};
use crate::report::Outcome;
use crate::scenarios::Verdict;
use alloc::string::String;
use alloc::vec::Vec;

/// The live devices, as many as the platform has drivable functions (on the heap: drivers with their
/// queues are far too big for the stack).
pub(crate) static ACTIVE: spin::Mutex<Vec<Active>> = spin::Mutex::new(Vec::new());

/// Sets up every function a driver takes, all at once, into `active`. Fills [`OUTCOMES`].
pub(crate) fn set_up_all(run: &mut Run, cfg: &'static PlatformConfig, pci: &Enumeration, routing: &Routing, active: &mut Vec<Active>) {
    let mut outcomes = OUTCOMES.lock();
    outcomes.clear();
    // Functions left without INTx because the platform cannot route it at all.
    // (How many, the first few named in the report.)
    let (mut no_intx, mut no_intx_named): (usize, Vec<Bdf>) = (0, Vec::new());
    for (index, f) in pci.functions.iter().enumerate() {
        let mut outcome = FunctionOutcome::default();
        for p in f.problems.iter() {
            push_problem(&mut outcome, format_args!("{p}"));
        }
        let kind = driver_for(cfg, f);
        if let (None, Some(m)) = (kind, run.opts.override_for(f.bdf)) {
            problem(
                "cmdline",
                format_args!("irq.{}={} names {} ({:04x}:{:04x}), which msifw does not drive; ignored", f.bdf, m.name(), f.bdf, f.vendor, f.device),
            );
        }
        if let Some(kind) = kind {
            outcome.driver = Some(kind.name());
            let (mut mode, reason) = choose_mode(&run.opts, f);
            let automatic = run.opts.override_for(f.bdf).is_none();
            outcome.reason = reason;
            if mode == IrqMode::None {
                // `irq.BDF=none`, or no mode at all: not set up, left as quieting left it.
                outcomes.push(outcome);
                continue;
            }
            trace::own(f.bdf);
            enable_upstream_bridges(cfg, pci, f.bdf);
            // Linux's pci_alloc_irq_vectors order when vectors run out: fewer MSI-X vectors (inside
            // `setup`), then MSI, then INTx (whose lines have their own vector pool).
            let result = loop {
                match setup(run, cfg, pci, routing, f, kind, mode) {
                    Err(SetupError::Irq(m, crate::modes::IrqError::Vector(e))) if automatic => {
                        let next = match m {
                            IrqMode::Msix if f.caps.find(caps::id::MSI).is_some() => IrqMode::Msi,
                            IrqMode::Msix | IrqMode::Msi if f.interrupt_pin != 0 => IrqMode::Intx,
                            _ => break Err(SetupError::Irq(m, crate::modes::IrqError::Vector(e))),
                        };
                        let mut why = match outcome.reason.take() {
                            Some(w) if w.starts_with("vectors exhausted") => w,
                            _ => String::from("vectors exhausted:"),
                        };
                        let _ = core::fmt::Write::write_fmt(&mut why, format_args!(" no {} ({e});", m.name()));
                        outcome.reason = Some(why);
                        mode = next;
                    }
                    // Any other failure of MSI-X or MSI (a table outside its BAR, a reserved BIR, a message
                    // that did not read back) falls back too, as pci_alloc_irq_vectors does; the error
                    // stays in the function's problems.
                    Err(SetupError::Irq(m, e)) if automatic && m != IrqMode::Intx => {
                        let next = match m {
                            IrqMode::Msix if f.caps.find(caps::id::MSI).is_some() => IrqMode::Msi,
                            _ if f.interrupt_pin != 0 => IrqMode::Intx,
                            _ => break Err(SetupError::Irq(m, e)),
                        };
                        push_problem(&mut outcome, format_args!("{} failed: {e}; falling back to {}", m.name(), next.name()));
                        let mut why = outcome.reason.take().unwrap_or_default();
                        let _ = core::fmt::Write::write_fmt(&mut why, format_args!("{} failed: {e};", m.name()));
                        outcome.reason = Some(why);
                        mode = next;
                    }
                    other => break other,
                }
            };
            match result {
                Ok(mut dev) => {
                    // Setup may itself have raised an interrupt (a port's enabling write is a hot-plug
                    // command); the driver acknowledged it, so a level-triggered line held by the
                    // handler is re-armed now.
                    for i in 0..dev.irq.vectors().len() {
                        dev.irq.rearm(i);
                    }
                    if let Device::Nvme(n) = &dev.dev {
                        if n.drained_stale_intx() > 0 {
                            push_problem(
                                &mut outcome,
                                format_args!("INTx found asserted with nothing pending at takeover (left by a previous owner); acknowledged with {} CQ head doorbell write(s) before the line was enabled", n.drained_stale_intx()),
                            );
                        }
                    }
                    outcome.mode = Some(mode);
                    outcome.route = dev.route;
                    outcome.vectors = dev.irq.vectors().iter().copied().collect();
                    if let Some((got, wanted)) = dev.reduced {
                        let mut why = String::new();
                        let _ = core::fmt::Write::write_fmt(&mut why, format_args!("vectors exhausted: MSI-X with {got} of {wanted} vectors"));
                        outcome.reason = Some(why);
                    }
                    if let Some(fewer) = &dev.fewer {
                        outcome.reason = Some(fewer.clone());
                    }
                    if let Some((r, rule)) = dev.route.and_then(|r| r.disagreement.map(|rule| (r, rule))) {
                        let table = if r.source == route::RouteSource::MpTable { "the MP table" } else { "the DSDT" };
                        problem("routing", format_args!("{}: {table} routes to GSI {}, the chipset rule to GSI {rule}; using {table}", f.bdf, r.route.gsi));
                    }
                    active.push(Active { index, mode, ..dev });
                }
                Err(detail) if detail.is_capacity() => {
                    // msifw's own limit, not the device's fault: skipped, and the run fails on the problem.
                    let v = Verdict::new(Outcome::Skip, format_args!("not driven: {detail}"));
                    push_problem(&mut outcome, format_args!("{}", v.detail));
                    super::capacity(run, format_args!("{}: {detail}", f.bdf));
                    outcome.reason = Some(note(format_args!("not driven: {detail}")));
                    quiet_function(cfg, f);
                    run.scenario(scenario_name(mode), Some(f.bdf), &v);
                }
                Err(SetupError::NoIntx) => {
                    // One cause for every such function: reported once, after the loop.
                    let mut why = String::new();
                    let _ = core::fmt::Write::write_fmt(
                        &mut why,
                        format_args!("{}{}INTx unavailable on this platform", outcome.reason.as_deref().unwrap_or(""), if outcome.reason.is_some() { "; " } else { "" }),
                    );
                    outcome.reason = Some(why);
                    no_intx += 1;
                    if no_intx_named.len() < 8 {
                        no_intx_named.push(f.bdf);
                    }
                }
                Err(detail) => {
                    // Asking for a mode the function does not have is a configuration mismatch (skip), and
                    // so is INTx no routing source covers (msifw cannot test it); a mode it has that does
                    // not work is a failure.
                    let unavailable = matches!(
                        detail,
                        SetupError::Irq(_, crate::modes::IrqError::NoCapability(_))
                            | SetupError::NotImplemented(_)
                            | SetupError::Declined(_)
                    ) || matches!(detail, SetupError::Route(e) if e.undescribed())
                        || unassigned_bar(f, &detail);
                    let outcome_kind = if unavailable { Outcome::Skip } else { Outcome::Fail };
                    let reason = outcome.reason.clone();
                    let v = Verdict::new(
                        outcome_kind,
                        format_args!(
                            "{detail}{}{}{}",
                            if unassigned_bar(f, &detail) { " (it has no address: no window of the platform fits it, see the pci.assign problem)" } else { "" },
                            if reason.is_some() { "; " } else { "" },
                            reason.as_deref().unwrap_or("")
                        ),
                    );
                    push_problem(&mut outcome, format_args!("{}", v.detail));
                    run.scenario(scenario_name(mode), Some(f.bdf), &v);
                    // Not driven means quiet: whatever setup turned on (Bus Master, a mode) is off again.
                    quiet_function(cfg, f);
                    outcome.reason = Some(match &reason {
                        Some(r) if unavailable => note(format_args!("{r}; not driven")),
                        _ => note(format_args!("not driven: {detail}")),
                    });
                }
            }
        }
        outcomes.push(outcome);
    }
    if let (Some(why), 1..) = (routing.unavailable, no_intx) {
        let more = no_intx - no_intx_named.len();
        let v = Verdict::new(
            Outcome::Skip,
            format_args!(
                "INTx cannot be routed on this platform: {why}; {no_intx} function(s) left without INTx: {}{}",
                BdfList(&no_intx_named),
                if more > 0 { " and more" } else { "" }
            ),
        );
        run.scenario("intx-delivery", None, &v);
    }
}

/// BDFs separated by spaces.
struct BdfList<'a>(&'a [Bdf]);

impl core::fmt::Display for BdfList<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            write!(f, "{}{b}", if i > 0 { " " } else { "" })?;
        }
        Ok(())
    }
}

/// The driver for `f`, if msifw has one that can make it interrupt.
pub(crate) fn driver_for(cfg: &PlatformConfig, f: &Function) -> Option<DriverKind> {
    DriverKind::probe(f).filter(|k| *k != DriverKind::PciePort || pcie_port::is_hotplug_port(cfg, f))
}

/// Memory decoding and Bus Master on every bridge between the root bus and `bdf`: a bridge forwards its
/// children's memory writes (MSI messages, DMA) upstream only with Bus Master set (PCI-to-PCI Bridge 1.2
/// 3.2.2.1.1), as Linux's pci_enable_bridge ensures.
fn enable_upstream_bridges(cfg: &PlatformConfig, pci: &Enumeration, bdf: Bdf) {
    let mut bus = bdf.bus;
    // Each step goes to a lower bus number (enumeration follows only bridges to higher ones): at most 255.
    for _ in 0..256 {
        let Some(bridge) = pci.functions.iter().find(|b| b.bridge_buses.is_some_and(|(sec, _)| sec == bus)) else {
            return;
        };
        trace::own(bridge.bdf);
        update_command(cfg, bridge.bdf, regs::command::MEMORY | regs::command::BUS_MASTER, 0);
        bus = bridge.bdf.bus;
    }
}

/// The mode a driven device gets: the best it offers unless the command line says otherwise, and why
/// when it is not the best (naming the command-line word that decided it).
fn choose_mode(opts: &Options, f: &Function) -> (IrqMode, Option<String>) {
    let has_msix = f.caps.find(caps::id::MSIX).is_some();
    let has_msi = f.caps.find(caps::id::MSI).is_some();
    let has_intx = (1..=4).contains(&f.interrupt_pin);
    if let Some(mode) = opts.override_for(f.bdf) {
        let lacks = match mode {
            IrqMode::Msix => !has_msix,
            IrqMode::Msi => !has_msi,
            IrqMode::Intx => !has_intx,
            IrqMode::None => false,
        };
        let why = if lacks {
            note(format_args!("irq.{}={} on the command line, which the function does not offer", f.bdf, mode.name()))
        } else {
            note(format_args!("irq.{}={} on the command line", f.bdf, mode.name()))
        };
        return (mode, Some(why));
    }
    if has_msix && !opts.no_msix && !opts.no_msi {
        return (IrqMode::Msix, None);
    }
    if has_msi && !opts.no_msi {
        return (IrqMode::Msi, if has_msix { Some(note(format_args!("MSI-X disabled on the command line (nomsix)"))) } else { None });
    }
    let why = if opts.no_msi && (has_msi || has_msix) {
        "MSI disabled on the command line"
    } else if opts.no_msix && has_msix {
        "MSI-X disabled on the command line (nomsix), and no MSI capability"
    } else {
        "no MSI or MSI-X capability"
    };
    if !has_intx {
        return (IrqMode::None, Some(note(format_args!("{why}, and no INTx pin: not driven"))));
    }
    (IrqMode::Intx, Some(note(format_args!("{why}"))))
}

/// Leaves a function msifw does not drive (any more) unable to interrupt or master the bus: MSI off,
/// MSI-X off (Function Mask first, Enable cleared after the settle QEMU's e1000e needs), INTx disabled
/// (where the function implements the bit) and Bus Master off for an endpoint, as the start-up quieting
/// leaves it.
fn quiet_function(cfg: &PlatformConfig, f: &Function) {
    use crate::bus::pci::ConfigRegion;
    use crate::modes::msix::{CONTROL, DISABLE_SETTLE_US, ENABLE, FUNCTION_MASK};
    if let Some(at) = f.caps.find(caps::id::MSI) {
        let control = cfg.read16(f.bdf, at + crate::modes::msi::CONTROL);
        if control & crate::modes::msi::ENABLE != 0 {
            cfg.write16(f.bdf, at + crate::modes::msi::CONTROL, control & !crate::modes::msi::ENABLE);
        }
    }
    if let Some(at) = f.caps.find(caps::id::MSIX) {
        let control = cfg.read16(f.bdf, at + CONTROL);
        if control & ENABLE != 0 {
            cfg.write16(f.bdf, at + CONTROL, control | FUNCTION_MASK);
            crate::time::timers_run_by(crate::time::now_us() + DISABLE_SETTLE_US);
            cfg.write16(f.bdf, at + CONTROL, (control | FUNCTION_MASK) & !ENABLE);
        }
    }
    // A bridge keeps its Bus Master: it forwards its children's MSI writes upstream.
    let bus_master = if f.header_type == 0 { regs::command::BUS_MASTER } else { 0 };
    update_command(cfg, f.bdf, regs::command::INTX_DISABLE, bus_master);
}

pub(crate) fn scenario_name(mode: IrqMode) -> &'static str {
    match mode {
        IrqMode::Msix => "msix-delivery",
        IrqMode::Msi => "msi-delivery",
        IrqMode::Intx => "intx-delivery",
        IrqMode::None => "irq-none",
    }
}

/// A driven device.
// Variants differ in size (nvme keeps its queue pairs inline); there is one of these per driven device,
// on the heap.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Device {
    E1000e(E1000e),
    Nvme(Nvme),
    Edu(Edu),
    VirtioNet(VirtioNet),
    PciePort(PciePort<'static>),
}

impl Device {
    pub(crate) fn source(&mut self) -> &mut dyn InterruptSource {
        match self {
            Device::E1000e(d) => d,
            Device::Nvme(d) => d,
            Device::Edu(d) => d,
            Device::VirtioNet(d) => d,
            Device::PciePort(d) => d,
        }
    }

    pub(crate) fn source_ref(&self) -> &dyn InterruptSource {
        match self {
            Device::E1000e(d) => d,
            Device::Nvme(d) => d,
            Device::Edu(d) => d,
            Device::VirtioNet(d) => d,
            Device::PciePort(d) => d,
        }
    }
}

/// A device with its interrupts. Field order is drop order: the driver silences the device before the
/// interrupt mode is shut down and the vectors are freed.
pub(crate) struct Active {
    pub(crate) index: usize,
    pub(crate) mode: IrqMode,
    route: Option<Routed>,
    /// MSI-X with fewer vectors than wanted: (got, wanted).
    reduced: Option<(u16, u16)>,
    /// Why the driver drives fewer interrupt sources than it would with everything it asks for (a
    /// smaller MSI-X table, fewer queues granted), for `irq_reason`.
    fewer: Option<String>,
    pub(crate) dev: Device,
    pub(crate) irq: DeviceIrq<'static, PlatformConfig>,
}

/// Whether the driver stopped at a BAR the device has but that no one gave an address (no window of the
/// platform fits it, reported as a `pci.assign` problem): the device's interrupts were never tried, so that is
/// a SKIP naming the BAR, not a verdict on the device.
fn unassigned_bar(f: &Function, e: &SetupError) -> bool {
    matches!(e, SetupError::Driver(_, crate::drivers::DriverError::Bar(i)) if f.bars.iter().any(|b| b.index == *i && b.address == 0))
}

/// Why a device could not be set up.
#[derive(Debug, Clone, Copy)]
enum SetupError {
    Driver(DriverKind, crate::drivers::DriverError),
    Irq(IrqMode, crate::modes::IrqError),
    NotImplemented(IrqMode),
    Route(RouteError),
    /// The driver does not drive the device in this mode, for the reason given.
    Declined(&'static str),
    /// INTx cannot be routed on this platform ([`Routing::unavailable`], reported once for all functions).
    NoIntx,
}

impl SetupError {
    /// Whether msifw's own limits caused it: no heap left for DMA memory, or no vector left on the CPU
    /// even for an INTx line (after Linux's fallbacks).
    fn is_capacity(&self) -> bool {
        use crate::modes::IrqError;
        matches!(
            self,
            SetupError::Driver(_, crate::drivers::DriverError::NoDmaMemory)
                | SetupError::Irq(_, IrqError::Vector(VectorError::Exhausted { .. }))
                | SetupError::Irq(_, IrqError::Intx(crate::irq::intx::IntxError::Vector(VectorError::Exhausted { .. })))
        )
    }
}

impl core::fmt::Display for SetupError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Driver(kind, e) => write!(f, "{}: {e}", kind.name()),
            Self::Irq(mode, e) => write!(f, "{} setup failed: {e}", mode.name()),
            Self::NotImplemented(mode) => write!(f, "{} mode is not implemented yet", mode.name()),
            Self::Route(e) => write!(f, "INTx not routable: {e}"),
            Self::Declined(why) => write!(f, "{why}"),
            Self::NoIntx => write!(f, "INTx unavailable on this platform (see the intx-delivery skip)"),
        }
    }
}

/// A report text (`irq_reason`).
fn note(args: core::fmt::Arguments) -> String {
    alloc::format!("{args}")
}

/// I/O queue pairs (and so MSI-X vectors beyond the admin queue's) driven on each NVMe controller.
const NVME_IO_QUEUES: usize = 4;

/// The MP table's PCI entries as routes: an entry's IOAPIC ID and input made a GSI.
struct MpRoutes<'a> {
    table: &'a mptable::MpTable<'static>,
    ioapic_ids: &'a [(u8, u32)],
}

impl MpRoutes<'_> {
    fn route(&self, i: mptable::PciInterrupt) -> Option<crate::irq::intx::IntxRoute> {
        let base = match i.io_apic {
            mptable::ALL_IO_APICS => self.ioapic_ids.first()?.1,
            id => self.ioapic_ids.iter().find(|(i, _)| *i == id)?.1,
        };
        Some(crate::irq::intx::IntxRoute { gsi: base + u32::from(i.input), level: i.level, active_low: i.active_low })
    }
}

impl route::MpRoutes for MpRoutes<'_> {
    fn pci(&self, bus: u8, dev: u8, pin: u8) -> Option<crate::irq::intx::IntxRoute> {
        self.route(self.table.pci_interrupt(bus, dev, pin)?)
    }
    fn to_gsi(&self, gsi: u32) -> Option<crate::irq::intx::IntxRoute> {
        self.table
            .pci_entries()
            .filter_map(|i| self.table.pci_interrupt(i.bus, i.irq >> 2, i.irq & 3))
            .filter_map(|i| self.route(i))
            .find(|r| r.gsi == gsi)
    }
}

/// What INTx routing needs from the platform.
pub(crate) struct Routing<'a> {
    pub(crate) chipset: Chipset,
    pub(crate) madt: Option<&'a acpi::MadtInfo>,
    pub(crate) dsdt: Option<&'a prt::Routing>,
    /// The MP table, as a routing source (only without ACPI).
    pub(crate) mp: Option<&'a mptable::MpTable<'static>>,
    /// Each IOAPIC's (ID, first GSI), for the MP table's destinations.
    pub(crate) ioapic_ids: &'a [(u8, u32)],
    /// Why INTx cannot be routed at all on this platform (reported once, not per function).
    pub(crate) unavailable: Option<&'static str>,
}

impl Routing<'_> {
    /// Why no function can have INTx here, from the platform's sources: no IOAPIC described, or no table
    /// and no chipset rule to route with.
    pub(crate) fn unavailable_reason(ioapics: usize, acpi: bool, mp: Option<&mptable::MpTable<'_>>, dsdt: bool, chipset: Chipset) -> Option<&'static str> {
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
            (_, true, _) => Some("no INTx routing source: no DSDT routing package msifw can read, and no known rule for this host bridge"),
        }
    }

    /// Where INTx routing comes from, for the `platform` record.
    pub(crate) fn kind(&self) -> &'static str {
        let mp_entries = self.mp.is_some_and(|t| t.pci_entries().next().is_some());
        match (self.unavailable, self.dsdt, mp_entries) {
            (Some(_), _, _) => "none",
            (None, Some(_), _) => "acpi-prt",
            (None, None, true) => "mp-table",
            (None, None, false) => "chipset",
        }
    }

    /// `f`'s INTx route ([`route::resolve`] over these sources).
    pub(crate) fn resolve(&self, pci: &Enumeration, cfg: &PlatformConfig, f: &Function) -> Result<Routed, RouteError> {
        if let Some(why) = self.unavailable {
            return Err(RouteError::Unavailable(why));
        }
        let dsdt_lookup = |slot: u8, pin: u8| self.dsdt?.gsi(slot, pin).map(|r| (r.gsi, r.level, r.active_low));
        let mp_routes = self.mp.map(|table| MpRoutes { table, ioapic_ids: self.ioapic_ids });
        let sources = route::Sources {
            chipset: self.chipset,
            dsdt: self.dsdt.map(|_| &dsdt_lookup as route::DsdtLookup),
            mp: mp_routes.as_ref().map(|m| m as route::MpLookup),
            madt: self.madt,
        };
        route::resolve(pci, cfg, &sources, f)
    }
}

fn setup(
    run: &Run,
    cfg: &'static PlatformConfig,
    pci: &Enumeration,
    routing: &Routing,
    f: &Function,
    kind: DriverKind,
    mode: IrqMode,
) -> Result<Active, SetupError> {
    let routed = match mode {
        IrqMode::Intx if routing.unavailable.is_some() => return Err(SetupError::NoIntx),
        IrqMode::Intx => {
            Some(routing.resolve(pci, cfg, f).map_err(SetupError::Route)?)
        }
        _ => None,
    };
    let mut reduced = None;
    let mut table_limited: Option<(usize, u16)> = None;
    let mut enable = |count: u16| -> Result<DeviceIrq<'static, PlatformConfig>, SetupError> {
        if mode == IrqMode::Msix {
            // As many as wanted, else as many as the allocator can give (a smaller MSI-X table use).
            let mut n = count;
            loop {
                match DeviceIrq::enable_msix(cfg, f, n, run.apic_id) {
                    Err(crate::modes::IrqError::Vector(VectorError::Exhausted { .. })) if n > 1 => n -= 1,
                    Ok(irq) => {
                        if n < count {
                            reduced = Some((n, count));
                        } else if irq.vectors().len() < count as usize {
                            table_limited = Some((irq.vectors().len(), count));
                        }
                        return Ok(irq);
                    }
                    Err(e) => return Err(SetupError::Irq(mode, e)),
                }
            }
        }
        match (mode, routed) {
            (IrqMode::Msix, _) => DeviceIrq::enable_msix(cfg, f, count, run.apic_id),
            (IrqMode::Msi, _) => DeviceIrq::enable_msi(cfg, f, count, run.apic_id),
            (IrqMode::Intx, Some(r)) => DeviceIrq::enable_intx(cfg, f, r.route),
            _ => return Err(SetupError::NotImplemented(mode)),
        }
        .map_err(|e| SetupError::Irq(mode, e))
    };
    // pci_enable_device + pci_set_master: decoding for the BARs the function has, and Bus Master (quieting
    // turned it off on every endpoint).
    let io = if f.bars.iter().any(|b| b.kind == crate::bus::pci::bar::BarKind::Io) { regs::command::IO } else { 0 };
    let mem = if f.bars.iter().any(|b| b.kind != crate::bus::pci::bar::BarKind::Io) { regs::command::MEMORY } else { 0 };
    update_command(cfg, f.bdf, io | mem | regs::command::BUS_MASTER, 0);
    let driver = |e| SetupError::Driver(kind, e);
    let active = |dev: Device, mut irq: DeviceIrq<'static, PlatformConfig>, reduced: Option<(u16, u16)>, table_limited: Option<(usize, u16)>| {
        irq.set_intx_ack(dev.source_ref().intx_ack());
        // Fewer vectors than asked for without running out of them: the function's MSI-X table is smaller
        // (enable_msix takes what the table has); the driver drives fewer sources, and says so.
        // Only where it cost the driver sources (a port asks for two vectors for MSI's alignment but has
        // one source).
        let full = match kind {
            DriverKind::E1000e => 5,
            DriverKind::Nvme => 1 + NVME_IO_QUEUES,
            DriverKind::VirtioNet => 2,
            DriverKind::Edu | DriverKind::PciePort => 1,
        };
        let driven = dev.source_ref().sources();
        let fewer = match table_limited {
            Some((got, wanted)) if reduced.is_none() && driven < full => {
                Some(note(format_args!("MSI-X table has {got} entries, {wanted} wanted: {driven} of {full} sources driven")))
            }
            _ => None,
        };
        Active { index: 0, mode, route: routed, reduced, fewer, dev, irq }
    };
    match kind {
        DriverKind::E1000e => {
            let mut dev = E1000e::new(f).map_err(driver)?;
            let irq = enable(5)?;
            if mode == IrqMode::Msix {
                dev.use_msix(irq.vectors().len());
            } else {
                dev.use_single();
            }
            Ok(active(Device::E1000e(dev), irq, reduced, table_limited))
        }
        DriverKind::Edu => {
            let dev = Edu::new(f).map_err(driver)?;
            let irq = enable(1)?;
            Ok(active(Device::Edu(dev), irq, reduced, table_limited))
        }
        DriverKind::Nvme => {
            // MSI-X before CC.EN: QEMU binds the admin CQ's vector when the controller is enabled.
            let mut dev = Nvme::new(f).map_err(driver)?;
            // Taking the controller over copes with an INTx level a previous owner left asserted (drained
            // at enable, see Nvme::enable): in INTx mode the controller is enabled before its line is, so
            // nothing stale reaches the handler.
            dev.watch_intx_level(cfg, f.bdf);
            if mode == IrqMode::Intx {
                dev.enable().map_err(driver)?;
            }
            // Admin queue on vector 0, and in MSI-X mode I/O queues 1..=N on vectors 1..=N (QEMU rejects a
            // CQ vector other than 0 without MSI-X).
            let irq = enable(1 + NVME_IO_QUEUES as u16)?;
            if mode != IrqMode::Intx {
                dev.enable().map_err(driver)?;
            }
            let mut irq = irq;
            let mut fewer = None;
            if mode == IrqMode::Msix {
                // Only as many I/O queues as the controller grants (Set Features, Number of Queues), and
                // only as many vectors as queues (Linux's nvme_setup_io_queues: the vectors are freed and
                // allocated again for the granted count).
                let vectors_io = irq.vectors().len().saturating_sub(1);
                let granted = dev.set_queue_count(NVME_IO_QUEUES as u16).map_err(driver)? as usize;
                let queues = vectors_io.min(granted);
                if granted < NVME_IO_QUEUES {
                    fewer = Some(note(format_args!(
                        "controller granted {granted} of {NVME_IO_QUEUES} I/O queues (Set Features, Number of Queues): {} of {} sources driven",
                        1 + queues,
                        1 + NVME_IO_QUEUES
                    )));
                }
                if queues < vectors_io {
                    irq.reenable_msix(f, 1 + queues as u16, run.apic_id).map_err(|e| SetupError::Irq(mode, e))?;
                }
                dev.create_io_queues(queues).map_err(driver)?;
            }
            let mut a = active(Device::Nvme(dev), irq, reduced, table_limited);
            a.fewer = fewer.or(a.fewer);
            Ok(a)
        }
        DriverKind::VirtioNet => {
            // pci_enable_device + pci_set_master: I/O decoding for BAR0, Bus Master for the rings. QEMU's
            // virtio-pci clears DRIVER_OK and stops the queues on any Command write that leaves Bus Master
            // clear (the INTx mask-ack-unmask writes Command), so it is set before the device is touched.
            update_command(cfg, f.bdf, regs::command::IO | regs::command::BUS_MASTER, 0);
            let mut dev = VirtioNet::new(f).map_err(driver)?;
            // Vectors before DRIVER_OK: TX queue, RX queue, configuration changes (MSI-X entries 0-2).
            let irq = enable(3)?;
            let live = if mode == IrqMode::Msix { dev.use_msix(irq.vectors().len()) } else { dev.use_intx() };
            if let Err(e) = live {
                drop(dev); // reset the device before its interrupts are shut down
                return Err(driver(e));
            }
            // RX vector programmed but its source not driven (no peer answered): said in the report, not
            // only in the defmt log (a machine with one UART has none).
            let rx_unchecked = mode == IrqMode::Msix && irq.vectors().len() >= 2 && dev.sources() < 2;
            let mut a = active(Device::VirtioNet(dev), irq, reduced, table_limited);
            if rx_unchecked {
                a.fewer = a.fewer.or(Some(note(format_args!(
                    "RX not checked: no ARP reply from 10.0.2.2 (attach -netdev user,id=n0 and netdev=n0 on the device): 1 of 2 sources driven"
                ))));
            }
            Ok(a)
        }
        DriverKind::PciePort => {
            if mode == IrqMode::Intx {
                // Measured on QEMU 7.2 (ioh3420, pcie-root-port): the hot-plug interrupt arrives on the
                // port's GSI but Status.Interrupt stays clear, so no shared-line handler can attribute it.
                return Err(SetupError::Declined(
                    "port hot-plug interrupts through INTx are not attributable (Status.Interrupt stays clear on QEMU 7.2)",
                ));
            }
            let mut dev = PciePort::new(cfg, f).map_err(driver)?;
            // Hot-plug events use the message number in the PCIe Capabilities register (0 on QEMU's
            // ports); ask for 2 so a port with multi-message MSI (ioh3420) gets an aligned block.
            let irq = enable(2)?;
            dev.enable().map_err(driver)?;
            Ok(active(Device::PciePort(dev), irq, reduced, table_limited))
        }
    }
}

#[cfg(test)]
mod tests {
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
            dsdt: None,
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
        assert_eq!(Routing::unavailable_reason(1, true, None, false, Chipset::Unknown).map(|w| w.contains("no DSDT routing")), Some(true));
        assert_eq!(Routing::unavailable_reason(1, true, None, true, Chipset::Unknown), None);
    }

    #[test]
    fn mp_routes_become_gsis_by_ioapic_id() {
        use route::MpRoutes as _;
        let t = table(true);
        let m = MpRoutes { table: t, ioapic_ids: &[(0, 24)] };
        assert_eq!(m.pci(0, 2, 0), Some(crate::irq::intx::IntxRoute { gsi: 34, level: true, active_low: false }));
        assert_eq!(m.to_gsi(34).map(|r| r.active_low), Some(false));
        assert_eq!((m.pci(0, 3, 0), m.to_gsi(10)), (None, None));
        let unknown = MpRoutes { table: t, ioapic_ids: &[(5, 0)] };
        assert_eq!(unknown.pci(0, 2, 0), None, "an entry for an IOAPIC msifw does not have is not a route");
    }
}
