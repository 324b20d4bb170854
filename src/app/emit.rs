//! The `function` report record: identity, BARs, capabilities, the interrupt mode and why, vectors,
//! interrupts received, problems, and what the function is left able to do.

use super::FunctionOutcome;
use crate::bus::pci::config::PlatformConfig;
use crate::bus::pci::enumerate::Function;
use crate::bus::pci::{caps, regs, ConfigRegion};
use crate::modes::IrqMode;
use crate::report::{self, wire, Record};

/// Emits the record of `f`.
pub(super) fn emit_function(cfg: &PlatformConfig, f: &Function, outcome: Option<&FunctionOutcome>) {
    let bars = f
        .bars
        .iter()
        .map(|b| wire::Bar {
            index: b.index,
            kind: match b.kind {
                crate::bus::pci::bar::BarKind::Mem32 => wire::BarKind::Mem32,
                crate::bus::pci::bar::BarKind::Mem64 => wire::BarKind::Mem64,
                crate::bus::pci::bar::BarKind::Io => wire::BarKind::Io,
            },
            prefetchable: b.prefetchable,
            address: b.address,
            size: b.size,
        })
        .collect();
    let capabilities = f
        .caps
        .caps
        .iter()
        .map(|c| wire::Capability { id: c.id, name: caps::name(c.id, c.extended).into(), offset: c.offset, extended: c.extended })
        .collect();
    let mut modes_offered = alloc::vec::Vec::new();
    if f.caps.find(caps::id::MSIX).is_some() {
        modes_offered.push(wire::IrqMode::Msix);
    }
    if f.caps.find(caps::id::MSI).is_some() {
        modes_offered.push(wire::IrqMode::Msi);
    }
    if (1..=4).contains(&f.interrupt_pin) {
        modes_offered.push(wire::IrqMode::Intx);
    }
    let intx = outcome.and_then(|o| o.route).map(|rt| wire::IntxRoute {
        gsi: rt.route.gsi,
        trigger: if rt.route.level { wire::Trigger::Level } else { wire::Trigger::Edge },
        polarity: if rt.route.active_low { wire::Polarity::Low } else { wire::Polarity::High },
        source: rt.source.name().into(),
    });
    // What the function is left able to do, read back from the hardware.
    let command = cfg.read16(f.bdf, regs::COMMAND);
    let final_state = wire::FinalState {
        command,
        bus_master: command & regs::command::BUS_MASTER != 0,
        intx_disabled: command & regs::command::INTX_DISABLE != 0,
        msi_enabled: f.caps.find(caps::id::MSI).map(|at| cfg.read16(f.bdf, at + crate::modes::msi::CONTROL) & crate::modes::msi::ENABLE != 0),
        msix_enabled: f.caps.find(caps::id::MSIX).map(|at| cfg.read16(f.bdf, at + crate::modes::msix::CONTROL) & crate::modes::msix::ENABLE != 0),
    };
    report::emit(&Record::Function(wire::Function {
        bdf: report::bdf(f.bdf),
        vendor: f.vendor,
        device: f.device,
        class: f.class,
        header_type: f.header_type,
        bars,
        capabilities,
        irq_mode: outcome.and_then(|o| o.mode).unwrap_or(IrqMode::None),
        modes_offered,
        irq_reason: outcome.and_then(|o| o.reason.as_deref()).map(Into::into),
        intx,
        vectors: outcome.map(|o| o.vectors.to_vec()).unwrap_or_default(),
        vector_cpus: outcome.map(|o| o.vector_cpus.to_vec()).unwrap_or_default(),
        interrupts: outcome.map_or(0, |o| o.interrupts),
        intx_redeliveries: outcome.map_or(0, |o| o.redeliveries),
        driver: outcome.and_then(|o| o.driver).map(Into::into),
        problems: outcome.map(|o| o.problems.iter().map(|p| p.as_str().into()).collect()).unwrap_or_default(),
        final_state,
    }));
}
