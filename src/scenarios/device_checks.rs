//! The per-device checks on every live device, in every run: delivery, the masks its mode has, and the
//! INTx hold until rearm (`msix-delivery`, `msi-delivery`, `intx-delivery`, `msix-vector-mask`,
//! `msi-vector-mask`, `msix-function-mask`, `intx-hold`).

use super::context::{Context, Run};
use super::{delivery, masking, Outcome, Provoked, Target, Verdict};
use crate::drivers::Active;
use crate::bus::pci::config::PlatformConfig;
use crate::bus::pci::Bdf;
use crate::modes::IrqMode;
use crate::time;
use alloc::vec::Vec;

/// [`crate::scenarios::Stage::Live`]: without optional scenarios or a soak, the checks are the devices'
/// last use.
pub(crate) fn step(ctx: &mut Context<'_>) {
    let t0 = time::now_us();
    let last_use = ctx.opts().scenarios.is_empty() && ctx.opts().soak == 0;
    check_all(ctx.run, ctx.active, last_use);
    crate::info!("checks: {=u64} us", time::now_us() - t0);
}

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
fn check_all(run: &mut Run, active: &mut [Active], last_use: bool) {
    let mut checks = CHECKS.lock();
    checks.clear();
    for _ in active.iter() {
        checks.push(DeviceChecks::default());
    }
    let shot;
    {
        let mut targets: Vec<Target<'_, 'static, PlatformConfig>> = Vec::new();
        for a in active.iter_mut() {
            targets.push((a.dev.source(), &mut a.irq));
        }
        let control = run.opts.wants_scenario(msifw_proto::names::Scenario::MsixDelivery, true);
        shot = delivery::run_all(&mut targets, run.opts.rounds, control, |d, v| checks[d].delivery = Some(v));
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
    // The settle windows' control (`msix-delivery-control`), before the devices' lines: a skip saying why
    // when nothing late could be provoked; else its own verdict, the device's delivery line being judged
    // without the timer's message. The LAPIC timer's message counts as the live message it provoked.
    match shot {
        Some(Err(why)) => run.control("msix-delivery", None, &Verdict::new(Outcome::Skip, format_args!("{why}")), Provoked::default(), why),
        Some(Ok(s)) => {
            let bdf = active.get(s.target).map(|a| a.irq.bdf());
            let verdict = s.verdict.unwrap_or_else(|| Verdict::new(Outcome::Fail, format_args!("the device was no longer under check when the settle ended")));
            run.control("msix-delivery", bdf, &verdict, Provoked { live_messages: 1, ..Provoked::default() }, "");
        }
        None => {}
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

/// After a fault: one delivery round on every live device; each failure is reported under `scenario`.
/// Returns (devices checked, devices that failed).
pub(crate) fn live_devices_deliver(run: &mut Run, active: &mut [Active], scenario: &str) -> (u32, u32) {
    let mut targets: Vec<Target<'_, 'static, PlatformConfig>> = Vec::new();
    for a in active.iter_mut().filter(|a| a.mode != IrqMode::None) {
        targets.push((a.dev.source(), &mut a.irq));
    }
    let bdfs: Vec<Bdf> = targets.iter().map(|(_, irq)| irq.bdf()).collect();
    let mut failed = 0;
    delivery::run_all(&mut targets, 1, false, |d, v| {
        if v.outcome != Outcome::Pass {
            failed += 1;
            run.scenario(scenario, Some(bdfs[d]), &v);
        }
    });
    (bdfs.len() as u32, failed)
}

/// Every device stopped by its driver, then its MSI-X Function Mask set: nothing more can be raised, and
/// the settle each MSI-X shutdown keeps before clearing Enable (msix::DISABLE_SETTLE_US, timed from the
/// Function Mask) runs once for all devices, from here. Calling it again changes nothing.
pub(crate) fn stop_all(active: &mut [Active]) {
    for dev in active.iter_mut() {
        let _ = dev.dev.source().stop();
        dev.irq.function_mask(true);
    }
}

/// The delivery scenario of a mode.
pub fn scenario_name(mode: IrqMode) -> &'static str {
    match mode {
        IrqMode::Msix => "msix-delivery",
        IrqMode::Msi => "msi-delivery",
        IrqMode::Intx => "intx-delivery",
        IrqMode::None => "irq-none",
    }
}
