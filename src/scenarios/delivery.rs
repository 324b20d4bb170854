//! Delivery: every source of a device, triggered, reaches its own vector exactly once per trigger on the
//! CPU it is aimed at, arrives on no other CPU, and nothing else arrives on the device's vectors.
//!
//! Every device under check is driven in the same rounds, so they share the waiting: each round triggers
//! every source of every device, waits until all of them have arrived, acknowledges them all; one settle
//! window at the end covers every device. A device's interrupts reaching another device's vectors show
//! in the exact counts, since all are live at once.
//!
//! With more than one CPU online, the counts are per CPU: a source's interrupts are counted on the CPU
//! its message (or redirection entry) names ([`crate::modes::DeviceIrq::target`]), and the same vector
//! on every other online CPU must stay where it was unless another source of the batch is aimed at that
//! CPU and vector (whose own exact count then catches an extra). After the rounds in the placement the
//! setup's spread gave ([`run_all`] only), every source is moved to each other online CPU in turn and
//! triggered once there, so each device is seen interrupting on every CPU; then it is moved back.

use super::{Outcome, Target, Verdict};
use crate::bus::pci::ConfigRegion;
use crate::drivers::{spread_sources, InterruptSource};
use crate::irq::dispatch;
use crate::modes::{DeviceIrq, MAX_VECTORS};
use crate::time;
use alloc::vec::Vec;

/// How long a triggered interrupt may take to arrive (TCG under load included). It only costs time when
/// an interrupt is lost.
pub const ARRIVAL_TIMEOUT_US: u64 = 1_000_000;
/// How long to keep watching for extra interrupts after the last one arrived, when [`settle`] cannot
/// fence instead. QEMU raises a message synchronously with the cause (or, for NVMe, in the same main-loop
/// pass that posts the completion), so a duplicate of a trigger is already here when its first message
/// is. The window is for what comes later by a timer: QEMU 7.2 e1000e's extra message on each expiry of
/// a vector's 128 us throttle timer once a message was postponed (see `E1000e::min_interval_us`); 2 ms
/// is about 15 expiries, with room for the main loop running its timers late.
pub const SETTLE_US: u64 = 2_000;

/// After a fence, how long another CPU gets to take an interrupt already requested from it (its vCPU was
/// kicked when the message arrived; this CPU takes its own before it sees the fence's timer fire).
const TAKEN_US: u64 = 50;

/// The latest any device of `targets` can send a message of its own after its last one
/// (`InterruptSource::late_message_us`); `None` if a driver does not say.
pub fn late_bound<C: ConfigRegion>(targets: &[Target<'_, '_, C>]) -> Option<u64> {
    targets.iter().try_fold(0u64, |m, (source, _)| Some(m.max(source.late_message_us()?)))
}

/// Waits out the settle window after the last expected interrupt (now): while fences are ordered
/// (HPET) and the devices bound how late they can send ([`late_bound`]), until every device-model timer
/// due by then has run ([`time::timers_run_by`]: QEMU runs the HPET's timer after every earlier one, and a
/// message such a timer sent is taken before its fence is seen), and [`TAKEN_US`] for the other CPUs;
/// else `fallback_us` (also when the fence fails). Issue 16: the default platform's settles went from
/// 2 ms to about 0.3 ms each; the `msix-delivery-control` negative control fires a timer of its own on a
/// device's vector at 90 % of this window and must see the check fail.
pub fn settle(bound: Option<u64>, fallback_us: u64) {
    let start = time::now_us();
    match bound {
        Some(us) if time::fences_ordered() => {
            if time::timers_run_by(start + us) {
                time::delay_us(TAKEN_US);
            } else {
                time::delay_us((start + fallback_us).saturating_sub(time::now_us()));
            }
        }
        _ => time::delay_us(fallback_us),
    }
}

/// The `msix-delivery-control` negative control's shot: the LAPIC timer of this CPU fired once on a
/// device's vector after the settle began, as a device-model timer's late message would be.
#[derive(Debug, Clone)]
pub struct LateShot {
    /// The target (index into the targets given) whose entry's vector was shot.
    pub target: usize,
    /// The vector.
    vector: u8,
    /// When it was due after the settle began (us).
    after_us: u64,
    /// The drivers' bound the settle kept (us).
    window_us: u64,
    /// The control's verdict, once the settle is over (or at once, when it could not be armed).
    pub verdict: Option<Verdict>,
    /// Armed and still pending when the settle began.
    armed: bool,
    /// The timer's messages that arrived before a settle began (a host that stalled the guest past the
    /// shot's delay), each known to be the one-shot timer's: not the device's.
    spent: u64,
}

/// How many times the shot is armed when the host stalls the guest past its delay before the settle.
const SHOT_TRIES: usize = 3;

/// The control's shot, or why it could not be aimed (the control is then a skip saying so).
pub type Shot = Result<LateShot, &'static str>;

/// The shortest bound the control judges: below it the settle is the fence and [`TAKEN_US`] alone, which
/// the devices' own bound does not stretch, and nothing late is claimed to be caught.
const MIN_SHOT_BOUND_US: u64 = 50;

/// Aims the shot for [`run_all`]'s `shoot` and arms it, due at 90 % of the batch's bound after the
/// settle begins (right after): on the first MSI-X device of the first batch (16 devices) still under
/// check with an entry aimed at this CPU. Returns the vector's count before the arming and the shot, or
/// why it could not be aimed. The control judges only a settle behind an ordered fence (a fixed window
/// has no guarantee to check, and on a slow host a timer may run late past it) with a bound of at least
/// [`MIN_SHOT_BOUND_US`], under TCG: there the LAPIC timer is one of QEMU's own timers, ordered with the
/// device models' like theirs; under KVM it is the kernel's, ordered with nothing in QEMU.
fn aim_late_shot<C: ConfigRegion>(targets: &[Target<'_, '_, C>], tracks: &[Track], bound: Option<u64>) -> Result<(u64, LateShot), &'static str> {
    if !time::fences_ordered() {
        return Err("the settle is the fixed window here (no HPET fence, not QEMU, or real hardware); this control judges the fenced one");
    }
    let Some(bound) = bound else {
        return Err("a driver of the batch does not bound its device's late messages: the settle is the fixed window");
    };
    if bound < MIN_SHOT_BOUND_US {
        return Err("the devices checked send nothing late (their drivers' bound is under 50 us): the settle is the fence alone");
    }
    if !crate::arch::cpu::under_tcg() {
        return Err("the LAPIC timer is not one of QEMU's own timers here (KVM keeps it in the kernel), so it cannot stand in for a device model's");
    }
    let here = crate::irq::cpus::current();
    let (target, vector) = targets
        .iter()
        .zip(tracks.iter())
        .enumerate()
        .filter(|(_, ((_, irq), t))| t.verdict.is_none() && irq.mode() == crate::modes::IrqMode::Msix)
        .find_map(|(d, ((_, irq), t))| (0..t.sources).map(|i| aim_of(irq, i)).find(|&(cpu, _)| cpu == here).map(|(_, v)| (d, v)))
        .ok_or("no MSI-X entry under check in the first batch of 16 devices is aimed at this CPU")?;
    let rate = crate::arch::lapic::timer_ticks_per_us(100).ok_or("the LAPIC timer does not count")?;
    // QEMU's APIC timer counts at 1 GHz; a rate far below any bus clock means the measurement was upset.
    if rate < 10 {
        return Err("the LAPIC timer's rate measured under 10 ticks a microsecond: not armed");
    }
    let after_us = bound * 9 / 10;
    let ticks = u32::try_from(after_us * rate).unwrap_or(u32::MAX);
    let mut shot = LateShot { target, vector, after_us, window_us: bound, verdict: None, armed: false, spent: 0 };
    for _ in 0..SHOT_TRIES {
        let before = dispatch::count_on(here, vector);
        if !crate::arch::lapic::fire_timer_after(vector, ticks) {
            return Err("the LAPIC timer could not be armed");
        }
        // Still counting and nothing arrived, read at once: the shot is late to the settle that begins
        // next. (A loaded host's scheduler can stop the guest for longer than the shot's delay: a debug
        // build's control found it fired 5 times in 8 beside other boots.)
        if crate::arch::lapic::timer_pending() && dispatch::count_on(here, vector) == before {
            shot.armed = true;
            return Ok((before, shot));
        }
        // Something arrived or the timer ran out before the settle could begin. It is not cancelled (a
        // cancel racing its running out could lose its message, which then counted against the device:
        // a tester's 3 false FAILs in 96 loaded runs): it runs out, and a fence makes QEMU run its
        // callback (due before the HPET's), so its one message is here; anything more is the device's.
        time::wait_until(ARRIVAL_TIMEOUT_US, || !crate::arch::lapic::timer_pending());
        let fenced = time::timers_run_by(time::now_us());
        let arrived = dispatch::count_on(here, vector).saturating_sub(before);
        if !fenced || arrived != 1 {
            shot.spent += u64::from(fenced && arrived >= 1);
            shot.verdict = Some(Verdict::new(
                Outcome::Skip,
                format_args!("{arrived} message(s) on vector {vector:#x} before the settle began, one of them the timer's: nothing late was provoked"),
            ));
            return Ok((dispatch::count_on(here, vector), shot));
        }
        shot.spent += 1;
    }
    shot.verdict = Some(Verdict::new(
        Outcome::Skip,
        format_args!("the host stopped the guest longer than the shot's {after_us} us delay {SHOT_TRIES} times before the settle began: nothing late was provoked"),
    ));
    Ok((dispatch::count_on(here, vector), shot))
}

/// Devices driven together; larger sets run in batches of this many (bounds the stack).
const BATCH: usize = 16;

/// Where one entry of a device is aimed: (CPU index, vector).
type Aim = (usize, u8);

/// What is tracked per device under check.
struct Track {
    /// Sources driven: the driver's, as far as the device has vectors for them.
    sources: usize,
    /// Counts per entry before the first trigger of the current phase.
    before: [u64; MAX_VECTORS],
    /// When each source was last triggered, for its minimum interval.
    last: [Option<u64>; MAX_VECTORS],
    /// Where each entry is aimed in the current phase.
    aim: Vec<Aim>,
    /// Per entry, per online CPU (in [`Cpus::online`] order): the count of the entry's vector on that
    /// CPU before the phase.
    elsewhere: Vec<Vec<u64>>,
    /// Where each entry was aimed by the setup (restored after the rotation).
    home: Vec<usize>,
    /// Interrupts verified per online CPU (in [`Cpus::online`] order).
    tally: Vec<u64>,
    /// Its sources can be moved one by one ([`spread_sources`]).
    movable: bool,
    /// Set once the device has failed (or was skipped); it is then left alone.
    verdict: Option<Verdict>,
}

/// The online CPUs, by index.
struct Cpus {
    online: Vec<usize>,
}

impl Cpus {
    fn now() -> Cpus {
        let mut online = crate::arch::smp::online();
        if online.is_empty() {
            online.push(0);
        }
        Cpus { online }
    }

    fn position(&self, cpu: usize) -> Option<usize> {
        self.online.iter().position(|&c| c == cpu)
    }
}

/// Where entry `i` of `irq` is aimed: its target, or CPU 0 and its vector when the mode records none.
fn aim_of<C: ConfigRegion>(irq: &DeviceIrq<'_, C>, i: usize) -> Aim {
    match irq.target(i) {
        Some(t) => (t.cpu, t.vector),
        None => (0, irq.vector(i).unwrap_or(0)),
    }
}

/// Triggers each source `rounds` times, waits for its interrupt, acknowledges it; then checks the exact
/// counts on every vector of the device, per CPU.
pub fn run<C: ConfigRegion>(source: &mut dyn InterruptSource, irq: &mut DeviceIrq<'_, C>, rounds: u32) -> Verdict {
    let mut targets: [Target<'_, '_, C>; 1] = [(source, irq)];
    let (cpus, mut tracks) = begin(&targets);
    let start = time::now_us();
    phase(&mut targets, &mut tracks, &cpus, rounds, None);
    let mut verdict = None;
    finish(&mut tracks, &cpus, rounds, 1, time::now_us() - start, |_, v| verdict = Some(v));
    verdict.unwrap_or_else(|| Verdict::new(Outcome::Fail, format_args!("no verdict")))
}

/// [`run`] on every target at once, sharing the waits, and then (with more than one CPU online) every
/// source once on each other CPU; `report(i, verdict)` for target `i`, in order. `shoot`: the
/// `msix-delivery-control` negative control, a [`LateShot`] in the first settle window (returned, or why it
/// could not be aimed; `None` when not asked for).
pub fn run_all<C: ConfigRegion + Sync>(targets: &mut [Target<'_, '_, C>], rounds: u32, shoot: bool, mut report: impl FnMut(usize, Verdict)) -> Option<Shot> {
    let mut shot = None;
    for (b, batch) in targets.chunks_mut(BATCH).enumerate() {
        let (cpus, mut tracks) = begin(batch);
        let start = time::now_us();
        let mut aim = (shoot && b == 0).then_some(None);
        phase(batch, &mut tracks, &cpus, rounds, aim.as_mut());
        if let Some(Some(s)) = aim {
            shot = Some(s);
        }
        let mut moved_over = 1;
        if cpus.online.len() > 1 {
            for k in 1..cpus.online.len() {
                move_all(batch, &mut tracks, &cpus, |home| cpus.online[(cpus.position(home).unwrap_or(0) + k) % cpus.online.len()]);
                phase(batch, &mut tracks, &cpus, 1, None);
            }
            move_all(batch, &mut tracks, &cpus, |home| home);
            moved_over = cpus.online.len();
        }
        finish(&mut tracks, &cpus, rounds, moved_over, time::now_us() - start, |i, v| report(b * BATCH + i, v));
    }
    shot
}

/// What is tracked for a batch, before anything is triggered.
fn begin<C: ConfigRegion>(targets: &[Target<'_, '_, C>]) -> (Cpus, heapless::Vec<Track, BATCH>) {
    let cpus = Cpus::now();
    let tracks = targets
        .iter()
        .map(|(source, irq)| {
            let sources = source.sources().min(irq.vectors().len());
            let verdict = (sources == 0).then(|| Verdict::new(Outcome::Skip, format_args!("no interrupt source driven")));
            let home = (0..irq.vectors().len()).map(|i| aim_of(irq, i).0).collect();
            Track {
                sources,
                before: [0; MAX_VECTORS],
                last: [None; MAX_VECTORS],
                aim: Vec::new(),
                elsewhere: Vec::new(),
                home,
                tally: alloc::vec![0; cpus.online.len()],
                movable: spread_sources(irq.mode(), irq.vectors().len()) > 0,
                verdict,
            }
        })
        .collect();
    (cpus, tracks)
}

/// Each device's verdict: its failure, or the pass with where its interrupts arrived.
fn finish(tracks: &mut [Track], cpus: &Cpus, rounds: u32, moved_over: usize, elapsed: u64, mut report: impl FnMut(usize, Verdict)) {
    for (d, t) in tracks.iter_mut().enumerate() {
        let verdict = t.verdict.take().unwrap_or_else(|| pass_verdict(t, cpus, rounds, moved_over, elapsed));
        report(d, verdict);
    }
}

/// Moves every entry of every device still under check to the CPU `to(home)` names (home: where the
/// setup aimed it), as far as the mode lets entries move alone ([`spread_sources`]).
fn move_all<C: ConfigRegion + Sync>(targets: &mut [Target<'_, '_, C>], tracks: &mut [Track], cpus: &Cpus, to: impl Fn(usize) -> usize) {
    for ((_, irq), t) in targets.iter_mut().zip(tracks.iter_mut()).filter(|(_, t)| t.verdict.is_none()) {
        let movable = spread_sources(irq.mode(), irq.vectors().len());
        for i in 0..movable {
            let cpu = to(t.home[i]);
            if cpus.position(cpu).is_none() || aim_of(irq, i).0 == cpu {
                continue;
            }
            if let Err(e) = irq.retarget(i, cpu) {
                t.verdict = Some(Verdict::new(Outcome::Fail, format_args!("entry {i}: moving it to CPU {cpu} failed: {e}")));
                break;
            }
        }
    }
}

/// One phase: where every entry is aimed now, `rounds` triggers of each source, the settle window, and
/// the exact counts per CPU.
fn phase<C: ConfigRegion>(targets: &mut [Target<'_, '_, C>], tracks: &mut [Track], cpus: &Cpus, rounds: u32, mut shoot: Option<&mut Option<Shot>>) {
    for ((_, irq), t) in targets.iter().zip(tracks.iter_mut()) {
        let n = irq.vectors().len();
        t.aim = (0..n).map(|i| aim_of(irq, i)).collect();
        for i in 0..n {
            t.before[i] = irq.count(i);
        }
        t.elsewhere = t.aim.iter().map(|&(_, v)| cpus.online.iter().map(|&c| dispatch::count_on(c, v)).collect()).collect();
    }
    for round in 0..rounds {
        trigger_round(targets, tracks);
        let expected = |t: &Track, i: usize| t.before[i] + round as u64 + 1;
        time::wait_until(ARRIVAL_TIMEOUT_US, || {
            targets.iter().zip(tracks.iter()).filter(|(_, t)| t.verdict.is_none()).all(|((_, irq), t)| (0..t.sources).all(|i| irq.count(i) >= expected(t, i)))
        });
        for ((source, irq), t) in targets.iter_mut().zip(tracks.iter_mut()).filter(|(_, t)| t.verdict.is_none()) {
            if let Some(i) = (0..t.sources).find(|&i| irq.count(i) < expected(t, i)) {
                let (cpu, vector) = t.aim[i];
                t.verdict = Some(Verdict::new(
                    Outcome::Fail,
                    format_args!(
                        "source {i} (vector {vector:#x} on CPU {cpu}): no interrupt within {} ms of the trigger (round {round}){}",
                        ARRIVAL_TIMEOUT_US / 1000,
                        Landed { cpus, vector, aimed: cpu, before: &t.elsewhere[i] }
                    ),
                ));
                continue;
            }
            for i in 0..t.sources {
                if let Err(e) = source.acknowledge(i) {
                    t.verdict = Some(Verdict::new(Outcome::Fail, format_args!("source {i}: acknowledge failed: {e}")));
                    break;
                }
                irq.rearm(i);
            }
        }
    }
    let bound = late_bound(targets);
    let here = crate::irq::cpus::current();
    // The control: aimed (and armed) now, judged after the settle.
    let mut armed: Option<(u64, LateShot)> = None;
    if let Some(slot) = shoot.as_mut() {
        match aim_late_shot(targets, tracks, bound) {
            Ok(a) => armed = Some(a),
            Err(why) => **slot = Some(Err(why)),
        }
    }
    settle(bound, SETTLE_US);
    // (Whether the timer ran out, what arrived on its vector since the arming.)
    let landed = armed.as_ref().map(|(before, s)| {
        if s.armed {
            (crate::arch::lapic::cancel_timer(), dispatch::count_on(here, s.vector).saturating_sub(*before))
        } else {
            (false, 0)
        }
    });
    // Every (CPU, vector) some entry of the batch is aimed at: an interrupt there is that entry's.
    let aimed: Vec<Aim> = tracks.iter().flat_map(|t| t.aim.iter().copied()).collect();
    for (d, ((_, irq), t)) in targets.iter().zip(tracks.iter_mut()).enumerate().filter(|(_, (_, t))| t.verdict.is_none()) {
        if let (Some((_, s)), Some((fired, count))) = (armed.as_mut(), landed) {
            if s.target == d {
                if s.armed {
                    s.verdict = Some(judge_shot(s, fired, count, || counts_check(irq, t, cpus, &aimed, rounds)));
                }
                // The one-shot timer's messages are not the device's: its own check is made without them
                // (any other interrupt on the vector still counts against the device).
                let timer = s.spent + (fired && count >= 1) as u64;
                if let Some(i) = (0..t.sources).find(|&i| t.aim[i] == (here, s.vector)) {
                    t.before[i] += timer;
                }
            }
        }
        match counts_check(irq, t, cpus, &aimed, rounds) {
            None => {
                for i in 0..t.sources {
                    if let Some(p) = cpus.position(t.aim[i].0) {
                        t.tally[p] += rounds as u64;
                    }
                }
            }
            failed => t.verdict = failed,
        }
    }
    if let (Some(slot), Some((_, s))) = (shoot, armed) {
        *slot = Some(Ok(s));
    }
}

/// The control's verdict on a shot still pending when the settle began: the timer must have fired by its
/// end, exactly one interrupt (the timer's) must have arrived on the vector meanwhile, and the device's
/// delivery check, judged with it, must fail.
fn judge_shot(s: &LateShot, fired: bool, count: u64, check: impl FnOnce() -> Option<Verdict>) -> Verdict {
    let (v, after, window) = (s.vector, s.after_us, s.window_us);
    if !fired || count == 0 {
        return Verdict::new(
            Outcome::Fail,
            format_args!("missed: a timer's message on vector {v:#x} due {after} us after the settle began had not arrived by its end ({window} us bound)"),
        );
    }
    if count > 1 {
        return Verdict::new(
            Outcome::Fail,
            format_args!("{count} interrupts on vector {v:#x} during the settle: the timer's and {} the device should not have sent", count - 1),
        );
    }
    match check() {
        Some(f) if f.outcome == Outcome::Fail => Verdict::new(
            Outcome::Pass,
            format_args!(
                "caught: a timer's message on vector {v:#x} {after} us after the settle began, in a {window} us bound{}: {}",
                if s.spent > 0 { " (armed again after the host stopped the guest past its delay)" } else { "" },
                f.detail
            ),
        ),
        _ => Verdict::new(Outcome::Fail, format_args!("a timer's message on vector {v:#x} arrived in the settle, but the delivery check did not fail on it")),
    }
}

/// Triggers every source of every device still under check once, each as soon as its own minimum
/// interval since its previous trigger has passed (other sources are triggered meanwhile).
fn trigger_round<C: ConfigRegion>(targets: &mut [Target<'_, '_, C>], tracks: &mut [Track]) {
    let mut next = [0usize; BATCH];
    loop {
        let mut waiting = false;
        for (((source, _), t), next) in targets.iter_mut().zip(tracks.iter_mut()).zip(next.iter_mut()) {
            while t.verdict.is_none() && *next < t.sources {
                let i = *next;
                let now = time::now_us();
                if t.last[i].is_some_and(|last| now - last < source.min_interval_us()) {
                    waiting = true;
                    break;
                }
                if let Err(e) = source.trigger(i) {
                    t.verdict = Some(Verdict::new(Outcome::Fail, format_args!("source {i}: trigger failed: {e}")));
                    break;
                }
                t.last[i] = Some(now);
                *next += 1;
            }
        }
        if !waiting {
            return;
        }
        core::hint::spin_loop();
    }
}

/// Where a vector's interrupts went meanwhile, on the CPUs other than the one it was aimed at (for a
/// lost interrupt's detail: it may have reached another CPU).
struct Landed<'a> {
    cpus: &'a Cpus,
    vector: u8,
    aimed: usize,
    before: &'a [u64],
}

impl core::fmt::Display for Landed<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (p, &c) in self.cpus.online.iter().enumerate().filter(|&(_, &c)| c != self.aimed) {
            let got = dispatch::count_on(c, self.vector).saturating_sub(self.before.get(p).copied().unwrap_or(0));
            if got > 0 {
                write!(f, "; {got} arrived on CPU {c} instead")?;
            }
        }
        Ok(())
    }
}

/// One mismatch found by [`counts_check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// Entry `entry` (vector) got `got` interrupts on the CPU it was aimed at, `want` expected.
    Count { entry: usize, vector: u8, cpu: usize, got: u64, want: u64 },
    /// Entry `entry`'s vector got `got` interrupts on `cpu`, which it was not aimed at (aimed at `aimed`)
    /// and which no other entry of the batch is aimed at with that vector.
    Elsewhere { entry: usize, vector: u8, cpu: usize, aimed: usize, got: u64 },
}

impl core::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Mismatch::Count { entry, vector, cpu, got, want } => {
                write!(f, "vector {vector:#x} (entry {entry}) on CPU {cpu}: {got} interrupts, expected {want}")
            }
            Mismatch::Elsewhere { entry, vector, cpu, aimed, got } => {
                write!(f, "vector {vector:#x} (entry {entry}, aimed at CPU {aimed}): {got} interrupts on CPU {cpu}")
            }
        }
    }
}

/// The pure judgement of one device's phase: `got[i]` interrupts counted for entry `i` on the CPU it is
/// aimed at (`aim[i]`), `want[i]` expected; `elsewhere[i][p]` interrupts of entry `i`'s vector on online
/// CPU `online[p]` during the phase; `aimed`: every (CPU, vector) of the batch an entry is aimed at.
pub fn judge(aim: &[Aim], got: &[u64], want: &[u64], online: &[usize], elsewhere: &[Vec<u64>], aimed: &[Aim]) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for (i, &(cpu, vector)) in aim.iter().enumerate() {
        let (g, w) = (got.get(i).copied().unwrap_or(0), want.get(i).copied().unwrap_or(0));
        if g != w {
            out.push(Mismatch::Count { entry: i, vector, cpu, got: g, want: w });
        }
        for (p, &c) in online.iter().enumerate() {
            let n = elsewhere.get(i).and_then(|e| e.get(p)).copied().unwrap_or(0);
            if c != cpu && n > 0 && !aimed.contains(&(c, vector)) {
                out.push(Mismatch::Elsewhere { entry: i, vector, cpu: c, aimed: cpu, got: n });
            }
        }
    }
    out
}

/// The exact counts of one device's phase: `rounds` on each driven entry on its CPU, none on the
/// others, and nothing on the same vectors on other CPUs no entry is aimed at. The failure, if any.
fn counts_check<C: ConfigRegion>(irq: &DeviceIrq<'_, C>, t: &Track, cpus: &Cpus, aimed: &[Aim], rounds: u32) -> Option<Verdict> {
    let n = irq.vectors().len().min(t.aim.len());
    let got: Vec<u64> = (0..n).map(|i| irq.count(i).saturating_sub(t.before[i])).collect();
    let want: Vec<u64> = (0..n).map(|i| if i < t.sources { rounds as u64 } else { 0 }).collect();
    let elsewhere: Vec<Vec<u64>> = (0..n)
        .map(|i| cpus.online.iter().enumerate().map(|(p, &c)| dispatch::count_on(c, t.aim[i].1).saturating_sub(t.elsewhere[i][p])).collect())
        .collect();
    let found = judge(&t.aim[..n], &got, &want, &cpus.online, &elsewhere, aimed);
    if found.is_empty() {
        return None;
    }
    let mut text: heapless::String<220> = heapless::String::new();
    for (k, m) in found.iter().enumerate() {
        let _ = core::fmt::Write::write_fmt(&mut text, format_args!("{}{m}", if k == 0 { "" } else { "; " }));
    }
    Some(Verdict::new(Outcome::Fail, format_args!("{text}")))
}

/// The pass: the setup placement's count, where each arrived, and the tour of the other CPUs.
fn pass_verdict(t: &Track, cpus: &Cpus, rounds: u32, moved_over: usize, elapsed: u64) -> Verdict {
    let n = t.sources;
    crate::info!("delivery: {=usize} sources x {=u32} rounds in {=u64} us", n, rounds, elapsed);
    if cpus.online.len() == 1 {
        return Verdict::new(
            Outcome::Pass,
            format_args!("{} interrupts on {n} vector(s), each exactly as triggered, in {elapsed} us", n as u64 * rounds as u64),
        );
    }
    let tour = match (moved_over > 1, t.movable) {
        (true, true) => "; then every source once on each other CPU",
        (true, false) => "; not moved (multiple-message MSI moves only as a whole)",
        _ => "",
    };
    Verdict::new(
        Outcome::Pass,
        format_args!(
            "{} interrupts on {n} vector(s), each exactly as triggered, on its CPU only{tour}; per CPU {}; in {elapsed} us",
            n as u64 * rounds as u64,
            PerCpu { cpus, tally: &t.tally }
        ),
    )
}

/// `0:4 1:2 2:2 3:2`: interrupts per CPU index.
struct PerCpu<'a> {
    cpus: &'a Cpus,
    tally: &'a [u64],
}

impl core::fmt::Display for PerCpu<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (k, (&c, &n)) in self.cpus.online.iter().zip(self.tally.iter()).enumerate() {
            write!(f, "{}{c}:{n}", if k == 0 { "" } else { " " })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn exactly_once_on_the_aimed_cpu_passes() {
        let aim = [(1, 0x30), (2, 0x30)];
        let e = vec![vec![0, 2, 0], vec![0, 0, 2]];
        assert!(judge(&aim, &[2, 2], &[2, 2], &[0, 1, 2], &e, &aim).is_empty(), "each vector's count on its own CPU is its own");
    }

    #[test]
    fn an_interrupt_on_another_cpu_with_the_same_vector_is_caught() {
        // Entry 0 aimed at CPU 1, vector 0x31; one interrupt landed on CPU 3's 0x31, which nobody is aimed at.
        let aim = [(1, 0x31)];
        let e = vec![vec![0, 2, 0, 1]];
        let found = judge(&aim, &[2], &[2], &[0, 1, 2, 3], &e, &aim);
        assert_eq!(found, vec![Mismatch::Elsewhere { entry: 0, vector: 0x31, cpu: 3, aimed: 1, got: 1 }]);
        assert_eq!(alloc::format!("{}", found[0]), "vector 0x31 (entry 0, aimed at CPU 1): 1 interrupts on CPU 3");
    }

    #[test]
    fn lost_and_duplicated_are_count_mismatches() {
        let aim = [(0, 0x40), (0, 0x41)];
        let e = vec![vec![1], vec![3]];
        let found = judge(&aim, &[1, 3], &[2, 2], &[0], &e, &aim);
        assert_eq!(
            found,
            vec![Mismatch::Count { entry: 0, vector: 0x40, cpu: 0, got: 1, want: 2 }, Mismatch::Count { entry: 1, vector: 0x41, cpu: 0, got: 3, want: 2 }]
        );
    }

    #[test]
    fn a_vector_another_entry_is_aimed_at_there_is_judged_by_that_entrys_count() {
        // Entry 0 on (CPU 0, 0x30); another device's entry on (CPU 1, 0x30): CPU 1's count of 0x30 is its.
        let aim = [(0, 0x30)];
        let e = vec![vec![2, 2]];
        assert!(judge(&aim, &[2], &[2], &[0, 1], &e, &[(0, 0x30), (1, 0x30)]).is_empty());
    }
}
