//! Resource assignment by msifw itself, for boot firmwares that leave BARs at 0 and decoding off (qboot,
//! UEFI firmwares that skip devices without a driver): bus numbers for bridges, BAR addresses, bridge windows.
//!
//! The work is split the way Linux's `pci_assign_unassigned_resources` and SeaBIOS's `pci_setup` split it:
//! - [`number_buses`]: bridges without bus numbers get primary/secondary/subordinate (depth first, as
//!   `pci_scan_bridge` does), so enumeration can follow them;
//! - [`plan`] (pure, host-tested): every unassigned BAR is sized into a request; each bridge's windows are
//!   computed bottom-up from what is below it (1 MiB memory, 4 KiB I/O granularity, PCI-to-PCI Bridge 1.2
//!   §3.2.5.6-3.2.5.10); the root bus's requests are placed in the host bridge's windows largest alignment
//!   first, and each bridge's children inside its window, top-down;
//! - [`apply`]: the plan written: every bridge's windows first (nothing below forwards yet), then each
//!   function's BARs with its decoding off and back on, then the bridges' forwarding enabled.
//!
//! BARs the boot firmware already assigned are never moved: their ranges are taken out of the windows.

use super::bar::BarKind;
use super::config::{Bdf, ConfigRegion};
use super::enumerate::{Enumeration, Function};
use super::regs;
use crate::boot::MemRegion;
use crate::platform::crs::{AddressRange, HostWindows};
use alloc::vec::Vec;

/// Bridge memory windows are 1 MiB granular (PCI-to-PCI Bridge 1.2 §3.2.5.8: address bits 19:0 are 0 in
/// the base and 0xFFFFF in the limit).
pub const MEM_GRANULARITY: u64 = 1 << 20;
/// Bridge I/O windows are 4 KiB granular (§3.2.5.6: address bits 11:0).
pub const IO_GRANULARITY: u64 = 1 << 12;
/// Lowest I/O port handed out: below are ISA and chipset ports (SeaBIOS and Linux start at 0x1000 too).
pub const IO_FLOOR: u64 = 0x1000;
/// Chipset I/O ports above [`IO_FLOOR`] that QEMU's `pc` machine decodes itself and its `PCI0._CRS` still
/// hands to PCI: ACPI PCI hotplug 0xAE00-0xAE13 (hw/acpi/pcihp.c, ACPI_PCIHP_ADDR, the DSDT's PCST and
/// SEJ_), CPU hotplug 0xAF00-0xAF1F (hw/acpi/cpu_hotplug.c, the DSDT's PRST), GPE0 0xAFE0-0xAFE3
/// (hw/acpi/piix4.c, GPE_BASE) and the PIIX4 PM block 0xB000-0xB03F (hw/acpi/piix4.c, the firmware's
/// usual pm_io_base). Left out of every I/O window, whatever the source: the hotplug ports are in no table.
/// The FADT's PM and GPE blocks are left out as well, exactly, by [`Windows::exclude_fixed_io`] (SeaBIOS
/// puts QEMU's PM base at 0x600). On q35 the ICH9 ports (PM base 0x600, hotplug 0xCC4 and 0xCD8) are below
/// [`IO_FLOOR`] already.
pub const CHIPSET_IO: [AddressRange; 2] = [AddressRange { start: 0xAE00, last: 0xAFFF }, AddressRange { start: 0xB000, last: 0xB03F }];
/// Lowest memory address handed out (below is legacy VGA and BIOS space).
pub const MEM_FLOOR: u64 = 1 << 20;
/// End of the 32-bit PCI hole: the IOAPIC, HPET, LAPIC and BIOS ROM live from here up.
pub const HOLE_END_32: u64 = 0xFEC0_0000;

/// The address space a request is placed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// I/O ports.
    Io,
    /// Non-prefetchable memory.
    Mem,
    /// Prefetchable memory.
    Pref,
}

impl Space {
    /// Name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Space::Io => "io",
            Space::Mem => "mem",
            Space::Pref => "prefetchable mem",
        }
    }
}

/// Where the windows came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowSource {
    /// The host bridge's `_CRS` in the DSDT.
    AcpiCrs,
    /// The holes of the E820 memory map.
    MemoryMap,
}

impl WindowSource {
    /// Name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            WindowSource::AcpiCrs => "acpi-crs",
            WindowSource::MemoryMap => "memory-map",
        }
    }
}

/// The ranges the root bus may use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Windows {
    /// I/O.
    pub io: Vec<AddressRange>,
    /// Memory below 4 GiB.
    pub mem32: Vec<AddressRange>,
    /// Memory above 4 GiB (only 64-bit BARs and 64-bit prefetchable bridge windows go there).
    pub mem64: Vec<AddressRange>,
}

impl Windows {
    /// From the host bridge's `_CRS`: I/O from [`IO_FLOOR`], memory from [`MEM_FLOOR`], split at 4 GiB; the
    /// ports the bridge consumes itself and [`CHIPSET_IO`] are left out.
    pub fn from_host(h: &HostWindows) -> Windows {
        let mut w = Windows::default();
        for r in h.io.iter().filter_map(|r| clamp(r, IO_FLOOR, 0xFFFF)) {
            w.io.push(r);
        }
        for r in h.mem.iter() {
            if let Some(low) = clamp(r, MEM_FLOOR, (1 << 32) - 1) {
                w.mem32.push(low);
            }
            if let Some(high) = clamp(r, 1 << 32, u64::MAX) {
                w.mem64.push(high);
            }
        }
        for r in h.io_consumed.iter().chain(CHIPSET_IO.iter()) {
            w.exclude(Space::Io, *r);
        }
        w
    }

    /// From the memory map, as SeaBIOS does without ACPI: memory from the end of RAM and ACPI memory below
    /// 4 GiB (rounded up to 1 MiB) to [`HOLE_END_32`]; I/O 0x1000-0xFFFF without [`CHIPSET_IO`]. Reserved
    /// regions and the ECAM window are taken out by the caller ([`Windows::exclude_memory_map`]).
    pub fn from_memory_map(memmap: &[MemRegion]) -> Windows {
        let top = memmap
            .iter()
            .filter(|r| matches!(r.kind, 1 | 3 | 4) && r.addr < HOLE_END_32)
            .map(|r| r.addr.saturating_add(r.size))
            .max()
            .unwrap_or(0);
        let start = align_up(top.max(MEM_FLOOR), MEM_GRANULARITY).unwrap_or(u64::MAX);
        let mut w = Windows::default();
        if start < HOLE_END_32 {
            w.mem32.push(AddressRange { start, last: HOLE_END_32 - 1 });
        }
        w.io.push(AddressRange { start: IO_FLOOR, last: 0xFFFF });
        for r in CHIPSET_IO {
            w.exclude(Space::Io, r);
        }
        w
    }

    /// Leaves out the fixed-hardware I/O blocks the FADT names, as (first port, length): the PM1, PM2,
    /// PM timer and GPE blocks a chipset decodes itself, wherever the platform put them.
    pub fn exclude_fixed_io(&mut self, blocks: &[(u16, u16)]) {
        for &(port, len) in blocks.iter().filter(|b| b.1 > 0) {
            self.exclude(Space::Io, AddressRange { start: port as u64, last: port as u64 + len as u64 - 1 });
        }
    }

    /// Takes every memory-map region (RAM and reserved alike) out of the memory windows.
    pub fn exclude_memory_map(&mut self, memmap: &[MemRegion]) {
        for r in memmap.iter().filter(|r| r.size > 0) {
            let last = r.addr.saturating_add(r.size - 1);
            self.exclude(Space::Mem, AddressRange { start: r.addr, last });
        }
    }

    /// Takes `r` out of the windows of `space` (`Mem` and `Pref` are the same address space), splitting a
    /// window in two where needed. If the split does not fit, the smaller piece is dropped.
    pub fn exclude(&mut self, space: Space, r: AddressRange) {
        let lists: [&mut Vec<AddressRange>; 2] = match space {
            Space::Io => [&mut self.io, &mut Vec::new()],
            Space::Mem | Space::Pref => [&mut self.mem32, &mut self.mem64],
        };
        for list in lists {
            let mut out: Vec<AddressRange> = Vec::new();
            for w in list.iter() {
                if !w.overlaps(&r) {
                    out.push(*w);
                    continue;
                }
                let below = (w.start < r.start).then(|| AddressRange { start: w.start, last: r.start - 1 });
                let above = (r.last < w.last).then(|| AddressRange { start: r.last + 1, last: w.last });
                out.extend([below, above].into_iter().flatten());
            }
            crate::sort::sort_by_key(&mut out, |p| p.start);
            *list = out;
        }
    }
}

fn clamp(r: &AddressRange, floor: u64, ceiling: u64) -> Option<AddressRange> {
    let start = r.start.max(floor);
    let last = r.last.min(ceiling);
    (start <= last).then_some(AddressRange { start, last })
}

/// `v` rounded up to a multiple of `align` (a power of two), or `None` past 2^64.
fn align_up(v: u64, align: u64) -> Option<u64> {
    Some(v.checked_add(align - 1)? & !(align - 1))
}

/// A bridge as found: its buses, which windows it implements, and whether msifw may program them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeInfo {
    /// The bridge function.
    pub bdf: Bdf,
    /// Secondary bus.
    pub secondary: u8,
    /// The I/O base/limit registers are implemented.
    pub io: bool,
    /// The prefetchable base/limit registers are implemented.
    pub pref: bool,
    /// The prefetchable window decodes 64-bit addresses (§3.2.5.9: type 1 in bits 3:0).
    pub pref64: bool,
    /// The boot firmware set its windows up (some window open): msifw leaves it and its subtree alone.
    pub firmware_windows: [Option<AddressRange>; 3],
}

impl BridgeInfo {
    /// Whether msifw may program this bridge's windows: the boot firmware opened none.
    pub fn managed(&self) -> bool {
        self.firmware_windows.iter().all(|w| w.is_none())
    }
}

/// Why a BAR or bridge window got no address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignError {
    /// No window has room for it (BAR `index` of `size` bytes, or a bridge window when `index` is `None`).
    NoRoom {
        /// BAR index, or `None` for a bridge window.
        index: Option<u8>,
        /// Its space.
        space: Space,
        /// Bytes needed.
        size: u64,
    },
    /// The bridge above it has no window of this kind (an I/O BAR, or a bridge's I/O window, behind a bridge
    /// without I/O decoding).
    NoBridgeWindow {
        /// BAR index, or `None` for a bridge window.
        index: Option<u8>,
        /// Its space.
        space: Space,
    },
    /// The bridge above it was set up by the boot firmware, which left this BAR unassigned; its windows are
    /// not changed.
    BelowFirmwareBridge {
        /// BAR index.
        index: u8,
    },
    /// The function's bus is reached by no bridge msifw knows.
    Unreachable {
        /// BAR index.
        index: u8,
    },
    /// The function lies on (or below) another root bus than the one msifw assigns BARs for.
    OtherRootBus {
        /// BAR index.
        index: u8,
        /// The root bus the function's tree starts at.
        bus: u8,
        /// The root bus msifw assigns for.
        root: u8,
    },
    /// A bridge's own BAR has no address but decodes at 0, because its Command Memory or I/O Space bit also
    /// switches forwarding through its windows, which the devices below need.
    OwnBarDecodesAtZero {
        /// BAR index.
        index: u8,
        /// Its space.
        space: Space,
    },
    /// More requests on one bus, bridges or assignments than msifw keeps.
    TooMany,
    /// Bridges without bus numbers beyond the buses the configuration access reaches, or beyond the range of
    /// the bridge above (set by the boot firmware).
    OutOfBusNumbers,
}

impl core::fmt::Display for AssignError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::NoRoom { index: Some(i), space, size } => write!(f, "BAR{i} ({} bytes {}) fits no free window; left unassigned", size, space.name()),
            Self::NoRoom { index: None, space, size } => write!(f, "bridge {} window of {size:#x} bytes fits no free window; devices below lose it", space.name()),
            Self::NoBridgeWindow { index: Some(i), space } => write!(f, "BAR{i}: the bridge above has no {} window; left unassigned", space.name()),
            Self::NoBridgeWindow { index: None, space } => write!(f, "bridge {} window: the bridge above has no {0} window; devices below lose it", space.name()),
            Self::BelowFirmwareBridge { index } => write!(f, "BAR{index} unassigned below a bridge the boot firmware set up; its windows are left as they are"),
            Self::Unreachable { index } => write!(f, "BAR{index}: no bridge leads to this bus; left unassigned"),
            Self::OtherRootBus { index, bus, root } => write!(
                f,
                "BAR{index}: in root bus {bus:#04x}'s tree; msifw assigns BARs only in root bus {root:#04x}'s (from the first host bridge's windows); left unassigned"
            ),
            Self::OwnBarDecodesAtZero { index, space } => write!(f, "bridge's own BAR{index} has no address but decodes {} at 0: the bridge keeps {0} decoding on to forward to the devices below", space.name()),
            Self::TooMany => write!(f, "more BARs or bridges than msifw assigns; the rest are left unassigned"),
            Self::OutOfBusNumbers => write!(f, "no bus number left for a bridge; nothing below it is enumerated"),
        }
    }
}

/// One BAR address to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarAssignment {
    /// Function.
    pub bdf: Bdf,
    /// BAR index.
    pub index: u8,
    /// Kind (a 64-bit BAR takes two registers).
    pub kind: BarKind,
    /// Address.
    pub address: u64,
}

/// One bridge's windows to write (`None` = closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeWindows {
    /// Bridge.
    pub bdf: Bdf,
    /// I/O window.
    pub io: Option<AddressRange>,
    /// Non-prefetchable memory window.
    pub mem: Option<AddressRange>,
    /// Prefetchable memory window.
    pub pref: Option<AddressRange>,
}

/// What [`plan`] decided.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// BAR addresses.
    pub bars: Vec<BarAssignment>,
    /// Bridge windows.
    pub bridges: Vec<BridgeWindows>,
    /// What could not be placed, per function.
    pub problems: heapless::Vec<(Bdf, AssignError), MAX_PROBLEMS>,
    /// Problems beyond [`MAX_PROBLEMS`], counted only.
    pub problems_dropped: usize,
}

/// Most problems a plan lists.
pub const MAX_PROBLEMS: usize = 128;

/// Problems of one step, the first [`MAX_PROBLEMS`] kept and the rest counted: none is dropped unseen.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Problems {
    list: heapless::Vec<(Bdf, AssignError), MAX_PROBLEMS>,
    /// Problems beyond the kept ones.
    pub dropped: usize,
}

impl Problems {
    /// Keeps `e` for `bdf`, or counts it when the list is full.
    pub fn push(&mut self, bdf: Bdf, e: AssignError) {
        if self.list.push((bdf, e)).is_err() {
            self.dropped += 1;
        }
    }

    /// The kept problems.
    pub fn as_slice(&self) -> &[(Bdf, AssignError)] {
        &self.list
    }

    /// The kept problems, in order.
    pub fn iter(&self) -> impl Iterator<Item = &(Bdf, AssignError)> {
        self.list.iter()
    }

    /// Whether there was none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty() && self.dropped == 0
    }
}

impl Plan {
    fn problem(&mut self, bdf: Bdf, e: AssignError) {
        if self.problems.push((bdf, e)).is_err() {
            self.problems_dropped += 1;
        }
    }
}

/// Whether anything needs msifw to assign resources: a memory or I/O BAR at address 0, or a bridge without
/// valid bus numbers.
pub fn needed(e: &Enumeration) -> bool {
    e.functions.iter().any(|f| f.bars.iter().any(|b| !b.assigned()) || f.bridge_buses.is_some_and(|(s, sub)| !valid_buses(f.bdf.bus, s, sub)))
}

fn valid_buses(bus: u8, secondary: u8, subordinate: u8) -> bool {
    secondary > bus && subordinate >= secondary
}

/// What is owed an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// BAR `index` of `functions[f]`.
    Bar { f: usize, index: u8, kind: BarKind },
    /// The `window` window of `bridges[b]` (placed in the parent's window of the item's space, which differs
    /// when the parent has no prefetchable window).
    Bridge { b: usize, window: Space },
}

#[derive(Debug, Clone, Copy)]
struct Item {
    owner: Owner,
    space: Space,
    size: u64,
    align: u64,
    /// May be placed above 4 GiB.
    above_4g: bool,
    placed: Option<u64>,
}

/// A bridge's needs per space (index: Io, Mem, Pref), computed bottom-up.
#[derive(Debug, Clone, Copy, Default)]
struct Need {
    size: u64,
    align: u64,
    above_4g: bool,
}

fn space_index(s: Space) -> usize {
    match s {
        Space::Io => 0,
        Space::Mem => 1,
        Space::Pref => 2,
    }
}

const SPACES: [Space; 3] = [Space::Io, Space::Mem, Space::Pref];

/// Plans addresses for every unassigned BAR of `e` and windows for every bridge msifw manages, from the root
/// bus `root`'s `windows`. Assigned BARs and the windows of bridges the boot firmware set up are taken out of
/// the windows first. Pure: no configuration access.
pub fn plan(e: &Enumeration, bridges: &[BridgeInfo], root: u8, mut windows: Windows) -> Plan {
    let mut out = Plan::default();
    for f in e.functions.iter() {
        for b in f.bars.iter().filter(|b| b.assigned()) {
            let space = if b.kind == BarKind::Io { Space::Io } else { Space::Mem };
            windows.exclude(space, AddressRange { start: b.address, last: b.address.saturating_add(b.size - 1) });
        }
    }
    for br in bridges.iter() {
        for (s, w) in SPACES.iter().zip(br.firmware_windows.iter()) {
            if let Some(w) = w {
                windows.exclude(*s, *w);
            }
        }
    }
    let parent_of = |bus: u8| bridges.iter().position(|b| b.secondary == bus);
    // A bridge is msifw's when it and every bridge above it have no window the boot firmware opened.
    let mut managed = alloc::vec![false; bridges.len()];
    let mut by_bus: Vec<usize> = (0..bridges.len()).collect();
    crate::sort::sort_by_key(&mut by_bus, |&i| bridges[i].secondary);
    for &b in by_bus.iter() {
        let br = &bridges[b];
        managed[b] = br.managed() && (br.bdf.bus == root || parent_of(br.bdf.bus).is_some_and(|p| managed[p]));
    }
    // The bus a function's tree starts at: up through the bridges while one leads to the bus.
    let top_of = |mut bus: u8| {
        for _ in 0..256 {
            match parent_of(bus) {
                Some(p) if bridges[p].bdf.bus != bus => bus = bridges[p].bdf.bus,
                _ => break,
            }
        }
        bus
    };
    for f in e.functions.iter().filter(|f| f.bdf.bus != root) {
        let top = top_of(f.bdf.bus);
        for bar in f.bars.iter().filter(|b| !b.assigned()) {
            match parent_of(f.bdf.bus) {
                _ if top != root && e.root_buses.contains(&top) => out.problem(f.bdf, AssignError::OtherRootBus { index: bar.index, bus: top, root }),
                None => out.problem(f.bdf, AssignError::Unreachable { index: bar.index }),
                Some(p) if !managed[p] => out.problem(f.bdf, AssignError::BelowFirmwareBridge { index: bar.index }),
                Some(_) => {}
            }
        }
    }

    // Bottom up: children have higher bus numbers than their bridge (enumeration follows only such bridges),
    // so going through the bridges by descending secondary bus sizes every child before its parent.
    let mut order: Vec<usize> = (0..bridges.len()).collect();
    crate::sort::sort_by_key(&mut order, |&i| core::cmp::Reverse(bridges[i].secondary));
    let mut needs = alloc::vec![[Need::default(); 3]; bridges.len()];
    for &b in order.iter() {
        let br = &bridges[b];
        if !managed[b] {
            continue;
        }
        let Ok(mut items) = items_on(e, bridges, &managed, &needs, br.secondary, Some(br), &mut out) else {
            out.problem(br.bdf, AssignError::TooMany);
            continue;
        };
        for space in SPACES {
            let gran = if space == Space::Io { IO_GRANULARITY } else { MEM_GRANULARITY };
            let sub = &mut items[..];
            let (end, align, above_4g) = layout(sub, space, 0);
            let size = align_up(end, gran).unwrap_or(0);
            let above_4g = above_4g && space == Space::Pref && br.pref64;
            needs[b][space_index(space)] = Need { size, align: align.max(gran), above_4g };
        }
    }

    // Top down: the root bus from the host windows, then each bridge's bus inside the windows it got.
    let Ok(mut root_items) = items_on(e, bridges, &managed, &needs, root, None, &mut out) else {
        out.problem(Bdf::new(root, 0, 0), AssignError::TooMany);
        return out;
    };
    place_root(&mut root_items, &windows);
    let mut got: Vec<[Option<AddressRange>; 3]> = alloc::vec![[None; 3]; bridges.len()];
    record(e, bridges, &root_items, &mut got, &mut out);
    order.reverse();
    for &b in order.iter() {
        let br = &bridges[b];
        if !managed[b] {
            continue;
        }
        out.bridges.push(BridgeWindows { bdf: br.bdf, io: got[b][0], mem: got[b][1], pref: got[b][2] });
        let Ok(mut items) = items_on(e, bridges, &managed, &needs, br.secondary, Some(br), &mut Plan::default()) else { continue };
        for space in SPACES {
            let Some(window) = got[b][space_index(space)] else { continue };
            // The same layout as sized it, now at the window's base: it fits by construction.
            layout(&mut items, space, window.start);
        }
        record(e, bridges, &items, &mut got, &mut out);
    }
    out
}

/// The requests on `bus`: its functions' unassigned BARs and its managed bridges' windows. Below `parent`,
/// a prefetchable BAR or bridge window goes to the non-prefetchable window when the bridge has no
/// prefetchable one, and an I/O BAR or bridge window without an I/O window is a problem.
fn items_on(
    e: &Enumeration,
    bridges: &[BridgeInfo],
    managed: &[bool],
    needs: &[[Need; 3]],
    bus: u8,
    parent: Option<&BridgeInfo>,
    out: &mut Plan,
) -> Result<Vec<Item>, ()> {
    let mut items = Vec::new();
    for (fi, f) in e.functions.iter().enumerate().filter(|(_, f)| f.bdf.bus == bus) {
        for bar in f.bars.iter().filter(|b| !b.assigned()) {
            let mut space = match (bar.kind, bar.prefetchable) {
                (BarKind::Io, _) => Space::Io,
                (_, true) => Space::Pref,
                (_, false) => Space::Mem,
            };
            if let Some(p) = parent {
                if space == Space::Pref && !p.pref {
                    space = Space::Mem;
                }
                if space == Space::Io && !p.io {
                    out.problem(f.bdf, AssignError::NoBridgeWindow { index: Some(bar.index), space });
                    continue;
                }
            }
            let item = Item {
                owner: Owner::Bar { f: fi, index: bar.index, kind: bar.kind },
                space,
                size: bar.size,
                align: bar.size,
                above_4g: bar.kind == BarKind::Mem64,
                placed: None,
            };
            items.push(item);
        }
    }
    for (b, br) in bridges.iter().enumerate().filter(|&(b, br)| br.bdf.bus == bus && managed[b]) {
        for window in SPACES {
            let need = needs[b][space_index(window)];
            if need.size == 0 {
                continue;
            }
            let (mut space, mut above_4g) = (window, need.above_4g);
            // The parent forwards only through the windows it implements (§3.2.5.6, §3.2.5.9: the others read
            // 0): a prefetchable window may sit in non-prefetchable memory (§3.2.5.8 allows prefetchable
            // ranges there), which is 32-bit only; I/O has nowhere else to go.
            if let Some(p) = parent {
                if space == Space::Pref && !p.pref {
                    (space, above_4g) = (Space::Mem, false);
                }
                if space == Space::Io && !p.io {
                    out.problem(br.bdf, AssignError::NoBridgeWindow { index: None, space });
                    continue;
                }
            }
            items.push(Item { owner: Owner::Bridge { b, window }, space, size: need.size, align: need.align, above_4g, placed: None });
        }
    }
    // Largest alignment first (then largest size): each item starts where the one before ended, rounded to
    // an alignment no larger than the previous one's, so the gaps are as small as they can be. Among equals,
    // what must stay below 4 GiB goes first, so a 64-bit BAR does not take its room.
    crate::sort::sort_by(&mut items, |a, b| (b.align, b.size, a.above_4g) < (a.align, a.size, b.above_4g));
    Ok(items)
}

/// Lays the items of `space` out from `base` in order, each naturally aligned. Returns the end offset
/// relative to `base`, the largest alignment, and whether every item may go above 4 GiB.
fn layout(items: &mut [Item], space: Space, base: u64) -> (u64, u64, bool) {
    let mut at = base;
    let mut align = 1;
    let mut above_4g = true;
    for item in items.iter_mut().filter(|i| i.space == space) {
        let Some(start) = align_up(at, item.align) else { continue };
        item.placed = Some(start);
        at = start.saturating_add(item.size);
        align = align.max(item.align);
        above_4g &= item.above_4g;
    }
    (at - base, align, above_4g)
}

/// Places the root bus's items, first fit over the windows in order: I/O from the I/O windows, memory below
/// 4 GiB first, and items that may go above 4 GiB there when nothing below has room.
fn place_root(items: &mut [Item], w: &Windows) {
    let lists = [&w.io, &w.mem32, &w.mem64];
    let mut cursors: [Vec<u64>; 3] = lists.map(|list| list.iter().map(|win| win.start).collect());
    for item in items.iter_mut() {
        let candidates: &[usize] = match (item.space, item.above_4g) {
            (Space::Io, _) => &[0],
            (_, false) => &[1],
            (_, true) => &[1, 2],
        };
        'found: for &l in candidates {
            for (cursor, win) in cursors[l].iter_mut().zip(lists[l].iter()) {
                let Some(start) = align_up(*cursor, item.align) else { continue };
                let Some(last) = start.checked_add(item.size - 1) else { continue };
                if last <= win.last {
                    item.placed = Some(start);
                    *cursor = last.saturating_add(1);
                    break 'found;
                }
            }
        }
    }
}

/// Turns placed items into BAR assignments and bridge windows (`got`), and unplaced ones into problems.
fn record(e: &Enumeration, bridges: &[BridgeInfo], items: &[Item], got: &mut [[Option<AddressRange>; 3]], out: &mut Plan) {
    for item in items {
        match (item.owner, item.placed) {
            (Owner::Bar { f, index, kind }, Some(address)) => {
                out.bars.push(BarAssignment { bdf: e.functions[f].bdf, index, kind, address });
            }
            (Owner::Bar { f, index, .. }, None) => {
                out.problem(e.functions[f].bdf, AssignError::NoRoom { index: Some(index), space: item.space, size: item.size });
            }
            (Owner::Bridge { b, window }, Some(start)) => {
                got[b][space_index(window)] = Some(AddressRange { start, last: start + item.size - 1 });
            }
            (Owner::Bridge { b, window }, None) => {
                out.problem(bridges[b].bdf, AssignError::NoRoom { index: None, space: window, size: item.size });
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Configuration-space side
// ---------------------------------------------------------------------------------------------------------------

/// Type 1 header registers (PCI-to-PCI Bridge Architecture 1.2 §3.2.5).
pub mod bridge_regs {
    /// Primary (7:0), secondary (15:8), subordinate (23:16) bus numbers, secondary latency timer (31:24).
    pub const BUS_NUMBERS: u16 = 0x18;
    /// I/O Base (8 bits): address bits 15:12 in 7:4; 3:0 addressing (0 16-bit, 1 32-bit).
    pub const IO_BASE: u16 = 0x1C;
    /// I/O Limit (8 bits).
    pub const IO_LIMIT: u16 = 0x1D;
    /// Memory Base (16 bits): address bits 31:20 in 15:4.
    pub const MEM_BASE: u16 = 0x20;
    /// Memory Limit (16 bits).
    pub const MEM_LIMIT: u16 = 0x22;
    /// Prefetchable Memory Base (16 bits): address bits 31:20 in 15:4; 3:0 addressing (0 32-bit, 1 64-bit).
    pub const PREF_BASE: u16 = 0x24;
    /// Prefetchable Memory Limit (16 bits).
    pub const PREF_LIMIT: u16 = 0x26;
    /// Prefetchable Base Upper 32 Bits.
    pub const PREF_BASE_UPPER: u16 = 0x28;
    /// Prefetchable Limit Upper 32 Bits.
    pub const PREF_LIMIT_UPPER: u16 = 0x2C;
    /// I/O Base Upper 16 Bits (15:0) and I/O Limit Upper 16 Bits (31:16).
    pub const IO_UPPER: u16 = 0x30;
}

/// What [`number_buses`] did.
#[derive(Debug, Clone, Default)]
pub struct Numbering {
    /// Bridges given bus numbers.
    pub numbered: u32,
    /// Bridges that could not be numbered.
    pub problems: Problems,
}

/// Whether some bridge of `e` lacks valid bus numbers.
pub fn numbering_needed(e: &Enumeration) -> bool {
    e.functions.iter().any(|f| f.bridge_buses.is_some_and(|(s, sub)| !valid_buses(f.bdf.bus, s, sub)))
}

/// Gives every bridge reachable from `root` that has no valid bus numbers the next free bus, depth first, as
/// Linux's `pci_scan_bridge_extend` does: on the root bus from above every subordinate bus already assigned
/// in `e`; below a bridge with valid numbers from inside its secondary..subordinate range (the only buses it
/// forwards configuration cycles to), above the ranges of the numbered bridges below it. A bridge with no
/// free bus left in its parent's range is reported and left unnumbered. Bridges with valid numbers are
/// followed as they are.
pub fn number_buses(cfg: &impl ConfigRegion, e: &Enumeration, root: u8, bus_end: u8) -> Numbering {
    let mut next = u16::from(highest_numbered(e, root, u8::MAX)) + 1;
    let mut out = Numbering::default();
    scan(cfg, e, root, bus_end, &mut next, &mut out);
    out
}

/// The highest bus in `bus..=limit` in use: `bus` and the subordinate buses of the bridges in `e` with valid
/// numbers whose secondary bus is above `bus` and at most `limit`.
fn highest_numbered(e: &Enumeration, bus: u8, limit: u8) -> u8 {
    e.functions
        .iter()
        .filter_map(|f| f.bridge_buses.filter(|&(s, sub)| valid_buses(f.bdf.bus, s, sub) && bus < s && s <= limit).map(|(_, sub)| sub))
        .fold(bus, u8::max)
}

/// Scans `bus`, numbering bridges below it from `next` up to `limit`; returns the highest bus number in use
/// below it. No depth limit: every level scans a bus above its parent's (a valid secondary is above the
/// bridge's bus, a new one comes from `next`, which starts above `bus`), so the recursion is at most 256
/// deep, as deep as the bus numbers let a topology be.
fn scan(cfg: &impl ConfigRegion, e: &Enumeration, bus: u8, limit: u8, next: &mut u16, out: &mut Numbering) -> u8 {
    let mut highest = bus;
    for dev in 0..32 {
        let f0 = Bdf::new(bus, dev, 0);
        if cfg.read16(f0, regs::VENDOR_ID) == 0xFFFF {
            continue;
        }
        let funcs = if cfg.read8(f0, regs::HEADER_TYPE) & 0x80 != 0 { 8 } else { 1 };
        for func in 0..funcs {
            let bdf = Bdf::new(bus, dev, func);
            if cfg.read16(bdf, regs::VENDOR_ID) == 0xFFFF || cfg.read8(bdf, regs::HEADER_TYPE) & 0x7F != 1 {
                continue;
            }
            let buses = cfg.read32(bdf, bridge_regs::BUS_NUMBERS);
            let (secondary, subordinate) = ((buses >> 8) as u8, (buses >> 16) as u8);
            if valid_buses(bus, secondary, subordinate) {
                // PCI-to-PCI Bridge 1.2 §3.2.5.3-3.2.5.4: the bridge forwards configuration cycles for
                // buses secondary..subordinate only, so bridges below it are numbered inside that range.
                // (And no further than the buses the configuration access reaches.)
                let inner_limit = subordinate.min(limit);
                let mut inside = u16::from(highest_numbered(e, secondary, inner_limit)) + 1;
                highest = highest.max(scan(cfg, e, secondary, inner_limit, &mut inside, out));
                highest = highest.max(subordinate);
                continue;
            }
            let secondary = match u8::try_from(*next) {
                Ok(s) if s <= limit => s,
                _ => {
                    out.problems.push(bdf, AssignError::OutOfBusNumbers);
                    continue;
                }
            };
            *next += 1;
            let latency = buses & 0xFF00_0000;
            let numbers = |subordinate: u8| latency | u32::from(subordinate) << 16 | u32::from(secondary) << 8 | u32::from(bus);
            // PCI-to-PCI Bridge 1.2 §3.2.5.2-3.2.5.4: Primary Bus Number = the bus the bridge is on, Secondary
            // = the bus directly behind it, Subordinate = the highest bus behind it. While the subtree is
            // scanned the subordinate is the last bus reachable, so configuration cycles for any bus below
            // are forwarded; then it is narrowed to what was found.
            cfg.write32(bdf, bridge_regs::BUS_NUMBERS, numbers(limit));
            let subordinate = scan(cfg, e, secondary, limit, next, out);
            cfg.write32(bdf, bridge_regs::BUS_NUMBERS, numbers(subordinate));
            out.numbered += 1;
            highest = highest.max(subordinate);
        }
    }
    highest
}

/// Reads a bridge's windows and which of them it implements. Registers are probed by writing only when the
/// boot firmware opened no window (a window the firmware set up is never disturbed).
pub fn bridge_info(cfg: &impl ConfigRegion, f: &Function) -> Option<BridgeInfo> {
    use bridge_regs::*;
    let (secondary, _) = f.bridge_buses?;
    let bdf = f.bdf;
    let io_base = cfg.read8(bdf, IO_BASE);
    let io32 = io_base & 0xF == 1;
    let upper = if io32 { cfg.read32(bdf, IO_UPPER) } else { 0 };
    let io_start = u64::from(io_base & 0xF0) << 8 | u64::from(upper & 0xFFFF) << 16;
    let io_last = u64::from(cfg.read8(bdf, IO_LIMIT) & 0xF0) << 8 | 0xFFF | u64::from(upper >> 16) << 16;
    let mem_start = u64::from(cfg.read16(bdf, MEM_BASE) & 0xFFF0) << 16;
    let mem_last = u64::from(cfg.read16(bdf, MEM_LIMIT) & 0xFFF0) << 16 | 0xF_FFFF;
    let pref_base = cfg.read16(bdf, PREF_BASE);
    let pref64 = pref_base & 0xF == 1;
    let (pb_hi, pl_hi) = if pref64 { (cfg.read32(bdf, PREF_BASE_UPPER), cfg.read32(bdf, PREF_LIMIT_UPPER)) } else { (0, 0) };
    let pref_start = u64::from(pref_base & 0xFFF0) << 16 | u64::from(pb_hi) << 32;
    let pref_last = u64::from(cfg.read16(bdf, PREF_LIMIT) & 0xFFF0) << 16 | 0xF_FFFF | u64::from(pl_hi) << 32;
    // A window is the firmware's when open and not at 0 (the reset value of base and limit, 0/0, reads as
    // an open window at address 0, which no firmware assigns).
    let open = |start: u64, last: u64| (start != 0 && start <= last).then_some(AddressRange { start, last });
    let firmware_windows = [open(io_start, io_last), open(mem_start, mem_last), open(pref_start, pref_last)];
    let mut info = BridgeInfo { bdf, secondary, io: true, pref: true, pref64, firmware_windows };
    if info.managed() {
        // §3.2.5.6/§3.2.5.9: a bridge without an I/O or prefetchable window implements the registers as
        // read-only zero; one with them keeps the bits written. The probe's value is left: with the limit
        // at 0 it is a closed window (base above limit), which is what [`apply`] writes for a window it
        // does not use; every write here costs QEMU an address-space rebuild.
        info.io = io_base != 0 || {
            cfg.write8(bdf, IO_BASE, 0xF0);
            cfg.read8(bdf, IO_BASE) != 0
        };
        info.pref = pref_base != 0 || {
            cfg.write16(bdf, PREF_BASE, 0xFFF0);
            let v = cfg.read16(bdf, PREF_BASE);
            info.pref64 = v & 0xF == 1;
            v != 0
        };
    }
    Some(info)
}

/// Writes `plan`: every bridge's windows first, then each function's BARs with its decoding off, then its
/// decoding on (Memory Space for a function whose memory BARs all have addresses, I/O Space likewise), and
/// last the bridges' Command (both and Bus Master, so they forward their children's accesses and MSI
/// writes). On a bridge those bits also switch forwarding, so one the boot firmware turned on stays on, and
/// one msifw needs for an open window is set; a bridge's own BAR left at 0 is otherwise not decoded. Updates
/// `e`'s BAR addresses; returns each bridge BAR that still decodes at 0 ([`AssignError::OwnBarDecodesAtZero`]).
pub fn apply(cfg: &impl ConfigRegion, e: &mut Enumeration, plan: &Plan) -> Problems {
    use regs::command::{BUS_MASTER, IO, MEMORY};
    let mut problems = Problems::default();
    // Windows first, while nothing below forwards or decodes yet: each write of a window or Command
    // register makes QEMU rebuild its address spaces, and that costs less the fewer regions are mapped.
    for w in plan.bridges.iter() {
        program_bridge(cfg, w);
    }
    for f in e.functions.iter_mut() {
        let mut assignments = plan.bars.iter().filter(|a| a.bdf == f.bdf).peekable();
        if assignments.peek().is_none() {
            continue;
        }
        let command = cfg.read16(f.bdf, regs::COMMAND);
        // PCI 3.0 §6.2.5.1: a BAR is written while decoding is off, so the function never answers at a
        // half-written address (the upper half of a 64-bit BAR is written after the lower).
        if command & (IO | MEMORY) != 0 {
            cfg.write16(f.bdf, regs::COMMAND, command & !(IO | MEMORY));
        }
        for a in assignments {
            let at = regs::BAR0 + u16::from(a.index) * 4;
            cfg.write32(f.bdf, at, a.address as u32);
            if a.kind == BarKind::Mem64 {
                cfg.write32(f.bdf, at + 4, (a.address >> 32) as u32);
            }
            if let Some(bar) = f.bars.iter_mut().find(|b| b.index == a.index) {
                bar.address = a.address;
            }
        }
        // A bridge msifw programs gets its Command below, once.
        if plan.bridges.iter().any(|w| w.bdf == f.bdf) {
            continue;
        }
        let has = |io: bool| f.bars.iter().any(|b| (b.kind == BarKind::Io) == io);
        let all = |io: bool| f.bars.iter().filter(|b| (b.kind == BarKind::Io) == io).all(|b| b.assigned());
        let mut enable = 0;
        if has(false) && all(false) {
            enable |= MEMORY;
        }
        if has(true) && all(true) {
            enable |= IO;
        }
        if f.bridge_buses.is_some() {
            // PCI-to-PCI Bridge 1.2 §3.2.2: on a type 1 header these bits also switch forwarding through the
            // windows, which the boot firmware set up for the devices below: what it turned on stays on.
            enable |= command & (IO | MEMORY);
            own_bars_at_zero(f, enable, &mut problems);
        }
        // PCI 3.0 §6.2.2: Command bits 0 (I/O Space) and 1 (Memory Space) turn decoding of the BARs on.
        cfg.write16(f.bdf, regs::COMMAND, (command & !(IO | MEMORY)) | enable);
    }
    for w in plan.bridges.iter() {
        let command = cfg.read16(w.bdf, regs::COMMAND);
        // An own BAR with no address (the plan found no room for it) cannot be moved to "some unused
        // address": every window is full, and outside them an address may be RAM, the chipset or another
        // host bridge's. So its space stays off unless the window of that space is open: then cutting off
        // the devices below would be certain harm, while a BAR at 0 only shadows what lives there (on QEMU
        // RAM outranks the PCI address space for memory; I/O 0 is the ISA DMA controller, which msifw does
        // not use), and it is reported.
        let unplaced = |io: bool| e.get(w.bdf).is_some_and(|f| f.bars.iter().any(|b| (b.kind == BarKind::Io) == io && !b.assigned()));
        let mut enable = BUS_MASTER;
        if w.io.is_some() || !unplaced(true) {
            enable |= IO;
        }
        if w.mem.is_some() || w.pref.is_some() || !unplaced(false) {
            enable |= MEMORY;
        }
        if let Some(f) = e.get(w.bdf) {
            own_bars_at_zero(f, enable, &mut problems);
        }
        // PCI-to-PCI Bridge 1.2 §3.2.2 (Command): I/O and Memory Space enable forwarding through the
        // windows downstream (and decoding of the bridge's own BARs); Bus Master enables forwarding of the
        // secondary side's memory writes (device MSI messages) upstream.
        cfg.write16(w.bdf, regs::COMMAND, (command & !(IO | MEMORY)) | enable);
    }
    problems
}

/// Reports each BAR of bridge `f` that has no address but decodes at 0 under Command bits `enable`.
fn own_bars_at_zero(f: &Function, enable: u16, problems: &mut Problems) {
    use regs::command::{IO, MEMORY};
    for b in f.bars.iter().filter(|b| !b.assigned()) {
        let (bit, space) = if b.kind == BarKind::Io { (IO, Space::Io) } else { (MEMORY, Space::Mem) };
        if enable & bit != 0 {
            problems.push(f.bdf, AssignError::OwnBarDecodesAtZero { index: b.index, space });
        }
    }
}

/// Writes one bridge's windows. A bridge still forwarding (Command I/O or Memory Space set) gets Linux's
/// order (`pci_setup_bridge_io/mmio/mmio_pref`: each range closed through its upper half first, so it never
/// covers a wrong range in between). One that forwards nothing yet gets each register once, and only if it
/// changes: every write of a window register makes QEMU rebuild its whole address space (32 root ports:
/// 270 -> 60 ms).
fn program_bridge(cfg: &impl ConfigRegion, w: &BridgeWindows) {
    use bridge_regs::*;
    let live = cfg.read16(w.bdf, regs::COMMAND) & (regs::command::IO | regs::command::MEMORY) != 0;
    // §3.2.5.6 and §3.2.5.11: I/O Base/Limit hold address bits 15:12 (the dword at 0x1C also holds the
    // Secondary Status, whose bits are write-1-to-clear: 0 leaves them), the upper registers bits 31:16. A
    // window is closed by a base above its limit.
    let (io, io_upper) = match w.io {
        Some(r) => (((r.start >> 8) & 0xF0) as u32 | (((r.last >> 8) & 0xF0) as u32) << 8, (r.start >> 16) as u32 & 0xFFFF | ((r.last >> 16) as u32) << 16),
        None => (0x00F0, 0),
    };
    // §3.2.5.8: Memory Base/Limit hold address bits 31:20.
    let mem = match w.mem {
        Some(r) => ((r.start >> 16) & 0xFFF0) as u32 | (((r.last >> 16) & 0xFFF0) as u32) << 16,
        None => 0x0000_FFF0,
    };
    // §3.2.5.9-3.2.5.10: Prefetchable Base/Limit bits 31:20, the upper registers bits 63:32.
    let (pref, pref_base_upper, pref_limit_upper) = match w.pref {
        Some(r) => (((r.start >> 16) & 0xFFF0) as u32 | (((r.last >> 16) & 0xFFF0) as u32) << 16, (r.start >> 32) as u32, (r.last >> 32) as u32),
        None => (0x0000_FFF0, 0, 0),
    };
    // The bits each register implements (the rest are type bits or, at 0x1C, the Secondary Status).
    let write = |offset: u16, value: u32| {
        let mask = match offset {
            IO_BASE => 0x0000_F0F0,
            MEM_BASE | PREF_BASE => 0xFFF0_FFF0,
            _ => u32::MAX,
        };
        if live || cfg.read32(w.bdf, offset) & mask != value & mask {
            cfg.write32(w.bdf, offset, value);
        }
    };
    if live {
        cfg.write32(w.bdf, IO_UPPER, 0x0000_FFFF);
    }
    write(IO_BASE, io);
    write(IO_UPPER, io_upper);
    write(MEM_BASE, mem);
    if live {
        cfg.write32(w.bdf, PREF_LIMIT_UPPER, 0);
    }
    write(PREF_BASE, pref);
    write(PREF_BASE_UPPER, pref_base_upper);
    write(PREF_LIMIT_UPPER, pref_limit_upper);
}

#[cfg(test)]
mod tests {
    use super::super::bar::Bar;
    use super::super::caps::CapList;
    use super::super::config::sim::SimConfig;
    use super::super::enumerate;
    use super::*;
    use std::vec::Vec as StdVec;

    fn r(start: u64, last: u64) -> AddressRange {
        AddressRange { start, last }
    }

    fn bar(index: u8, kind: BarKind, size: u64) -> Bar {
        Bar { index, kind, prefetchable: false, address: 0, size }
    }

    fn function(bdf: Bdf, bars: &[Bar], bridge_buses: Option<(u8, u8)>) -> Function {
        Function {
            bdf,
            vendor: 0x1234,
            device: 0x5678,
            class: 0,
            revision: 0,
            header_type: if bridge_buses.is_some() { 1 } else { 0 },
            bars: bars.iter().copied().collect(),
            caps: CapList::default(),
            interrupt_pin: 0,
            interrupt_line: 0,
            bridge_buses,
            problems: StdVec::new(),
        }
    }

    fn enumeration(functions: StdVec<Function>) -> Enumeration {
        let mut e = Enumeration::new();
        for f in functions {
            e.functions.push(f);
        }
        e
    }

    /// The default platform's endpoints on bus 0 (e1000e, nvme, edu, ICH9 SATA), all unassigned as qboot
    /// leaves them.
    fn default_platform() -> Enumeration {
        enumeration(vec![
            function(
                Bdf::new(0, 2, 0),
                &[bar(0, BarKind::Mem32, 128 << 10), bar(1, BarKind::Mem32, 128 << 10), bar(2, BarKind::Io, 32), bar(3, BarKind::Mem32, 16 << 10)],
                None,
            ),
            function(Bdf::new(0, 3, 0), &[bar(0, BarKind::Mem64, 16 << 10)], None),
            function(Bdf::new(0, 4, 0), &[bar(0, BarKind::Mem32, 1 << 20)], None),
            function(Bdf::new(0, 0x1f, 2), &[bar(4, BarKind::Io, 32), bar(5, BarKind::Mem32, 4 << 10)], None),
        ])
    }

    fn q35_windows() -> Windows {
        let mut w = Windows::default();
        w.io.push(r(0x1000, 0xFFFF));
        w.mem32.push(r(0x1000_0000, 0xAFFF_FFFF));
        w.mem32.push(r(0xC000_0000, 0xFEBF_FFFF));
        w.mem64.push(r(1 << 32, 0x8_FFFF_FFFF));
        w
    }

    /// Every assignment naturally aligned, inside a window, and no two overlapping.
    fn assert_sane(e: &Enumeration, p: &Plan, w: &Windows) {
        let mut ranges: StdVec<(AddressRange, bool)> = StdVec::new();
        for a in p.bars.iter() {
            let f = e.functions.iter().find(|f| f.bdf == a.bdf).unwrap();
            let b = f.bar(a.index).unwrap();
            assert_eq!(a.address % b.size, 0, "{a:?} not aligned to {:#x}", b.size);
            let range = r(a.address, a.address + b.size - 1);
            let io = b.kind == BarKind::Io;
            for (other, other_io) in ranges.iter() {
                assert!(io != *other_io || !range.overlaps(other), "{range:?} overlaps {other:?}");
            }
            ranges.push((range, io));
        }
        let in_windows = |range: &AddressRange, io: bool| {
            let lists: StdVec<&AddressRange> = if io { w.io.iter().collect() } else { w.mem32.iter().chain(w.mem64.iter()).collect() };
            lists.iter().any(|win| win.start <= range.start && range.last <= win.last)
        };
        for w in p.bridges.iter() {
            for (i, win) in [w.io, w.mem, w.pref].iter().enumerate() {
                if let Some(win) = win {
                    let gran = if i == 0 { IO_GRANULARITY } else { MEM_GRANULARITY };
                    assert_eq!((win.start % gran, (win.last + 1) % gran), (0, 0), "bridge window {win:?} granularity");
                }
            }
        }
        let top: StdVec<_> = ranges.iter().filter(|(r, io)| in_windows(r, *io)).collect();
        assert!(!top.is_empty());
    }

    #[test]
    fn default_platform_is_placed_aligned_in_the_windows_largest_first() {
        let e = default_platform();
        let w = q35_windows();
        let p = plan(&e, &[], 0, w.clone());
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.bars.len(), 8, "every BAR placed");
        assert_sane(&e, &p, &w);
        // Largest first: edu's 1 MiB BAR opens the first memory window, the I/O BARs the I/O window.
        assert_eq!(p.bars.iter().find(|a| a.bdf == Bdf::new(0, 4, 0)).unwrap().address, 0x1000_0000);
        let io: StdVec<u64> = p.bars.iter().filter(|a| a.kind == BarKind::Io).map(|a| a.address).collect();
        assert_eq!(io, [0x1000, 0x1020]);
        for a in p.bars.iter().filter(|a| a.kind != BarKind::Io) {
            assert!((0x1000_0000..0x1020_0000).contains(&a.address), "{a:?} packed at the window's start");
        }
    }

    #[test]
    fn assigned_bars_stay_and_their_ranges_are_not_reused() {
        let mut e = default_platform();
        // The boot firmware placed edu's BAR at the first window's start and e1000e's I/O BAR at 0x1000.
        e.functions[2].bars[0].address = 0x1000_0000;
        e.functions[0].bars[2].address = 0x1000;
        let w = q35_windows();
        let p = plan(&e, &[], 0, w.clone());
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert!(p.bars.iter().all(|a| a.bdf != Bdf::new(0, 4, 0)), "an assigned BAR is never moved");
        assert_eq!(p.bars.len(), 6);
        for a in p.bars.iter() {
            assert!(a.address >= 0x1010_0000 || (a.kind == BarKind::Io && a.address >= 0x1020), "{a:?} reuses a firmware range");
        }
        assert!(!needed(&enumeration(vec![function(Bdf::new(0, 4, 0), &[Bar { address: 0xFEA0_0000, ..bar(0, BarKind::Mem32, 4096) }], None)])));
        assert!(needed(&e));
    }

    #[test]
    fn out_of_space_is_a_problem_per_bar_and_the_rest_is_placed() {
        let e = default_platform();
        let mut w = Windows::default();
        w.io.push(r(0x1000, 0x101F)); // room for one 32-byte I/O BAR
        w.mem32.push(r(0x1000_0000, 0x100F_FFFF)); // 1 MiB: edu fits, the rest does not
        let p = plan(&e, &[], 0, w.clone());
        assert_eq!(p.bars.iter().filter(|a| a.kind == BarKind::Io).count(), 1);
        assert!(p.problems.iter().any(|(bdf, e)| *bdf == Bdf::new(0, 2, 0) && matches!(e, AssignError::NoRoom { index: Some(0), space: Space::Mem, size: 0x20000 })));
        assert!(p.problems.iter().any(|(_, e)| matches!(e, AssignError::NoRoom { space: Space::Io, .. })));
        assert_sane(&e, &p, &w);
        // Zero-sized (no) windows: nothing placed, every BAR reported, no panic.
        let p = plan(&e, &[], 0, Windows::default());
        assert!(p.bars.is_empty());
        assert_eq!(p.problems.len(), 8);
        assert!(p.problems.iter().all(|(_, e)| e.to_string().contains("fits no free window")));
    }

    #[test]
    fn sixty_four_bit_bars_go_above_4_gib_only_when_below_is_full() {
        let e = enumeration(vec![
            function(Bdf::new(0, 5, 0), &[Bar { prefetchable: true, ..bar(0, BarKind::Mem64, 512 << 20) }], None),
            function(Bdf::new(0, 6, 0), &[bar(0, BarKind::Mem32, 512 << 20)], None),
        ]);
        let mut w = Windows::default();
        w.mem32.push(r(0xC000_0000, 0xDFFF_FFFF));
        w.mem64.push(r(1 << 32, (1 << 33) - 1));
        let p = plan(&e, &[], 0, w);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        let at = |d| p.bars.iter().find(|a| a.bdf.dev == d).unwrap().address;
        assert_eq!(at(6), 0xC000_0000, "the 32-bit BAR takes the room below 4 GiB");
        assert_eq!(at(5), 1 << 32, "the 64-bit BAR of the same size goes above");
    }

    fn root_port(bdf: Bdf, secondary: u8) -> (Function, BridgeInfo) {
        let f = function(bdf, &[], Some((secondary, secondary)));
        let info = BridgeInfo { bdf, secondary, io: true, pref: true, pref64: true, firmware_windows: [None; 3] };
        (f, info)
    }

    #[test]
    fn seventy_root_ports_each_get_a_memory_window() {
        // 70 ports with an edu each (the plan handled 64 bridges and 128 requests per bus before; the
        // rest were a problem and stayed unassigned).
        let mut functions = StdVec::new();
        let mut infos = StdVec::new();
        for i in 0..70u8 {
            let (port, info) = root_port(Bdf::new(0, 2 + i / 8, i % 8), i + 1);
            functions.push(port);
            infos.push(info);
            functions.push(function(Bdf::new(i + 1, 0, 0), &[bar(0, BarKind::Mem32, 1 << 20)], None));
        }
        let e = enumeration(functions);
        let w = q35_windows();
        let p = plan(&e, &infos, 0, w.clone());
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!((p.bars.len(), p.bridges.len()), (70, 70));
        assert!(p.bridges.iter().all(|b| b.mem.is_some()));
        assert_sane(&e, &p, &w);
    }

    #[test]
    fn windows_cut_into_many_pieces_keep_every_piece() {
        // 40 reserved pages in one window leave 41 pieces (16 were kept before, the smallest dropped).
        let mut w = q35_windows();
        for i in 0..40u64 {
            w.exclude(Space::Mem, r(0x1000_0000 + i * 0x10_0000 + 0x8_0000, 0x1000_0000 + i * 0x10_0000 + 0x8_0FFF));
        }
        assert_eq!(w.mem32.len(), 42);
    }

    #[test]
    fn bridge_windows_cover_what_is_below_with_bridge_granularity() {
        let (port, info) = root_port(Bdf::new(0, 0x10, 0), 1);
        let mut functions = default_platform().functions.into_iter().collect::<StdVec<_>>();
        functions.push(port);
        // An e1000e behind the port.
        functions.push(function(
            Bdf::new(1, 0, 0),
            &[bar(0, BarKind::Mem32, 128 << 10), bar(1, BarKind::Mem32, 128 << 10), bar(2, BarKind::Io, 32), bar(3, BarKind::Mem32, 16 << 10)],
            None,
        ));
        let e = enumeration(functions);
        let w = q35_windows();
        let p = plan(&e, &[info], 0, w.clone());
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.bars.len(), 12);
        assert_sane(&e, &p, &w);
        let bw = p.bridges[0];
        let mem = bw.mem.expect("memory window");
        let io = bw.io.expect("I/O window");
        assert_eq!(mem.len(), 1 << 20, "272 KiB below rounds up to 1 MiB");
        assert_eq!(io.len(), 4096);
        assert_eq!(bw.pref, None, "nothing prefetchable below: window closed");
        for a in p.bars.iter().filter(|a| a.bdf.bus == 1) {
            let range = if a.kind == BarKind::Io { io } else { mem };
            assert!(range.start <= a.address && a.address < range.last, "{a:?} inside {range:?}");
        }
        // The bridge's window does not overlap any bus-0 BAR.
        for a in p.bars.iter().filter(|a| a.bdf.bus == 0 && a.kind != BarKind::Io) {
            assert!(!(mem.start..=mem.last).contains(&a.address), "{a:?} inside the bridge window");
        }
    }

    /// A root port (bus 1) with a switch port below it (bus 2) holding one device.
    fn nested(parent: BridgeInfo, device_bars: &[Bar]) -> (Enumeration, [BridgeInfo; 2]) {
        let (port, _) = root_port(Bdf::new(0, 0x10, 0), 1);
        let (down, child) = root_port(Bdf::new(1, 0, 0), 2);
        let e = enumeration(vec![port, down, function(Bdf::new(2, 0, 0), device_bars, None)]);
        (e, [parent, child])
    }

    #[test]
    fn a_prefetchable_window_below_a_bridge_without_one_folds_into_its_memory_window_below_4_gib() {
        let (_, mut parent) = root_port(Bdf::new(0, 0x10, 0), 1);
        parent.pref = false;
        parent.pref64 = false;
        let (e, bridges) = nested(parent, &[Bar { prefetchable: true, ..bar(0, BarKind::Mem64, 1 << 20) }]);
        let w = q35_windows();
        let p = plan(&e, &bridges, 0, w.clone());
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_sane(&e, &p, &w);
        let parent_w = p.bridges.iter().find(|b| b.bdf == parent.bdf).unwrap();
        let child_w = p.bridges.iter().find(|b| b.bdf == bridges[1].bdf).unwrap();
        assert_eq!(parent_w.pref, None, "the parent implements no prefetchable window (its registers read 0): {parent_w:?}");
        let mem = parent_w.mem.expect("the child's prefetchable window goes in the parent's memory window");
        assert!(mem.last < 1 << 32, "a non-prefetchable window is 32-bit: {mem:?}");
        let pref = child_w.pref.expect("the child keeps its prefetchable window");
        assert!(mem.start <= pref.start && pref.last <= mem.last, "child {pref:?} inside parent {mem:?}");
        assert_eq!(child_w.mem, None, "the child's memory window is not overwritten by its prefetchable one");
        let dev = p.bars.iter().find(|a| a.bdf == Bdf::new(2, 0, 0)).expect("the device's BAR is placed");
        assert!(pref.start <= dev.address && dev.address <= pref.last);
    }

    #[test]
    fn an_io_window_below_a_bridge_without_one_is_a_problem_not_a_window() {
        let (_, mut parent) = root_port(Bdf::new(0, 0x10, 0), 1);
        parent.io = false;
        let (e, bridges) = nested(parent, &[bar(0, BarKind::Io, 32), bar(1, BarKind::Mem32, 4096)]);
        let p = plan(&e, &bridges, 0, q35_windows());
        let parent_w = p.bridges.iter().find(|b| b.bdf == parent.bdf).unwrap();
        assert_eq!(parent_w.io, None, "the parent implements no I/O window (its registers read 0): {parent_w:?}");
        assert!(parent_w.mem.is_some());
        // The child's window is the cause; the device's BAR is reported too, being left unassigned.
        assert_eq!(
            p.problems.as_slice(),
            &[(bridges[1].bdf, AssignError::NoBridgeWindow { index: None, space: Space::Io }), (Bdf::new(2, 0, 0), AssignError::NoRoom { index: Some(0), space: Space::Io, size: 32 })]
        );
        assert!(p.problems[0].1.to_string().contains("bridge io window"), "{}", p.problems[0].1);
        assert!(p.bars.iter().all(|a| a.kind != BarKind::Io), "no I/O BAR placed where it cannot be reached: {:?}", p.bars);
    }

    #[test]
    fn bars_on_another_root_bus_name_that_root_bus() {
        // An expander's root bus 0x40 with a function on it and one below its root port: neither is
        // "reached by no bridge" nor "below a firmware bridge"; both lie outside what msifw assigns.
        let (port, info) = root_port(Bdf::new(0x40, 0, 0), 0x41);
        let mut e = enumeration(vec![
            port,
            function(Bdf::new(0x40, 1, 0), &[bar(0, BarKind::Mem32, 4096)], None),
            function(Bdf::new(0x41, 0, 0), &[bar(0, BarKind::Mem32, 4096)], None),
        ]);
        e.root_buses.push(0);
        e.root_buses.push(0x40);
        let p = plan(&e, &[info], 0, q35_windows());
        let other = |bdf| (bdf, AssignError::OtherRootBus { index: 0, bus: 0x40, root: 0 });
        assert!(p.problems.contains(&other(Bdf::new(0x40, 1, 0))), "{:?}", p.problems);
        assert!(p.problems.contains(&other(Bdf::new(0x41, 0, 0))), "{:?}", p.problems);
        assert!(other(Bdf::new(0x41, 0, 0)).1.to_string().contains("in root bus 0x40's tree"));
    }

    #[test]
    fn bars_below_a_firmware_bridge_are_reported_not_moved() {
        let (port, mut info) = root_port(Bdf::new(0, 0x10, 0), 1);
        info.firmware_windows[1] = Some(r(0xFE00_0000, 0xFE0F_FFFF));
        let e = enumeration(vec![port, function(Bdf::new(1, 0, 0), &[bar(0, BarKind::Mem32, 4096)], None), function(Bdf::new(7, 0, 0), &[bar(0, BarKind::Mem32, 4096)], None)]);
        let p = plan(&e, &[info], 0, q35_windows());
        assert!(p.bars.is_empty() && p.bridges.is_empty());
        assert_eq!(
            p.problems.as_slice(),
            &[(Bdf::new(1, 0, 0), AssignError::BelowFirmwareBridge { index: 0 }), (Bdf::new(7, 0, 0), AssignError::Unreachable { index: 0 })]
        );
    }

    #[test]
    fn windows_from_crs_and_from_the_memory_map() {
        let mut h = HostWindows::default();
        h.io.push(r(0, 0xCF7));
        h.io.push(r(0xD00, 0xFFFF));
        h.io_consumed.push(r(0xCF8, 0xCFF));
        h.mem.push(r(0xA_0000, 0xB_FFFF));
        h.mem.push(r(0xC000_0000, 0xFEBF_FFFF));
        h.mem.push(r(1 << 32, 0x8_FFFF_FFFF));
        let w = Windows::from_host(&h);
        assert_eq!(w.io.as_slice(), &[r(0x1000, 0xADFF), r(0xB040, 0xFFFF)], "the chipset ports are left out");
        assert_eq!(w.mem32.as_slice(), &[r(0xC000_0000, 0xFEBF_FFFF)], "legacy VGA space is not handed out");
        assert_eq!(w.mem64.as_slice(), &[r(1 << 32, 0x8_FFFF_FFFF)]);
        // QEMU q35, 256 MiB: RAM to 0x0FFE0000, ACPI tables reserved after it, MMCONFIG and chipset reserved.
        let map = [
            MemRegion { addr: 0, size: 0x9_FC00, kind: 1 },
            MemRegion { addr: 0x10_0000, size: 0x0FEE_0000, kind: 1 },
            MemRegion { addr: 0x0FFE_0000, size: 0x2_0000, kind: 2 },
            MemRegion { addr: 0xB000_0000, size: 0x1000_0000, kind: 2 },
            MemRegion { addr: 0xFED1_C000, size: 0x4000, kind: 2 },
            MemRegion { addr: 0xFFFC_0000, size: 0x4_0000, kind: 2 },
        ];
        let mut w = Windows::from_memory_map(&map);
        w.exclude_memory_map(&map);
        assert_eq!(w.mem32.as_slice(), &[r(0x1000_0000, 0xAFFF_FFFF), r(0xC000_0000, 0xFEBF_FFFF)]);
        assert_eq!(w.io.as_slice(), &[r(0x1000, 0xADFF), r(0xB040, 0xFFFF)], "the chipset ports are left out");
        // Overlapping exclusions and one covering a whole window.
        w.exclude(Space::Mem, r(0xA000_0000, 0xC00F_FFFF));
        w.exclude(Space::Mem, r(0x9000_0000, 0xA7FF_FFFF));
        assert_eq!(w.mem32.as_slice(), &[r(0x1000_0000, 0x8FFF_FFFF), r(0xC010_0000, 0xFEBF_FFFF)]);
        w.exclude(Space::Mem, r(0, u64::MAX));
        assert!(w.mem32.is_empty());
        // RAM up to the hole's end leaves no memory window.
        assert!(Windows::from_memory_map(&[MemRegion { addr: 0, size: HOLE_END_32, kind: 1 }]).mem32.is_empty());
    }

    #[test]
    fn io_windows_keep_clear_of_qemu_pc_hotplug_gpe_and_pm_ports() {
        // QEMU pc's PCI0._CRS hands out 0x0D00-0xFFFF, over the ports its own DSDT uses (PCST 0xAE00,
        // PRST 0xAF00, GPE0 0xAFE0) and the PIIX4 PM block at 0xB000.
        let mut h = HostWindows::default();
        h.io.push(r(0, 0xCF7));
        h.io.push(r(0xD00, 0xFFFF));
        let from_crs = Windows::from_host(&h);
        let from_map = Windows::from_memory_map(&[MemRegion { addr: 0, size: 256 << 20, kind: 1 }]);
        for (w, source) in [(from_crs, "_CRS"), (from_map, "memory map")] {
            for port in [0xAE00, 0xAE13, 0xAF00, 0xAF1F, 0xAFE0, 0xAFE3, 0xB000, 0xB03F] {
                assert!(!w.io.iter().any(|i| i.start <= port && port <= i.last), "{port:#x} handed out from the {source}: {:?}", w.io);
            }
            assert_eq!(w.io.as_slice(), &[r(0x1000, 0xADFF), r(0xB040, 0xFFFF)], "from the {source}");
        }
    }

    fn sim_bridge(sim: &SimConfig, bdf: Bdf, secondary: u8, subordinate: u8) {
        sim.add(bdf, 0x1b36, 0x000c, 0x060400);
        sim.poke(bdf, 0x0E, &[0x01]);
        sim.poke(bdf, 0x19, &[secondary, subordinate]);
    }

    #[test]
    fn bridges_without_bus_numbers_are_numbered_depth_first_and_then_enumerated() {
        let sim = SimConfig::default();
        sim.add(Bdf::new(0, 0, 0), 0x8086, 0x29c0, 0x060000);
        // A firmware-numbered bridge to bus 1..2, and two unnumbered ones; devices wait on buses 3, 4 and 5.
        sim_bridge(&sim, Bdf::new(0, 1, 0), 1, 2);
        sim_bridge(&sim, Bdf::new(0, 2, 0), 0, 0);
        sim_bridge(&sim, Bdf::new(0, 3, 0), 0, 0);
        sim_bridge(&sim, Bdf::new(3, 0, 0), 0, 0);
        sim.add(Bdf::new(4, 0, 0), 0x1234, 0x11e8, 0x00ff00);
        sim.add(Bdf::new(5, 0, 0), 0x1234, 0x11e8, 0x00ff00);
        let mut e = Enumeration::new();
        enumerate::enumerate(&sim, 0, 255, &mut e);
        assert!(numbering_needed(&e));
        let n = number_buses(&sim, &e, 0, 255);
        assert_eq!(n.numbered, 3);
        assert!(n.problems.is_empty());
        // 00:02.0 -> bus 3 (its bridge 03:00.0 -> bus 4), 00:03.0 -> bus 5.
        assert_eq!(sim.read32(Bdf::new(0, 2, 0), 0x18) & 0xFF_FFFF, 0x04_0300);
        assert_eq!(sim.read32(Bdf::new(3, 0, 0), 0x18) & 0xFF_FFFF, 0x04_0403);
        assert_eq!(sim.read32(Bdf::new(0, 3, 0), 0x18) & 0xFF_FFFF, 0x05_0500);
        enumerate::enumerate(&sim, 0, 255, &mut e);
        assert!(!numbering_needed(&e));
        assert!(e.get(Bdf::new(4, 0, 0)).is_some() && e.get(Bdf::new(5, 0, 0)).is_some());
        // Out of bus numbers: a typed problem, nothing written beyond the range.
        let sim = SimConfig::default();
        sim_bridge(&sim, Bdf::new(0, 2, 0), 0, 0);
        enumerate::enumerate(&sim, 0, 0, &mut e);
        let n = number_buses(&sim, &e, 0, 0);
        assert_eq!(n.problems.as_slice(), &[(Bdf::new(0, 2, 0), AssignError::OutOfBusNumbers)]);
    }

    #[test]
    fn a_chain_of_sixty_bridges_is_numbered_to_the_end() {
        // Numbering once stopped silently 32 bridges deep: the rest of the chain and the device at its end
        // were never found. The depth is bounded by the bus numbers only.
        let sim = SimConfig::default();
        sim.add(Bdf::new(0, 0, 0), 0x8086, 0x29c0, 0x060000);
        sim_bridge(&sim, Bdf::new(0, 1, 0), 0, 0);
        for bus in 1..60 {
            sim_bridge(&sim, Bdf::new(bus, 0, 0), 0, 0);
        }
        sim.add(Bdf::new(60, 0, 0), 0x1234, 0x11e8, 0x00ff00);
        let mut e = Enumeration::new();
        enumerate::enumerate(&sim, 0, 255, &mut e);
        let n = number_buses(&sim, &e, 0, 255);
        assert!(n.problems.is_empty());
        assert_eq!(n.numbered, 60);
        assert_eq!(sim.read32(Bdf::new(59, 0, 0), 0x18) & 0xFF_FFFF, 0x3C_3C3B);
        enumerate::enumerate(&sim, 0, 255, &mut e);
        assert!(!numbering_needed(&e));
        assert!(e.get(Bdf::new(60, 0, 0)).is_some());
    }

    #[test]
    fn bridges_below_a_firmware_numbered_bridge_are_numbered_inside_its_range_or_reported() {
        let sim = SimConfig::default();
        sim.add(Bdf::new(0, 0, 0), 0x8086, 0x29c0, 0x060000);
        // The firmware gave 00:01.0 buses 1..3 (bus 2 to its own 01:01.0) and 00:02.0 bus 4 alone; below each
        // an unnumbered bridge; another unnumbered one on the root bus.
        sim_bridge(&sim, Bdf::new(0, 1, 0), 1, 3);
        sim_bridge(&sim, Bdf::new(1, 1, 0), 2, 2);
        sim_bridge(&sim, Bdf::new(1, 0, 0), 0, 0);
        sim_bridge(&sim, Bdf::new(0, 2, 0), 4, 4);
        sim_bridge(&sim, Bdf::new(4, 0, 0), 0, 0);
        sim_bridge(&sim, Bdf::new(0, 3, 0), 0, 0);
        let mut e = Enumeration::new();
        enumerate::enumerate(&sim, 0, 255, &mut e);
        let n = number_buses(&sim, &e, 0, 255);
        // 01:00.0 takes bus 3, the free one in 1..3, where 00:01.0 forwards configuration cycles.
        assert_eq!(sim.read32(Bdf::new(1, 0, 0), 0x18) & 0xFF_FFFF, 0x03_0301, "numbered inside its parent's 1..3");
        // 04:00.0 has no bus left in 4..4: reported and left unnumbered, not given a bus 00:02.0 does not forward.
        assert_eq!(n.problems.as_slice(), &[(Bdf::new(4, 0, 0), AssignError::OutOfBusNumbers)]);
        assert_eq!(sim.read32(Bdf::new(4, 0, 0), 0x18) & 0xFF_FFFF, 0, "nothing written to a bridge without room");
        // The root bus's own bridge goes above every firmware range.
        assert_eq!(sim.read32(Bdf::new(0, 3, 0), 0x18) & 0xFF_FFFF, 0x05_0500);
        assert_eq!(n.numbered, 2);
        // The firmware's numbers are left as they are.
        assert_eq!(sim.read32(Bdf::new(0, 1, 0), 0x18) & 0xFF_FFFF, 0x03_0100);
        assert_eq!(sim.read32(Bdf::new(0, 2, 0), 0x18) & 0xFF_FFFF, 0x04_0400);
    }

    #[test]
    fn a_firmware_bridge_keeps_forwarding_when_one_of_its_own_bars_cannot_be_placed() {
        use regs::command::{IO, MEMORY};
        let sim = SimConfig::default();
        let port = Bdf::new(0, 0x10, 0);
        sim_bridge(&sim, port, 1, 1);
        sim.bar(port, 0, 0xFFFF_F000, 0); // 4 KiB memory
        sim.bar(port, 1, 0xFFFF_FFE1, 0x1); // 32 bytes I/O
        // The boot firmware opened I/O 0x2000-0x2FFF and memory 0xFE000000-0xFE0FFFFF and turned forwarding
        // on, but left the bridge's own BARs at 0.
        sim.poke(port, 0x1C, &[0x20, 0x20]);
        sim.poke(port, 0x20, &[0x00, 0xFE, 0x00, 0xFE]);
        sim.poke(port, 0x04, &(IO | MEMORY).to_le_bytes());
        let mut e = Enumeration::new();
        enumerate::enumerate(&sim, 0, 255, &mut e);
        let bridges: StdVec<BridgeInfo> = e.functions.iter().filter_map(|f| bridge_info(&sim, f)).collect();
        assert!(!bridges[0].managed());
        // No I/O room on the root bus: the I/O BAR cannot be placed, the memory BAR can.
        let mut w = q35_windows();
        w.io.clear();
        let p = plan(&e, &bridges, 0, w);
        assert_eq!(p.problems.as_slice(), &[(port, AssignError::NoRoom { index: Some(1), space: Space::Io, size: 32 })]);
        let problems = apply(&sim, &mut e, &p);
        assert_ne!(sim.read32(port, 0x10), 0, "the memory BAR is placed");
        assert_eq!(sim.read16(port, 0x04) & (IO | MEMORY), IO | MEMORY, "the firmware's forwarding to bus 1 is not cut off");
        assert_eq!(problems.as_slice(), &[(port, AssignError::OwnBarDecodesAtZero { index: 1, space: Space::Io })], "the BAR left at 0 is reported");
    }

    #[test]
    fn a_bridge_msifw_programs_decodes_no_unplaced_own_bar_at_0_unless_forwarding_needs_it() {
        use regs::command::{BUS_MASTER, IO, MEMORY};
        let sim = SimConfig::default();
        // 00:10.0 with a device below, 00:11.0 with nothing below; each has a 4 KiB BAR of its own and
        // 00:11.0 a 32-byte I/O BAR too.
        let (used, idle) = (Bdf::new(0, 0x10, 0), Bdf::new(0, 0x11, 0));
        sim_bridge(&sim, used, 1, 1);
        sim.bar(used, 0, 0xFFFF_F000, 0);
        sim_bridge(&sim, idle, 2, 2);
        sim.bar(idle, 0, 0xFFFF_F000, 0);
        sim.bar(idle, 1, 0xFFFF_FFE1, 0x1);
        let dev = sim.add(Bdf::new(1, 0, 0), 0x1234, 0x11e8, 0x00ff00);
        sim.bar(dev, 0, 0xFFFF_F000, 0);
        let mut e = Enumeration::new();
        enumerate::enumerate(&sim, 0, 255, &mut e);
        let bridges: StdVec<BridgeInfo> = e.functions.iter().filter_map(|f| bridge_info(&sim, f)).collect();
        assert!(bridges.iter().all(|b| b.managed()));
        // 1 MiB of memory and no I/O: 00:10.0's window takes it all; no bridge's own BAR is placed.
        let mut w = Windows::default();
        w.mem32.push(r(0x1000_0000, 0x100F_FFFF));
        let p = plan(&e, &bridges, 0, w);
        assert!(p.bridges.iter().any(|b| b.bdf == used && b.mem.is_some()));
        assert!(p.bars.iter().all(|a| a.bdf == dev), "{:?}", p.bars);
        let problems = apply(&sim, &mut e, &p);
        // 00:10.0 must forward memory to its device: Memory Space stays on and its own BAR0 decodes at 0,
        // reported. I/O Space is on as before (no I/O BAR of its own, its I/O window closed).
        assert_eq!(sim.read16(used, 0x04), IO | MEMORY | BUS_MASTER);
        assert_eq!(problems.as_slice(), &[(used, AssignError::OwnBarDecodesAtZero { index: 0, space: Space::Mem })]);
        // 00:11.0 forwards nothing: neither of its BARs may decode at 0.
        assert_eq!(sim.read16(idle, 0x04), BUS_MASTER, "an unplaced own BAR of a bridge that forwards nothing is not decoded");
    }

    #[test]
    fn apply_writes_bars_with_decoding_off_then_enables_it_and_programs_bridges() {
        let sim = SimConfig::default();
        let nvme = sim.add(Bdf::new(0, 3, 0), 0x1b36, 0x0010, 0x010802);
        sim.bar(nvme, 0, 0xFFFF_C004, 0x4);
        sim.bar(nvme, 1, 0xFFFF_FFFF, 0);
        let sata = sim.add(Bdf::new(0, 5, 0), 0x8086, 0x2922, 0x010601);
        sim.bar(sata, 4, 0xFFFF_FFE1, 0x1);
        sim.bar(sata, 5, 0xFFFF_F000, 0);
        sim_bridge(&sim, Bdf::new(0, 0x10, 0), 1, 1);
        let mut e = Enumeration::new();
        enumerate::enumerate(&sim, 0, 255, &mut e);
        assert!(needed(&e));
        let bridges: StdVec<BridgeInfo> = e.functions.iter().filter_map(|f| bridge_info(&sim, f)).collect();
        assert_eq!(bridges.len(), 1);
        assert!(bridges[0].managed());
        let w = q35_windows();
        let p = plan(&e, &bridges, 0, w.clone());
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_sane(&e, &p, &w);
        // As a boot firmware might leave it: Memory Space on with the BAR at 0.
        sim.poke(nvme, 0x04, &regs::command::MEMORY.to_le_bytes());
        sim.writes.borrow_mut().clear();
        apply(&sim, &mut e, &p);
        let nv = e.get(nvme).unwrap().bar(0).unwrap().address;
        assert_ne!(nv, 0);
        assert_eq!(sim.read32(nvme, 0x10) & !0xF, nv as u32);
        assert_eq!(sim.read16(nvme, 0x04), regs::command::MEMORY);
        assert_eq!(sim.read16(sata, 0x04), regs::command::MEMORY | regs::command::IO);
        let nvme_writes: StdVec<_> = sim.writes.borrow().iter().filter(|w| w.0 == nvme).map(|w| (w.1, w.3)).collect();
        assert_eq!(nvme_writes.first(), Some(&(0x04, 0)), "decoding off first");
        assert_eq!(nvme_writes.last(), Some(&(0x04, regs::command::MEMORY as u32)), "then on");
        // The bridge: every window closed (nothing below it), forwarding and Bus Master on.
        let port = Bdf::new(0, 0x10, 0);
        assert_eq!(sim.read16(port, 0x20), 0xFFF0);
        assert_eq!(sim.read16(port, 0x22), 0);
        assert_eq!(sim.read16(port, 0x04), 0x7);
        // Re-enumeration reads the addresses back: nothing left to do.
        enumerate::enumerate(&sim, 0, 255, &mut e);
        assert!(!needed(&e), "{:?}", e.functions.iter().map(|f| (f.bdf, f.bars.clone(), f.bridge_buses)).collect::<StdVec<_>>());
    }

    #[test]
    fn fadt_io_blocks_are_left_out_of_the_io_windows() {
        let mut w = Windows::from_memory_map(&[]);
        // A platform with its PM block in the middle of the PCI I/O range, as real chipsets may have.
        w.exclude_fixed_io(&[(0x1800, 0x80), (0x1880, 0x20), (0, 0)]);
        for r in w.io.iter() {
            assert!(r.last < 0x1800 || r.start > 0x189F, "{r:?} overlaps the FADT blocks");
        }
        assert!(w.io.iter().any(|r| r.start <= 0x17FF && r.last >= 0x17FF), "the ports below stay available");
        assert!(w.io.iter().any(|r| r.start <= 0x18A0 && r.last >= 0x18A0), "the ports above stay available");
    }


    #[test]
    fn problems_beyond_the_list_are_counted_not_lost() {
        let mut p = Problems::default();
        assert!(p.is_empty());
        for i in 0..MAX_PROBLEMS + 3 {
            p.push(Bdf::new(0, (i % 32) as u8, 0), AssignError::OutOfBusNumbers);
        }
        assert_eq!((p.as_slice().len(), p.dropped), (MAX_PROBLEMS, 3));
        assert!(!p.is_empty());
    }

}
