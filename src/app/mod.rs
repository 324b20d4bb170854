//! The firmware's run: platform discovery, enumeration, quieting every function, interrupt setup per
//! device, the checks, and the report. Each phase lives in its own submodule.

mod bench;
mod checks;
mod crash;
mod devices;
mod lifecycle;
mod emit;
mod oracle;
mod platform;
#[deny(unsafe_code)]
mod resources;

use crate::accounting::{self, Phase};
use crate::arch::cpu;
use crate::arch::exit::ExitCode;
use crate::boot::BootInfo;
use crate::bus::pci::config::PlatformConfig;
use crate::bus::pci::enumerate::{self, Enumeration, Function};
use crate::bus::pci::{caps, regs, trace, Bdf, ConfigRegion};
use crate::cmdline::{self, Options};
use crate::irq::{dispatch, intx};
use crate::modes::route::{Chipset, Routed};
use crate::modes::{update_command, IrqMode};
use crate::report::{self, wire, Outcome, Record, Summary};
use crate::scenarios::{Provoked, Verdict};
use crate::time;
use alloc::string::String;
use alloc::vec::Vec;

/// What happened to one function's interrupts.
#[derive(Debug, Clone, Default)]
pub(crate) struct FunctionOutcome {
    driver: Option<&'static str>,
    mode: Option<IrqMode>,
    reason: Option<String>,
    route: Option<Routed>,
    vectors: heapless::Vec<u8, { crate::modes::MAX_VECTORS }>,
    interrupts: u64,
    /// INTx: re-deliveries of the function's level after a claim that the handler's hold absorbed.
    redeliveries: u64,
    problems: Vec<String>,
}

/// State of the run: counts, the CPU messages target, the command line.
struct Run {
    summary: Summary,
    apic_id: u32,
    opts: Options,
    /// The `capacity` scenario has failed (once per run; every limit met is a problem of its own).
    capacity_failed: bool,
    /// The optional scenarios (bits by index in [`cmdline::SCENARIOS`]) that gave a verdict.
    optional_done: u32,
}

static PCI: spin::Mutex<Enumeration> = spin::Mutex::new(Enumeration::new());
/// One outcome per enumerated function, in the same order.
static OUTCOMES: spin::Mutex<Vec<FunctionOutcome>> = spin::Mutex::new(Vec::new());

fn problem(source: &str, args: core::fmt::Arguments) {
    crate::warn!("problem: {=str}", source);
    report::emit(&Record::Problem(wire::Problem { source: source.into(), detail: report::text(args) }));
}

/// A limit of msifw's own (its heap, the vectors of the one CPU it runs on) kept something from being
/// driven or checked: a `capacity` problem naming the limit and a failed `capacity` scenario, so the run
/// cannot pass. What the limit kept from running is skipped by its caller, not failed.
fn capacity(run: &mut Run, args: core::fmt::Arguments) {
    problem("capacity", args);
    if !core::mem::replace(&mut run.capacity_failed, true) {
        run.scenario("capacity", None, &Verdict::new(Outcome::Fail, format_args!("{args} (every limit met is a capacity problem)")));
    }
}

impl Run {
    fn scenario(&mut self, name: &str, bdf: Option<Bdf>, verdict: &Verdict) {
        self.scenario_record(name, bdf, verdict, false)
    }

    /// A negative control: the same scenario with the guard off; it passes when the failure was seen, and
    /// is a skip when it provoked nothing (decided in [`crate::scenarios::judge_control`] only).
    fn control(&mut self, name: &str, bdf: Option<Bdf>, verdict: &Verdict, provoked: Provoked, why_nothing: &str) {
        let verdict = crate::scenarios::judge_control(verdict.clone(), provoked, why_nothing);
        self.scenario_record(name, bdf, &verdict, true)
    }

    fn scenario_record(&mut self, name: &str, bdf: Option<Bdf>, verdict: &Verdict, control: bool) {
        if let Some(i) = cmdline::scenario_index(name, control) {
            self.optional_done |= 1 << i;
        }
        self.summary.add(verdict.outcome);
        report::emit(&Record::Scenario(wire::Scenario {
            name: name.into(),
            bdf: bdf.map(report::bdf),
            result: verdict.outcome,
            detail: verdict.detail.as_str().into(),
            control,
        }));
    }
}

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
            // SAFETY: ud2 raises #UD, which the dispatcher reports as fatal; nothing follows.
            unsafe { core::arch::asm!("ud2") };
        }
        Some(cmdline::SelfTest::Panic) => panic!("selftest: deliberate panic"),
        Some(cmdline::SelfTest::StackOverflow) => {
            crate::println!("msifw: selftest: recursing into the stack guard page");
            recurse(0);
        }
        None => {}
    }
    let mut run = Run { summary: Summary::default(), apic_id: 0, opts, capacity_failed: false, optional_done: 0 };
    // A command line or memory map cut at msifw's own limit: the run cannot pass.
    for p in boot.problems.iter().filter(|p| p.is_capacity()) {
        capacity(&mut run, format_args!("boot: {p}"));
    }
    // Crash restart: stage A leaves the devices live and restarts in place; stage B finds the handoff.
    // Stage B reports everything stage A did (platform, setup verdicts) again and counts only its own: the
    // host keeps the report from the last `platform` record on.
    let stage_b = if restarted { crash::stage_b() } else { None };
    let crash_control = run.opts.wants("crash-restart-control");
    let crash_stage_a = stage_b.is_none() && (run.opts.wants("crash-restart") || crash_control);
    // The control delays every quieting step until after its trap window.
    let delay_quiet = stage_b.is_some_and(|h| crash::is_control(&h));

    let mut platform = match platform::discover(&mut run, boot, !delay_quiet, stage_b.is_some()) {
        Ok(p) => p,
        Err(platform::Fatal::Lapic(e)) => {
            problem("lapic", format_args!("{e:?}"));
            run.scenario("lapic", None, &Verdict::new(Outcome::Fail, format_args!("local APIC unusable: {e:?}")));
            return finish(&run);
        }
    };
    let cfg = platform.cfg;

    let mut pci = PCI.lock();
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
    let enumeration_us = time::now_us() - t0;
    // INTx routing sources: the DSDT, the MP table only without ACPI (as Linux), the chipset's rules.
    let chipset = Chipset::detect(&pci);
    let mp = platform.mp_table.as_ref().filter(|_| !platform.acpi);
    let routing = devices::Routing {
        chipset,
        madt: platform.tables.madt.as_ref(),
        dsdt: platform.dsdt_routing.as_ref(),
        mp,
        ioapic_ids: &platform.ioapic_ids,
        unavailable: devices::Routing::unavailable_reason(platform.ioapics.len(), platform.acpi, mp, platform.dsdt_routing.is_some(), chipset),
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
    let t_quiet = time::now_us();
    accounting::set_phase(Phase::Setup);
    if !delay_quiet {
        quiet_all(cfg, &pci.functions);
    }
    accounting::stop();
    let quiet_us = time::now_us() - t_quiet;
    crate::info!("quiet: {=u64} us", quiet_us);
    if let Some(h) = &stage_b {
        const WINDOW_US: u64 = 200_000;
        let (retired, inherited, stale) = crash::trap_window(WINDOW_US);
        if delay_quiet {
            intx::mask_every_entry();
            quiet_all(cfg, &pci.functions);
        }
        let v = crash::verdict(h, pci.functions.len() as u32, retired, inherited, stale, WINDOW_US);
        if delay_quiet {
            run.control("crash-restart", None, &v, crash::provoked(h), "stage A left no INTx line asserted (no driven edu or nvme with an INTx pin to move to INTx)");
        } else {
            run.scenario("crash-restart", None, &v);
        }
    }

    // From here on every configuration and MSI-X table access is recorded and later held against the
    // spec's rules (modes::order).
    trace::start();
    cpu::enable_interrupts();
    // The self-IPI checks' watch window runs while the devices are set up.
    let self_ipis = (!crash_stage_a).then(checks::send_self_ipis);

    // Every driven device is set up first and stays live while each is checked in turn, so a device's
    // interrupts reaching another's vectors would show in the exact counts.
    let storm_done;
    let setup_us;
    {
        let mut active = devices::ACTIVE.lock();
        let t_setup = time::now_us();
        accounting::set_phase(Phase::Setup);
        devices::set_up_all(&mut run, cfg, &pci, &routing, &mut active);
        accounting::set_phase(Phase::Checks);
        setup_us = time::now_us() - t_setup;
        crate::info!("set up: {=usize} devices in {=u64} us", active.len(), setup_us);
        if let Some(probe) = self_ipis {
            checks::judge_self_ipis(&mut run, probe);
        }
        if crash_stage_a {
            crash::leave_live_and_restart(cfg, &pci, &routing, &mut active, crash_control, start_info);
        }
        // The benchmark runs on the devices as setup left them, before the checks drive them.
        let dispatch_n = run.opts.dispatch;
        if dispatch_n > 0 {
            trace::paused(|| bench::dispatch(&mut run, &mut active, dispatch_n));
        }
        let t0 = time::now_us();
        // Without optional scenarios or a soak, the checks are the devices' last use.
        let last_use = run.opts.scenarios.is_empty() && run.opts.soak == 0;
        lifecycle::check_all(&mut run, &mut active, last_use);
        crate::info!("checks: {=u64} us", time::now_us() - t0);
        let soak = run.opts.soak;
        if soak > 0 {
            lifecycle::soak(&mut run, &mut active, soak);
        }
        storm_done = run.opts.wants("intx-storm") && lifecycle::intx_storm_with_others(&mut run, cfg, &pci, &routing, &mut active);
        if run.opts.wants("hot-unplug") {
            lifecycle::hot_unplug(&mut run, cfg, &pci, &mut active);
        }
        if run.opts.wants("stuck-command") {
            lifecycle::stuck_command(&mut run, &pci, &mut active);
        }
        if run.opts.wants("reset-restore") {
            lifecycle::reset_restore(&mut run, cfg, &pci, &mut active);
        }
        if run.opts.wants("reenable") {
            lifecycle::reenable(&mut run, &pci, &mut active, false);
        }
        if run.opts.wants("incremental") {
            lifecycle::reenable(&mut run, &pci, &mut active, true);
        }
        // Shutdown leaves the devices shut down, so it comes last; its control needs a run of its own.
        if run.opts.wants("shutdown") {
            lifecycle::shutdown(&mut run, cfg, &pci, &routing, &mut active, false);
        } else if run.opts.wants("shutdown-control") {
            lifecycle::shutdown(&mut run, cfg, &pci, &routing, &mut active, true);
        }
        let t0 = time::now_us();
        lifecycle::tear_down(&mut active);
        crate::info!("teardown: {=u64} us", time::now_us() - t0);
    }
    if run.opts.wants("intx-storm") && !storm_done {
        checks::run_storm(&mut run, cfg, &pci, &routing);
    }
    // An optional scenario asked for that found nothing to run on is a skip saying so, not silence.
    for (i, name) in cmdline::SCENARIOS.iter().enumerate() {
        if run.opts.wants(name) && run.optional_done & (1 << i) == 0 {
            let control = name.ends_with("-control");
            let v = Verdict::new(Outcome::Skip, format_args!("{}", cmdline::no_subject_reason(name)));
            run.scenario_record(name.trim_end_matches("-control"), None, &v, control);
        }
    }
    cpu::disable_interrupts();
    trace::stop();
    accounting::stop();
    let t0 = time::now_us();
    checks::check_write_order(&mut run, cfg, &pci);
    crate::info!("write order: {=u64} us", time::now_us() - t0);
    if run.opts.bench {
        bench::emit_phase("enumeration", enumeration_us);
        bench::emit_phase("quiet", quiet_us);
        bench::emit_phase("setup", setup_us);
        bench::emit_accesses(&pci);
    }

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
    finish(&run)
}

fn finish(run: &Run) -> ExitCode {
    let s = run.summary;
    report::emit(&Record::End(wire::End { passed: s.passed, failed: s.failed, skipped: s.skipped }));
    crate::info!("done: {=u32} passed, {=u32} failed, {=u32} skipped", s.passed, s.failed, s.skipped);
    if s.failed == 0 {
        ExitCode::Passed
    } else {
        ExitCode::Failed
    }
}

/// Makes `f` unable to interrupt, as if a crashed kernel had left it live: MSI Enable cleared, MSI-X
/// Enable cleared with the Function Mask set (pci_msi_init/pci_msix_init do the same at enumeration),
/// INTx disabled, and Bus Master off for every endpoint until a driver owns it (a bridge keeps its Bus
/// Master: it forwards its children's MSI writes upstream). MSI-X entries are not masked one by one here:
/// that happens when MSI-X is enabled successfully, as in Linux (a device that honours the mask bits while
/// MSI-X is disabled would otherwise be blocked in MSI mode).
///
/// Two passes: the first sets every Function Mask (and does the rest), the second clears MSI-X Enable
/// [`crate::modes::msix::DISABLE_SETTLE_US`] later, once, for all functions.
fn quiet_all(cfg: &PlatformConfig, functions: &[Function]) {
    use crate::modes::msix::{CONTROL, DISABLE_SETTLE_US, ENABLE, FUNCTION_MASK};
    let mut msix_was_enabled = false;
    for f in functions {
        if let Some(at) = f.caps.find(caps::id::MSI) {
            let control = cfg.read16(f.bdf, at + crate::modes::msi::CONTROL);
            if control & crate::modes::msi::ENABLE != 0 {
                cfg.write16(f.bdf, at + crate::modes::msi::CONTROL, control & !crate::modes::msi::ENABLE);
            }
        }
        if let Some(at) = f.caps.find(caps::id::MSIX) {
            let control = cfg.read16(f.bdf, at + CONTROL);
            msix_was_enabled |= control & ENABLE != 0;
            if control & FUNCTION_MASK == 0 {
                cfg.write16(f.bdf, at + CONTROL, control | FUNCTION_MASK);
            }
        }
        let clear = if f.header_type == 0 { regs::command::BUS_MASTER } else { 0 };
        update_command(cfg, f.bdf, regs::command::INTX_DISABLE, clear);
    }
    if !msix_was_enabled {
        return;
    }
    crate::time::timers_run_by(crate::time::now_us() + DISABLE_SETTLE_US);
    for f in functions {
        if let Some(at) = f.caps.find(caps::id::MSIX) {
            let control = cfg.read16(f.bdf, at + CONTROL);
            if control & ENABLE != 0 {
                cfg.write16(f.bdf, at + CONTROL, control & !ENABLE);
            }
        }
    }
}

fn push_problem(outcome: &mut FunctionOutcome, args: core::fmt::Arguments) {
    let mut s = String::new();
    let _ = core::fmt::Write::write_fmt(&mut s, args);
    outcome.problems.push(s);
}
