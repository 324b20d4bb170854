//! A MADT with more CPUs than msifw once kept: QEMU's q35 with 200 CPUs lists 200 local APIC entries (a Dell
//! R820 has 96, of which 80 enabled; big servers have hundreds). msifw kept 64 and reported the rest dropped;
//! every entry is now kept on the heap, and the run is clean. About 7 s under TCG here (QEMU starts 200
//! vCPU threads; msifw starts all 200 CPUs, in about 0.2 s: a CPU that did not would be a problem line).

use crate::common;

use msifw_host::{Exit, Machine};

#[test]
fn a_madt_with_200_cpus_is_read_whole() {
    let cfg = common::config(Machine::Q35).default_devices(false).qemu_arg("-smp").qemu_arg("200");
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    assert_eq!(o.exit, Exit::Passed, "200-CPU run did not pass{why}");
    assert!(
        o.report.problems.is_empty(),
        "no entry of QEMU's 200-CPU MADT may be dropped or reported: {:?}{why}",
        o.report.problems.iter().map(|p| format!("[{}] {}", p.source, p.detail)).collect::<Vec<_>>()
    );
}
