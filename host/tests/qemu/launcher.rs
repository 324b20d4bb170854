//! The launcher fails fast and labels truly: the machine type given with `--qemu-arg -M` is the one
//! reported, a machine without COM2 is said to have none, a firmware that never starts (a machine type
//! that cannot PVH-boot) is given up long before the timeout, and an `--append` QEMU's PVH boot
//! cannot carry is refused before QEMU starts.

use crate::common;

use std::time::Duration;

use msifw_host::{cli_run, handover_deadline, run, Exit, Machine, Oracle, QemuExit, RunConfig, RunError, TableStatus, PVH_CMDLINE_MAX};

/// pc-i440fx-3.1 cannot start a PVH kernel: SeaBIOS runs and nothing of the firmware ever appears. The
/// run ends at the hand-over deadline (20 s for PVH under TCG; SeaBIOS hands over in 0.2-0.3 s here),
/// not at the 120 s timeout, labelled with the machine QEMU built. The boot sets a 1 s deadline: SeaBIOS
/// spins a CPU while it waits (17 s of CPU in the 20 s), the run path is the same, and the firmware
/// never starts whatever the deadline.
#[test]
fn a_firmware_that_never_starts_fails_early() {
    let cfg = common::config(Machine::Q35).qemu_arg("-M").qemu_arg("pc-i440fx-3.1");
    assert_eq!(handover_deadline(&cfg), Some(Duration::from_secs(20)), "the default deadline of this boot");
    let cfg = cfg.handover(Duration::from_secs(1));
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    let q = o.qemu().unwrap();
    // QEMU's own time: the wait for a place to run (common::slot) is not the launcher's.
    let took = q.elapsed;
    assert!(took < Duration::from_secs(60), "took {took:?} (timeout {:?}){why}", cfg.timeout);
    assert_eq!(q.exit, QemuExit::NeverStarted(Duration::from_secs(1)), "given up at the deadline set{why}");
    assert_eq!(o.exit, Exit::Crash);
    assert_eq!(q.machine, "pc-i440fx-3.1", "{why}");
    assert_eq!(o.to_json()["platform"]["machine"], "pc-i440fx-3.1");
    assert!(o.findings[0].starts_with("the firmware never started"), "{why}");
    assert!(o.findings.iter().any(|f| f.contains("machine type pc-i440fx-3.1 cannot start a PVH kernel")), "{why}");
    assert!(o.render().contains("msifw: crash on pc-i440fx-3.1 (tcg)"), "{why}");
}

/// `-machine microvm` given with `--qemu-arg`: the run is labelled microvm, its missing COM2 (microvm
/// has one UART) is said as such, and the oracle agrees on what PCI there is (none: no PCI host without
/// `pcie=on`).
#[test]
fn machine_from_qemu_arg_and_missing_com2() {
    let cfg = common::config(Machine::Q35).default_devices(false).qemu_arg("-machine").qemu_arg("microvm");
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    assert_eq!(o.qemu().unwrap().machine, "microvm", "{why}");
    assert!(o.report.end.is_some(), "{why}");
    assert!(o.com2_bytes.is_empty(), "{why}");
    assert!(matches!(&o.defmt.table, TableStatus::NoCom2(m) if m.contains("microvm has one UART")), "{:?}{why}", o.defmt.table);
    assert!(o.render().contains("defmt: no log: COM2 carried no bytes: machine type microvm has one UART"), "{why}");
    assert!(o.to_json()["com2"]["missing"].as_str().is_some_and(|m| m.contains("microvm")));
    let Oracle::Taken { comparison, .. } = &o.oracle else { panic!("{:?}{why}", o.oracle) };
    assert!(comparison.agrees() && comparison.qemu == 0, "{comparison:?}{why}");
}

/// 4095 bytes of command line fit QEMU's 4096-byte PVH buffer (its NUL counts); one more is refused
/// with exit 64 before anything starts (a QEMU that does not exist is never tried).
#[test]
fn a_command_line_longer_than_the_pvh_buffer_is_refused() {
    let long = "x".repeat(PVH_CMDLINE_MAX + 1);
    assert_eq!(cli_run(["--no-oracle", "--qemu", "/nonexistent/qemu", "--append", long.as_str()]), 64);
    let cfg = RunConfig::new().oracle(false).qemu("/nonexistent/qemu").elf("/nonexistent/fw").append(long);
    assert!(matches!(run(&cfg), Err(RunError::Config(_))));
    // With the oracle's word in front, 4089 bytes is the most the user can give.
    let fits = "x".repeat(PVH_CMDLINE_MAX - "oracle ".len());
    let cfg = RunConfig::new().qemu("/nonexistent/qemu").elf("/nonexistent/fw").append(fits.clone() + "x");
    assert!(matches!(run(&cfg), Err(RunError::Config(_))));
    let cfg = RunConfig::new().qemu("/nonexistent/qemu").elf("/nonexistent/fw").append(fits);
    assert!(matches!(run(&cfg), Err(RunError::ElfNotFound(_))), "past the check");
}

/// The longest command line the launcher lets through reaches the firmware whole: its last word, past
/// the 1024 bytes msifw once held, takes effect (`nomsi`: every driven function on INTx) and the run
/// passes with no boot problem.
#[test]
fn the_longest_command_line_reaches_the_firmware_whole() {
    let fits = " ".repeat(PVH_CMDLINE_MAX - "oracle ".len() - "nomsi".len()) + "nomsi";
    let o = common::boot(&common::config(Machine::Q35).append(fits));
    let why = common::explain(&o);
    common::assert_passed(&o);
    let driven: Vec<_> = o.report.functions.iter().filter(|f| f.driver.is_some()).collect();
    assert!(!driven.is_empty(), "{why}");
    assert!(driven.iter().all(|f| f.irq_mode == msifw_host::IrqMode::Intx), "nomsi lost{why}");
    assert!(o.report.problems.iter().all(|p| p.source != "boot" && p.source != "capacity"), "{why}");
}
