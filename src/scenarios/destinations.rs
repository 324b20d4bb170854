//! Destination modes (`dest-physical`, `dest-logical-flat`, `dest-logical-cluster`,
//! `dest-lowest-priority`): one source of a device driven with MSI-X or MSI is aimed at CPUs through each
//! destination mode of the message address (SDM Vol. 3A 11.11.1) and each delivery mode of its data
//! (11.11.2), and every message is counted per CPU.
//!
//! The source keeps one vector throughout, owned on every online CPU the check may reach (reserved there
//! for the check), so a message that reaches the wrong CPU is counted there rather than lost, and nothing
//! else can arrive on it. What each scenario checks, per message (a "shot": one trigger, the wait for its
//! arrival, a settle window, the acknowledge):
//!
//! - `dest-physical`: each online CPU by its APIC ID, fixed delivery: exactly one interrupt on that CPU,
//!   none on any other (SDM 11.6.2.1).
//! - `dest-logical-flat` (xAPIC only: x2APIC has no flat model, SDM 11.12.10.2): each CPU whose LDR the
//!   firmware set (bit = CPU index, CPUs 0-7) by its bit alone, then all of them in one destination:
//!   exactly one interrupt on every CPU the destination names, none elsewhere (SDM 11.6.2.2, fixed
//!   delivery goes to every CPU of the set, 11.6.2.4 / 11.11.2).
//! - `dest-logical-cluster` (x2APIC only, where the LDR is read-only: cluster in 31:16, one member bit in
//!   15:0, SDM 11.12.10.2): the same, by cluster 0's member bits. An MSI carries 8 destination bits, so
//!   only x2APIC IDs 0-7 (cluster 0, members 0-7) can be named without interrupt remapping; the others are
//!   listed as not covered.
//! - `dest-lowest-priority`: every CPU of the logical set (flat in xAPIC, cluster in x2APIC), delivery
//!   mode lowest priority (001). Checked, as the SDM defines the mode (11.6.2.4; for MSIs 11.11.2):
//!   (a) with every CPU at the same priority (TPR 0, idle), each message arrives exactly once, on exactly
//!   one CPU of the set, never outside it; which CPU is platform-defined (focus processor, chipset
//!   arbitration, hashing) and is only reported, as how many landed on each CPU; (b) with every CPU of
//!   the set but one raised to a task priority that holds the vector's class (TPR = vector & 0xF0), the
//!   one CPU left at priority 0 is the lowest-priority processor, and the message must arrive there,
//!   once. A message held in a raised CPU's IRR is delivered there once its TPR is lowered again, and
//!   reported as having gone to the wrong CPU.
//!
//! Each needs a device driven with MSI-X or single-vector MSI; without one it is a SKIP saying so, as is
//! a mode the LAPIC is not in. After the check the source is aimed back where the setup put it and the
//! reserved vectors are freed.

use super::context::Context;
use super::delivery::SETTLE_US;
use super::{Outcome, Verdict};
use crate::arch::lapic::{self, Mode};
use crate::arch::smp::{self, CpuState};
use crate::drivers::{Active, InterruptSource};
use crate::irq::dispatch;
use crate::irq::vector::{self, Pool, VectorBlock, FIRST_DEVICE_VECTOR, FIRST_INTX_VECTOR};
use crate::modes::{Delivery, Destination, IrqMode};
use crate::time;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

/// How long one message may take to arrive. An MSI is delivered while the device's write completes
/// (QEMU) or within microseconds (hardware); the bound only costs time for a message that never comes,
/// which the logical-mode checks meet on purpose under TCG with APIC ID holes.
pub const SHOT_TIMEOUT_US: u64 = 200_000;
/// How long a `call_on` for a TPR change may take.
const CALL_TIMEOUT_US: u64 = 1_000_000;
/// Messages per CPU in the physical and single-CPU logical checks.
const SHOTS: u32 = 2;

/// Which of the four scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// `dest-physical`.
    Physical,
    /// `dest-logical-flat`.
    LogicalFlat,
    /// `dest-logical-cluster`.
    LogicalCluster,
    /// `dest-lowest-priority`.
    LowestPriority,
}

impl Check {
    /// The scenario's name.
    pub fn name(self) -> &'static str {
        match self {
            Check::Physical => "dest-physical",
            Check::LogicalFlat => "dest-logical-flat",
            Check::LogicalCluster => "dest-logical-cluster",
            Check::LowestPriority => "dest-lowest-priority",
        }
    }
}

/// `dest-physical` ([`crate::scenarios::Stage::Live`]).
pub(crate) fn physical(ctx: &mut Context<'_>) {
    step(ctx, Check::Physical)
}

/// `dest-logical-flat`.
pub(crate) fn logical_flat(ctx: &mut Context<'_>) {
    step(ctx, Check::LogicalFlat)
}

/// `dest-logical-cluster`.
pub(crate) fn logical_cluster(ctx: &mut Context<'_>) {
    step(ctx, Check::LogicalCluster)
}

/// `dest-lowest-priority`.
pub(crate) fn lowest_priority(ctx: &mut Context<'_>) {
    step(ctx, Check::LowestPriority)
}

fn step(ctx: &mut Context<'_>, check: Check) {
    let Some(k) = ctx.active.iter().position(usable) else {
        let v = Verdict::new(Outcome::Skip, format_args!("no device driven with MSI-X or single-vector MSI to aim"));
        ctx.run.scenario(check.name(), None, &v);
        return;
    };
    let active = &mut ctx.active[k];
    let bdf = active.irq.bdf();
    let verdict = run(active, check);
    crate::info!("{=str}: {=str}", check.name(), verdict.outcome.name());
    ctx.run.scenario(check.name(), Some(bdf), &verdict);
}

/// A device whose source 0 can be aimed on its own: MSI-X, or MSI with one vector (a multi-message
/// function's vectors share one address and one data pattern).
fn usable(a: &Active) -> bool {
    let one = match a.mode {
        IrqMode::Msix => true,
        IrqMode::Msi => a.irq.vectors().len() == 1,
        _ => false,
    };
    one && a.dev.source_ref().sources() > 0 && a.irq.target(0).is_some()
}

/// An online CPU as the check sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuId {
    /// Index.
    pub index: usize,
    /// APIC ID.
    pub apic_id: u32,
    /// The logical ID an MSI can name it by: its flat LDR bit (xAPIC) or its cluster-0 member bit
    /// (x2APIC), when it has one that fits the message's 8 destination bits.
    pub logical: Option<u8>,
}

/// The 8-bit logical destination that names the CPU whose logical-ID record is `logical_id`, in `mode`:
/// xAPIC flat, the LDR's bits 31:24 (given as the register or as the 8-bit ID); x2APIC cluster, cluster 0
/// and a member bit 0-7 (the LDR is (cluster << 16) | member bit, SDM 11.12.10.2). `None` when the CPU has
/// none or it does not fit 8 bits.
pub fn logical_byte(mode: Mode, logical_id: u32) -> Option<u8> {
    let id = match mode {
        Mode::XApic if logical_id > 0xFF => logical_id >> 24,
        Mode::XApic => logical_id,
        Mode::X2Apic if logical_id >> 16 != 0 => return None,
        Mode::X2Apic => logical_id & 0xFFFF,
    };
    u8::try_from(id).ok().filter(|&b| b != 0)
}

fn online_cpus(mode: Mode) -> Vec<CpuId> {
    smp::cpus()
        .into_iter()
        .filter(|c| matches!(c.state, CpuState::Online))
        .map(|c| CpuId { index: c.index, apic_id: c.apic_id, logical: logical_byte(mode, c.logical_id) })
        .collect()
}

/// What one message did: interrupts per online CPU (in the order given), and whether the wait for the
/// expected ones ended before the timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landing {
    /// (CPU index, interrupts of the vector there) for every online CPU.
    pub per_cpu: Vec<(usize, u64)>,
}

impl Landing {
    fn on(&self, cpu: usize) -> u64 {
        self.per_cpu.iter().find(|(c, _)| *c == cpu).map_or(0, |(_, n)| *n)
    }
}

/// Fixed delivery of `shots` messages (their landings summed): every CPU in `named` got exactly `shots`
/// interrupts, every other none. The CPUs that did not: (CPU, got, wanted).
pub fn judge_fixed(named: &[usize], landing: &Landing, shots: u64) -> Vec<(usize, u64, u64)> {
    landing
        .per_cpu
        .iter()
        .filter_map(|&(c, got)| {
            let want = if named.contains(&c) { shots } else { 0 };
            (got != want).then_some((c, got, want))
        })
        .collect()
}

/// The landings of several messages, summed per CPU.
fn sum(landings: &[Landing]) -> Landing {
    let mut total = Landing { per_cpu: Vec::new() };
    for l in landings {
        for &(c, n) in &l.per_cpu {
            match total.per_cpu.iter_mut().find(|(x, _)| *x == c) {
                Some(e) => e.1 += n,
                None => total.per_cpu.push((c, n)),
            }
        }
    }
    total
}

/// Lowest priority: where one message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lowest {
    /// Exactly once, on this CPU of the set.
    Once(usize),
    /// Nowhere.
    Lost,
    /// More than one interrupt in all, or on a CPU outside the set: (CPU, interrupts) of each that got any.
    Wrong(Vec<(usize, u64)>),
}

/// Judges one lowest-priority message sent to `set`.
pub fn judge_lowest(set: &[usize], landing: &Landing) -> Lowest {
    let got: Vec<(usize, u64)> = landing.per_cpu.iter().copied().filter(|&(_, n)| n > 0).collect();
    match got.as_slice() {
        [] => Lowest::Lost,
        [(c, 1)] if set.contains(c) => Lowest::Once(*c),
        _ => Lowest::Wrong(got),
    }
}

/// Vectors reserved on CPUs for the check, freed on drop.
struct Reserved(Vec<VectorBlock>);

/// Takes `vector` on `cpu` from the allocator: the allocator hands out the lowest free vector first, so
/// every free one below it is taken on the way and given back. None when `vector` is not free there.
fn reserve_exact(cpu: usize, vector: u8) -> Option<VectorBlock> {
    if vector::allocated_on(cpu).contains(&vector) {
        return None;
    }
    let mut below = Vec::new();
    loop {
        let block = VectorBlock::alloc_on(cpu, Pool::Message, 1).ok()?;
        if block.base() == vector {
            return Some(block);
        }
        if block.base() > vector {
            return None;
        }
        below.push(block);
    }
}

/// The highest message vector free on every CPU of `cpus`.
fn free_everywhere(cpus: &[usize]) -> Option<u8> {
    let held: Vec<Vec<u8>> = cpus.iter().map(|&c| vector::allocated_on(c)).collect();
    (FIRST_DEVICE_VECTOR..FIRST_INTX_VECTOR).rev().find(|v| held.iter().all(|h| !h.contains(v)))
}

/// Makes source 0's vector one owned on every CPU of `cpus`: its own where that is free everywhere,
/// else it is moved to one of them onto a vector free on all. Returns the reservations (on every CPU of
/// `cpus` but the source's own), the vector, and the CPU the source's vector belongs to.
fn own_everywhere(a: &mut Active, cpus: &[usize]) -> Result<(Reserved, u8, usize), String> {
    let t = a.irq.target(0).ok_or_else(|| String::from("source 0 has no target"))?;
    let others: Vec<usize> = cpus.iter().copied().filter(|&c| c != t.cpu).collect();
    if others.iter().all(|&c| !vector::allocated_on(c).contains(&t.vector)) {
        let mut r = Reserved(Vec::new());
        for &c in &others {
            r.0.push(reserve_exact(c, t.vector).ok_or_else(|| alloc::format!("vector {:#x} could not be reserved on CPU {c}", t.vector))?);
        }
        return Ok((r, t.vector, t.cpu));
    }
    let v = free_everywhere(cpus).ok_or_else(|| String::from("no message vector is free on every CPU"))?;
    let to = others[0];
    {
        // Everything free below `v` on the new CPU taken for the move, so the move's fresh vector is `v`.
        let mut below = Vec::new();
        loop {
            match VectorBlock::alloc_on(to, Pool::Message, 1) {
                Ok(b) if b.base() < v => below.push(b),
                Ok(_) | Err(_) => break,
            }
        }
        a.irq.retarget(0, to).map_err(|e| alloc::format!("moving source 0 to CPU {to} failed: {e}"))?;
    }
    let now = a.irq.target(0).ok_or_else(|| String::from("source 0 has no target after the move"))?;
    if now.vector != v || now.cpu != to {
        return Err(alloc::format!("the move gave CPU {} vector {:#x}, not CPU {to} vector {v:#x} (free on every CPU)", now.cpu, now.vector));
    }
    let mut r = Reserved(Vec::new());
    for &c in cpus.iter().filter(|&&c| c != to) {
        r.0.push(reserve_exact(c, v).ok_or_else(|| alloc::format!("vector {v:#x} could not be reserved on CPU {c}"))?);
    }
    Ok((r, v, to))
}

/// One message: trigger source 0, wait until `expect` interrupts arrived in all on `cpus` (or the
/// timeout), settle, acknowledge. The interrupts of `vector` per CPU.
fn shot(src: &mut dyn InterruptSource, a_irq: &mut crate::modes::DeviceIrq<'static, crate::bus::pci::config::PlatformConfig>, cpus: &[usize], vector: u8, expect: u64) -> Result<Landing, String> {
    let before: Vec<u64> = cpus.iter().map(|&c| dispatch::count_on(c, vector)).collect();
    let delta = |before: &[u64]| -> Vec<(usize, u64)> { cpus.iter().zip(before).map(|(&c, &b)| (c, dispatch::count_on(c, vector).saturating_sub(b))).collect() };
    src.trigger(0).map_err(|e| alloc::format!("trigger failed: {e}"))?;
    time::wait_until(SHOT_TIMEOUT_US, || delta(&before).iter().map(|(_, n)| n).sum::<u64>() >= expect);
    time::delay_us(SETTLE_US);
    src.acknowledge(0).map_err(|e| alloc::format!("acknowledge failed: {e}"))?;
    a_irq.rearm(0);
    Ok(Landing { per_cpu: delta(&before) })
}

/// `to 0x8: CPU 3 got 0 of 2` (each mismatch of one destination).
fn describe_fixed(out: &mut String, what: &str, mismatches: &[(usize, u64, u64)]) {
    if mismatches.is_empty() {
        return;
    }
    let _ = write!(out, "{}to {what}:", if out.is_empty() { "" } else { "; " });
    for &(c, got, want) in mismatches {
        let _ = write!(out, " CPU {c} got {got} of {want}");
    }
}

/// Runs `check` on the device's source 0.
fn run(a: &mut Active, check: Check) -> Verdict {
    let Some(mode) = lapic::current_mode() else {
        return Verdict::new(Outcome::Fail, format_args!("the local APIC is not initialised"));
    };
    match (check, mode) {
        (Check::LogicalFlat, Mode::X2Apic) => {
            return Verdict::new(Outcome::Skip, format_args!("the LAPIC runs in x2APIC mode, which has no flat logical model (SDM 11.12.10.2): see dest-logical-cluster"));
        }
        (Check::LogicalCluster, Mode::XApic) => {
            return Verdict::new(
                Outcome::Skip,
                format_args!("the LAPIC runs in xAPIC mode (the CPU offers no x2APIC, as under QEMU 7.2's TCG, or x2apic=off): x2APIC logical cluster mode cannot be used"),
            );
        }
        _ => {}
    }
    let cpus = online_cpus(mode);
    let all: Vec<usize> = cpus.iter().map(|c| c.index).collect();
    // The CPUs the check aims at, and those it cannot name.
    let (aimed, unnamed): (Vec<CpuId>, Vec<CpuId>) = match check {
        Check::Physical => (cpus.clone(), Vec::new()),
        _ => cpus.iter().partition(|c| c.logical.is_some()),
    };
    if aimed.is_empty() {
        return Verdict::new(Outcome::Skip, format_args!("no online CPU has a logical ID an 8-bit MSI destination can name"));
    }
    let home = a.irq.target(0).map_or(0, |t| t.cpu);
    let (reserved, vector, sits) = match own_everywhere(a, &all) {
        Ok(x) => x,
        Err(why) => return Verdict::new(Outcome::Fail, format_args!("could not give source 0 one vector owned on every CPU: {why}")),
    };
    let result = aim_and_count(a, check, mode, &aimed, &all, vector);
    // Back to a physical destination on the CPU the vector belongs to, the reservations freed, then home.
    let restore = restore(a, &cpus, sits, home, reserved);
    let mut v = match result {
        Ok((outcome, text)) => Verdict::new(
            outcome,
            format_args!("{} vector {vector:#x}: {text}{}", a.mode.name(), Unnamed(&unnamed)),
        ),
        Err(why) => Verdict::new(Outcome::Fail, format_args!("{} vector {vector:#x}: {why}", a.mode.name())),
    };
    if let Err(why) = restore {
        v = Verdict::new(Outcome::Fail, format_args!("{}; then putting source 0 back failed: {why}", v.detail));
    }
    v
}

/// `; not named: CPUs 8 9 (...)` for CPUs a logical destination cannot reach.
struct Unnamed<'a>(&'a [CpuId]);

impl core::fmt::Display for Unnamed<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        f.write_str("; not covered (no logical ID in an 8-bit MSI destination, SDM 11.11.1): CPUs")?;
        // Runs of consecutive indices as `8-15`.
        let mut k = 0;
        while k < self.0.len() {
            let first = self.0[k].index;
            let mut last = first;
            while k + 1 < self.0.len() && self.0[k + 1].index == last + 1 {
                k += 1;
                last += 1;
            }
            if first == last {
                write!(f, " {first}")?;
            } else {
                write!(f, " {first}-{last}")?;
            }
            k += 1;
        }
        Ok(())
    }
}

fn restore(a: &mut Active, cpus: &[CpuId], sits: usize, home: usize, reserved: Reserved) -> Result<(), String> {
    let apic = cpus.iter().find(|c| c.index == sits).map_or(0, |c| c.apic_id);
    let back = a.irq.set_destination(0, Destination::Physical(apic), Delivery::Fixed).map_err(|e| alloc::format!("{e}"));
    drop(reserved);
    back?;
    if sits != home {
        a.irq.retarget(0, home).map_err(|e| alloc::format!("moving it back to CPU {home}: {e}"))?;
    }
    Ok(())
}

/// Aims source 0 as `check` says and counts every message per CPU. Ok((verdict, text)).
fn aim_and_count(a: &mut Active, check: Check, mode: Mode, aimed: &[CpuId], all: &[usize], vector: u8) -> Result<(Outcome, String), String> {
    let logical = |bits: u8| match mode {
        Mode::XApic => Destination::LogicalFlat(bits),
        Mode::X2Apic => Destination::LogicalCluster(bits as u32),
    };
    let mut bad = String::new();
    let mut text = String::new();
    match check {
        Check::Physical => {
            for c in aimed {
                set(a, Destination::Physical(c.apic_id), Delivery::Fixed)?;
                let mut ls = Vec::new();
                for _ in 0..SHOTS {
                    ls.push(fire(a, all, vector, 1)?);
                }
                let mut what = String::new();
                let _ = write!(what, "APIC ID {}", c.apic_id);
                describe_fixed(&mut bad, &what, &judge_fixed(&[c.index], &sum(&ls), SHOTS as u64));
            }
            let _ = write!(text, "{SHOTS} messages to each of {} CPUs by APIC ID (fixed)", aimed.len());
        }
        Check::LogicalFlat | Check::LogicalCluster => {
            let mut union = 0u8;
            for c in aimed {
                let bit = c.logical.unwrap_or(0);
                union |= bit;
                set(a, logical(bit), Delivery::Fixed)?;
                let mut ls = Vec::new();
                for _ in 0..SHOTS {
                    ls.push(fire(a, all, vector, 1)?);
                }
                let mut what = String::new();
                let _ = write!(what, "{bit:#x}");
                describe_fixed(&mut bad, &what, &judge_fixed(&[c.index], &sum(&ls), SHOTS as u64));
            }
            let named: Vec<usize> = aimed.iter().map(|c| c.index).collect();
            set(a, logical(union), Delivery::Fixed)?;
            let mut ls = Vec::new();
            for _ in 0..SHOTS {
                ls.push(fire(a, all, vector, named.len() as u64)?);
            }
            let mut what = String::new();
            let _ = write!(what, "{union:#x}");
            describe_fixed(&mut bad, &what, &judge_fixed(&named, &sum(&ls), SHOTS as u64));
            let _ = write!(text, "{SHOTS} messages to each of {} CPUs by its logical bit, then {SHOTS} to all of them ({union:#x}), fixed", aimed.len());
        }
        Check::LowestPriority => return lowest(a, aimed, all, vector, &logical),
    }
    if bad.is_empty() {
        let _ = write!(text, ": each arrived exactly once on every CPU it named and on no other");
        Ok((Outcome::Pass, text))
    } else {
        let _ = write!(text, ": {bad}");
        Ok((Outcome::Fail, text))
    }
}

fn set(a: &mut Active, dest: Destination, delivery: Delivery) -> Result<(), String> {
    a.irq.set_destination(0, dest, delivery).map_err(|e| alloc::format!("aiming it at {dest:?} ({delivery:?}) failed: {e}"))
}

fn fire(a: &mut Active, all: &[usize], vector: u8, expect: u64) -> Result<Landing, String> {
    let src = a.dev.source();
    shot(src, &mut a.irq, all, vector, expect)
}

/// Lowest priority: (a) ties, (b) one CPU left at priority 0 while the others hold the vector's class.
fn lowest(a: &mut Active, aimed: &[CpuId], all: &[usize], vector: u8, logical: &dyn Fn(u8) -> Destination) -> Result<(Outcome, String), String> {
    let set_cpus: Vec<usize> = aimed.iter().map(|c| c.index).collect();
    let bits = aimed.iter().fold(0u8, |acc, c| acc | c.logical.unwrap_or(0));
    set(a, logical(bits), Delivery::LowestPriority)?;
    let mut bad = String::new();
    // (a) Ties: where each of them went, counted per CPU.
    let ties = (2 * aimed.len()).max(4);
    let mut hist: Vec<(usize, u32)> = set_cpus.iter().map(|&c| (c, 0)).collect();
    for k in 0..ties {
        let l = fire(a, all, vector, 1)?;
        match judge_lowest(&set_cpus, &l) {
            Lowest::Once(c) => {
                if let Some(h) = hist.iter_mut().find(|(x, _)| *x == c) {
                    h.1 += 1;
                }
            }
            Lowest::Lost => {
                let _ = write!(bad, "{}tie {k}: arrived nowhere", if bad.is_empty() { "" } else { "; " });
            }
            Lowest::Wrong(got) => {
                let _ = write!(bad, "{}tie {k}: arrived {got:?} (CPU, interrupts)", if bad.is_empty() { "" } else { "; " });
            }
        }
    }
    // (b) One CPU clearly lowest: the others' TPR holds the vector's class.
    let held = vector & 0xF0;
    let mut arbitration = String::new();
    if aimed.len() >= 2 {
        for &c in &set_cpus {
            let others: Vec<usize> = set_cpus.iter().copied().filter(|&o| o != c).collect();
            for &o in &others {
                tpr(o, held)?;
            }
            let sent = fire_until(a, all, vector, c);
            // Lowered again whatever happened: a message held in a raised CPU's IRR is delivered there now.
            for &o in &others {
                tpr(o, 0)?;
            }
            time::delay_us(SETTLE_US);
            let (landing, before) = sent?;
            let after = Landing { per_cpu: all.iter().zip(before.iter()).map(|(&x, &b)| (x, dispatch::count_on(x, vector).saturating_sub(b))).collect() };
            let _ = landing;
            match judge_lowest(&[c], &after) {
                Lowest::Once(_) => {}
                Lowest::Lost => {
                    let _ = write!(arbitration, " {c}->none");
                }
                Lowest::Wrong(got) => {
                    let _ = write!(arbitration, " {c}->");
                    for (k, (x, n)) in got.iter().enumerate() {
                        let _ = write!(arbitration, "{}{x}{}", if k == 0 { "" } else { "," }, if *n > 1 { alloc::format!("x{n}") } else { String::new() });
                    }
                }
            }
        }
    }
    let mut text = String::new();
    let _ = write!(text, "lowest priority to {bits:#x}; ties (all TPR 0, the choice is the platform's): {ties} messages, per CPU");
    for (c, n) in &hist {
        let _ = write!(text, " {c}:{n}");
    }
    if aimed.len() >= 2 {
        let _ = write!(text, "; arbitration (others at TPR {held:#x}): ");
        if arbitration.is_empty() {
            let _ = write!(text, "each time the one CPU at priority 0 took it");
        } else {
            let _ = write!(text, "CPU alone at priority 0->where it went:{arbitration}");
        }
    } else {
        let _ = write!(text, "; arbitration not checked (one CPU)");
    }
    if !bad.is_empty() {
        let _ = write!(text, "; {bad}");
    }
    let outcome = if bad.is_empty() && arbitration.is_empty() { Outcome::Pass } else { Outcome::Fail };
    Ok((outcome, text))
}

/// One lowest-priority message, waiting for it on CPU `on` (the expected one): (the landing when the
/// wait ended, the counts before it, per CPU of `all`).
fn fire_until(a: &mut Active, all: &[usize], vector: u8, on: usize) -> Result<(Landing, Vec<u64>), String> {
    let before: Vec<u64> = all.iter().map(|&c| dispatch::count_on(c, vector)).collect();
    let src = a.dev.source();
    src.trigger(0).map_err(|e| alloc::format!("trigger failed: {e}"))?;
    let at = |c: usize| all.iter().position(|&x| x == c).map_or(0, |p| dispatch::count_on(c, vector).saturating_sub(before[p]));
    time::wait_until(SHOT_TIMEOUT_US, || at(on) > 0 || all.iter().any(|&x| x != on && at(x) > 0));
    let landing = Landing { per_cpu: all.iter().map(|&x| (x, at(x))).collect() };
    src.acknowledge(0).map_err(|e| alloc::format!("acknowledge failed: {e}"))?;
    a.irq.rearm(0);
    let _ = landing.on(on);
    Ok((landing, before))
}

/// Sets CPU `cpu`'s TPR (on that CPU).
fn tpr(cpu: usize, value: u8) -> Result<(), String> {
    smp::call_on(cpu, &move || lapic::set_task_priority(value), CALL_TIMEOUT_US).map_err(|e| alloc::format!("setting CPU {cpu}'s TPR to {value:#x}: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn landing(per_cpu: &[(usize, u64)]) -> Landing {
        Landing { per_cpu: per_cpu.to_vec() }
    }

    #[test]
    fn fixed_needs_exactly_one_on_every_named_cpu_and_none_elsewhere() {
        assert!(judge_fixed(&[1], &landing(&[(0, 0), (1, 1), (2, 0)]), 1).is_empty());
        assert!(judge_fixed(&[0, 1, 2], &landing(&[(0, 1), (1, 1), (2, 1)]), 1).is_empty());
        // TCG's logical bug: the CPUs past the hole get nothing.
        assert_eq!(judge_fixed(&[0, 1, 3], &landing(&[(0, 1), (1, 1), (3, 0)]), 1), vec![(3, 0, 1)]);
        // A duplicate, and one on a CPU not named.
        assert_eq!(judge_fixed(&[1], &landing(&[(0, 1), (1, 2)]), 1), vec![(0, 1, 0), (1, 2, 1)]);
        // Two messages summed.
        let two = sum(&[landing(&[(0, 0), (1, 1)]), landing(&[(0, 1), (1, 0)])]);
        assert_eq!(judge_fixed(&[1], &two, 2), vec![(0, 1, 0), (1, 1, 2)]);
    }

    #[test]
    fn lowest_priority_is_exactly_one_cpu_of_the_set() {
        assert_eq!(judge_lowest(&[0, 1], &landing(&[(0, 0), (1, 1), (2, 0)])), Lowest::Once(1));
        assert_eq!(judge_lowest(&[0, 1], &landing(&[(0, 0), (1, 0)])), Lowest::Lost);
        assert_eq!(judge_lowest(&[0, 1], &landing(&[(0, 1), (1, 1)])), Lowest::Wrong(vec![(0, 1), (1, 1)]), "a broadcast is not lowest priority");
        assert_eq!(judge_lowest(&[0, 1], &landing(&[(2, 1)])), Lowest::Wrong(vec![(2, 1)]), "outside the set");
        // The arbitration check names one CPU: TCG's "lowest APIC ID" choice lands elsewhere.
        assert_eq!(judge_lowest(&[2], &landing(&[(0, 1), (2, 0)])), Lowest::Wrong(vec![(0, 1)]));
    }

    #[test]
    fn cpus_not_covered_are_listed_as_runs() {
        let cpu = |index| CpuId { index, apic_id: index as u32, logical: None };
        let list = [cpu(3), cpu(8), cpu(9), cpu(10), cpu(12)];
        assert_eq!(alloc::format!("{}", Unnamed(&list)), "; not covered (no logical ID in an 8-bit MSI destination, SDM 11.11.1): CPUs 3 8-10 12");
        assert_eq!(alloc::format!("{}", Unnamed(&[])), "");
    }

    #[test]
    fn logical_ids_an_msi_can_name() {
        assert_eq!(logical_byte(Mode::XApic, 1 << 3), Some(8), "flat: the 8-bit logical ID");
        assert_eq!(logical_byte(Mode::XApic, 1 << 27), Some(8), "flat: the LDR register value, bits 31:24");
        assert_eq!(logical_byte(Mode::XApic, 0), None, "no LDR set (CPU index 8 and up)");
        assert_eq!(logical_byte(Mode::X2Apic, 1 << 5), Some(0x20), "x2APIC ID 5: cluster 0, member bit 5");
        assert_eq!(logical_byte(Mode::X2Apic, 1 << 9), None, "x2APIC ID 9: member bit 9 needs 16 destination bits");
        assert_eq!(logical_byte(Mode::X2Apic, (1 << 16) | 1), None, "cluster 1 needs the upper destination bits");
    }
}
