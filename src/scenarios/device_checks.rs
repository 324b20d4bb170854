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

/// The selection word of the settle windows' negative control (`msifw_proto::names::SELECTABLE`).
const SETTLE_CONTROL: &str = "msix-delivery-control";

/// `msix-delivery-control`: the LAPIC timer's late message on a device's vector (`s`) must arrive after the
/// settle began and by its end, and the device's delivery check must have failed on it.
fn settle_control(delivery: &Verdict, s: delivery::LateShot) -> Verdict {
    if s.early {
        return Verdict::new(Outcome::Fail, format_args!("the timer's message on vector {:#x} arrived before the settle began: nothing late was provoked", s.vector));
    }
    if s.in_window && delivery.outcome == Outcome::Fail {
        Verdict::new(
            Outcome::Pass,
            format_args!("caught: a timer's message on vector {:#x} {} us after the last expected one, in a {} us settle: {}", s.vector, s.after_us, s.window_us, delivery.detail),
        )
    } else {
        Verdict::new(
            Outcome::Fail,
            format_args!(
                "missed: a timer's message on vector {:#x} {} us after the last expected one {} the {} us settle ({})",
                s.vector,
                s.after_us,
                if s.in_window { "arrived in" } else { "had not arrived by the end of" },
                s.window_us,
                delivery.detail
            ),
        )
    }
}

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
        shot = delivery::run_all(&mut targets, run.opts.rounds, run.opts.wants(SETTLE_CONTROL), |d, v| checks[d].delivery = Some(v));
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
    if let Some(Err(why)) = shot {
        // Asked for, but nothing late could be provoked: a skip saying why.
        run.control("msix-delivery", None, &Verdict::new(Outcome::Skip, format_args!("{why}")), Provoked::default(), why);
    }
    let landed = shot.and_then(Result::ok);
    for (d, (dev, c)) in active.iter().zip(checks.iter_mut()).enumerate() {
        let bdf = dev.irq.bdf();
        if let Some(verdict) = c.delivery.take() {
            crate::info!("{} {=str}: {=str}", bdf, dev.mode.name(), verdict.outcome.name());
            match landed.filter(|s| s.target == d) {
                // The shot device's delivery check is the control's: reported as the control only.
                Some(s) => run.control(scenario_name(dev.mode), Some(bdf), &settle_control(&verdict, s), Provoked { live_messages: 1, ..Provoked::default() }, ""),
                None => run.scenario(scenario_name(dev.mode), Some(bdf), &verdict),
            }
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
