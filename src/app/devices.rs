//! Driven devices: which driver and mode each function gets, setting them all up (with Linux's fallbacks
//! when vectors run out), the checks run on each while all are live, and teardown.

use super::{problem, push_problem, FunctionOutcome, Run, OUTCOMES};
use crate::bus::pci::config::{update_command, PlatformConfig};
use crate::bus::pci::enumerate::{Enumeration, Function};
use crate::bus::pci::{regs, trace, Bdf};
use crate::drivers::{DriverKind, IrqRequest, StartError};
use crate::irq::vector::VectorError;
use crate::modes::policy::{self, Offers};
use crate::modes::route::{self, RouteError};
use crate::modes::{quiesce, IrqMode};
use crate::report::Outcome;
use crate::scenarios::Verdict;
use alloc::string::String;
use alloc::vec::Vec;

pub(super) use crate::drivers::{Active, Device};
pub(super) use crate::modes::route::Routing;

/// The live devices, as many as the platform has drivable functions (on the heap: drivers with their
/// queues are far too big for the stack).
pub(super) static ACTIVE: spin::Mutex<Vec<Active>> = spin::Mutex::new(Vec::new());

/// Sets up every function a driver takes, all at once, into `active`. Fills [`OUTCOMES`].
pub(super) fn set_up_all(run: &mut Run, cfg: &'static PlatformConfig, pci: &Enumeration, routing: &Routing, active: &mut Vec<Active>) {
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
        let kind = DriverKind::find(cfg, f);
        if let (None, Some(m)) = (kind, run.opts.override_for(f.bdf)) {
            problem(
                "cmdline",
                format_args!("irq.{}={} names {} ({:04x}:{:04x}), which msifw does not drive; ignored", f.bdf, m.name(), f.bdf, f.vendor, f.device),
            );
        }
        if let Some(kind) = kind {
            outcome.driver = Some(kind.name());
            let offers = Offers::of(f);
            let (mut mode, reason) = policy::choose_mode(&run.opts, f.bdf, offers);
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
                        let Some(next) = policy::next_mode(m, offers) else {
                            break Err(SetupError::Irq(m, crate::modes::IrqError::Vector(e)));
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
                        let Some(next) = policy::next_mode(m, offers) else { break Err(SetupError::Irq(m, e)) };
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
                    if let Some(p) = dev.dev.takeover_problem() {
                        push_problem(&mut outcome, format_args!("{p}"));
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
                    quiesce::function(cfg, f);
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
                    quiesce::function(cfg, f);
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

pub(super) fn scenario_name(mode: IrqMode) -> &'static str {
    match mode {
        IrqMode::Msix => "msix-delivery",
        IrqMode::Msi => "msi-delivery",
        IrqMode::Intx => "intx-delivery",
        IrqMode::None => "irq-none",
    }
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

/// Starts `kind`'s driver on `f` in `mode`: its INTx route in INTx mode, Memory/I/O decoding and Bus
/// Master, then the driver's own bring-up, which asks for its vectors.
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
        IrqMode::Intx => Some(routing.resolve(pci, cfg, f).map_err(SetupError::Route)?),
        _ => None,
    };
    // pci_enable_device + pci_set_master: decoding for the BARs the function has, and Bus Master (quieting
    // turned it off on every endpoint).
    let io = if f.bars.iter().any(|b| b.kind == crate::bus::pci::bar::BarKind::Io) { regs::command::IO } else { 0 };
    let mem = if f.bars.iter().any(|b| b.kind != crate::bus::pci::bar::BarKind::Io) { regs::command::MEMORY } else { 0 };
    update_command(cfg, f.bdf, io | mem | regs::command::BUS_MASTER, 0);
    kind.start(&mut IrqRequest::new(cfg, f, mode, run.apic_id, routed)).map_err(|e| match e {
        StartError::Driver(e) => SetupError::Driver(kind, e),
        StartError::Irq(m, e) => SetupError::Irq(m, e),
        StartError::NotImplemented(m) => SetupError::NotImplemented(m),
        StartError::Declined(why) => SetupError::Declined(why),
    })
}
