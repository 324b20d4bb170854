//! `shutdown` (seed 000, "pci: quirk to skip msi disable on shutdown") and its control, which needs a boot
//! of its own (`shutdown-control`): both leave the devices shut down, so shutdown runs last.

use crate::drivers::{Active, Device};
use crate::modes::route::Routing;
use crate::bus::pci::config::PlatformConfig;
use crate::bus::pci::enumerate::Enumeration;
use crate::bus::pci::{regs, Bdf};
use crate::bus::pci::config::update_command;
use crate::modes::IrqMode;
use crate::scenarios::context::{Context, Run, OUTCOMES};
use crate::scenarios::{Outcome, Verdict};
use alloc::string::String;
use alloc::vec::Vec;
use msifw_proto::names::Scenario;

/// [`crate::scenarios::Stage::Live`]: the guard when `shutdown` was asked for, else the control.
pub(crate) fn step(ctx: &mut Context<'_>) {
    if ctx.opts().wants_scenario(Scenario::Shutdown, false) {
        shutdown(ctx.run, ctx.cfg, ctx.pci, ctx.routing, ctx.active, false);
    } else if ctx.opts().wants_scenario(Scenario::Shutdown, true) {
        shutdown(ctx.run, ctx.cfg, ctx.pci, ctx.routing, ctx.active, true);
    }
}

/// The shutdown scenario (seed 000) or its control, on every live device at once (INTx lines may be
/// shared). The firmware's shutdown path (the device itself left running, still raising causes): the
/// interrupt mode is shut down
/// (entries masked, Enable cleared), INTx stays disabled and Bus Master goes off; devices in
/// [`crate::drivers::SHUTDOWN_KEEP_MSI`] keep MSI/MSI-X enabled and only lose Bus Master. Then every device
/// raises each of its causes while each one's INTx line is watched (set up with no sharer): nothing may
/// reach the CPU. The control shuts down the pre-2017 Linux way (MSI disabled, INTx enabled again) and
/// passes when a stray interrupt is caught.
/// How long the control waits, beyond the window every device gets, for a stray INTx to show.
const CONTROL_WAIT_US: u64 = 1_000_000;

fn shutdown(run: &mut Run, cfg: &'static PlatformConfig, pci: &Enumeration, routing: &Routing, active: &mut [Active], control: bool) {
    struct Watch {
        vectors: Vec<u8>,
        before: u64,
        gsi: Option<u32>,
        kept: Option<&'static str>,
        window: Option<(Option<u16>, Option<u16>)>,
    }
    let mut watches: Vec<Watch> = Vec::new();
    let mut watched_gsis: Vec<u32> = Vec::new();
    for dev in active.iter_mut().filter(|d| d.mode != IrqMode::None) {
        let Some(f) = pci.functions.get(dev.index) else { continue };
        let window_before = match &dev.dev {
            Device::VirtioNet(v) => Some(v.config_window()),
            Device::VirtioModern(v) => v.config_window().map(Some),
            _ => None,
        };
        // The device is left as its driver had it, still able to raise causes: what protects the CPU here
        // is the PCI-level shutdown alone.
        // A transitional virtio function driven through its modern interface needs no quirk: that layout
        // is fixed by its capabilities, MSI-X or not (the window below shows it).
        let modern = matches!(dev.dev, Device::VirtioModern(_));
        let kept = crate::drivers::shutdown_keep_msi(f.vendor, f.device).filter(|_| !control && !modern);
        let vectors: Vec<u8> = dev.irq.vectors().to_vec();
        if kept.is_none() {
            dev.irq.shutdown();
        }
        if control {
            // Linux before 2017: MSI off and INTx enabled again (pci_msi_shutdown); Bus Master untouched.
            update_command(cfg, f.bdf, 0, regs::command::INTX_DISABLE);
        } else {
            update_command(cfg, f.bdf, regs::command::INTX_DISABLE, regs::command::BUS_MASTER);
        }
        let window = window_before.map(|before| {
            let after = match &dev.dev {
                Device::VirtioNet(v) => v.config_window(),
                Device::VirtioModern(v) => v.config_window(),
                _ => None,
            };
            (before, after)
        });
        // Its interrupts counted so far stay in its record (the mode's shutdown freezes them too).
        if let Some(o) = OUTCOMES.lock().get_mut(dev.index) {
            o.interrupts = dev.irq.delivered();
        }
        let gsi = (1..=4).contains(&f.interrupt_pin).then(|| routing.resolve(pci, cfg, f).ok()).flatten().map(|r| {
            if !watched_gsis.contains(&r.route.gsi) && crate::irq::intx::watch(r.route).is_ok() {
                watched_gsis.push(r.route.gsi);
            }
            r.route.gsi
        });
        let before = vectors.iter().map(|&v| crate::irq::dispatch::count(v)).sum();
        watches.push(Watch { vectors, before, gsi, kept, window });
    }
    let unclaimed_before: Vec<(u32, u64)> =
        watched_gsis.iter().map(|&g| (g, crate::irq::intx::line(g).map_or(0, |l| l.unclaimed))).collect();
    // Every device raises every cause it has.
    for dev in active.iter_mut().filter(|d| d.mode != IrqMode::None) {
        let src = dev.dev.source();
        // The driver keeps each source's moderation interval itself (InterruptSource::min_interval_us).
        for i in 0..src.sources() {
            let _ = src.trigger(i);
        }
    }
    crate::time::delay_us(50_000);
    let stray_intx = |gsi: u32| {
        let before = unclaimed_before.iter().find(|(g, _)| *g == gsi).map_or(0, |(_, n)| *n);
        crate::irq::intx::line(gsi).map_or(0, |l| l.unclaimed) - before
    };
    if control {
        // The control's stray INTx shows only once the device has asserted its line and the IOAPIC has
        // delivered it; under a loaded host that can take longer than the window above. Wait (bounded)
        // for every watched line, so a slow device is not judged a miss.
        let deadline = crate::time::now_us() + CONTROL_WAIT_US;
        while crate::time::now_us() < deadline && watches.iter().any(|w| w.gsi.is_some_and(|g| stray_intx(g) == 0)) {
            crate::time::delay_us(1_000);
        }
    }
    let mut verdicts: Vec<(Bdf, Verdict, crate::scenarios::Provoked, &'static str)> = Vec::new();
    for (dev, w) in active.iter_mut().filter(|d| d.mode != IrqMode::None).zip(watches.iter()) {
        let Some(f) = pci.functions.get(dev.index) else { continue };
        let messages: u64 = w.vectors.iter().map(|&v| crate::irq::dispatch::count(v)).sum::<u64>() - w.before;
        let intx = w.gsi.map_or(0, stray_intx);
        let mut note: String = String::new();
        if let Some((before, after)) = w.window {
            let _ = core::fmt::Write::write_fmt(
                &mut note,
                format_args!("; virtio device config at {:#x} before, {:#x} after", before.unwrap_or(0), after.unwrap_or(0)),
            );
        }
        let how = match w.kept {
            Some(_) => "MSI-X kept enabled (quirk), Bus Master off",
            None => "interrupts shut down, INTx disabled, Bus Master off",
        };
        let v = match (control, messages + intx) {
            (false, 0) => Verdict::new(Outcome::Pass, format_args!("{how}: every cause raised, nothing reached the CPU{note}")),
            (false, n) => Verdict::new(Outcome::Fail, format_args!("{how}, yet {n} interrupt(s) reached the CPU ({messages} messages, {intx} INTx){note}")),
            (true, 0) => Verdict::new(Outcome::Fail, format_args!("MSI disabled and INTx enabled, but no stray interrupt showed{note}")),
            (true, _) => Verdict::new(
                Outcome::Pass,
                format_args!("caught: with MSI disabled and INTx left enabled, {intx} stray INTx on GSI {}{}{note}", w.gsi.unwrap_or(0), if messages > 0 { " (and messages)" } else { "" }),
            ),
        };
        // What the control provokes: the function's INTx, re-enabled, on a watched line, and asserted: with
        // no stray interrupt seen, a Status.Interrupt still clear (PCI 3.0 6.2.3) says the device never
        // raised its line, so there was nothing to catch (a skip); set, the line was raised and not
        // delivered (the control's failure stands).
        let (asserted, why_nothing) = match (w.gsi, intx) {
            (None, _) => (false, "the function has no INTx line to assert (no interrupt pin, or no route for it)"),
            (Some(_), 0) if control && crate::irq::intx::asserted(f.bdf) == Some(false) => {
                (false, "the function did not assert INTx (Status.Interrupt clear) with MSI disabled and its causes raised")
            }
            (Some(_), _) => (true, ""),
        };
        let provoked = crate::scenarios::Provoked { asserted_lines: asserted as u32, ..Default::default() };
        verdicts.push((f.bdf, v, provoked, why_nothing));
    }
    // Quiet again: devices stopped, INTx disabled, watched lines gone. The causes are not acknowledged
    // one by one: with Bus Master off a virtio or NVMe request cannot complete (QEMU's virtio marks the
    // device broken when its ring cannot be read), so each acknowledge would run out its driver's 1 s
    // timeout (16 s for a dozen virtio queues); stopping the device (a reset, for virtio and NVMe) ends
    // whatever they started.
    for dev in active.iter_mut().filter(|d| d.mode != IrqMode::None) {
        let src = dev.dev.source();
        let _ = src.stop();
        if let Some(f) = pci.functions.get(dev.index) {
            update_command(cfg, f.bdf, regs::command::INTX_DISABLE, 0);
        }
    }
    for gsi in watched_gsis {
        crate::irq::intx::release(gsi);
    }
    for (bdf, v, provoked, why_nothing) in verdicts {
        if control {
            run.control("shutdown", Some(bdf), &v, provoked, why_nothing);
        } else {
            run.scenario("shutdown", Some(bdf), &v);
        }
    }
}

