//! Every verdict true: drivers take what the device grants and say so, a function not driven is left
//! quiet with the reason, a negative control that provoked nothing is a skip, crash restart copes with an
//! INTx level left asserted, and the report says what happened (command-line words, counts, config space).

use crate::common;

use msifw_host::{run_all, Exit, Function, IrqMode, Machine, RunOutcome, ScenarioResult};

fn function<'a>(o: &'a RunOutcome, bdf: &str) -> &'a Function {
    o.report.function(bdf).unwrap_or_else(|| panic!("{bdf} not listed{}", common::explain(o)))
}

fn reason(f: &Function) -> &str {
    f.irq_reason.as_deref().unwrap_or("")
}

/// Bus Master, MSI and MSI-X off and INTx disabled, read back from the function at the end of the run.
fn assert_quiet(o: &RunOutcome, bdf: &str) {
    let f = function(o, bdf);
    let st = f.final_state.as_ref().unwrap_or_else(|| panic!("{bdf}: no final_state{}", common::explain(o)));
    assert!(
        !st.bus_master && st.intx_disabled && st.msi_enabled != Some(true) && st.msix_enabled != Some(true),
        "{bdf} is not driven but left able to interrupt or master the bus: {st:?}{}",
        common::explain(o)
    );
}

fn boot_all(cfg: &msifw_host::RunConfig) -> RunOutcome {
    run_all(cfg).unwrap_or_else(|e| panic!("could not run: {e}"))
}

/// NVMe Set Features (Number of Queues): a controller granting one I/O queue pair gets one, on two MSI-X
/// vectors, and says so; a controller whose MSI-X table is smaller than asked for drives fewer sources and
/// says so.
#[test]
fn drivers_take_what_the_device_grants_and_say_so() {
    let cfg = common::config(Machine::Q35)
        .default_devices(false)
        .device("nvme,serial=granted1,max_ioqpairs=1,addr=03.0")
        .device("nvme,serial=table3,msix_qsize=3,addr=05.0");
    let o = common::boot(&cfg);
    common::assert_passed(&o);
    let why = common::explain(&o);
    let one = function(&o, "00:03.0");
    assert_eq!((one.irq_mode, one.vectors.len()), (IrqMode::Msix, 2), "admin queue and the one granted I/O queue{why}");
    assert!(reason(one).contains("granted 1 of 4 I/O queues"), "{:?}{why}", one.irq_reason);
    let small = function(&o, "00:05.0");
    assert_eq!((small.irq_mode, small.vectors.len()), (IrqMode::Msix, 3), "{why}");
    assert!(reason(small).contains("MSI-X table has 3 entries"), "{:?}{why}", small.irq_reason);
    for bdf in ["00:03.0", "00:05.0"] {
        let d = o.report.scenarios_for(bdf).find(|s| s.name == "msix-delivery").unwrap_or_else(|| panic!("{bdf}: no delivery{why}"));
        assert_eq!(d.result, ScenarioResult::Pass, "{bdf}: {}{why}", d.detail);
    }
}

/// `irq.BDF=none`, a forced mode the function lacks: not driven, quiet at the end, `irq_reason` says why;
/// an `irq.` word for an undriven function, a repeated one and an unknown scenario name are reported.
#[test]
fn functions_not_driven_are_quiet_and_the_command_line_is_named() {
    let cfg = common::config(Machine::Q35)
        .append("irq.00:02.0=none irq.00:04.0=msix irq.00:1f.3=msi irq.00:03.0=intx irq.00:03.0=msix scenario=nope,stuck-command");
    let o = common::boot(&cfg);
    common::assert_passed(&o);
    let why = common::explain(&o);
    let e1000e = function(&o, "00:02.0");
    assert_eq!(e1000e.irq_mode, IrqMode::None, "{why}");
    assert!(reason(e1000e).contains("irq.00:02.0=none"), "{:?}{why}", e1000e.irq_reason);
    // Not driven: only the conformance check, which runs on every function while it is quiet.
    let driven: Vec<_> = o.report.scenarios_for("00:02.0").filter(|s| !s.name.ends_with("-conformance")).collect();
    assert!(driven.is_empty(), "irq.BDF=none runs no device check on it: {driven:?}{why}");
    assert_quiet(&o, "00:02.0");

    let edu = function(&o, "00:04.0");
    assert_eq!(edu.irq_mode, IrqMode::None, "{why}");
    assert!(reason(edu).contains("irq.00:04.0=msix") && reason(edu).contains("does not offer"), "{:?}{why}", edu.irq_reason);
    let skip = o.report.scenarios_for("00:04.0").find(|s| s.name == "msix-delivery").unwrap_or_else(|| panic!("no msix-delivery{why}"));
    assert_eq!(skip.result, ScenarioResult::Skip, "a mode the function lacks is a mismatch, not a failure{why}");
    assert_quiet(&o, "00:04.0");

    let nvme = function(&o, "00:03.0");
    assert_eq!(nvme.irq_mode, IrqMode::Msix, "the last irq. word for a function counts{why}");
    let stuck = o.report.scenarios_for("00:03.0").find(|s| s.name == "stuck-command");
    assert!(stuck.is_some(), "the rest of 'scenario=nope,stuck-command' is used{why}");

    let cmdline: Vec<&str> = o.report.problems.iter().filter(|p| p.source == "cmdline").map(|p| p.detail.as_str()).collect();
    for expected in ["irq.00:1f.3=msi names 00:1f.3", "irq.00:03.0= given more than once", "unknown scenario 'nope'"] {
        assert!(cmdline.iter().any(|p| p.contains(expected)), "no cmdline problem with {expected:?}: {cmdline:?}{why}");
    }
}

/// `nomsix` is named in `irq_reason` (also for the nvme, which has MSI-X only), and a function's INTx
/// interrupts stay counted in its record when `shutdown` runs.
#[test]
fn nomsix_is_named_and_shutdown_keeps_intx_counts() {
    let o = common::boot(&common::config(Machine::Q35).append("nomsix scenario=shutdown"));
    common::assert_passed(&o);
    let why = common::explain(&o);
    for bdf in ["00:02.0", "00:03.0"] {
        assert!(reason(function(&o, bdf)).contains("nomsix"), "{bdf}: {:?}{why}", function(&o, bdf).irq_reason);
    }
    let nvme = function(&o, "00:03.0");
    assert_eq!(nvme.irq_mode, IrqMode::Intx, "{why}");
    assert!(nvme.interrupts >= 2, "nvme's INTx interrupts lost from its record: {}{why}", nvme.interrupts);
}

/// QEMU's nvme keeps its INTx state across a controller reset: after a crash restart with the nvme on
/// INTx the driver takes over a line already asserted, and still every interrupt counts.
#[test]
fn crash_restart_with_nvme_on_intx_passes() {
    let o = common::boot(&common::config(Machine::Q35).append("scenario=crash-restart irq.00:03.0=intx"));
    common::assert_passed(&o);
    let why = common::explain(&o);
    let d = o.report.scenarios_for("00:03.0").find(|s| s.name == "intx-delivery").unwrap_or_else(|| panic!("no intx-delivery{why}"));
    assert_eq!(d.result, ScenarioResult::Pass, "{}{why}", d.detail);
    let nvme = function(&o, "00:03.0");
    assert!(nvme.problems.iter().any(|p| p.contains("asserted with nothing pending at takeover")), "{:?}{why}", nvme.problems);
}

/// The same through `scenario=all nomsi` (every device on INTx, crash restart included).
#[test]
fn scenario_all_nomsi_passes() {
    let o = boot_all(&common::config(Machine::Q35).append("scenario=all nomsi"));
    common::assert_passed(&o);
}

/// Nothing driven (q35's built-in AHCI at 00:1f.2 left undriven): every control is a skip that says so,
/// and `scenario=all` passes.
#[test]
fn controls_that_provoke_nothing_are_skips() {
    let o = boot_all(&common::config(Machine::Q35).default_devices(false).append("scenario=all irq.00:1f.2=none"));
    let why = common::explain(&o);
    assert_eq!(o.exit, Exit::Passed, "{why}");
    let crash = o.report.scenarios.iter().find(|s| s.name == "crash-restart" && s.control).unwrap_or_else(|| panic!("no crash-restart control{why}"));
    assert_eq!(crash.result, ScenarioResult::Skip, "{why}");
    assert!(crash.detail.starts_with("nothing to provoke"), "{}{why}", crash.detail);
    assert!(o.report.scenarios.iter().all(|s| !s.control || s.result == ScenarioResult::Skip), "{why}");
}

/// The incremental control on a device with one MSI-X vector has no entry to expose: a skip.
#[test]
fn incremental_control_on_a_one_vector_device_is_a_skip() {
    let cfg = common::config(Machine::Q35).default_devices(false).device("nvme,serial=one,msix_qsize=1,addr=03.0").append("scenario=incremental");
    let o = common::boot(&cfg);
    common::assert_passed(&o);
    let why = common::explain(&o);
    for control in [false, true] {
        let s = o
            .report
            .scenarios_for("00:03.0")
            .find(|s| s.name == "incremental" && s.control == control)
            .unwrap_or_else(|| panic!("no incremental (control {control}){why}"));
        assert_eq!(s.result, ScenarioResult::Skip, "control {control}: {}{why}", s.detail);
    }
}

/// A PCIe endpoint below a conventional PCI bridge cannot be reached past 256 bytes: no extended list, no
/// problem, and it is driven as usual.
#[test]
fn pcie_endpoint_below_a_pci_bridge_has_a_256_byte_space() {
    let cfg = common::config(Machine::Q35)
        .device("pci-bridge,id=b1,chassis_nr=1,addr=05.0")
        .device("e1000e,romfile=,bus=b1,addr=01.0");
    let o = common::boot(&cfg);
    common::assert_passed(&o);
    let why = common::explain(&o);
    let nic = function(&o, "01:01.0");
    assert!(nic.problems.is_empty(), "{:?}{why}", nic.problems);
    assert!(nic.capabilities.iter().all(|c| !c.extended), "{why}");
    assert_eq!(nic.irq_mode, IrqMode::Msix, "{why}");
}

/// crash-restart-control catches the INTx level stage A leaves asserted: with only an nvme, the nvme is
/// moved to INTx for it (caught); with only an e1000e in MSI-X, whose live messages raise nothing while
/// nobody triggers them, there is nothing to catch (a skip, not a failed control).
#[test]
fn crash_restart_control_judges_what_stage_a_left_asserted() {
    for (device, expected) in [("nvme,serial=c,addr=03.0", ScenarioResult::Pass), ("e1000e,romfile=,addr=02.0", ScenarioResult::Skip)] {
        let o = common::boot(&common::config(Machine::Q35).default_devices(false).device(device).append("scenario=crash-restart-control"));
        let why = common::explain(&o);
        assert_eq!(o.exit, Exit::Passed, "{device}{why}");
        let c = o.report.scenarios.iter().find(|s| s.name == "crash-restart" && s.control).unwrap_or_else(|| panic!("no control{why}"));
        assert_eq!(c.result, expected, "{device}: {}{why}", c.detail);
    }
}
