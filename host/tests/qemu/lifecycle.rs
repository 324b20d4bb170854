//! Lifecycle scenarios from field bugs, each with its negative control (`"control": true`, passing when the
//! failure was detected).

use crate::common;

use msifw_host::{Machine, RunOutcome, ScenarioResult};

fn scenario(o: &RunOutcome, bdf: &str, name: &str, control: bool) {
    let why = common::explain(o);
    let s = o
        .report
        .scenarios_for(bdf)
        .find(|s| s.name == name && s.control == control)
        .unwrap_or_else(|| panic!("{bdf}: no {name} scenario (control {control}){why}"));
    assert_eq!(s.result, ScenarioResult::Pass, "{bdf} {name} (control {control}): {}{why}", s.detail);
}

/// Seed 001: a reset wipes the MSI-X table; rewriting it from the cache brings interrupts back, and a
/// configuration-space-only restore (the control) leaves them dead.
#[test]
fn reset_wipes_the_msix_table_and_the_cache_restores_it() {
    let cfg = common::config(Machine::Q35)
        .append("scenario=reset-restore")
        .device("pcie-root-port,id=rp1,chassis=1,slot=1,addr=06.0")
        .device("e1000e,romfile=,bus=rp1");
    let o = common::boot(&cfg);
    common::assert_passed(&o);
    for bdf in ["00:03.0", "01:00.0"] {
        scenario(&o, bdf, "reset-restore", false);
        scenario(&o, bdf, "reset-restore", true);
    }
    let nvme = o.report.scenarios_for("00:03.0").find(|s| s.name == "reset-restore" && !s.control).unwrap();
    assert!(nvme.detail.starts_with("FLR wiped the table"), "{}", nvme.detail);
    let nic = o.report.scenarios_for("01:00.0").find(|s| s.name == "reset-restore" && !s.control).unwrap();
    assert!(nic.detail.starts_with("secondary bus reset wiped the table"), "{}", nic.detail);

    let o = common::boot(&common::config(Machine::Pc).append("scenario=reset-restore"));
    common::assert_passed(&o);
    scenario(&o, "00:03.0", "reset-restore", false);
    scenario(&o, "00:03.0", "reset-restore", true);
}

/// Seed 002: re-enabling MSI-X with another vector count composes every message afresh; reusing round
/// one's message (the control) sends interrupts to the freed vector, and that is caught.
#[test]
fn reenable_with_another_vector_count_uses_fresh_messages() {
    for machine in [Machine::Q35, Machine::Pc] {
        let o = common::boot(&common::config(machine).append("scenario=reenable"));
        common::assert_passed(&o);
        scenario(&o, "00:03.0", "reenable", false);
        scenario(&o, "00:03.0", "reenable", true);
        let nvme = o.report.function("00:03.0").unwrap();
        assert_eq!(nvme.vectors.len(), 5, "ends on all five vectors");
    }
}

/// Seed 004: MSI-X grown from entry 0 one vector at a time while the device interrupts; the control
/// unmasks an entry before programming it and sees the device write its message to physical 0.
#[test]
fn incremental_enable_loses_nothing_and_never_uses_an_unprogrammed_entry() {
    for machine in [Machine::Q35, Machine::Pc] {
        let o = common::boot(&common::config(machine).append("scenario=incremental"));
        common::assert_passed(&o);
        scenario(&o, "00:03.0", "incremental", false);
        scenario(&o, "00:03.0", "incremental", true);
        // The write-order checker sees the control's deliberate rule break too.
        let wo = o.report.scenarios_for("00:03.0").find(|s| s.name == "write-order").unwrap();
        assert!(wo.detail.contains("broken on purpose there, first: R4"), "{}", wo.detail);
    }
}

/// Seed 000: after the firmware's shutdown path nothing reaches the CPU, INTx included, and legacy
/// virtio keeps MSI-X enabled (quirk) so its device config does not move; the control (MSI disabled, INTx
/// left enabled, as Linux did before 2017) catches the stray INTx and shows the virtio window moving.
#[test]
fn shutdown_leaves_nothing_able_to_interrupt() {
    for machine in [Machine::Q35, Machine::Pc] {
        let cfg = |sc: &str| {
            common::config(machine)
                .append(format!("scenario={sc}"))
                .qemu_arg("-netdev")
                .qemu_arg("user,id=n0")
                .device("virtio-net-pci,disable-modern=on,netdev=n0,romfile=,addr=05.0")
        };
        let o = common::boot(&cfg("shutdown"));
        common::assert_passed(&o);
        for bdf in ["00:02.0", "00:03.0", "00:04.0", "00:05.0"] {
            scenario(&o, bdf, "shutdown", false);
        }
        let virtio = o.report.scenarios_for("00:05.0").find(|s| s.name == "shutdown").unwrap();
        assert!(virtio.detail.contains("quirk") && virtio.detail.contains("0x18 after"), "{}", virtio.detail);

        let o = common::boot(&cfg("shutdown-control"));
        common::assert_passed(&o);
        for bdf in ["00:02.0", "00:03.0", "00:04.0", "00:05.0"] {
            scenario(&o, bdf, "shutdown", true);
        }
        let virtio = o.report.scenarios_for("00:05.0").find(|s| s.name == "shutdown").unwrap();
        assert!(virtio.detail.contains("0x18 before, 0x14 after"), "{}", virtio.detail);
    }
}

/// Seed 003: a restart in place with live devices (a crash kernel's start). Stage B quiets everything
/// before it enables interrupts, sees no stale vector, and then sets the devices up afresh; the control
/// (quieting delayed past the trap window) catches the stale interrupts.
#[test]
fn crash_restart_with_live_devices_is_quiet_before_sti() {
    for machine in [Machine::Q35, Machine::Pc] {
        let o = common::boot(&common::config(machine).append("scenario=crash-restart irq.00:04.0=intx"));
        common::assert_passed(&o);
        assert!(o.com1.contains("restarted in place"), "stage B never ran{}", common::explain(&o));
        let s = o.report.scenarios.iter().find(|s| s.name == "crash-restart" && !s.control).unwrap();
        assert_eq!(s.result, ScenarioResult::Pass, "{}", s.detail);
        assert!(s.detail.contains("1 asserting INTx") && s.detail.contains("no stale vector fired"), "{}", s.detail);
        // Set up afresh after the restart: every device interrupts again.
        for bdf in ["00:02.0", "00:03.0", "00:04.0"] {
            assert!(o.report.function(bdf).is_some_and(|f| f.interrupts >= 2), "{bdf} after the restart{}", common::explain(&o));
        }

        let o = common::boot(&common::config(machine).append("scenario=crash-restart-control irq.00:04.0=intx"));
        common::assert_passed(&o);
        let s = o.report.scenarios.iter().find(|s| s.name == "crash-restart" && s.control).unwrap();
        assert_eq!(s.result, ScenarioResult::Pass, "{}", s.detail);
    }
}

/// With several CPUs the spread aims sources at APs; stage A aims every live source at CPU 0 (the one CPU
/// running through the restart) before it raises anything, so the control still catches the level it left
/// and the guard's pass has the level on CPU 0 (one pending LAPIC vector or more), not lost on an AP.
#[test]
fn crash_restart_with_sources_spread_over_aps() {
    let cases = [
        (common::config(Machine::Q35).smp("3").append("scenario=crash-restart-control irq.00:04.0=intx"), true),
        (common::config(Machine::Pc).smp("4").append("scenario=crash-restart-control nomsi"), true),
        (common::config(Machine::Pc).smp("4").append("scenario=crash-restart nomsi"), false),
    ];
    for (cfg, control) in cases {
        let o = common::boot(&cfg);
        common::assert_passed(&o);
        let why = common::explain(&o);
        let s = o.report.scenarios.iter().find(|s| s.name == "crash-restart" && s.control == control).unwrap_or_else(|| panic!("no crash-restart (control {control}){why}"));
        assert_eq!(s.result, ScenarioResult::Pass, "{}{why}", s.detail);
        assert!(s.detail.contains("all aimed at CPU 0 (") && !s.detail.contains("aimed at CPU 0 (0 moved)"), "nothing moved off an AP: {}{why}", s.detail);
        assert!(!s.detail.contains(" 0 asserting INTx"), "{}{why}", s.detail);
        if !control {
            assert!(s.detail.contains("no stale vector fired") && !s.detail.contains("and 0 pending LAPIC"), "the level never reached CPU 0: {}{why}", s.detail);
        }
    }
}

/// `cargo run -- --append scenario=all`: the launcher boots the shared run and one run per scenario that
/// needs its own, and the merged report has every lifecycle scenario with its control, each passing.
#[test]
fn scenario_all_reports_every_lifecycle_scenario_and_control() {
    let cfg = common::config(Machine::Q35)
        .append("scenario=all")
        .device("pcie-root-port,id=rp1,chassis=1,slot=1,addr=06.0")
        .device("e1000e,romfile=,bus=rp1");
    all_lifecycle_scenarios_pass(&cfg);
}

fn all_lifecycle_scenarios_pass(cfg: &msifw_host::RunConfig) {
    let o = msifw_host::run_all(cfg).unwrap_or_else(|e| panic!("{e}"));
    common::assert_passed(&o);
    for name in ["crash-restart", "reset-restore", "shutdown", "reenable", "incremental"] {
        for control in [false, true] {
            let found = o.report.scenarios.iter().any(|s| s.name == name && s.control == control && s.result == ScenarioResult::Pass);
            assert!(found, "{}: {name} (control {control}) missing or not passing{}", cfg.machine, common::explain(&o));
        }
    }
}

/// The same on pc (no PCIe ports there: e1000e cannot be reset on its own, nvme carries reset-restore).
#[test]
fn scenario_all_on_pc_reports_every_lifecycle_scenario_and_control() {
    all_lifecycle_scenarios_pass(&common::config(Machine::Pc).append("scenario=all"));
}
