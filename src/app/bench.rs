//! What the firmware measures of itself for `cargo run --release -- bench`: the time of each phase and
//! the configuration/MMIO accesses per function (`bench`), and the interrupt-dispatch benchmark
//! (`dispatch=N`). The host turns the records into the benchmark table (docs/protocol.md).

use super::devices::{Active, Device};
use super::Run;
use crate::accounting::{self, Phase};
use crate::arch::{cpu, irqbench, lapic};
use crate::bus::pci::enumerate::Enumeration;
use crate::irq::{dispatch, vector};
use crate::modes::IrqMode;
use crate::report::{self, wire, Outcome, Record};
use crate::scenarios::Verdict;
use crate::time;

/// How long one benchmark interrupt may take to arrive before the source is given up.
const ARRIVAL_TIMEOUT_US: u64 = 100_000;

/// The firmware's phases, as the bench reports them (`firmware_ms`, README "Performance").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Span {
    /// First instruction to the start of enumeration: boot, TSC calibration, ACPI and AML, CPUs.
    Platform,
    /// Enumeration and BAR assignment, routing, the `platform` record, up to quieting.
    Enumeration,
    /// Every function quieted.
    Quiet,
    /// The drivers' setup of every driven device.
    Setup,
    /// The scenarios: those before setup and those after (with teardown), each sending its record.
    Checks,
    /// The `function` records and the last problems.
    Report,
}

impl Span {
    const ALL: [Span; 6] = [Span::Platform, Span::Enumeration, Span::Quiet, Span::Setup, Span::Checks, Span::Report];

    fn name(self) -> &'static str {
        msifw_proto::names::FIRMWARE_PHASES[self as usize]
    }
}

/// Where the firmware's time goes, phase by phase: each phase runs from the moment the runner enters it
/// to the moment it enters another, so the phases add up to the time from the firmware's first
/// instruction (boot/pvh.s) to the moment they are sent, without a gap and without an overlap. Kept in
/// whole microseconds since the entry, so their sum is exactly the last boundary.
#[derive(Debug)]
pub(super) struct Timeline {
    current: Span,
    since_us: u64,
    us: [u64; 6],
}

impl Timeline {
    /// In [`Span::Platform`] since the firmware's first instruction.
    pub(super) fn start() -> Self {
        Timeline { current: Span::Platform, since_us: 0, us: [0; 6] }
    }

    /// Ends the current phase now and starts `next`.
    pub(super) fn enter(&mut self, next: Span) {
        let now = time::us_since_entry(cpu::rdtsc());
        self.us[self.current as usize] += now.saturating_sub(self.since_us);
        self.since_us = now.max(self.since_us);
        self.current = next;
    }

    /// Ends the current phase now and sends one `phase` record per phase, in order (`bench`). Sent
    /// after the report proper and before the `end` record, so the bench's own records are not timed.
    pub(super) fn emit(mut self) {
        self.enter(self.current);
        for span in Span::ALL {
            report::emit(&Record::Phase(wire::Phase { name: span.name().into(), us: self.us[span as usize] }));
        }
    }
}

/// Emits the access counts of every function that was accessed: enumeration and setup per function
/// (`present` false for a probed slot that held no function), and anything the table could not hold.
pub(super) fn emit_accesses(pci: &Enumeration) {
    for id in accounting::ids() {
        let (bus, dev, func) = ((id >> 8) as u8, ((id >> 3) & 31) as u8, (id & 7) as u8);
        let present = pci.functions.iter().any(|f| f.bdf.bus == bus && f.bdf.dev == dev && f.bdf.func == func);
        for phase in [Phase::Enumeration, Phase::Setup] {
            let c = accounting::counts(id, phase);
            if c.total() == 0 {
                continue;
            }
            report::emit(&Record::Accesses(wire::Accesses {
                bdf: wire::Bdf { bus, dev, func },
                present,
                phase: phase.name().into(),
                config_reads: c.config_reads as u64,
                config_writes: c.config_writes as u64,
                mmio_reads: c.mmio_reads as u64,
                mmio_writes: c.mmio_writes as u64,
            }));
        }
    }
    // Not a phase of its own: the time the enumeration and setup phases spent in Command-register writes.
    let (ticks, writes) = accounting::command_writes();
    report::emit(&Record::Phase(wire::Phase { name: alloc::format!("{}{writes}", msifw_proto::names::COMMAND_WRITES).into(), us: ticks / time::tsc_per_us().max(1) }));
    if accounting::dropped() > 0 {
        super::problem("bench", format_args!("{} accesses not counted: the counting table was full", accounting::dropped()));
    }
}

/// The four kinds of interrupt source the dispatch benchmark drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    SelfIpi,
    Msix,
    Msi,
    Intx,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::SelfIpi => "self-ipi",
            Source::Msix => "msix",
            Source::Msi => "msi",
            Source::Intx => "intx",
        }
    }
}

/// min, median and 99th percentile of `samples` (sorted in place).
fn stats(samples: &mut [u32]) -> (u32, u32, u32) {
    if samples.is_empty() {
        return (0, 0, 0);
    }
    samples.sort_unstable();
    let p99 = (samples.len() * 99).div_ceil(100).max(1) - 1;
    (samples[0], samples[samples.len() / 2], samples[p99])
}

struct Samples {
    entry: alloc::vec::Vec<u32>,
    path: alloc::vec::Vec<u32>,
}

/// One buffer per path (handler, minimal): the two are measured in alternating blocks. Sized to `n` on
/// the heap when the benchmark runs.
static SAMPLES: [spin::Mutex<Samples>; 2] = [
    spin::Mutex::new(Samples { entry: alloc::vec::Vec::new(), path: alloc::vec::Vec::new() }),
    spin::Mutex::new(Samples { entry: alloc::vec::Vec::new(), path: alloc::vec::Vec::new() }),
];

/// After a masked MSI-X entry's Pending Bit shows: time for QEMU's main loop to finish the command that
/// raised it and let go of its lock, so the unmask's message and EOI run alone.
const SETTLE_US: u64 = 50;

/// Between two reads of a masked MSI-X entry's Pending Bit.
const PBA_POLL_US: u64 = 5;

/// Interrupts per block: the handler path and the minimal stub take turns in blocks of this many, so a
/// slow drift of the host (a shared, noisy machine) weighs on both alike.
const BLOCK: usize = 250;

/// What one (source, path) run measured.
struct Measured {
    taken: usize,
    /// Interrupts that went through the firmware's dispatcher (the handler path must see every one, the
    /// minimal stub none).
    dispatched: u64,
    /// Of them, those the interrupt entry handled on its fast path (count and EOI, no call).
    fast: u64,
    failure: Option<&'static str>,
}

/// The dispatch benchmark: for a LAPIC self IPI and the first device in MSI-X, MSI and INTx mode, `n`
/// interrupts through the firmware's handler path and `n` through a minimal stub, each timed from the
/// trigger write to the entry and from the entry to the return (TSC ticks). Passes when every interrupt
/// arrived and took the path it was given.
pub(super) fn dispatch(run: &mut Run, active: &mut [Active], n: u32) {
    let n = n as usize;
    for samples in SAMPLES.iter() {
        let mut s = samples.lock();
        s.entry.clear();
        s.entry.resize(n, 0);
        s.path.clear();
        s.path.resize(n, 0);
    }
    let mut failures = 0;
    let mut measured = 0;
    for source in [Source::SelfIpi, Source::Msix, Source::Msi, Source::Intx] {
        let device = match source {
            Source::SelfIpi => None,
            _ => {
                let mode = match source {
                    Source::Msix => IrqMode::Msix,
                    Source::Msi => IrqMode::Msi,
                    _ => IrqMode::Intx,
                };
                // Not an e1000e for MSI-X if anything else is there: its trigger first fences QEMU's throttle
                // timer (drivers/e1000e.rs), which the entry latency would include. An NVMe completion is one
                // message with nothing before it.
                let mut candidates = active.iter_mut().filter(|a| a.mode == mode && !matches!(a.dev, Device::PciePort(_)));
                let pick = match source {
                    Source::Msix => {
                        let all: alloc::vec::Vec<&mut Active> = candidates.collect();
                        let mut all = all.into_iter();
                        let mut fallback = None;
                        let mut chosen = None;
                        for a in all.by_ref() {
                            if matches!(a.dev, Device::E1000e(_)) {
                                fallback = fallback.or(Some(a));
                            } else {
                                chosen = Some(a);
                                break;
                            }
                        }
                        chosen.or(fallback)
                    }
                    Source::Intx => candidates.find(|a| a.dev.source_ref().intx_ack().is_some()),
                    _ => candidates.next(),
                };
                match pick {
                    Some(a) => Some(a),
                    None => {
                        super::problem("bench", format_args!("dispatch benchmark: no device in {} mode to drive", source.name()));
                        continue;
                    }
                }
            }
        };
        let (bdf, vectors): (Option<crate::bus::pci::Bdf>, heapless::Vec<u8, { crate::modes::MAX_VECTORS }>) = match &device {
            Some(a) => (Some(a.irq.bdf()), a.irq.vectors().iter().copied().collect()),
            None => (None, [vector::SELF_IPI_VECTOR].into_iter().collect()),
        };
        let mut device = device;
        let paths = [irqbench::Path::Handler, irqbench::Path::Minimal];
        let mut runs = [Measured { taken: 0, dispatched: 0, fast: 0, failure: None }, Measured { taken: 0, dispatched: 0, fast: 0, failure: None }];
        'blocks: for start in (0..n).step_by(BLOCK) {
            for (k, &path) in paths.iter().enumerate() {
                let m = measure(source, path, device.as_deref_mut(), &vectors, start, (n - start).min(BLOCK));
                let run = &mut runs[k];
                run.taken += m.taken;
                run.dispatched += m.dispatched;
                run.fast += m.fast;
                if m.failure.is_some() {
                    run.failure = m.failure;
                    break 'blocks;
                }
            }
        }
        for (k, (&path, m)) in paths.iter().zip(runs.iter()).enumerate() {
            measured += 1;
            let mut samples = SAMPLES[k].lock();
            let samples = &mut *samples;
            let (emin, emed, ep99) = stats(&mut samples.entry[..m.taken]);
            let (pmin, pmed, pp99) = stats(&mut samples.path[..m.taken]);
            let path_name = match path {
                irqbench::Path::Handler => "handler",
                irqbench::Path::Minimal => "minimal",
            };
            let expected_dispatched = if path == irqbench::Path::Handler { m.taken as u64 } else { 0 };
            let failure = m.failure.or((m.dispatched != expected_dispatched).then_some("the interrupts did not take the path they were given"));
            if let Some(why) = failure {
                failures += 1;
                super::problem("bench", format_args!("dispatch benchmark, {} {path_name}: {why} ({} of {n} measured, {} dispatched)", source.name(), m.taken, m.dispatched));
            }
            report::emit(&Record::Dispatch(wire::Dispatch {
                source: source.name().into(),
                bdf: bdf.map(report::bdf),
                vector: vectors[0],
                path: path_name.into(),
                n: m.taken as u64,
                dispatched: m.dispatched,
                fast: m.fast,
                entry_min: emin as u64,
                entry_median: emed as u64,
                entry_p99: ep99 as u64,
                path_min: pmin as u64,
                path_median: pmed as u64,
                path_p99: pp99 as u64,
                tsc_per_us: time::tsc_per_us(),
            }));
        }
    }
    let verdict = if failures == 0 && measured > 0 {
        Verdict::new(Outcome::Pass, format_args!("{measured} runs of {n} interrupts, each through the path it was given"))
    } else {
        Verdict::new(Outcome::Fail, format_args!("{failures} of {measured} runs failed (see problems)"))
    };
    run.scenario("dispatch-benchmark", None, &verdict);
}

/// `n` interrupts from `source` through `path`, round-robin over the device's vectors, stored from sample
/// `first` on in the path's buffer.
fn measure(source: Source, path: irqbench::Path, mut device: Option<&mut Active>, vectors: &[u8], first: usize, n: usize) -> Measured {
    let sources = match device.as_deref_mut() {
        Some(a) => a.dev.source().sources().min(vectors.len()),
        None => 1,
    };
    if sources == 0 {
        return Measured { taken: 0, dispatched: 0, fast: 0, failure: Some("no interrupt source") };
    }
    let (min_interval, quiet) = match device.as_deref_mut() {
        Some(a) => {
            let s = a.dev.source_ref();
            let quiet = if source == Source::Intx && path == irqbench::Path::Minimal { s.intx_ack().map(|a| (a.address(), a.value())) } else { None };
            (s.min_interval_us(), quiet)
        }
        None => (0, None),
    };
    if source == Source::Intx && path == irqbench::Path::Minimal && quiet.is_none() {
        return Measured { taken: 0, dispatched: 0, fast: 0, failure: Some("no single write deasserts this INTx") };
    }
    let dispatched_before: u64 = vectors[..sources].iter().map(|&v| dispatch::count(v)).sum();
    // A level delivered again after the platform's early EOI (this host's KVM, README "Every CPU") reaches
    // the dispatcher too; the INTx handler counts it as the function's re-delivery, not as an interrupt.
    let bdf = device.as_deref().map(|a| a.irq.bdf());
    let redelivered = || bdf.map_or(0, crate::irq::intx::redeliveries);
    let redelivered_before = redelivered();
    let fast_before = crate::arch::idt::fast_hits();
    let gates: Option<heapless::Vec<irqbench::Instrumented, { crate::modes::MAX_VECTORS }>> =
        vectors[..sources].iter().map(|&v| irqbench::instrument(v, path, quiet)).collect();
    let Some(gates) = gates else {
        return Measured { taken: 0, dispatched: 0, fast: 0, failure: Some("the local APIC is not set up") };
    };
    let mut last = [0u64; crate::modes::MAX_VECTORS];
    let timeout = ARRIVAL_TIMEOUT_US * time::tsc_per_us();
    let mut samples = SAMPLES[path as usize].lock();
    let mut taken = 0;
    let mut failure = None;
    for k in 0..n {
        let i = k % sources;
        // A device's interrupt moderation (e1000e: 128 us per vector) is kept per vector, as in delivery.
        if min_interval > 0 {
            let due = last[i] + min_interval * time::tsc_per_us();
            while cpu::rdtsc() < due {
                cpu::relax();
            }
        }
        // MSI-X: the entry is masked, the device triggered, and the message released by the unmask once
        // its Pending Bit shows (PCIe 6.0 6.1.4.5: a masked entry's message is held pending and sent when
        // it is unmasked). QEMU then sends it from the vCPU's own table write, not from its main loop (an
        // NVMe completion is posted there), whose lock the path's EOI would otherwise wait for while the
        // main loop finishes the command: the path is timed without another thread in it.
        let held = source == Source::Msix && device.as_deref_mut().is_some_and(|a| a.irq.mask(i, true));
        if held {
            let Some(a) = device.as_deref_mut() else { break };
            if a.dev.source().trigger(i).is_err() {
                failure = Some("trigger failed");
                break;
            }
            let t_wait = cpu::rdtsc();
            while a.irq.pending(i) != Some(true) {
                if cpu::rdtsc() - t_wait > timeout {
                    failure = Some("the masked entry's Pending Bit did not set within 100 ms");
                    break;
                }
                // Each PBA read takes QEMU's big lock, which the main loop needs to complete the
                // command: back to back they starved it past the timeout on a loaded host.
                time::delay_us(PBA_POLL_US);
            }
            if failure.is_some() {
                a.irq.mask(i, false);
                break;
            }
            time::delay_us(SETTLE_US);
        }
        // Sources whose trigger needs no timer (every one but a throttled e1000e, whose trigger fences
        // QEMU's throttle timer with a LAPIC timer interrupt) are raised with interrupts off and taken
        // in `irqbench::take_pending`, so every path returns into the same instructions.
        let held_off = min_interval == 0;
        if held_off {
            cpu::disable_interrupts();
        }
        irqbench::arm(vectors[i]);
        let t0 = cpu::rdtsc();
        let triggered = match device.as_deref_mut() {
            Some(a) if held => a.irq.mask(i, false),
            Some(a) => a.dev.source().trigger(i).is_ok(),
            None => {
                lapic::self_ipi(vectors[i]);
                true
            }
        };
        if !triggered {
            if held_off {
                cpu::enable_interrupts();
            }
            failure = Some("trigger failed");
            break;
        }
        let (entry, t2) = if held_off {
            let t2 = irqbench::take_pending(t0 + timeout);
            cpu::enable_interrupts();
            (irqbench::entry(), t2.unwrap_or(0))
        } else {
            let entry = loop {
                if let Some(e) = irqbench::entry() {
                    break Some(e);
                }
                if cpu::rdtsc() - t0 > timeout {
                    break None;
                }
            };
            (entry, cpu::rdtsc())
        };
        last[i] = t0;
        let Some(entry) = entry else {
            failure = Some("an interrupt did not arrive within 100 ms");
            break;
        };
        samples.entry[first + taken] = entry.saturating_sub(t0).min(u32::MAX as u64) as u32;
        samples.path[first + taken] = t2.saturating_sub(entry).min(u32::MAX as u64) as u32;
        taken += 1;
        if let Some(a) = device.as_deref_mut() {
            if a.dev.source().acknowledge(i).is_err() {
                failure = Some("acknowledge failed");
                break;
            }
            a.irq.rearm(i);
        }
    }
    drop(samples);
    drop(gates);
    let dispatched = vectors[..sources].iter().map(|&v| dispatch::count(v)).sum::<u64>() - dispatched_before - (redelivered() - redelivered_before);
    let fast = crate::arch::idt::fast_hits() - fast_before;
    Measured { taken, dispatched, fast, failure }
}

#[cfg(test)]
mod tests {
    use super::stats;

    #[test]
    fn min_median_p99() {
        let mut s: std::vec::Vec<u32> = (1..=1000).rev().collect();
        assert_eq!(stats(&mut s), (1, 501, 990));
        assert_eq!(stats(&mut [7]), (7, 7, 7));
        assert_eq!(stats(&mut []), (0, 0, 0));
        let mut s = [5, 1, 3];
        assert_eq!(stats(&mut s), (1, 3, 5));
    }
}
