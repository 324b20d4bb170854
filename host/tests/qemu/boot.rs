//! The firmware boots on q35 with the default devices, runs its scenarios and exits with "passed"
//! after a complete report.

use crate::common;

use msifw_host::{Exit, Machine};

#[test]
fn q35_default_run_passes() {
    let o = common::boot_shared(&common::config(Machine::Q35));
    let why = common::explain(&o);
    assert!(
        o.report.end.is_some(),
        "the firmware never sent its `end` record (verdict: {}); look at the last COM1 lines and the \
         defmt log for where it stopped{why}",
        o.exit
    );
    assert!(
        o.report.platform.is_some(),
        "the firmware sent no `platform` record (docs/protocol.md){why}"
    );
    assert!(
        !o.report.scenarios.is_empty(),
        "the firmware ran no scenario{why}"
    );
    assert_eq!(
        o.exit,
        Exit::Passed,
        "the q35 default run did not pass; the host's findings: {:?}{why}",
        o.findings
    );
}
