//! A short soak in `cargo test` (the long one is `cargo run --release -- --append soak=1000000`): many
//! interrupts across e1000e, nvme and edu in one boot, none lost, none duplicated.

use crate::common;

use msifw_host::{Machine, ScenarioResult};

#[test]
fn short_soak_loses_and_duplicates_nothing() {
    for machine in [Machine::Q35, Machine::Pc] {
        let o = common::boot(&common::config(machine).append("soak=3000"));
        common::assert_passed(&o);
        let s = o.report.scenarios.iter().find(|s| s.name == "soak").unwrap_or_else(|| panic!("no soak{}", common::explain(&o)));
        assert_eq!(s.result, ScenarioResult::Pass, "{}", s.detail);
        assert!(s.detail.starts_with("soak: 3000 interrupts, 0 lost, 0 duplicated"), "{}", s.detail);
    }
}
