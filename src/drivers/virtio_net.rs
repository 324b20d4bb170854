//! Legacy virtio-net (virtio 0.9.5; virtio 1.x "Legacy Interface" sections) over the I/O BAR0 of
//! `virtio-net-pci,disable-modern=on` (1af4:1000; qemu-7.2-facts.md section 4): only what it takes to
//! make the device interrupt on demand.
//!
//! Sources (source `i` interrupts on vector `i`, MSI-X entry `i`):
//! - **0, TX**: one 60-byte ARP request (who has 10.0.2.2, from the locally administered MAC
//!   02:6d:73:69:66:77, "msifw") on the transmit queue. The device marks the buffer used and interrupts
//!   whether or not anything is attached to its network backend.
//! - **1, RX** (MSI-X mode with two or more vectors, and only when a peer answers): an RX buffer is
//!   posted, then the same ARP request is sent with the TX queue's interrupts suppressed
//!   (`VRING_AVAIL_F_NO_INTERRUPT`), so only the reply raises the RX interrupt. That needs a network
//!   backend that answers ARP for 10.0.2.2, such as QEMU's user-mode network (`-netdev user,id=n0` with
//!   `netdev=n0` on the device; slirp runs inside the QEMU process and nothing leaves the machine).
//!   [`VirtioNet::use_msix`] asks once, with every interrupt suppressed; when no reply comes the device
//!   drives TX only and the RX vector must stay silent (the delivery check holds it to zero), and the
//!   defmt log says "attach -netdev user,... for the RX check".
//!
//! The configuration-change interrupt (MSI-X entry 2) can only be raised by the host (a link change),
//! so it is programmed and read back but is not a source. In INTx mode there is one line and so one
//! source, TX; the cause is read from ISR, which clears it and deasserts INTx.
//!
//! Offsets and layouts below are pure and tested on the host; the register sequences cite the virtio
//! 1.x sections (their "Legacy Interface" notes describe exactly the 0.9.5 interface used here).

use super::{Driver, DriverError, InterruptSource, IrqRequest, StartError};
use crate::bus::pci::config::{update_command, PlatformConfig};
use crate::bus::pci::regs;
use crate::modes::{DeviceIrq, IrqMode};
use crate::arch::dma::{DmaRegion, PAGE_SIZE};
use crate::arch::pio::IoWindow;
use crate::bus::pci::bar;
use crate::bus::pci::enumerate::Function;
use crate::bus::pci::Bdf;
use crate::time;

/// The legacy header in BAR0 (virtio 1.x 4.1.4.8 "Legacy Interfaces: A Note on PCI Device Layout";
/// `include/standard-headers/linux/virtio_pci.h`).
pub mod reg {
    /// Device features, bits 0-31 (32-bit, read-only).
    pub const HOST_FEATURES: u16 = 0x00;
    /// Features the driver accepted (32-bit).
    pub const GUEST_FEATURES: u16 = 0x04;
    /// Physical page number of the selected queue (32-bit): address >> 12; 0 resets the device.
    pub const QUEUE_PFN: u16 = 0x08;
    /// Size of the selected queue (16-bit, read-only in the legacy interface).
    pub const QUEUE_NUM: u16 = 0x0C;
    /// Queue selector (16-bit).
    pub const QUEUE_SEL: u16 = 0x0E;
    /// Queue notify: write the queue index (16-bit).
    pub const QUEUE_NOTIFY: u16 = 0x10;
    /// Device status (8-bit); 0 resets the device.
    pub const STATUS: u16 = 0x12;
    /// ISR status (8-bit): reading returns and clears it, and deasserts INTx.
    pub const ISR: u16 = 0x13;
    /// MSI-X vector of configuration changes (16-bit); present only while MSI-X is enabled.
    pub const MSI_CONFIG_VECTOR: u16 = 0x14;
    /// MSI-X vector of the selected queue (16-bit); present only while MSI-X is enabled.
    pub const MSI_QUEUE_VECTOR: u16 = 0x16;
}

/// Where the device-specific configuration (the MAC, for virtio-net) starts: the legacy header grows by
/// the two vector registers while MSI-X is *enabled* (not merely present), and QEMU re-evaluates it on
/// every access (`VIRTIO_PCI_CONFIG_OFF`).
pub const fn device_config_offset(msix_enabled: bool) -> u16 {
    if msix_enabled {
        0x18
    } else {
        0x14
    }
}

/// Device status bits (virtio 1.x 2.1 "Device Status Field").
pub mod status {
    /// The guest found the device.
    pub const ACKNOWLEDGE: u8 = 1;
    /// The guest knows how to drive it.
    pub const DRIVER: u8 = 2;
    /// The driver is set up and ready.
    pub const DRIVER_OK: u8 = 4;
    /// The device met an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u8 = 0x40;
    /// The guest gave up on the device.
    pub const FAILED: u8 = 0x80;
}

/// ISR status bits (virtio 1.x 4.1.4.5 "ISR status capability").
pub mod isr {
    /// A virtqueue interrupt.
    pub const QUEUE: u8 = 1;
    /// A configuration-change interrupt.
    pub const CONFIG: u8 = 2;
}

/// A vector register's "no vector" value, and what it reads when the device refused a vector
/// (virtio 1.x 4.1.5.1.2 "MSI-X Vector Configuration").
pub const NO_VECTOR: u16 = 0xFFFF;
/// QUEUE_PFN is in these units (`VIRTIO_PCI_QUEUE_ADDR_SHIFT`).
pub const QUEUE_PFN_SHIFT: u32 = 12;
/// Legacy used-ring alignment (`VIRTIO_PCI_VRING_ALIGN`).
pub const VRING_ALIGN: usize = 4096;
/// virtio-net receive queue 0.
pub const RX_QUEUE: u16 = 0;
/// virtio-net transmit queue 0.
pub const TX_QUEUE: u16 = 1;
/// Largest queue accepted (QEMU's `VIRTQUEUE_MAX_SIZE`; its virtio-net allows up to this).
pub const MAX_QUEUE_SIZE: u16 = 1024;
/// `VIRTIO_F_NOTIFY_ON_EMPTY` (24): interrupt when a queue runs empty even if suppressed. Never
/// accepted: it would make the suppressed TX completion of the RX source interrupt after all.
pub const F_NOTIFY_ON_EMPTY: u32 = 1 << 24;
/// Feature bits accepted: none. No MRG_RXBUF (so the header is 10 bytes), no EVENT_IDX (so the flags in
/// the rings are what suppresses interrupts), no offloads, no control queue.
pub const ACCEPTED_FEATURES: u32 = 0;

/// Descriptor flags (virtio 1.x 2.4.5 "The Virtqueue Descriptor Table").
pub mod desc {
    /// The buffer continues in the `next` descriptor.
    pub const NEXT: u16 = 1;
    /// Device-writable (otherwise device-readable).
    pub const WRITE: u16 = 2;
    /// Size of one descriptor: addr (u64), len (u32), flags (u16), next (u16).
    pub const SIZE: usize = 16;
}

/// Available-ring flag: "do not interrupt me when you consume a buffer" (virtio 1.x 2.4.7 "Virtqueue
/// Interrupt Suppression"); without EVENT_IDX the device honours it (QEMU `virtio_should_notify`).
pub const VRING_AVAIL_F_NO_INTERRUPT: u16 = 1;

const fn align_up(x: usize, align: usize) -> usize {
    x.div_ceil(align) * align
}

/// Where the parts of a legacy split virtqueue of `size` entries sit in its memory (virtio 1.x 2.4.2
/// "Legacy Interfaces: A Note on Virtqueue Layout"): the descriptor table at 0, the available ring right
/// after it (flags, idx, ring[size], used_event), the used ring (flags, idx, ring[size] of {id, len},
/// avail_event) at the next 4096-byte boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VringLayout {
    /// Entries.
    pub size: u16,
    /// Offset of the available ring.
    pub avail: usize,
    /// Offset of the used ring.
    pub used: usize,
    /// Bytes the queue occupies, rounded up to whole alignment units (the spec's `virtq_size`).
    pub bytes: usize,
}

impl VringLayout {
    /// The layout for `size` entries.
    pub const fn new(size: u16) -> VringLayout {
        let n = size as usize;
        let avail = desc::SIZE * n;
        let used = align_up(avail + 2 * (3 + n), VRING_ALIGN);
        let bytes = used + align_up(2 * 3 + 8 * n, VRING_ALIGN);
        VringLayout { size, avail, used, bytes }
    }

    /// Whole pages the queue needs.
    pub const fn pages(&self) -> usize {
        self.bytes.div_ceil(PAGE_SIZE)
    }

    /// Offset of descriptor `i`.
    pub const fn desc(&self, i: u16) -> usize {
        desc::SIZE * i as usize
    }

    /// Offset of the available ring's `idx`.
    pub const fn avail_idx(&self) -> usize {
        self.avail + 2
    }

    /// Offset of available-ring slot `slot` (taken modulo the size).
    pub const fn avail_slot(&self, slot: u16) -> usize {
        self.avail + 4 + 2 * (slot % self.size) as usize
    }

    /// Offset of the used ring's `idx`.
    pub const fn used_idx(&self) -> usize {
        self.used + 2
    }

    /// Offset of used-ring element `slot` (taken modulo the size): id (u32), len (u32).
    pub const fn used_elem(&self, slot: u16) -> usize {
        self.used + 4 + 8 * (slot % self.size) as usize
    }
}

/// `struct virtio_net_hdr` without MRG_RXBUF: flags, gso_type, hdr_len, gso_size, csum_start,
/// csum_offset (virtio 1.x 5.1.6 "Legacy Interface: Device Operation"). All zero for a plain frame.
pub const NET_HDR_LEN: usize = 10;
/// The frames' source MAC: locally administered (bit 1 of the first octet), unicast: 02:"msifw".
pub const MAC: [u8; 6] = [0x02, b'm', b's', b'i', b'f', b'w'];
/// The address claimed in the ARP request (the guest address QEMU's user network hands out).
pub const GUEST_IP: [u8; 4] = [10, 0, 2, 15];
/// The address asked for: QEMU user network's gateway, which its slirp answers ARP for.
pub const GATEWAY_IP: [u8; 4] = [10, 0, 2, 2];
/// Shortest Ethernet frame without FCS: shorter frames are padded.
pub const ETH_MIN_FRAME: usize = 60;
const ETHERTYPE_ARP: u16 = 0x0806;
const ARP_REQUEST: u16 = 1;
const ARP_REPLY: u16 = 2;

const fn put16(f: &mut [u8; ETH_MIN_FRAME], at: usize, v: u16) {
    f[at] = (v >> 8) as u8;
    f[at + 1] = v as u8;
}

/// A broadcast ARP request (RFC 826) "who has `tpa`, tell `spa` at `sha`", padded to the Ethernet
/// minimum.
pub const fn arp_request(sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> [u8; ETH_MIN_FRAME] {
    let mut f = [0u8; ETH_MIN_FRAME];
    let mut i = 0;
    while i < 6 {
        f[i] = 0xFF; // destination: broadcast
        f[6 + i] = sha[i]; // source
        f[22 + i] = sha[i]; // sender hardware address
        // target hardware address (32..38) stays zero: unknown
        i += 1;
    }
    put16(&mut f, 12, ETHERTYPE_ARP);
    put16(&mut f, 14, 1); // hardware type: Ethernet
    put16(&mut f, 16, 0x0800); // protocol type: IPv4
    f[18] = 6; // hardware address length
    f[19] = 4; // protocol address length
    put16(&mut f, 20, ARP_REQUEST);
    let mut i = 0;
    while i < 4 {
        f[28 + i] = spa[i];
        f[38 + i] = tpa[i];
        i += 1;
    }
    f
}

/// Whether `frame` is an ARP reply from `spa` addressed to `tha` (what slirp sends back).
pub fn is_arp_reply(frame: &[u8], spa: [u8; 4], tha: [u8; 6]) -> bool {
    let be16 = |at: usize| u16::from_be_bytes([frame[at], frame[at + 1]]);
    frame.len() >= 42
        && be16(12) == ETHERTYPE_ARP
        && be16(14) == 1
        && be16(16) == 0x0800
        && frame[18] == 6
        && frame[19] == 4
        && be16(20) == ARP_REPLY
        && frame[28..32] == spa
        && frame[32..38] == tha
}

/// The buffer page: the TX header and frame, and the RX header and data area.
mod buf {
    pub const TX_HDR: usize = 0x000;
    pub const TX_FRAME: usize = 0x040;
    pub const RX_HDR: usize = 0x800;
    pub const RX_DATA: usize = 0x840;
    pub const RX_DATA_LEN: usize = 0x1000 - RX_DATA;
}
// The parts do not overlap, and the RX data area holds a full Ethernet frame (1514 bytes without FCS).
const _: () = assert!(buf::TX_FRAME >= buf::TX_HDR + NET_HDR_LEN);
const _: () = assert!(buf::TX_FRAME + ETH_MIN_FRAME <= buf::RX_HDR);
const _: () = assert!(buf::RX_DATA >= buf::RX_HDR + NET_HDR_LEN);
const _: () = assert!(buf::RX_DATA_LEN >= 1514 && buf::RX_DATA + buf::RX_DATA_LEN == PAGE_SIZE);

/// How long a used entry may take to appear once its interrupt arrived (it is written before the
/// interrupt is sent, so this is only slack).
const USED_AFTER_IRQ_US: u64 = 100_000;
/// How long a transmit may take to complete (QEMU runs the TX queue in a bottom half of its main loop).
const TX_DONE_US: u64 = 1_000_000;
/// How long the peer is given to answer the ARP request of the RX probe.
const PEER_PROBE_US: u64 = 500_000;
/// How long a reset (STATUS = 0) may take to read back as 0.
const RESET_US: u64 = 100_000;

/// One legacy virtqueue in DMA memory.
#[derive(Debug)]
struct Virtqueue {
    index: u16,
    layout: VringLayout,
    ring: DmaRegion,
    /// The driver's next available index.
    avail_idx: u16,
    /// The used index up to which entries have been consumed.
    last_used: u16,
}

impl Virtqueue {
    fn set_desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = self.layout.desc(i);
        self.ring.write64(at, addr);
        self.ring.write32(at + 8, len);
        self.ring.write16(at + 12, flags);
        self.ring.write16(at + 14, next);
    }

    fn set_avail_flags(&self, flags: u16) {
        self.ring.write16(self.layout.avail, flags);
    }

    /// Makes the chain starting at descriptor `head` available (virtio 1.x 3.2.1.2 "Updating The
    /// Available Ring", 3.2.1.3 "Updating idx"): the ring slot first, a barrier, then `idx`, so the device
    /// never sees an index covering an unwritten slot.
    fn post(&mut self, head: u16) {
        self.ring.write16(self.layout.avail_slot(self.avail_idx), head);
        core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.ring.write16(self.layout.avail_idx(), self.avail_idx);
    }

    /// Buffers made available and not yet consumed from the used ring.
    fn outstanding(&self) -> u16 {
        self.avail_idx.wrapping_sub(self.last_used)
    }

    fn has_used(&self) -> bool {
        self.ring.read16(self.layout.used_idx()) != self.last_used
    }

    /// Consumes the next used element (virtio 1.x 2.4.8 "The Virtqueue Used Ring"): (id, len).
    fn pop_used(&mut self) -> Option<(u32, u32)> {
        if !self.has_used() {
            return None;
        }
        core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
        let at = self.layout.used_elem(self.last_used);
        let elem = (self.ring.read32(at), self.ring.read32(at + 4));
        self.last_used = self.last_used.wrapping_add(1);
        Some(elem)
    }
}

/// The interrupt mode the driver was told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Queues set up, DRIVER_OK not yet written.
    Setup,
    /// MSI-X enabled, vectors assigned.
    Msix,
    /// INTx, cause in ISR.
    Intx,
}

/// The legacy virtio-net driver state.
#[derive(Debug)]
pub struct VirtioNet {
    bdf: Bdf,
    io: IoWindow,
    rx: Virtqueue,
    tx: Virtqueue,
    buffers: DmaRegion,
    mode: Mode,
    sources: usize,
    /// The device MAC as read with MSI-X off (device config at 0x14).
    device_mac: [u8; 6],
}

impl VirtioNet {
    /// Where the device-specific configuration (the MAC) sits now: 0x18 while MSI-X is enabled, 0x14
    /// otherwise (virtio 1.x 4.1.4.8); `None` if the MAC is found at neither.
    pub fn config_window(&self) -> Option<u16> {
        [device_config_offset(true), device_config_offset(false)].into_iter().find(|&at| {
            (0..6).all(|i| self.io.read8(at + i as u16) == self.device_mac[i])
        })
    }

    /// Takes BAR0 and brings the device to "queues set up, not live": reset, ACKNOWLEDGE, DRIVER,
    /// features, RX and TX queues (virtio 1.x 3.1.2 "Legacy Interface: Device Initialization"; virtio
    /// 0.9.5 "Device Initialization Sequence"). DRIVER_OK waits for [`use_msix`](Self::use_msix) or
    /// [`use_intx`](Self::use_intx): vectors must be assigned before the device is live.
    ///
    /// The caller enables I/O decoding and Bus Master first (QEMU's virtio-pci stops the device on any
    /// Command write that leaves Bus Master clear).
    pub fn new(function: &Function) -> Result<VirtioNet, DriverError> {
        let bar0 = function.bar(0).ok_or(DriverError::Bar(0))?;
        let io = bar::io_window(bar0).map_err(|_| DriverError::Bar(0))?;
        // The header with the MSI-X registers, then the MAC.
        if (io.len() as usize) < device_config_offset(true) as usize + 6 {
            return Err(DriverError::Bar(0));
        }
        let features = io.read32(reg::HOST_FEATURES);
        if features == u32::MAX {
            return Err(DriverError::Unexpected("HOST_FEATURES (device absent?)", features as u64));
        }

        // 3.1.1 step 1, reset: STATUS = 0; the device drops its queues and vectors.
        reset(&io)?;
        // Step 2, ACKNOWLEDGE: a driver found the device.
        io.write8(reg::STATUS, status::ACKNOWLEDGE);
        // Step 3, DRIVER: and knows how to drive it. (QEMU sets Bus Master itself on exactly this value,
        // a workaround for pre-2.6.34 Linux; the caller has set it already.)
        io.write8(reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        // Step 4, features: read the device's, write the accepted subset. Steps 5-6 (FEATURES_OK) do not
        // exist in the legacy interface (3.1.2).
        io.write32(reg::GUEST_FEATURES, features & ACCEPTED_FEATURES);

        let mut device_mac = [0u8; 6];
        for (i, b) in device_mac.iter_mut().enumerate() {
            *b = io.read8(device_config_offset(false) + i as u16);
        }

        // Step 7, device-specific setup: the virtqueues (4.1.5.1.3.1 legacy: QUEUE_SEL, QUEUE_NUM,
        // QUEUE_PFN), RX (0) then TX (1).
        let rx = setup_queue(&io, RX_QUEUE)?;
        let tx = setup_queue(&io, TX_QUEUE)?;
        let buffers = DmaRegion::alloc(1).ok_or(DriverError::NoDmaMemory)?;

        // The chains never change, so they are written once. Legacy framing without ANY_LAYOUT
        // (virtio 1.x 5.1.6 "Legacy Interface: Framing Requirements"): the header alone in the first
        // descriptor, the frame in the next.
        let base = buffers.phys();
        tx.set_desc(0, base + buf::TX_HDR as u64, NET_HDR_LEN as u32, desc::NEXT, 1);
        tx.set_desc(1, base + buf::TX_FRAME as u64, ETH_MIN_FRAME as u32, 0, 0);
        rx.set_desc(0, base + buf::RX_HDR as u64, NET_HDR_LEN as u32, desc::WRITE | desc::NEXT, 1);
        rx.set_desc(1, base + buf::RX_DATA as u64, buf::RX_DATA_LEN as u32, desc::WRITE, 0);
        let frame = arp_request(MAC, GUEST_IP, GATEWAY_IP);
        for (i, b) in frame.iter().enumerate() {
            buffers.write8(buf::TX_FRAME + i, *b);
        }
        // No interrupt of either queue until a source asks for one.
        rx.set_avail_flags(VRING_AVAIL_F_NO_INTERRUPT);
        tx.set_avail_flags(VRING_AVAIL_F_NO_INTERRUPT);

        let (bdf, rx_size, tx_size) = (function.bdf, rx.layout.size, tx.layout.size);
        crate::debug!("{} virtio-net: host features {=u32:#x}, RX {=u16} TX {=u16} entries", bdf, features, rx_size, tx_size);
        Ok(VirtioNet { bdf: function.bdf, io, rx, tx, buffers, mode: Mode::Setup, sources: 0, device_mac })
    }

    /// After the interrupt layer enabled MSI-X with `vectors` entries: TX queue on entry 0, RX queue on
    /// entry 1, configuration changes on entry 2 (those beyond `vectors` get NO_VECTOR), each read back;
    /// then DRIVER_OK, and with two or more vectors the RX probe (module docs).
    pub fn use_msix(&mut self, vectors: usize) -> Result<(), DriverError> {
        // With MSI-X enabled the header is 0x18 bytes: the MAC must now be found there (4.1.4.8).
        let mut mac = [0u8; 6];
        for (i, b) in mac.iter_mut().enumerate() {
            *b = self.io.read8(device_config_offset(true) + i as u16);
        }
        if mac != self.device_mac {
            return Err(DriverError::Unexpected("MAC at 0x18 with MSI-X enabled (device config did not move)", mac_u64(mac)));
        }
        // Queue vectors first (4.1.5.1.2: write, then read back; NO_VECTOR back means refused).
        for (queue, entry) in [(TX_QUEUE, 0u16), (RX_QUEUE, 1)] {
            let vector = if (entry as usize) < vectors { entry } else { NO_VECTOR };
            self.io.write16(reg::QUEUE_SEL, queue);
            self.io.write16(reg::MSI_QUEUE_VECTOR, vector);
            let got = self.io.read16(reg::MSI_QUEUE_VECTOR);
            if got != vector {
                let what = if queue == TX_QUEUE { "TX queue MSI-X vector read-back" } else { "RX queue MSI-X vector read-back" };
                return Err(DriverError::Unexpected(what, got as u64));
            }
        }
        // The configuration-change vector: programmed and checked, never triggered (only the host can).
        let config = if vectors >= 3 { 2 } else { NO_VECTOR };
        self.io.write16(reg::MSI_CONFIG_VECTOR, config);
        let got = self.io.read16(reg::MSI_CONFIG_VECTOR);
        if got != config {
            return Err(DriverError::Unexpected("config MSI-X vector read-back", got as u64));
        }
        self.driver_ok()?;
        self.mode = Mode::Msix;
        self.sources = vectors.min(1);
        if vectors >= 2 {
            if self.probe_peer()? {
                self.sources = 2;
            } else {
                crate::warn!(
                    "{} virtio-net: no ARP reply from 10.0.2.2; RX interrupt not checked (attach -netdev user,id=n0 and netdev=n0 on the device for the RX check)",
                    self.bdf
                );
            }
        }
        Ok(())
    }

    /// INTx: no vectors; DRIVER_OK; one source (TX). A stale cause is cleared by reading ISR.
    pub fn use_intx(&mut self) -> Result<(), DriverError> {
        self.io.read8(reg::ISR);
        self.driver_ok()?;
        self.mode = Mode::Intx;
        self.sources = 1;
        Ok(())
    }

    /// DRIVER_OK (3.1.1 step 8, after the vectors: 4.1.5.1.2): the device is live. Read back: a device
    /// that failed setup says so with DEVICE_NEEDS_RESET, or drops the bit.
    fn driver_ok(&mut self) -> Result<(), DriverError> {
        let ok = status::ACKNOWLEDGE | status::DRIVER | status::DRIVER_OK;
        self.io.write8(reg::STATUS, ok);
        let got = self.io.read8(reg::STATUS);
        if got != ok {
            return Err(DriverError::Unexpected("STATUS after DRIVER_OK", got as u64));
        }
        Ok(())
    }

    /// Queue notify (4.1.5.2 "Notifying The Device"; legacy: the queue index to QUEUE_NOTIFY).
    fn kick(io: &IoWindow, queue: &Virtqueue) {
        io.write16(reg::QUEUE_NOTIFY, queue.index);
    }

    /// Waits until the device is done with every posted transmit and consumes those entries, so the TX
    /// chain and frame may be reused and the TX interrupt flag changed. Then a read of STATUS: QEMU
    /// writes the used entry and decides whether to interrupt in one step under its global lock, which a
    /// port access also takes, so after it no decision based on the old flag is still pending.
    fn reap_tx(&mut self) -> Result<(), DriverError> {
        if self.tx.outstanding() == 0 {
            return Ok(());
        }
        let tx = &mut self.tx;
        let mut wrong_id = None;
        let done = time::wait_until(TX_DONE_US, || {
            while let Some((id, _)) = tx.pop_used() {
                if id != 0 {
                    wrong_id = Some(id);
                    return true;
                }
            }
            tx.outstanding() == 0
        });
        if let Some(id) = wrong_id {
            return Err(DriverError::Unexpected("TX used id", id as u64));
        }
        if !done {
            return Err(DriverError::Timeout("TX used ring"));
        }
        self.io.read8(reg::STATUS);
        Ok(())
    }

    /// Sends the ARP request; `interrupt` says whether its completion may interrupt.
    fn transmit(&mut self, interrupt: bool) -> Result<(), DriverError> {
        self.reap_tx()?;
        self.tx.set_avail_flags(if interrupt { 0 } else { VRING_AVAIL_F_NO_INTERRUPT });
        self.tx.post(0);
        Self::kick(&self.io, &self.tx);
        Ok(())
    }

    /// Makes the RX chain available unless it already is (a reply still owed from an earlier trigger).
    fn post_rx(&mut self) {
        if self.rx.outstanding() == 0 {
            self.rx.post(0);
            Self::kick(&self.io, &self.rx);
        }
    }

    /// Consumes the RX used entry and checks it (the device wrote header + frame into our chain).
    fn take_rx(&mut self) -> Result<(), DriverError> {
        let (id, len) = self.rx.pop_used().ok_or(DriverError::Timeout("RX used ring"))?;
        if id != 0 {
            return Err(DriverError::Unexpected("RX used id", id as u64));
        }
        let len = len as usize;
        if !(NET_HDR_LEN + 14..=NET_HDR_LEN + buf::RX_DATA_LEN).contains(&len) {
            return Err(DriverError::Unexpected("RX used length", len as u64));
        }
        let mut frame = [0u8; 42];
        let n = (len - NET_HDR_LEN).min(frame.len());
        for (i, b) in frame[..n].iter_mut().enumerate() {
            *b = self.buffers.read8(buf::RX_DATA + i);
        }
        if !is_arp_reply(&frame[..n], GATEWAY_IP, MAC) {
            // Something else the backend sent (an IPv6 router advertisement, say): still one received
            // frame and one interrupt, so not a failure of interrupt delivery.
            crate::warn!("{} virtio-net: received a {=usize}-byte frame that is not the ARP reply", self.bdf, len - NET_HDR_LEN);
        }
        Ok(())
    }

    /// Whether a peer answers ARP, with every interrupt of both queues suppressed: post RX, send the
    /// request, wait for the reply. Leaves the RX queue's interrupts enabled when one came.
    fn probe_peer(&mut self) -> Result<bool, DriverError> {
        self.post_rx();
        self.transmit(false)?;
        let rx = &self.rx;
        if !time::wait_until(PEER_PROBE_US, || rx.has_used()) {
            // The buffer stays posted with RX interrupts suppressed; a late reply lands there unnoticed.
            return Ok(false);
        }
        self.take_rx()?;
        // QEMU delivers the reply inside the transmit, before the TX entry is marked used: once
        // `reap_tx` has seen that entry (and read STATUS), the device's decision about the reply's
        // interrupt has been taken with the old flag.
        self.reap_tx()?;
        self.rx.set_avail_flags(0);
        Ok(true)
    }

    fn wait_used(q: &Virtqueue, what: &'static str) -> Result<(), DriverError> {
        if time::wait_until(USED_AFTER_IRQ_US, || q.has_used()) {
            Ok(())
        } else {
            Err(DriverError::Timeout(what))
        }
    }
}

impl InterruptSource for VirtioNet {
    fn sources(&self) -> usize {
        self.sources
    }

    fn trigger(&mut self, i: usize) -> Result<(), DriverError> {
        match i {
            _ if i >= self.sources => Err(DriverError::NoSuchSource(i)),
            0 => self.transmit(true),
            _ => {
                self.post_rx();
                self.transmit(false)
            }
        }
    }

    fn acknowledge(&mut self, i: usize) -> Result<(), DriverError> {
        if i >= self.sources {
            return Err(DriverError::NoSuchSource(i));
        }
        if i == 0 {
            Self::wait_used(&self.tx, "TX used entry after its interrupt")?;
            match self.tx.pop_used() {
                Some((0, _)) => {}
                Some((id, _)) => return Err(DriverError::Unexpected("TX used id", id as u64)),
                None => return Err(DriverError::Timeout("TX used ring")),
            }
        } else {
            Self::wait_used(&self.rx, "RX used entry after its interrupt")?;
            self.take_rx()?;
        }
        if self.mode == Mode::Intx {
            // 4.1.5.5 "Driver Handling Interrupts", MSI-X disabled: read ISR, which resets it to 0 and
            // deasserts INTx (QEMU `virtio_ioport_read`).
            let cause = self.io.read8(reg::ISR);
            if cause & isr::QUEUE == 0 {
                return Err(DriverError::Unexpected("ISR without the queue bit after an INTx", cause as u64));
            }
        }
        Ok(())
    }
}

impl Drop for VirtioNet {
    fn drop(&mut self) {
        // Stop DMA into the rings and buffers before their pages return to the pool; a reset also
        // un-uses the MSI-X vectors and drops INTx.
        let _ = reset(&self.io);
        if self.mode == Mode::Intx {
            self.io.read8(reg::ISR);
        }
    }
}

/// STATUS = 0 (3.1.1 step 1, legacy: the reset is complete when STATUS reads 0).
fn reset(io: &IoWindow) -> Result<(), DriverError> {
    io.write8(reg::STATUS, 0);
    if !time::wait_until(RESET_US, || io.read8(reg::STATUS) == 0) {
        return Err(DriverError::Timeout("STATUS = 0 after reset"));
    }
    Ok(())
}

/// Selects `index`, checks its size, and hands the device a zeroed ring (virtio 1.x 4.1.5.1.3.1 "Legacy
/// Interface: A Note on Virtqueue Configuration": the size is fixed by the device; QUEUE_PFN = address
/// >> 12, which also activates the queue; 2.4.2 for the layout).
fn setup_queue(io: &IoWindow, index: u16) -> Result<Virtqueue, DriverError> {
    io.write16(reg::QUEUE_SEL, index);
    let size = io.read16(reg::QUEUE_NUM);
    if size == 0 || !size.is_power_of_two() || size > MAX_QUEUE_SIZE {
        return Err(DriverError::Unexpected("QUEUE_NUM", size as u64));
    }
    let pfn = io.read32(reg::QUEUE_PFN);
    if pfn != 0 {
        return Err(DriverError::Unexpected("QUEUE_PFN already set after reset", pfn as u64));
    }
    let layout = VringLayout::new(size);
    let ring = DmaRegion::alloc(layout.pages()).ok_or(DriverError::NoDmaMemory)?;
    let pfn = ring.phys() >> QUEUE_PFN_SHIFT;
    let pfn = u32::try_from(pfn).map_err(|_| DriverError::Unexpected("queue address above 16 TiB", ring.phys()))?;
    io.write32(reg::QUEUE_PFN, pfn);
    let got = io.read32(reg::QUEUE_PFN);
    if got != pfn {
        return Err(DriverError::Unexpected("QUEUE_PFN read-back", got as u64));
    }
    Ok(Virtqueue { index, layout, ring, avail_idx: 0, last_used: 0 })
}

fn mac_u64(mac: [u8; 6]) -> u64 {
    mac.iter().fold(0, |acc, &b| acc << 8 | b as u64)
}

impl Driver for VirtioNet {
    const NAME: &'static str = "virtio-net";
    /// TX queue, RX queue, configuration changes (MSI-X entries 0-2).
    const VECTORS: u16 = 3;
    /// TX and RX.
    const SOURCES: usize = 2;

    /// Transitional virtio-net: 0x1000 is the legacy ID (a modern-only device is 0x1041).
    fn matches(f: &Function) -> bool {
        (f.vendor, f.device) == (0x1af4, 0x1000)
    }

    fn start(irq: &mut IrqRequest<'_>) -> Result<(Self, DeviceIrq<'static, PlatformConfig>), StartError> {
        let f = irq.function();
        // pci_enable_device + pci_set_master: I/O decoding for BAR0, Bus Master for the rings. QEMU's
        // virtio-pci clears DRIVER_OK and stops the queues on any Command write that leaves Bus Master
        // clear (the INTx mask-ack-unmask writes Command), so it is set before the device is touched.
        update_command(irq.cfg(), f.bdf, regs::command::IO | regs::command::BUS_MASTER, 0);
        let mut dev = VirtioNet::new(f)?;
        // Vectors before DRIVER_OK.
        let vectors = irq.enable(Self::VECTORS)?;
        let msix = irq.mode() == IrqMode::Msix;
        let live = if msix { dev.use_msix(vectors.vectors().len()) } else { dev.use_intx() };
        if let Err(e) = live {
            drop(dev); // reset the device before its interrupts are shut down
            return Err(e.into());
        }
        // RX vector programmed but its source not driven (no peer answered): said in the report, not
        // only in the defmt log (a machine with one UART has none). A smaller table says so first.
        if msix && vectors.vectors().len() >= 2 && dev.sources() < 2 {
            irq.fewer = Some(irq.table_note(dev.sources(), Self::SOURCES).unwrap_or_else(|| {
                alloc::string::String::from(
                    "RX not checked: no ARP reply from 10.0.2.2 (attach -netdev user,id=n0 and netdev=n0 on the device): 1 of 2 sources driven",
                )
            }));
        }
        Ok((dev, vectors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_256_entry_queue_spans_three_pages_with_the_used_ring_page_aligned() {
        let l = VringLayout::new(256);
        assert_eq!(l.avail, 4096, "256 descriptors of 16 bytes");
        // avail: flags, idx, 256 slots, used_event = 518 bytes after 4096 -> used at the next 4 KiB.
        assert_eq!(l.used, 8192);
        // used: flags, idx, 256 x 8 bytes, avail_event = 2054 bytes, rounded up.
        assert_eq!(l.bytes, 12288);
        assert_eq!(l.pages(), 3);
        assert_eq!(l.avail_idx(), 4098);
        assert_eq!(l.avail_slot(0), 4100);
        assert_eq!(l.avail_slot(257), 4102, "slots wrap modulo the size");
        assert_eq!(l.used_idx(), 8194);
        assert_eq!(l.used_elem(1), 8204);
        assert_eq!(l.desc(1), 16);
    }

    #[test]
    fn layout_matches_linux_vring_size_for_every_legacy_size() {
        // Linux vring_size(num, 4096): ALIGN(16 num + 2 (3 + num)) + 2 * 3 + 8 num.
        for shift in 0..=10 {
            let n = 1usize << shift;
            let l = VringLayout::new(n as u16);
            let linux = align_up(16 * n + 2 * (3 + n), 4096) + 2 * 3 + 8 * n;
            assert_eq!(l.used + 2 * 3 + 8 * n, linux, "size {n}");
            assert!(l.bytes >= linux && l.bytes.is_multiple_of(4096), "size {n}");
        }
        assert_eq!(VringLayout::new(1024).pages(), 8);
        assert_eq!(VringLayout::new(128).pages(), 2);
    }

    #[test]
    fn device_config_moves_by_the_two_vector_registers_when_msix_is_enabled() {
        assert_eq!(device_config_offset(false), 0x14);
        assert_eq!(device_config_offset(true), 0x18);
        // The vector registers are exactly the 4 bytes that appear.
        assert_eq!(reg::MSI_CONFIG_VECTOR, device_config_offset(false));
        assert_eq!(reg::MSI_QUEUE_VECTOR + 2, device_config_offset(true));
        assert_eq!(reg::ISR + 1, device_config_offset(false));
    }

    #[test]
    fn arp_request_bytes() {
        let f = arp_request(MAC, GUEST_IP, GATEWAY_IP);
        #[rustfmt::skip]
        let expected: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // destination: broadcast
            0x02, 0x6d, 0x73, 0x69, 0x66, 0x77, // source: 02:"msifw"
            0x08, 0x06,                         // ARP
            0x00, 0x01, 0x08, 0x00, 6, 4,       // Ethernet, IPv4, lengths
            0x00, 0x01,                         // request
            0x02, 0x6d, 0x73, 0x69, 0x66, 0x77, 10, 0, 2, 15, // sender
            0, 0, 0, 0, 0, 0, 10, 0, 2, 2,      // target: who has 10.0.2.2
        ];
        assert_eq!(f[..42], expected);
        assert!(f[42..].iter().all(|&b| b == 0), "padded to 60 bytes with zeros");
        assert_eq!(MAC[0] & 0b11, 0b10, "locally administered, unicast");
    }

    #[test]
    fn arp_reply_recognised_only_from_the_gateway_to_us() {
        let mut reply = arp_request(MAC, GUEST_IP, GATEWAY_IP);
        let gw_mac = [0x52, 0x55, 10, 0, 2, 2];
        reply[0..6].copy_from_slice(&MAC);
        reply[6..12].copy_from_slice(&gw_mac);
        reply[21] = 2;
        reply[22..28].copy_from_slice(&gw_mac);
        reply[28..32].copy_from_slice(&GATEWAY_IP);
        reply[32..38].copy_from_slice(&MAC);
        reply[38..42].copy_from_slice(&GUEST_IP);
        assert!(is_arp_reply(&reply, GATEWAY_IP, MAC));
        assert!(is_arp_reply(&reply[..42], GATEWAY_IP, MAC), "unpadded");
        assert!(!is_arp_reply(&reply[..41], GATEWAY_IP, MAC), "truncated");
        assert!(!is_arp_reply(&arp_request(MAC, GUEST_IP, GATEWAY_IP), GATEWAY_IP, MAC), "a request is not a reply");
        assert!(!is_arp_reply(&reply, [10, 0, 2, 3], MAC), "from another address");
        let mut ipv6 = reply;
        ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
        assert!(!is_arp_reply(&ipv6, GATEWAY_IP, MAC));
    }

    #[test]
    fn only_features_that_keep_interrupt_suppression_exact_are_accepted() {
        assert_eq!(ACCEPTED_FEATURES & F_NOTIFY_ON_EMPTY, 0);
        assert_eq!(ACCEPTED_FEATURES & (1 << 29), 0, "no VIRTIO_RING_F_EVENT_IDX");
        assert_eq!(ACCEPTED_FEATURES & (1 << 15), 0, "no MRG_RXBUF: the header stays 10 bytes");
    }
}
