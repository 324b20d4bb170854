//! Helpers shared by the QEMU integration tests.
#![allow(dead_code)] // each test file uses a different subset

use msifw_host::{run, Machine, RunConfig, RunOutcome};

/// Timeout for one boot in the tests. Generous: two QEMUs may run at once on two cores, and the
/// firmware build (done once per test binary, before the clock starts) is not included.
pub const TIMEOUT_SECS: u64 = 120;

/// The default configuration for `machine` used by the tests.
pub fn config(machine: Machine) -> RunConfig {
    RunConfig::new().machine(machine).timeout_secs(TIMEOUT_SECS)
}

/// Boots the firmware, panicking with an explanation if the run could not be carried out at all
/// (firmware build failed, QEMU missing).
pub fn boot(cfg: &RunConfig) -> RunOutcome {
    match run(cfg) {
        Ok(outcome) => outcome,
        Err(e) => panic!(
            "could not run the firmware on {}: {e}\n(the firmware build's own messages are above; \
             check `cargo build --target x86_64-unknown-none --bin msifw` and that qemu-system-x86_64 \
             is installed)",
            cfg.machine
        ),
    }
}

/// Everything a user needs to see about a run in a failure message: the host's report, the last
/// COM1 lines, and the command to rerun.
pub fn explain(o: &RunOutcome) -> String {
    let lines: Vec<&str> = o.com1.lines().collect();
    let tail = &lines[lines.len().saturating_sub(40)..];
    let (what, rerun) = match o.qemu() {
        Some(q) => (
            format!("run on {}", q.machine),
            format!("cargo run -- --machine {}\n(or QEMU directly: {})", q.machine, q.command.shell()),
        ),
        None => ("decoded capture".to_string(), "cargo run -- decode COM1_CAPTURE --com2 COM2_CAPTURE".to_string()),
    };
    format!(
        "\n--- {what} ---\n{}\n--- last COM1 lines ({} of {}) ---\n{}\n--- rerun ---\n{rerun}\n",
        o.render(),
        tail.len(),
        lines.len(),
        tail.join("\n"),
    )
}

/// Asserts the whole run passed: exit status, and every scenario (write-order checks included), naming
/// each one that did not.
pub fn assert_passed(o: &RunOutcome) {
    let failed: Vec<String> = o
        .report
        .scenarios
        .iter()
        .filter(|s| s.result == msifw_host::ScenarioResult::Fail)
        .map(|s| format!("{} {}: {}", s.bdf.as_deref().unwrap_or("-"), s.name, s.detail))
        .collect();
    assert!(
        o.exit == msifw_host::Exit::Passed && failed.is_empty(),
        "{} did not pass ({:?}); failed scenarios:\n  {}{}",
        o.qemu().map_or("decoded capture".to_string(), |q| format!("run on {}", q.machine)),
        o.exit,
        failed.join("\n  "),
        explain(o)
    );
}
