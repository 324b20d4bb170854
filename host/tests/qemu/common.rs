//! Helpers shared by the QEMU integration tests, and the gate that bounds how many emulators run at once.
#![allow(dead_code)] // each test module uses a different subset

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use msifw_host::{run, Accel, Machine, RunConfig, RunOutcome, Scenario, ScenarioResult};

/// Timeout for one boot in the tests. Generous: [`emulators`] QEMUs share the cores (one a core) with
/// whatever else the machine runs, and the firmware build (done once for the whole binary, before the
/// clock starts) is not included.
pub const TIMEOUT_SECS: u64 = 120;

/// How many emulator processes (QEMU, Bochs) the tests run at once: `MSIFW_TEST_EMULATORS`, or the host's
/// cores. Every boot is CPU-bound (TCG, and nested KVM in the host kernel): more would only stretch each
/// boot's wall time, and a guest whose vCPU threads lose the CPU for long sees its own time jump (with
/// twice the cores a TCG `-smp 2` boot's `cpu-offline` once found "Remote IRR did not clear" under
/// load). The harness runs every test at once (`RUST_TEST_THREADS` in .cargo/config.toml): the tests
/// that boot nothing finish at once, and the ones that boot wait here, KVM boots first (the longest,
/// about 110 s of CPU of the whole run's 215 s here: started first, the short TCG boots fill the end of
/// the run instead of one long boot trailing alone).
pub fn emulators() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("MSIFW_TEST_EMULATORS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

struct GateState {
    running: usize,
    kvm_waiting: usize,
    kvm_running: usize,
}

static GATE: Mutex<GateState> = Mutex::new(GateState { running: 0, kvm_waiting: 0, kvm_running: 0 });
static GATE_FREED: Condvar = Condvar::new();

fn gate() -> MutexGuard<'static, GateState> {
    // A test that panicked while holding the lock left consistent counts (each change is one statement).
    GATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// One emulator's place among the [`emulators`] that run at once; freed on drop.
pub struct Slot {
    kvm: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut g = gate();
        g.running -= 1;
        g.kvm_running -= self.kvm as usize;
        drop(g);
        GATE_FREED.notify_all();
    }
}

/// Waits for a place to run an emulator: one KVM boot at a time, before any waiting TCG boot. Two KVM
/// boots at once (4 and 2 vCPUs on 2 cores, in this host's instruction-emulating KVM) each took about
/// twice as long as alone (cpus' 3.6 -> 7.8 s): the KVM boots' sum went 19 -> 31 QEMU seconds.
pub fn slot(accel: Accel) -> Slot {
    let kvm = accel == Accel::Kvm;
    let mut g = gate();
    if kvm {
        g.kvm_waiting += 1;
    }
    // A TCG boot gives way to a waiting KVM boot only while that one could start.
    while g.running >= emulators() || (kvm && g.kvm_running > 0) || (!kvm && g.kvm_waiting > 0 && g.kvm_running == 0) {
        g = GATE_FREED.wait(g).unwrap_or_else(|e| e.into_inner());
    }
    if kvm {
        g.kvm_waiting -= 1;
        g.kvm_running += 1;
    }
    g.running += 1;
    Slot { kvm }
}

/// The default configuration for `machine` used by the tests.
pub fn config(machine: Machine) -> RunConfig {
    RunConfig::new().machine(machine).timeout_secs(TIMEOUT_SECS)
}

/// QEMU's qboot, shipped with every QEMU (Debian: qemu-system-data).
pub const QBOOT: &str = "/usr/share/qemu/qboot.rom";

/// `cfg` under KVM, booted by qboot; `None`, with a NOTICE naming `what` (the project's machines have KVM:
/// say so loudly rather than pass quietly), when /dev/kvm is not usable. qboot instead of SeaBIOS because
/// these boots check KVM's interrupt delivery, not the boot firmware, and the project's nested KVM runs
/// the guest in its instruction emulator (README, Performance), where SeaBIOS's 13 million instructions
/// take 3 s of every KVM boot (retarget's 12.2 -> 9.1 s). qboot leaves the BARs to msifw (tests/qboot.rs
/// holds that path to a SeaBIOS boot), so these boots also cover BAR assignment under KVM; the TCG boots
/// keep SeaBIOS, what users boot.
pub fn kvm(cfg: RunConfig, what: &str) -> Option<RunConfig> {
    if std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_err() {
        eprintln!("NOTICE: /dev/kvm is not usable here; {what} did not run");
        return None;
    }
    Some(cfg.accel(Accel::Kvm).qemu_arg("-bios").qemu_arg(QBOOT))
}

/// Boots the firmware, panicking with an explanation if the run could not be carried out at all
/// (firmware build failed, QEMU missing).
pub fn boot(cfg: &RunConfig) -> RunOutcome {
    let _slot = slot(cfg.accel);
    match run(cfg) {
        Ok(outcome) => {
            if let Some(path) = std::env::var_os("MSIFW_TEST_BOOTS") {
                use std::io::Write;
                let q = outcome.qemu();
                let line = format!(
                    "{}\t{:.2}\t{}\n",
                    std::thread::current().name().unwrap_or("-"),
                    q.map_or(0.0, |q| q.elapsed.as_secs_f64()),
                    q.map_or(String::new(), |q| q.command.shell())
                );
                let _ = std::fs::OpenOptions::new().create(true).append(true).open(path).and_then(|mut f| f.write_all(line.as_bytes()));
            }
            outcome
        }
        Err(e) => panic!(
            "could not run the firmware on {}: {e}\n(the firmware build's own messages are above; \
             check `cargo build --target x86_64-unknown-none --bin msifw` and that qemu-system-x86_64 \
             is installed)",
            cfg.machine
        ),
    }
}

/// The outcome of one boot of `cfg` shared by every test that boots the very same configuration (equal
/// `RunConfig`s: same machine, devices, command line, QMP actions, firmware) through this function: the
/// default q35 and pc platforms alone were booted by fifteen tests. Only for tests that read the outcome
/// (each test still makes every assertion it made on a boot of its own); a test that compares two boots of
/// one configuration, or whose boot must be its own, calls [`boot`]. A boot that panics (the firmware
/// could not be built, QEMU is missing) is not kept: the next test asking boots again and says why itself.
pub fn boot_shared(cfg: &RunConfig) -> RunOutcome {
    type Runs = Mutex<HashMap<String, Arc<OnceLock<RunOutcome>>>>;
    static RUNS: OnceLock<Runs> = OnceLock::new();
    let key = format!("{cfg:?}");
    let cell = RUNS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_default().clone();
    cell.get_or_init(|| boot(cfg)).clone()
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
