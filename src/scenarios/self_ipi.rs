//! The CPU's own checks, `lapic-self-ipi` and `unowned-vector`: sent before the devices are set up and
//! judged after, so their watch window costs nothing while setup runs.

use super::context::{Context, Run};
use super::{delivery, Outcome, Verdict};
use crate::arch::lapic;
use crate::irq::{dispatch, vector};
use crate::time;

/// Sends both self IPIs ([`crate::scenarios::Stage::Armed`]); not in stage A of `crash-restart`, which
/// restarts before they could be judged.
pub(crate) fn send(ctx: &mut Context<'_>) {
    if !ctx.plan.restart.stage_a {
        ctx.self_ipis = Some(send_self_ipis());
    }
}

/// Judges them once the devices are set up ([`crate::scenarios::Stage::SetUp`]).
pub(crate) fn judge(ctx: &mut Context<'_>) {
    if let Some(probe) = ctx.self_ipis.take() {
        judge_self_ipis(ctx.run, probe);
    }
}

/// How long to watch for a second delivery after a self IPI arrived, at least. QEMU's LAPIC sets the IRR
/// bit inside the ICR write, so a duplicate would be pending as soon as the first is taken; the window
/// only covers the CPU taking it. The device setup runs inside the window, so it costs nothing when the
/// setup takes longer.
const SELF_IPI_WATCH_US: u64 = 1_000;
/// The freed vector's own, shorter watch, before device setup can reuse the vector (the duplicate would be
/// pending at once, as above).
const FREED_WATCH_US: u64 = 250;

/// The two self-IPI checks, sent by [`send_self_ipis`] and judged by [`judge_self_ipis`] after a watch
/// window that the device setup runs in:
/// - `lapic-self-ipi`: the LAPIC delivers a self IPI exactly once;
/// - `unowned-vector`: an interrupt on a vector nobody owns (freed, no handler) is counted as unowned and
///   reported, not lost and not mistaken for a device's: a vector is allocated and freed again, then a
///   self IPI is sent on it.
#[derive(Debug)]
pub(crate) struct SelfIpis {
    before: u64,
    /// The freed vector with its counts before the IPI: (vector, arrivals, counted unowned).
    freed: Result<(u8, u64, u64), vector::VectorError>,
    /// When the window closes at the earliest.
    watch_until: time::Deadline,
    /// Arrivals on the freed vector and those counted unowned, at the end of its own watch.
    freed_seen: (u64, u64),
}

/// Sends both self IPIs and waits for them to arrive; the duplicate watch runs on while the caller
/// works (interrupts stay enabled).
fn send_self_ipis() -> SelfIpis {
    let v = vector::SELF_IPI_VECTOR;
    let freed = vector::VectorBlock::alloc(1).map(|block| block.base()).map(|f| (f, dispatch::count(f), dispatch::take_unowned(f)));
    let before = dispatch::count(v);
    lapic::self_ipi(v);
    if let Ok((f, _, _)) = freed {
        lapic::self_ipi(f);
    }
    let arrived = |vector: u8, before: u64| dispatch::count(vector) > before;
    time::wait_until(delivery::ARRIVAL_TIMEOUT_US, || arrived(v, before) && freed.as_ref().map_or(true, |&(f, b, _)| arrived(f, b)));
    let watch_until = time::Deadline::after_us(SELF_IPI_WATCH_US);
    // The freed vector is judged before device setup may be given it again: a duplicate (or a device's
    // interrupt) on it later would count as the device's and hide from this check.
    time::delay_us(FREED_WATCH_US);
    let freed_seen = freed.as_ref().map_or((0, 0), |&(f, b, _)| (dispatch::count(f) - b, dispatch::take_unowned(f)));
    SelfIpis { before, freed, watch_until, freed_seen }
}

/// Waits out what is left of the self IPI's watch window, then reports both checks.
fn judge_self_ipis(run: &mut Run, probe: SelfIpis) {
    while !probe.watch_until.expired() {
        crate::arch::cpu::relax();
    }
    let v = vector::SELF_IPI_VECTOR;
    let got = dispatch::count(v) - probe.before;
    let verdict = if got == 1 {
        Verdict::new(Outcome::Pass, format_args!("self IPI on vector {v:#x} delivered once"))
    } else {
        Verdict::new(Outcome::Fail, format_args!("self IPI on vector {v:#x}: {got} deliveries, expected 1"))
    };
    run.scenario("lapic-self-ipi", None, &verdict);

    let verdict = match probe.freed {
        Ok((f, _, unowned_before)) => {
            let (got, unowned) = probe.freed_seen;
            if got == 1 && unowned == 1 {
                Verdict::new(Outcome::Pass, format_args!("interrupt on freed vector {f:#x} arrived once and was counted as unowned"))
            } else {
                Verdict::new(
                    Outcome::Fail,
                    format_args!("freed vector {f:#x}: {got} arrivals, {unowned} counted unowned (expected 1 and 1; {unowned_before} before)"),
                )
            }
        }
        Err(e) => Verdict::new(Outcome::Fail, format_args!("no vector to free: {e}")),
    };
    run.scenario("unowned-vector", None, &verdict);
}

