//! The `function` report record: identity, BARs, capabilities, the interrupt mode and why, vectors,
//! interrupts received, problems, and what the function is left able to do.

use super::FunctionOutcome;
use crate::bus::pci::config::PlatformConfig;
use crate::bus::pci::enumerate::Function;
use crate::bus::pci::{caps, regs, ConfigRegion};
use crate::modes::IrqMode;
use crate::report::{Array, Record};

/// Emits the record of `f`.
pub(super) fn emit_function(cfg: &PlatformConfig, f: &Function, outcome: Option<&FunctionOutcome>) {
    let mut r = Record::new("function");
    r.fmt("bdf", format_args!("{}", f.bdf))
        .fmt("vendor", format_args!("{:04x}", f.vendor))
        .fmt("device", format_args!("{:04x}", f.device))
        .fmt("class", format_args!("{:06x}", f.class))
        .num("header_type", f.header_type as u64);
    let mut bars = Array::new();
    for b in f.bars.iter() {
        let mut o = Record::object();
        o.num("index", b.index as u64)
            .str("kind", b.kind.name())
            .bool("prefetchable", b.prefetchable)
            .fmt("address", format_args!("{:#x}", b.address))
            .num("size", b.size);
        bars.object(o.finish());
    }
    r.raw("bars", bars.finish());
    let mut capabilities = Array::new();
    for c in f.caps.caps.iter() {
        let mut o = Record::object();
        o.fmt("id", format_args!("{:#x}", c.id))
            .str("name", caps::name(c.id, c.extended))
            .fmt("offset", format_args!("{:#x}", c.offset))
            .bool("extended", c.extended);
        capabilities.object(o.finish());
    }
    r.raw("capabilities", capabilities.finish());
    let mode = outcome.and_then(|o| o.mode).unwrap_or(IrqMode::None);
    r.str("irq_mode", mode.name());
    let mut offered = Array::new();
    if f.caps.find(caps::id::MSIX).is_some() {
        offered.str("msix");
    }
    if f.caps.find(caps::id::MSI).is_some() {
        offered.str("msi");
    }
    if (1..=4).contains(&f.interrupt_pin) {
        offered.str("intx");
    }
    r.raw("modes_offered", offered.finish());
    match outcome.and_then(|o| o.reason.as_deref()) {
        Some(why) => r.str("irq_reason", why),
        None => r.null("irq_reason"),
    };
    match outcome.and_then(|o| o.route) {
        Some(rt) => {
            r.num("gsi", rt.route.gsi as u64)
                .str("trigger", if rt.route.level { "level" } else { "edge" })
                .str("polarity", if rt.route.active_low { "low" } else { "high" })
                .str("route_source", rt.source.name());
        }
        None => {
            r.null("gsi").null("trigger").null("polarity").null("route_source");
        }
    }
    let mut vectors = Array::new();
    let (mut interrupts, mut redeliveries) = (0, 0);
    if let Some(o) = outcome {
        for &v in o.vectors.iter() {
            vectors.num(v as u64);
        }
        interrupts = o.interrupts;
        redeliveries = o.redeliveries;
    }
    r.raw("vectors", vectors.finish()).num("interrupts", interrupts).num("intx_redeliveries", redeliveries);
    match outcome.and_then(|o| o.driver) {
        Some(d) => r.str("driver", d),
        None => r.null("driver"),
    };
    let mut problems = Array::new();
    if let Some(o) = outcome {
        for p in o.problems.iter() {
            problems.str(p);
        }
    }
    r.raw("problems", problems.finish());
    // What the function is left able to do, read back from the hardware.
    let command = cfg.read16(f.bdf, regs::COMMAND);
    let mut state = Record::object();
    state
        .fmt("command", format_args!("{command:#06x}"))
        .bool("bus_master", command & regs::command::BUS_MASTER != 0)
        .bool("intx_disabled", command & regs::command::INTX_DISABLE != 0);
    match f.caps.find(caps::id::MSI) {
        Some(at) => state.bool("msi_enabled", cfg.read16(f.bdf, at + crate::modes::msi::CONTROL) & crate::modes::msi::ENABLE != 0),
        None => state.null("msi_enabled"),
    };
    match f.caps.find(caps::id::MSIX) {
        Some(at) => state.bool("msix_enabled", cfg.read16(f.bdf, at + crate::modes::msix::CONTROL) & crate::modes::msix::ENABLE != 0),
        None => state.null("msix_enabled"),
    };
    r.raw("final_state", state.finish()).emit();
}
