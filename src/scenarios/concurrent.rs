//! `intx-concurrent`: two CPUs taking the interrupts of one shared INTx line at the same instant.
//!
//! Two (or more) driven functions share one level-triggered line (GSI). Its redirection entry is aimed
//! at two CPUs at once: a logical destination naming both, fixed delivery (SDM 11.6.2.2 / 11.6.2.4: a
//! fixed interrupt goes to every CPU of the set; 82093AA 3.2.4), so every message the IOAPIC sends for the
//! line reaches both CPUs together and both run the line's handler for the same assertion, in parallel
//! where the accelerator runs each vCPU in a thread of its own (MTTCG, QEMU's default on x86, and KVM;
//! with `-accel tcg,thread=single` they interleave instead). What the check proves is that both CPUs
//! took the same assertion, not that their handlers overlapped in time. The handlers then race for the same sharers: each
//! asks every sharer whether it asserts (Status.Interrupt), claims and masks the one that does, and the
//! other finds nothing left to claim (a delivery the line's re-delivery bound absorbs).
//!
//! Each round asserts every sharer back to back (so the line is high for all of them at once), waits
//! until every sharer was claimed, acknowledges them at the device and re-arms them. Passes only when:
//! every sharer was claimed exactly once per round (a claim lost to the race, or made twice by both CPUs,
//! fails); both CPUs took the line's vector in every round (else the concurrency was not provoked, and
//! the check says so as a failure); the deliveries the handler counted as unclaimed (beyond its
//! re-delivery bound) are at most one per claim, the other CPU's copy of a claimed assertion (KVM's
//! IOAPIC re-sends a level still high at each CPU's EOI: 27-35 of 400 claims under nested KVM; TCG shows
//! the second CPU's copy too: 252 of 400 with two sharers, 550 of 800 with four),
//! so a line left asserting (a storm) fails; and nothing arrived on a CPU outside the two. Then the line
//! is aimed back where the setup put it.
//!
//! Its negative control runs the same rounds with the line aimed at its one CPU, as the setup left it:
//! the check must then find that the second CPU never took the line ("concurrency not provoked"), which
//! shows the per-CPU evidence of concurrency is not vacuous (counts that did not tell CPUs apart would
//! pass it).
//!
//! Needs two online CPUs an 8-bit logical destination can name together (xAPIC flat, or x2APIC cluster
//! 0 members 0-7) and a line with two driven INTx functions; otherwise a SKIP saying which is missing.

use super::context::Context;
use super::delivery::{ARRIVAL_TIMEOUT_US, SETTLE_US};
use super::destinations::logical_byte;
use super::{Outcome, Provoked, Verdict};
use crate::arch::lapic::{self, Mode};
use crate::arch::smp::{self, CpuState};
use crate::bus::pci::Bdf;
use crate::irq::{dispatch, intx};
use crate::irq::vector::{self, Pool, VectorBlock};
use crate::modes::{Delivery, Destination, IrqMode};
use crate::time;
use alloc::vec::Vec;

/// Rounds: each asserts every sharer once.
pub const ROUNDS: u32 = 200;
/// Rounds of the negative control.
pub const CONTROL_ROUNDS: u32 = 20;
/// How long a control round waits for the CPU the line is not aimed at.
const CONTROL_WAIT_US: u64 = 20_000;

const NAME: &str = "intx-concurrent";

/// What the rounds measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Measured {
    /// Rounds run.
    pub rounds: u32,
    /// Claims counted per sharer (in the order of the sharers).
    pub claims: Vec<u64>,
    /// Rounds in which both CPUs took the line's vector.
    pub both: u32,
    /// Interrupts of the line's vector per CPU of the pair.
    pub per_cpu: [u64; 2],
    /// Interrupts of the vector on online CPUs outside the pair.
    pub outside: u64,
    /// Deliveries on the line no sharer claimed (beyond the handler's re-delivery bound); up to one per
    /// claim is the second CPU's copy of a claimed assertion.
    pub unclaimed: u64,
    /// Re-deliveries absorbed (the second CPU's delivery of a claimed level, mostly).
    pub redelivered: u64,
    /// A round whose claims did not all come within the timeout.
    pub lost_round: Option<u32>,
}

/// The pure verdict of the measurement.
pub fn judge(m: &Measured) -> (Outcome, heapless::String<200>) {
    let mut why: heapless::String<200> = heapless::String::new();
    let mut add = |args: core::fmt::Arguments| {
        let sep = if why.is_empty() { "" } else { "; " };
        let _ = core::fmt::Write::write_fmt(&mut why, format_args!("{sep}{args}"));
    };
    if let Some(r) = m.lost_round {
        add(format_args!("round {r}: not every sharer was claimed within {} ms", ARRIVAL_TIMEOUT_US / 1000));
    }
    for (s, &c) in m.claims.iter().enumerate() {
        if c != m.rounds as u64 {
            add(format_args!("sharer {s}: {c} claims for {} assertions", m.rounds));
        }
    }
    if m.both != m.rounds {
        add(format_args!("both CPUs took the line in only {} of {} rounds (concurrency not provoked)", m.both, m.rounds));
    }
    // Each claimed assertion's message also reaches the other CPU, whose handler finds nothing left to
    // claim: one unclaimed delivery per claim is the destination doing its job (the handler absorbs most
    // as re-deliveries; KVM's IOAPIC also re-sends a level still high at each CPU's EOI). More is a storm.
    let allowed: u64 = m.claims.iter().sum();
    if m.unclaimed > allowed {
        add(format_args!("{} deliveries unclaimed, more than the {allowed} claims' second deliveries", m.unclaimed));
    }
    if m.outside > 0 {
        add(format_args!("{} interrupts on CPUs outside the two", m.outside));
    }
    (if why.is_empty() { Outcome::Pass } else { Outcome::Fail }, why)
}

/// The control's verdict from its measurement (the line aimed at one CPU): it passes when the check
/// failed for want of concurrency, and only for that.
pub fn judge_control(m: &Measured) -> (Outcome, heapless::String<200>) {
    let (outcome, why) = judge(m);
    let only_that = m.lost_round.is_none() && m.claims.iter().all(|&c| c == m.rounds as u64) && m.unclaimed == 0 && m.outside == 0;
    if outcome == Outcome::Fail && m.both == 0 && only_that {
        let mut caught: heapless::String<200> = heapless::String::new();
        let _ = core::fmt::Write::write_fmt(&mut caught, format_args!("caught: {why}"));
        (Outcome::Pass, caught)
    } else {
        let mut missed: heapless::String<200> = heapless::String::new();
        let _ = core::fmt::Write::write_fmt(&mut missed, format_args!("not caught as the lack of concurrency alone: {}", if why.is_empty() { "the check passed" } else { why.as_str() }));
        (Outcome::Fail, missed)
    }
}

/// The step ([`crate::scenarios::Stage::Live`]).
pub(crate) fn step(ctx: &mut Context<'_>) {
    let (bdf, verdict, control) = run(ctx);
    crate::info!("intx-concurrent: {=str}", verdict.outcome.name());
    ctx.run.scenario(NAME, bdf, &verdict);
    if let Some((v, provoked)) = control {
        ctx.run.control(NAME, bdf, &v, provoked, "no sharer asserted the line");
    }
}

/// The scenario's bdf, verdict, and its control's verdict with what it provoked (when it ran).
type Ran = (Option<Bdf>, Verdict, Option<(Verdict, Provoked)>);

fn skip(why: core::fmt::Arguments) -> Ran {
    (None, Verdict::new(Outcome::Skip, why), None)
}

fn run(ctx: &mut Context<'_>) -> Ran {
    let Some(mode) = lapic::current_mode() else { return skip(format_args!("the local APIC is not initialised")) };
    // Two online CPUs one logical destination names together.
    let pair: Vec<(usize, u8)> = smp::cpus()
        .into_iter()
        .filter(|c| matches!(c.state, CpuState::Online))
        .filter_map(|c| logical_byte(mode, c.logical_id).map(|b| (c.index, b)))
        .take(2)
        .collect();
    if smp::online().len() < 2 {
        return skip(format_args!("one CPU online: two CPUs are needed to take the line at once"));
    }
    if pair.len() < 2 {
        return skip(format_args!("no two online CPUs that one 8-bit logical destination can name"));
    }
    // The line with the most driven INTx functions (at least two).
    let mut lines: Vec<(u32, Vec<usize>)> = Vec::new();
    for (k, a) in ctx.active.iter().enumerate().filter(|(_, a)| a.mode == IrqMode::Intx && a.dev.source_ref().sources() > 0) {
        let Some(route) = a.irq.intx_route() else { continue };
        match lines.iter_mut().find(|(g, _)| *g == route.gsi) {
            Some((_, v)) => v.push(k),
            None => lines.push((route.gsi, alloc::vec![k])),
        }
    }
    let Some((gsi, sharers)) = lines.into_iter().filter(|(_, s)| s.len() >= 2).max_by_key(|(_, s)| s.len()) else {
        return skip(format_args!("no INTx line with two driven functions on it (drive two functions sharing a GSI in INTx mode, e.g. nomsi on pc)"));
    };
    let first = sharers[0];
    let bdf = ctx.active[first].irq.bdf();
    let Some(home) = ctx.active[first].irq.target(0) else {
        return (Some(bdf), Verdict::new(Outcome::Fail, format_args!("GSI {gsi}: the line has no target")), None);
    };
    let (a_cpu, b_cpu) = (pair[0].0, pair[1].0);
    let bits = pair[0].1 | pair[1].1;
    let dest = match mode {
        Mode::XApic => Destination::LogicalFlat(bits),
        Mode::X2Apic => Destination::LogicalCluster(bits as u32),
    };
    // The line's vector owned on both CPUs (it is its own on its target CPU).
    let mut reserved: Vec<VectorBlock> = Vec::new();
    for c in [a_cpu, b_cpu].into_iter().filter(|&c| c != home.cpu) {
        match reserve(c, home.vector) {
            Some(b) => reserved.push(b),
            None => {
                return (
                    Some(bdf),
                    Verdict::new(Outcome::Skip, format_args!("GSI {gsi}: the line's vector {:#x} is taken on CPU {c}, so the line cannot be aimed there too", home.vector)),
                    None,
                )
            }
        }
    }
    // ... and its handler there (the line's handler finds the line by its vector on any CPU once it is
    // aimed at more than one).
    let extra: Vec<usize> = [a_cpu, b_cpu].into_iter().filter(|&c| c != home.cpu).collect();
    for &c in &extra {
        dispatch::set_handler_on(c, home.vector, intx::handler());
    }
    if let Err(e) = ctx.active[first].irq.set_destination(0, dest, Delivery::Fixed) {
        for &c in &extra {
            dispatch::clear_handler_on(c, home.vector);
        }
        return (Some(bdf), Verdict::new(Outcome::Fail, format_args!("GSI {gsi}: aiming the line at CPUs {a_cpu} and {b_cpu} ({dest:?}) failed: {e}")), None);
    }
    let m = rounds(ctx, gsi, &sharers, home.vector, [a_cpu, b_cpu], ROUNDS, ARRIVAL_TIMEOUT_US);
    let apic = smp::apic_id(home.cpu).unwrap_or(0);
    let back = ctx.active[first].irq.set_destination(0, Destination::Physical(apic), Delivery::Fixed);
    for &c in &extra {
        dispatch::clear_handler_on(c, home.vector);
    }
    drop(reserved);
    let (outcome, why) = judge(&m);
    let names: Vec<Bdf> = sharers.iter().map(|&k| ctx.active[k].irq.bdf()).collect();
    let mut v = Verdict::new(
        outcome,
        format_args!(
            "GSI {gsi} (vector {:#x}) shared by {} functions, aimed at CPUs {a_cpu} and {b_cpu} at once ({dest:?}): {} rounds, claims {:?}, both CPUs took it in {} rounds, CPU {a_cpu} {} / CPU {b_cpu} {} interrupts, {} re-deliveries absorbed, {} unclaimed{}{}",
            home.vector,
            names.len(),
            m.rounds,
            m.claims,
            m.both,
            m.per_cpu[0],
            m.per_cpu[1],
            m.redelivered,
            m.unclaimed,
            if why.is_empty() { "" } else { "; " },
            why
        ),
    );
    if let Err(e) = back {
        v = Verdict::new(Outcome::Fail, format_args!("{}; aiming the line back at CPU {} failed: {e}", v.detail, home.cpu));
        return (Some(bdf), v, None);
    }
    // The control: the same rounds with the line on its one CPU (the other CPU of the pair never takes it).
    let other = if home.cpu == a_cpu { b_cpu } else { a_cpu };
    // The other CPU is never aimed at here, so a short wait for it is enough (it would not come later).
    let c = rounds(ctx, gsi, &sharers, home.vector, [home.cpu, other], CONTROL_ROUNDS, CONTROL_WAIT_US);
    let (outcome, why) = judge_control(&c);
    let control = Verdict::new(
        outcome,
        format_args!("GSI {gsi} aimed at CPU {} only: {} rounds, claims {:?}, both CPUs took it in {} rounds; {why}", home.cpu, c.rounds, c.claims, c.both),
    );
    (Some(bdf), v, Some((control, Provoked { asserted_lines: sharers.len() as u32, ..Provoked::default() })))
}

/// Takes `vector` on `cpu` (the allocator hands out the lowest free first; the ones below are given back).
fn reserve(cpu: usize, vector: u8) -> Option<VectorBlock> {
    if vector::allocated_on(cpu).contains(&vector) {
        return None;
    }
    let pool = if vector >= vector::FIRST_INTX_VECTOR { Pool::Intx } else { Pool::Message };
    let mut below = Vec::new();
    loop {
        let b = VectorBlock::alloc_on(cpu, pool, 1).ok()?;
        if b.base() == vector {
            return Some(b);
        }
        if b.base() > vector {
            return None;
        }
        below.push(b);
    }
}

/// `n` rounds; each waits up to `both_us` after the claims for both CPUs of `pair` to have taken the
/// line (a vCPU of a loaded host may run milliseconds late; waiting keeps one round's message from
/// merging with the next one's in that CPU's IRR).
fn rounds(ctx: &mut Context<'_>, gsi: u32, sharers: &[usize], vector: u8, pair: [usize; 2], n: u32, both_us: u64) -> Measured {
    let online = smp::online();
    let count = |c: usize| dispatch::count_on(c, vector);
    let outside_before: u64 = online.iter().filter(|c| !pair.contains(c)).map(|&c| count(c)).sum();
    let pair_before = [count(pair[0]), count(pair[1])];
    let claims_of = |ctx: &Context<'_>, k: usize| intx::count(ctx.active[k].irq.bdf());
    let claims_before: Vec<u64> = sharers.iter().map(|&k| claims_of(ctx, k)).collect();
    let redelivered_before: u64 = sharers.iter().map(|&k| intx::redeliveries(ctx.active[k].irq.bdf())).sum();
    let unclaimed_before = intx::line(gsi).map_or(0, |l| l.unclaimed);
    let mut m = Measured { rounds: 0, claims: alloc::vec![0; sharers.len()], ..Measured::default() };
    for round in 0..n {
        let at_start = [count(pair[0]), count(pair[1])];
        let expected: Vec<u64> = sharers.iter().map(|&k| claims_of(ctx, k) + 1).collect();
        // Every sharer asserts, back to back: the line is high for all of them at once.
        for &k in sharers {
            let _ = ctx.active[k].dev.source().trigger(0);
        }
        let claimed = time::wait_until(ARRIVAL_TIMEOUT_US, || sharers.iter().zip(expected.iter()).all(|(&k, &e)| claims_of(ctx, k) >= e));
        // The second CPU's delivery of the same message may still be on its way.
        time::wait_until(both_us, || count(pair[0]) > at_start[0] && count(pair[1]) > at_start[1]);
        if count(pair[0]) > at_start[0] && count(pair[1]) > at_start[1] {
            m.both += 1;
        }
        for &k in sharers {
            let a = &mut ctx.active[k];
            let _ = a.dev.source().acknowledge(0);
            a.irq.rearm(0);
        }
        m.rounds = round + 1;
        if !claimed {
            m.lost_round = Some(round);
            break;
        }
    }
    time::delay_us(SETTLE_US);
    for (s, &k) in sharers.iter().enumerate() {
        m.claims[s] = claims_of(ctx, k) - claims_before[s];
    }
    m.per_cpu = [count(pair[0]) - pair_before[0], count(pair[1]) - pair_before[1]];
    m.outside = online.iter().filter(|c| !pair.contains(c)).map(|&c| count(c)).sum::<u64>() - outside_before;
    m.redelivered = sharers.iter().map(|&k| intx::redeliveries(ctx.active[k].irq.bdf())).sum::<u64>() - redelivered_before;
    m.unclaimed = intx::line(gsi).map_or(0, |l| l.unclaimed) - unclaimed_before;
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn ok() -> Measured {
        Measured { rounds: 10, claims: vec![10, 10], both: 10, per_cpu: [14, 12], outside: 0, unclaimed: 0, redelivered: 6, lost_round: None }
    }

    #[test]
    fn passes_only_when_every_claim_is_exact_and_both_cpus_took_every_round() {
        assert_eq!(judge(&ok()).0, Outcome::Pass);
        let dup = Measured { claims: vec![11, 10], ..ok() };
        assert_eq!(judge(&dup), (Outcome::Fail, heapless::String::try_from("sharer 0: 11 claims for 10 assertions").unwrap()));
        let one_cpu = Measured { both: 0, per_cpu: [20, 0], ..ok() };
        assert!(judge(&one_cpu).1.contains("concurrency not provoked"));
        let lost = Measured { lost_round: Some(3), rounds: 4, claims: vec![4, 3], both: 4, ..ok() };
        let (o, why) = judge(&lost);
        assert_eq!(o, Outcome::Fail);
        assert!(why.starts_with("round 3: not every sharer") && why.contains("sharer 1: 3 claims for 4"), "{why}");
        assert_eq!(judge(&Measured { unclaimed: 20, ..ok() }).0, Outcome::Pass, "the second CPU's copy of each claim");
        assert_eq!(judge(&Measured { unclaimed: 21, ..ok() }).0, Outcome::Fail);
        assert_eq!(judge(&Measured { outside: 1, ..ok() }).0, Outcome::Fail);
    }

    #[test]
    fn the_control_passes_only_on_missing_concurrency_alone() {
        let one_cpu = Measured { both: 0, per_cpu: [20, 0], ..ok() };
        let (o, why) = judge_control(&one_cpu);
        assert_eq!(o, Outcome::Pass);
        assert!(why.starts_with("caught: both CPUs took the line in only 0 of 10 rounds"), "{why}");
        // Concurrency anyway (the line reached both CPUs though aimed at one): not caught.
        assert_eq!(judge_control(&ok()).0, Outcome::Fail);
        // A lost claim is another failure: the control does not take it for the one it is about.
        assert_eq!(judge_control(&Measured { claims: vec![9, 10], ..one_cpu }).0, Outcome::Fail);
    }
}
