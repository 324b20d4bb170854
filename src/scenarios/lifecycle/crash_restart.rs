//! Crash restart with live devices (seed 003, "PCI/MSI: Mask MSI-X vectors only on success"): stage A sets
//! every device up and leaves it live (MSI-X enabled and unmasked with an interrupt pending on a masked
//! entry, INTx asserted with its IOAPIC entry unmasked, Bus Master on), then jumps back to the firmware's
//! entry with no device reset, as a kdump kernel starts. Stage B must quiet everything before it enables
//! interrupts (MSI and MSI-X off with the function mask set, INTx disabled, Bus Master off, every IOAPIC
//! entry and the 8259 masked), retire what the LAPIC still holds, and then see no stale vector fire while
//! it traps all device vectors; only then are the devices set up afresh. Entries are masked one by one only
//! where Linux does it, when MSI-X is enabled successfully, so a device that honours the mask bits while
//! MSI-X is disabled still works in MSI mode. The control delays the quieting until after the trap window
//! and passes when stale interrupts are caught.

use crate::drivers::{Active, Device};
use crate::modes::route::Routing;
use crate::arch::{cpu, lapic};
use crate::scenarios::context::Context;
use msifw_proto::names::Scenario;
use crate::irq::{dispatch, intx, vector};
use crate::modes::IrqMode;
use crate::report::Outcome;
use crate::scenarios::Verdict;
use crate::time;

/// What a run knows of `crash-restart` before the platform is discovered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Restart {
    /// The handoff stage A left: this run is stage B.
    pub(crate) stage_b: Option<Handoff>,
    /// This run is stage A: it sets the devices up, leaves them live and restarts.
    pub(crate) stage_a: bool,
    /// Stage A is the control's.
    control: bool,
}

impl Restart {
    /// The control delays every quieting step until after its trap window.
    pub(crate) fn delays_quiet(&self) -> bool {
        self.stage_b.is_some_and(|h| is_control(&h))
    }
}

/// Stage A leaves the devices live and restarts in place; stage B finds the handoff. Stage B reports
/// everything stage A did (platform, setup verdicts) again and counts only its own: the host keeps the
/// report from the last `platform` record on.
pub(crate) fn plan(opts: &crate::cmdline::Options, restarted: bool) -> Restart {
    let stage_b = if restarted { stage_b() } else { None };
    let control = opts.wants_scenario(Scenario::CrashRestart, true);
    let stage_a = stage_b.is_none() && (opts.wants_scenario(Scenario::CrashRestart, false) || control);
    Restart { stage_b, stage_a, control }
}

/// How long stage B traps every vector.
const WINDOW_US: u64 = 200_000;

/// Stage B ([`crate::scenarios::Stage::Quiet`]): the trap window on a machine nothing was set up on (with
/// the control, not even quieted), then the verdict.
pub(crate) fn stage_b_step(ctx: &mut Context<'_>) {
    let Some(h) = ctx.plan.restart.stage_b else { return };
    let delay_quiet = ctx.plan.restart.delays_quiet();
    let (retired, inherited, stale) = trap_window(WINDOW_US);
    if delay_quiet {
        intx::mask_every_entry();
        (ctx.quiet_all)(ctx.cfg, &ctx.pci.functions);
    }
    let v = verdict(&h, ctx.pci.functions.len() as u32, retired, inherited, stale, WINDOW_US);
    if delay_quiet {
        ctx.run.control("crash-restart", None, &v, provoked(&h), "stage A left no INTx line asserted (no driven edu or nvme with an INTx pin to move to INTx)");
    } else {
        ctx.run.scenario("crash-restart", None, &v);
    }
}

/// Stage A ([`crate::scenarios::Stage::SetUp`]): never returns on the firmware target.
pub(crate) fn stage_a(ctx: &mut Context<'_>) {
    if ctx.plan.restart.stage_a {
        leave_live_and_restart(ctx.cfg, ctx.pci, ctx.routing, ctx.active, ctx.plan.restart.control, ctx.start_info);
    }
}

const MAGIC: u32 = 0x6D73_6966; // "msif"

/// What survives the restart (in [`crate::arch::handoff`]'s words).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Handoff {
    magic: u32,
    control: u32,
    /// Functions stage A left with MSI or MSI-X live.
    messages: u32,
    /// Functions stage A left asserting INTx.
    intx: u32,
}

impl Handoff {
    fn words(&self) -> [u32; crate::arch::handoff::WORDS] {
        [self.magic, self.control, self.messages, self.intx]
    }

    fn from_words([magic, control, messages, intx]: [u32; crate::arch::handoff::WORDS]) -> Handoff {
        Handoff { magic, control, messages, intx }
    }
}

/// What stage A left for the control to catch: the INTx levels it left asserted. Its live MSI and MSI-X
/// functions raise nothing while nobody triggers them (the one interrupt each holds is pending on a
/// masked entry), so they provoke no stale interrupt in the trap window.
pub(crate) fn provoked(h: &Handoff) -> crate::scenarios::Provoked {
    crate::scenarios::Provoked { asserted_lines: h.intx, ..Default::default() }
}

/// Whether stage A asked for the control.
pub(crate) fn is_control(h: &Handoff) -> bool {
    h.control != 0
}

/// The handoff from stage A, if this run is stage B.
pub(crate) fn stage_b() -> Option<Handoff> {
    let h = Handoff::from_words(crate::arch::handoff::read());
    (h.magic == MAGIC).then_some(h)
}

/// Stage A: makes every live device as hostile as a crashed kernel leaves it, records the handoff and
/// restarts in place. Never returns on the firmware target.
#[allow(clippy::too_many_arguments)]
pub(crate) fn leave_live_and_restart(
    cfg: &'static crate::bus::pci::config::PlatformConfig,
    pci: &crate::bus::pci::enumerate::Enumeration,
    routing: &Routing,
    active: &mut [Active],
    control: bool,
    start_info: u32,
) -> ! {
    // A level INTx line left asserted is what a careless successor cannot miss (and what the control
    // catches): if no device is in INTx mode, one is moved to INTx for stage A, an edu if there is one,
    // else an nvme (both assert their pin for source 0 once MSI and MSI-X are off).
    if !active.iter().any(|d| d.mode == IrqMode::Intx) {
        let movable = |d: &Active| {
            let pin = pci.functions.get(d.index).is_some_and(|f| (1..=4).contains(&f.interrupt_pin));
            pin && matches!(d.dev, Device::Edu(_) | Device::Nvme(_))
        };
        let pick = active
            .iter()
            .position(|d| movable(d) && matches!(d.dev, Device::Edu(_)))
            .or_else(|| active.iter().position(movable));
        if let Some(dev) = pick.map(|i| &mut active[i]) {
            if let Some(f) = pci.functions.get(dev.index) {
                if let Ok(r) = routing.resolve(pci, cfg, f) {
                    dev.irq.shutdown();
                    if let Ok(irq) = crate::modes::DeviceIrq::enable_intx(cfg, f, r.route) {
                        dev.irq = irq;
                        dev.mode = IrqMode::Intx;
                    }
                }
            }
        }
    }
    let (mut messages, mut intx) = (0u32, 0u32);
    // From here nothing is handled: whatever the devices raise stays raised into the next run.
    cpu::disable_interrupts();
    for dev in active.iter_mut() {
        let src = dev.dev.source();
        match dev.mode {
            IrqMode::Msix | IrqMode::Msi => {
                // An interrupt pending on a masked entry (MSI-X), everything else live and unmasked.
                if dev.irq.mask(0, true) {
                    let _ = src.trigger(0);
                    time::delay_us(2_000);
                }
                messages += 1;
            }
            IrqMode::Intx => {
                // Raised with interrupts off and never acknowledged: the level stays asserted, with the
                // function's INTx enabled and its IOAPIC entry unmasked, into the next run. Counted only
                // when the function's Status.Interrupt shows it asserted.
                // The device may take a while to raise it (QEMU's nvme completes the command in a
                // bottom half, late on a loaded host): wait for the level up to 1 s, not a fixed 2 ms.
                let _ = src.trigger(0);
                time::wait_until(1_000_000, || dev.irq.pending(0) != Some(false));
                if dev.irq.pending(0) != Some(false) {
                    intx += 1;
                }
            }
            IrqMode::None => {}
        }
    }
    let handoff = Handoff {
        magic: MAGIC,
        control: control as u32,
        messages,
        intx,
    };
    crate::arch::handoff::write(handoff.words());
    crate::println!("msifw: crash-restart stage A: {messages} function(s) with live messages, {intx} asserting INTx; restarting in place");
    #[cfg(target_os = "none")]
    crate::firmware::restart(start_info);
    #[cfg(not(target_os = "none"))]
    {
        let _ = start_info;
        unreachable!("restart exists only on the firmware target")
    }
}

static STALE: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
/// Stale interrupts after which the trap masks every IOAPIC entry (a level line nobody quieted would
/// otherwise keep the CPU in its handler for ever).
const STORM_BREAK: u64 = 200;

fn stale(_vector: u8) {
    if STALE.fetch_add(1, core::sync::atomic::Ordering::Relaxed) + 1 == STORM_BREAK {
        intx::mask_every_entry();
    }
}

/// Stage B, before any device is set up: retires what the LAPIC holds from stage A (interrupts accepted
/// before this run could quiet anything), then traps every vector from 0x20 to 0xFE for `window_us` and
/// counts what arrives. Returns (retired in service, inherited from the IRR, stale in the window).
pub(crate) fn trap_window(window_us: u64) -> (u32, u64, u64) {
    const FIRST: u8 = vector::FIRST_DEVICE_VECTOR;
    const LAST: u8 = vector::LAST_DEVICE_VECTOR;
    let retired = lapic::drain_in_service();
    for v in FIRST..=LAST {
        dispatch::set_handler(v, stale);
    }
    // Inherited: what the LAPIC had already accepted arrives at the first sti, at most once per vector
    // (one IRR bit each). A vector that comes again is a source still firing: stale.
    let mut before = [0u64; (LAST - FIRST + 1) as usize];
    for (i, v) in (FIRST..=LAST).enumerate() {
        before[i] = dispatch::count(v);
    }
    cpu::enable_interrupts();
    time::delay_us(2_000);
    cpu::disable_interrupts();
    let mut inherited = 0;
    let mut stale_at_sti = 0;
    for (i, v) in (FIRST..=LAST).enumerate() {
        let n = dispatch::count(v) - before[i];
        inherited += n.min(1);
        stale_at_sti += n.saturating_sub(1);
    }
    STALE.store(stale_at_sti, core::sync::atomic::Ordering::Relaxed);
    // Outside the device vectors: the remapped 8259's 0x20-0x2F and the system vectors 0xF0-0xFE (the
    // dispatcher counts them all; 0xFF, the LAPIC's own spurious vector, is not a device's).
    let others = || dispatch::total(0x20..=0x2F) + dispatch::total(0xF0..=0xFE);
    let others_before = others();
    cpu::enable_interrupts();
    time::delay_us(window_us);
    cpu::disable_interrupts();
    let stale = STALE.load(core::sync::atomic::Ordering::Relaxed) + (others() - others_before);
    for v in FIRST..=LAST {
        dispatch::clear_handler(v);
    }
    (retired, inherited, stale)
}

/// The verdict of stage B's trap window.
pub(crate) fn verdict(h: &Handoff, quieted: u32, retired: u32, inherited: u64, stale: u64, window_us: u64) -> Verdict {
    let control = h.control != 0;
    let left = |s: &mut heapless::String<128>| {
        let _ = core::fmt::Write::write_fmt(
            s,
            format_args!("stage A left {} function(s) with live messages and {} asserting INTx", h.messages, h.intx),
        );
    };
    let mut what: heapless::String<128> = heapless::String::new();
    left(&mut what);
    match (control, stale) {
        // Nothing was left live: no stale interrupt could arrive, so its absence shows nothing.
        (false, 0) if h.messages == 0 && h.intx == 0 => Verdict::new(
            Outcome::Skip,
            format_args!("nothing to provoke: {what} (no driven device to leave live); stage B quieted {quieted} function(s)"),
        ),
        (false, 0) => Verdict::new(
            Outcome::Pass,
            format_args!(
                "{what}; stage B quieted {quieted} function(s) and every IOAPIC entry before sti, retired {retired} in-service and {inherited} inherited LAPIC interrupt(s), then no stale vector fired in {} ms",
                window_us / 1000
            ),
        ),
        (false, n) => Verdict::new(Outcome::Fail, format_args!("{what}; {n} stale interrupt(s) after stage B quieted everything")),
        (true, 0) => Verdict::new(Outcome::Fail, format_args!("{what}; with the quieting delayed, no stale interrupt showed")),
        (true, n) => Verdict::new(
            Outcome::Pass,
            format_args!("caught: {what}; with the quieting delayed, {n} stale interrupt(s) arrived in the trap window{}", if n >= STORM_BREAK { " (a level storm, stopped by masking every IOAPIC entry)" } else { "" }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handoff(control: bool, messages: u32, intx: u32) -> Handoff {
        Handoff { magic: MAGIC, control: control as u32, messages, intx }
    }

    #[test]
    fn crash_restart_with_nothing_live_is_a_skip() {
        // The guard passes only when stage A left something that could have fired.
        assert_eq!(verdict(&handoff(false, 0, 0), 4, 0, 0, 0, 200_000).outcome, Outcome::Skip);
        assert_eq!(verdict(&handoff(false, 0, 1), 4, 0, 0, 0, 200_000).outcome, Outcome::Pass);
        assert_eq!(verdict(&handoff(false, 2, 0), 4, 0, 0, 0, 200_000).outcome, Outcome::Pass);
        // A stale interrupt is a failure whatever stage A reported.
        assert_eq!(verdict(&handoff(false, 0, 0), 4, 0, 0, 3, 200_000).outcome, Outcome::Fail);
        assert_eq!(verdict(&handoff(true, 0, 1), 4, 0, 0, 5, 200_000).outcome, Outcome::Pass);
    }
}
