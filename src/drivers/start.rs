//! Starting a driver: the interrupt request a driver's [`Driver::start`] asks its vectors from, and the
//! started device with its interrupts ([`Active`]).

use super::{Device, Driver, DriverError};
use crate::bus::pci::config::PlatformConfig;
use crate::bus::pci::enumerate::Function;
use crate::modes::route::Routed;
use crate::modes::{policy, DeviceIrq, IrqError, IrqMode};
use alloc::string::String;

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
    // Fewer vectors than asked for without running out of them: the function's MSI-X table is smaller
    // (enable_msix takes what the table has); the driver drives fewer sources, and says so. Only where
    // it cost the driver sources (a port asks for two vectors for MSI's alignment but has one source).
    // A reason of the driver's own comes first.
    let fewer = req.fewer.take().or_else(|| req.table_note(dev.sources(), T::SOURCES));
    Ok(Active { index: 0, mode: req.mode, route: req.route, reduced: req.reduced, fewer, dev: wrap(dev), irq })
}
