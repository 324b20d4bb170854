//! Device drivers: only what it takes to make each device raise an interrupt on demand, in each mode it
//! has. Drivers get interrupts through [`crate::modes::DeviceIrq`] and never touch capability registers.

mod start;

pub use start::{spread_sources, start_in_mode, start_with_fallbacks, Active, IrqRequest, SetupError, StartError, Started, Target};

use crate::bus::pci::config::PlatformConfig;
use crate::bus::pci::enumerate::Function;
use crate::modes::DeviceIrq;
use alloc::string::String;

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
    /// The device's read-to-clear interrupt cause register, if it has one: the INTx handler reads it to
    /// learn whether a function without Interrupt Disable (and so maybe without Status.Interrupt) asserts.
    fn intx_cause(&self) -> Option<crate::irq::intx::IntxCause> {
        None
    }
    /// How long after its last message the device can still send one of its own (us), from a timer its
    /// device model keeps (QEMU 7.2 e1000e's throttle), for a driver that knows every such timer; `None`
    /// when it does not. Used only while fences are ordered ([`crate::time::fences_ordered`]), which then
    /// make sure those timers ran: the checks' settle windows ([`crate::scenarios::delivery::settle`])
    /// and the settle between the Function Mask and clearing MSI-X Enable at shutdown only have to outlast
    /// it. `None` keeps the generic windows ([`crate::scenarios::delivery::SETTLE_US`],
    /// [`crate::modes::msix::DISABLE_SETTLE_US`]).
    fn late_message_us(&self) -> Option<u64> {
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

/// A driver: what it matches, how many vectors it asks for, and its bring-up with the interrupts it
/// was given. Making the device interrupt and acknowledging it is [`InterruptSource`]. One file per
/// driver implements it; the table ([`drivers!`] below) lists it once.
pub trait Driver: InterruptSource + Sized {
    /// Report name (`driver` in the function record).
    const NAME: &'static str;
    /// Vectors asked for from the interrupt allocation (pci_alloc_irq_vectors' `max_vecs`); MSI rounds
    /// it down to a power of two, INTx has one.
    const VECTORS: u16;
    /// Interrupt sources driven when every vector asked for is granted (for the report's note when a
    /// smaller MSI-X table costs the driver sources).
    const SOURCES: usize;
    /// Whether the function is this driver's device: vendor:device or class (Linux's `id_table`).
    fn matches(f: &Function) -> bool;
    /// Whether the driver takes a matching function after looking at its registers (Linux's `probe`
    /// returning -ENODEV). Most take every match.
    fn accepts(_cfg: &PlatformConfig, _f: &Function) -> bool {
        true
    }
    /// Brings the device up, asking `irq` for its interrupts (in `irq.mode()`) at the point in its
    /// bring-up the device needs them. Command decoding and Bus Master are already on.
    fn start(irq: &mut IrqRequest<'_>) -> Result<(Self, DeviceIrq<'static, PlatformConfig>), StartError>;
    /// A problem found while taking the device over, for the function's report (a level a previous owner
    /// left asserted, say).
    fn takeover_problem(&self) -> Option<String> {
        None
    }
}

/// The driver table, in probe order: each row `Variant => module::Type` declares the driver's module
/// (`src/drivers/module.rs`, implementing [`Driver`]) and generates [`DriverKind`], [`DRIVERS`] and the
/// [`Device`] enum with its dispatch (no allocator, no trait objects to own).
macro_rules! drivers {
    ($($(#[$doc:meta])* $variant:ident => $module:ident :: $ty:ident $(<$lt:lifetime>)?,)+) => {
        $(pub mod $module;)+

        /// Which driver, if any, takes a function.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum DriverKind {
            $($(#[$doc])* $variant,)+
        }

        /// Every driver, in probe order.
        pub const DRIVERS: &[DriverKind] = &[$(DriverKind::$variant,)+];

        impl DriverKind {
            /// The first driver in [`DRIVERS`] whose ids match `f` (without looking at its registers).
            pub fn probe(f: &Function) -> Option<DriverKind> {
                $(if <$module::$ty $(<$lt>)? as Driver>::matches(f) {
                    return Some(DriverKind::$variant);
                })+
                None
            }

            /// The driver that takes `f`: the first whose ids match, if it accepts the function.
            pub fn find(cfg: &PlatformConfig, f: &Function) -> Option<DriverKind> {
                Self::probe(f).filter(|k| match k {
                    $(DriverKind::$variant => <$module::$ty $(<$lt>)? as Driver>::accepts(cfg, f),)+
                })
            }

            /// Report name.
            pub fn name(self) -> &'static str {
                match self {
                    $(DriverKind::$variant => <$module::$ty $(<$lt>)? as Driver>::NAME,)+
                }
            }

            /// The vectors it asks for and the interrupt sources it drives with all of them
            /// ([`Driver::VECTORS`], [`Driver::SOURCES`]).
            pub fn wants(self) -> (u16, usize) {
                match self {
                    $(DriverKind::$variant => (<$module::$ty $(<$lt>)? as Driver>::VECTORS, <$module::$ty $(<$lt>)? as Driver>::SOURCES),)+
                }
            }

            /// Brings `irq`'s function up with this driver ([`start::start`]).
            pub fn start(self, irq: &mut IrqRequest<'_>) -> Result<Active, StartError> {
                match self {
                    $(DriverKind::$variant => start::start::<$module::$ty $(<$lt>)?>(irq, Device::$variant),)+
                }
            }
        }

        /// A driven device.
        // Variants differ in size (nvme keeps its queue pairs inline); there is one of these per driven
        // device, on the heap.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug)]
        pub enum Device {
            $($variant($module::$ty $(<$lt>)?),)+
        }

        impl Device {
            /// Its driver.
            pub fn kind(&self) -> DriverKind {
                match self {
                    $(Device::$variant(_) => DriverKind::$variant,)+
                }
            }

            /// The device as an interrupt source.
            pub fn source(&mut self) -> &mut dyn InterruptSource {
                match self {
                    $(Device::$variant(d) => d,)+
                }
            }

            /// The device as an interrupt source.
            pub fn source_ref(&self) -> &dyn InterruptSource {
                match self {
                    $(Device::$variant(d) => d,)+
                }
            }

            /// [`Driver::takeover_problem`].
            pub fn takeover_problem(&self) -> Option<String> {
                match self {
                    $(Device::$variant(d) => d.takeover_problem(),)+
                }
            }
        }
    };
}

drivers! {
    /// Intel 82574L (e1000e).
    E1000e => e1000e::E1000e,
    /// Intel 82540EM (e1000): INTx only.
    E1000 => e1000::E1000,
    /// NVMe controller.
    Nvme => nvme::Nvme,
    /// QEMU's edu device.
    Edu => edu::Edu,
    /// virtio-pci modern transport (virtio-rng, virtio-blk, virtio-net): modern-only devices, and
    /// transitional ones offering the modern capabilities (before the legacy driver: Linux prefers modern).
    VirtioModern => virtio_modern::VirtioModern,
    /// Legacy (transitional) virtio-net over its I/O BAR.
    VirtioNet => virtio_net::VirtioNet,
    /// AHCI SATA controller (class 0x010601): a port's D2H Register FIS after an HBA reset.
    Ahci => ahci::Ahci,
    /// PCI Express root or downstream port (hot-plug Command Completed interrupt). Taken only when the port
    /// is hot-plug capable: see [`pcie_port::is_hotplug_port`].
    PciePort => pcie_port::PciePort<'static>,
    /// xHCI USB host controller (class 0x0C0330: qemu-xhci, nec-usb-xhci): No-Op command on interrupter 0.
    Xhci => xhci::Xhci,
}

/// Quiets every function as [`crate::modes::quiesce::all`] does, after halting every xHCI first
/// ([`xhci::halt_before_quiet`]): a controller left running keeps posting events, so it is stopped before
/// its MSI-X is touched, as Linux's quirk_usb_handoff_xhci does at enumeration.
pub fn quiet_all(cfg: &PlatformConfig, functions: &[Function]) {
    for f in functions {
        xhci::halt_before_quiet(cfg, f);
    }
    crate::modes::quiesce::all(cfg, functions);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::pci::caps::{CapList, Capability};
    use crate::bus::pci::Bdf;

    fn function(vendor: u16, device: u16, class: u32, header_type: u8, caps: &[u16]) -> Function {
        let mut list = CapList::default();
        for (i, &id) in caps.iter().enumerate() {
            list.caps.push(Capability { id, offset: 0x40 + 0x10 * i as u16, extended: false });
        }
        Function {
            bdf: Bdf::new(0, 3, 0),
            vendor,
            device,
            class,
            revision: 0,
            header_type,
            bars: heapless::Vec::new(),
            caps: list,
            interrupt_pin: 1,
            interrupt_line: 11,
            bridge_buses: None,
            problems: std::vec::Vec::new(),
        }
    }

    #[test]
    fn the_table_probes_by_ids_and_class() {
        use crate::bus::pci::caps::id;
        let probe = |v, d, class, ht, caps: &[u16]| DriverKind::probe(&function(v, d, class, ht, caps));
        assert_eq!(probe(0x8086, 0x10d3, 0x020000, 0, &[]), Some(DriverKind::E1000e));
        assert_eq!(probe(0x1b36, 0x0010, 0x010802, 0, &[]), Some(DriverKind::Nvme));
        assert_eq!(probe(0x1b36, 0x0010, 0x010802, 1, &[]), None, "an NVMe class on a bridge header");
        assert_eq!(probe(0x1234, 0x11e8, 0x00ff00, 0, &[]), Some(DriverKind::Edu));
        assert_eq!(probe(0x1af4, 0x1000, 0x020000, 0, &[]), Some(DriverKind::VirtioNet));
        assert_eq!(probe(0x1af4, 0x1041, 0x020000, 0, &[id::VENDOR, id::MSIX]), Some(DriverKind::VirtioModern));
        assert_eq!(probe(0x1af4, 0x1005, 0x00ff00, 0, &[id::VENDOR]), Some(DriverKind::VirtioModern), "transitional: modern preferred");
        assert_eq!(probe(0x1af4, 0x1000, 0x020000, 0, &[id::MSIX]), Some(DriverKind::VirtioNet), "disable-modern=on: legacy");
        assert_eq!(probe(0x1af4, 0x1005, 0x00ff00, 0, &[]), None, "legacy-only virtio-rng has no driver");
        assert_eq!(probe(0x1b36, 0x000c, 0x060400, 1, &[id::PCIE]), Some(DriverKind::PciePort));
        assert_eq!(probe(0x1b36, 0x0001, 0x060400, 1, &[]), None, "a conventional PCI bridge");
        assert_eq!(probe(0x8086, 0x100e, 0x020000, 0, &[]), Some(DriverKind::E1000));
        assert_eq!(probe(0x1b36, 0x000d, 0x0c0330, 0, &[id::MSIX]), Some(DriverKind::Xhci), "qemu-xhci");
        assert_eq!(probe(0x1033, 0x0194, 0x0c0330, 0, &[]), Some(DriverKind::Xhci), "nec-usb-xhci");
        assert_eq!(probe(0x8086, 0x2934, 0x0c0300, 0, &[]), None, "UHCI is not xHCI");
        assert_eq!(probe(0x8086, 0x2922, 0x010601, 0, &[id::MSI]), Some(DriverKind::Ahci));
        assert_eq!(probe(0x8086, 0x2922, 0x010185, 0, &[]), None, "IDE mode is not AHCI");
    }

    /// Rules every row keeps, so a new driver is one row and its own file (no list here to edit).
    #[test]
    fn each_row_once_with_a_name_and_vectors() {
        for (i, k) in DRIVERS.iter().enumerate() {
            assert!(!k.name().is_empty());
            assert!(DRIVERS[..i].iter().all(|o| o.name() != k.name() && o != k), "{} twice", k.name());
            let (vectors, sources) = k.wants();
            assert!(vectors >= 1 && sources >= 1, "{} asks for nothing", k.name());
            assert!(sources <= usize::from(vectors), "{}: more sources than vectors", k.name());
        }
        assert_eq!(DriverKind::Nvme.wants(), (5, 5));
        assert_eq!(DriverKind::VirtioNet.wants(), (3, 2));
    }
}
