//! The firmware's run: platform discovery, enumeration, quieting every function, interrupt setup per
//! device, the checks, and the report.

use crate::arch::exit::ExitCode;
use crate::arch::{cpu, ioapic, lapic, paging};
use crate::boot::BootInfo;
use crate::bus::pci::config::{Mechanism, PlatformConfig};
use crate::bus::pci::enumerate::{self, Enumeration, Function};
use crate::bus::pci::{caps, regs, Bdf, ConfigRegion};
use crate::cmdline::{self, Options};
use crate::drivers::pcie_port::{self, PciePort};
use crate::drivers::{e1000e::E1000e, edu::Edu, nvme::Nvme, virtio_net::VirtioNet, DriverKind, InterruptSource};
use crate::irq::{dispatch, vector};
use crate::bus::pci::trace;
use crate::irq::intx;
use crate::irq::vector::VectorError;
use crate::modes::route::{self, Chipset, RouteError, Routed};
use crate::modes::{order, update_command, DeviceIrq, IrqMode};
use crate::platform::acpi::{self, PhysMemory};
use crate::platform::prt;
use crate::report::{Array, Outcome, Record, Summary};
use crate::scenarios::{delivery, masking, storm, Verdict};
use crate::time;
use heapless::{String, Vec};

/// What happened to one function's interrupts.
#[derive(Debug, Clone, Default)]
struct FunctionOutcome {
    driver: Option<&'static str>,
    mode: Option<IrqMode>,
    reason: Option<String<96>>,
    route: Option<Routed>,
    vectors: Vec<u8, 32>,
    interrupts: u64,
    problems: Vec<String<160>, 4>,
}

struct Run {
    summary: Summary,
    apic_id: u32,
    opts: Options,
}

static PCI: spin::Mutex<Enumeration> = spin::Mutex::new(Enumeration::new());
/// One outcome per enumerated function, in the same order (a Vec, so the static lives in .bss).
static OUTCOMES: spin::Mutex<Vec<FunctionOutcome, { enumerate::MAX_FUNCTIONS }>> = spin::Mutex::new(Vec::new());

fn problem(source: &str, args: core::fmt::Arguments) {
    crate::warn!("problem: {=str}", source);
    Record::new("problem").str("source", source).fmt("detail", args).emit();
}

impl Run {
    fn scenario(&mut self, name: &str, bdf: Option<Bdf>, verdict: &Verdict) {
        self.summary.add(verdict.outcome);
        let mut r = Record::new("scenario");
        r.str("name", name);
        match bdf {
            Some(b) => r.fmt("bdf", format_args!("{b}")),
            None => r.null("bdf"),
        };
        r.str("result", verdict.outcome.name()).str("detail", &verdict.detail).bool("control", false).emit();
    }
}

/// Runs everything and returns the exit code for the host.
pub fn run(boot: &BootInfo) -> ExitCode {
    let (opts, cmdline_errors) = cmdline::parse(&boot.cmdline);
    for p in &boot.problems {
        problem("boot", format_args!("{p}"));
    }
    for e in &cmdline_errors {
        problem("cmdline", format_args!("{e}"));
    }
    dispatch::install();
    match opts.selftest {
        Some(cmdline::SelfTest::Exception) => {
            crate::println!("msifw: selftest: raising #UD");
            // SAFETY: ud2 raises #UD, which the dispatcher reports as fatal; nothing follows.
            unsafe { core::arch::asm!("ud2") };
        }
        Some(cmdline::SelfTest::Panic) => panic!("selftest: deliberate panic"),
        None => {}
    }
    let mut run = Run { summary: Summary::default(), apic_id: 0, opts };

    let lapic_mode = match lapic::init(run.opts.x2apic) {
        Ok(m) => m,
        Err(e) => {
            problem("lapic", format_args!("{e:?}"));
            run.scenario("lapic", None, &Verdict::new(Outcome::Fail, format_args!("local APIC unusable: {e:?}")));
            return finish(&run);
        }
    };
    run.apic_id = lapic::id();
    crate::info!("LAPIC {=str} mode, APIC ID {=u32}", if lapic_mode == lapic::Mode::X2Apic { "x2APIC" } else { "xAPIC" }, run.apic_id);

    // ACPI tables live in RAM or the reserved block right after it; reads stop at the end of that.
    let limit = boot.table_memory_top().clamp(1 << 20, 1 << 32);
    // SAFETY: everything below the top of RAM is identity-mapped by boot/pvh.s and is ordinary memory
    // (RAM, firmware ROM shadow and reserved RAM) with no read side effects; msifw writes none of the ACPI
    // tables while they are parsed.
    let mem = unsafe { acpi::IdentityMemory::new(limit) };
    let rsdp = boot.rsdp.or_else(|| acpi::find_rsdp_bios(&mem));
    let tables = match rsdp {
        Some(rsdp) => acpi::parse(rsdp, &mem),
        None => {
            problem("acpi", format_args!("no RSDP handed over or found"));
            acpi::parse(0, &mem)
        }
    };
    for p in tables.problems.iter() {
        // i440fx (`-M pc`) has no ECAM and so no MCFG: configuration space through ports is expected there.
        if *p == (acpi::AcpiProblem::MissingTable { signature: acpi::Signature::MCFG }) {
            crate::info!("no MCFG: configuration space through ports 0xCF8/0xCFC");
            continue;
        }
        problem("acpi", format_args!("{p}"));
    }

    // IOAPICs: everything masked until a line is deliberately routed (a previous owner's routes must
    // not fire).
    let mut ioapics = 0u32;
    let mut ioapic_ranges: Vec<intx::IoApicRange, 8> = Vec::new();
    if let Some(madt) = &tables.madt {
        for io in madt.io_apics.iter() {
            if !(0xC000_0000..0xFFFF_F000).contains(&(io.address as u64)) {
                problem("acpi.madt", format_args!("IOAPIC {} at {:#x} outside the uncached window; not used", io.id, io.address));
                continue;
            }
            // SAFETY: the address comes from a checksummed MADT and lies in the identity-mapped uncached
            // 3-4 GiB window; msifw is the only user of the IOAPIC.
            let chip = unsafe { ioapic::IoApic::new(io.address as u64) };
            let n = chip.mask_all();
            crate::info!("IOAPIC {=u8}: {=u32} entries masked", io.id, n);
            ioapics += 1;
            let _ = ioapic_ranges.push(intx::IoApicRange { chip, gsi_base: io.gsi_base, entries: n });
        }
    }

    // Configuration access: ECAM from MCFG (segment 0) when present, else the legacy ports.
    let ecam = tables.mcfg.iter().find(|e| e.segment == 0).copied();
    let mechanism = match ecam {
        Some(e) => match paging::map_uncached(e.window().start, e.window().end - e.window().start) {
            Ok(()) => Mechanism::Ecam { base: e.base_address, bus_start: e.bus_start, bus_end: e.bus_end },
            Err(err) => {
                problem("acpi.mcfg", format_args!("ECAM window not mappable ({err:?}); using port I/O"));
                Mechanism::Port
            }
        },
        None => Mechanism::Port,
    };
    // SAFETY: for ECAM, the window comes from a checksummed MCFG and was just mapped uncached; every PC
    // has configuration mechanism #1 for the port case.
    let cfg: &'static PlatformConfig = {
        static CFG: spin::Once<PlatformConfig> = spin::Once::new();
        CFG.call_once(|| unsafe { PlatformConfig::new(mechanism) })
    };
    let (bus_start, bus_end) = match mechanism {
        Mechanism::Ecam { bus_start, bus_end, .. } => (bus_start, bus_end),
        Mechanism::Port => (0, 255),
    };

    let mut platform = Record::new("platform");
    platform
        .num("apic_id", run.apic_id as u64)
        .bool("x2apic", lapic_mode == lapic::Mode::X2Apic)
        .str("config_access", if matches!(mechanism, Mechanism::Ecam { .. }) { "ecam" } else { "port" });
    match mechanism {
        Mechanism::Ecam { base, .. } => platform.fmt("ecam_base", format_args!("{base:#x}")),
        Mechanism::Port => platform.null("ecam_base"),
    };
    platform.num("ioapics", ioapics as u64).str("cmdline", &boot.cmdline).emit();

    let mut pci = PCI.lock();
    let t0 = time::now_us();
    enumerate::enumerate(cfg, bus_start, bus_end, &mut pci);
    crate::info!("PCI: {=usize} functions on {=usize} buses in {=u64} us", pci.functions.len(), pci.buses_scanned.len(), time::now_us() - t0);
    for (bdf, p) in pci.problems.iter() {
        problem("pci", format_args!("{bdf}: {p}"));
    }

    let chipset = Chipset::detect(&pci);
    intx::init(&ioapic_ranges, cfg, run.apic_id as u8);
    // The DSDT's static APIC-mode routing package (q35); pc has none, and then the PIIX3 registers serve.
    let dsdt_bytes = tables.dsdt.and_then(|t| mem.bytes(t.address, t.length as usize));
    let dsdt = match dsdt_bytes.map(prt::resolve) {
        Some(Ok(r)) => Some(r),
        Some(Err(prt::PrtError::NotFound)) | None => None,
        Some(Err(e)) => {
            problem("acpi.dsdt", format_args!("INTx routing package unusable ({e}); using the chipset's rules"));
            None
        }
    };
    let routing = Routing { chipset, madt: tables.madt.as_ref(), dsdt: dsdt.as_ref() };

    // Identity mappings for every memory BAR the boot firmware placed above 4 GiB (below is mapped at boot).
    for f in pci.functions.iter() {
        for b in f.bars.iter().filter(|b| b.kind != crate::bus::pci::bar::BarKind::Io && b.address >= 1 << 32) {
            if let Err(e) = paging::map_uncached(b.address, b.size) {
                problem("paging", format_args!("{}: BAR{} at {:#x} not mapped: {e:?}", f.bdf, b.index, b.address));
            }
        }
    }

    // Every function is assumed live until proven quiet: MSI and MSI-X off, INTx disabled, and Bus Master
    // off for endpoints no driver here owns (a bridge keeps its Bus Master: it forwards its children's
    // MSI writes upstream).
    for f in pci.functions.iter() {
        quiet(cfg, f, driver_for(cfg, f).is_none());
    }

    // From here on every configuration and MSI-X table access is recorded and later held against the
    // spec's rules (modes::order).
    trace::start();
    cpu::enable_interrupts();
    run_self_ipi(&mut run);

    // Every driven device is set up first and stays live while each is checked in turn, so a device's
    // interrupts reaching another's vectors would show in the exact counts.
    let mut active: Vec<Active, MAX_ACTIVE> = Vec::new();
    {
        let mut outcomes = OUTCOMES.lock();
        outcomes.clear();
        for (index, f) in pci.functions.iter().enumerate() {
            let mut outcome = FunctionOutcome::default();
            for p in f.problems.iter() {
                push_problem(&mut outcome, format_args!("{p}"));
            }
            if let Some(kind) = driver_for(cfg, f) {
                trace::own(f.bdf);
                outcome.driver = Some(kind.name());
                let (mut mode, reason) = choose_mode(&run.opts, f);
                let automatic = run.opts.override_for(f.bdf).is_none();
                outcome.reason = reason.map(|r| String::try_from(r).unwrap_or_default());
                enable_upstream_bridges(cfg, &pci, f.bdf);
                // Linux's pci_alloc_irq_vectors order when vectors run out: fewer MSI-X vectors (inside
                // `setup`), then MSI, then INTx (whose lines have their own vector pool).
                let result = loop {
                    match setup(&run, cfg, &pci, &routing, f, kind, mode) {
                        Err(SetupError::Irq(m, crate::modes::IrqError::Vector(e))) if automatic => {
                            let next = match m {
                                IrqMode::Msix if f.caps.find(caps::id::MSI).is_some() => IrqMode::Msi,
                                IrqMode::Msix | IrqMode::Msi if f.interrupt_pin != 0 => IrqMode::Intx,
                                _ => break Err(SetupError::Irq(m, crate::modes::IrqError::Vector(e))),
                            };
                            let mut why = match outcome.reason.take() {
                                Some(w) if w.starts_with("vectors exhausted") => w,
                                _ => String::try_from("vectors exhausted:").unwrap_or_default(),
                            };
                            let _ = core::fmt::Write::write_fmt(&mut why, format_args!(" no {} ({e});", m.name()));
                            outcome.reason = Some(why);
                            mode = next;
                        }
                        other => break other,
                    }
                };
                match result {
                    Ok(mut dev) => {
                        // Setup may itself have raised an interrupt (a port's enabling write is a hot-plug
                        // command); the driver acknowledged it, so a level-triggered line held by the
                        // handler is re-armed now.
                        for i in 0..dev.irq.vectors().len() {
                            dev.irq.rearm(i);
                        }
                        outcome.mode = Some(mode);
                        outcome.route = dev.route;
                        outcome.vectors = dev.irq.vectors().iter().copied().collect();
                        if let Some((got, wanted)) = dev.reduced {
                            let mut why = String::new();
                            let _ = core::fmt::Write::write_fmt(&mut why, format_args!("vectors exhausted: MSI-X with {got} of {wanted} vectors"));
                            outcome.reason = Some(why);
                        }
                        if let Some(r) = dev.route.and_then(|r| r.disagreement.map(|rule| (r.route.gsi, rule))) {
                            problem("routing", format_args!("{}: DSDT routes to GSI {}, the chipset rule to GSI {}; using the DSDT", f.bdf, r.0, r.1));
                        }
                        if active.push(Active { index, mode, ..dev }).is_err() {
                            outcome.mode = None;
                            outcome.vectors.clear();
                            push_problem(&mut outcome, format_args!("more than {MAX_ACTIVE} driven devices; not driven"));
                        }
                    }
                    Err(detail) => {
                        // Asking for a mode the function does not have is a configuration mismatch (skip);
                        // a mode it has that does not work is a failure.
                        let unavailable = matches!(
                            detail,
                            SetupError::Irq(_, crate::modes::IrqError::NoCapability(_))
                                | SetupError::NotImplemented(_)
                                | SetupError::Declined(_)
                        ) || matches!(detail, SetupError::Route(RouteError::NoPin(_)));
                        let outcome_kind = if unavailable { Outcome::Skip } else { Outcome::Fail };
                        let reason = outcome.reason.clone();
                        let v = Verdict::new(
                            outcome_kind,
                            format_args!("{detail}{}{}", if reason.is_some() { "; " } else { "" }, reason.as_deref().unwrap_or("")),
                        );
                        push_problem(&mut outcome, format_args!("{}", v.detail));
                        run.scenario(scenario_name(mode), Some(f.bdf), &v);
                    }
                }
            }
            // Capacity equals MAX_FUNCTIONS, the most functions enumeration keeps.
            let _ = outcomes.push(outcome);
        }
    }
    for dev in active.iter_mut() {
        let verdict = delivery::run(dev.dev.source(), &mut dev.irq, run.opts.rounds);
        let bdf = dev.irq.bdf();
        crate::info!("{} {=str}: {=str}", bdf, dev.mode.name(), verdict.outcome.name());
        run.scenario(scenario_name(dev.mode), Some(bdf), &verdict);
        let masks: &[masking::Mask] = match dev.mode {
            IrqMode::Msix => &[masking::Mask::PerVector, masking::Mask::Function],
            IrqMode::Msi if dev.irq.msi_maskable() => &[masking::Mask::PerVector],
            _ => &[],
        };
        for &mask in masks {
            let verdict = masking::run(dev.dev.source(), &mut dev.irq, mask);
            run.scenario(mask.scenario(dev.mode), Some(bdf), &verdict);
        }
    }
    // Teardown: each device silenced by its driver, then its interrupt mode shut down, then its vectors
    // freed (field order of `Active`).
    while let Some(dev) = active.pop() {
        if let Some(o) = OUTCOMES.lock().get_mut(dev.index) {
            o.interrupts = dev.irq.delivered();
        }
        drop(dev);
    }
    if run.opts.wants("intx-storm") {
        run_storm(&mut run, cfg, &pci, &routing);
    }
    cpu::disable_interrupts();
    trace::stop();
    check_write_order(&mut run, cfg, &pci);

    for (index, f) in pci.functions.iter().enumerate() {
        emit_function(cfg, f, OUTCOMES.lock().get(index));
    }
    for line in intx::history() {
        problem(
            "intx",
            format_args!("GSI {} (vector {:#x}): {} interrupts no function claimed{}", line.gsi, line.vector, line.unclaimed, if line.storm_masked { "; masked as a storm" } else { "" }),
        );
    }
    let spurious = dispatch::spurious();
    if spurious > 0 {
        problem("irq", format_args!("{spurious} spurious interrupts"));
    }
    finish(&run)
}

fn finish(run: &Run) -> ExitCode {
    let s = run.summary;
    Record::new("end").num("passed", s.passed as u64).num("failed", s.failed as u64).num("skipped", s.skipped as u64).emit();
    crate::info!("done: {=u32} passed, {=u32} failed, {=u32} skipped", s.passed, s.failed, s.skipped);
    if s.failed == 0 {
        ExitCode::Passed
    } else {
        ExitCode::Failed
    }
}

/// Makes `f` unable to interrupt: MSI Enable cleared, MSI-X Enable cleared with the Function Mask set
/// (pci_msi_init/pci_msix_init do the same at enumeration), INTx disabled, and Bus Master off when
/// `unowned` (for endpoints).
fn quiet(cfg: &PlatformConfig, f: &Function, unowned: bool) {
    if let Some(at) = f.caps.find(caps::id::MSI) {
        let control = cfg.read16(f.bdf, at + crate::modes::msi::CONTROL);
        if control & crate::modes::msi::ENABLE != 0 {
            cfg.write16(f.bdf, at + crate::modes::msi::CONTROL, control & !crate::modes::msi::ENABLE);
        }
    }
    if let Some(at) = f.caps.find(caps::id::MSIX) {
        use crate::modes::msix::{CONTROL, ENABLE, FUNCTION_MASK};
        let control = cfg.read16(f.bdf, at + CONTROL);
        if control & (ENABLE | FUNCTION_MASK) != FUNCTION_MASK {
            cfg.write16(f.bdf, at + CONTROL, (control | FUNCTION_MASK) & !ENABLE);
        }
    }
    let clear = if unowned && f.header_type == 0 { regs::command::BUS_MASTER } else { 0 };
    update_command(cfg, f.bdf, regs::command::INTX_DISABLE, clear);
}

fn run_self_ipi(run: &mut Run) {
    let v = vector::SELF_IPI_VECTOR;
    let before = dispatch::count(v);
    lapic::self_ipi(v);
    let ok = time::wait_until(delivery::ARRIVAL_TIMEOUT_US, || dispatch::count(v) > before);
    time::delay_us(1000);
    let got = dispatch::count(v) - before;
    let verdict = if ok && got == 1 {
        Verdict::new(Outcome::Pass, format_args!("self IPI on vector {v:#x} delivered once"))
    } else {
        Verdict::new(Outcome::Fail, format_args!("self IPI on vector {v:#x}: {got} deliveries, expected 1"))
    };
    run.scenario("lapic-self-ipi", None, &verdict);
}

/// Holds the access trace of every function that was owned or written against the programming rules
/// (modes::order) and reports one `write-order` scenario per such function.
fn check_write_order(run: &mut Run, cfg: &PlatformConfig, pci: &Enumeration) {
    let overflowed = trace::inspect(|t| t.overflowed);
    for f in pci.functions.iter() {
        let msi = f.caps.find(caps::id::MSI).and_then(|at| crate::modes::msi::read_capability(cfg, f.bdf, at).ok());
        let msix = f.caps.find(caps::id::MSIX).map(|at| crate::modes::msix::read_capability(cfg, f.bdf, at));
        let verdict = trace::inspect(|t| {
            let owned = t.owns(f.bdf);
            let written = t.events.iter().any(|e| {
                e.bdf == f.bdf && matches!(e.access, trace::Access::ConfigWrite { .. } | trace::Access::TableWrite { .. })
            });
            if !owned && !written {
                return None;
            }
            let layout = order::Layout { bdf: f.bdf, msi, msix, owned };
            let findings = order::check(&layout, &t.events);
            Some(match findings.violations.first() {
                _ if overflowed > 0 => Verdict::new(
                    Outcome::Fail,
                    format_args!("trace overflowed ({overflowed} accesses not recorded); order not provable"),
                ),
                Some(v) => Verdict::new(
                    Outcome::Fail,
                    format_args!("{v} ({} rule(s) broken)", findings.violations.len()),
                ),
                None => Verdict::new(
                    Outcome::Pass,
                    format_args!("{} accesses checked against rules R1-R7, no violation", findings.events),
                ),
            })
        });
        if let Some(v) = verdict {
            run.scenario("write-order", Some(f.bdf), &v);
        }
    }
}

/// The optional storm scenario, on the first edu function (after teardown, so nothing else uses it).
fn run_storm(run: &mut Run, cfg: &'static PlatformConfig, pci: &Enumeration, routing: &Routing) {
    let Some(edu) = pci.functions.iter().find(|f| DriverKind::probe(f) == Some(DriverKind::Edu)) else {
        run.scenario("intx-storm", None, &Verdict::new(Outcome::Skip, format_args!("needs an edu function (-device edu)")));
        return;
    };
    let lookup = |slot: u8, pin: u8| routing.dsdt?.gsi(slot, pin).map(|r| (r.gsi, r.level, r.active_low));
    let dsdt: Option<route::DsdtLookup> = routing.dsdt.map(|_| &lookup as route::DsdtLookup);
    let verdict = match route::resolve(pci, cfg, routing.chipset, dsdt, routing.madt, edu) {
        Ok(r) => storm::run(cfg, edu, r.route),
        Err(e) => Verdict::new(Outcome::Skip, format_args!("edu INTx not routable: {e}")),
    };
    run.scenario("intx-storm", Some(edu.bdf), &verdict);
}

/// The driver for `f`, if msifw has one that can make it interrupt.
fn driver_for(cfg: &PlatformConfig, f: &Function) -> Option<DriverKind> {
    DriverKind::probe(f).filter(|k| *k != DriverKind::PciePort || pcie_port::is_hotplug_port(cfg, f))
}

/// Memory decoding and Bus Master on every bridge between the root bus and `bdf`: a bridge forwards its
/// children's memory writes (MSI messages, DMA) upstream only with Bus Master set (PCI-to-PCI Bridge 1.2
/// 3.2.2.1.1), as Linux's pci_enable_bridge ensures.
fn enable_upstream_bridges(cfg: &PlatformConfig, pci: &Enumeration, bdf: Bdf) {
    let mut bus = bdf.bus;
    for _ in 0..32 {
        let Some(bridge) = pci.functions.iter().find(|b| b.bridge_buses.is_some_and(|(sec, _)| sec == bus)) else {
            return;
        };
        trace::own(bridge.bdf);
        update_command(cfg, bridge.bdf, regs::command::MEMORY | regs::command::BUS_MASTER, 0);
        bus = bridge.bdf.bus;
    }
}

/// The mode a driven device gets: the best it offers unless the command line says otherwise.
fn choose_mode(opts: &Options, f: &Function) -> (IrqMode, Option<&'static str>) {
    let has_msix = f.caps.find(caps::id::MSIX).is_some();
    let has_msi = f.caps.find(caps::id::MSI).is_some();
    if let Some(mode) = opts.override_for(f.bdf) {
        return (mode, Some("command line override"));
    }
    if has_msix && !opts.no_msix && !opts.no_msi {
        return (IrqMode::Msix, None);
    }
    if has_msi && !opts.no_msi {
        return (IrqMode::Msi, if has_msix { Some("MSI-X disabled on the command line") } else { None });
    }
    let why = if opts.no_msi && (has_msi || has_msix) { "MSI disabled on the command line" } else { "no MSI or MSI-X capability" };
    if f.interrupt_pin == 0 {
        return (IrqMode::None, Some("no MSI, MSI-X or INTx available"));
    }
    (IrqMode::Intx, Some(why))
}

fn scenario_name(mode: IrqMode) -> &'static str {
    match mode {
        IrqMode::Msix => "msix-delivery",
        IrqMode::Msi => "msi-delivery",
        IrqMode::Intx => "intx-delivery",
        IrqMode::None => "irq-none",
    }
}

fn push_problem(outcome: &mut FunctionOutcome, args: core::fmt::Arguments) {
    let mut s = String::new();
    let _ = core::fmt::Write::write_fmt(&mut s, args);
    let _ = outcome.problems.push(s);
}

/// A driven device.
// Variants differ in size (nvme keeps its queue pairs inline); boxing would need an allocator, which the
// firmware does not have, and there is one of these per driven device.
#[allow(clippy::large_enum_variant)]
enum Device {
    E1000e(E1000e),
    Nvme(Nvme),
    Edu(Edu),
    VirtioNet(VirtioNet),
    PciePort(PciePort<'static>),
}

impl Device {
    fn source(&mut self) -> &mut dyn InterruptSource {
        match self {
            Device::E1000e(d) => d,
            Device::Nvme(d) => d,
            Device::Edu(d) => d,
            Device::VirtioNet(d) => d,
            Device::PciePort(d) => d,
        }
    }
}

/// A device with its interrupts. Field order is drop order: the driver silences the device before the
/// interrupt mode is shut down and the vectors are freed.
struct Active {
    index: usize,
    mode: IrqMode,
    route: Option<Routed>,
    /// MSI-X with fewer vectors than wanted: (got, wanted).
    reduced: Option<(u16, u16)>,
    dev: Device,
    irq: DeviceIrq<'static, PlatformConfig>,
}

/// Why a device could not be set up.
#[derive(Debug, Clone, Copy)]
enum SetupError {
    Driver(DriverKind, crate::drivers::DriverError),
    Irq(IrqMode, crate::modes::IrqError),
    NotImplemented(IrqMode),
    Route(RouteError),
    /// The driver does not drive the device in this mode, for the reason given.
    Declined(&'static str),
}

impl core::fmt::Display for SetupError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Driver(kind, e) => write!(f, "{}: {e}", kind.name()),
            Self::Irq(mode, e) => write!(f, "{} setup failed: {e}", mode.name()),
            Self::NotImplemented(mode) => write!(f, "{} mode is not implemented yet", mode.name()),
            Self::Route(e) => write!(f, "INTx not routable: {e}"),
            Self::Declined(why) => write!(f, "{why}"),
        }
    }
}

/// Devices driven at once.
const MAX_ACTIVE: usize = 64;

/// I/O queue pairs (and so MSI-X vectors beyond the admin queue's) driven on each NVMe controller.
const NVME_IO_QUEUES: usize = 4;

/// What INTx routing needs from the platform.
struct Routing<'a> {
    chipset: Chipset,
    madt: Option<&'a acpi::MadtInfo>,
    dsdt: Option<&'a prt::Routing>,
}

fn setup(
    run: &Run,
    cfg: &'static PlatformConfig,
    pci: &Enumeration,
    routing: &Routing,
    f: &Function,
    kind: DriverKind,
    mode: IrqMode,
) -> Result<Active, SetupError> {
    let routed = match mode {
        IrqMode::Intx => {
            let lookup = |slot: u8, pin: u8| routing.dsdt?.gsi(slot, pin).map(|r| (r.gsi, r.level, r.active_low));
            let dsdt: Option<route::DsdtLookup> = routing.dsdt.map(|_| &lookup as route::DsdtLookup);
            Some(route::resolve(pci, cfg, routing.chipset, dsdt, routing.madt, f).map_err(SetupError::Route)?)
        }
        _ => None,
    };
    let mut reduced = None;
    let mut enable = |count: u16| -> Result<DeviceIrq<'static, PlatformConfig>, SetupError> {
        if mode == IrqMode::Msix {
            // As many as wanted, else as many as the allocator can give (a smaller MSI-X table use).
            let mut n = count;
            loop {
                match DeviceIrq::enable_msix(cfg, f, n, run.apic_id) {
                    Err(crate::modes::IrqError::Vector(VectorError::Exhausted { .. })) if n > 1 => n -= 1,
                    Ok(irq) => {
                        if n < count {
                            reduced = Some((n, count));
                        }
                        return Ok(irq);
                    }
                    Err(e) => return Err(SetupError::Irq(mode, e)),
                }
            }
        }
        match (mode, routed) {
            (IrqMode::Msix, _) => DeviceIrq::enable_msix(cfg, f, count, run.apic_id),
            (IrqMode::Msi, _) => DeviceIrq::enable_msi(cfg, f, count, run.apic_id),
            (IrqMode::Intx, Some(r)) => DeviceIrq::enable_intx(cfg, f, r.route),
            _ => return Err(SetupError::NotImplemented(mode)),
        }
        .map_err(|e| SetupError::Irq(mode, e))
    };
    let driver = |e| SetupError::Driver(kind, e);
    let active = |dev: Device, irq, reduced| Active { index: 0, mode, route: routed, reduced, dev, irq };
    match kind {
        DriverKind::E1000e => {
            let mut dev = E1000e::new(f).map_err(driver)?;
            let irq = enable(5)?;
            if mode == IrqMode::Msix {
                dev.use_msix(irq.vectors().len());
            } else {
                dev.use_single();
            }
            Ok(active(Device::E1000e(dev), irq, reduced))
        }
        DriverKind::Edu => {
            let dev = Edu::new(f).map_err(driver)?;
            let irq = enable(1)?;
            Ok(active(Device::Edu(dev), irq, reduced))
        }
        DriverKind::Nvme => {
            // MSI-X before CC.EN: QEMU binds the admin CQ's vector when the controller is enabled.
            let mut dev = Nvme::new(f).map_err(driver)?;
            // Admin queue on vector 0, and in MSI-X mode I/O queues 1..=N on vectors 1..=N (QEMU rejects a
            // CQ vector other than 0 without MSI-X).
            let irq = enable(1 + NVME_IO_QUEUES as u16)?;
            dev.enable().map_err(driver)?;
            if mode == IrqMode::Msix {
                let queues = irq.vectors().len().saturating_sub(1);
                dev.create_io_queues(queues).map_err(driver)?;
            }
            Ok(active(Device::Nvme(dev), irq, reduced))
        }
        DriverKind::VirtioNet => {
            // pci_enable_device + pci_set_master: I/O decoding for BAR0, Bus Master for the rings. QEMU's
            // virtio-pci clears DRIVER_OK and stops the queues on any Command write that leaves Bus Master
            // clear (the INTx mask-ack-unmask writes Command), so it is set before the device is touched.
            update_command(cfg, f.bdf, regs::command::IO | regs::command::BUS_MASTER, 0);
            let mut dev = VirtioNet::new(f).map_err(driver)?;
            // Vectors before DRIVER_OK: TX queue, RX queue, configuration changes (MSI-X entries 0-2).
            let irq = enable(3)?;
            let live = if mode == IrqMode::Msix { dev.use_msix(irq.vectors().len()) } else { dev.use_intx() };
            if let Err(e) = live {
                drop(dev); // reset the device before its interrupts are shut down
                return Err(driver(e));
            }
            Ok(active(Device::VirtioNet(dev), irq, reduced))
        }
        DriverKind::PciePort => {
            if mode == IrqMode::Intx {
                // Measured on QEMU 7.2 (ioh3420, pcie-root-port): the hot-plug interrupt arrives on the
                // port's GSI but Status.Interrupt stays clear, so no shared-line handler can attribute it.
                return Err(SetupError::Declined(
                    "port hot-plug interrupts through INTx are not attributable (Status.Interrupt stays clear on QEMU 7.2)",
                ));
            }
            let mut dev = PciePort::new(cfg, f).map_err(driver)?;
            // Hot-plug events use the message number in the PCIe Capabilities register (0 on QEMU's
            // ports); ask for 2 so a port with multi-message MSI (ioh3420) gets an aligned block.
            let irq = enable(2)?;
            dev.enable().map_err(driver)?;
            Ok(active(Device::PciePort(dev), irq, reduced))
        }
    }
}

fn emit_function(cfg: &PlatformConfig, f: &Function, outcome: Option<&FunctionOutcome>) {
    let mut r = Record::new("function");
    r.fmt("bdf", format_args!("{}", f.bdf))
        .fmt("vendor", format_args!("{:04x}", f.vendor))
        .fmt("device", format_args!("{:04x}", f.device))
        .fmt("class", format_args!("{:06x}", f.class))
        .num("header_type", f.header_type as u64);
    let mut bars = Array::new();
    for b in f.bars.iter() {
        let mut o = Record::object();
        o.num("index", b.index as u64)
            .str("kind", b.kind.name())
            .bool("prefetchable", b.prefetchable)
            .fmt("address", format_args!("{:#x}", b.address))
            .num("size", b.size);
        bars.object(o.finish());
    }
    r.raw("bars", bars.finish());
    let mut capabilities = Array::new();
    for c in f.caps.caps.iter() {
        let mut o = Record::object();
        o.fmt("id", format_args!("{:#x}", c.id))
            .str("name", caps::name(c.id, c.extended))
            .fmt("offset", format_args!("{:#x}", c.offset))
            .bool("extended", c.extended);
        capabilities.object(o.finish());
    }
    r.raw("capabilities", capabilities.finish());
    let mode = outcome.and_then(|o| o.mode).unwrap_or(IrqMode::None);
    r.str("irq_mode", mode.name());
    let mut offered = Array::new();
    if f.caps.find(caps::id::MSIX).is_some() {
        offered.str("msix");
    }
    if f.caps.find(caps::id::MSI).is_some() {
        offered.str("msi");
    }
    if (1..=4).contains(&f.interrupt_pin) {
        offered.str("intx");
    }
    r.raw("modes_offered", offered.finish());
    match outcome.and_then(|o| o.reason.as_deref()) {
        Some(why) => r.str("irq_reason", why),
        None => r.null("irq_reason"),
    };
    match outcome.and_then(|o| o.route) {
        Some(rt) => {
            r.num("gsi", rt.route.gsi as u64)
                .str("trigger", if rt.route.level { "level" } else { "edge" })
                .str("polarity", if rt.route.active_low { "low" } else { "high" })
                .str("route_source", rt.source.name());
        }
        None => {
            r.null("gsi").null("trigger").null("polarity").null("route_source");
        }
    }
    let mut vectors = Array::new();
    let mut interrupts = 0;
    if let Some(o) = outcome {
        for &v in o.vectors.iter() {
            vectors.num(v as u64);
        }
        interrupts = o.interrupts;
    }
    r.raw("vectors", vectors.finish()).num("interrupts", interrupts);
    match outcome.and_then(|o| o.driver) {
        Some(d) => r.str("driver", d),
        None => r.null("driver"),
    };
    let mut problems = Array::new();
    if let Some(o) = outcome {
        for p in o.problems.iter() {
            problems.str(p);
        }
    }
    r.raw("problems", problems.finish());
    // What the function is left able to do, read back from the hardware.
    let command = cfg.read16(f.bdf, regs::COMMAND);
    let mut state = Record::object();
    state
        .fmt("command", format_args!("{command:#06x}"))
        .bool("bus_master", command & regs::command::BUS_MASTER != 0)
        .bool("intx_disabled", command & regs::command::INTX_DISABLE != 0);
    match f.caps.find(caps::id::MSI) {
        Some(at) => state.bool("msi_enabled", cfg.read16(f.bdf, at + crate::modes::msi::CONTROL) & crate::modes::msi::ENABLE != 0),
        None => state.null("msi_enabled"),
    };
    match f.caps.find(caps::id::MSIX) {
        Some(at) => state.bool("msix_enabled", cfg.read16(f.bdf, at + crate::modes::msix::CONTROL) & crate::modes::msix::ENABLE != 0),
        None => state.null("msix_enabled"),
    };
    r.raw("final_state", state.finish()).emit();
}
