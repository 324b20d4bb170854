//! Crash restart with live devices (seed 003, "PCI/MSI: Mask MSI-X vectors only on success"): stage A sets
//! every device up and leaves it live (MSI-X enabled and unmasked with an interrupt pending on a masked
//! entry, INTx asserted with its IOAPIC entry unmasked, Bus Master on), every source aimed at CPU 0, then
//! jumps back to the firmware's entry with no device reset, as a kdump kernel starts. CPU 0 is the one CPU
//! that runs through the restart: an application processor idles with interrupts on and would take (and
//! acknowledge) what stage A raises, and one parked for the restart drops what it holds at its INIT. Stage B must quiet everything before it enables
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
    /// Sources stage A moved to CPU 0 from where the spread had aimed them.
    aimed: u32,
    /// Functions stage A shut down because a source could not be aimed at CPU 0 (not left live).
    unaimed: u32,
}

impl Handoff {
    fn words(&self) -> [u32; crate::arch::handoff::WORDS] {
        [self.magic, self.control, self.messages, self.intx, self.aimed, self.unaimed]
    }

    fn from_words([magic, control, messages, intx, aimed, unaimed]: [u32; crate::arch::handoff::WORDS]) -> Handoff {
        Handoff { magic, control, messages, intx, aimed, unaimed }
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
    let (aimed, unaimed) = aim_at_cpu0(active);
    let (mut messages, mut intx) = (0u32, 0u32);
    // From here nothing is handled: whatever the devices raise stays raised into the next run (every
    // source is aimed at this CPU, CPU 0: no other CPU can take it).
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
                // Counted only if no CPU took the interrupt (its count did not move: nothing
                // acknowledged the device) and the level still stands a little later.
                let taken_before = dev.irq.count(0);
                let _ = src.trigger(0);
                time::wait_until(1_000_000, || dev.irq.pending(0) != Some(false));
                time::delay_us(2_000);
                let taken = dev.irq.count(0) != taken_before;
                if dev.irq.pending(0) != Some(false) && !taken {
                    intx += 1;
                } else if taken {
                    crate::println!("msifw: crash-restart stage A: {}: a CPU took its INTx interrupt: not left asserting", dev.irq.bdf());
                }
            }
            IrqMode::None => {}
        }
    }
    let handoff = Handoff { magic: MAGIC, control: control as u32, messages, intx, aimed, unaimed };
    crate::arch::handoff::write(handoff.words());
    crate::println!("msifw: crash-restart stage A: {messages} function(s) with live messages, {intx} asserting INTx, every source aimed at CPU 0 ({aimed} moved there, {unaimed} function(s) shut down); restarting in place");
    #[cfg(target_os = "none")]
    crate::firmware::restart(start_info);
    #[cfg(not(target_os = "none"))]
    {
        let _ = start_info;
        unreachable!("restart exists only on the firmware target")
    }
}

/// Aims every source of every live device at CPU 0 (the BSP), moving it the Linux way for its mode
/// ([`crate::modes::DeviceIrq::retarget`]; an INTx line moves with every sharer): what stage A raises must
/// wait there, with interrupts off, for stage B. A source aimed at an application processor would be
/// taken there (APs idle with interrupts on, and the interrupt entry acknowledges the device) or, once
/// the AP is parked for the restart, dropped with its LAPIC state at the INIT that stage B's start sends,
/// leaving the IOAPIC entry's Remote IRR set: either way no stale interrupt reaches stage B. A function
/// whose source cannot be moved is shut down (its interrupts off: it is not left live, and not counted).
/// Returns (sources moved, functions shut down).
fn aim_at_cpu0(active: &mut [Active]) -> (u32, u32) {
    let (mut aimed, mut unaimed) = (0u32, 0u32);
    for dev in active.iter_mut().filter(|d| d.mode != IrqMode::None) {
        let sources = if dev.mode == IrqMode::Intx { 1 } else { dev.irq.vectors().len() };
        for i in 0..sources {
            if dev.irq.target(i).is_some_and(|t| t.cpu == 0) {
                continue;
            }
            match dev.irq.retarget(i, 0) {
                Ok(_) => aimed += 1,
                Err(e) => {
                    crate::println!("msifw: crash-restart stage A: {}: source {i} not aimed at CPU 0 ({e}): shut down, not left live", dev.irq.bdf());
                    dev.irq.shutdown();
                    dev.mode = IrqMode::None;
                    unaimed += 1;
                    break;
                }
            }
        }
    }
    (aimed, unaimed)
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
/// before this run could quiet anything), then traps every vector from 0x20 to 0xFE for `window_us` on
/// every online CPU (the APs run again by now: a stale interrupt aimed at one lands there) and counts what
/// arrives. Returns (retired in service, inherited from the IRR, stale in the window).
pub(crate) fn trap_window(window_us: u64) -> (u32, u64, u64) {
    const FIRST: u8 = vector::FIRST_DEVICE_VECTOR;
    const LAST: u8 = vector::LAST_DEVICE_VECTOR;
    let retired = lapic::drain_in_service();
    let cpus = crate::irq::cpus::online();
    for &c in cpus.iter() {
        for v in FIRST..=LAST {
            dispatch::set_handler_on(c, v, stale);
        }
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
    for &c in cpus.iter() {
        for v in FIRST..=LAST {
            dispatch::clear_handler_on(c, v);
        }
    }
    (retired, inherited, stale)
}

/// The verdict of stage B's trap window.
pub(crate) fn verdict(h: &Handoff, quieted: u32, retired: u32, inherited: u64, stale: u64, window_us: u64) -> Verdict {
    let control = h.control != 0;
    let mut what: heapless::String<160> = heapless::String::new();
    let _ = core::fmt::Write::write_fmt(
        &mut what,
        format_args!("stage A left {} function(s) with live messages and {} asserting INTx, all aimed at CPU 0 ({} moved)", h.messages, h.intx, h.aimed),
    );
    if h.unaimed > 0 {
        let _ = core::fmt::Write::write_fmt(&mut what, format_args!(", {} shut down (not movable to CPU 0)", h.unaimed));
    }
    match (control, stale) {
        // Nothing was left live: no stale interrupt could arrive, so its absence shows nothing.
        (false, 0) if h.messages == 0 && h.intx == 0 => Verdict::new(
            Outcome::Skip,
            format_args!("nothing to provoke: {what} (no driven device to leave live); stage B quieted {quieted} function(s)"),
        ),
        (false, 0) => Verdict::new(
            Outcome::Pass,
            format_args!(
                "{what}; stage B quieted {quieted} function(s) and all IOAPIC entries before sti, retired {retired} in-service and {inherited} pending LAPIC vector(s); no stale vector fired in {} ms",
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
        Handoff { magic: MAGIC, control: control as u32, messages, intx, aimed: 0, unaimed: 0 }
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

    #[test]
    fn the_detail_says_where_stage_a_aimed_and_what_it_shut_down() {
        let h = Handoff { aimed: 9, ..handoff(false, 3, 1) };
        let v = verdict(&h, 7, 0, 1, 0, 200_000);
        assert!(v.detail.starts_with("stage A left 3 function(s) with live messages and 1 asserting INTx, all aimed at CPU 0 (9 moved); "), "{}", v.detail);
        assert!(v.detail.ends_with("no stale vector fired in 200 ms"), "{}", v.detail);
        let h = Handoff { unaimed: 2, ..handoff(true, 1, 1) };
        let v = verdict(&h, 7, 0, 0, 0, 200_000);
        assert_eq!(v.outcome, Outcome::Fail);
        assert!(v.detail.contains("(0 moved), 2 shut down (not movable to CPU 0)"), "{}", v.detail);
    }
}
