//! Platform discovery for the run: local APIC, ACPI tables, IOAPICs (all entries masked), configuration
//! access (ECAM from MCFG, else ports) and the INTx routing sources.

use super::{capacity, problem, Run};
use crate::arch::{cpu, hpet, ioapic, lapic, paging, smp};
use crate::boot::BootInfo;
use crate::bus::pci::config::{Bdf, ConfigRegion, Mechanism, PlatformConfig};
use crate::irq::intx;
use crate::platform::acpi::{self, PhysMemory, PlatformTables};
use crate::platform::ecam::{self, Claim, EcamSource, EcamWindow, Owner};
use crate::platform::namespace::{self, PciNamespace, RootBus, RootProblem};
use crate::platform::{crs, mptable};
use crate::report::{self, wire, Record};
use heapless::{String, Vec};

/// What the rest of the run needs from the platform.
pub(super) struct Platform {
    pub tables: PlatformTables,
    pub ioapics: alloc::vec::Vec<intx::IoApicRange>,
    pub mechanism: Mechanism,
    pub cfg: &'static PlatformConfig,
    /// The ACPI namespace (root bridges, `_PRT`s, links), evaluated once for the run.
    pub namespace: Option<&'static PciNamespace>,
    /// Usable ACPI tables were found (an RSDP and its root table); without them the MP table routes INTx.
    pub acpi: bool,
    /// The MP table, read when ACPI gives no IOAPICs (no RSDP, or no MADT).
    pub mp_table: Option<mptable::MpTable<'static>>,
    /// Each IOAPIC's (ID, first GSI), in the order their GSI ranges were given.
    pub ioapic_ids: alloc::vec::Vec<(u8, u32)>,
    /// The local APIC runs in x2APIC mode.
    pub x2apic: bool,
    /// The root buses to enumerate, lowest first, with disjoint bus ranges.
    pub roots: alloc::vec::Vec<RootBus>,
    /// Where `roots` came from: `"acpi"` (host bridges in the DSDT/SSDTs), `"peer-probe"` (no host bridge
    /// listed: bus 0 and what the peer-bus probe found) or `"acpi+peer-probe"` (some host bridge's root bus
    /// only a Method gives: the listed ones and what the probe found). `"default"` and `"acpi+probe"` stand
    /// before the probe, which `app::run` makes for them.
    pub roots_source: &'static str,
    /// Why configuration space is reached the way it is.
    pub config_reason: String<200>,
    /// Host bridges whose functions msifw cannot reach (other segment, unreadable bus range, beyond the ECAM
    /// window): the run cannot pass.
    pub unreachable_roots: u32,
}

impl Platform {
    /// Buses configuration access reaches.
    pub fn bus_range(&self) -> (u8, u8) {
        match self.mechanism {
            Mechanism::Ecam { bus_start, bus_end, .. } => (bus_start, bus_end),
            Mechanism::Port => (0, 255),
        }
    }

    /// The windows of the host bridge of bus 0, from its evaluated `_CRS`; `None` without one in the
    /// namespace.
    pub fn host_windows(&self) -> Option<Result<crs::HostWindows, crs::CrsError>> {
        let ns = self.namespace?;
        let root = ns.roots.iter().find(|r| r.present && r.segment() == Ok(0) && r.buses.as_ref().is_ok_and(|b| b.0 == 0))?;
        match &root.crs {
            Ok(Some(w)) => Some(w.clone()),
            Ok(None) => Some(Err(crs::CrsError::NotFound)),
            // Evaluation failed: the namespace's problem line says why.
            Err(_) => None,
        }
    }

    /// Records the root buses the peer-bus probe found (no table listed any host bridge).
    pub fn add_peer_roots(&mut self, peers: &[u8]) {
        self.roots_source = if self.roots_source == "default" { "peer-probe" } else { "acpi+peer-probe" };
        for &bus in peers {
            self.roots.push(RootBus { first: bus, last: 0xFF, bridge: *b"----", cba: None });
        }
        crate::sort::sort_by_key(&mut self.roots, |r| r.first);
        // Each range ends before the next root bus.
        let firsts: alloc::vec::Vec<u8> = self.roots.iter().map(|r| r.first).collect();
        for (r, next) in self.roots.iter_mut().zip(firsts.iter().skip(1)) {
            r.last = r.last.min(next - 1);
        }
    }

    /// The root buses as `(first, last)`, for `enumerate::enumerate_roots`.
    pub fn root_ranges(&self) -> Vec<(u8, u8), 256> {
        self.roots.iter().map(|r| (r.first, r.last)).collect()
    }

    /// The ECAM window, if configuration access goes through it.
    pub fn ecam_window(&self) -> Option<crs::AddressRange> {
        match self.mechanism {
            Mechanism::Ecam { base, bus_start, bus_end } => {
                let start = base.saturating_add(u64::from(bus_start) << 20);
                let end = base.saturating_add((u64::from(bus_end) + 1) << 20);
                Some(crs::AddressRange { start, last: end - 1 })
            }
            Mechanism::Port => None,
        }
    }
}

/// Who gave the BARs their addresses, for the `platform` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BarAssigner {
    /// Every BAR had an address and every bridge its buses: nothing was changed.
    BootFirmware,
    /// msifw assigned what was missing, from windows of this source.
    Msifw(crate::bus::pci::assign::WindowSource),
}

/// Emits the `platform` record (after enumeration, so it can say who assigned the BARs).
pub(super) fn emit_record(run: &Run, boot: &BootInfo, p: &Platform, bars: BarAssigner, intx_routing: &str) {
    let mut roots: String<2000> = String::new();
    for (i, r) in p.roots.iter().enumerate() {
        let sep = if i > 0 { ", " } else { "" };
        if core::fmt::Write::write_fmt(&mut roots, format_args!("{sep}{:02x}-{:02x} {}", r.first, r.last, Seg(r.bridge))).is_err() {
            // Over a hundred root buses: the record says how many it does not list.
            let _ = core::fmt::Write::write_fmt(&mut roots, format_args!(" (+{} more)", p.roots.len() - i));
            break;
        }
    }
    report::emit(&Record::Platform(wire::Platform {
        apic_id: run.apic_id,
        x2apic: p.x2apic,
        config_access: match p.mechanism {
            Mechanism::Ecam { base, .. } => wire::ConfigAccess::Ecam(base),
            Mechanism::Port => wire::ConfigAccess::Port,
        },
        ioapics: p.ioapics.len() as u32,
        cmdline: boot.cmdline.as_str().into(),
        boot: boot.protocol.name().into(),
        loader: Some(boot.loader.as_str()).filter(|l| !l.is_empty()).map(Into::into),
        bar_assignment: match bars {
            BarAssigner::BootFirmware => wire::BarAssignment::BootFirmware,
            BarAssigner::Msifw(source) => wire::BarAssignment::Msifw(source.name().into()),
        },
        timer_fence: crate::time::fence_kind().into(),
        intx_routing: intx_routing.into(),
        config_reason: p.config_reason.as_str().into(),
        root_source: p.roots_source.into(),
        root_buses: roots.as_str().into(),
        cpus: cpu_records(),
    }));
}

/// The CPUs for the `platform` record.
fn cpu_records() -> alloc::vec::Vec<wire::Cpu<'static>> {
    smp::cpus()
        .into_iter()
        .map(|c| {
            let state = match c.state {
                smp::CpuState::Online => wire::CpuState::Online,
                smp::CpuState::Offline => wire::CpuState::Offline,
                smp::CpuState::Failed(e) => wire::CpuState::Failed(alloc::format!("{e}").into()),
            };
            wire::Cpu { index: c.index as u32, apic_id: c.apic_id, acpi_uid: c.acpi_uid, logical_id: c.logical_id, state }
        })
        .collect()
}

/// `selftest=ap-cycle`: CPU `index` offline (its mailbox must refuse), online again (its mailbox must run a
/// function there, on its own APIC ID). Returns the time taken.
fn cycle(index: usize) -> Result<u64, alloc::string::String> {
    let t0 = crate::time::now_us();
    let want = smp::apic_id(index).unwrap_or(u32::MAX);
    smp::take_offline(index).map_err(|e| alloc::format!("take_offline: {e:?}"))?;
    if !smp::online().iter().all(|&i| i != index) {
        return Err("still listed online after take_offline".into());
    }
    match smp::call_on(index, &|| {}, 100_000) {
        Err(smp::SmpError::NotOnline(_)) => {}
        other => return Err(alloc::format!("call_on while offline gave {other:?}, not NotOnline")),
    }
    smp::bring_online(index).map_err(|e| alloc::format!("bring_online: {e:?}"))?;
    let seen = core::sync::atomic::AtomicU32::new(u32::MAX);
    smp::call_on(index, &|| seen.store(lapic::id(), core::sync::atomic::Ordering::Release), 1_000_000).map_err(|e| alloc::format!("call_on after bring_online: {e:?}"))?;
    let seen = seen.load(core::sync::atomic::Ordering::Acquire);
    if seen != want {
        return Err(alloc::format!("the function ran on APIC ID {seen}, not {want}"));
    }
    // It takes interrupts again, counted in its own block: a fixed IPI on the wake vector.
    let before = crate::irq::dispatch::count_on(index, lapic::WAKE_VECTOR);
    lapic::try_send_ipi(want, lapic::WAKE_VECTOR).map_err(|e| alloc::format!("IPI: {e:?}"))?;
    if !crate::time::wait_until(1_000_000, || crate::irq::dispatch::count_on(index, lapic::WAKE_VECTOR) > before) {
        return Err(alloc::format!("a fixed IPI on vector {:#x} was not counted on it within 1 s", lapic::WAKE_VECTOR));
    }
    Ok(crate::time::now_us() - t0)
}

/// The application-processor selftest asked for (`selftest=ap-*`), by its command-line name.
fn ap_selftest(run: &Run) -> Option<&'static str> {
    use crate::cmdline::SelfTest;
    match run.opts.selftest? {
        SelfTest::ApPanic => Some("ap-panic"),
        SelfTest::ApNoSipi => Some("ap-no-sipi"),
        SelfTest::ApCycle => Some("ap-cycle"),
        SelfTest::Exception | SelfTest::Panic | SelfTest::StackOverflow => None,
    }
}

/// An application-processor selftest that could not check what it is for: a problem line (`smp`) and a
/// `cpu-start` failure, so the run fails rather than passing with the AP path unchecked.
fn ap_selftest_failed(run: &mut Run, args: core::fmt::Arguments) {
    problem("smp", args);
    run.scenario("cpu-start", None, &crate::scenarios::Verdict::new(crate::report::Outcome::Fail, args));
}

/// An AP selftest asked for on a machine with fewer than two CPUs: there is no AP to check.
fn ap_selftest_needs_aps(run: &mut Run, name: &str, cpus: usize) {
    ap_selftest_failed(run, format_args!("selftest={name} needs two or more CPUs, and this machine has {cpus}: no application processor to check"));
}

/// Starts every CPU the MADT lists as enabled (`arch::smp`); one that does not start is a `cpu-start`
/// failure and a problem line, and the run goes on with the others. Without a MADT only the BSP runs.
/// An AP selftest (`selftest=ap-*`) on fewer than two CPUs, or one that could not do its part, is a
/// problem and a `cpu-start` failure.
pub(super) fn start_cpus(run: &mut Run, boot: &BootInfo, p: &Platform) {
    let t0 = crate::time::now_us();
    let selftest = ap_selftest(run);
    let Some(madt) = &p.tables.madt else {
        smp::start(&[], &boot.memmap);
        crate::info!("no MADT: only the boot CPU runs");
        if let Some(name) = selftest {
            ap_selftest_needs_aps(run, name, 1);
        }
        return;
    };
    let entries: alloc::vec::Vec<smp::CpuEntry> =
        madt.local_apics.iter().filter(|l| l.enabled).map(|l| smp::CpuEntry { apic_id: l.apic_id, acpi_uid: l.processor_uid }).collect();
    let disabled = madt.local_apics.iter().filter(|l| !l.enabled).count();
    // The CPUs that will have an index: the distinct enabled entries and the BSP (index 0 even when the
    // table does not list it).
    let mut ids: alloc::vec::Vec<u32> = entries.iter().map(|e| e.apic_id).chain([run.apic_id]).collect();
    crate::sort::sort(&mut ids);
    ids.dedup();
    if let Some(name) = selftest.filter(|_| ids.len() < 2) {
        ap_selftest_needs_aps(run, name, ids.len());
    } else if run.opts.selftest == Some(crate::cmdline::SelfTest::ApNoSipi) {
        // The last CPU's index once the BSP is moved first.
        let last = ids.len() - 1;
        crate::println!("msifw: selftest: CPU {last} gets INIT but no SIPI");
        smp::withhold_sipi(last);
    }
    // Duplicate APIC IDs were reported with the per-CPU blocks (`cpu_blocks`): one CPU each.
    let _duplicates = smp::start(&entries, &boot.memmap);
    let cpus = smp::cpus();
    let online = cpus.iter().filter(|c| c.state == smp::CpuState::Online).count();
    crate::info!(
        "SMP: {=usize} of {=usize} CPUs online in {=u64} us ({=usize} MADT entries disabled; trampoline entered {=u32} times)",
        online,
        cpus.len(),
        crate::time::now_us() - t0,
        disabled,
        smp::trampoline_entries()
    );
    let failed: alloc::vec::Vec<&smp::Cpu> = cpus.iter().filter(|c| matches!(c.state, smp::CpuState::Failed(_))).collect();
    for c in failed.iter() {
        if let smp::CpuState::Failed(e) = c.state {
            problem("smp", format_args!("CPU {} (APIC ID {}, ACPI UID {}) did not start: {e}", c.index, c.apic_id, c.acpi_uid));
        }
    }
    // With fewer than two CPUs the selftest failed above (never index 0: that is the BSP).
    let last = Some(cpus.len().saturating_sub(1)).filter(|&i| i > 0);
    if let (Some(crate::cmdline::SelfTest::ApPanic), Some(last)) = (run.opts.selftest, last) {
        crate::println!("msifw: selftest: panicking on CPU {last}");
        if let Err(e) = smp::call_on(last, &|| panic!("selftest: deliberate panic on an application processor"), 1_000_000) {
            ap_selftest_failed(run, format_args!("selftest=ap-panic: CPU {last} did not run it: {e:?}"));
        }
    }
    if let (Some(crate::cmdline::SelfTest::ApCycle), Some(last)) = (run.opts.selftest, last) {
        match cycle(last) {
            Ok(us) => crate::println!("msifw: selftest: ap-cycle: CPU {last} offline (mailbox refused) and online again (mailbox served on APIC ID {}, IPI counted there) in {us} us", cpus[last].apic_id),
            Err(why) => ap_selftest_failed(run, format_args!("selftest=ap-cycle: CPU {last}: {why}")),
        }
    }
    if let Some(first) = failed.first() {
        let n = failed.len();
        run.scenario(
            "cpu-start",
            None,
            &crate::scenarios::Verdict::new(
                crate::report::Outcome::Fail,
                format_args!("{n} of {} enabled CPUs did not start (first: APIC ID {}); the run goes on with {online}", cpus.len(), first.apic_id),
            ),
        );
    }
}

/// Gives every CPU the MADT lists enabled a per-CPU block (interrupt counts, handlers, vector space):
/// index 0 the boot processor (the CPU this runs on), then the others in table order. A CPU listed twice
/// gets one block; without a MADT, only the boot processor has one.
fn cpu_blocks(run: &mut Run, tables: &PlatformTables) {
    let mut ids = alloc::vec![run.apic_id];
    for l in tables.madt.iter().flat_map(|m| m.local_apics.iter()).filter(|l| l.enabled) {
        if ids.contains(&l.apic_id) {
            if l.apic_id != run.apic_id {
                problem("acpi.madt", format_args!("APIC ID {} listed twice; one CPU counted", l.apic_id));
            }
            continue;
        }
        ids.push(l.apic_id);
    }
    match crate::arch::percpu::try_init(&ids) {
        Ok(()) => crate::info!("per-CPU blocks: {=usize} CPUs", crate::arch::percpu::len()),
        Err(e @ crate::arch::percpu::PerCpuError::OutOfMemory { .. }) => capacity(run, format_args!("percpu: {e}")),
        Err(e) => problem("percpu", format_args!("{e}")),
    }
}

/// Why the run cannot go on.
pub(super) enum Fatal {
    Lapic(lapic::LapicError),
}

/// Discovers the platform ([`emit_record`] reports it once the BARs are settled).
/// `mask_ioapics`: mask every redirection entry (off only for the crash-restart control, which delays
/// every quieting step until after its trap window).
/// `restarted`: the crash-restart's stage B, on the platform stage A already reported (the no-ACPI line and
/// the MP table's warnings are not repeated).
pub(super) fn discover(run: &mut Run, boot: &BootInfo, mask_ioapics: bool, restarted: bool) -> Result<Platform, Fatal> {
    let lapic_mode = lapic::init(run.opts.x2apic).map_err(Fatal::Lapic)?;
    run.apic_id = lapic::id();
    if lapic_mode == lapic::Mode::X2Apic && !run.opts.x2apic {
        problem("lapic", format_args!("x2apic=off not honoured: x2APIC was already enabled (leaving it needs the APIC disabled)"));
    }
    crate::info!("LAPIC {=str} mode, APIC ID {=u32}", if lapic_mode == lapic::Mode::X2Apic { "x2APIC" } else { "xAPIC" }, run.apic_id);

    // ACPI tables live in RAM or the reserved block right after it; reads stop at the end of that.
    let limit = boot.table_memory_top().clamp(1 << 20, 1 << 32);
    // In a static: the MP table kept for the run borrows from it.
    static TABLE_MEMORY: spin::Once<acpi::IdentityMemory> = spin::Once::new();
    // SAFETY: everything below the top of RAM is identity-mapped by boot/pvh.s and is ordinary memory
    // (RAM, firmware ROM shadow and reserved RAM) with no read side effects; msifw writes none of the ACPI
    // and MP tables, ever. (A restart in place computes the same limit from the same boot information.)
    let mem: &'static acpi::IdentityMemory = TABLE_MEMORY.call_once(|| unsafe { acpi::IdentityMemory::new(limit) });
    let rsdp = boot.rsdp.or_else(|| acpi::find_rsdp_bios(mem));
    let acpi_found = rsdp.is_some();
    // Without an RSDP the one cause is reported once, below, with everything it changes.
    let tables = acpi::parse(rsdp.unwrap_or(0), mem);
    for p in tables.problems.iter().filter(|_| acpi_found) {
        // i440fx (`-M pc`) has no ECAM and so no MCFG, nor has microvm (its GPEX has a _CBA): expected there.
        if *p == (acpi::AcpiProblem::MissingTable { signature: acpi::Signature::MCFG }) {
            crate::info!("no MCFG: a host bridge _CBA or ports 0xCF8/0xCFC serve");
            continue;
        }
        // Entries a limit of msifw's kept out (the heap; one I/O APIC per ID): the run cannot pass.
        if p.is_capacity() {
            capacity(run, format_args!("acpi: {p}"));
            continue;
        }
        problem("acpi", format_args!("{p}"));
    }
    if tables.problems_dropped > 0 && acpi_found {
        capacity(run, format_args!("acpi: no heap left for {} more ACPI problems", tables.problems_dropped));
    }

    cpu_blocks(run, &tables);

    // The MP table, where ACPI gives no IOAPICs (Linux reads it only then).
    let mp_table = if tables.madt.is_none() {
        match mptable::discover(mem) {
            Ok(Some(t)) => {
                crate::info!("MP table at {=u64:#x} (configuration table at {=u64:#x})", t.floating_address, t.table_address);
                for w in t.warnings.iter().filter(|_| !restarted) {
                    problem("mptable", format_args!("{w}"));
                }
                if t.warnings_dropped > 0 && !restarted {
                    problem("mptable", format_args!("{} more MP table warnings not listed", t.warnings_dropped));
                }
                Some(t)
            }
            Ok(None) => None,
            Err(e) => {
                if !restarted {
                    problem("mptable", format_args!("{e}; MP table not used"));
                }
                None
            }
        }
    } else {
        None
    };

    // IOAPICs: everything masked until a line is deliberately routed (a previous owner's routes must
    // not fire).
    // As many as the MADT or MP table lists (on the heap: a GSI of one left out would fail INTx falsely).
    let mut ioapics: alloc::vec::Vec<intx::IoApicRange> = alloc::vec::Vec::new();
    let mut ioapic_ids: alloc::vec::Vec<(u8, u32)> = alloc::vec::Vec::new();
    let mut add_ioapic = |id: u8, address: u32, gsi_base: Option<u32>, source: &str| {
        if !(0xC000_0000..0xFFFF_F000).contains(&(address as u64)) {
            problem(source, format_args!("IOAPIC {id} at {address:#x} outside the uncached window; not used"));
            return;
        }
        // SAFETY: the address comes from a checksummed MADT or MP table and lies in the identity-mapped
        // uncached 3-4 GiB window; msifw is the only user of the IOAPIC.
        let chip = unsafe { ioapic::IoApic::new(address as u64) };
        let n = if mask_ioapics { chip.mask_all() } else { chip.entries().unwrap_or(0) };
        crate::info!("IOAPIC {=u8}: {=u32} entries {=str}", id, n, if mask_ioapics { "masked" } else { "left as found" });
        // Without a MADT, GSI ranges follow the table's order, each as long as the IOAPIC's entries
        // (Linux's mp_register_ioapic with gsi_top).
        let gsi_base = gsi_base.unwrap_or_else(|| ioapics.last().map_or(0, |r: &intx::IoApicRange| r.gsi_base + r.entries));
        ioapics.push(intx::IoApicRange { chip, gsi_base, entries: n });
        ioapic_ids.push((id, gsi_base));
    };
    if let Some(madt) = &tables.madt {
        for io in madt.io_apics.iter() {
            add_ioapic(io.id, io.address, Some(io.gsi_base), "acpi.madt");
        }
        // Ranges need the entry counts just read; the MADT gives only each IOAPIC's first GSI.
        let entries = |io: &acpi::IoApic| ioapics.iter().find(|r| r.gsi_base == io.gsi_base).map_or(0, |r| r.entries);
        if let Some(p) = madt.gsi_overlap(entries) {
            problem("acpi.madt", format_args!("{p}"));
        }
    } else if let Some(t) = &mp_table {
        for io in t.io_apics().filter(|io| io.usable) {
            add_ioapic(io.id, io.address, None, "mptable");
        }
    }
    if !acpi_found && !restarted {
        let how = match (&mp_table, ioapics.len()) {
            (Some(t), 1..) if t.pci_entries().next().is_some() => "IOAPICs and PCI INTx routing from the MP table",
            (Some(_), 1..) => "IOAPICs from the MP table, which has no PCI interrupt entries",
            (Some(_), 0) => "the MP table lists no usable IOAPIC, so no INTx",
            (None, _) => "no MP table either, so no IOAPIC and no INTx",
        };
        problem(
            "acpi",
            format_args!("no ACPI tables (no RSDP handed over or found): {how}; configuration space through ports 0xCF8/0xCFC; device-timer fences on the LAPIC timer"),
        );
    }

    // Under a hypervisor, the HPET fences the device models' timers (time::timers_run_by): its timer
    // routes to an ISA line whose IOAPIC entry is masked here and stays so (msifw routes only PCI INTx).
    if cpu::under_hypervisor() {
        match acpi::hpet_base(&tables, &mem) {
            None => crate::info!("no HPET table: device-timer fences use the LAPIC timer"),
            Some(Err(e)) => problem("acpi.hpet", format_args!("{e}; device-timer fences use the LAPIC timer")),
            Some(Ok(base)) => match hpet::Hpet::new(base) {
                Err(e) => problem("hpet", format_args!("{e}; device-timer fences use the LAPIC timer")),
                Ok(h) => match ioapics.iter().find(|r| r.gsi_base == 0 && u32::from(h.route()) < r.entries) {
                    Some(r) => {
                        r.chip.set_masked(u32::from(h.route()), true);
                        crate::info!("device-timer fences: HPET at {=u64:#x}, timer {=u8} on masked GSI {=u8}", h.base(), h.timer(), h.route());
                        crate::time::use_hpet(h);
                    }
                    None => problem("hpet", format_args!("no IOAPIC input {} to park the HPET timer on; device-timer fences use the LAPIC timer", h.route())),
                },
            },
        }
    }

    // SAFETY: configuration mechanism #1 is only read here and below: on a platform without it (microvm)
    // port 0xCF8 decodes nothing, writes are dropped and reads return all-ones.
    let ports = unsafe { PlatformConfig::new(Mechanism::Port) };

    // The ACPI namespace: root bridges (root buses), their _PRTs and links, from the DSDT and SSDTs.
    let namespace = load_namespace(run, boot, &tables, mem, &ports);
    let (acpi_roots, root_problems) = match namespace {
        Some(ns) => namespace::root_buses(ns),
        None => (alloc::vec::Vec::new(), alloc::vec::Vec::new()),
    };
    let mut roots = acpi_roots;
    let mut unreachable_roots = 0;
    for p in root_problems.iter() {
        unreachable_roots += u32::from(p.misses_functions());
        if let RootProblem::BusUnknown(e) = p {
            crate::info!("host bridge root bus unknown: probing for it");
            problem("acpi.hostbridge", format_args!("{e}; its root bus is found by probing the bus numbers not reached"));
            continue;
        }
        problem("acpi.hostbridge", format_args!("{p}"));
    }
    let probe_peers = namespace::needs_peer_probe(&root_problems);
    let roots_source = if probe_peers {
        // Some host bridge's root bus could not be evaluated: app::run probes the bus numbers not reached.
        "acpi+probe"
    } else if roots.is_empty() && root_problems.is_empty() {
        // No host bridge described (no ACPI, or none in the tables): bus 0 and what its bridges lead to, then
        // the peer-bus probe (app::run).
        crate::info!("no PCI host bridge in the ACPI tables: enumerating from bus 0 only");
        roots.clear();
        roots.push(RootBus { first: 0, last: 0xFF, bridge: *b"----", cba: None });
        "default"
    } else {
        "acpi"
    };

    // Configuration access: an ECAM window (the MCFG's for segment 0, else a host bridge's _CBA) once it
    // passes the checks Linux makes, else the legacy ports.
    let claims = claimed_ranges(boot, &tables, &mem);
    let mut candidates: Vec<EcamWindow, 4> = Vec::new();
    if let Some(e) = tables.mcfg.iter().find(|e| e.segment == 0) {
        let _ = candidates.push(EcamWindow { base: e.base_address, bus_start: e.bus_start, bus_end: e.bus_end, source: EcamSource::Mcfg });
    }
    if let Some(r) = roots.iter().find(|r| r.cba.is_some()) {
        let _ = candidates.push(EcamWindow { base: r.cba.unwrap_or(0), bus_start: r.first, bus_end: r.last, source: EcamSource::Cba(r.bridge) });
    }
    let mut config_reason: String<200> = String::new();
    let mut why = |args: core::fmt::Arguments| {
        if !config_reason.is_empty() {
            let _ = config_reason.push_str("; ");
        }
        let _ = core::fmt::Write::write_fmt(&mut config_reason, args);
    };
    let mut mechanism = None;
    for w in candidates.iter() {
        let port_id = ports.read32(Bdf::new(w.bus_start, 0, 0), 0);
        match use_ecam(w, &claims, port_id) {
            Ok(m) => {
                why(format_args!("ECAM from {} at {:#x}", w.source.name(), w.base));
                mechanism = Some(m);
                break;
            }
            Err(e) => {
                let what = match w.source {
                    EcamSource::Mcfg => "MCFG",
                    EcamSource::Cba(_) => "DSDT _CBA",
                };
                problem("acpi.ecam", format_args!("{what} ECAM window at {:#x} (buses {:02x}-{:02x}) not used: {e}", w.base, w.bus_start, w.bus_end));
                why(format_args!("{what} window rejected: {e}"));
            }
        }
    }
    let mechanism = match mechanism {
        Some(m) => m,
        None => {
            if candidates.is_empty() {
                why(format_args!("no MCFG and no host bridge _CBA"));
            }
            let answered = ecam::answers(ports.read32(Bdf::new(0, 0, 0), 0));
            why(format_args!("ports 0xCF8/0xCFC{}", if answered { "" } else { " (00:00.0 does not answer through them)" }));
            Mechanism::Port
        }
    };
    crate::info!("configuration access: {=str}", config_reason.as_str());
    // Root buses the window does not decode cannot be reached.
    if let Mechanism::Ecam { bus_start, bus_end, .. } = mechanism {
        for r in roots.iter_mut() {
            if r.first < bus_start || r.first > bus_end {
                unreachable_roots += 1;
                problem("acpi.hostbridge", format_args!("root bus {:02x} ({}) lies outside the ECAM window's buses {bus_start:02x}-{bus_end:02x}; not enumerated", r.first, Seg(r.bridge)));
            }
            r.last = r.last.min(bus_end);
        }
        roots.retain(|r| (bus_start..=bus_end).contains(&r.first));
    }
    // SAFETY: for ECAM, the window passed `use_ecam` (mapped uncached, over nothing the memory map, the image
    // or the interrupt controllers own, and answering as the ports do); every PC has configuration
    // mechanism #1 for the port case (and without it reads return all-ones).
    let cfg: &'static PlatformConfig = {
        static CFG: spin::Once<PlatformConfig> = spin::Once::new();
        CFG.call_once(|| unsafe { PlatformConfig::new(mechanism) })
    };

    let acpi_usable = acpi_found && tables.root.is_some();
    Ok(Platform {
        tables,
        ioapics,
        mechanism,
        cfg,
        namespace,
        acpi: acpi_usable,
        mp_table,
        ioapic_ids,
        x2apic: lapic_mode == lapic::Mode::X2Apic,
        roots,
        roots_source,
        config_reason,
        unreachable_roots,
    })
}

/// A host bridge's name segment as the `platform` record shows it.
struct Seg([u8; 4]);

impl core::fmt::Display for Seg {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Trailing `_` padding left out, as ACPICA prints names.
        let keep = self.0.iter().rposition(|&b| b != b'_').map_or(1, |p| p + 1);
        self.0.iter().take(keep).try_for_each(|&b| core::fmt::Write::write_char(f, char::from(b)))
    }
}

/// Loads the DSDT and the SSDTs (XSDT order) into the AML evaluator and reads what PCI needs
/// (`platform::namespace`), with region reads answered by [`super::aml_regions`]. `None` without a DSDT,
/// or when the heap cannot hold the namespace (a failed `capacity` scenario says so).
fn load_namespace(run: &mut Run, boot: &BootInfo, tables: &PlatformTables, mem: &'static acpi::IdentityMemory, ports: &PlatformConfig) -> Option<&'static PciNamespace> {
    let t0 = crate::time::now_us();
    let dsdt = tables.dsdt.and_then(|t| mem.bytes(t.address, t.length as usize))?;
    let mut aml: alloc::vec::Vec<&'static [u8]> = alloc::vec![dsdt];
    for t in tables.tables.iter().filter(|t| t.signature == acpi::Signature(*b"SSDT")) {
        match mem.bytes(t.address, t.length as usize) {
            Some(bytes) => aml.push(bytes),
            None => problem("acpi.aml", format_args!("SSDT at {:#x} ({} bytes) is not readable; not loaded", t.address, t.length)),
        }
    }
    let bytes: usize = aml.iter().map(|t| t.len()).sum();
    let mut limits = msifw_aml::Limits::default();
    // The namespace takes at most a few dozen bytes per byte of AML (a node per name, field unit or
    // scope); one evaluation at most `limits.memory` more. Checked first, so that a heap too small is a
    // problem line and no failed allocation (a panic).
    // (and the copies of the tables themselves).
    let namespace_bytes = bytes.saturating_mul(49);
    if !crate::arch::heap::can_spare(namespace_bytes.saturating_add(2 * limits.memory as usize)) {
        let (size, used) = heap_usage();
        let free = size.saturating_sub(used);
        // A smaller evaluation budget where that is enough.
        let room = free.saturating_sub(namespace_bytes).saturating_sub(crate::arch::heap::RESERVE) / 2;
        if room < 64 << 10 {
            // msifw's own limit: the run cannot pass (root buses then come from the peer-bus probe,
            // routing from the chipset rules).
            super::capacity(
                run,
                format_args!("AML namespace: {} KiB of DSDT/SSDTs need about {} KiB of heap, {} KiB free; _PRT and host bridges not evaluated", bytes >> 10, (namespace_bytes >> 10) + 2 * (limits.memory as usize >> 10), free >> 10),
            );
            return None;
        }
        limits.memory = room as u32;
        crate::info!("AML evaluation memory budget cut to {=u32} KiB by the heap", limits.memory >> 10);
    }
    // Evaluated from copies on the heap: the evaluator reads table bytes over and over, and the tables'
    // memory (reserved, after RAM) may be mapped uncached, which made q35's namespace take 3 s under KVM.
    let copies: alloc::vec::Vec<alloc::vec::Vec<u8>> = aml.iter().map(|t| t.to_vec()).collect();
    let copied: alloc::vec::Vec<&[u8]> = copies.iter().map(|t| t.as_slice()).collect();
    let mut regions = super::aml_regions::HardwareRegions::new(ports, mem, &boot.memmap);
    let ns = namespace::load_with(&copied, &mut regions, limits);
    crate::info!(
        "AML namespace: {=usize} tables, {=usize} KiB, {=usize} root bridges, {=usize} links, {=u32} hardware reads in {=u64} us",
        aml.len(),
        bytes >> 10,
        ns.roots.len(),
        ns.links.len(),
        regions.hardware_reads,
        crate::time::now_us() - t0
    );
    for p in ns.problems.iter() {
        problem("acpi.aml", format_args!("{p}"));
    }
    Some(alloc::boxed::Box::leak(alloc::boxed::Box::new(ns)))
}

fn heap_usage() -> (usize, usize) {
    #[cfg(target_os = "none")]
    {
        crate::arch::heap::usage()
    }
    #[cfg(not(target_os = "none"))]
    {
        (0, 0)
    }
}

/// Checks an ECAM window (addresses first, then a read through it against the ports' `port_id`) and maps it.
fn use_ecam(w: &EcamWindow, claims: &[Claim], port_id: u32) -> Result<Mechanism, ecam::EcamRejection> {
    let (start, end) = ecam::check_window(w, claims)?;
    paging::map_uncached(start, end - start).map_err(|_| ecam::EcamRejection::Unmappable)?;
    let m = Mechanism::Ecam { base: w.base, bus_start: w.bus_start, bus_end: w.bus_end };
    // SAFETY: the window lies over nothing the memory map, msifw's image or the interrupt controllers own,
    // and was just mapped uncached: reading it can only reach a device's configuration space or nothing.
    let probe = unsafe { PlatformConfig::new(m) };
    ecam::check_probe(probe.read32(Bdf::new(w.bus_start, 0, 0), 0), port_id)?;
    Ok(m)
}

/// Ranges an ECAM window must not lie over: memory per the memory map, msifw's image, the local APIC, the
/// I/O APICs and the HPET.
fn claimed_ranges(boot: &BootInfo, tables: &PlatformTables, mem: &impl PhysMemory) -> alloc::vec::Vec<Claim> {
    extern "C" {
        static __image_start: u8;
        static __image_end: u8;
    }
    let mut claims = alloc::vec::Vec::new();
    // Only the addresses of the linker script's symbols are taken.
    let image = (core::ptr::addr_of!(__image_start) as u64, core::ptr::addr_of!(__image_end) as u64);
    claims.push(Claim { start: image.0, end: image.1, owner: Owner::FirmwareImage });
    let lapic = tables.madt.as_ref().map_or(0xFEE0_0000, |m| m.local_apic_address);
    claims.push(Claim { start: lapic, end: lapic + 0x1000, owner: Owner::LocalApic });
    for io in tables.madt.iter().flat_map(|m| m.io_apics.iter()) {
        claims.push(Claim { start: u64::from(io.address), end: u64::from(io.address) + 0x1000, owner: Owner::IoApic(io.id) });
    }
    if let Some(Ok(hpet)) = acpi::hpet_base(tables, mem) {
        claims.push(Claim { start: hpet, end: hpet + 0x400, owner: Owner::Hpet });
    }
    for r in boot.memmap.iter().filter(|r| ecam::is_memory(r.kind)) {
        claims.push(Claim { start: r.addr, end: r.addr.saturating_add(r.size), owner: Owner::Memory(r.kind) });
    }
    claims
}
