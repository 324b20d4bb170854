//! The lifecycle run on the live devices after setup: the per-device checks, the soak, and the optional
//! scenarios that drive every device at once (reset-restore, storm with others, hot-unplug, stuck command,
//! re-enable, incremental, shutdown), then the teardown.

use super::devices::{scenario_name, Active, Device, Routing};
use crate::drivers::pcie_port;
use crate::drivers::DriverKind;
use super::{Run, OUTCOMES};
use crate::bus::pci::config::PlatformConfig;
use crate::bus::pci::enumerate::Enumeration;
use crate::bus::pci::{regs, reset, trace, Bdf};
use crate::bus::pci::config::update_command;
use crate::modes::IrqMode;
use crate::report::Outcome;
use crate::scenarios::reset as reset_scenario;
use crate::scenarios::{delivery, masking, Target, Verdict};
use crate::time;
use alloc::string::String;
use alloc::vec::Vec;

/// The verdicts of [`check_all`] for one device, held until all devices are checked and then reported
/// device by device.
#[derive(Default)]
struct DeviceChecks {
    delivery: Option<Verdict>,
    masks: [Option<Verdict>; 2],
    /// INTx held until rearm ([`crate::scenarios::intx_hold`]).
    hold: Option<Verdict>,
}

/// Where [`check_all`] holds its verdicts.
static CHECKS: spin::Mutex<Vec<DeviceChecks>> = spin::Mutex::new(Vec::new());

/// The masks a device's checks use, in the order they run and are reported.
fn masks_for(dev: &Active) -> &'static [masking::Mask] {
    match dev.mode {
        IrqMode::Msix => &[masking::Mask::PerVector, masking::Mask::Function],
        IrqMode::Msi if dev.irq.msi_maskable() => &[masking::Mask::PerVector],
        _ => &[],
    }
}

/// Runs the per-device checks on every live device: delivery, then the masks its mode has. Each check
/// runs on all devices at once (they share its waiting windows); the verdicts are reported per device,
/// delivery first, then the masks. `last_use`: nothing uses the devices after these checks, so they are
/// stopped ([`stop_all`]) before the verdicts are printed and the teardown's settle runs meanwhile.
pub(super) fn check_all(run: &mut Run, active: &mut [Active], last_use: bool) {
    let mut checks = CHECKS.lock();
    checks.clear();
    for _ in active.iter() {
        checks.push(DeviceChecks::default());
    }
    {
        let mut targets: Vec<Target<'_, 'static, PlatformConfig>> = Vec::new();
        for a in active.iter_mut() {
            targets.push((a.dev.source(), &mut a.irq));
        }
        delivery::run_all(&mut targets, run.opts.rounds, |d, v| checks[d].delivery = Some(v));
    }
    for (k, mask) in [masking::Mask::PerVector, masking::Mask::Function].into_iter().enumerate() {
        let mut which: Vec<usize> = Vec::new();
        let mut targets: Vec<Target<'_, 'static, PlatformConfig>> = Vec::new();
        for (d, a) in active.iter_mut().enumerate().filter(|(_, a)| masks_for(a).contains(&mask)) {
            which.push(d);
            targets.push((a.dev.source(), &mut a.irq));
        }
        masking::run_all(&mut targets, mask, |t, v| checks[which[t]].masks[k] = Some(v));
    }
    // INTx functions whose driver acknowledges at the device: the hold until rearm (one at a time: the
    // check watches its line).
    for (a, c) in active.iter_mut().zip(checks.iter_mut()) {
        if a.mode == IrqMode::Intx && a.dev.source_ref().intx_ack().is_some() {
            c.hold = Some(crate::scenarios::intx_hold::run(a.dev.source(), &mut a.irq));
        }
    }
    if last_use {
        stop_all(active);
    }
    for (dev, c) in active.iter().zip(checks.iter_mut()) {
        let bdf = dev.irq.bdf();
        if let Some(verdict) = c.delivery.take() {
            crate::info!("{} {=str}: {=str}", bdf, dev.mode.name(), verdict.outcome.name());
            run.scenario(scenario_name(dev.mode), Some(bdf), &verdict);
        }
        for &mask in masks_for(dev) {
            let k = if mask == masking::Mask::PerVector { 0 } else { 1 };
            if let Some(verdict) = c.masks[k].take() {
                run.scenario(mask.scenario(dev.mode), Some(bdf), &verdict);
            }
        }
        if let Some(verdict) = c.hold.take() {
            run.scenario("intx-hold", Some(bdf), &verdict);
        }
    }
}

/// The soak over every live device with interrupts (`soak=N`).
pub(super) fn soak(run: &mut Run, active: &mut [Active], n: u64) {
    let mut targets: Vec<Target<'_, 'static, PlatformConfig>> = Vec::new();
    for a in active.iter_mut().filter(|a| a.mode != IrqMode::None) {
        targets.push((a.dev.source(), &mut a.irq));
    }
    let (r, verdict) = crate::scenarios::soak::run(&mut targets, n);
    crate::println!("soak: {} interrupts, {} lost, {} duplicated, {} per second", r.triggered, r.lost, r.duplicated, r.rate());
    run.scenario("soak", None, &verdict);
}

/// The reset-wipes-the-table scenario and its control on every MSI-X device that can be reset on its
/// own: by FLR, or by the Secondary Bus Reset of a bridge it is alone below.
pub(super) fn reset_restore(run: &mut Run, cfg: &'static PlatformConfig, pci: &Enumeration, active: &mut [Active]) {
    for dev in active.iter_mut().filter(|d| d.mode == IrqMode::Msix && !matches!(d.dev, Device::PciePort(_))) {
        let Some(f) = pci.functions.get(dev.index) else { continue };
        let method = if reset::has_flr(cfg, f) {
            Some(reset_scenario::Method::Flr)
        } else {
            reset::private_bridge(&pci.functions, f).map(reset_scenario::Method::SecondaryBusReset)
        };
        let Some(method) = method else {
            let v = Verdict::new(Outcome::Skip, format_args!("no FLR, and no bridge it is alone below for a secondary bus reset"));
            run.scenario("reset-restore", Some(f.bdf), &v);
            continue;
        };
        let (verdict, _) = reset_scenario::run(cfg, f, method, dev.dev.source(), &mut dev.irq, false);
        run.scenario("reset-restore", Some(f.bdf), &verdict);
        let (verdict, provoked) = reset_scenario::run(cfg, f, method, dev.dev.source(), &mut dev.irq, true);
        run.control("reset-restore", Some(f.bdf), &verdict, provoked, "the reset left the MSI-X table as it was: no entry lost its message");
    }
}

/// After a fault: one delivery round on every live device; each failure is reported under `scenario`.
/// Returns (devices checked, devices that failed).
fn live_devices_deliver(run: &mut Run, active: &mut [Active], scenario: &str) -> (u32, u32) {
    let mut targets: Vec<Target<'_, 'static, PlatformConfig>> = Vec::new();
    for a in active.iter_mut().filter(|a| a.mode != IrqMode::None) {
        targets.push((a.dev.source(), &mut a.irq));
    }
    let bdfs: Vec<Bdf> = targets.iter().map(|(_, irq)| irq.bdf()).collect();
    let mut failed = 0;
    delivery::run_all(&mut targets, 1, |d, v| {
        if v.outcome != Outcome::Pass {
            failed += 1;
            run.scenario(scenario, Some(bdfs[d]), &v);
        }
    });
    (bdfs.len() as u32, failed)
}

/// The storm guard while other devices are live (`scenario=intx-storm` with the edu not driven, e.g.
/// `irq.00:04.0=none`): the storm is masked, then every live device must still deliver. Returns false
/// (nothing run) when every edu is driven; the storm then runs after the devices are torn down.
pub(super) fn intx_storm_with_others(run: &mut Run, cfg: &'static PlatformConfig, pci: &Enumeration, routing: &Routing, active: &mut [Active]) -> bool {
    let driven = |bdf| active.iter().any(|a| a.mode != IrqMode::None && pci.functions.get(a.index).is_some_and(|f| f.bdf == bdf));
    let Some(edu) = pci.functions.iter().find(|f| DriverKind::probe(f) == Some(DriverKind::Edu) && !driven(f.bdf)) else {
        return false;
    };
    let mut verdict = match routing.resolve(pci, cfg, edu) {
        Ok(r) => {
            // The storm takes the undriven edu over: its writes to it are the firmware's own.
            trace::own(edu.bdf);
            crate::scenarios::storm::run(cfg, edu, r.route)
        }
        Err(e) => Verdict::new(Outcome::Skip, format_args!("edu INTx not routable: {e}")),
    };
    if verdict.outcome == Outcome::Pass {
        let (others, failed) = live_devices_deliver(run, active, "intx-storm");
        let mut detail = verdict.detail.clone();
        let _ = core::fmt::Write::write_fmt(&mut detail, format_args!("; {} of {others} live devices still deliver", others - failed));
        verdict = Verdict { outcome: if failed == 0 { Outcome::Pass } else { Outcome::Fail }, detail };
    }
    run.scenario("intx-storm", Some(edu.bdf), &verdict);
    true
}

/// How long `hot-unplug` waits for the host's `device_del` (the attention button), and then for the
/// function to vanish once its slot is powered off.
const UNPLUG_WAIT_US: u64 = 10_000_000;
const GONE_WAIT_US: u64 = 1_000_000;

/// Hot removal while interrupts are live (`scenario=hot-unplug`; the host sends QMP `device_del` when it
/// sees the `hot-unplug: waiting` line). On the attention button the slot is powered off; the function
/// then reads all-ones, and it is torn down (vectors freed) while every other device keeps delivering.
pub(super) fn hot_unplug(run: &mut Run, cfg: &'static PlatformConfig, pci: &Enumeration, active: &mut [Active]) {
    let ports: Vec<usize> = pci
        .functions
        .iter()
        .enumerate()
        .filter(|(_, p)| pcie_port::is_hotplug_port(cfg, p))
        .filter(|(_, p)| {
            let Some((lo, hi)) = p.bridge_buses else { return false };
            active.iter().any(|a| a.mode != IrqMode::None && pci.functions.get(a.index).is_some_and(|c| (lo..=hi).contains(&c.bdf.bus)))
        })
        .map(|(i, _)| i)
        .collect();
    if ports.is_empty() {
        let v = Verdict::new(Outcome::Skip, format_args!("no driven device below a hot-plug port"));
        run.scenario("hot-unplug", None, &v);
        return;
    }
    crate::println!("msifw: hot-unplug: waiting for device_del below {} port(s)", ports.len());
    let t0 = time::now_us();
    let mut pressed = None;
    // Polled every millisecond, untraced (the Slot Status reads and the RW1C write of the button break
    // no ordering rule and would fill the trace).
    crate::bus::pci::trace::paused(|| {
        time::wait_until(UNPLUG_WAIT_US, || {
            pressed = ports.iter().copied().find(|&i| pcie_port::take_attention_button(cfg, &pci.functions[i]));
            if pressed.is_none() {
                time::delay_us(1000);
            }
            pressed.is_some()
        })
    });
    let Some(port_index) = pressed else {
        let v = Verdict::new(Outcome::Fail, format_args!("no attention button within {} s: the host sent no device_del", UNPLUG_WAIT_US / 1_000_000));
        run.scenario("hot-unplug", None, &v);
        return;
    };
    let port = &pci.functions[port_index];
    let button_us = time::now_us() - t0;
    let Some((lo, hi)) = port.bridge_buses else { return };
    let children: Vec<usize> = active
        .iter()
        .enumerate()
        .filter(|(_, a)| a.mode != IrqMode::None && pci.functions.get(a.index).is_some_and(|c| (lo..=hi).contains(&c.bdf.bus)))
        .map(|(i, _)| i)
        .collect();
    pcie_port::power_off_slot(cfg, port);
    let t1 = time::now_us();
    let gone = crate::bus::pci::trace::paused(|| {
        time::wait_until(GONE_WAIT_US, || {
            children.iter().all(|&i| crate::bus::pci::ConfigRegion::read32(cfg, pci.functions[active[i].index].bdf, 0) == u32::MAX)
        })
    });
    let gone_us = time::now_us() - t1;
    pcie_port::acknowledge_slot_events(cfg, port);
    // Torn down: the mode's shutdown writes to a function that is no longer there (the writes go nowhere),
    // and its vectors return to the allocator.
    let mut freed = 0;
    for &i in children.iter() {
        let a = &mut active[i];
        freed += a.irq.vectors().len();
        a.irq.shutdown();
        a.mode = IrqMode::None;
        if let Some(o) = OUTCOMES.lock().get_mut(a.index) {
            super::push_problem(o, format_args!("hot-removed during the run; its mode was shut down"));
        }
    }
    // The others keep working.
    let (others, failed) = live_devices_deliver(run, active, "hot-unplug");
    let v = if !gone {
        Verdict::new(Outcome::Fail, format_args!("slot of {} powered off, but its function still answers after {gone_us} us", port.bdf))
    } else if failed > 0 {
        Verdict::new(Outcome::Fail, format_args!("{failed} of {others} remaining devices stopped delivering after the removal"))
    } else {
        Verdict::new(
            Outcome::Pass,
            format_args!(
                "device_del below {}: attention button after {} ms, slot off, {} function(s) read all-ones after {gone_us} us, {freed} vectors freed; {others} other devices still deliver",
                port.bdf,
                button_us / 1000,
                children.len()
            ),
        )
    };
    run.scenario("hot-unplug", Some(port.bdf), &v);
}

/// A command that never completes, on every NVMe controller in MSI-X or MSI mode (scenarios::stuck).
pub(super) fn stuck_command(run: &mut Run, pci: &Enumeration, active: &mut [Active]) {
    for dev in active.iter_mut().filter(|d| matches!(d.mode, IrqMode::Msix | IrqMode::Msi)) {
        let Some(f) = pci.functions.get(dev.index) else { continue };
        let Device::Nvme(nvme) = &mut dev.dev else { continue };
        let verdict = crate::scenarios::stuck::run(nvme, &dev.irq);
        run.scenario("stuck-command", Some(f.bdf), &verdict);
    }
}

/// The re-enable scenario (or, with `incremental`, the incremental-enable one) and its control on every
/// NVMe controller in MSI-X mode: the device whose driver does this at probe in Linux, and that can add
/// interrupt sources (I/O queues) one at a time. The control runs last.
pub(super) fn reenable(run: &mut Run, pci: &Enumeration, active: &mut [Active], incremental: bool) {
    let name = if incremental { "incremental" } else { "reenable" };
    for dev in active.iter_mut().filter(|d| d.mode == IrqMode::Msix && matches!(d.dev, Device::Nvme(_))) {
        let Some(f) = pci.functions.get(dev.index) else { continue };
        let full = dev.irq.vectors().len() as u16;
        for control in [false, true] {
            let (verdict, provoked) = if incremental {
                crate::scenarios::incremental::run(f, run.apic_id, full, dev.dev.source(), &mut dev.irq, control)
            } else {
                crate::scenarios::reenable::run(f, run.apic_id, full, dev.dev.source(), &mut dev.irq, control)
            };
            if control {
                let why = if incremental {
                    "the device has one MSI-X vector in use: no further entry to expose unprogrammed"
                } else {
                    "round 1's message could not be written back into a live entry"
                };
                run.control(name, Some(f.bdf), &verdict, provoked, why);
            } else {
                run.scenario(name, Some(f.bdf), &verdict);
            }
        }
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
pub(super) fn shutdown(run: &mut Run, cfg: &'static PlatformConfig, pci: &Enumeration, routing: &Routing, active: &mut [Active], control: bool) {
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
            _ => None,
        };
        // The device is left as its driver had it, still able to raise causes: what protects the CPU here
        // is the PCI-level shutdown alone.
        let kept = crate::drivers::shutdown_keep_msi(f.vendor, f.device).filter(|_| !control);
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
    let mut verdicts: Vec<(Bdf, Verdict, crate::scenarios::Provoked)> = Vec::new();
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
        // What the control provokes: the function's INTx, re-enabled, on a watched line.
        let provoked = crate::scenarios::Provoked { asserted_lines: w.gsi.is_some() as u32, ..Default::default() };
        verdicts.push((f.bdf, v, provoked));
    }
    // Quiet again: causes acknowledged, INTx disabled, watched lines gone.
    for dev in active.iter_mut().filter(|d| d.mode != IrqMode::None) {
        let src = dev.dev.source();
        for i in 0..src.sources() {
            let _ = src.acknowledge(i);
        }
        let _ = src.stop();
        if let Some(f) = pci.functions.get(dev.index) {
            update_command(cfg, f.bdf, regs::command::INTX_DISABLE, 0);
        }
    }
    for gsi in watched_gsis {
        crate::irq::intx::release(gsi);
    }
    for (bdf, v, provoked) in verdicts {
        if control {
            run.control("shutdown", Some(bdf), &v, provoked, "the function has no INTx line to assert (no interrupt pin, or no route for it)");
        } else {
            run.scenario("shutdown", Some(bdf), &v);
        }
    }
}

/// Every device stopped by its driver, then its MSI-X Function Mask set: nothing more can be raised, and
/// the settle each MSI-X shutdown keeps before clearing Enable (msix::DISABLE_SETTLE_US, timed from the
/// Function Mask) runs once for all devices, from here. Calling it again changes nothing.
pub(super) fn stop_all(active: &mut [Active]) {
    for dev in active.iter_mut() {
        let _ = dev.dev.source().stop();
        dev.irq.function_mask(true);
    }
}

/// Teardown, last set up first: each device silenced by its driver, then its interrupt mode shut down,
/// then its vectors freed (field order of [`Active`]); the interrupts each received are recorded.
pub(super) fn tear_down(active: &mut Vec<Active>) {
    stop_all(active);
    while let Some(dev) = active.pop() {
        if let Some(o) = OUTCOMES.lock().get_mut(dev.index) {
            o.interrupts = dev.irq.delivered();
            o.redeliveries = crate::irq::intx::redeliveries(dev.irq.bdf());
        }
        drop(dev);
    }
}
