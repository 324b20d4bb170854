//! Found by trying the firmware as a new user would: a scenario asked for that has nothing to run on is a
//! skip that says why (never silence a user could read as a pass), and a check that could not have
//! failed is no pass.

use crate::common;

use msifw_host::{run_all, Exit, Machine, ScenarioResult};

/// `scenario=` naming scenarios no driven function can carry (an edu only: no nvme, no MSI-X): each gets
/// a skip naming what it needs, and the run still passes.
#[test]
fn requested_scenarios_without_a_subject_are_skips() {
    let names = ["reset-restore", "reenable", "incremental", "stuck-command"];
    let cfg = common::config(Machine::Q35).default_devices(false).device("edu,addr=04.0").append(format!("scenario={}", names.join(",")));
    let o = common::boot(&cfg);
    common::assert_passed(&o);
    let why = common::explain(&o);
    for name in names {
        let s = o.report.scenarios.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("{name} asked for and not reported{why}"));
        assert_eq!(s.result, ScenarioResult::Skip, "{name}: {}{why}", s.detail);
        assert!(s.detail.contains("nvme") || s.detail.contains("MSI-X"), "{name}: {}{why}", s.detail);
    }
}

/// `scenario=all` where nothing is driven: every scenario `all` stands for has a verdict, and none of them
/// is a pass (crash-restart with nothing left live could not have seen a stale interrupt). q35's built-in
/// AHCI at 00:1f.2 is left undriven.
#[test]
fn scenario_all_with_nothing_driven_reports_every_scenario_without_a_pass() {
    let cfg = common::config(Machine::Q35).default_devices(false).append("scenario=all irq.00:1f.2=none");
    let o = run_all(&cfg).unwrap_or_else(|e| panic!("could not run: {e}"));
    let why = common::explain(&o);
    assert_eq!(o.exit, Exit::Passed, "{why}");
    let expected = [
        ("intx-storm", false),
        ("reset-restore", false),
        ("reenable", false),
        ("incremental", false),
        ("shutdown", false),
        ("shutdown", true),
        ("crash-restart", false),
        ("crash-restart", true),
        ("stuck-command", false),
    ];
    for (name, control) in expected {
        let s = o
            .report
            .scenarios
            .iter()
            .find(|s| s.name == name && s.control == control)
            .unwrap_or_else(|| panic!("{name} (control {control}) asked for by scenario=all and not reported{why}"));
        assert_eq!(s.result, ScenarioResult::Skip, "{name} (control {control}): {}{why}", s.detail);
    }
}

/// crash-restart restarts the firmware in place: stage B reports again what stage A did (here a forced
/// mode the edu lacks, a skip). The boot has that skip once, and the firmware's own end record counts it
/// once.
#[test]
fn a_crash_restart_boot_reports_each_setup_verdict_once() {
    let o = common::boot(&common::config(Machine::Q35).append("scenario=crash-restart irq.00:04.0=msix"));
    common::assert_passed(&o);
    let why = common::explain(&o);
    let skips = o.report.scenarios.iter().filter(|s| s.bdf.as_deref() == Some("00:04.0") && s.result == ScenarioResult::Skip).count();
    assert_eq!(skips, 1, "the forced mode's skip, once{why}");
    let end = o.report.end.as_ref().unwrap_or_else(|| panic!("no end record{why}"));
    let c = o.report.counts();
    assert_eq!((end.passed, end.failed, end.skipped), (c.passed, c.failed, c.skipped), "the firmware's counts are the records'{why}");
}

/// Legacy virtio-net without a network peer: three MSI-X vectors programmed, TX alone driven. The
/// function's record says so (`irq_reason`), not only the defmt log a one-UART machine does not have.
#[test]
fn virtio_net_without_a_peer_says_rx_was_not_checked() {
    let cfg = common::config(Machine::Q35).default_devices(false).device("virtio-net-pci,disable-modern=on,romfile=,addr=05.0");
    let o = common::boot_shared(&cfg);
    common::assert_passed(&o);
    let why = common::explain(&o);
    let f = o.report.function("00:05.0").unwrap_or_else(|| panic!("virtio-net not listed{why}"));
    assert_eq!(f.vectors.len(), 3, "{why}");
    let reason = f.irq_reason.as_deref().unwrap_or("");
    assert!(reason.contains("RX not checked") && reason.contains("1 of 2 sources driven"), "{reason:?}{why}");
}

/// A driver that needs a BAR no window of the platform can hold (microvm has no PCI I/O space, and legacy
/// virtio-net's BAR0 is I/O): its interrupts were never tried, so the verdict is a skip that names the
/// unassigned BAR, not a FAIL of the device; the other device still passes.
#[test]
fn a_bar_no_window_fits_is_a_skip_naming_it() {
    let cfg = common::config(Machine::Q35)
        .default_devices(false)
        .qemu_arg("-M")
        .qemu_arg("microvm,pcie=on,acpi=on")
        .device("virtio-net-pci,disable-modern=on")
        .device("edu");
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    common::assert_passed(&o);
    let s = o
        .report
        .scenarios
        .iter()
        .find(|s| s.name == "msix-delivery" && s.detail.contains("virtio-net"))
        .unwrap_or_else(|| panic!("no verdict for the virtio-net{why}"));
    assert_eq!(s.result, ScenarioResult::Skip, "{}{why}", s.detail);
    assert!(s.detail.contains("BAR0") && s.detail.contains("no address"), "{}{why}", s.detail);
    assert!(o.report.scenarios.iter().any(|s| s.name == "msi-delivery" && s.result == ScenarioResult::Pass), "the edu must still pass{why}");
}
