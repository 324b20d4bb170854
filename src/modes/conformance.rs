//! Interrupt-capability conformance of one function (issue 14 item 5): pure rules over configuration
//! space ([`ConfigRegion`]) and the function's memory BARs ([`BarMemory`]), so the host runs them on a
//! simulated function. Each rule names its spec section (PCI Express Base 6.0 chapter 7.7 for MSI and
//! MSI-X, which PCI Local Bus 3.0 6.8.1/6.8.2 define alike; PCI 3.0 6.2 for the header's INTx registers).
//!
//! The rules run on a quiet function: MSI and MSI-X Enable clear (a function found otherwise is not
//! checked), nothing written that could let it send a message. Every register a rule writes is one the
//! spec lets software write while the mode is disabled (a masked entry's message, Message Control with
//! Enable clear, the Interrupt Line) or one it says is read-only, and each is written back as it was read
//! whenever the write changed it.

use super::{msi, msix};
use crate::bus::pci::bar::BarKind;
use crate::bus::pci::caps;
use crate::bus::pci::enumerate::Function;
use crate::bus::pci::{regs, ConfigRegion};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// 32-bit accesses to the function's memory BARs (offsets from the BAR's start).
pub trait BarMemory {
    /// Reads the dword at `offset` of BAR `bar`; `None` when the BAR cannot be reached.
    fn read32(&mut self, bar: u8, offset: u64) -> Option<u32>;
    /// Writes the dword at `offset` of BAR `bar`; `None` when the BAR cannot be reached.
    fn write32(&mut self, bar: u8, offset: u64, value: u32) -> Option<()>;
}

/// Which of the function's interrupt mechanisms a rule is about (one report line each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// The MSI-X capability and its table and PBA.
    Msix,
    /// The MSI capability.
    Msi,
    /// The header's INTx registers.
    Intx,
}

/// A rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// MSI-X Enable and Function Mask at their reset value 0 when msifw first read them.
    MsixResetControl,
    /// Every MSI-X entry's Mask Bit at its reset value 1.
    MsixResetMasks,
    /// Table and PBA: valid BIR, an implemented memory BAR large enough, not overlapping.
    MsixPlacement,
    /// Table Size, Table Offset/BIR and PBA Offset/BIR are read-only.
    MsixReadOnly,
    /// A masked entry's Message Address, Upper Address and Data are writable and read back.
    MsixEntryMessage,
    /// The Pending Bits are read-only.
    MsixPbaReadOnly,
    /// The MSI structure fits the space and no other capability lies inside it.
    MsiLayout,
    /// Multiple Message Capable is not reserved; Multiple Message Enable is at or below it and takes its
    /// value.
    MsiMultipleMessage,
    /// Message Address and Data are writable and read back.
    MsiMessage,
    /// The Upper Address register exists (writable) exactly on 64-bit functions.
    MsiUpperAddress,
    /// Mask Bits writable and Pending Bits read-only, present exactly with Per-Vector Masking.
    MsiMaskPending,
    /// Interrupt Pin 0-4.
    IntxPin,
    /// Interrupt Line is read/write.
    IntxLine,
    /// Interrupt Disable (Command bit 10) is implemented.
    IntxDisable,
}

impl Rule {
    /// The short name on the report line.
    pub const fn name(self) -> &'static str {
        match self {
            Rule::MsixResetControl => "reset-control",
            Rule::MsixResetMasks => "reset-masks",
            Rule::MsixPlacement => "placement",
            Rule::MsixReadOnly => "read-only",
            Rule::MsixEntryMessage => "entry-message",
            Rule::MsixPbaReadOnly => "pba-read-only",
            Rule::MsiLayout => "layout",
            Rule::MsiMultipleMessage => "mme",
            Rule::MsiMessage => "message",
            Rule::MsiUpperAddress => "upper-address",
            Rule::MsiMaskPending => "mask-pending",
            Rule::IntxPin => "pin",
            Rule::IntxLine => "line",
            Rule::IntxDisable => "disable",
        }
    }

    /// The spec section that states it.
    pub const fn section(self) -> &'static str {
        match self {
            Rule::MsixResetControl => "PCIe 6.0 7.7.2.2",
            Rule::MsixResetMasks => "PCIe 6.0 7.7.2.8",
            Rule::MsixPlacement => "PCIe 6.0 7.7.2, 7.7.2.3-4",
            Rule::MsixReadOnly => "PCIe 6.0 7.7.2.2-4",
            Rule::MsixEntryMessage => "PCIe 6.0 7.7.2.5-7",
            Rule::MsixPbaReadOnly => "PCIe 6.0 7.7.2.9",
            Rule::MsiLayout => "PCIe 6.0 7.7.1",
            Rule::MsiMultipleMessage => "PCIe 6.0 7.7.1.2",
            Rule::MsiMessage => "PCIe 6.0 7.7.1.3, 7.7.1.5",
            Rule::MsiUpperAddress => "PCIe 6.0 7.7.1.4",
            Rule::MsiMaskPending => "PCIe 6.0 7.7.1.7-8",
            Rule::IntxPin => "PCI 3.0 6.2.4",
            Rule::IntxLine => "PCI 3.0 6.2.4",
            Rule::IntxDisable => "PCI 3.0 6.2.2, PCIe 6.0 7.5.1.1.3",
        }
    }
}

/// What a finding says about the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The function breaks a rule the spec states: the line fails.
    Violation,
    /// An optional feature is absent (Interrupt Disable before PCI 2.3): reported, not a failure.
    NotImplemented,
    /// Behaviour the spec leaves to the function (it constrains software only): reported, not a failure.
    Note,
}

impl Kind {
    /// The word on the report line.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Violation => "violation",
            Kind::NotImplemented => "not implemented",
            Kind::Note => "note",
        }
    }
}

/// One finding: the rule, its kind and what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule.
    pub rule: Rule,
    /// Its kind.
    pub kind: Kind,
    /// What was seen.
    pub text: String,
}

/// The rules of one mechanism on one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// Which mechanism.
    pub mechanism: Mechanism,
    /// Rules checked that held.
    pub held: Vec<Rule>,
    /// Findings (a rule with a finding is not in `held`).
    pub findings: Vec<Finding>,
    /// Rules that apply but could not be checked, and why (a limit of the run, not of the function).
    pub unchecked: Vec<(Rule, &'static str)>,
    /// Rules that do not apply to this function, and why.
    pub not_applicable: Vec<(Rule, &'static str)>,
}

impl Checked {
    fn new(mechanism: Mechanism) -> Checked {
        Checked {
            mechanism,
            held: Vec::new(),
            findings: Vec::new(),
            unchecked: Vec::new(),
            not_applicable: Vec::new(),
        }
    }

    fn find(&mut self, rule: Rule, kind: Kind, args: core::fmt::Arguments) {
        let mut text = String::new();
        let _ = text.write_fmt(args);
        self.findings.push(Finding { rule, kind, text });
    }

    fn held(&mut self, rule: Rule) {
        self.held.push(rule);
    }

    /// Whether `rule` has a finding of `kind`.
    pub fn has(&self, rule: Rule, kind: Kind) -> bool {
        self.findings
            .iter()
            .any(|f| f.rule == rule && f.kind == kind)
    }

    /// Whether any rule was broken.
    pub fn violated(&self) -> bool {
        self.findings.iter().any(|f| f.kind == Kind::Violation)
    }
}

/// Why a function found with MSI-X (or MSI) enabled is not checked.
const NOT_QUIET: &str = "the mode is enabled: the function is not quiet, nothing is written";
/// Why the reset-state rules are not judged after msifw restarted in place.
const RESTARTED: &str = "msifw restarted in place: the state first read is the previous run's";
/// Why the reset-state rules are not judged when software before msifw used MSI-X.
const USED_BEFORE: &str = "MSI-X Enable was set when msifw first read it: software before msifw used MSI-X, this is not the reset state";

/// The MSI-X rules for the capability at `at`. `first_control`: Message Control as msifw first read it
/// (before writing anything to the function), `None` when that is not the reset state msifw knows (it
/// restarted in place). Accesses: 4 configuration reads and 3 writes (the read-only fields), plus, through
/// `bars`, one read per table entry, 6 reads and 6 writes of entry 0's message, 2 reads and a write of the
/// PBA; more only to restore what a broken function let change.
pub fn check_msix(
    cfg: &(impl ConfigRegion + ?Sized),
    f: &Function,
    at: u16,
    first_control: Option<u16>,
    bars: &mut impl BarMemory,
) -> Checked {
    let mut out = Checked::new(Mechanism::Msix);
    let bdf = f.bdf;
    let control = cfg.read16(bdf, at + msix::CONTROL);
    let table = cfg.read32(bdf, at + msix::TABLE);
    let pba = cfg.read32(bdf, at + msix::PBA);
    let n = (control & msix::TABLE_SIZE_MASK) as u64 + 1;
    if control & msix::ENABLE != 0 {
        for rule in [
            Rule::MsixResetControl,
            Rule::MsixResetMasks,
            Rule::MsixPlacement,
            Rule::MsixReadOnly,
            Rule::MsixEntryMessage,
            Rule::MsixPbaReadOnly,
        ] {
            out.unchecked.push((rule, NOT_QUIET));
        }
        return out;
    }

    // Reset state of Message Control (Enable and Function Mask default to 0).
    let reset_state = match first_control {
        None => Err(RESTARTED),
        Some(c) if c & msix::ENABLE != 0 => Err(USED_BEFORE),
        Some(c) => Ok(c),
    };
    match reset_state {
        Err(why) => out.not_applicable.push((Rule::MsixResetControl, why)),
        Ok(c) if c & msix::FUNCTION_MASK != 0 => out.find(
            Rule::MsixResetControl,
            Kind::Violation,
            format_args!("Function Mask read 1 before msifw wrote to the function (reset value 0)"),
        ),
        Ok(_) => out.held(Rule::MsixResetControl),
    }

    // Table and PBA inside an implemented memory BAR, not overlapping.
    let table_len = n * msix::entry::SIZE;
    let pba_len = n.div_ceil(64) * 8;
    let placed_table = place(
        &mut out,
        f,
        "table",
        (table & 7) as u8,
        (table & !7) as u64,
        table_len,
    );
    let placed_pba = place(
        &mut out,
        f,
        "PBA",
        (pba & 7) as u8,
        (pba & !7) as u64,
        pba_len,
    );
    let placed = match (placed_table, placed_pba) {
        (Some(t), Some(p)) if t.0 == p.0 && t.1 < p.1 + p.2 && p.1 < t.1 + t.2 => {
            out.find(
                Rule::MsixPlacement,
                Kind::Violation,
                format_args!(
                    "table {:#x}+{:#x} and PBA {:#x}+{:#x} overlap in BAR{}",
                    t.1, t.2, p.1, p.2, t.0
                ),
            );
            None
        }
        (Some(t), Some(p)) => Some((t, p)),
        _ => None,
    };
    if placed.is_some() {
        out.held(Rule::MsixPlacement);
    }

    // Read-only fields: each written with every bit flipped (Enable and Function Mask kept), read back,
    // restored if it changed.
    let mut read_only_held = true;
    let flipped = (control & !msix::TABLE_SIZE_MASK) | (!control & msix::TABLE_SIZE_MASK);
    cfg.write16(bdf, at + msix::CONTROL, flipped);
    let back = cfg.read16(bdf, at + msix::CONTROL);
    if back != control {
        cfg.write16(bdf, at + msix::CONTROL, control);
    }
    if back & msix::TABLE_SIZE_MASK != control & msix::TABLE_SIZE_MASK {
        read_only_held = false;
        out.find(
            Rule::MsixReadOnly,
            Kind::Violation,
            format_args!(
                "Table Size took a write: {:#x} read back as {:#x}",
                control & msix::TABLE_SIZE_MASK,
                back & msix::TABLE_SIZE_MASK
            ),
        );
    }
    for (name, offset, value) in [
        ("Table Offset/BIR", msix::TABLE, table),
        ("PBA Offset/BIR", msix::PBA, pba),
    ] {
        cfg.write32(bdf, at + offset, !value);
        let back = cfg.read32(bdf, at + offset);
        if back != value {
            cfg.write32(bdf, at + offset, value);
            read_only_held = false;
            out.find(
                Rule::MsixReadOnly,
                Kind::Violation,
                format_args!("{name} took a write: {value:#x} read back as {back:#x}"),
            );
        }
    }
    if read_only_held {
        out.held(Rule::MsixReadOnly);
    }

    // The rules that read the table and PBA.
    let memory_rules = [
        Rule::MsixResetMasks,
        Rule::MsixEntryMessage,
        Rule::MsixPbaReadOnly,
    ];
    let Some(((table_bar, table_at, _), (pba_bar, pba_at, _))) = placed else {
        for rule in memory_rules {
            out.unchecked
                .push((rule, "the table or PBA lies outside its BAR"));
        }
        return out;
    };
    let reachable = [table_bar, pba_bar]
        .iter()
        .all(|&b| f.bar(b).is_some_and(|bar| bar.assigned()));
    let decoding = cfg.read16(bdf, regs::COMMAND) & regs::command::MEMORY != 0;
    let why_not = if !reachable {
        Some("its BAR has no address")
    } else if !decoding {
        Some("memory decoding is off")
    } else {
        None
    };
    if let Some(why) = why_not {
        for rule in memory_rules {
            out.unchecked.push((rule, why));
        }
        return out;
    }
    let entry = |i: u64, field: u64| table_at + i * msix::entry::SIZE + field;
    const UNREACHABLE: &str = "the table did not answer (mapping failed or all-ones)";

    // Entry 0's Vector Control tells whether the table answers at all (its reserved bits read 0).
    let control0 = match bars.read32(table_bar, entry(0, msix::entry::VECTOR_CONTROL)) {
        Some(v) if v != u32::MAX => v,
        _ => {
            for rule in memory_rules {
                out.unchecked.push((rule, UNREACHABLE));
            }
            return out;
        }
    };

    // Every entry masked at reset.
    match reset_state {
        Err(why) => out.not_applicable.push((Rule::MsixResetMasks, why)),
        Ok(_) => {
            let mut unmasked = 0u64;
            let mut first = None;
            let mut answered = true;
            for i in 0..n {
                let v = if i == 0 {
                    Some(control0)
                } else {
                    bars.read32(table_bar, entry(i, msix::entry::VECTOR_CONTROL))
                };
                match v {
                    Some(v) if v & msix::entry::MASKED == 0 => {
                        unmasked += 1;
                        first.get_or_insert(i);
                    }
                    Some(_) => {}
                    None => answered = false,
                }
            }
            if !answered {
                out.unchecked.push((Rule::MsixResetMasks, UNREACHABLE));
            } else if let Some(first) = first {
                out.find(
                    Rule::MsixResetMasks,
                    Kind::Violation,
                    format_args!("{unmasked} of {n} entries unmasked before msifw wrote to the function (first: entry {first}; Mask Bit reset value 1)"),
                );
            } else {
                out.held(Rule::MsixResetMasks);
            }
        }
    }

    // A masked entry's message: written with every writable bit flipped, read back, restored.
    if control0 & msix::entry::MASKED == 0 {
        out.unchecked.push((
            Rule::MsixEntryMessage,
            "entry 0 is unmasked: msifw does not change an unmasked entry's message",
        ));
    } else {
        // Message Address bits 1:0 may be read-only (software writes 0 there).
        let fields = [
            ("Message Address", msix::entry::ADDR_LO, !3u32),
            ("Message Upper Address", msix::entry::ADDR_HI, !0),
            ("Message Data", msix::entry::DATA, !0),
        ];
        let mut old = [0u32; 3];
        let mut answered = true;
        for (k, (_, field, _)) in fields.iter().enumerate() {
            match bars.read32(table_bar, entry(0, *field)) {
                Some(v) => old[k] = v,
                None => answered = false,
            }
        }
        let mut broken = false;
        if answered {
            for (k, (name, field, writable)) in fields.iter().enumerate() {
                let want = !old[k] & writable;
                let _ = bars.write32(table_bar, entry(0, *field), want);
                let back = bars.read32(table_bar, entry(0, *field));
                let _ = bars.write32(table_bar, entry(0, *field), old[k]);
                match back {
                    Some(back) if back & writable == want => {}
                    Some(back) => {
                        broken = true;
                        out.find(
                            Rule::MsixEntryMessage,
                            Kind::Violation,
                            format_args!("entry 0 {name}: wrote {want:#x}, read {back:#x}"),
                        );
                    }
                    None => answered = false,
                }
            }
        }
        if !answered {
            out.unchecked.push((Rule::MsixEntryMessage, UNREACHABLE));
        } else if !broken {
            out.held(Rule::MsixEntryMessage);
        }
    }

    // The PBA's first dword (entries 0-31) does not take a write.
    match bars.read32(pba_bar, pba_at) {
        Some(old) => {
            let _ = bars.write32(pba_bar, pba_at, !old);
            let back = bars.read32(pba_bar, pba_at);
            if back != Some(old) {
                let _ = bars.write32(pba_bar, pba_at, old);
            }
            let valid = if n >= 32 { u32::MAX } else { (1u32 << n) - 1 };
            match back {
                Some(back) if (back ^ old) & valid != 0 => out.find(
                    Rule::MsixPbaReadOnly,
                    Kind::Violation,
                    format_args!(
                        "Pending Bits took a write: {:#x} read back as {:#x}",
                        old & valid,
                        back & valid
                    ),
                ),
                Some(_) => out.held(Rule::MsixPbaReadOnly),
                None => out.unchecked.push((Rule::MsixPbaReadOnly, UNREACHABLE)),
            }
        }
        None => out.unchecked.push((Rule::MsixPbaReadOnly, UNREACHABLE)),
    }
    out
}

/// Checks that `what` (BIR, offset, length) lies in an implemented memory BAR; a finding otherwise.
fn place(
    out: &mut Checked,
    f: &Function,
    what: &str,
    bir: u8,
    offset: u64,
    len: u64,
) -> Option<(u8, u64, u64)> {
    let bad = |out: &mut Checked, args: core::fmt::Arguments| {
        out.find(Rule::MsixPlacement, Kind::Violation, args);
        None
    };
    if bir > 5 {
        return bad(out, format_args!("{what} BIR {bir} is reserved"));
    }
    let Some(bar) = f.bar(bir) else {
        return bad(out, format_args!("{what} BIR {bir} names a BAR the function does not implement (or a 64-bit BAR's upper half)"));
    };
    if bar.kind == BarKind::Io {
        return bad(out, format_args!("{what} BIR {bir} names an I/O BAR"));
    }
    if offset.checked_add(len).is_none_or(|end| end > bar.size) {
        return bad(
            out,
            format_args!(
                "{what} {offset:#x}+{len:#x} extends past BAR{bir}'s {:#x} bytes",
                bar.size
            ),
        );
    }
    Some((bir, offset, len))
}

/// Length of the MSI structure (PCIe 6.0 Figures 7-11x): 32- or 64-bit, with or without the Mask and
/// Pending registers.
pub fn msi_len(is_64: bool, maskable: bool) -> u16 {
    match (is_64, maskable) {
        (false, false) => 0x0A,
        (true, false) => 0x0E,
        (false, true) => 0x14,
        (true, true) => 0x18,
    }
}

/// Writes the `width`-byte register at `offset` with every bit of `writable` flipped (the others 0), reads
/// it back and writes the old value again; returns (written, read back).
fn flip(
    cfg: &(impl ConfigRegion + ?Sized),
    f: &Function,
    offset: u16,
    width: u8,
    writable: u32,
) -> (u32, u32) {
    let bdf = f.bdf;
    if width == 2 {
        let old = cfg.read16(bdf, offset);
        let want = !old & writable as u16;
        cfg.write16(bdf, offset, want);
        let back = cfg.read16(bdf, offset);
        cfg.write16(bdf, offset, old);
        (want as u32, back as u32)
    } else {
        let old = cfg.read32(bdf, offset);
        let want = !old & writable;
        cfg.write32(bdf, offset, want);
        let back = cfg.read32(bdf, offset);
        cfg.write32(bdf, offset, old);
        (want, back)
    }
}

/// The MSI rules for the capability at `at`. Accesses: 1 configuration read of Message Control, 2 writes
/// and a read of it (Multiple Message Enable, on a function capable of more than one vector), 3 accesses
/// per message register (Address, Upper Address
/// on a 64-bit function, Data) and per Mask/Pending register; none more.
pub fn check_msi(cfg: &(impl ConfigRegion + ?Sized), f: &Function, at: u16) -> Checked {
    let mut out = Checked::new(Mechanism::Msi);
    let bdf = f.bdf;
    let control = cfg.read16(bdf, at + msi::CONTROL);
    if control & msi::ENABLE != 0 {
        for rule in [
            Rule::MsiLayout,
            Rule::MsiMultipleMessage,
            Rule::MsiMessage,
            Rule::MsiUpperAddress,
            Rule::MsiMaskPending,
        ] {
            out.unchecked.push((rule, NOT_QUIET));
        }
        return out;
    }
    let mmc = ((control >> msi::MMC_SHIFT) & 7) as u8;
    let is_64 = control & msi::ADDR64 != 0;
    let maskable = control & msi::PER_VECTOR_MASK != 0;

    // The structure fits the 256-byte space and holds no other capability.
    let end = at + msi_len(is_64, maskable);
    let inside = f
        .caps
        .caps
        .iter()
        .find(|c| !c.extended && c.offset > at && c.offset < end);
    if end > 0x100 {
        out.find(
            Rule::MsiLayout,
            Kind::Violation,
            format_args!(
                "the structure at {at:#x} ({} bytes) runs past 0xff",
                end - at
            ),
        );
    } else if let Some(c) = inside {
        out.find(
            Rule::MsiLayout,
            Kind::Violation,
            format_args!("capability {:#04x} at {:#x} lies inside the MSI structure {at:#x}-{:#x}, where its {} are", c.id, c.offset, end - 1, if maskable { "Mask/Pending Bits" } else { "Message Data" }),
        );
    } else {
        out.held(Rule::MsiLayout);
    }
    let layout_ok = out.held.contains(&Rule::MsiLayout);

    // Multiple Message Capable is not reserved; Enable is at or below it and takes Capable's value. Nothing
    // above Capable is written: software must not (7.7.1.2), and QEMU 7.2's ioh3420 aborts the whole VM
    // when it sees more than 2 vectors allocated (`ioh3420_aer_vector`).
    let mme_mask = 7 << msi::MME_SHIFT;
    let mme_found = ((control & mme_mask) >> msi::MME_SHIFT) as u8;
    if mmc > 5 {
        out.find(
            Rule::MsiMultipleMessage,
            Kind::Violation,
            format_args!("Multiple Message Capable {mmc} is reserved"),
        );
    } else if mme_found > mmc {
        // Its reset value is 0; only software that broke the same rule, or the function, put it there.
        out.find(
            Rule::MsiMultipleMessage,
            Kind::Note,
            format_args!("MME {mme_found} found above MMC {mmc} (reset value 0)"),
        );
    } else if mmc == 0 {
        out.held(Rule::MsiMultipleMessage);
    } else {
        let most = (control & !mme_mask) | ((mmc as u16) << msi::MME_SHIFT);
        cfg.write16(bdf, at + msi::CONTROL, most);
        let back = cfg.read16(bdf, at + msi::CONTROL);
        cfg.write16(bdf, at + msi::CONTROL, control);
        let mme = ((back & mme_mask) >> msi::MME_SHIFT) as u8;
        if back & msi::ENABLE != 0 {
            out.find(Rule::MsiMultipleMessage, Kind::Violation, format_args!("a Message Control write with Enable clear read back with Enable set ({back:#x})"));
        } else if mme != mmc {
            out.find(
                Rule::MsiMultipleMessage,
                Kind::Violation,
                format_args!("MME written {mmc} (= MMC) read back {mme}"),
            );
        } else {
            out.held(Rule::MsiMultipleMessage);
        }
    }

    // Message Address (bits 1:0 reserved) and Data (16 bits) read back what was written.
    let data_at = at + if is_64 { 0x0C } else { 0x08 };
    let mut message_ok = true;
    for (name, offset, width, writable) in [
        ("Message Address", at + 4, 4, !3u32),
        ("Message Data", data_at, 2, 0xFFFF),
    ] {
        let (want, back) = flip(cfg, f, offset, width, writable);
        if back & writable != want {
            message_ok = false;
            out.find(
                Rule::MsiMessage,
                Kind::Violation,
                format_args!("{name}: wrote {want:#x}, read {back:#x}"),
            );
        }
    }
    if message_ok {
        out.held(Rule::MsiMessage);
    }

    // The Upper Address exists on 64-bit functions only (on others the register at +8 is Message Data).
    if is_64 {
        let (want, back) = flip(cfg, f, at + 8, 4, !0);
        if back != want {
            out.find(
                Rule::MsiUpperAddress,
                Kind::Violation,
                format_args!(
                    "64-bit function's Message Upper Address: wrote {want:#x}, read {back:#x}"
                ),
            );
        } else {
            out.held(Rule::MsiUpperAddress);
        }
    } else {
        out.not_applicable.push((
            Rule::MsiUpperAddress,
            "32-bit function: no Upper Address register",
        ));
    }

    // Mask Bits (RW for each vector it can have) and Pending Bits (RO), where Per-Vector Masking says.
    if !maskable {
        out.not_applicable.push((
            Rule::MsiMaskPending,
            "no Per-Vector Masking: no Mask or Pending register",
        ));
    } else if !layout_ok || mmc > 5 {
        out.unchecked.push((
            Rule::MsiMaskPending,
            "the structure is malformed: its registers are not written",
        ));
    } else {
        let vectors = 1u32 << mmc;
        let valid = if vectors >= 32 {
            u32::MAX
        } else {
            (1 << vectors) - 1
        };
        let (mask_at, pending_at) = if is_64 {
            (at + 0x10, at + 0x14)
        } else {
            (at + 0x0C, at + 0x10)
        };
        let (want, back) = flip(cfg, f, mask_at, 4, valid);
        let mut ok = true;
        if back & valid != want {
            ok = false;
            out.find(
                Rule::MsiMaskPending,
                Kind::Violation,
                format_args!("Mask Bits: wrote {want:#x}, read {:#x}", back & valid),
            );
        }
        let pending = cfg.read32(bdf, pending_at);
        cfg.write32(bdf, pending_at, !pending);
        let back = cfg.read32(bdf, pending_at);
        if back != pending {
            cfg.write32(bdf, pending_at, pending);
        }
        if (back ^ pending) & valid != 0 {
            ok = false;
            out.find(
                Rule::MsiMaskPending,
                Kind::Violation,
                format_args!(
                    "Pending Bits took a write: {:#x} read back as {:#x}",
                    pending & valid,
                    back & valid
                ),
            );
        }
        if ok {
            out.held(Rule::MsiMaskPending);
        }
    }
    out
}

/// The INTx rules. Accesses: a read of the Interrupt Pin, 4 to the Interrupt Line
/// (read, write, read, restore), a read of Command, and a write and read of it only when Interrupt Disable
/// reads clear (msifw's quieting sets it).
///
/// Interrupt Disable that does not stick is a violation on a function that cannot predate PCI 2.3 (one
/// with a PCI Express capability, PCIe 6.0 7.5.1.1.3, or with MSI-X, defined by PCI 3.0, which includes
/// 2.3's bit), and "not implemented" otherwise: a conventional function cannot be dated from its
/// registers (PCI 2.3 added the bit and Status.Interrupt, both allowed to read 0).
pub fn check_intx(cfg: &(impl ConfigRegion + ?Sized), f: &Function) -> Checked {
    let mut out = Checked::new(Mechanism::Intx);
    let bdf = f.bdf;
    let pin = cfg.read8(bdf, regs::INTERRUPT_PIN);
    if pin > 4 {
        out.find(
            Rule::IntxPin,
            Kind::Violation,
            format_args!("Interrupt Pin {pin:#x} is reserved (0 none, 1-4 INTA-INTD)"),
        );
    } else {
        out.held(Rule::IntxPin);
    }
    if pin == 0 {
        out.not_applicable.push((
            Rule::IntxLine,
            "no interrupt pin: the Interrupt Line is required only with one",
        ));
        out.not_applicable
            .push((Rule::IntxDisable, "no interrupt pin"));
        return out;
    }
    let line = cfg.read8(bdf, regs::INTERRUPT_LINE);
    cfg.write8(bdf, regs::INTERRUPT_LINE, !line);
    let back = cfg.read8(bdf, regs::INTERRUPT_LINE);
    cfg.write8(bdf, regs::INTERRUPT_LINE, line);
    if back != !line {
        out.find(
            Rule::IntxLine,
            Kind::Violation,
            format_args!(
                "Interrupt Line is not read/write: wrote {:#x}, read {back:#x}",
                !line
            ),
        );
    } else {
        out.held(Rule::IntxLine);
    }

    let mut command = cfg.read16(bdf, regs::COMMAND);
    if command & regs::command::INTX_DISABLE == 0 {
        cfg.write16(bdf, regs::COMMAND, command | regs::command::INTX_DISABLE);
        command = cfg.read16(bdf, regs::COMMAND);
    }
    if command & regs::command::INTX_DISABLE != 0 {
        out.held(Rule::IntxDisable);
    } else if f.caps.find(caps::id::PCIE).is_some() {
        out.find(Rule::IntxDisable, Kind::Violation, format_args!("Interrupt Disable does not stick on a PCI Express function, which must implement it"));
    } else if f.caps.find(caps::id::MSIX).is_some() {
        out.find(Rule::IntxDisable, Kind::Violation, format_args!("Interrupt Disable does not stick on an MSI-X function (PCI 3.0, which requires it)"));
    } else {
        out.find(Rule::IntxDisable, Kind::NotImplemented, format_args!("Interrupt Disable does not stick: allowed before PCI 2.3 (a conventional function without MSI-X cannot be dated later)"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::pci::bar::Bar;
    use crate::bus::pci::Bdf;
    use std::cell::RefCell;
    use std::vec;

    const BDF: Bdf = Bdf {
        bus: 0,
        dev: 3,
        func: 0,
    };
    const CAP: u16 = 0x40;
    const BAR_SIZE: usize = 0x1000;

    /// One simulated function: configuration bytes and a write mask (as QEMU's `wmask`: a bit writes
    /// only where the mask has it), and BAR0's memory with its own write mask.
    struct Sim {
        cfg: RefCell<[u8; 256]>,
        wmask: RefCell<[u8; 256]>,
        bar: RefCell<Vec<u8>>,
        bar_wmask: RefCell<Vec<u8>>,
        writes: RefCell<usize>,
        /// Configuration writes: (offset, value).
        log: RefCell<Vec<(u16, u32)>>,
    }

    impl Sim {
        fn new() -> Sim {
            let sim = Sim {
                cfg: RefCell::new([0; 256]),
                wmask: RefCell::new([0; 256]),
                bar: RefCell::new(vec![0; BAR_SIZE]),
                bar_wmask: RefCell::new(vec![0; BAR_SIZE]),
                writes: RefCell::new(0),
                log: RefCell::new(Vec::new()),
            };
            sim.set(0x00, &[0x86, 0x80, 0xd3, 0x10]);
            // Command: memory decoding, INTx disabled (quieted); I/O, memory, Bus Master and Interrupt
            // Disable writable.
            sim.set(
                0x04,
                &(regs::command::MEMORY | regs::command::INTX_DISABLE).to_le_bytes(),
            );
            sim.mask(0x04, &(0x0407u16).to_le_bytes());
            // Interrupt Line (RW) 11, Pin INTA.
            sim.set(0x3C, &[11, 1]);
            sim.mask(0x3C, &[0xFF]);
            sim
        }
        fn set(&self, at: usize, bytes: &[u8]) {
            self.cfg.borrow_mut()[at..at + bytes.len()].copy_from_slice(bytes);
        }
        fn mask(&self, at: usize, bytes: &[u8]) {
            self.wmask.borrow_mut()[at..at + bytes.len()].copy_from_slice(bytes);
        }
        fn set_bar(&self, at: usize, value: u32, writable: u32) {
            self.bar.borrow_mut()[at..at + 4].copy_from_slice(&value.to_le_bytes());
            self.bar_wmask.borrow_mut()[at..at + 4].copy_from_slice(&writable.to_le_bytes());
        }
        fn bar32(&self, at: usize) -> u32 {
            u32::from_le_bytes(self.bar.borrow()[at..at + 4].try_into().unwrap())
        }
        /// Appends a capability `id` at `at` with `body` after its header; `next` links on.
        fn cap(&self, at: usize, id: u8, next: u8, body: &[u8]) {
            if self.cfg.borrow()[0x34] == 0 {
                self.set(0x34, &[at as u8]);
                self.set(0x06, &regs::status::CAP_LIST.to_le_bytes());
            }
            self.set(at, &[id, next]);
            self.set(at + 2, body);
        }
        fn read(&self, offset: u16, size: usize) -> u32 {
            let c = self.cfg.borrow();
            (0..size).fold(0, |v, i| v | (c[offset as usize + i] as u32) << (8 * i))
        }
        fn write(&self, offset: u16, size: usize, value: u32) {
            *self.writes.borrow_mut() += 1;
            self.log.borrow_mut().push((offset, value));
            let (mut c, m) = (self.cfg.borrow_mut(), self.wmask.borrow());
            for i in 0..size {
                let o = offset as usize + i;
                let b = (value >> (8 * i)) as u8;
                c[o] = (c[o] & !m[o]) | (b & m[o]);
            }
        }
        /// The function as enumeration records it: capabilities walked, BAR0 a 32-bit memory BAR.
        fn function(&self, bar_address: u64) -> Function {
            Function {
                bdf: BDF,
                vendor: 0x8086,
                device: 0x10d3,
                class: 0x020000,
                revision: 0,
                header_type: 0,
                bars: heapless::Vec::from_slice(&[Bar {
                    index: 0,
                    kind: BarKind::Mem32,
                    prefetchable: false,
                    address: bar_address,
                    size: BAR_SIZE as u64,
                }])
                .unwrap(),
                caps: caps::walk(self, BDF),
                interrupt_pin: self.cfg.borrow()[0x3D],
                interrupt_line: self.cfg.borrow()[0x3C],
                bridge_buses: None,
                problems: Vec::new(),
            }
        }
        fn snapshot(&self) -> ([u8; 256], Vec<u8>) {
            (*self.cfg.borrow(), self.bar.borrow().clone())
        }
    }

    impl ConfigRegion for Sim {
        fn read32(&self, _: Bdf, offset: u16) -> u32 {
            self.read(offset, 4)
        }
        fn write32(&self, _: Bdf, offset: u16, value: u32) {
            self.write(offset, 4, value)
        }
        fn read16(&self, _: Bdf, offset: u16) -> u16 {
            self.read(offset, 2) as u16
        }
        fn write16(&self, _: Bdf, offset: u16, value: u16) {
            self.write(offset, 2, value as u32)
        }
        fn read8(&self, _: Bdf, offset: u16) -> u8 {
            self.read(offset, 1) as u8
        }
        fn write8(&self, _: Bdf, offset: u16, value: u8) {
            self.write(offset, 1, value as u32)
        }
        fn space_size(&self) -> u16 {
            256
        }
    }

    impl BarMemory for &Sim {
        fn read32(&mut self, bar: u8, offset: u64) -> Option<u32> {
            (bar == 0 && offset as usize + 4 <= BAR_SIZE).then(|| self.bar32(offset as usize))
        }
        fn write32(&mut self, bar: u8, offset: u64, value: u32) -> Option<()> {
            if bar != 0 || offset as usize + 4 > BAR_SIZE {
                return None;
            }
            *self.writes.borrow_mut() += 1;
            let o = offset as usize;
            let m = u32::from_le_bytes(self.bar_wmask.borrow()[o..o + 4].try_into().unwrap());
            let v = (self.bar32(o) & !m) | (value & m);
            self.bar.borrow_mut()[o..o + 4].copy_from_slice(&v.to_le_bytes());
            Some(())
        }
    }

    /// Entries in the MSI-X tables below.
    const N: u16 = 4;
    const PBA_AT: usize = 0x800;

    /// A function with a conforming MSI-X capability at 0x40 as QEMU models it (Table Size, offsets and
    /// BIRs read-only, Enable and Function Mask writable), its table at BAR0+0 and PBA at BAR0+0x800,
    /// every entry masked, in the state msifw's quieting leaves (Function Mask set).
    fn msix_function() -> Sim {
        let sim = Sim::new();
        let control = msix::FUNCTION_MASK | (N - 1);
        let mut body = std::vec::Vec::new();
        body.extend_from_slice(&control.to_le_bytes());
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&(PBA_AT as u32).to_le_bytes());
        sim.cap(CAP as usize, caps::id::MSIX as u8, 0, &body);
        sim.mask(CAP as usize + 2, &[0x00, 0xC0]);
        for i in 0..N as usize {
            sim.set_bar(i * 16, 0, !0);
            sim.set_bar(i * 16 + 4, 0, !0);
            sim.set_bar(i * 16 + 8, 0, !0);
            sim.set_bar(i * 16 + 12, 1, 1);
        }
        sim.set_bar(PBA_AT, 0, 0);
        sim
    }

    /// Message Control as found at boot: Enable and Function Mask clear.
    const FIRST: Option<u16> = Some(N - 1);

    fn run_msix(sim: &Sim, first: Option<u16>) -> Checked {
        let f = sim.function(0xFEB0_0000);
        let mut bars = sim;
        check_msix(sim, &f, CAP, first, &mut bars)
    }

    #[test]
    fn a_conforming_msix_function_holds_every_rule_and_is_left_as_found() {
        let sim = msix_function();
        let before = sim.snapshot();
        let c = run_msix(&sim, FIRST);
        assert_eq!(c.findings, [], "{c:?}");
        assert_eq!(
            c.held,
            [
                Rule::MsixResetControl,
                Rule::MsixPlacement,
                Rule::MsixReadOnly,
                Rule::MsixResetMasks,
                Rule::MsixEntryMessage,
                Rule::MsixPbaReadOnly
            ]
        );
        assert!(
            c.unchecked.is_empty() && c.not_applicable.is_empty(),
            "{c:?}"
        );
        assert_eq!(sim.snapshot(), before, "every register written is restored");
    }

    #[test]
    fn msix_reset_control_catches_a_function_mask_set_at_reset() {
        let sim = msix_function();
        let c = run_msix(&sim, Some(msix::FUNCTION_MASK | (N - 1)));
        assert!(c.has(Rule::MsixResetControl, Kind::Violation), "{c:?}");
        // Enable found set: software before msifw used MSI-X, not the reset state; after a restart in
        // place the state is the previous run's. Neither is judged.
        for first in [Some(msix::ENABLE | (N - 1)), None] {
            let c = run_msix(&sim, first);
            assert!(!c.violated(), "{c:?}");
            let na: Vec<_> = c.not_applicable.iter().map(|(r, _)| *r).collect();
            assert_eq!(na, [Rule::MsixResetControl, Rule::MsixResetMasks]);
        }
    }

    #[test]
    fn msix_reset_masks_catches_an_entry_unmasked_at_reset() {
        let sim = msix_function();
        sim.set_bar(2 * 16 + 12, 0, 1);
        let c = run_msix(&sim, FIRST);
        assert!(c.has(Rule::MsixResetMasks, Kind::Violation), "{c:?}");
        assert!(
            c.findings[0].text.contains("1 of 4 entries unmasked")
                && c.findings[0].text.contains("entry 2"),
            "{c:?}"
        );
    }

    #[test]
    fn msix_placement_catches_reserved_bir_missing_bar_overflow_and_overlap() {
        for (what, table, pba) in [
            ("reserved BIR", 6u32, PBA_AT as u32),
            ("unimplemented BAR", 2, PBA_AT as u32),
            ("PBA past the BAR", 0, BAR_SIZE as u32),
            ("table over the PBA", 0, 0x20),
        ] {
            let sim = msix_function();
            sim.set(CAP as usize + 4, &table.to_le_bytes());
            sim.set(CAP as usize + 8, &pba.to_le_bytes());
            let c = run_msix(&sim, FIRST);
            assert!(c.has(Rule::MsixPlacement, Kind::Violation), "{what}: {c:?}");
            // The table is not touched through a placement that is wrong.
            let unchecked: Vec<_> = c.unchecked.iter().map(|(r, _)| *r).collect();
            assert_eq!(
                unchecked,
                [
                    Rule::MsixResetMasks,
                    Rule::MsixEntryMessage,
                    Rule::MsixPbaReadOnly
                ],
                "{what}"
            );
        }
    }

    #[test]
    fn msix_read_only_catches_writable_table_size_and_offsets_and_restores_them() {
        for (what, at, mask) in [
            ("Table Size", CAP as usize + 2, vec![0xFF, 0xC7]),
            ("Table Offset", CAP as usize + 4, vec![0, 0xFF, 0, 0]),
            ("PBA BIR", CAP as usize + 8, vec![7]),
        ] {
            let sim = msix_function();
            sim.mask(at, &mask);
            let before = sim.snapshot();
            let c = run_msix(&sim, FIRST);
            assert!(c.has(Rule::MsixReadOnly, Kind::Violation), "{what}: {c:?}");
            assert_eq!(sim.snapshot(), before, "{what}: restored");
        }
    }

    #[test]
    fn msix_entry_message_catches_a_message_that_does_not_read_back() {
        for field in [0usize, 4, 8] {
            let sim = msix_function();
            sim.set_bar(field, 0, 0xFFFF);
            let c = run_msix(&sim, FIRST);
            assert!(
                c.has(Rule::MsixEntryMessage, Kind::Violation),
                "field {field}: {c:?}"
            );
        }
        // Message Address bits 1:0 may be read-only: not a finding.
        let sim = msix_function();
        sim.set_bar(0, 0, !3);
        assert!(!run_msix(&sim, FIRST).violated());
        // An unmasked entry 0 is not written.
        let sim = msix_function();
        sim.set_bar(12, 0, 1);
        let before = sim.bar32(0);
        let c = run_msix(&sim, FIRST);
        assert!(
            c.unchecked
                .iter()
                .any(|(r, _)| *r == Rule::MsixEntryMessage),
            "{c:?}"
        );
        assert_eq!(sim.bar32(0), before);
    }

    #[test]
    fn msix_pba_read_only_catches_writable_pending_bits_and_restores_them() {
        let sim = msix_function();
        sim.set_bar(PBA_AT, 0, 0b1010);
        let before = sim.snapshot();
        let c = run_msix(&sim, FIRST);
        assert!(c.has(Rule::MsixPbaReadOnly, Kind::Violation), "{c:?}");
        assert_eq!(sim.snapshot(), before);
        // Bits past the table's entries are reserved: a write there is not a finding.
        let sim = msix_function();
        sim.set_bar(PBA_AT, 0, 0xF0);
        assert!(!run_msix(&sim, FIRST).violated());
    }

    #[test]
    fn msix_table_rules_are_skipped_not_failed_when_the_bar_cannot_be_reached() {
        let sim = msix_function();
        let f = sim.function(0);
        let c = check_msix(&sim, &f, CAP, FIRST, &mut &sim);
        assert!(!c.violated(), "{c:?}");
        assert_eq!(c.unchecked.len(), 3, "{c:?}");
        assert!(c
            .unchecked
            .iter()
            .all(|(_, why)| why.contains("no address")));
        let sim = msix_function();
        sim.set(0x04, &regs::command::INTX_DISABLE.to_le_bytes());
        let c = run_msix(&sim, FIRST);
        assert!(
            c.unchecked.iter().all(|(_, why)| why.contains("decoding")) && c.unchecked.len() == 3,
            "{c:?}"
        );
    }

    #[test]
    fn a_function_with_msix_enabled_is_not_written() {
        let sim = msix_function();
        sim.set(CAP as usize + 2, &(msix::ENABLE | (N - 1)).to_le_bytes());
        let c = run_msix(&sim, FIRST);
        assert_eq!(*sim.writes.borrow(), 0);
        assert_eq!(c.unchecked.len(), 6);
        assert!(c.held.is_empty());
    }

    /// A function with a conforming MSI capability at 0x40: `mmc` (log2 vectors), 64-bit, Per-Vector
    /// Masking as given; Message Control writable in MME and Enable, the message and mask registers
    /// writable, the pending bits read-only.
    fn msi_function(mmc: u16, is_64: bool, maskable: bool) -> Sim {
        let sim = Sim::new();
        let control = (mmc << msi::MMC_SHIFT)
            | if is_64 { msi::ADDR64 } else { 0 }
            | if maskable { msi::PER_VECTOR_MASK } else { 0 };
        sim.cap(CAP as usize, caps::id::MSI as u8, 0, &control.to_le_bytes());
        sim.mask(CAP as usize + 2, &[0x71]);
        sim.mask(CAP as usize + 4, &[0xFC, 0xFF, 0xFF, 0xFF]);
        let data = CAP as usize + if is_64 { 0x0C } else { 0x08 };
        if is_64 {
            sim.mask(CAP as usize + 8, &[0xFF; 4]);
        }
        sim.mask(data, &[0xFF, 0xFF]);
        if maskable {
            let vectors = 1u32 << mmc;
            let valid = if vectors >= 32 {
                u32::MAX
            } else {
                (1 << vectors) - 1
            };
            sim.mask(data + 4, &valid.to_le_bytes());
        }
        sim
    }

    fn run_msi(sim: &Sim) -> Checked {
        check_msi(sim, &sim.function(0xFEB0_0000), CAP)
    }

    #[test]
    fn conforming_msi_functions_hold_every_rule_that_applies_and_are_left_as_found() {
        let sim = msi_function(2, true, true);
        let before = sim.snapshot();
        let c = run_msi(&sim);
        assert_eq!(c.findings, [], "{c:?}");
        assert_eq!(
            c.held,
            [
                Rule::MsiLayout,
                Rule::MsiMultipleMessage,
                Rule::MsiMessage,
                Rule::MsiUpperAddress,
                Rule::MsiMaskPending
            ]
        );
        assert_eq!(sim.snapshot(), before);
        // Multiple Message Enable was written, never above Capable.
        assert!(sim.log.borrow().iter().any(|&(o, _)| o == CAP + 2));
        assert!(sim
            .log
            .borrow()
            .iter()
            .filter(|&&(o, _)| o == CAP + 2)
            .all(|&(_, v)| (v >> 4) & 7 <= 2));
        let sim = msi_function(0, false, false);
        let c = run_msi(&sim);
        assert_eq!(c.findings, [], "{c:?}");
        assert_eq!(
            c.held,
            [Rule::MsiLayout, Rule::MsiMultipleMessage, Rule::MsiMessage]
        );
        let na: Vec<_> = c.not_applicable.iter().map(|(r, _)| *r).collect();
        assert_eq!(na, [Rule::MsiUpperAddress, Rule::MsiMaskPending]);
    }

    #[test]
    fn msi_multiple_message_catches_reserved_capable_and_read_only_enable_and_notes_enable_above_capable(
    ) {
        let sim = msi_function(6, false, false);
        assert!(run_msi(&sim).has(Rule::MsiMultipleMessage, Kind::Violation));
        // Multiple Message Enable that does not take Capable's value.
        let sim = msi_function(3, false, false);
        sim.mask(CAP as usize + 2, &[0x01]);
        let c = run_msi(&sim);
        assert!(c.has(Rule::MsiMultipleMessage, Kind::Violation), "{c:?}");
        // Found above Capable: reported, not written, not a failure.
        let sim = msi_function(1, false, false);
        sim.set(CAP as usize + 2, &[(1 << 1) | (2 << 4)]);
        let c = run_msi(&sim);
        assert!(
            c.has(Rule::MsiMultipleMessage, Kind::Note) && !c.violated(),
            "{c:?}"
        );
        assert!(
            c.findings[0].text.contains("MME 2 found above MMC 1"),
            "{c:?}"
        );
        assert!(sim.log.borrow().iter().all(|&(o, _)| o != CAP + 2));
    }

    #[test]
    fn msi_message_catches_address_or_data_that_does_not_read_back() {
        for at in [CAP as usize + 4, CAP as usize + 8] {
            let sim = msi_function(0, false, false);
            sim.mask(at, &[0, 0]);
            assert!(
                run_msi(&sim).has(Rule::MsiMessage, Kind::Violation),
                "{at:#x}"
            );
        }
    }

    #[test]
    fn msi_upper_address_catches_a_read_only_upper_address_on_a_64_bit_function() {
        let sim = msi_function(0, true, false);
        sim.mask(CAP as usize + 8, &[0; 4]);
        assert!(run_msi(&sim).has(Rule::MsiUpperAddress, Kind::Violation));
    }

    #[test]
    fn msi_mask_pending_catches_read_only_mask_and_writable_pending_bits() {
        let sim = msi_function(2, false, true);
        sim.mask(CAP as usize + 0x0C, &[0]);
        assert!(run_msi(&sim).has(Rule::MsiMaskPending, Kind::Violation));
        let sim = msi_function(2, true, true);
        sim.mask(CAP as usize + 0x14, &[0x0F]);
        let before = sim.snapshot();
        let c = run_msi(&sim);
        assert!(c.has(Rule::MsiMaskPending, Kind::Violation), "{c:?}");
        assert_eq!(sim.snapshot(), before);
    }

    #[test]
    fn msi_layout_catches_a_capability_inside_the_mask_and_pending_registers() {
        // A 32-bit maskable structure spans 0x40-0x53; a capability at 0x50 sits on its Pending Bits.
        let sim = msi_function(0, false, true);
        sim.set(CAP as usize + 1, &[0x50]);
        sim.cap(0x50, caps::id::PM as u8, 0, &[0, 0]);
        let c = run_msi(&sim);
        assert!(c.has(Rule::MsiLayout, Kind::Violation), "{c:?}");
        assert!(
            c.unchecked.iter().any(|(r, _)| *r == Rule::MsiMaskPending),
            "its registers are not written: {c:?}"
        );
        // Past the end of the space.
        let sim = msi_function(0, true, true);
        sim.set(0xF2, &(msi::ADDR64 | msi::PER_VECTOR_MASK).to_le_bytes());
        let f = sim.function(0);
        let c = check_msi(&sim, &f, 0xF0);
        assert!(c.has(Rule::MsiLayout, Kind::Violation), "{c:?}");
    }

    #[test]
    fn a_function_with_msi_enabled_is_not_written() {
        let sim = msi_function(0, true, true);
        sim.set(
            CAP as usize + 2,
            &(msi::ENABLE | msi::ADDR64 | msi::PER_VECTOR_MASK).to_le_bytes(),
        );
        let c = run_msi(&sim);
        assert_eq!(*sim.writes.borrow(), 0);
        assert_eq!(c.unchecked.len(), 5);
    }

    fn run_intx(sim: &Sim) -> Checked {
        check_intx(sim, &sim.function(0xFEB0_0000))
    }

    #[test]
    fn conforming_intx_registers_hold_and_are_left_as_found() {
        let sim = Sim::new();
        let before = sim.snapshot();
        let c = run_intx(&sim);
        assert_eq!(c.findings, []);
        assert_eq!(c.held, [Rule::IntxPin, Rule::IntxLine, Rule::IntxDisable]);
        assert_eq!(sim.snapshot(), before);
        // Interrupt Disable found clear is set (as quieting leaves it) and holds.
        let sim = Sim::new();
        sim.set(0x04, &regs::command::MEMORY.to_le_bytes());
        assert_eq!(
            run_intx(&sim).held,
            [Rule::IntxPin, Rule::IntxLine, Rule::IntxDisable]
        );
        // No pin: Line and Disable do not apply.
        let sim = Sim::new();
        sim.set(0x3D, &[0]);
        let c = run_intx(&sim);
        assert_eq!(
            (c.held.as_slice(), c.not_applicable.len()),
            ([Rule::IntxPin].as_slice(), 2)
        );
    }

    #[test]
    fn intx_pin_catches_a_reserved_pin() {
        let sim = Sim::new();
        sim.set(0x3D, &[5]);
        assert!(run_intx(&sim).has(Rule::IntxPin, Kind::Violation));
    }

    #[test]
    fn intx_line_catches_a_read_only_interrupt_line() {
        let sim = Sim::new();
        sim.mask(0x3C, &[0]);
        let c = run_intx(&sim);
        assert!(c.has(Rule::IntxLine, Kind::Violation), "{c:?}");
    }

    #[test]
    fn intx_disable_absent_is_a_violation_only_where_the_function_postdates_pci_2_3() {
        let absent = || {
            let sim = Sim::new();
            sim.set(0x04, &regs::command::MEMORY.to_le_bytes());
            sim.mask(0x04, &[0x07, 0x00]);
            sim
        };
        // Conventional, no MSI-X: may predate PCI 2.3.
        let c = run_intx(&absent());
        assert!(
            c.has(Rule::IntxDisable, Kind::NotImplemented) && !c.violated(),
            "{c:?}"
        );
        // A PCI Express function, or one with MSI-X (PCI 3.0), must implement it.
        for id in [caps::id::PCIE, caps::id::MSIX] {
            let sim = absent();
            sim.cap(0x40, id as u8, 0, &[0; 10]);
            let c = run_intx(&sim);
            assert!(
                c.has(Rule::IntxDisable, Kind::Violation),
                "cap {id:#x}: {c:?}"
            );
        }
    }
}
