//! Application processors: every CPU the MADT lists as enabled is started (INIT-SIPI-SIPI from a
//! trampoline below 1 MiB), answers a function sent through its mailbox, and is listed in the `platform`
//! record with its APIC ID, ACPI UID, logical ID and state; the rest of the run passes as with one CPU.
//! QEMU's topologies (smp-ir.md §1.7): `-smp 6,sockets=2,cores=3` leaves a hole in the APIC IDs (0-2,
//! 4-6), `maxcpus` adds MADT entries with Enabled=0, which are not started.

mod common;

use msifw_host::{Accel, BootPath, Machine, RunConfig, RunOutcome};

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
}

#[test]
fn apic_id_holes_on_pc() {
    // Three cores per socket round up to four APIC IDs per socket: 0,1,2 and 4,5,6 (ACPI UIDs 0-5).
    let o = boot_and_check(&common::config(Machine::Pc).smp("6,sockets=2,cores=3"), &[0, 1, 2, 4, 5, 6]);
    let p = o.report.platform.as_ref().unwrap();
    assert_eq!(p.cpus.iter().map(|c| c.acpi_uid).collect::<Vec<_>>(), [0, 1, 2, 3, 4, 5]);
}

#[test]
fn maxcpus_entries_are_not_started() {
    // The MADT lists 4 CPUs, two of them Enabled=0: only 0 and 1 run.
    let o = boot_and_check(&common::config(Machine::Q35).smp("2,maxcpus=4"), &[0, 1]);
    assert!(o.defmt.render().contains("2 MADT entries disabled"), "{}", common::explain(&o));
}

#[test]
fn sixteen_cpus_under_tcg() {
    boot_and_check(&common::config(Machine::Q35).smp("16"), &(0..16).collect::<Vec<_>>());
}

#[test]
fn four_cpus_through_grub_multiboot2() {
    let cfg = common::config(Machine::Q35).boot(BootPath::IsoBios).smp("4");
    let o = boot_and_check(&cfg, &[0, 1, 2, 3]);
    assert_eq!(o.report.platform.as_ref().unwrap().boot.as_deref(), Some("multiboot2"));
}

#[test]
fn four_cpus_under_kvm() {
    if std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_err() {
        eprintln!("NOTICE: /dev/kvm is not usable here; the KVM SMP check did not run");
        return;
    }
    boot_and_check(&common::config(Machine::Q35).accel(Accel::Kvm).smp("4"), &[0, 1, 2, 3]);
}
