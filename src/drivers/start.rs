//! Starting a driver: enabling the function and the bridges above it, the interrupt request a driver's
//! [`Driver::start`] asks its vectors from, Linux's fallbacks when a mode cannot be had, the spread of
//! its interrupt sources over the online CPUs, and the started device with its interrupts ([`Active`]).

use super::{Device, Driver, DriverError, DriverKind};
use crate::bus::pci::bar::BarKind;
use crate::bus::pci::config::{update_command, PlatformConfig};
use crate::bus::pci::enumerate::{Enumeration, Function};
use crate::bus::pci::{regs, trace, Bdf, ConfigRegion};
use crate::irq::vector::VectorError;
use crate::modes::route::{RouteError, Routed, Routing};
use crate::modes::{policy, DeviceIrq, IrqError, IrqMode};
use alloc::string::String;
use alloc::vec::Vec;

/// Why a driver did not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartError {
    /// The driver failed.
    Driver(DriverError),
    /// The interrupt mode could not be set up.
    Irq(IrqMode, IrqError),
    /// The mode is not implemented.
    NotImplemented(IrqMode),
    /// The driver does not drive the device in this mode, for the reason given.
    Declined(&'static str),
}

impl From<DriverError> for StartError {
    fn from(e: DriverError) -> Self {
        StartError::Driver(e)
    }
}

/// The interrupts a driver may ask for while it starts: one mode (chosen before, with Linux's
/// fallbacks around the whole start), as many vectors as it asks for in that mode, and what it was
/// given when that was fewer.
#[derive(Debug)]
pub struct IrqRequest<'a> {
    cfg: &'static PlatformConfig,
    function: &'a Function,
    mode: IrqMode,
    apic_id: u32,
    route: Option<Routed>,
    /// MSI-X with fewer vectors than asked for (the allocator ran out): (got, asked).
    reduced: Option<(u16, u16)>,
    /// MSI-X with fewer vectors than asked for because the table is smaller: (got, asked).
    table_limited: Option<(usize, u16)>,
    /// The driver's own reason for driving fewer sources than [`Driver::SOURCES`] (for `irq_reason`).
    pub fewer: Option<String>,
}

impl<'a> IrqRequest<'a> {
    /// A request for `function` in `mode`, its messages targeting `apic_id`; `route` is the function's
    /// INTx route in INTx mode.
    pub fn new(cfg: &'static PlatformConfig, function: &'a Function, mode: IrqMode, apic_id: u32, route: Option<Routed>) -> Self {
        IrqRequest { cfg, function, mode, apic_id, route, reduced: None, table_limited: None, fewer: None }
    }

    /// The configuration space the function sits in.
    pub fn cfg(&self) -> &'static PlatformConfig {
        self.cfg
    }

    /// The function.
    pub fn function(&self) -> &'a Function {
        self.function
    }

    /// The mode [`IrqRequest::enable`] sets up.
    pub fn mode(&self) -> IrqMode {
        self.mode
    }

    /// The CPU messages target.
    pub fn apic_id(&self) -> u32 {
        self.apic_id
    }

    /// Sets up the mode with up to `count` vectors. MSI-X takes fewer when the allocator runs out
    /// ([`policy::fewer_msix`]) or the table is smaller; MSI the largest power of two not above
    /// `count` its capability allows; INTx its one line.
    pub fn enable(&mut self, count: u16) -> Result<DeviceIrq<'static, PlatformConfig>, StartError> {
        let mode = self.mode;
        if mode == IrqMode::Msix {
            let mut n = count;
            loop {
                match DeviceIrq::enable_msix(self.cfg, self.function, n, self.apic_id) {
                    Ok(irq) => {
                        if n < count {
                            self.reduced = Some((n, count));
                        } else if irq.vectors().len() < count as usize {
                            self.table_limited = Some((irq.vectors().len(), count));
                        }
                        return Ok(irq);
                    }
                    Err(e) => match policy::fewer_msix(n, &e) {
                        Some(fewer) => n = fewer,
                        None => return Err(StartError::Irq(mode, e)),
                    },
                }
            }
        }
        match (mode, self.route) {
            (IrqMode::Msi, _) => DeviceIrq::enable_msi(self.cfg, self.function, count, self.apic_id),
            (IrqMode::Intx, Some(r)) => DeviceIrq::enable_intx(self.cfg, self.function, r.route),
            _ => return Err(StartError::NotImplemented(mode)),
        }
        .map_err(|e| StartError::Irq(mode, e))
    }

    /// The note for a smaller MSI-X table (not the allocator running out) that cost the driver sources:
    /// `driven` of `full` sources.
    pub fn table_note(&self, driven: usize, full: usize) -> Option<String> {
        match self.table_limited {
            Some((got, wanted)) if self.reduced.is_none() && driven < full => {
                Some(alloc::format!("MSI-X table has {got} entries, {wanted} wanted: {driven} of {full} sources driven"))
            }
            _ => None,
        }
    }
}

/// A device with its interrupts. Field order is drop order: the driver silences the device before the
/// interrupt mode is shut down and the vectors are freed.
#[derive(Debug)]
pub struct Active {
    /// Index of the function in the enumeration.
    pub index: usize,
    /// The interrupt mode.
    pub mode: IrqMode,
    /// The INTx route, in INTx mode.
    pub route: Option<Routed>,
    /// MSI-X with fewer vectors than wanted: (got, wanted).
    pub reduced: Option<(u16, u16)>,
    /// Why the driver drives fewer interrupt sources than it would with everything it asks for (a
    /// smaller MSI-X table, fewer queues granted), for `irq_reason`.
    pub fewer: Option<String>,
    /// The driver.
    pub dev: Device,
    /// The interrupts.
    pub irq: DeviceIrq<'static, PlatformConfig>,
}

/// Starts driver `T` on the request's function, wrapped as a [`Device`] by `wrap`; gives the INTx
/// handler the driver's acknowledge write.
pub(super) fn start<T: Driver>(req: &mut IrqRequest<'_>, wrap: fn(T) -> Device) -> Result<Active, StartError> {
    let (dev, mut irq) = T::start(req)?;
    irq.set_intx_ack(dev.intx_ack());
    irq.set_intx_cause(dev.intx_cause());
    // Fewer vectors than asked for without running out of them: the function's MSI-X table is smaller
    // (enable_msix takes what the table has); the driver drives fewer sources, and says so. Only where
    // it cost the driver sources (a port asks for two vectors for MSI's alignment but has one source).
    // A reason of the driver's own comes first.
    let fewer = req.fewer.take().or_else(|| req.table_note(dev.sources(), T::SOURCES));
    Ok(Active { index: 0, mode: req.mode, route: req.route, reduced: req.reduced, fewer, dev: wrap(dev), irq })
}

/// Why a device could not be set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupError {
    /// The driver failed.
    Driver(DriverKind, DriverError),
    /// The interrupt mode could not be set up.
    Irq(IrqMode, IrqError),
    /// The mode is not implemented.
    NotImplemented(IrqMode),
    /// No INTx route for the function.
    Route(RouteError),
    /// The driver does not drive the device in this mode, for the reason given.
    Declined(&'static str),
    /// INTx cannot be routed on this platform ([`Routing::unavailable`], reported once for all functions).
    NoIntx,
    /// The device was set up, but moving one of its sources to the CPU the spread gave it failed.
    Spread {
        /// The mode the device was set up in.
        mode: IrqMode,
        /// The source (MSI-X entry, MSI vector 0, INTx 0).
        source: usize,
        /// The CPU (index) it was to go to.
        cpu: usize,
        /// Why the move failed.
        error: IrqError,
    },
}

impl SetupError {
    /// Whether the driver stopped at a BAR the device has but that no one gave an address (no window of
    /// the platform fits it, reported as a `pci.assign` problem): the device's interrupts were never
    /// tried, so that is a SKIP naming the BAR, not a verdict on the device.
    pub fn unassigned_bar(&self, f: &Function) -> bool {
        matches!(self, SetupError::Driver(_, DriverError::Bar(i)) if f.bars.iter().any(|b| b.index == *i && b.address == 0))
    }

    /// Whether it says the mode or the device cannot be tried here (a SKIP) rather than that it failed:
    /// a mode the function does not have, INTx no routing source covers, a mode the driver declines, an
    /// unassigned BAR.
    pub fn is_unavailable(&self, f: &Function) -> bool {
        matches!(self, SetupError::Irq(_, IrqError::NoCapability(_)) | SetupError::NotImplemented(_) | SetupError::Declined(_))
            || matches!(self, SetupError::Route(e) if e.undescribed())
            || self.unassigned_bar(f)
    }

    /// Whether msifw's own limits caused it: no heap left for DMA memory, or no vector left on the CPU
    /// even for an INTx line (after Linux's fallbacks).
    pub fn is_capacity(&self) -> bool {
        matches!(
            self,
            SetupError::Driver(_, DriverError::NoDmaMemory)
                | SetupError::Irq(_, IrqError::Vector(VectorError::Exhausted { .. }))
                | SetupError::Irq(_, IrqError::Intx(crate::irq::intx::IntxError::Vector(VectorError::Exhausted { .. })))
                | SetupError::Spread { error: IrqError::Vector(VectorError::Exhausted { .. }), .. }
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
            Self::Spread { mode, source, cpu, error } => {
                write!(f, "{} set up, but moving source {source} to CPU {cpu} (the spread over the online CPUs) failed: {error}", mode.name())
            }
        }
    }
}


/// Memory decoding and Bus Master on every bridge between the root bus and `bdf`: a bridge forwards its
/// children's memory writes (MSI messages, DMA) upstream only with Bus Master set (PCI-to-PCI Bridge 1.2
/// 3.2.2.1.1), as Linux's pci_enable_bridge ensures.
fn enable_bridges_above(cfg: &(impl ConfigRegion + ?Sized), pci: &Enumeration, bdf: Bdf) {
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


/// What starting a driver needs besides the driver: the function, where it sits, how its INTx is
/// routed, and the CPU its messages target.
#[derive(Debug)]
pub struct Target<'a> {
    /// The configuration space.
    pub cfg: &'static PlatformConfig,
    /// The enumeration (for the bridges above the function).
    pub pci: &'a Enumeration,
    /// INTx routing.
    pub routing: &'a Routing<'a>,
    /// The function.
    pub function: &'a Function,
    /// The CPU messages target.
    pub apic_id: u32,
}

/// Starts `kind`'s driver on the target's function in `mode`: its INTx route in INTx mode, Memory/I/O
/// decoding and Bus Master (pci_enable_device, pci_set_master), then the driver's own bring-up, which
/// asks for its vectors.
pub fn start_in_mode(t: &Target<'_>, kind: DriverKind, mode: IrqMode) -> Result<Active, SetupError> {
    let (cfg, f) = (t.cfg, t.function);
    let routed = match mode {
        IrqMode::Intx if t.routing.unavailable.is_some() => return Err(SetupError::NoIntx),
        IrqMode::Intx => Some(t.routing.resolve(t.pci, cfg, f).map_err(SetupError::Route)?),
        _ => None,
    };
    // Decoding for the BARs the function has, and Bus Master (quieting turned it off on every endpoint).
    let io = if f.bars.iter().any(|b| b.kind == BarKind::Io) { regs::command::IO } else { 0 };
    let mem = if f.bars.iter().any(|b| b.kind != BarKind::Io) { regs::command::MEMORY } else { 0 };
    update_command(cfg, f.bdf, io | mem | regs::command::BUS_MASTER, 0);
    kind.start(&mut IrqRequest::new(cfg, f, mode, t.apic_id, routed)).map_err(|e| match e {
        StartError::Driver(e) => SetupError::Driver(kind, e),
        StartError::Irq(m, e) => SetupError::Irq(m, e),
        StartError::NotImplemented(m) => SetupError::NotImplemented(m),
        StartError::Declined(why) => SetupError::Declined(why),
    })
}

/// A driver started with Linux's fallbacks.
#[derive(Debug)]
pub struct Started {
    /// The mode last tried (the one the device runs in, on success).
    pub mode: IrqMode,
    /// The device, or why the last mode tried failed.
    pub result: Result<Active, SetupError>,
    /// The function's `irq_reason`, with each fallback taken.
    pub reason: Option<String>,
    /// One problem per mode that failed other than for want of vectors.
    pub problems: Vec<String>,
}

/// Takes the target's function over (its accesses are held against the write-order rules from now on),
/// enables the bridges above it, starts `kind`'s driver in `mode` and, when the mode was chosen
/// automatically (`automatic`), falls back
/// as pci_alloc_irq_vectors does when a mode cannot be set up: fewer MSI-X vectors (inside
/// [`IrqRequest::enable`]), then MSI, then INTx, whose lines have their own vector pool
/// ([`policy::next_mode`]). `reason` is the function's `irq_reason` so far.
pub fn start_with_fallbacks(t: &Target<'_>, kind: DriverKind, mut mode: IrqMode, automatic: bool, mut reason: Option<String>) -> Started {
    trace::own(t.function.bdf);
    enable_bridges_above(t.cfg, t.pci, t.function.bdf);
    let offers = policy::Offers::of(t.function);
    let mut problems = Vec::new();
    let result = loop {
        match start_in_mode(t, kind, mode) {
            Err(SetupError::Irq(m, IrqError::Vector(e))) if automatic => {
                let Some(next) = policy::next_mode(m, offers) else {
                    break Err(SetupError::Irq(m, IrqError::Vector(e)));
                };
                let mut why = match reason.take() {
                    Some(w) if w.starts_with("vectors exhausted") => w,
                    _ => String::from("vectors exhausted:"),
                };
                let _ = core::fmt::Write::write_fmt(&mut why, format_args!(" no {} ({e});", m.name()));
                reason = Some(why);
                mode = next;
            }
            // Any other failure of MSI-X or MSI (a table outside its BAR, a reserved BIR, a message
            // that did not read back) falls back too, as pci_alloc_irq_vectors does; the error
            // stays in the function's problems.
            Err(SetupError::Irq(m, e)) if automatic && m != IrqMode::Intx => {
                let Some(next) = policy::next_mode(m, offers) else { break Err(SetupError::Irq(m, e)) };
                problems.push(alloc::format!("{} failed: {e}; falling back to {}", m.name(), next.name()));
                let mut why = reason.take().unwrap_or_default();
                let _ = core::fmt::Write::write_fmt(&mut why, format_args!("{} failed: {e};", m.name()));
                reason = Some(why);
                mode = next;
            }
            other => break other,
        }
    };
    let result = result.and_then(|mut active| match spread(t, &mut active) {
        Ok(()) => Ok(active),
        Err((source, cpu, error)) => Err(SetupError::Spread { mode: active.mode, source, cpu, error }),
    });
    Started { mode, result, reason, problems }
}

/// How many of a device's sources can be aimed at CPUs of their own: every MSI-X entry; one for
/// single-vector MSI and for INTx (one redirection entry per line, shared by every function on it);
/// none for multiple-message MSI, whose vectors share one message address (PCIe r5.0 7.7.1.6) and move
/// only together, which [`DeviceIrq::retarget`] does not do (nor Linux without interrupt remapping):
/// such a function stays on the CPU it was set up on.
pub fn spread_sources(mode: IrqMode, entries: usize) -> usize {
    match mode {
        IrqMode::Msix => entries,
        IrqMode::Msi if entries > 1 => 0,
        IrqMode::Msi | IrqMode::Intx => entries.min(1),
        IrqMode::None => 0,
    }
}

/// Which key the spread of a device's sources starts from: its function's place in the enumeration, so
/// devices with one source land on different CPUs; for INTx the line (GSI), so functions sharing it
/// agree on where it goes.
fn spread_key(t: &Target<'_>, active: &Active) -> usize {
    match active.irq.intx_route() {
        Some(route) => route.gsi as usize,
        None => t.pci.functions.iter().position(|f| f.bdf == t.function.bdf).unwrap_or(0),
    }
}

/// Spreads the started device's sources over the online CPUs ([`policy::spread`]): each source the
/// spread puts on another CPU than the one it was set up on is moved there the way Linux moves it for
/// the mode ([`DeviceIrq::retarget`]). With one CPU nothing moves. Err: (source, CPU, why) of the first
/// move that failed.
fn spread(t: &Target<'_>, active: &mut Active) -> Result<(), (usize, usize, IrqError)> {
    let online = crate::arch::smp::online();
    if online.len() < 2 {
        return Ok(());
    }
    let sources = spread_sources(active.mode, active.irq.vectors().len());
    let cpus = policy::spread(spread_key(t, active), sources, &online);
    for (i, &cpu) in cpus.iter().enumerate().take(sources) {
        if active.irq.target(i).is_some_and(|now| now.cpu == cpu) {
            continue;
        }
        active.irq.retarget(i, cpu).map_err(|e| (i, cpu, e))?;
    }
    Ok(())
}
