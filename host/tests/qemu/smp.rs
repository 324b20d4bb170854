//! Application processors: every CPU the MADT lists as enabled is started (INIT-SIPI-SIPI from a
//! trampoline below 1 MiB), answers a function sent through its mailbox, and is listed in the `platform`
//! record with its APIC ID, ACPI UID, logical ID and state; the rest of the run passes as with one CPU.
//! QEMU's topologies (smp-ir.md §1.7): `-smp 6,sockets=2,cores=3` leaves a hole in the APIC IDs (0-2,
//! 4-6), `maxcpus` adds MADT entries with Enabled=0, which are not started. The controls: a CPU sent no
//! SIPI (`selftest=ap-no-sipi`) must be reported failed while the run goes on; a panic on an AP is
//! reported; a CPU taken offline refuses its mailbox and serves it again once back (`selftest=ap-cycle`);
//! a restart in place (`crash-restart`) starts every AP again. With one CPU each AP selftest fails the run
//! (there is no AP to check) rather than passing or acting on the BSP. Twelve boots, 1-3 s each under TCG
//! but for the no-SIPI one (its 3 s timeout) and the KVM one.

use crate::common;

use msifw_host::{BootPath, Exit, Machine, RunConfig, RunOutcome, ScenarioResult};

/// Boots `cfg` and checks the run passed and the `platform` record lists exactly `apic_ids` (index order),
/// every one online, with logical IDs 1 << index for the first eight (xAPIC flat) and 0 beyond.
fn boot_and_check(cfg: &RunConfig, apic_ids: &[u32]) -> RunOutcome {
    let o = common::boot(cfg);
    let why = common::explain(&o);
    common::assert_passed(&o);
    let p = o.report.platform.as_ref().unwrap_or_else(|| panic!("no platform record{why}"));
    let ids: Vec<u32> = p.cpus.iter().map(|c| c.apic_id).collect();
    assert_eq!(ids, apic_ids, "APIC IDs of the CPUs listed{why}");
    for (i, c) in p.cpus.iter().enumerate() {
        assert_eq!(c.index as usize, i, "{c:?}{why}");
        assert_eq!(c.state, "online", "CPU {i} not online: {c:?}{why}");
        if !p.x2apic {
            let want = if i < 8 { 1 << i } else { 0 };
            assert_eq!(c.logical_id, want, "CPU {i}'s logical flat ID{why}");
        }
    }
    assert!(o.render().contains(&format!("cpus: {} of {} online", apic_ids.len(), apic_ids.len())), "the text report lists the CPUs{why}");
    o
}

#[test]
fn four_cpus_on_q35_through_pvh() {
    let o = boot_and_check(&common::config(Machine::Q35).smp("4"), &[0, 1, 2, 3]);
    let p = o.report.platform.as_ref().unwrap();
    assert_eq!(p.cpus.iter().map(|c| c.acpi_uid).collect::<Vec<_>>(), [0, 1, 2, 3]);
    // The devices' vectors are spread over every CPU, and each function says where each vector is.
    let mut on: Vec<u32> = o.report.functions.iter().flat_map(|f| f.vector_cpus.iter().flatten().copied()).collect();
    on.sort_unstable();
    on.dedup();
    assert_eq!(on, [0, 1, 2, 3], "CPUs the vectors were set up on{}", common::explain(&o));
    for f in o.report.functions.iter().filter(|f| !f.vectors.is_empty()) {
        assert_eq!(f.vector_cpus.len(), f.vectors.len(), "{}: one CPU per vector", f.bdf);
    }
    assert!(o.render().contains("VECTOR@CPU"), "the table shows each vector's CPU{}", common::explain(&o));
}

#[test]
fn apic_id_holes_on_pc_and_a_cpu_taken_offline_and_back() {
    // Three cores per socket round up to four APIC IDs per socket: 0,1,2 and 4,5,6 (ACPI UIDs 0-5). The
    // last one (APIC ID 6) goes offline and comes back before the devices are set up.
    let cfg = common::config(Machine::Pc).smp("6,sockets=2,cores=3").append("selftest=ap-cycle");
    let o = boot_and_check(&cfg, &[0, 1, 2, 4, 5, 6]);
    let p = o.report.platform.as_ref().unwrap();
    assert_eq!(p.cpus.iter().map(|c| c.acpi_uid).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5]);
    assert!(
        o.com1.contains("ap-cycle: CPU 5 offline (mailbox refused) and online again (mailbox served on APIC ID 6, IPI counted there)"),
        "{}",
        common::explain(&o)
    );
}

#[test]
fn maxcpus_entries_are_not_started() {
    // The MADT lists 4 CPUs, two of them Enabled=0: only 0 and 1 run.
    let o = boot_and_check(&common::config(Machine::Q35).smp("2,maxcpus=4"), &[0, 1]);
    assert!(o.defmt.render().contains("2 MADT entries disabled"), "{}", common::explain(&o));
}

#[test]
fn sixteen_cpus_under_tcg_started_again_after_a_restart_in_place() {
    // crash-restart's stage A parks the APs and restarts; stage B (whose platform record the report keeps)
    // must start all sixteen again with INIT-SIPI-SIPI.
    let cfg = common::config(Machine::Q35).smp("16").append("scenario=crash-restart irq.00:04.0=intx");
    let o = boot_and_check(&cfg, &(0..16).collect::<Vec<_>>());
    assert_eq!(o.report.platform_records, 2, "stage A's and stage B's platform records{}", common::explain(&o));
    assert!(o.report.scenarios.iter().any(|s| s.name == "crash-restart" && s.result == ScenarioResult::Pass), "{}", common::explain(&o));
}

#[test]
fn a_cpu_that_never_starts_is_reported_and_the_run_goes_on() {
    // The control: CPU 3 gets INIT but no SIPI, so it never runs.
    let cfg = common::config(Machine::Q35).smp("4").append("selftest=ap-no-sipi");
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    assert_eq!(o.exit, Exit::Failed, "a CPU that did not start fails the run{why}");
    let failed: Vec<_> = o.report.scenarios.iter().filter(|s| s.result == ScenarioResult::Fail).collect();
    assert_eq!(failed.len(), 1, "only cpu-start fails: {failed:?}{why}");
    assert_eq!(failed[0].name, "cpu-start", "{why}");
    assert!(failed[0].detail.contains("1 of 4 enabled CPUs did not start (first: APIC ID 3)"), "{why}");
    let p = o.report.platform.as_ref().unwrap_or_else(|| panic!("no platform record{why}"));
    let states: Vec<&str> = p.cpus.iter().map(|c| c.state.as_str()).collect();
    assert_eq!(states, ["online", "online", "online", "failed"], "{why}");
    assert!(p.cpus[3].reason.as_deref().unwrap_or("").contains("did not come up"), "{why}");
    // The devices were driven all the same.
    assert!(o.report.scenarios.iter().any(|s| s.name == "msix-delivery" && s.result == ScenarioResult::Pass), "{why}");
}

#[test]
fn a_panic_on_an_application_processor_is_reported() {
    let cfg = common::config(Machine::Q35).default_devices(false).smp("2").append("selftest=ap-panic");
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    assert_eq!(o.exit, Exit::Panic, "{why}");
    assert!(o.com1.contains("panic on CPU 1 (APIC ID 1)") && o.com1.contains("deliberate panic on an application processor"), "{why}");
}

/// With one CPU there is no application processor: `selftest=ap-no-sipi`, `ap-cycle` and `ap-panic` are
/// each a problem (`smp`) and a `cpu-start` failure saying so; none withholds the BSP's SIPI, panics the
/// BSP or passes having checked nothing.
#[test]
fn ap_selftests_with_one_cpu_fail_the_run() {
    for name in ["ap-no-sipi", "ap-cycle", "ap-panic"] {
        let cfg = common::config(Machine::Q35).default_devices(false).smp("1").append(format!("selftest={name}"));
        let o = common::boot(&cfg);
        let why = common::explain(&o);
        assert_eq!(o.exit, Exit::Failed, "selftest={name} on one CPU{why}");
        let want = format!("selftest={name} needs two or more CPUs, and this machine has 1");
        assert!(o.report.problems.iter().any(|p| p.source == "smp" && p.detail.starts_with(&want)), "{name}: no smp problem{why}");
        let failed: Vec<_> = o.report.scenarios.iter().filter(|s| s.result == ScenarioResult::Fail).collect();
        assert_eq!(failed.len(), 1, "{name}: {failed:?}{why}");
        assert!(failed[0].name == "cpu-start" && failed[0].detail.starts_with(&want), "{name}: {failed:?}{why}");
        assert!(!o.com1.contains("gets INIT but no SIPI") && !o.com1.contains("panicking on CPU") && !o.com1.contains("ap-cycle: CPU"), "{name}{why}");
    }
}

#[test]
fn four_cpus_through_grub_multiboot2() {
    let cfg = common::config(Machine::Q35).boot(BootPath::IsoBios).smp("4");
    let o = boot_and_check(&cfg, &[0, 1, 2, 3]);
    assert_eq!(o.report.platform.as_ref().unwrap().boot.as_deref(), Some("multiboot2"));
}

#[test]
fn four_cpus_under_kvm() {
    // Without the default devices: nested KVM is slow here (its KVM emulates every guest instruction), and the CPUs are
    // what is checked.
    let Some(cfg) = common::kvm(common::config(Machine::Q35).default_devices(false).smp("4").timeout_secs(300), "the KVM SMP check") else {
        return;
    };
    boot_and_check(&cfg, &[0, 1, 2, 3]);
}
