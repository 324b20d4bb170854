//! Soak: many interrupts across every live device in one boot, round-robin over their sources (each at
//! most as often as the device's interrupt moderation allows), each waited for and acknowledged; then the
//! exact count per vector. Lost = triggered but never delivered; duplicated = delivered more often than
//! triggered.

use super::{delivery, Outcome, Verdict};
use crate::bus::pci::ConfigRegion;
use crate::modes::MAX_VECTORS;
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
}

impl SoakResult {
    /// Interrupts per second.
    pub fn rate(&self) -> u64 {
        self.triggered.saturating_mul(1_000_000) / self.elapsed_us.max(1)
    }
}

pub use super::Target;

/// Drives `n` interrupts over `targets`.
pub fn run<C: ConfigRegion>(targets: &mut [Target<'_, '_, C>], n: u64) -> (SoakResult, Verdict) {
    // One row per device, as many as are driven (the stack arrays held 64 and left the rest undriven).
    let rows = || alloc::vec![[0u64; MAX_VECTORS]; targets.len()];
    let (mut expected, mut base, mut last) = (rows(), rows(), rows());
    for (d, (_, irq)) in targets.iter().enumerate() {
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
                let before = irq.count(s);
                if src.trigger(s).is_err() {
                    r.lost += 1;
                    r.triggered += 1;
                    continue;
                }
                r.triggered += 1;
                expected[d][s] += 1;
                last[d][s] = now;
                if !time::wait_until(delivery::ARRIVAL_TIMEOUT_US, || irq.count(s) > before) {
                    r.lost += 1;
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
    for (d, (_, irq)) in targets.iter().enumerate() {
        for s in 0..irq.vectors().len() {
            let got = irq.count(s) - base[d][s];
            r.duplicated += got.saturating_sub(expected[d][s]);
        }
    }
    let verdict = Verdict::new(
        if r.lost == 0 && r.duplicated == 0 { Outcome::Pass } else { Outcome::Fail },
        format_args!("soak: {} interrupts, {} lost, {} duplicated, {} per second", r.triggered, r.lost, r.duplicated, r.rate()),
    );
    (r, verdict)
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
    let (r, verdict) = self::run(&mut targets, n);
    crate::println!("soak: {} interrupts, {} lost, {} duplicated, {} per second", r.triggered, r.lost, r.duplicated, r.rate());
    run.scenario("soak", None, &verdict);
}

