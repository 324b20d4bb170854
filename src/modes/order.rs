//! The write-order checker: holds the access trace of one function against the rules of the PCI and
//! PCIe specifications (and Linux's practice) for programming MSI and MSI-X. Pure: it reads a list of
//! events and the function's capability layout, and returns the first violation of each rule.

use super::msi::{self, MsiCapability};
use super::msix::{self, MsixCapability};
use crate::bus::pci::regs;
use crate::bus::pci::trace::{Access, Event, TableField};
use crate::bus::pci::Bdf;
use heapless::Vec;

/// The rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// R1: no MSI-X table write before Function Mask is set in the current enable cycle
    /// (msix_capability_init: "Mask all the vectors" via MASKALL first; PCIe 4.0 7.7.2.2).
    FunctionMaskBeforeTableWrites,
    /// R2: an entry's address or data change only while the entry is masked (PCIe 4.0 6.1.4.2), and an
    /// MSI message only while MSI is disabled or its vectors masked; an MSI without per-vector mask bits,
    /// live, only one half at a time (address or data per update, an update ending at the read that
    /// flushes it) and only from a known message: Linux's msi_set_affinity two-step (data to the new vector
    /// on the old CPU, then the address to the new CPU), where every message the function can send in
    /// between is one a CPU handles; a torn update (both halves, e.g. address first) is not.
    MaskedWhileMessageChanges,
    /// R3: every message write is read back before the next entry, the capability's control, or the end.
    ReadBackAfterMessageWrite,
    /// R4: MSI-X never delivers from an unmasked entry that was not programmed (with a message whose address
    /// lies in the LAPIC window, 0xFEExxxxx: zeros, as a reset leaves them, are not a message).
    NoUnmaskedUnprogrammedEntry,
    /// R5: MSI and MSI-X are never enabled together (PCI 3.0 6.8.2).
    NotMsiAndMsixTogether,
    /// R6: INTx is disabled (Command bit 10) whenever MSI or MSI-X can deliver.
    IntxDisabledWhileMessaging,
    /// R7: nothing is written to a function the firmware does not own.
    OnlyOwnedFunctionsWritten,
}

impl Rule {
    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Rule::FunctionMaskBeforeTableWrites => "R1 function mask before table writes",
            Rule::MaskedWhileMessageChanges => "R2 masked (or one half at a time) while the message changes",
            Rule::ReadBackAfterMessageWrite => "R3 read-back after each message write",
            Rule::NoUnmaskedUnprogrammedEntry => "R4 no unmasked unprogrammed entry while enabled",
            Rule::NotMsiAndMsixTogether => "R5 MSI and MSI-X never both enabled",
            Rule::IntxDisabledWhileMessaging => "R6 INTx disabled while MSI or MSI-X is on",
            Rule::OnlyOwnedFunctionsWritten => "R7 only owned functions written",
        }
    }
}

/// A broken rule and the access that broke it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    /// The rule.
    pub rule: Rule,
    /// Index of the offending event in the trace.
    pub index: usize,
    /// The offending event.
    pub event: Event,
}

impl core::fmt::Display for Violation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} broken by access #{}: {}", self.rule.name(), self.index, self.event)
    }
}

/// The capability layout of a function, for interpreting its configuration writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The function.
    pub bdf: Bdf,
    /// Its MSI capability.
    pub msi: Option<MsiCapability>,
    /// Its MSI-X capability.
    pub msix: Option<MsixCapability>,
    /// Whether the firmware owns it.
    pub owned: bool,
}

/// Most MSI-X entries tracked (the architectural maximum).
const MAX_ENTRIES: usize = 2048;

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// Mask bit, if known.
    masked: Option<bool>,
    addr_lo: bool,
    addr_hi: bool,
    data: bool,
}

impl Entry {
    fn programmed(&self) -> bool {
        self.addr_lo && self.addr_hi && self.data
    }
}

#[derive(Debug)]
struct State {
    msix_enable: Option<bool>,
    function_mask: Option<bool>,
    mask_seen_this_cycle: bool,
    msi_enable: Option<bool>,
    msi_masked: Option<u32>,
    intx_disabled: Option<bool>,
    entries: Vec<Entry, MAX_ENTRIES>,
    table_readback: Option<u16>,
    msi_readback: bool,
    /// MSI message as last written or read: address low, high, data.
    msi_message: [Option<u32>; 3],
    /// The live MSI update in progress changed the address / the data.
    msi_update: (bool, bool),
}

/// Violations found (the first of each rule, in trace order), and whether the trace was complete.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    /// Violations.
    pub violations: Vec<Violation, 7>,
    /// Rule breaks inside negative-control windows (deliberate), the first of each rule.
    pub intended: Vec<Violation, 7>,
    /// Events of this function examined.
    pub events: usize,
    in_control: bool,
}

impl Findings {
    fn flag(&mut self, rule: Rule, index: usize, event: Event) {
        let list = if self.in_control { &mut self.intended } else { &mut self.violations };
        if !list.iter().any(|v| v.rule == rule) {
            let _ = list.push(Violation { rule, index, event });
        }
    }
}

/// Bytes `[offset, offset + size)` of a config access overlap `[reg, reg + len)`: the part of `value`
/// that lands on `reg` (for registers of 1, 2 or 4 bytes inside one dword access).
fn field(offset: u16, size: u8, value: u32, reg: u16, len: u16) -> Option<u32> {
    let (start, end) = (offset, offset + size as u16);
    if reg < start || reg + len > end {
        return None;
    }
    let shift = (reg - start) * 8;
    let mask = if len >= 4 { u32::MAX } else { (1u32 << (len * 8)) - 1 };
    Some((value >> shift) & mask)
}

/// Checks the events of `layout.bdf` in `events`.
pub fn check(layout: &Layout, events: &[Event]) -> Findings {
    let mut findings = Findings::default();
    let table_size = layout.msix.map_or(0, |m| m.table_size as usize).min(MAX_ENTRIES);
    let mut st = State {
        msix_enable: None,
        function_mask: None,
        mask_seen_this_cycle: false,
        msi_enable: None,
        msi_masked: None,
        intx_disabled: None,
        entries: Vec::new(),
        table_readback: None,
        msi_readback: false,
        msi_message: [None; 3],
        msi_update: (false, false),
    };
    for _ in 0..table_size {
        let _ = st.entries.push(Entry::default());
    }
    let mut last = None;
    for (index, ev) in events.iter().enumerate().filter(|(_, e)| e.bdf == layout.bdf) {
        findings.events += 1;
        last = Some((index, *ev));
        let is_write = matches!(ev.access, Access::ConfigWrite { .. } | Access::TableWrite { .. });
        if is_write && !layout.owned {
            findings.flag(Rule::OnlyOwnedFunctionsWritten, index, *ev);
        }
        match ev.access {
            Access::Control(on) => findings.in_control = on,
            Access::ConfigRead { offset, size, value } => {
                observe_config(layout, &mut st, offset, size, value);
                if let Some(m) = layout.msi {
                    if offset >= m.offset && offset < m.offset + 0x18 {
                        st.msi_readback = false;
                        st.msi_update = (false, false);
                    }
                }
            }
            Access::ConfigWrite { offset, size, value } => {
                config_write(layout, &mut st, &mut findings, index, *ev, offset, size, value);
            }
            Access::TableRead { entry, field, value } => {
                if let Some(e) = st.entries.get_mut(entry as usize) {
                    if field == TableField::Control {
                        e.masked = Some(value & msix::entry::MASKED != 0);
                    }
                }
                // Only a read of the message itself counts as its read-back.
                if st.table_readback == Some(entry) && field != TableField::Control {
                    st.table_readback = None;
                }
            }
            Access::TableWrite { entry, field, value } => {
                if !st.mask_seen_this_cycle {
                    findings.flag(Rule::FunctionMaskBeforeTableWrites, index, *ev);
                }
                if let Some(pending) = st.table_readback {
                    if pending != entry {
                        findings.flag(Rule::ReadBackAfterMessageWrite, index, *ev);
                        st.table_readback = None;
                    }
                }
                let delivering = st.msix_enable == Some(true) && st.function_mask == Some(false);
                let Some(e) = st.entries.get_mut(entry as usize) else { continue };
                match field {
                    TableField::Control => {
                        let masked = value & msix::entry::MASKED != 0;
                        e.masked = Some(masked);
                        if !masked && delivering && !e.programmed() {
                            findings.flag(Rule::NoUnmaskedUnprogrammedEntry, index, *ev);
                        }
                    }
                    message => {
                        if e.masked != Some(true) {
                            findings.flag(Rule::MaskedWhileMessageChanges, index, *ev);
                        }
                        match message {
                            TableField::AddrLo => e.addr_lo = value >> 20 == 0xFEE,
                            TableField::AddrHi => e.addr_hi = true,
                            _ => e.data = true,
                        }
                        st.table_readback = Some(entry);
                    }
                }
            }
        }
    }
    if let Some((index, ev)) = last {
        if st.table_readback.is_some() || st.msi_readback {
            findings.flag(Rule::ReadBackAfterMessageWrite, index, ev);
        }
    }
    findings
}

/// Updates known state from a configuration read.
fn observe_config(layout: &Layout, st: &mut State, offset: u16, size: u8, value: u32) {
    if let Some(cmd) = field(offset, size, value, regs::COMMAND, 2) {
        st.intx_disabled = Some(cmd as u16 & regs::command::INTX_DISABLE != 0);
    }
    if let Some(m) = layout.msix {
        if let Some(ctl) = field(offset, size, value, m.offset + msix::CONTROL, 2) {
            st.msix_enable = Some(ctl as u16 & msix::ENABLE != 0);
            st.function_mask = Some(ctl as u16 & msix::FUNCTION_MASK != 0);
        }
    }
    if let Some(m) = layout.msi {
        if let Some(ctl) = field(offset, size, value, m.offset + msi::CONTROL, 2) {
            st.msi_enable = Some(ctl as u16 & msi::ENABLE != 0);
        }
        if let Some(mask) = m.mask().and_then(|at| field(offset, size, value, at, 4)) {
            st.msi_masked = Some(mask);
        }
        for (slot, v) in msi_message_fields(&m, offset, size, value).into_iter().enumerate() {
            if v.is_some() {
                st.msi_message[slot] = v;
            }
        }
    }
}

/// The parts of an MSI message (address low, high, data) a config access at `offset` covers.
fn msi_message_fields(m: &MsiCapability, offset: u16, size: u8, value: u32) -> [Option<u32>; 3] {
    [
        field(offset, size, value, m.address_lo(), 4),
        m.address_hi().and_then(|hi| field(offset, size, value, hi, 4)),
        field(offset, size, value, m.data(), 2),
    ]
}

#[allow(clippy::too_many_arguments)]
fn config_write(
    layout: &Layout,
    st: &mut State,
    findings: &mut Findings,
    index: usize,
    ev: Event,
    offset: u16,
    size: u8,
    value: u32,
) {
    let was_msix = st.msix_enable == Some(true) && st.function_mask == Some(false);
    let was_msi = st.msi_enable == Some(true);
    if let Some(cmd) = field(offset, size, value, regs::COMMAND, 2) {
        let disabled = cmd as u16 & regs::command::INTX_DISABLE != 0;
        if !disabled && (was_msix || was_msi) {
            findings.flag(Rule::IntxDisabledWhileMessaging, index, ev);
        }
        st.intx_disabled = Some(disabled);
    }
    if let Some(m) = layout.msix {
        if let Some(ctl) = field(offset, size, value, m.offset + msix::CONTROL, 2) {
            let enable = ctl as u16 & msix::ENABLE != 0;
            let mask = ctl as u16 & msix::FUNCTION_MASK != 0;
            if st.table_readback.is_some() {
                findings.flag(Rule::ReadBackAfterMessageWrite, index, ev);
                st.table_readback = None;
            }
            if !enable {
                st.mask_seen_this_cycle = false;
            } else if mask {
                st.mask_seen_this_cycle = true;
            }
            st.msix_enable = Some(enable);
            st.function_mask = Some(mask);
            if enable && !mask {
                if st.entries.iter().any(|e| e.masked != Some(true) && !e.programmed()) {
                    findings.flag(Rule::NoUnmaskedUnprogrammedEntry, index, ev);
                }
                if st.intx_disabled != Some(true) {
                    findings.flag(Rule::IntxDisabledWhileMessaging, index, ev);
                }
            }
        }
    }
    if let Some(m) = layout.msi {
        if let Some(ctl) = field(offset, size, value, m.offset + msi::CONTROL, 2) {
            let enable = ctl as u16 & msi::ENABLE != 0;
            if enable && st.msi_readback {
                findings.flag(Rule::ReadBackAfterMessageWrite, index, ev);
                st.msi_readback = false;
            }
            if enable && st.intx_disabled != Some(true) {
                findings.flag(Rule::IntxDisabledWhileMessaging, index, ev);
            }
            st.msi_enable = Some(enable);
        }
        let written = msi_message_fields(&m, offset, size, value);
        if written.iter().any(Option::is_some) {
            let all_masked = m.mask().is_some() && st.msi_masked == Some(u32::MAX >> (32 - m.max_vectors().min(32)));
            let known = st.msi_message[0].is_some() && st.msi_message[2].is_some() && (m.address_hi().is_none() || st.msi_message[1].is_some());
            let changed = |slot: usize| written[slot].is_some() && written[slot] != st.msi_message[slot];
            let (address, data) = (changed(0) || changed(1), changed(2));
            if st.msi_enable == Some(true) && !all_masked {
                if m.mask().is_some() || !known {
                    findings.flag(Rule::MaskedWhileMessageChanges, index, ev);
                } else {
                    st.msi_update.0 |= address;
                    st.msi_update.1 |= data;
                    if st.msi_update.0 && st.msi_update.1 {
                        findings.flag(Rule::MaskedWhileMessageChanges, index, ev);
                    }
                }
            }
            for (slot, v) in written.into_iter().enumerate() {
                if v.is_some() {
                    st.msi_message[slot] = v;
                }
            }
            st.msi_readback = true;
        }
        if let Some(mask) = m.mask().and_then(|at| field(offset, size, value, at, 4)) {
            st.msi_masked = Some(mask);
        }
    }
    if st.msi_enable == Some(true) && st.msix_enable == Some(true) {
        findings.flag(Rule::NotMsiAndMsixTogether, index, ev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::mmio::MmioWindow;
    use crate::bus::pci::config::sim::SimConfig;
    use crate::bus::pci::trace;
    use crate::irq::message;

    const BDF: Bdf = Bdf::new(0, 2, 0);
    const MSIX: MsixCapability =
        MsixCapability { offset: 0xA0, table_size: 4, table_bir: 3, table_offset: 0, pba_bir: 3, pba_offset: 0x2000 };
    const MSI: MsiCapability = MsiCapability { offset: 0xD0, multiple_capable: 0, is_64: true, maskable: false };

    fn layout() -> Layout {
        Layout { bdf: BDF, msi: Some(MSI), msix: Some(MSIX), owned: true }
    }

    fn cw(offset: u16, size: u8, value: u32) -> Event {
        Event { bdf: BDF, access: Access::ConfigWrite { offset, size, value } }
    }
    fn cr(offset: u16, size: u8, value: u32) -> Event {
        Event { bdf: BDF, access: Access::ConfigRead { offset, size, value } }
    }
    fn tw(entry: u16, field: TableField, value: u32) -> Event {
        Event { bdf: BDF, access: Access::TableWrite { entry, field, value } }
    }
    fn tr(entry: u16, field: TableField, value: u32) -> Event {
        Event { bdf: BDF, access: Access::TableRead { entry, field, value } }
    }

    const CTL: u16 = 0xA2;
    const EN: u32 = msix::ENABLE as u32;
    const FM: u32 = msix::FUNCTION_MASK as u32;
    const INTX_OFF: u32 = regs::command::INTX_DISABLE as u32 | 0x6;

    /// Linux's msix_capability_init order, for one used entry of four.
    fn good() -> std::vec::Vec<Event> {
        use TableField::*;
        let mut v = vec![cr(CTL, 2, 3), cw(CTL, 2, 3 | EN | FM)];
        v.extend([tr(0, Control, 0), tw(0, Control, 1), tw(0, AddrLo, 0xFEE0_0000), tw(0, AddrHi, 0), tw(0, Data, 0x30)]);
        v.extend([tr(0, Data, 0x30), cr(4, 2, 0x6), cw(4, 2, INTX_OFF)]);
        for i in 0..4 {
            v.extend([tr(i, Control, (i == 0) as u32), tw(i, Control, 1)]);
        }
        v.extend([cr(CTL, 2, 3 | EN | FM), cw(CTL, 2, 3 | EN), tr(0, Control, 1), tw(0, Control, 0)]);
        v
    }

    fn rules(events: &[Event], layout: &Layout) -> std::vec::Vec<Rule> {
        check(layout, events).violations.iter().map(|v| v.rule).collect()
    }

    #[test]
    fn linux_order_passes() {
        assert_eq!(rules(&good(), &layout()), []);
    }

    #[test]
    fn r1_table_write_before_function_mask() {
        let mut v = good();
        v[1] = cw(CTL, 2, 3 | EN); // Enable without Function Mask
        assert!(rules(&v, &layout()).contains(&Rule::FunctionMaskBeforeTableWrites));
    }

    #[test]
    fn r2_message_written_while_entry_unmasked() {
        let mut v = good();
        v.remove(3); // the write that masks entry 0 before its message changes
        assert_eq!(rules(&v, &layout()), [Rule::MaskedWhileMessageChanges]);
    }

    #[test]
    fn r3_no_read_back() {
        let mut v = good();
        v.remove(7); // the read-back of entry 0
        assert_eq!(rules(&v, &layout()), [Rule::ReadBackAfterMessageWrite]);
    }

    #[test]
    fn r4_unprogrammed_entry_unmasked_while_enabled() {
        let mut v = good();
        v.push(tw(2, TableField::Control, 0)); // entry 2 was never programmed
        assert_eq!(rules(&v, &layout()), [Rule::NoUnmaskedUnprogrammedEntry]);
        // Clearing the function mask while an entry of unknown state is unmasked is caught too.
        let v = vec![cw(4, 2, INTX_OFF), cw(CTL, 2, EN | FM), cw(CTL, 2, EN)];
        assert!(rules(&v, &layout()).contains(&Rule::NoUnmaskedUnprogrammedEntry));
    }

    #[test]
    fn r4_zeroed_entry_is_not_programmed() {
        use TableField::*;
        let mut v = good();
        v.extend([tr(2, Control, 1), tw(2, AddrLo, 0), tw(2, AddrHi, 0), tw(2, Data, 0), tr(2, Data, 0), tw(2, Control, 0)]);
        assert_eq!(rules(&v, &layout()), [Rule::NoUnmaskedUnprogrammedEntry]);
    }

    #[test]
    fn r5_msi_and_msix_together() {
        let mut v = good();
        v.push(cw(0xD2, 2, msi::ENABLE as u32 | msi::ADDR64 as u32));
        assert_eq!(rules(&v, &layout()), [Rule::NotMsiAndMsixTogether]);
    }

    #[test]
    fn r6_intx_left_enabled_or_reenabled() {
        let mut v = good();
        v.retain(|e| !matches!(e.access, Access::ConfigWrite { offset: 4, .. }));
        assert_eq!(rules(&v, &layout()), [Rule::IntxDisabledWhileMessaging]);
        let mut v = good();
        v.push(cw(4, 2, 0x6)); // INTx re-enabled while MSI-X delivers
        assert_eq!(rules(&v, &layout()), [Rule::IntxDisabledWhileMessaging]);
    }

    #[test]
    fn r7_write_to_unowned_function() {
        let l = Layout { owned: false, ..layout() };
        assert_eq!(rules(&good(), &l), [Rule::OnlyOwnedFunctionsWritten]);
        // Reads alone are fine.
        assert_eq!(rules(&[cr(0, 4, 0x10d38086)], &l), []);
    }

    #[test]
    fn breaks_inside_a_control_window_are_intended_not_violations() {
        let mut v = good();
        v.push(Event { bdf: BDF, access: Access::Control(true) });
        v.push(tw(2, TableField::Control, 0));
        v.push(Event { bdf: BDF, access: Access::Control(false) });
        let f = check(&layout(), &v);
        assert!(f.violations.is_empty());
        assert_eq!(f.intended.iter().map(|v| v.rule).collect::<std::vec::Vec<_>>(), [Rule::NoUnmaskedUnprogrammedEntry]);
    }

    #[test]
    fn msi_message_changed_while_enabled_and_enable_before_read_back() {
        let msi_layout = Layout { msix: None, ..layout() };
        let v = vec![cr(4, 2, 0x6), cw(4, 2, INTX_OFF), cw(0xD2, 2, msi::ENABLE as u32), cw(0xD4, 4, 0xFEE0_0000)];
        assert!(rules(&v, &msi_layout).contains(&Rule::MaskedWhileMessageChanges));
        let v = vec![cw(4, 2, INTX_OFF), cw(0xD4, 4, 0xFEE0_0000), cw(0xDC, 2, 0x40), cw(0xD2, 2, msi::ENABLE as u32)];
        assert_eq!(rules(&v, &msi_layout), [Rule::ReadBackAfterMessageWrite]);
    }

    /// A 64-bit MSI without mask bits (edu's) at 0xD0: message at 0xD4/0xD8, data at 0xDC.
    fn msi_enabled_at(addr: u32, data: u32) -> std::vec::Vec<Event> {
        vec![cw(0xD4, 4, addr), cw(0xD8, 4, 0), cw(0xDC, 2, data), cr(0xD2, 2, 0x80), cr(4, 2, 0x6), cw(4, 2, INTX_OFF), cw(0xD2, 2, 0x81)]
    }

    /// One update of the whole message as __pci_write_msi_msg writes it, flushed by a Control read.
    fn msi_update(addr: u32, data: u32) -> [Event; 4] {
        [cw(0xD4, 4, addr), cw(0xD8, 4, 0), cw(0xDC, 2, data), cr(0xD2, 2, 0x81)]
    }

    #[test]
    fn r2_accepts_linux_two_step_move_of_an_unmaskable_msi() {
        let l = Layout { msix: None, ..layout() };
        // (APIC 0, 0x30) -> step 1 (APIC 0, 0x41) -> step 2 (APIC 3, 0x41): one half per update.
        let mut v = msi_enabled_at(0xFEE0_0000, 0x30);
        v.extend(msi_update(0xFEE0_0000, 0x41));
        v.extend(msi_update(0xFEE0_3000, 0x41));
        assert_eq!(rules(&v, &l), []);
        // A move on the same CPU (only the vector) or to the same vector number elsewhere (only the
        // address) is one update, as Linux's direct path.
        v.extend(msi_update(0xFEE0_3000, 0x42));
        v.extend(msi_update(0xFEE0_1000, 0x42));
        assert_eq!(rules(&v, &l), []);
    }

    #[test]
    fn r2_catches_a_torn_update_of_an_unmaskable_msi() {
        let l = Layout { msix: None, ..layout() };
        // MoveHow::AddressFirst: new address, (the device raises), new data, in one update.
        let mut v = msi_enabled_at(0xFEE0_0000, 0x30);
        v.extend([cw(0xD4, 4, 0xFEE0_3000), cw(0xD8, 4, 0), cw(0xDC, 2, 0x41), cr(0xD2, 2, 0x81)]);
        let f = check(&l, &v);
        assert_eq!(f.violations.iter().map(|v| v.rule).collect::<std::vec::Vec<_>>(), [Rule::MaskedWhileMessageChanges]);
        assert_eq!(f.violations[0].index, v.len() - 2, "the data write completes the tear");
        // Data first in one update is torn just the same (Linux's steps are separate updates).
        let mut v = msi_enabled_at(0xFEE0_0000, 0x30);
        v.extend([cw(0xDC, 2, 0x41), cw(0xD4, 4, 0xFEE0_3000), cr(0xD2, 2, 0x81)]);
        assert_eq!(rules(&v, &l), [Rule::MaskedWhileMessageChanges]);
        // The two steps without the flush between them are one update: torn.
        let mut v = msi_enabled_at(0xFEE0_0000, 0x30);
        v.extend([cw(0xD4, 4, 0xFEE0_0000), cw(0xD8, 4, 0), cw(0xDC, 2, 0x41)]);
        v.extend(msi_update(0xFEE0_3000, 0x41));
        assert_eq!(rules(&v, &l), [Rule::MaskedWhileMessageChanges]);
        // Inside a negative control the same tear is intended, not a violation.
        let mut v = msi_enabled_at(0xFEE0_0000, 0x30);
        v.push(Event { bdf: BDF, access: Access::Control(true) });
        v.extend([cw(0xD4, 4, 0xFEE0_3000), cw(0xDC, 2, 0x41), cr(0xD2, 2, 0x81)]);
        v.push(Event { bdf: BDF, access: Access::Control(false) });
        let f = check(&l, &v);
        assert!(f.violations.is_empty());
        assert_eq!(f.intended.len(), 1);
    }

    #[test]
    fn r2_maskable_msi_must_be_masked_while_it_moves() {
        let maskable = MsiCapability { maskable: true, ..MSI };
        let l = Layout { msix: None, msi: Some(maskable), ..layout() };
        let mask = maskable.mask().unwrap();
        let mut v = msi_enabled_at(0xFEE0_0000, 0x30);
        // Linux (masked around the rewrite): fine, even with both halves in one update.
        v.extend([cr(mask, 4, 0), cw(mask, 4, 1)]);
        v.extend(msi_update(0xFEE0_3000, 0x41));
        v.push(cw(mask, 4, 0));
        assert_eq!(rules(&v, &l), []);
        // MoveHow::Unmasked: even one half changing unmasked is caught (Linux masks a maskable MSI).
        v.extend(msi_update(0xFEE0_1000, 0x41));
        assert_eq!(rules(&v, &l), [Rule::MaskedWhileMessageChanges]);
    }

    #[test]
    fn r2_unknown_message_changed_live_is_caught() {
        // Programmed for the first time while enabled: nothing says what the other half held.
        let l = Layout { msix: None, ..layout() };
        let v = vec![cr(4, 2, 0x6), cw(4, 2, INTX_OFF), cw(0xD2, 2, msi::ENABLE as u32), cw(0xDC, 2, 0x41), cr(0xD2, 2, 0x81)];
        assert_eq!(rules(&v, &l), [Rule::MaskedWhileMessageChanges]);
    }

    /// The firmware's own MSI-X and MSI code, run over a simulated function, passes every rule.
    #[test]
    fn firmware_sequences_pass() {
        let sim = SimConfig::default();
        let bdf = sim.add(BDF, 0x8086, 0x10d3, 0x020000);
        sim.poke(bdf, 0x06, &regs::status::CAP_LIST.to_le_bytes());
        sim.poke(bdf, 0xA0, &[0x11, 0xD0, 0x03, 0x00]);
        sim.poke(bdf, 0xD0, &[0x05, 0x00, 0x80, 0x00]);
        let mut table = vec![0u32; 16];
        let mut pba = vec![0u64; 1];
        // SAFETY: the windows cover two live, exclusively borrowed heap buffers for the whole test.
        let (tw, pw) = unsafe {
            (MmioWindow::new(table.as_mut_ptr() as u64, 64), MmioWindow::new(pba.as_mut_ptr() as u64, 8))
        };
        let table_acc = msix::MsixTable::new(bdf, tw, 4).unwrap();
        trace::start();
        trace::own(bdf);
        let msgs = [message::compose(0, 0x30).unwrap(), message::compose(0, 0x31).unwrap()];
        let mut f = msix::MsixFunction::enable(&sim, bdf, MSIX, table_acc, pw, &msgs).unwrap();
        assert!(f.set_entry_mask(1, true) && f.set_entry_mask(1, false));
        // A retarget the Linux way (masked, rewritten, read back, unmasked) and AddressFirst (masked too).
        let mut raised = 0;
        assert!(f.move_entry(1, message::compose(3, 0x41).unwrap(), true, false, &mut || raised += 1));
        assert!(f.move_entry(1, message::compose(1, 0x42).unwrap(), true, true, &mut || raised += 1));
        assert_eq!(raised, 2, "the hook ran once per move");
        assert_eq!(table[6], 0x42, "entry 1 data moved");
        f.shutdown(&sim);
        let msi_cap = msi::read_capability(&sim, bdf, 0xD0).unwrap();
        let mut m = msi::MsiFunction::enable(&sim, bdf, msi_cap, message::compose(0, 0x40).unwrap(), 1).unwrap();
        m.shutdown(&sim);
        let events: std::vec::Vec<Event> = trace::inspect(|t| t.events.to_vec());
        let l = Layout { bdf, msi: Some(msi_cap), msix: Some(MSIX), owned: true };
        let f = check(&l, &events);
        assert!(f.violations.is_empty(), "{:?}", f.violations);
        assert!(f.events > 40, "the trace recorded the sequence ({} events)", f.events);
        assert_eq!(table[2], 0x30, "entry 0 data programmed");
        drop(table);
    }

    /// MoveHow::Unmasked on MSI-X: the entry's message changes while it is unmasked, and the hook runs
    /// between address and data (the torn message a raise would send).
    #[test]
    fn firmware_unmasked_msix_move_is_caught() {
        let sim = SimConfig::default();
        let bdf = sim.add(BDF, 0x8086, 0x10d3, 0x020000);
        sim.poke(bdf, 0x06, &regs::status::CAP_LIST.to_le_bytes());
        sim.poke(bdf, 0xA0, &[0x11, 0x00, 0x03, 0x00]);
        let mut table = vec![0u32; 16];
        let mut pba = vec![0u64; 1];
        // SAFETY: the windows cover two live, exclusively borrowed heap buffers for the whole test.
        let (tw, pw) = unsafe {
            (MmioWindow::new(table.as_mut_ptr() as u64, 64), MmioWindow::new(pba.as_mut_ptr() as u64, 8))
        };
        let table_acc = msix::MsixTable::new(bdf, tw, 4).unwrap();
        trace::start();
        trace::own(bdf);
        let msgs = [message::compose(0, 0x30).unwrap()];
        let mut f = msix::MsixFunction::enable(&sim, bdf, MSIX, table_acc, pw, &msgs).unwrap();
        let table_ptr = table.as_ptr();
        let mut seen = None;
        // SAFETY: reads entry 0's address and data words of the live buffer, which outlives the call.
        let mut hook = || seen = Some(unsafe { (table_ptr.read_volatile(), table_ptr.add(2).read_volatile()) });
        assert!(f.move_entry(0, message::compose(3, 0x41).unwrap(), false, true, &mut hook));
        assert_eq!(seen, Some((0xFEE0_3000, 0x30)), "between the writes the entry holds the torn message");
        let events: std::vec::Vec<Event> = trace::inspect(|t| t.events.to_vec());
        let l = Layout { bdf, msi: None, msix: Some(MSIX), owned: true };
        assert_eq!(rules(&events, &l), [Rule::MaskedWhileMessageChanges]);
        drop(table);
    }
}
