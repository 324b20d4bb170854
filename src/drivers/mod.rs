//! Device drivers: only what it takes to make each device raise an interrupt on demand, in each mode it
//! has. Drivers get interrupts through [`crate::modes::DeviceIrq`] and never touch capability registers.

pub mod e1000;
pub mod e1000e;
pub mod edu;
pub mod nvme;
pub mod pcie_port;
pub mod virtio_net;

use crate::bus::pci::enumerate::Function;

/// A driver failure, reported per device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverError {
    /// A BAR the driver needs is missing or unusable.
    Bar(u8),
    /// The device did not reach a state within the time it is given.
    Timeout(&'static str),
    /// The device answered with something unexpected.
    Unexpected(&'static str, u64),
    /// No DMA page left.
    NoDmaMemory,
    /// Entry out of range for this device.
    NoSuchSource(usize),
}

impl core::fmt::Display for DriverError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Bar(i) => write!(f, "BAR{i} missing or unusable"),
            Self::Timeout(what) => write!(f, "timed out waiting for {what}"),
            Self::Unexpected(what, v) => write!(f, "unexpected {what}: {v:#x}"),
            Self::NoDmaMemory => write!(f, "no DMA memory left"),
            Self::NoSuchSource(i) => write!(f, "no interrupt source {i}"),
        }
    }
}

/// A device that can be made to interrupt: source `i` raises the interrupt that the device sends on
/// its `i`-th vector (MSI-X entry `i`, MSI vector `i`).
pub trait InterruptSource {
    /// Number of sources (vectors) driven.
    fn sources(&self) -> usize;
    /// Makes the device raise source `i`.
    fn trigger(&mut self, i: usize) -> Result<(), DriverError>;
    /// Acknowledges source `i` at the device, so it can fire again.
    fn acknowledge(&mut self, i: usize) -> Result<(), DriverError>;
    /// The shortest time the device promises between two interrupts of one source (interrupt
    /// moderation); a checker keeps at least this gap before triggering the same source again. A driver
    /// with a nonzero interval also holds back a `trigger` that comes too early, so the gap holds across
    /// checks; a checker driving several sources schedules around it instead of waiting.
    fn min_interval_us(&self) -> u64 {
        0
    }
    /// The single 32-bit register write that acknowledges the device's INTx (source 0) and so deasserts
    /// it, doing nothing else, if the device has one. The INTx handler makes it for a function alone on
    /// its line (no configuration access), and the dispatch benchmark's minimal stub makes it (a level
    /// line must be deasserted before EOI, or it interrupts again at once).
    fn intx_ack(&self) -> Option<crate::irq::intx::IntxAck> {
        None
    }
    /// Stops the device raising interrupts and doing DMA (before its interrupt mode is shut down).
    fn stop(&mut self) -> Result<(), DriverError> {
        Ok(())
    }
    /// Adds one more interrupt source, signalling on the next vector (an NVMe I/O queue pair, say).
    fn add_source(&mut self) -> Result<(), DriverError> {
        Err(DriverError::Unexpected("this driver cannot add interrupt sources", 0))
    }
    /// Brings the device back after a reset of the function cleared its registers, with `vectors`
    /// interrupt vectors (MSI-X and the interrupt mode itself are restored first, by the caller).
    fn reinitialize(&mut self, _vectors: usize) -> Result<(), DriverError> {
        Err(DriverError::Unexpected("reinitialization after a reset is not supported by this driver", 0))
    }
}

/// Devices whose MSI or MSI-X must stay enabled at shutdown, Bus Master being cleared instead, and why.
/// Linux has done this for every device since fda78d7a0ead ("PCI/MSI: Stop disabling MSI/MSI-X in
/// pci_device_shutdown()", 2017); msifw disables MSI elsewhere and keeps this list of the exceptions.
pub const SHUTDOWN_KEEP_MSI: &[(u16, u16, &str)] = &[(
    0x1af4,
    0x1000,
    "legacy virtio: disabling MSI-X moves the device-specific configuration from 0x18 to 0x14 under a \
     driver still using it, and can wedge the device (seed 000; Linux fda78d7a0ead)",
)];

/// The shutdown quirk of vendor:device, if any.
pub fn shutdown_keep_msi(vendor: u16, device: u16) -> Option<&'static str> {
    SHUTDOWN_KEEP_MSI.iter().find(|q| q.0 == vendor && q.1 == device).map(|q| q.2)
}

/// Which driver, if any, takes a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    /// Intel 82574L (e1000e).
    E1000e,
    /// NVMe controller.
    Nvme,
    /// QEMU's edu device.
    Edu,
    /// Legacy (transitional) virtio-net over its I/O BAR.
    VirtioNet,
    /// PCI Express root or downstream port (hot-plug Command Completed interrupt). Taken only when the port
    /// is hot-plug capable: see [`pcie_port::is_hotplug_port`].
    PciePort,
}

impl DriverKind {
    /// Matches vendor:device (and class for NVMe).
    pub fn probe(f: &Function) -> Option<DriverKind> {
        match (f.vendor, f.device) {
            (0x8086, 0x10d3) => Some(DriverKind::E1000e),
            (0x1234, 0x11e8) => Some(DriverKind::Edu),
            // Transitional virtio-net: 0x1000 is the legacy ID (a modern-only device is 0x1041).
            (0x1af4, 0x1000) => Some(DriverKind::VirtioNet),
            _ if f.class == 0x010802 && f.header_type == 0 => Some(DriverKind::Nvme),
            _ if f.class >> 8 == 0x0604 && f.header_type == 1 && f.caps.find(crate::bus::pci::caps::id::PCIE).is_some() => {
                Some(DriverKind::PciePort)
            }
            _ => None,
        }
    }

    /// Report name.
    pub fn name(self) -> &'static str {
        match self {
            DriverKind::E1000e => "e1000e",
            DriverKind::Nvme => "nvme",
            DriverKind::Edu => "edu",
            DriverKind::VirtioNet => "virtio-net",
            DriverKind::PciePort => "pcie-port",
        }
    }
}
