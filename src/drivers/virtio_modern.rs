//! virtio-pci modern transport (virtio 1.x section 4.1) for every virtio device msifw knows how to make
//! complete a request: virtio-rng, virtio-blk and virtio-net, modern-only (1af4:1041..107f, what Cloud
//! Hypervisor, Firecracker and crosvm have, QEMU's `disable-legacy=on`) or transitional (1af4:1000..103f)
//! with the modern capabilities present, preferred over the legacy interface as Linux's virtio_pci does.
//! A transitional device without them (`disable-modern=on`) is left to the legacy virtio-net driver.
//!
//! Sources (source `i` interrupts on MSI-X entry `i`): one per queue that can be made to complete a
//! request without anything outside the machine, in queue order:
//! - virtio-rng: the request queue, a 16-byte buffer the device fills;
//! - virtio-blk: every request queue (`num-queues=N` with VIRTIO_BLK_F_MQ), each reading sector 0;
//! - virtio-net: the transmit queue (a 60-byte ARP request; it completes with or without a network
//!   backend) and the control queue (VIRTIO_NET_CTRL_RX_PROMISC on, acknowledged by the device). The
//!   receive queue needs a peer that sends something, so it gets the vector after the configuration
//!   vector and is held silent.
//!
//! The configuration vector follows the request queues. QEMU raises a configuration interrupt only for
//! changes made on the host (a link change, a disk resize) and when the device fails
//! (DEVICE_NEEDS_RESET, section 2.1.2), none of which a well-behaved driver causes, so it is programmed,
//! read back and held silent by the delivery check. A vector register that reads back NO_VECTOR
//! (section 4.1.5.1.2: the device could not use that entry) leaves its queue without a source and is said
//! in the function's report; it is not an error. In INTx mode the first request queue is the one source,
//! its cause read from the ISR status register, which clears it and deasserts INTx (4.1.4.5).
//!
//! The capability walk, the vector plan and the request layouts are pure and tested on the host.

use super::virtio_net::{arp_request, desc, status, VringLayout, GATEWAY_IP, GUEST_IP, MAC, NO_VECTOR};
use super::{Driver, DriverError, InterruptSource, IrqRequest, StartError};
use crate::arch::dma::{DmaRegion, PAGE_SIZE};
use crate::arch::mmio::MmioWindow;
use crate::bus::pci::bar;
use crate::bus::pci::caps::id;
use crate::bus::pci::config::PlatformConfig;
use crate::bus::pci::enumerate::Function;
use crate::bus::pci::{Bdf, ConfigRegion};
use crate::modes::{DeviceIrq, IrqMode};
use crate::time;
use alloc::string::String;
use alloc::vec::Vec;

/// Virtio device IDs (virtio 1.x 5 "Device Types").
pub mod device_id {
    /// Network card.
    pub const NET: u16 = 1;
    /// Block device.
    pub const BLOCK: u16 = 2;
    /// Entropy source.
    pub const RNG: u16 = 4;
}

/// The virtio device ID of a virtio PCI function (virtio 1.x 4.1.2.1 "Device Requirements: PCI Device
/// Discovery"): 0x1040 + ID for a modern-only device; a transitional one (0x1000..0x103f) carries it in
/// its Subsystem Device ID. `None` for IDs outside both ranges.
pub const fn virtio_device_id(vendor: u16, device: u16, subsystem_device: u16) -> Option<u16> {
    match (vendor, device) {
        (0x1af4, 0x1041..=0x107f) => Some(device - 0x1040),
        (0x1af4, 0x1000..=0x103f) => Some(subsystem_device),
        _ => None,
    }
}

/// Subsystem Device ID in the type-0 header.
const SUBSYSTEM_ID: u16 = 0x2E;

/// `struct virtio_pci_cap` (virtio 1.x 4.1.4 "Virtio Structure PCI Capabilities").
pub mod cap {
    /// cfg_type: common configuration.
    pub const COMMON: u8 = 1;
    /// cfg_type: notifications.
    pub const NOTIFY: u8 = 2;
    /// cfg_type: ISR status.
    pub const ISR: u8 = 3;
    /// cfg_type: device-specific configuration.
    pub const DEVICE: u8 = 4;
    /// cfg_type: PCI configuration access (not used: the BARs are mapped).
    pub const PCI_CFG: u8 = 5;
    /// Length of `struct virtio_pci_cap`.
    pub const LEN: u8 = 16;
    /// Length of `struct virtio_pci_notify_cap` (adds notify_off_multiplier).
    pub const NOTIFY_LEN: u8 = 20;
    /// Offsets inside the capability.
    pub const CAP_LEN: u16 = 2;
    /// cfg_type.
    pub const CFG_TYPE: u16 = 3;
    /// bar.
    pub const BAR: u16 = 4;
    /// offset (le32).
    pub const OFFSET: u16 = 8;
    /// length (le32).
    pub const LENGTH: u16 = 12;
    /// notify_off_multiplier (le32).
    pub const NOTIFY_OFF_MULTIPLIER: u16 = 16;
}

/// Bytes of each structure the driver uses: the whole common configuration of virtio 1.0 (up to
/// queue_device's high half), one ISR byte, one 16-bit notification.
const COMMON_MIN: u32 = 0x38;
const ISR_MIN: u32 = 1;
const NOTIFY_MIN: u32 = 2;

/// Where one virtio structure lives: BAR index, offset and length inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// BAR index.
    pub bar: u8,
    /// Offset in the BAR.
    pub offset: u32,
    /// Length.
    pub length: u32,
}

/// The structures the driver uses, from the first capability of each type (4.1.4.1: "The driver SHOULD
/// use the first instance of each virtio structure type they can support").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioCaps {
    /// Common configuration.
    pub common: Region,
    /// Notification area and its multiplier.
    pub notify: Region,
    /// notify_off_multiplier.
    pub notify_multiplier: u32,
    /// ISR status.
    pub isr: Region,
    /// Device-specific configuration (absent for a device without one).
    pub device: Option<Region>,
    /// Vendor capabilities ignored as the spec asks (reserved cfg_type or BAR, 4.1.4.1), or later
    /// instances of a type: (capability offset, cfg_type).
    pub ignored: u8,
}

/// A virtio capability that cannot be used (reported on the function; nothing is driven).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirtioCapError {
    /// No capability of this cfg_type.
    Missing(u8),
    /// cap_len below the structure's size (4.1.4: 16, 20 for notify): (capability offset, cap_len).
    TooShort(u16, u8),
    /// The structure's BAR is not a memory BAR the function has: (cfg_type, BAR index).
    Bar(u8, u8),
    /// offset + length past the BAR, or too short for what the driver uses: (cfg_type, offset).
    Outside(u8, u32),
    /// notify_off_multiplier neither 0 nor an even power of two (4.1.4.4): the value.
    Multiplier(u32),
}

impl VirtioCapError {
    /// The message and value of the report line.
    pub fn describe(&self) -> (&'static str, u64) {
        match *self {
            Self::Missing(t) => ("virtio capability missing, cfg_type", t as u64),
            Self::TooShort(at, _) => ("virtio capability shorter than its structure, at", at as u64),
            Self::Bar(_, b) => ("virtio capability names a BAR that is not an assigned memory BAR", b as u64),
            Self::Outside(t, _) => ("virtio structure outside its BAR or too short, cfg_type", t as u64),
            Self::Multiplier(m) => ("virtio notify_off_multiplier not 0 or an even power of two", m as u64),
        }
    }
}

impl From<VirtioCapError> for DriverError {
    fn from(e: VirtioCapError) -> Self {
        let (what, v) = e.describe();
        DriverError::Unexpected(what, v)
    }
}

/// Walks the vendor-specific capabilities at `offsets` (in list order) with `read8`/`read32` of the
/// function's configuration space; `bar_size(i)` is the size of memory BAR `i`, `None` when it is not
/// an assigned memory BAR.
pub fn parse_caps(
    offsets: &[u16],
    read8: impl Fn(u16) -> u8,
    read32: impl Fn(u16) -> u32,
    bar_size: impl Fn(u8) -> Option<u64>,
) -> Result<VirtioCaps, VirtioCapError> {
    let (mut common, mut notify, mut isr, mut device) = (None, None, None, None);
    let mut ignored = 0u8;
    for &at in offsets {
        let cfg_type = read8(at + cap::CFG_TYPE);
        let bar = read8(at + cap::BAR);
        // 4.1.4.1: reserved cfg_type or BAR values are ignored, and so is every later instance of a type.
        let slot = match cfg_type {
            cap::COMMON => &mut common,
            cap::NOTIFY => &mut notify,
            cap::ISR => &mut isr,
            cap::DEVICE => &mut device,
            _ => {
                ignored = ignored.saturating_add(1);
                continue;
            }
        };
        if bar > 5 || slot.is_some() {
            ignored = ignored.saturating_add(1);
            continue;
        }
        let cap_len = read8(at + cap::CAP_LEN);
        let need = if cfg_type == cap::NOTIFY { cap::NOTIFY_LEN } else { cap::LEN };
        // 4.1.4.1: "The driver MUST accept a cap_len value which is larger than specified here."
        if cap_len < need || at as u32 + cap_len as u32 > 0x100 {
            return Err(VirtioCapError::TooShort(at, cap_len));
        }
        let offset = read32(at + cap::OFFSET);
        let length = read32(at + cap::LENGTH);
        let size = bar_size(bar).ok_or(VirtioCapError::Bar(cfg_type, bar))?;
        let min = match cfg_type {
            cap::COMMON => COMMON_MIN,
            cap::NOTIFY => NOTIFY_MIN,
            cap::ISR => ISR_MIN,
            _ => 0,
        };
        if length < min || offset as u64 + length as u64 > size {
            return Err(VirtioCapError::Outside(cfg_type, offset));
        }
        let multiplier = if cfg_type == cap::NOTIFY { read32(at + cap::NOTIFY_OFF_MULTIPLIER) } else { 0 };
        // 4.1.4.4: "notify_off_multiplier ... is either 0 or an even power of 2": the notify addresses
        // stay 2-byte aligned.
        if multiplier != 0 && (!multiplier.is_power_of_two() || multiplier == 1) {
            return Err(VirtioCapError::Multiplier(multiplier));
        }
        *slot = Some((Region { bar, offset, length }, multiplier));
    }
    let common = common.ok_or(VirtioCapError::Missing(cap::COMMON))?.0;
    let (notify, notify_multiplier) = notify.ok_or(VirtioCapError::Missing(cap::NOTIFY))?;
    let isr = isr.ok_or(VirtioCapError::Missing(cap::ISR))?.0;
    Ok(VirtioCaps { common, notify, notify_multiplier, isr, device: device.map(|d| d.0), ignored })
}

/// Offset of queue `notify_off`'s notification in the notify structure, if the 16-bit write fits in its
/// `length` (4.1.4.4: cap.offset + queue_notify_off * notify_off_multiplier).
pub fn notify_offset(notify_off: u16, multiplier: u32, length: u32) -> Option<u32> {
    let at = (notify_off as u64) * (multiplier as u64);
    (at + 2 <= length as u64).then_some(at as u32)
}

/// `struct virtio_pci_common_cfg` (virtio 1.x 4.1.4.3). Each field is accessed with its own width at its
/// own offset (QEMU answers only exact accesses; devices-2.md 1.2).
pub mod common {
    /// Device feature select (32-bit).
    pub const DEVICE_FEATURE_SELECT: u64 = 0x00;
    /// Device features, the 32 bits selected (32-bit, read-only).
    pub const DEVICE_FEATURE: u64 = 0x04;
    /// Driver feature select (32-bit).
    pub const DRIVER_FEATURE_SELECT: u64 = 0x08;
    /// Driver features (32-bit).
    pub const DRIVER_FEATURE: u64 = 0x0C;
    /// Configuration-change MSI-X vector (16-bit).
    pub const MSIX_CONFIG: u64 = 0x10;
    /// Number of queues (16-bit, read-only).
    pub const NUM_QUEUES: u64 = 0x12;
    /// Device status (8-bit).
    pub const DEVICE_STATUS: u64 = 0x14;
    /// Queue select (16-bit).
    pub const QUEUE_SELECT: u64 = 0x16;
    /// Queue size (16-bit).
    pub const QUEUE_SIZE: u64 = 0x18;
    /// Queue MSI-X vector (16-bit).
    pub const QUEUE_MSIX_VECTOR: u64 = 0x1A;
    /// Queue enable (16-bit).
    pub const QUEUE_ENABLE: u64 = 0x1C;
    /// Queue notify offset (16-bit, read-only).
    pub const QUEUE_NOTIFY_OFF: u64 = 0x1E;
    /// Descriptor table address (64-bit, as two 32-bit halves).
    pub const QUEUE_DESC: u64 = 0x20;
    /// Driver (available) ring address.
    pub const QUEUE_DRIVER: u64 = 0x28;
    /// Device (used) ring address.
    pub const QUEUE_DEVICE: u64 = 0x30;
}

/// Device status FEATURES_OK (2.1): the driver has acknowledged the features it understands.
const FEATURES_OK: u8 = 8;
/// ISR bit 0: a queue interrupt (4.1.4.5).
const ISR_QUEUE: u8 = 1;

/// Feature bits (virtio 1.x 6 "Reserved Feature Bits" and each device's section).
pub mod feature {
    /// VIRTIO_F_VERSION_1 (32): the modern interface. Required.
    pub const VERSION_1: u64 = 1 << 32;
    /// VIRTIO_BLK_F_MQ (12): more than one request queue.
    pub const BLK_MQ: u64 = 1 << 12;
    /// VIRTIO_NET_F_CTRL_VQ (17): the control queue.
    pub const NET_CTRL_VQ: u64 = 1 << 17;
    /// VIRTIO_NET_F_CTRL_RX (18): the control queue's RX-mode class.
    pub const NET_CTRL_RX: u64 = 1 << 18;
}

/// The features the driver accepts for a device type. No EVENT_IDX (so every used buffer interrupts
/// unless `VRING_AVAIL_F_NO_INTERRUPT` says otherwise), no indirect descriptors, no offloads.
pub const fn accepted_features(virtio_id: u16) -> u64 {
    feature::VERSION_1
        | match virtio_id {
            device_id::BLOCK => feature::BLK_MQ,
            device_id::NET => feature::NET_CTRL_VQ | feature::NET_CTRL_RX,
            _ => 0,
        }
}

/// What a queue is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// virtio-rng request queue: one device-writable buffer.
    Entropy,
    /// virtio-blk request queue: read sector 0.
    BlockRead,
    /// virtio-net transmit queue: one frame.
    NetTx,
    /// virtio-net control queue: RX_PROMISC on.
    NetCtrl,
    /// virtio-net receive queue: set up, never given buffers, held silent (no peer need exist).
    NetRxSilent,
}

impl Role {
    /// Whether the driver can make this queue complete a request.
    pub const fn drivable(self) -> bool {
        !matches!(self, Role::NetRxSilent)
    }
}

/// The queues used for a device type: (queue index, role), drivable queues first.
pub fn queues_for(virtio_id: u16, features: u64, blk_queues: u16) -> Vec<(u16, Role)> {
    match virtio_id {
        device_id::RNG => alloc::vec![(0, Role::Entropy)],
        device_id::BLOCK => {
            let n = if features & feature::BLK_MQ != 0 { blk_queues.max(1) } else { 1 };
            (0..n).map(|q| (q, Role::BlockRead)).collect()
        }
        device_id::NET => {
            // Without VIRTIO_NET_F_MQ: receiveq1 = 0, transmitq1 = 1, controlq = 2 (5.1.2).
            let mut v = alloc::vec![(1, Role::NetTx)];
            if features & feature::NET_CTRL_VQ != 0 {
                v.push((2, Role::NetCtrl));
            }
            v.push((0, Role::NetRxSilent));
            v
        }
        _ => Vec::new(),
    }
}

/// The MSI-X vector plan for `drivable` request queues, then `silent` queues, given `vectors` table
/// entries: entry `k` to the `k`-th drivable queue, then the configuration vector, then the silent
/// queues; whatever finds no entry gets NO_VECTOR. Returns (queue vectors in the order given, config).
pub fn vector_plan(drivable: usize, silent: usize, vectors: usize) -> (Vec<u16>, u16) {
    let at = |k: usize| if k < vectors { k as u16 } else { NO_VECTOR };
    let mut q: Vec<u16> = (0..drivable).map(at).collect();
    q.extend((0..silent).map(|s| at(drivable + 1 + s)));
    (q, at(drivable))
}

/// virtio-blk request header type VIRTIO_BLK_T_IN (5.2.6): read.
const BLK_T_IN: u32 = 0;
/// `struct virtio_net_hdr` with VERSION_1 (5.1.6): 12 bytes, num_buffers included.
pub const NET_HDR_LEN: usize = 12;
/// virtio-net control: class VIRTIO_NET_CTRL_RX, command VIRTIO_NET_CTRL_RX_PROMISC (5.1.6.5.1).
const NET_CTRL_RX: u8 = 0;
const NET_CTRL_RX_PROMISC: u8 = 0;

/// The buffer page of one queue.
mod buf {
    /// Request header / frame / control header.
    pub const OUT: usize = 0x000;
    /// virtio-net control data byte.
    pub const OUT2: usize = 0x100;
    /// Device-writable data (entropy, sector 0).
    pub const IN: usize = 0x200;
    /// Device-writable status / ack byte.
    pub const STATUS: usize = 0x400;
    /// Bytes of entropy asked for.
    pub const ENTROPY: u32 = 16;
    /// One sector.
    pub const SECTOR: u32 = 512;
}
const _: () = assert!(buf::IN + buf::SECTOR as usize <= buf::STATUS && buf::STATUS < PAGE_SIZE);

/// Queue entries used (a power of two, 2.7 "Split Virtqueues"; one request is in flight at a time).
const QUEUE_ENTRIES: u16 = 8;
/// Most queues driven; more (a virtio-blk with more request queues) are set up without a vector and
/// the report says how many were driven.
pub const MAX_QUEUES: usize = 16;
/// How long a reset (device_status 0) may take to read back as 0.
const RESET_US: u64 = 100_000;
/// How long a request may take to complete (QEMU completes them from its main loop).
const DONE_US: u64 = 1_000_000;

/// One split virtqueue in DMA memory (2.7), with the page its request's buffers are in.
#[derive(Debug)]
struct Queue {
    index: u16,
    role: Role,
    layout: VringLayout,
    ring: DmaRegion,
    buffers: DmaRegion,
    /// Offset of its notification in the notify structure.
    notify: u64,
    /// The vector it reads back (NO_VECTOR in INTx mode and where refused).
    vector: u16,
    avail_idx: u16,
    last_used: u16,
}

impl Queue {
    fn set_desc(&self, i: u16, offset: usize, len: u32, flags: u16) {
        let at = self.layout.desc(i);
        self.ring.write64(at, self.buffers.phys() + offset as u64);
        self.ring.write32(at + 8, len);
        self.ring.write16(at + 12, flags);
        self.ring.write16(at + 14, if flags & desc::NEXT != 0 { i + 1 } else { 0 });
    }

    /// Writes the request chain (descriptors from 0) and its constant buffers once.
    fn write_request(&self) {
        use desc::{NEXT, WRITE};
        match self.role {
            Role::Entropy => self.set_desc(0, buf::IN, buf::ENTROPY, WRITE),
            Role::BlockRead => {
                // 5.2.6: header {type, reserved, sector}, data, status; device-readable parts first.
                self.buffers.write32(buf::OUT, BLK_T_IN);
                self.buffers.write64(buf::OUT + 8, 0);
                self.set_desc(0, buf::OUT, 16, NEXT);
                self.set_desc(1, buf::IN, buf::SECTOR, WRITE | NEXT);
                self.set_desc(2, buf::STATUS, 1, WRITE);
            }
            Role::NetTx => {
                // The header (all zero: no offloads) and the frame in one buffer: VERSION_1 implies
                // VIRTIO_F_ANY_LAYOUT (5.1.6.6).
                for (i, b) in arp_request(MAC, GUEST_IP, GATEWAY_IP).iter().enumerate() {
                    self.buffers.write8(buf::OUT + NET_HDR_LEN + i, *b);
                }
                self.set_desc(0, buf::OUT, (NET_HDR_LEN + 60) as u32, 0);
            }
            Role::NetCtrl => {
                self.buffers.write8(buf::OUT, NET_CTRL_RX);
                self.buffers.write8(buf::OUT + 1, NET_CTRL_RX_PROMISC);
                self.buffers.write8(buf::OUT2, 1);
                self.set_desc(0, buf::OUT, 2, NEXT);
                self.set_desc(1, buf::OUT2, 1, NEXT);
                self.set_desc(2, buf::STATUS, 1, WRITE);
            }
            Role::NetRxSilent => {}
        }
    }

    /// Makes chain 0 available (2.7.13: the ring slot, a barrier, then idx).
    fn post(&mut self) {
        if self.role == Role::BlockRead || self.role == Role::NetCtrl {
            self.buffers.write8(buf::STATUS, 0xFF);
        }
        self.ring.write16(self.layout.avail_slot(self.avail_idx), 0);
        core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.ring.write16(self.layout.avail_idx(), self.avail_idx);
    }

    fn has_used(&self) -> bool {
        self.ring.read16(self.layout.used_idx()) != self.last_used
    }

    /// Consumes the used element of the request and checks what the device wrote.
    fn complete(&mut self) -> Result<(), DriverError> {
        if !time::wait_until(DONE_US, || self.has_used()) {
            return Err(DriverError::Timeout("virtio used ring after the request"));
        }
        core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
        let at = self.layout.used_elem(self.last_used);
        let (id, len) = (self.ring.read32(at), self.ring.read32(at + 4));
        self.last_used = self.last_used.wrapping_add(1);
        if id != 0 {
            return Err(DriverError::Unexpected("virtio used id", id as u64));
        }
        match self.role {
            Role::Entropy if len == 0 || len > buf::ENTROPY => Err(DriverError::Unexpected("virtio-rng used length", len as u64)),
            Role::BlockRead | Role::NetCtrl => {
                let st = self.buffers.read8(buf::STATUS);
                if st != 0 {
                    let what = if self.role == Role::BlockRead { "virtio-blk request status" } else { "virtio-net control ack" };
                    return Err(DriverError::Unexpected(what, st as u64));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The modern virtio driver state.
#[derive(Debug)]
pub struct VirtioModern {
    bdf: Bdf,
    virtio_id: u16,
    common: MmioWindow,
    notify: MmioWindow,
    isr: MmioWindow,
    queues: Vec<Queue>,
    /// Sources: indices into `queues`, source `i` on vector `i`.
    sources: Vec<usize>,
    intx: bool,
    /// Queues whose vector read back NO_VECTOR although an entry was offered: (queue, entry).
    refused: Vec<(u16, u16)>,
    /// The configuration vector as read back.
    config_vector: u16,
    /// The features negotiated.
    features: u64,
    /// The device-specific configuration: its window, its offset in the BAR, and its first bytes as
    /// read before MSI-X was enabled (net: the MAC; blk: the capacity), when they are not all zero.
    device_cfg: Option<(MmioWindow, u32, [u8; 8])>,
}

/// The device ID a function's driver works with, reading the Subsystem ID of a transitional one.
fn function_virtio_id(cfg: &PlatformConfig, f: &Function) -> Option<u16> {
    virtio_device_id(f.vendor, f.device, cfg.read16(f.bdf, SUBSYSTEM_ID))
}

fn map(f: &Function, r: Region) -> Result<MmioWindow, DriverError> {
    let b = f.bar(r.bar).ok_or(DriverError::Bar(r.bar))?;
    let w = bar::window(f.bdf, b).map_err(|_| DriverError::Bar(r.bar))?;
    w.sub(r.offset as u64, r.length as u64).ok_or(DriverError::Bar(r.bar))
}

impl VirtioModern {
    /// Reads the capabilities and maps the structures.
    fn caps(cfg: &PlatformConfig, f: &Function) -> Result<VirtioCaps, VirtioCapError> {
        let offsets: Vec<u16> = f.caps.caps.iter().filter(|c| !c.extended && c.id == id::VENDOR).map(|c| c.offset).collect();
        let bar_size = |i: u8| f.bar(i).filter(|b| b.kind != bar::BarKind::Io && b.assigned()).map(|b| b.size);
        parse_caps(&offsets, |o| cfg.read8(f.bdf, o), |o| cfg.read32(f.bdf, o), bar_size)
    }

    /// device_status = 0, then wait for it to read 0 (4.1.4.3.2: "the driver MUST wait for a read of
    /// device_status to return 0 before reinitializing the device").
    fn reset(common: &MmioWindow) -> Result<(), DriverError> {
        common.write8(common::DEVICE_STATUS, 0);
        if !time::wait_until(RESET_US, || common.read8(common::DEVICE_STATUS) == 0) {
            return Err(DriverError::Timeout("device_status 0 after reset"));
        }
        Ok(())
    }

    fn write64(common: &MmioWindow, at: u64, v: u64) {
        // 4.1.3.1: 64-bit fields as two 32-bit accesses, low half first.
        common.write32(at, v as u32);
        common.write32(at + 4, (v >> 32) as u32);
    }

    /// Steps 1-6 of 3.1.1 "Driver Requirements: Device Initialization": reset, ACKNOWLEDGE, DRIVER, the
    /// features (VERSION_1 required), FEATURES_OK read back. Returns the negotiated features.
    fn negotiate(common: &MmioWindow, virtio_id: u16) -> Result<u64, DriverError> {
        Self::reset(common)?;
        common.write8(common::DEVICE_STATUS, status::ACKNOWLEDGE);
        common.write8(common::DEVICE_STATUS, status::ACKNOWLEDGE | status::DRIVER);
        let mut offered = 0u64;
        for half in 0..2u32 {
            common.write32(common::DEVICE_FEATURE_SELECT, half);
            offered |= (common.read32(common::DEVICE_FEATURE) as u64) << (32 * half);
        }
        if offered & feature::VERSION_1 == 0 {
            return Err(DriverError::Unexpected("virtio device without VIRTIO_F_VERSION_1, features", offered));
        }
        let features = offered & accepted_features(virtio_id);
        for half in 0..2u32 {
            common.write32(common::DRIVER_FEATURE_SELECT, half);
            common.write32(common::DRIVER_FEATURE, (features >> (32 * half)) as u32);
        }
        // Steps 5-6: FEATURES_OK, then read it back; still clear means the subset is refused.
        let want = status::ACKNOWLEDGE | status::DRIVER | FEATURES_OK;
        common.write8(common::DEVICE_STATUS, want);
        let got = common.read8(common::DEVICE_STATUS);
        if got & FEATURES_OK == 0 {
            return Err(DriverError::Unexpected("device_status without FEATURES_OK after feature negotiation", got as u64));
        }
        Ok(features)
    }

    /// 4.1.5.1.3 "Virtqueue Configuration": select, size, ring addresses, vector (read back), enable.
    fn setup_queue(&mut self, index: u16, role: Role, vector: u16, caps: &VirtioCaps) -> Result<(), DriverError> {
        let c = &self.common;
        c.write16(common::QUEUE_SELECT, index);
        let max = c.read16(common::QUEUE_SIZE);
        if max == 0 {
            return Err(DriverError::Unexpected("virtio queue_size 0 (queue unavailable), queue", index as u64));
        }
        // 2.7: split queues are a power of two in size.
        if !max.is_power_of_two() {
            return Err(DriverError::Unexpected("virtio queue_size not a power of two", max as u64));
        }
        let layout = VringLayout::new(max.min(QUEUE_ENTRIES));
        let ring = DmaRegion::alloc(layout.pages()).ok_or(DriverError::NoDmaMemory)?;
        let buffers = DmaRegion::alloc(1).ok_or(DriverError::NoDmaMemory)?;
        let notify_off = c.read16(common::QUEUE_NOTIFY_OFF);
        let notify = notify_offset(notify_off, caps.notify_multiplier, caps.notify.length).ok_or(DriverError::Unexpected(
            "virtio queue notification outside the notify structure, queue_notify_off",
            notify_off as u64,
        ))?;
        let q = Queue { index, role, layout, ring, buffers, notify: notify as u64, vector: NO_VECTOR, avail_idx: 0, last_used: 0 };
        q.write_request();
        self.queues.push(q);
        self.program_queue(self.queues.len() - 1, vector)
    }

    /// Hands queue `k`'s (zeroed) ring to the device: size, the three addresses, the vector (read back),
    /// then queue_enable (4.1.5.1.3; 4.1.4.3.2: enable last, nothing may change about the queue after).
    fn program_queue(&mut self, k: usize, vector: u16) -> Result<(), DriverError> {
        let c = &self.common;
        let q = &mut self.queues[k];
        c.write16(common::QUEUE_SELECT, q.index);
        if c.read16(common::QUEUE_ENABLE) != 0 {
            return Err(DriverError::Unexpected("virtio queue enabled after reset, queue", q.index as u64));
        }
        let max = c.read16(common::QUEUE_SIZE);
        if max < q.layout.size {
            return Err(DriverError::Unexpected("virtio queue_size shrank after reset", max as u64));
        }
        for at in (q.layout.avail..q.layout.bytes).step_by(8) {
            q.ring.write64(at, 0);
        }
        (q.avail_idx, q.last_used) = (0, 0);
        c.write16(common::QUEUE_SIZE, q.layout.size);
        Self::write64(c, common::QUEUE_DESC, q.ring.phys());
        Self::write64(c, common::QUEUE_DRIVER, q.ring.phys() + q.layout.avail as u64);
        Self::write64(c, common::QUEUE_DEVICE, q.ring.phys() + q.layout.used as u64);
        q.vector = NO_VECTOR;
        if !self.intx {
            // 4.1.5.1.2: write the entry, read it back; NO_VECTOR back means the device could not use it.
            c.write16(common::QUEUE_MSIX_VECTOR, vector);
            q.vector = c.read16(common::QUEUE_MSIX_VECTOR);
            if q.vector != vector {
                if q.vector != NO_VECTOR {
                    return Err(DriverError::Unexpected("virtio queue_msix_vector read back another entry", q.vector as u64));
                }
                self.refused.push((q.index, vector));
            }
        }
        c.write16(common::QUEUE_ENABLE, 1);
        Ok(())
    }

    /// msix_config: write, read back (4.1.5.1.2); another entry than written is an error, NO_VECTOR a
    /// result.
    fn program_config_vector(&mut self, config: u16) -> Result<(), DriverError> {
        self.common.write16(common::MSIX_CONFIG, config);
        self.config_vector = self.common.read16(common::MSIX_CONFIG);
        if self.config_vector != config && self.config_vector != NO_VECTOR {
            return Err(DriverError::Unexpected("virtio msix_config read back another entry", self.config_vector as u64));
        }
        Ok(())
    }

    /// Sources: the drivable queues whose vector is entry k for the k-th of them, contiguous from 0 (a
    /// refused entry ends the run: the delivery check numbers sources by entry). INTx: the first.
    fn choose_sources(&mut self) {
        self.sources.clear();
        for (k, q) in self.queues.iter().enumerate().filter(|(_, q)| q.role.drivable()) {
            let expected = if self.intx { 0 } else { self.sources.len() as u16 };
            if (self.intx && self.sources.is_empty()) || (!self.intx && q.vector == expected) {
                self.sources.push(k);
            } else {
                break;
            }
        }
    }

    fn driver_ok(&self) -> Result<(), DriverError> {
        // 3.1.1 step 8, after the queues and vectors.
        let ok = status::ACKNOWLEDGE | status::DRIVER | FEATURES_OK | status::DRIVER_OK;
        self.common.write8(common::DEVICE_STATUS, ok);
        let got = self.common.read8(common::DEVICE_STATUS);
        if got != ok {
            return Err(DriverError::Unexpected("virtio device_status after DRIVER_OK", got as u64));
        }
        Ok(())
    }

    /// 4.1.5.2 "Available Buffer Notifications": the queue index, 16 bits, at its notify address.
    fn kick(&self, q: usize) {
        let q = &self.queues[q];
        self.notify.write16(q.notify, q.index);
    }

    /// Report text for the function: vectors refused, queues without one, queues beyond the cap.
    fn note(&self, vectors: usize, wanted: usize, skipped_queues: usize) -> Option<String> {
        let mut s = String::new();
        use core::fmt::Write;
        if !self.intx && vectors < wanted {
            let _ = write!(
                s,
                "{vectors} MSI-X vectors for {wanted} wanted (the queues and configuration changes; those without one get NO_VECTOR); "
            );
        }
        for (q, v) in &self.refused {
            let _ = write!(s, "queue {q}: entry {v} refused (reads back NO_VECTOR); ");
        }
        if !self.intx && self.config_vector == NO_VECTOR && vectors > self.sources.len() {
            let _ = write!(s, "configuration vector refused (reads back NO_VECTOR); ");
        }
        if skipped_queues > 0 {
            let _ = write!(s, "{skipped_queues} request queues beyond the {MAX_QUEUES} driven left without a vector; ");
        }
        let drivable = self.queues.iter().filter(|q| q.role.drivable()).count();
        if !self.intx && self.sources.len() < drivable {
            let _ = write!(s, "{} of {drivable} request queues driven", self.sources.len());
        }
        let s = s.trim_end_matches("; ");
        (!s.is_empty()).then(|| String::from(s))
    }
}

/// What [`VirtioModern::request_without_vector`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoVectorRequest {
    /// The queue, whose `queue_msix_vector` reads NO_VECTOR.
    pub queue: u16,
    /// ISR status read after the completion (QEMU sets bit 0 whatever the vector; 4.1.4.5).
    pub isr: u8,
}

impl VirtioModern {
    /// A request queue (MSI-X mode) left at NO_VECTOR: a queue the table had no entry for, or whose
    /// entry the device refused.
    pub fn queue_without_vector(&self) -> Option<u16> {
        (!self.intx).then(|| self.queues.iter().find(|q| q.role.drivable() && q.vector == NO_VECTOR).map(|q| q.index)).flatten()
    }

    /// Completes one request on [`queue_without_vector`](Self::queue_without_vector)'s queue, its
    /// vector read back first (still NO_VECTOR), and reads ISR status afterwards. `None`: no such queue.
    pub fn request_without_vector(&mut self) -> Option<Result<NoVectorRequest, DriverError>> {
        let index = self.queue_without_vector()?;
        let k = self.queues.iter().position(|q| q.index == index)?;
        Some((|| {
            self.common.write16(common::QUEUE_SELECT, index);
            let v = self.common.read16(common::QUEUE_MSIX_VECTOR);
            if v != NO_VECTOR {
                return Err(DriverError::Unexpected("queue_msix_vector no longer NO_VECTOR", v as u64));
            }
            self.queues[k].post();
            self.kick(k);
            self.queues[k].complete()?;
            Ok(NoVectorRequest { queue: index, isr: self.isr.read8(0) })
        })())
    }
}

impl VirtioModern {
    /// Where the device-specific configuration is now (its offset in its BAR) if its first bytes still
    /// read what they did with MSI-X disabled; `None` when they do not, or the device has nothing there
    /// to recognise. The modern layout comes from the capabilities and does not depend on MSI-X (the
    /// 0x14/0x18 move of virtio 1.x 4.1.4.8 is the legacy interface's), which the shutdown scenario shows.
    pub fn config_window(&self) -> Option<u16> {
        let (w, offset, snap) = self.device_cfg.as_ref()?;
        let now: [u8; 8] = core::array::from_fn(|i| w.read8(i as u64));
        (now == *snap).then(|| u16::try_from(*offset).unwrap_or(u16::MAX))
    }
}

impl VirtioModern {
    /// The MSI-X entry configuration changes are signalled on (NO_VECTOR: none, or INTx mode).
    pub fn config_vector(&self) -> u16 {
        if self.intx {
            NO_VECTOR
        } else {
            self.config_vector
        }
    }

    /// Provokes the device's error path: queue_enable = 0 on a live queue, which virtio 1.x 4.1.4.3.2
    /// forbids the driver; QEMU answers with DEVICE_NEEDS_RESET and, DRIVER_OK being set, the
    /// configuration change notification 2.1.2 requires (`virtio_error`; devices-2.md 1.7). Returns
    /// device_status afterwards. The device must then be reset ([`InterruptSource::reinitialize`]).
    pub fn provoke_needs_reset(&self) -> u8 {
        let q = &self.queues[0];
        self.common.write16(common::QUEUE_SELECT, q.index);
        self.common.write16(common::QUEUE_ENABLE, 0);
        self.common.read8(common::DEVICE_STATUS)
    }

    /// Reads ISR status, which clears it and deasserts INTx (4.1.4.5).
    pub fn read_isr(&self) -> u8 {
        self.isr.read8(0)
    }
}

impl InterruptSource for VirtioModern {
    fn sources(&self) -> usize {
        self.sources.len()
    }

    fn trigger(&mut self, i: usize) -> Result<(), DriverError> {
        let q = *self.sources.get(i).ok_or(DriverError::NoSuchSource(i))?;
        self.queues[q].post();
        self.kick(q);
        Ok(())
    }

    fn acknowledge(&mut self, i: usize) -> Result<(), DriverError> {
        let q = *self.sources.get(i).ok_or(DriverError::NoSuchSource(i))?;
        self.queues[q].complete()?;
        let q = &self.queues[q];
        if q.role == Role::BlockRead && q.last_used == 1 {
            let b = |k| q.buffers.read8(buf::IN + k);
            let head = u64::from_be_bytes([b(0), b(1), b(2), b(3), b(4), b(5), b(6), b(7)]);
            crate::info!("{} virtio-blk: queue {=u16} read sector 0, first bytes {=u64:#018x}", self.bdf, q.index, head);
        }
        if self.intx {
            // 4.1.5.5 "Driver Handling Interrupts", MSI-X disabled: read ISR status, which clears it and
            // deasserts INTx (4.1.4.5).
            let cause = self.isr.read8(0);
            if cause & ISR_QUEUE == 0 {
                return Err(DriverError::Unexpected("virtio ISR without the queue bit after an INTx", cause as u64));
            }
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<(), DriverError> {
        Self::reset(&self.common)
    }

    /// After a function reset (FLR, secondary bus reset; MSI-X restored by the caller): the device
    /// starts over from 3.1.1 step 1 with the same features, queues (rings zeroed) and vector plan.
    fn reinitialize(&mut self, vectors: usize) -> Result<(), DriverError> {
        let features = Self::negotiate(&self.common, self.virtio_id)?;
        if features != self.features {
            return Err(DriverError::Unexpected("virtio features negotiated after the reset differ", features));
        }
        let drivable = self.queues.iter().filter(|q| q.role.drivable()).count();
        let n = if self.intx { 0 } else { vectors };
        let (plan, config) = vector_plan(drivable, self.queues.len() - drivable, n);
        self.refused.clear();
        if !self.intx {
            self.program_config_vector(config)?;
        }
        for (k, &v) in plan.iter().enumerate() {
            self.program_queue(k, v)?;
        }
        self.driver_ok()?;
        self.choose_sources();
        Ok(())
    }
}

impl Drop for VirtioModern {
    fn drop(&mut self) {
        // Stop DMA into the rings before their pages return to the pool; a reset also un-uses the
        // vectors and lowers INTx (devices-2.md 1.7).
        let _ = Self::reset(&self.common);
        if self.intx {
            self.isr.read8(0);
        }
    }
}

impl Driver for VirtioModern {
    const NAME: &'static str = "virtio-modern";
    /// Request queues driven and the configuration vector.
    const VECTORS: u16 = MAX_QUEUES as u16 + 1;
    /// One per request queue.
    const SOURCES: usize = MAX_QUEUES;

    /// A virtio PCI function with at least one vendor-specific capability: modern-only IDs, or
    /// transitional ones offering the modern interface too (4.1.2; Linux's virtio_pci_probe tries the
    /// modern interface first). A transitional function with none (`disable-modern=on`) is the legacy
    /// driver's.
    fn matches(f: &Function) -> bool {
        f.vendor == 0x1af4
            && matches!(f.device, 0x1000..=0x103f | 0x1041..=0x107f)
            && f.header_type & 0x7f == 0
            && f.caps.caps.iter().any(|c| !c.extended && c.id == id::VENDOR)
    }

    /// Device types with a request this driver makes: rng, blk, net.
    fn accepts(cfg: &PlatformConfig, f: &Function) -> bool {
        matches!(function_virtio_id(cfg, f), Some(device_id::RNG | device_id::BLOCK | device_id::NET))
    }

    fn start(irq: &mut IrqRequest<'_>) -> Result<(Self, DeviceIrq<'static, PlatformConfig>), StartError> {
        let f = irq.function();
        let cfg = irq.cfg();
        let virtio_id = function_virtio_id(cfg, f).ok_or(StartError::Declined("not a virtio device"))?;
        let caps = Self::caps(cfg, f).map_err(DriverError::from)?;
        let common = map(f, caps.common)?;
        let notify = map(f, caps.notify)?;
        let isr = map(f, caps.isr)?;
        let features = Self::negotiate(&common, virtio_id)?;
        let num_queues = common.read16(common::NUM_QUEUES);
        let blk_queues = match (virtio_id, caps.device) {
            // virtio_blk_config.num_queues (5.2.4), present with VIRTIO_BLK_F_MQ.
            (device_id::BLOCK, Some(d)) if features & feature::BLK_MQ != 0 && d.length >= 36 => map(f, d)?.read16(34),
            _ => 1,
        };
        let device_cfg = match caps.device {
            Some(d) if d.length >= 8 && matches!(virtio_id, device_id::NET | device_id::BLOCK) => {
                let w = map(f, d)?;
                let snap: [u8; 8] = core::array::from_fn(|i| w.read8(i as u64));
                (snap != [0; 8]).then_some((w, d.offset, snap))
            }
            _ => None,
        };
        let mut wanted = queues_for(virtio_id, features, blk_queues);
        if let Some(&(q, _)) = wanted.iter().find(|(q, _)| *q >= num_queues) {
            let _ = VirtioModern::reset(&common);
            return Err(DriverError::Unexpected("virtio queue index not below num_queues", q as u64).into());
        }
        let drivable_all = wanted.iter().filter(|(_, r)| r.drivable()).count();
        let skipped = drivable_all.saturating_sub(MAX_QUEUES);
        if skipped > 0 {
            // Queues past the cap are not set up at all (the device only uses enabled queues).
            let mut seen = 0;
            wanted.retain(|(_, r)| {
                if r.drivable() {
                    seen += 1;
                    seen <= MAX_QUEUES
                } else {
                    true
                }
            });
        }
        let drivable = drivable_all - skipped;
        let silent = wanted.len() - drivable;
        // Linux's vp_find_vqs_msix: MSI-X first (one vector per queue and one for configuration
        // changes), the vectors written after it is enabled.
        let vectors = irq.enable((drivable + silent + 1) as u16)?;
        let intx = irq.mode() != IrqMode::Msix;
        let n = if intx { 0 } else { vectors.vectors().len() };
        let (plan, config) = vector_plan(drivable, silent, n);
        let mut dev = VirtioModern {
            bdf: f.bdf,
            virtio_id,
            common,
            notify,
            isr,
            queues: Vec::new(),
            sources: Vec::new(),
            intx,
            refused: Vec::new(),
            config_vector: NO_VECTOR,
            features,
            device_cfg,
        };
        let setup = (|| {
            if !intx {
                dev.program_config_vector(config)?;
            }
            for (&(q, role), &v) in wanted.iter().zip(&plan) {
                dev.setup_queue(q, role, v, &caps)?;
            }
            dev.driver_ok()
        })();
        if let Err(e) = setup {
            drop(dev); // reset before the interrupts are shut down
            return Err(e.into());
        }
        dev.choose_sources();
        irq.fewer = dev.note(n, drivable + silent + 1, skipped);
        crate::debug!(
            "{} virtio-modern: device {=u16}, features {=u64:#x}, {=usize} queues set up, {=usize} sources, config vector {=u16:#x}",
            dev.bdf,
            dev.virtio_id,
            features,
            dev.queues.len(),
            dev.sources.len(),
            dev.config_vector
        );
        Ok((dev, vectors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration space with vendor capabilities written as QEMU 7.2 lays them out on pcie.0.
    struct Space([u8; 256]);

    impl Space {
        fn qemu() -> (Space, Vec<u16>) {
            let mut s = Space([0; 256]);
            // (at, cfg_type, bar, offset, length, multiplier)
            let caps = [
                (0x40u16, 1u8, 4u8, 0x0000u32, 0x1000u32, 0u32),
                (0x50, 3, 4, 0x1000, 0x1000, 0),
                (0x60, 4, 4, 0x2000, 0x1000, 0),
                (0x70, 2, 4, 0x3000, 0x1000, 4),
                (0x84, 5, 0, 0, 0, 0),
            ];
            for &(at, t, bar, off, len, mult) in &caps {
                s.cap(at, t, bar, off, len, if t == 2 { 20 } else { 16 }, mult);
            }
            (s, caps.iter().map(|c| c.0).collect())
        }

        #[allow(clippy::too_many_arguments)]
        fn cap(&mut self, at: u16, cfg_type: u8, bar: u8, offset: u32, length: u32, cap_len: u8, mult: u32) {
            let a = at as usize;
            self.0[a] = 0x09;
            self.0[a + 2] = cap_len;
            self.0[a + 3] = cfg_type;
            self.0[a + 4] = bar;
            self.0[a + 8..a + 12].copy_from_slice(&offset.to_le_bytes());
            self.0[a + 12..a + 16].copy_from_slice(&length.to_le_bytes());
            if cfg_type == 2 {
                self.0[a + 16..a + 20].copy_from_slice(&mult.to_le_bytes());
            }
        }

        fn parse(&self, offsets: &[u16]) -> Result<VirtioCaps, VirtioCapError> {
            parse_caps(
                offsets,
                |o| self.0[o as usize],
                |o| u32::from_le_bytes(self.0[o as usize..o as usize + 4].try_into().unwrap()),
                |b| (b == 4).then_some(0x4000),
            )
        }
    }

    #[test]
    fn qemus_layout_parses_to_its_four_structures() {
        let (s, offs) = Space::qemu();
        let c = s.parse(&offs).unwrap();
        assert_eq!(c.common, Region { bar: 4, offset: 0, length: 0x1000 });
        assert_eq!(c.isr, Region { bar: 4, offset: 0x1000, length: 0x1000 });
        assert_eq!(c.device, Some(Region { bar: 4, offset: 0x2000, length: 0x1000 }));
        assert_eq!(c.notify, Region { bar: 4, offset: 0x3000, length: 0x1000 });
        assert_eq!(c.notify_multiplier, 4);
        assert_eq!(c.ignored, 1, "the PCI-configuration-access capability is not used");
        assert_eq!(notify_offset(2, 4, 0x1000), Some(8));
    }

    #[test]
    fn bad_capabilities_are_typed_errors() {
        let (mut s, offs) = Space::qemu();
        assert_eq!(s.parse(&offs[1..]), Err(VirtioCapError::Missing(cap::COMMON)));
        s.cap(0x40, 1, 4, 0x3800, 0x1000, 16, 0);
        assert_eq!(s.parse(&offs), Err(VirtioCapError::Outside(1, 0x3800)), "past the 16 KiB BAR");
        s.cap(0x40, 1, 4, 0, 0x20, 16, 0);
        assert_eq!(s.parse(&offs), Err(VirtioCapError::Outside(1, 0)), "shorter than the common configuration");
        s.cap(0x40, 1, 2, 0, 0x1000, 16, 0);
        assert_eq!(s.parse(&offs), Err(VirtioCapError::Bar(1, 2)), "a BAR the function does not have");
        s.cap(0x40, 1, 4, 0, 0x1000, 12, 0);
        assert_eq!(s.parse(&offs), Err(VirtioCapError::TooShort(0x40, 12)));
        s.cap(0x40, 1, 4, 0, 0x1000, 16, 0);
        s.cap(0x70, 2, 4, 0x3000, 0x1000, 16, 4);
        assert_eq!(s.parse(&offs), Err(VirtioCapError::TooShort(0x70, 16)), "notify needs 20 bytes");
        s.cap(0x70, 2, 4, 0x3000, 0x1000, 20, 3);
        assert_eq!(s.parse(&offs), Err(VirtioCapError::Multiplier(3)));
        s.cap(0x70, 2, 4, 0x3000, 0x1000, 20, 0);
        assert_eq!(s.parse(&offs).unwrap().notify_multiplier, 0, "0: every queue notifies at the same address");
        assert_eq!(notify_offset(7, 0, 2), Some(0));
        assert_eq!(notify_offset(1, 4, 4), None, "a notification past the structure");
        for e in [VirtioCapError::Missing(1), VirtioCapError::Multiplier(3), VirtioCapError::TooShort(0x40, 1)] {
            assert!(!e.describe().0.is_empty());
        }
    }

    #[test]
    fn reserved_bars_types_and_later_instances_are_ignored() {
        let (mut s, mut offs) = Space::qemu();
        // A second common capability pointing outside the BAR comes after the first: not read.
        s.cap(0x90, 1, 4, 0x9000, 0x1000, 16, 0);
        // Reserved BAR 6 and reserved cfg_type 9.
        s.cap(0xa0, 3, 6, 0, 0, 16, 0);
        s.cap(0xb0, 9, 4, 0, 0, 16, 0);
        offs.extend([0x90, 0xa0, 0xb0]);
        let c = s.parse(&offs).unwrap();
        assert_eq!(c.common.offset, 0);
        assert_eq!(c.ignored, 4);
        // A first instance with a reserved BAR is skipped, the next one used.
        let mut s2 = Space::qemu().0;
        s2.cap(0x90, 3, 7, 0, 0, 16, 0);
        let c = s2.parse(&[0x40, 0x90, 0x50, 0x60, 0x70]).unwrap();
        assert_eq!(c.isr.offset, 0x1000);
        // No device configuration: allowed.
        assert_eq!(Space::qemu().0.parse(&[0x40, 0x50, 0x70]).unwrap().device, None);
    }

    #[test]
    fn device_ids_modern_and_transitional() {
        assert_eq!(virtio_device_id(0x1af4, 0x1044, 0x1100), Some(device_id::RNG));
        assert_eq!(virtio_device_id(0x1af4, 0x1042, 0x1100), Some(device_id::BLOCK));
        assert_eq!(virtio_device_id(0x1af4, 0x1041, 0x1100), Some(device_id::NET));
        assert_eq!(virtio_device_id(0x1af4, 0x1005, 4), Some(device_id::RNG), "transitional: subsystem ID");
        assert_eq!(virtio_device_id(0x1af4, 0x1000, 1), Some(device_id::NET));
        assert_eq!(virtio_device_id(0x1af4, 0x1040, 0), None, "0x1040 is no device");
        assert_eq!(virtio_device_id(0x1af4, 0x1080, 0), None);
        assert_eq!(virtio_device_id(0x8086, 0x1041, 0), None);
    }

    #[test]
    fn vectors_go_to_request_queues_then_config_then_silent_queues() {
        // virtio-net default (4 entries): TX 0, ctrl 1, config 2, RX 3.
        assert_eq!(vector_plan(2, 1, 4), (alloc::vec![0, 1, 3], 2));
        // One entry: the first request queue only.
        assert_eq!(vector_plan(2, 1, 1), (alloc::vec![0, NO_VECTOR, NO_VECTOR], NO_VECTOR));
        // INTx (no entries): nothing.
        assert_eq!(vector_plan(1, 0, 0), (alloc::vec![NO_VECTOR], NO_VECTOR));
        // virtio-blk with 4 queues and 5 entries.
        assert_eq!(vector_plan(4, 0, 5), (alloc::vec![0, 1, 2, 3], 4));
        assert_eq!(vector_plan(4, 0, 3).1, NO_VECTOR);
    }

    #[test]
    fn queues_and_features_per_device() {
        let net = queues_for(device_id::NET, accepted_features(device_id::NET), 1);
        assert_eq!(net, alloc::vec![(1, Role::NetTx), (2, Role::NetCtrl), (0, Role::NetRxSilent)]);
        assert_eq!(queues_for(device_id::NET, feature::VERSION_1, 1), alloc::vec![(1, Role::NetTx), (0, Role::NetRxSilent)]);
        assert_eq!(queues_for(device_id::BLOCK, feature::BLK_MQ, 3).len(), 3);
        assert_eq!(queues_for(device_id::BLOCK, 0, 3).len(), 1, "without MQ one request queue");
        assert_eq!(queues_for(device_id::RNG, 0, 0), alloc::vec![(0, Role::Entropy)]);
        for id in [1, 2, 4] {
            let f = accepted_features(id);
            assert_ne!(f & feature::VERSION_1, 0);
            assert_eq!(f & (1 << 29), 0, "no EVENT_IDX: suppression stays in the ring flags");
            assert_eq!(f & (1 << 28), 0, "no indirect descriptors");
        }
    }
}
