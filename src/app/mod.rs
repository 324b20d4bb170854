//! The firmware's run, a thin runner: boot -> platform discovery -> enumeration and BAR assignment ->
//! quieting every function -> driver setup -> the scenarios (`scenarios::SCENARIOS`, stage by stage) ->
//! the report. Each phase lives in its own submodule; no scenario knowledge lives here.

// Safe by default; `platform` creates the platform singletons (README "Where unsafe lives").
#![deny(unsafe_code)]

mod aml_regions;
mod bench;
pub(crate) mod devices;
mod emit;
mod oracle;
#[allow(unsafe_code)]
mod platform;
mod resources;

use crate::accounting::{self, Phase};
use crate::arch::cpu;
use crate::arch::exit::ExitCode;
use crate::boot::BootInfo;
use crate::bus::pci::enumerate::{self, Enumeration};
use crate::bus::pci::trace;
use crate::cmdline;
use crate::irq::{dispatch, intx};
use crate::modes::route::Chipset;
use crate::report::{Outcome, Summary};
use crate::scenarios::context::{Context, Plan};
use crate::scenarios::{table, Stage, Verdict};
use crate::time;
use alloc::vec::Vec;
use devices::Active;

// The reporter and the per-function outcomes live with the scenarios; the runner's phases reach them here.
pub(crate) use crate::scenarios::context::{capacity, finish, problem, push_problem, FunctionOutcome, Run, OUTCOMES};

static PCI: spin::Mutex<Enumeration> = spin::Mutex::new(Enumeration::new());

/// Recursion without end, each frame a kilobyte (the `selftest=stack-overflow` check).
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 128]);
    recurse(depth + 1) + frame[0]
}

/// Runs everything and returns the exit code for the host.
pub fn run(boot: &BootInfo, start_info: u32, restarted: bool) -> ExitCode {
    let (opts, cmdline_errors) = cmdline::parse(&boot.cmdline);
    for p in boot.problems.iter().filter(|p| !p.is_capacity()) {
        problem("boot", format_args!("{p}"));
    }
    if boot.problems_dropped > 0 {
        problem("boot", format_args!("{} more boot problems not listed", boot.problems_dropped));
    }
    for e in &cmdline_errors {
        problem("cmdline", format_args!("{e}"));
    }
    if time::calibrated() {
        crate::info!("TSC: {=u64} ticks per us (PIT)", time::tsc_per_us());
    } else {
        problem("time", format_args!("the PIT did not count: TSC rate assumed 1 GHz, every timeout is approximate"));
    }
    dispatch::install();
    match opts.selftest {
        Some(cmdline::SelfTest::Exception) => {
            crate::println!("msifw: selftest: raising #UD");
            cpu::raise_invalid_opcode();
        }
        Some(cmdline::SelfTest::Panic) => panic!("selftest: deliberate panic"),
        Some(cmdline::SelfTest::StackOverflow) => {
            crate::println!("msifw: selftest: recursing into the stack guard page");
            recurse(0);
        }
        // Once the CPUs are up (platform::start_cpus).
        Some(cmdline::SelfTest::ApPanic | cmdline::SelfTest::ApNoSipi | cmdline::SelfTest::ApCycle) | None => {}
    }
    let mut run = Run { summary: Summary::default(), apic_id: 0, opts, capacity_failed: false, optional_done: 0 };
    // A command line or memory map cut at msifw's own limit: the run cannot pass.
    for p in boot.problems.iter().filter(|p| p.is_capacity()) {
        capacity(&mut run, format_args!("boot: {p}"));
    }
    // What the scenarios need decided before the platform is touched (a restart in place, quieting delayed).
    let plan = Plan::new(&run.opts, restarted);
    let delay_quiet = plan.delay_quiet;

    // The firmware's time, phase by phase (`bench`), from its first instruction on.
    let mut timeline = bench::Timeline::start();
    let mut platform = match platform::discover(&mut run, boot, !delay_quiet, plan.restarted) {
        Ok(p) => p,
        Err(platform::Fatal::Lapic(e)) => {
            problem("lapic", format_args!("{e:?}"));
            run.scenario("lapic", None, &Verdict::new(Outcome::Fail, format_args!("local APIC unusable: {e:?}")));
            return finish(&run);
        }
    };
    let cfg = platform.cfg;
    platform::start_cpus(&mut run, boot, &platform);

    let mut pci = PCI.lock();
    timeline.enter(bench::Span::Enumeration);
    let t0 = time::now_us();
    accounting::set_phase(Phase::Enumeration);
    enumerate::enumerate_roots(cfg, &platform.root_ranges(), &mut pci);
    if matches!(platform.roots_source, "default" | "acpi+probe") {
        // No table lists the host bridges, or not their root buses: probe the bus numbers not reached.
        let t_peer = time::now_us();
        let peers = enumerate::enumerate_peer_buses(cfg, &mut pci);
        crate::info!("PCI: peer-bus probe found {=usize} root buses in {=u64} us", peers.len(), time::now_us() - t_peer);
        platform.add_peer_roots(&peers);
    }
    crate::info!(
        "PCI: {=usize} functions on {=usize} buses ({=usize} root buses) in {=u64} us",
        pci.functions.len(),
        pci.buses_scanned.len(),
        pci.root_buses.len(),
        time::now_us() - t0
    );
    // Assigning what the boot firmware left undone (and enumerating again below newly numbered bridges)
    // is part of finding the bus, and counted with it.
    let bar_assigner = resources::assign(cfg, boot, &platform, &mut pci, run.opts.bar_windows_memmap);
    accounting::stop();
    // INTx routing sources: the DSDT, the MP table only without ACPI (as Linux), the chipset's rules.
    let chipset = Chipset::detect(&pci);
    let mp = platform.mp_table.as_ref().filter(|_| !platform.acpi);
    let routing = devices::Routing {
        chipset,
        madt: platform.tables.madt.as_ref(),
        acpi: platform.namespace.filter(|ns| crate::platform::namespace::has_routing(ns)),
        mp,
        ioapic_ids: &platform.ioapic_ids,
        unavailable: devices::Routing::unavailable_reason(platform.ioapics.len(), platform.acpi, mp, platform.namespace.is_some_and(crate::platform::namespace::has_routing), chipset),
    };
    platform::emit_record(&run, boot, &platform, bar_assigner, routing.kind());
    oracle::wait_for_host(&run.opts);
    for (bdf, _) in run.opts.overrides.iter() {
        if !pci.functions.iter().any(|f| f.bdf == *bdf) {
            problem("cmdline", format_args!("irq.{bdf}= names no function found on the bus; ignored"));
        }
    }
    for (bdf, p) in pci.problems.iter() {
        problem("pci", format_args!("{bdf}: {p}"));
    }
    // Functions msifw could not reach, or none at all: the run cannot pass.
    if platform.unreachable_roots > 0 {
        let n = platform.unreachable_roots;
        run.scenario("pci-roots", None, &Verdict::new(Outcome::Fail, format_args!("{n} host bridge(s) whose functions msifw cannot reach (see the acpi.hostbridge problems)")));
    }
    // A bridge whose secondary bus was not enumerated (no bus number, or one outside its root's range) hides
    // whatever lies below it.
    let mut unreached = pci.functions.iter().filter(|f| {
        f.bridge_buses.is_some_and(|(secondary, _)| secondary <= f.bdf.bus || !pci.buses_scanned.contains(&secondary))
    });
    if let Some(first) = unreached.next() {
        let n = 1 + unreached.count();
        run.scenario("pci-buses", None, &Verdict::new(Outcome::Fail, format_args!("{n} bridge(s) lead to a bus that was not enumerated (first {}): what lies below is not found (see the pci problems)", first.bdf)));
    }
    if pci.functions.is_empty() {
        problem("pci", format_args!("no configuration mechanism answered: {}", platform.config_reason));
        run.scenario("pci-config", None, &Verdict::new(Outcome::Fail, format_args!("no PCI function found: {}", platform.config_reason)));
    }
    // An IOAPIC entry's physical destination is 8 bits wide; a wider ID would be truncated silently.
    let ioapic_dest = match u8::try_from(run.apic_id) {
        Ok(id) if id != 0xFF => id,
        _ => {
            problem("ioapic", format_args!("APIC ID {} does not fit an 8-bit IOAPIC destination; INTx entries use the broadcast destination 0xff", run.apic_id));
            0xFF
        }
    };
    intx::init(&platform.ioapics, cfg, ioapic_dest);

    // Identity mappings for every memory BAR the boot firmware placed above 4 GiB (below is mapped at boot).
    for f in pci.functions.iter() {
        for b in f.bars.iter().filter(|b| b.kind != crate::bus::pci::bar::BarKind::Io && b.address >= 1 << 32) {
            if let Err(e) = crate::arch::paging::map_uncached(b.address, b.size) {
                problem("paging", format_args!("{}: BAR{} at {:#x} not mapped: {e:?}", f.bdf, b.index, b.address));
            }
        }
    }

    // Every function is assumed live until proven quiet: MSI and MSI-X off, INTx disabled, and Bus Master
    // off for endpoints no driver here owns (a bridge keeps its Bus Master: it forwards its children's
    // MSI writes upstream).
    // The conformance check's reset-state rules need MSI-X Message Control as found (quieting sets the
    // Function Mask).
    crate::scenarios::conformance::first_look(cfg, &pci.functions);
    timeline.enter(bench::Span::Quiet);
    let t_quiet = time::now_us();
    accounting::set_phase(Phase::Setup);
    if !delay_quiet {
        crate::drivers::quiet_all(cfg, &pci.functions);
    }
    accounting::stop();
    let quiet_us = time::now_us() - t_quiet;
    crate::info!("quiet: {=u64} us", quiet_us);
    timeline.enter(bench::Span::Checks);

    // Every driven device is set up first and stays live while the scenarios run, in table order, so a
    // device's interrupts reaching another's vectors would show in the exact counts.
    let mut active = devices::ACTIVE.lock();
    let mut ctx = Context { cfg, pci: &pci, routing: &routing, active: &mut active, run: &mut run, plan, start_info, quiet_all: crate::drivers::quiet_all, self_ipis: None, storm_done: false };
    table::run_stage(&mut ctx, Stage::Quiet);

    // From here on every configuration and MSI-X table access is recorded and later held against the
    // spec's rules (modes::order).
    trace::start();
    cpu::enable_interrupts();
    table::run_stage(&mut ctx, Stage::Armed);

    timeline.enter(bench::Span::Setup);
    let t_setup = time::now_us();
    accounting::set_phase(Phase::Setup);
    devices::set_up_all(ctx.run, cfg, &pci, &routing, ctx.active);
    accounting::set_phase(Phase::Checks);
    let setup_us = time::now_us() - t_setup;
    crate::info!("set up: {=usize} devices in {=u64} us", ctx.active.len(), setup_us);
    timeline.enter(bench::Span::Checks);
    table::run_stage(&mut ctx, Stage::SetUp);
    // The benchmark runs on the devices as setup left them, before the checks drive them.
    let dispatch_n = ctx.opts().dispatch;
    if dispatch_n > 0 {
        trace::paused(|| bench::dispatch(ctx.run, ctx.active, dispatch_n));
    }
    table::run_stage(&mut ctx, Stage::Live);
    let t0 = time::now_us();
    tear_down(ctx.active);
    crate::info!("teardown: {=u64} us", time::now_us() - t0);
    table::run_stage(&mut ctx, Stage::TornDown);
    table::report_unanswered(&mut ctx);

    cpu::disable_interrupts();
    trace::stop();
    accounting::stop();
    table::run_stage(&mut ctx, Stage::Final);
    drop(active);
    timeline.enter(bench::Span::Report);

    for (index, f) in pci.functions.iter().enumerate() {
        emit::emit_function(cfg, f, OUTCOMES.lock().get(index));
    }
    for line in intx::history() {
        problem(
            "intx",
            format_args!("GSI {} (vector {:#x}): {} interrupts no function claimed{}", line.gsi, line.vector, line.unclaimed, if line.storm_masked { "; masked as a storm" } else { "" }),
        );
    }
    if time::fence_failed() {
        problem("time", format_args!("the fence timer ({}) did not fire within 1 s: device-timer fences were plain waits from then on", time::fence_timer()));
    }
    for (v, n) in dispatch::unowned() {
        problem("irq", format_args!("{n} interrupts on vector {v:#x}, which nobody owned"));
    }
    let spurious = dispatch::spurious();
    if spurious > 0 {
        problem("irq", format_args!("{spurious} spurious interrupts"));
    }
    if run.opts.bench {
        timeline.emit();
        bench::emit_accesses(&pci);
    }
    finish(&run)
}

/// Teardown, last set up first: each device silenced by its driver, then its interrupt mode shut down,
/// then its vectors freed (field order of [`Active`]); the interrupts each received are recorded.
fn tear_down(active: &mut Vec<Active>) {
    crate::scenarios::device_checks::stop_all(active);
    while let Some(dev) = active.pop() {
        if let Some(o) = OUTCOMES.lock().get_mut(dev.index) {
            o.interrupts = dev.irq.delivered();
            o.redeliveries = crate::irq::intx::redeliveries(dev.irq.bdf());
        }
        drop(dev);
    }
}
