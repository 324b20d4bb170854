//! The storm guard: a level-triggered line that stays asserted with no function claiming it is masked
//! after [`crate::irq::intx::STORM_THRESHOLD`] unclaimed interrupts, reported, and the firmware carries on
//! (Linux's note_interrupt "nobody cared" does the same after 99,900 of 100,000).
//!
//! The storm is made on purpose: an edu function asserts INTx on a line msifw set up with no sharer, so
//! the handler finds nobody to claim it and, the line being level-triggered, gets it again after each EOI.

use super::{Outcome, Verdict};
use crate::bus::pci::enumerate::Function;
use crate::bus::pci::{regs, ConfigRegion};
use crate::drivers::edu::Edu;
use crate::drivers::InterruptSource;
use crate::irq::intx::{self, IntxRoute, STORM_THRESHOLD};
use crate::bus::pci::config::update_command;
use crate::time;
use super::context::{Context, Run};
use super::device_checks::live_devices_deliver;
use crate::drivers::Active;
use crate::modes::route::Routing;
use crate::bus::pci::config::PlatformConfig;
use crate::bus::pci::enumerate::Enumeration;
use crate::bus::pci::trace;
use crate::drivers::DriverKind;
use crate::modes::IrqMode;

/// Runs the storm on `edu` (not driven by anything else at the time) whose INTx arrives at `route`.
pub fn run(cfg: &dyn ConfigRegion, edu: &Function, route: IntxRoute) -> Verdict {
    let mut dev = match Edu::new(edu) {
        Ok(d) => d,
        Err(e) => return Verdict::new(Outcome::Fail, format_args!("edu: {e}")),
    };
    let vector = match intx::watch(route) {
        Ok(v) => v,
        Err(e) => return Verdict::new(Outcome::Skip, format_args!("cannot watch GSI {}: {e}", route.gsi)),
    };
    // Let the function assert INTx (MSI is off after teardown), then assert it and keep it asserted.
    update_command(cfg, edu.bdf, 0, regs::command::INTX_DISABLE);
    let start = time::now_us();
    let _ = dev.trigger(0);
    let masked = wait_for_guard(route.gsi);
    let elapsed = time::now_us() - start;
    let report = intx::line(route.gsi);
    // Quiet again: deassert at the device, INTx off at the function, line gone.
    let _ = dev.acknowledge(0);
    update_command(cfg, edu.bdf, regs::command::INTX_DISABLE, 0);
    intx::release(route.gsi);
    let Some(line) = report else {
        return Verdict::new(Outcome::Fail, format_args!("line of GSI {} vanished", route.gsi));
    };
    if !masked {
        return Verdict::new(
            Outcome::Fail,
            format_args!("GSI {} (vector {vector:#x}) not masked after {} unclaimed interrupts in {elapsed} us", route.gsi, line.unclaimed),
        );
    }
    if line.unclaimed < STORM_THRESHOLD as u64 {
        return Verdict::new(Outcome::Fail, format_args!("masked after only {} unclaimed interrupts", line.unclaimed));
    }
    Verdict::new(
        Outcome::Pass,
        format_args!(
            "GSI {} asserted with nobody claiming it: masked after {} unclaimed interrupts in {elapsed} us; the firmware carried on",
            route.gsi, line.unclaimed
        ),
    )
}

/// How long the storm may go without a new unclaimed interrupt before the check gives up on it.
const STALL_US: u64 = 500_000;
/// The longest the storm is watched in all: a slow platform (nested KVM here: about 2.7 ms an
/// interrupt) needs seconds to reach the threshold; TCG takes about 20 ms.
const STORM_LIMIT_US: u64 = 30_000_000;

/// Waits until the storm guard masks the line of `gsi`, for as long as unclaimed interrupts keep arriving
/// (at most [`STORM_LIMIT_US`]). Returns whether it was masked.
fn wait_for_guard(gsi: u32) -> bool {
    let deadline = time::Deadline::after_us(STORM_LIMIT_US);
    let unclaimed = || intx::line(gsi).map_or(0, |l| l.unclaimed);
    loop {
        let before = unclaimed();
        if time::wait_until(STALL_US, || intx::line(gsi).is_some_and(|l| l.storm_masked)) {
            return true;
        }
        if unclaimed() == before || deadline.expired() {
            return false;
        }
    }
}

/// `intx-storm` while other devices are live ([`crate::scenarios::Stage::Live`]).
pub(crate) fn with_others(ctx: &mut Context<'_>) {
    ctx.storm_done = intx_storm_with_others(ctx.run, ctx.cfg, ctx.pci, ctx.routing, ctx.active);
}

/// `intx-storm` after the teardown, when every edu was driven ([`crate::scenarios::Stage::TornDown`]).
pub(crate) fn alone(ctx: &mut Context<'_>) {
    if !ctx.storm_done {
        run_storm(ctx.run, ctx.cfg, ctx.pci, ctx.routing);
    }
}

/// The storm guard while other devices are live (`scenario=intx-storm` with the edu not driven, e.g.
/// `irq.00:04.0=none`): the storm is masked, then every live device must still deliver. Returns false
/// (nothing run) when every edu is driven; the storm then runs after the devices are torn down.
fn intx_storm_with_others(run: &mut Run, cfg: &'static PlatformConfig, pci: &Enumeration, routing: &Routing, active: &mut [Active]) -> bool {
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

/// The optional storm scenario, on the first edu function (after teardown, so nothing else uses it).
fn run_storm(run: &mut Run, cfg: &'static PlatformConfig, pci: &Enumeration, routing: &Routing) {
    let Some(edu) = pci.functions.iter().find(|f| DriverKind::probe(f) == Some(DriverKind::Edu)) else {
        run.scenario("intx-storm", None, &Verdict::new(Outcome::Skip, format_args!("needs an edu function (-device edu)")));
        return;
    };
    let verdict = match routing.resolve(pci, cfg, edu) {
        Ok(r) => {
            // The storm takes the edu over (it may be one no driver owned: `irq.BDF=none`).
            trace::own(edu.bdf);
            self::run(cfg, edu, r.route)
        }
        Err(e) => Verdict::new(Outcome::Skip, format_args!("edu INTx not routable: {e}")),
    };
    run.scenario("intx-storm", Some(edu.bdf), &verdict);
}
