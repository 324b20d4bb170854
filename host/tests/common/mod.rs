//! Helpers shared by the QEMU integration tests.
#![allow(dead_code)] // each test file uses a different subset

use msifw_host::{run, Machine, RunConfig, RunOutcome, Scenario, ScenarioResult};

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
/// each one that did not. An expected failure (`xfail`: a known deviation of the platform,
/// host/src/deviations.rs) counts as passed; an unexpected pass (`xpass`) does not.
pub fn assert_passed(o: &RunOutcome) {
    let failed: Vec<String> = o
        .report
        .scenarios
        .iter()
        .filter(|s| matches!(s.result, ScenarioResult::Fail | ScenarioResult::Xpass))
        .map(|s| format!("{} {} {}: {}", s.result.label(), s.bdf.as_deref().unwrap_or("-"), s.name, s.detail))
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

/// The scenario records named `name` (platform-wide and per function, controls included).
pub fn scenarios<'a>(o: &'a RunOutcome, name: &'a str) -> impl Iterator<Item = &'a Scenario> + 'a {
    o.report.scenarios.iter().filter(move |s| s.name == name)
}

/// Asserts that the scenario `name` (the first record of that name, not a control) is an expected
/// failure: it failed, and the known deviation `deviation` (a row id of host/src/deviations.rs) says the
/// platform fails it. Returns the record.
pub fn assert_xfail<'a>(o: &'a RunOutcome, name: &'a str, deviation: &str) -> &'a Scenario {
    let why = explain(o);
    let s = scenarios(o, name)
        .find(|s| !s.control)
        .unwrap_or_else(|| panic!("no scenario record {name}{why}"));
    assert_eq!(s.result, ScenarioResult::Xfail, "{name}: expected an xfail (known deviation {deviation}), got {}: {}{why}", s.result.label(), s.detail);
    let d = s.deviation.as_ref().unwrap_or_else(|| panic!("{name}: xfail without its deviation{why}"));
    assert_eq!(d.id, deviation, "{name}: judged by another known deviation{why}");
    s
}

/// Asserts that every record of scenario `name` passed, or failed only as a known deviation of this
/// platform says (`xfail`): for a check run on several platforms, some of which break the promise it
/// checks. An `xpass` or a plain failure fails the test. Returns how many were expected failures.
pub fn assert_pass_or_xfail(o: &RunOutcome, name: &str) -> usize {
    let why = explain(o);
    let all: Vec<&Scenario> = scenarios(o, name).collect();
    assert!(!all.is_empty(), "no scenario record {name}{why}");
    for s in &all {
        assert!(
            matches!(s.result, ScenarioResult::Pass | ScenarioResult::Xfail),
            "{name} {}: {} ({}){}{why}",
            s.bdf.as_deref().unwrap_or("-"),
            s.result.label(),
            s.detail,
            s.deviation.as_ref().map(|d| format!("; known deviation {} expects a failure here", d.id)).unwrap_or_default()
        );
    }
    all.iter().filter(|s| s.result == ScenarioResult::Xfail).count()
}
