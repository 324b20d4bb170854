//! From QEMU's exit status and the report to a verdict (docs/protocol.md, "Exit").

use std::fmt;
use std::process::ExitStatus;

use serde::Serialize;

use crate::report::Report;

/// How QEMU ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QemuExit {
    /// QEMU exited with this status.
    Code(i32),
    /// QEMU was killed by this signal (`None` where signals are unknown).
    Signal(Option<i32>),
    /// The host killed QEMU when the timeout was reached.
    TimedOut,
    /// The host killed QEMU this long after it started, without a line from the firmware on COM1,
    /// long after the boot firmware should have handed over ([`crate::qemu::handover_deadline`]).
    NeverStarted(std::time::Duration),
}

impl QemuExit {
    /// From a process exit status.
    pub fn from_status(status: ExitStatus) -> QemuExit {
        match status.code() {
            Some(code) => QemuExit::Code(code),
            None => QemuExit::Signal(signal_of(status)),
        }
    }
}

#[cfg(unix)]
fn signal_of(status: ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

#[cfg(not(unix))]
fn signal_of(_: ExitStatus) -> Option<i32> {
    None
}

impl fmt::Display for QemuExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QemuExit::Code(code) => write!(f, "status {code}"),
            QemuExit::Signal(Some(sig)) => write!(f, "killed by signal {sig}"),
            QemuExit::Signal(None) => f.write_str("killed by a signal"),
            QemuExit::TimedOut => f.write_str("killed at the timeout"),
            QemuExit::NeverStarted(after) => write!(f, "killed after {}s: the firmware never started", after.as_secs_f64()),
        }
    }
}

/// The verdict of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Exit {
    /// Every scenario passed and the report is complete (QEMU status 1).
    Passed,
    /// At least one scenario failed (status 3), or the report is incomplete or inconsistent.
    Failed,
    /// Firmware panic or CPU exception (status 5).
    Panic,
    /// The run did not finish in time.
    Timeout,
    /// Anything else: triple fault or reset (status 0 with `-no-reboot`), a signal, or QEMU
    /// failing before the firmware said anything.
    Crash,
}

impl Exit {
    /// Name used in the JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Exit::Passed => "passed",
            Exit::Failed => "failed",
            Exit::Panic => "panic",
            Exit::Timeout => "timeout",
            Exit::Crash => "crash",
        }
    }

    /// The CLI's exit code: passed 0, failed 1, panic 2, timeout 3, crash 4.
    pub fn code(self) -> u8 {
        match self {
            Exit::Passed => 0,
            Exit::Failed => 1,
            Exit::Panic => 2,
            Exit::Timeout => 3,
            Exit::Crash => 4,
        }
    }

    /// The verdict from QEMU's exit alone (the protocol's table).
    pub fn from_qemu(exit: QemuExit) -> Exit {
        match exit {
            QemuExit::Code(1) => Exit::Passed,
            QemuExit::Code(3) => Exit::Failed,
            QemuExit::Code(5) => Exit::Panic,
            QemuExit::TimedOut => Exit::Timeout,
            QemuExit::Code(_) | QemuExit::Signal(_) | QemuExit::NeverStarted(_) => Exit::Crash,
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verdict and the reasons found on the host side that explain or override it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The verdict.
    pub exit: Exit,
    /// Messages for the user (empty for a clean pass).
    pub findings: Vec<String>,
}

/// Judges a run from QEMU's exit, the report, and whether COM1 carried any output at all.
///
/// A pass needs QEMU status 1 *and* a complete, consistent report ([`Report::check`]) with no failed
/// scenario; otherwise it becomes [`Exit::Failed`]. QEMU itself exits with status 1 when it cannot
/// start (bad option, unloadable ELF), so status 1 with no COM1 output at all is a [`Exit::Crash`].
///
/// Known deviations ([`crate::deviations`]): an `xfail` counts as passed, so status 3 (the firmware
/// saw a failure) whose every failed scenario is an `xfail` passes when the report is complete and
/// consistent; an `xpass` fails the run ([`xpass_finding`]).
pub fn judge(exit: QemuExit, report: &Report, com1_output: bool) -> Verdict {
    let mut verdict = Exit::from_qemu(exit);
    let mut findings = Vec::new();
    match verdict {
        Exit::Passed if !com1_output && report.is_empty() => {
            verdict = Exit::Crash;
            findings.push(
                "QEMU exited with status 1 before the firmware printed anything: QEMU itself probably \
                 refused to start (see its stderr below; a bad --device/--qemu-arg or an ELF without a \
                 PVH note does this)"
                    .to_string(),
            );
        }
        Exit::Passed => {
            findings = report.check();
            let failed = report.counts().as_end().failed;
            if failed > 0 {
                findings.push(format!(
                    "the firmware exited with 'passed' but reported {failed} failed scenario(s)"
                ));
            }
            findings.extend(xpass_finding(report));
            if !findings.is_empty() {
                verdict = Exit::Failed;
            }
        }
        Exit::Failed => {
            findings = report.check();
            let c = report.counts();
            if c.failed == 0 && c.xfailed == 0 && report.end.is_some() {
                findings.push(
                    "the firmware exited with 'failed' (status 3) but no scenario record failed".to_string(),
                );
            }
            findings.extend(xpass_finding(report));
            // Every failure was an expected one: the exit status counts an xfail as passed.
            if findings.is_empty() && c.failed == 0 && c.xfailed > 0 {
                verdict = Exit::Passed;
            }
        }
        Exit::Panic => findings.push(
            "the firmware panicked or took a CPU exception (QEMU status 5): the message is in the COM1 \
             output above"
                .to_string(),
        ),
        Exit::Timeout => findings.push(format!(
            "the firmware did not exit in time; the last COM1 lines and the defmt log show where it \
             stopped{}",
            if report.end.is_some() { " (it had sent its `end` record but never wrote the exit port)" } else { "" }
        )),
        Exit::Crash => findings.push(match exit {
            QemuExit::NeverStarted(after) => format!(
                "the firmware never started: no line from it on COM1 {}s after QEMU started, long after the boot \
                 firmware should have handed over (README \"Exit status\" lists the hand-over times); QEMU killed",
                after.as_secs_f64()
            ),
            QemuExit::Code(0) => "QEMU exited with status 0: a triple fault or reset (the run uses \
                                  -no-reboot); look at the last COM1 lines, or rerun the printed QEMU \
                                  command with --qemu-arg=-d --qemu-arg=int,cpu_reset"
                .to_string(),
            other => format!("QEMU ended abnormally ({other}); see its stderr below"),
        }),
    }
    Verdict {
        exit: verdict,
        findings,
    }
}

/// The finding an `xpass` makes: the scenarios that passed where a known deviation says they fail. An
/// `xpass` fails the run (as kvm-unit-tests counts XPASS as a failure): the row is wrong for this
/// platform (fixed in this version: narrow the row's range) or the check no longer reaches the case the
/// row is about (a check that cannot fail there); either way the table says something untrue.
pub fn xpass_finding(report: &Report) -> Option<String> {
    let xpass: Vec<String> = report
        .scenarios
        .iter()
        .filter(|s| s.result == crate::report::ScenarioResult::Xpass)
        .map(|s| {
            format!(
                "{} {}{} (known deviation {})",
                s.name,
                s.bdf.as_deref().unwrap_or("-"),
                if s.control { " (control)" } else { "" },
                s.deviation.as_ref().map_or("?", |d| d.id.as_str())
            )
        })
        .collect();
    (!xpass.is_empty()).then(|| {
        format!(
            "{} scenario(s) passed where a known deviation says the platform fails them (XPASS): {}. Either the \
             platform was fixed (narrow the row's QEMU versions in host/src/deviations.rs) or the check did not \
             reach the case the row is about",
            xpass.len(),
            xpass.join(", ")
        )
    })
}

/// Starts of the COM1 lines the firmware prints when it stops on a panic, a CPU exception or an
/// interrupt before its dispatcher (src/firmware.rs, src/console.rs); each then exits with the
/// crash code.
pub const FATAL_PREFIXES: &[&str] = &["msifw: panic: ", "msifw: CPU exception ", "msifw: interrupt on vector "];

/// Whether a COM1 line is the firmware's panic or exception message.
pub fn is_fatal_line(line: &str) -> bool {
    FATAL_PREFIXES.iter().any(|p| line.starts_with(p))
}

/// Judges a capture from a machine (`cargo run -- decode`), where there is no QEMU exit status: the
/// report alone decides, as [`judge`] does for QEMU's status 1 and 3. `fatal` is the firmware's panic
/// or exception line, if COM1 has one ([`Exit::Panic`]); `capture` holds what is wrong with the capture
/// itself (empty, cut off inside a record), which fails an otherwise clean report.
pub fn judge_capture(report: &Report, com1_output: bool, fatal: Option<&str>, capture: Vec<String>) -> Verdict {
    if let Some(line) = fatal {
        let mut findings = vec![format!("the firmware panicked or took a CPU exception: {line}")];
        findings.extend(capture);
        return Verdict { exit: Exit::Panic, findings };
    }
    let mut findings = capture;
    if com1_output || !report.is_empty() {
        findings.extend(report.check());
    } else if findings.is_empty() {
        findings.push("the COM1 capture holds no lines".to_string());
    }
    findings.extend(xpass_finding(report));
    let failed = report.counts().failed;
    let exit = if failed == 0 && findings.is_empty() { Exit::Passed } else { Exit::Failed };
    Verdict { exit, findings }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample_report;
    use crate::report::{End, Report};

    #[test]
    fn qemu_status_mapping() {
        assert_eq!(Exit::from_qemu(QemuExit::Code(1)), Exit::Passed);
        assert_eq!(Exit::from_qemu(QemuExit::Code(3)), Exit::Failed);
        assert_eq!(Exit::from_qemu(QemuExit::Code(5)), Exit::Panic);
        assert_eq!(Exit::from_qemu(QemuExit::TimedOut), Exit::Timeout);
        assert_eq!(Exit::from_qemu(QemuExit::Code(0)), Exit::Crash);
        assert_eq!(Exit::from_qemu(QemuExit::Code(7)), Exit::Crash);
        assert_eq!(Exit::from_qemu(QemuExit::Signal(Some(9))), Exit::Crash);
        let codes: Vec<u8> = [
            Exit::Passed,
            Exit::Failed,
            Exit::Panic,
            Exit::Timeout,
            Exit::Crash,
        ]
        .iter()
        .map(|e| e.code())
        .collect();
        assert_eq!(codes, [0, 1, 2, 3, 4]);
        assert_eq!(
            serde_json::to_string(&Exit::Timeout).unwrap(),
            "\"timeout\""
        );
    }

    #[test]
    fn clean_pass() {
        let v = judge(QemuExit::Code(1), &sample_report(), true);
        assert_eq!(
            v,
            Verdict {
                exit: Exit::Passed,
                findings: vec![]
            }
        );
    }

    #[test]
    fn pass_without_end_is_a_failure() {
        let mut r = sample_report();
        r.end = None;
        let v = judge(QemuExit::Code(1), &r, true);
        assert_eq!(v.exit, Exit::Failed);
        assert!(v.findings[0].contains("no `end` record"));
    }

    #[test]
    fn pass_with_wrong_counts_or_failed_scenarios_is_a_failure() {
        let mut r = sample_report();
        r.end = Some(End {
            passed: 9,
            failed: 0,
            skipped: 1,
        });
        assert_eq!(judge(QemuExit::Code(1), &r, true).exit, Exit::Failed);

        let mut r = sample_report();
        r.scenarios[0].result = crate::report::ScenarioResult::Fail;
        r.end = Some(End {
            passed: 1,
            failed: 1,
            skipped: 1,
        });
        let v = judge(QemuExit::Code(1), &r, true);
        assert_eq!(v.exit, Exit::Failed);
        assert!(
            v.findings.iter().any(|f| f.contains("1 failed scenario")),
            "{:?}",
            v.findings
        );
    }

    #[test]
    fn status_one_without_any_output_is_a_crash() {
        let v = judge(QemuExit::Code(1), &Report::new(), false);
        assert_eq!(v.exit, Exit::Crash);
        // Output but no records: the firmware ran, so this is an incomplete report.
        assert_eq!(
            judge(QemuExit::Code(1), &Report::new(), true).exit,
            Exit::Failed
        );
    }

    #[test]
    fn captures_are_judged_by_their_report() {
        let clean = judge_capture(&sample_report(), true, None, vec![]);
        assert_eq!(clean, Verdict { exit: Exit::Passed, findings: vec![] });

        let mut r = sample_report();
        r.end = None;
        let v = judge_capture(&r, true, None, vec![]);
        assert_eq!(v.exit, Exit::Failed);
        assert!(v.findings[0].contains("no `end` record"), "{:?}", v.findings);

        let mut r = sample_report();
        r.scenarios[0].result = crate::report::ScenarioResult::Fail;
        r.end = Some(End { passed: 1, failed: 1, skipped: 1 });
        let v = judge_capture(&r, true, None, vec![]);
        assert_eq!((v.exit, v.findings.len()), (Exit::Failed, 0), "a failed scenario speaks for itself");

        let v = judge_capture(&sample_report(), true, None, vec!["cut off".into()]);
        assert_eq!(v.exit, Exit::Failed);

        let v = judge_capture(&Report::new(), true, Some("msifw: panic: at src/x.rs"), vec![]);
        assert_eq!(v.exit, Exit::Panic);
        assert!(v.findings[0].ends_with("msifw: panic: at src/x.rs"));
        assert!(is_fatal_line("msifw: CPU exception 6 (#UD) error_code=0x0"));
        assert!(!is_fatal_line("msifw 0.1.0: booting"));

        let v = judge_capture(&Report::new(), false, None, vec![]);
        assert_eq!(v.exit, Exit::Failed);
        assert_eq!(v.findings, ["the COM1 capture holds no lines"]);
    }

    #[test]
    fn other_statuses_keep_their_verdict() {
        let r = sample_report();
        assert_eq!(judge(QemuExit::Code(3), &r, true).exit, Exit::Failed);
        assert_eq!(judge(QemuExit::Code(5), &r, true).exit, Exit::Panic);
        assert_eq!(judge(QemuExit::TimedOut, &r, true).exit, Exit::Timeout);
        let v = judge(QemuExit::Code(0), &r, true);
        assert_eq!(v.exit, Exit::Crash);
        assert!(v.findings[0].contains("triple fault"));
        assert_eq!(judge(QemuExit::Signal(Some(9)), &r, true).exit, Exit::Crash);
    }
}
