//! Soak: many interrupts across every live device in one boot, round-robin over their sources (each at
//! most as often as the device's interrupt moderation allows), each waited for and acknowledged; then the
//! exact count per vector. Lost = triggered but never delivered on the CPU the source is aimed at;
//! duplicated = delivered there more often than triggered; elsewhere = its vector arrived on another
//! online CPU no source is aimed at with it. Every figure is also kept per CPU (the sources are spread
//! over the online CPUs at setup), and the verdict lists them.

use super::{delivery, Outcome, Verdict};
use crate::bus::pci::ConfigRegion;
use crate::modes::MAX_VECTORS;
use crate::irq::dispatch;
use crate::time;
use super::context::{Context, Run};
use crate::drivers::Active;
use crate::bus::pci::config::PlatformConfig;
use crate::modes::IrqMode;
use alloc::vec::Vec;

/// What a soak measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SoakResult {
    /// Interrupts triggered.
    pub triggered: u64,
    /// Triggered and never delivered.
    pub lost: u64,
    /// Delivered beyond what was triggered.
    pub duplicated: u64,
    /// Wall time in microseconds.
    pub elapsed_us: u64,
    /// Arrived on a CPU the source was not aimed at.
    pub elsewhere: u64,
}

/// What a soak measured on one CPU: the interrupts aimed at it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuSoak {
    /// The CPU's index.
    pub cpu: usize,
    /// Interrupts triggered on sources aimed at it.
    pub triggered: u64,
    /// Of them, never delivered on it.
    pub lost: u64,
    /// Delivered on it beyond what was triggered.
    pub duplicated: u64,
}

impl SoakResult {
    /// Interrupts per second.
    pub fn rate(&self) -> u64 {
        self.triggered.saturating_mul(1_000_000) / self.elapsed_us.max(1)
    }
}

pub use super::Target;

/// Drives `n` interrupts over `targets`. Returns the totals, the figures per online CPU, and the verdict.
pub fn run<C: ConfigRegion>(targets: &mut [Target<'_, '_, C>], n: u64) -> (SoakResult, Vec<CpuSoak>, Verdict) {
    let mut online = crate::arch::smp::online();
    if online.is_empty() {
        online.push(0);
    }
    let mut per_cpu: Vec<CpuSoak> = online.iter().map(|&cpu| CpuSoak { cpu, ..CpuSoak::default() }).collect();
    let slot = |cpu: usize| online.iter().position(|&c| c == cpu);
    // One row per device, as many as are driven (the stack arrays held 64 and left the rest undriven).
    let rows = || alloc::vec![[0u64; MAX_VECTORS]; targets.len()];
    let (mut expected, mut base, mut last) = (rows(), rows(), rows());
    // Where each entry is aimed (the soak moves nothing), and its vector's count on every online CPU.
    let mut aim: Vec<Vec<(usize, u8)>> = Vec::new();
    let mut elsewhere_base: Vec<Vec<Vec<u64>>> = Vec::new();
    for (d, (_, irq)) in targets.iter().enumerate() {
        let a: Vec<(usize, u8)> = (0..irq.vectors().len())
            .map(|s| irq.target(s).map_or((0, irq.vectors()[s]), |t| (t.cpu, t.vector)))
            .collect();
        elsewhere_base.push(a.iter().map(|&(_, v)| online.iter().map(|&c| dispatch::count_on(c, v)).collect()).collect());
        aim.push(a);
        for (s, slot) in base[d].iter_mut().enumerate().take(irq.vectors().len()) {
            *slot = irq.count(s);
        }
    }
    let mut r = SoakResult::default();
    let start = time::now_us();
    while r.triggered < n {
        let mut progressed = false;
        for (d, (src, irq)) in targets.iter_mut().enumerate() {
            let sources = src.sources().min(irq.vectors().len());
            for s in 0..sources {
                if r.triggered >= n {
                    break;
                }
                let now = time::now_us();
                if expected[d][s] > 0 && now - last[d][s] < src.min_interval_us() {
                    continue;
                }
                let cpu = slot(aim[d][s].0);
                let before = irq.count(s);
                r.triggered += 1;
                if let Some(p) = cpu {
                    per_cpu[p].triggered += 1;
                }
                if src.trigger(s).is_err() {
                    r.lost += 1;
                    if let Some(p) = cpu {
                        per_cpu[p].lost += 1;
                    }
                    continue;
                }
                expected[d][s] += 1;
                last[d][s] = now;
                if !time::wait_until(delivery::ARRIVAL_TIMEOUT_US, || irq.count(s) > before) {
                    r.lost += 1;
                    if let Some(p) = cpu {
                        per_cpu[p].lost += 1;
                    }
                }
                let _ = src.acknowledge(s);
                irq.rearm(s);
                progressed = true;
            }
        }
        if !progressed {
            core::hint::spin_loop();
        }
    }
    time::delay_us(delivery::SETTLE_US);
    r.elapsed_us = time::now_us() - start;
    let aimed: Vec<(usize, u8)> = aim.iter().flatten().copied().collect();
    for (d, (_, irq)) in targets.iter().enumerate() {
        for s in 0..irq.vectors().len() {
            let got = irq.count(s) - base[d][s];
            let dup = got.saturating_sub(expected[d][s]);
            r.duplicated += dup;
            if let Some(p) = slot(aim[d][s].0) {
                per_cpu[p].duplicated += dup;
            }
            let (cpu, vector) = aim[d][s];
            for (p, &c) in online.iter().enumerate() {
                if c != cpu && !aimed.contains(&(c, vector)) {
                    r.elsewhere += dispatch::count_on(c, vector).saturating_sub(elsewhere_base[d][s][p]);
                }
            }
        }
    }
    let verdict = Verdict::new(
        if r.lost == 0 && r.duplicated == 0 && r.elsewhere == 0 { Outcome::Pass } else { Outcome::Fail },
        format_args!(
            "soak: {} interrupts, {} lost, {} duplicated, {} per second{}{}",
            r.triggered,
            r.lost,
            r.duplicated,
            r.rate(),
            Elsewhere(r.elsewhere),
            PerCpu(&per_cpu)
        ),
    );
    (r, per_cpu, verdict)
}

/// `, N on CPUs they were not aimed at` when any.
struct Elsewhere(u64);

impl core::fmt::Display for Elsewhere {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0 > 0 {
            write!(f, ", {} on CPUs they were not aimed at", self.0)?;
        }
        Ok(())
    }
}

/// `; per CPU (triggered/lost/duplicated): 0: 250000/0/0, 1: ...` with more than one CPU.
struct PerCpu<'a>(&'a [CpuSoak]);

impl core::fmt::Display for PerCpu<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0.len() < 2 {
            return Ok(());
        }
        f.write_str("; per CPU (triggered/lost/duplicated):")?;
        for c in self.0 {
            write!(f, " {}: {}/{}/{}", c.cpu, c.triggered, c.lost, c.duplicated)?;
        }
        Ok(())
    }
}

/// `soak=N` ([`crate::scenarios::Stage::Live`]).
pub(crate) fn step(ctx: &mut Context<'_>) {
    let n = ctx.opts().soak;
    if n > 0 {
        soak(ctx.run, ctx.active, n);
    }
}

/// The soak over every live device with interrupts (`soak=N`).
fn soak(run: &mut Run, active: &mut [Active], n: u64) {
    let mut targets: Vec<Target<'_, 'static, PlatformConfig>> = Vec::new();
    for a in active.iter_mut().filter(|a| a.mode != IrqMode::None) {
        targets.push((a.dev.source(), &mut a.irq));
    }
    let (r, per_cpu, verdict) = self::run(&mut targets, n);
    crate::println!("soak: {} interrupts, {} lost, {} duplicated, {} per second, in {} us", r.triggered, r.lost, r.duplicated, r.rate(), r.elapsed_us);
    for c in per_cpu.iter().filter(|_| per_cpu.len() > 1) {
        crate::println!("soak: CPU {}: {} interrupts, {} lost, {} duplicated", c.cpu, c.triggered, c.lost, c.duplicated);
    }
    run.scenario("soak", None, &verdict);
}

