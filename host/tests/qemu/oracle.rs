//! The oracle of every run: the firmware's function list against QEMU's `query-pci` on the live VM,
//! taken while the firmware waits with bus numbers final. It agrees on q35 and pc, and a function QEMU
//! has but the firmware never saw (added with QMP `device_add` while the firmware waits, after its
//! enumeration) fails a run whose scenarios all passed.

use crate::common;

use std::time::Duration;

use msifw_host::{Exit, Machine, Oracle, ScenarioResult};
use serde_json::json;

fn agrees_on(machine: Machine) {
    let o = common::boot_shared(&common::config(machine));
    common::assert_passed(&o);
    let why = common::explain(&o);
    let Oracle::Taken { comparison, cost } = &o.oracle else { panic!("the oracle was not taken on {machine}: {:?}{why}", o.oracle) };
    assert!(comparison.agrees(), "{comparison:?}{why}");
    assert_eq!(comparison.qemu, o.report.functions.len(), "{why}");
    assert!(comparison.qemu >= 5, "QEMU listed only {} functions on {machine}{why}", comparison.qemu);
    // The firmware waits for one QMP round trip (milliseconds); a second would mean a stall.
    assert!(*cost < Duration::from_secs(1), "the oracle took {cost:?}{why}");
    assert!(o.render().contains("oracle: the firmware's "), "{why}");
    assert_eq!(o.report.platform.as_ref().map(|p| p.cmdline.as_str()), Some("oracle"), "{why}");
    assert_eq!(o.to_json()["oracle"]["passed"], true);
}

#[test]
fn agrees_on_q35() {
    agrees_on(Machine::Q35);
}

#[test]
fn agrees_on_pc() {
    agrees_on(Machine::Pc);
}

/// QEMU gets an edu at 00:10.0 after the firmware enumerated: the run fails with exit status 1 and an
/// `oracle:` line naming it, although every scenario passed.
#[test]
fn a_function_the_firmware_never_saw_fails_the_run() {
    let cfg = common::config(Machine::Pc).before_oracle(json!({
        "execute": "device_add",
        "arguments": {"driver": "edu", "id": "late", "addr": "0x10"}
    }));
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    assert!(o.report.end.is_some(), "the firmware did not finish{why}");
    assert!(o.report.scenarios.iter().all(|s| s.result != ScenarioResult::Fail), "a scenario failed: the oracle must be the only cause{why}");
    assert_eq!(o.exit, Exit::Failed, "{why}");
    assert_eq!(o.exit.code(), 1);
    let Oracle::Taken { comparison, .. } = &o.oracle else { panic!("{:?}{why}", o.oracle) };
    let missing: Vec<String> = comparison.missing.iter().map(ToString::to_string).collect();
    assert_eq!(missing, ["00:10.0 1234:11e8"], "{why}");
    assert!(comparison.phantom.is_empty(), "{why}");
    let line = o.findings.iter().find(|f| f.starts_with("oracle: FAILED")).unwrap_or_else(|| panic!("no oracle finding{why}"));
    assert!(line.contains("missing 00:10.0 1234:11e8; phantom none"), "{line}");
    let j = o.to_json();
    assert_eq!(j["oracle"]["passed"], false);
    assert_eq!(j["oracle"]["missing"], json!([{"bdf": "00:10.0", "id": "1234:11e8"}]));
    assert_eq!(j["exit"], "failed");
}

/// `--no-oracle`: no word for the firmware, no wait, and the run says the oracle was off.
#[test]
fn off() {
    let o = common::boot(&common::config(Machine::Q35).oracle(false));
    common::assert_passed(&o);
    assert!(matches!(o.oracle, Oracle::Off(_)), "{:?}", o.oracle);
    assert_eq!(o.report.platform.as_ref().map(|p| p.cmdline.as_str()), Some(""));
    assert!(!o.com1.contains("oracle"), "{}", o.com1);
    assert!(o.render().contains("oracle: off (--no-oracle)"));
    assert_eq!(o.to_json()["oracle"]["enabled"], false);
}

/// A run cut off by its timeout after the oracle was taken has no function records yet (they come at the
/// end): the oracle says it could not compare, once, instead of failing every function as "missing".
#[test]
fn a_run_cut_short_is_not_compared() {
    let o = common::boot(&common::config(Machine::Q35).append("soak=100000000").timeout(Duration::from_secs(2)));
    let why = common::explain(&o);
    assert!(o.report.end.is_none(), "the soak ended within 2 s{why}");
    let Oracle::NotTaken(reason) = &o.oracle else { panic!("the oracle compared an unfinished report: {:?}{why}", o.oracle) };
    assert!(reason.contains("no `end` record"), "{reason}{why}");
    assert!(!o.render().contains("missing 00:"), "{why}");
}
