//! JUnit XML for CI systems (`--junit FILE`): the form GitLab (`artifacts:reports:junit`), Jenkins
//! (`junit` step) and GitHub (test-report actions) read: `<testsuites>` holding one `<testsuite>` per
//! run (a `run` or `decode`; one per cell in `matrix`), each `<testcase>` with `name`, `classname` and
//! `time`; a failure as `<failure message=...>` with the detail as its text, a skip as
//! `<skipped message=.../>`.
//!
//! A run's suite has one case per scenario line of the report (`msix-delivery 00:02.0`, `... (control)`),
//! one per PCI function (its verdict is the oracle's: QEMU lists it with the same ids, or it is
//! *phantom*; a function QEMU has and the report lacks is a failed case of its own; with the oracle off,
//! as in `decode`, a function case is skipped, saying so), and one `verdict` case carrying the run's
//! exit (a timeout, a crash or an incomplete report fails it even when no scenario failed). Scenarios
//! are not timed one by one: their cases have `time="0"`; the suite and the verdict carry the run's wall
//! time.

use std::fmt::Write as _;

use crate::deviations::DeviationNote;
use crate::exit::Exit;
use crate::matrix::Cell;
use crate::oracle::Oracle;
use crate::report::ScenarioResult;
use crate::run::{RunOutcome, Source};

/// How a test case ended.
#[derive(Clone, Debug, PartialEq)]
pub enum CaseOutcome {
    /// Passed.
    Passed,
    /// Failed: a one-line message (the `message` attribute) and the detail (the element's text).
    Failed {
        /// Short reason.
        message: String,
        /// Longer text, may be empty.
        detail: String,
    },
    /// Skipped, and why.
    Skipped(String),
}

/// One `<testcase>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    /// `name`.
    pub name: String,
    /// `classname` (Jenkins groups by what comes before its last dot).
    pub classname: String,
    /// `time`, seconds.
    pub time: f64,
    /// How it ended.
    pub outcome: CaseOutcome,
    /// `<system-out>` text, if any.
    pub output: String,
}

impl Case {
    fn new(classname: &str, name: impl Into<String>, outcome: CaseOutcome) -> Case {
        Case {
            name: name.into(),
            classname: classname.to_string(),
            time: 0.0,
            outcome,
            output: String::new(),
        }
    }
}

/// One `<testsuite>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Suite {
    /// `name`.
    pub name: String,
    /// `time`, seconds.
    pub time: f64,
    /// Its cases.
    pub cases: Vec<Case>,
}

impl Suite {
    fn count(&self, f: impl Fn(&CaseOutcome) -> bool) -> usize {
        self.cases.iter().filter(|c| f(&c.outcome)).count()
    }

    /// Failed cases.
    pub fn failures(&self) -> usize {
        self.count(|o| matches!(o, CaseOutcome::Failed { .. }))
    }

    /// Skipped cases.
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, CaseOutcome::Skipped(_)))
    }
}

/// Text as XML 1.0 character data or attribute value: the five markup characters as entities, tab,
/// newline and carriage return kept (as references inside attributes, so they survive attribute
/// normalisation), every other character XML 1.0 does not allow (C0 controls, U+FFFE, U+FFFF) as U+FFFD.
pub fn escape(text: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' if attribute => {
                let _ = write!(out, "&#{};", c as u32);
            }
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The document.
pub fn render(suites: &[Suite]) -> String {
    let tests: usize = suites.iter().map(|s| s.cases.len()).sum();
    let failures: usize = suites.iter().map(Suite::failures).sum();
    let skipped: usize = suites.iter().map(Suite::skipped).sum();
    let time: f64 = suites.iter().map(|s| s.time).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(x, "<testsuites name=\"msifw\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">");
    for s in suites {
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{:.3}\">",
            escape(&s.name, true),
            s.cases.len(),
            s.failures(),
            s.skipped(),
            s.time
        );
        for c in &s.cases {
            let _ = write!(
                x,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
                escape(&c.name, true),
                escape(&c.classname, true),
                c.time
            );
            if c.outcome == CaseOutcome::Passed && c.output.is_empty() {
                x.push_str("/>\n");
                continue;
            }
            x.push_str(">\n");
            match &c.outcome {
                CaseOutcome::Passed => {}
                CaseOutcome::Failed { message, detail } => {
                    let _ = writeln!(
                        x,
                        "      <failure message=\"{}\" type=\"failure\">{}</failure>",
                        escape(message, true),
                        escape(detail, false)
                    );
                }
                CaseOutcome::Skipped(why) => {
                    let _ = writeln!(x, "      <skipped message=\"{}\"/>", escape(why, true));
                }
            }
            if !c.output.is_empty() {
                let _ = writeln!(
                    x,
                    "      <system-out>{}</system-out>",
                    escape(&c.output, false)
                );
            }
            x.push_str("    </testcase>\n");
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

/// A scenario line's case name: `name bdf`, `name -` without a device, ` (control)` for a control.
pub fn scenario_key(name: &str, bdf: Option<&str>, control: bool) -> String {
    format!(
        "{name} {}{}",
        bdf.unwrap_or("-"),
        if control { " (control)" } else { "" }
    )
}

/// The case of one scenario line.
pub fn scenario_case(classname: &str, key: String, result: ScenarioResult, detail: &str) -> Case {
    scenario_case_with(classname, key, result, detail, None)
}

/// The case of one scenario line that a known deviation may have judged ([`crate::deviations`]): an
/// `xfail` is a passed case whose `<system-out>` starts with `XFAIL` and the deviation (CI systems
/// have no expected-failure state, and the exit status counts it as passed); an `xpass` is a failed
/// case whose message starts with `XPASS`, since it fails the run.
pub fn scenario_case_with(classname: &str, key: String, result: ScenarioResult, detail: &str, deviation: Option<&DeviationNote>) -> Case {
    let about = deviation
        .map(|d| format!("known deviation {}: {} ({}) [{}]", d.id, d.reason, d.reference, d.platform))
        .unwrap_or_else(|| "no known deviation recorded".into());
    let outcome = match result {
        ScenarioResult::Pass | ScenarioResult::Xfail => CaseOutcome::Passed,
        ScenarioResult::Fail => CaseOutcome::Failed {
            message: first_line(detail, "FAIL"),
            detail: detail.to_string(),
        },
        ScenarioResult::Skip => CaseOutcome::Skipped(first_line(detail, "SKIP")),
        ScenarioResult::Xpass => CaseOutcome::Failed {
            message: format!("XPASS: passed where {about}"),
            detail: format!("XPASS (unexpected pass): the platform may have been fixed, or the check did not reach the case the deviation is about\n{detail}"),
        },
    };
    let mut case = Case::new(classname, key, outcome);
    match result {
        ScenarioResult::Pass => case.output = detail.to_string(),
        ScenarioResult::Xfail => case.output = format!("XFAIL (expected failure, counted as passed): {about}\n{detail}"),
        _ => {}
    }
    case
}

fn first_line(text: &str, or: &str) -> String {
    text.lines()
        .next()
        .filter(|l| !l.trim().is_empty())
        .unwrap_or(or)
        .to_string()
}

/// One case per function (`bdf`, `vendor:device`, driver), judged by the oracle, and one failed case
/// per function QEMU lists that the report lacks.
pub fn device_cases<'a>(
    classname: &str,
    functions: impl IntoIterator<Item = (&'a str, String, Option<&'a str>)>,
    oracle: &Oracle,
) -> Vec<Case> {
    let mut cases = Vec::new();
    for (bdf, id, driver) in functions {
        let name = format!("{bdf} {id} {}", driver.unwrap_or("(no driver)"));
        let outcome = match oracle {
            Oracle::Off(why) => CaseOutcome::Skipped(format!("not compared with QEMU's view: oracle off ({why})")),
            Oracle::NotTaken(why) => CaseOutcome::Failed { message: "QEMU's query-pci could not be compared".into(), detail: why.clone() },
            Oracle::Taken { comparison, .. } => match comparison.phantom.iter().find(|e| e.bdf == bdf) {
                Some(e) => CaseOutcome::Failed {
                    message: format!("phantom: QEMU does not list {e}"),
                    detail: "the report has this function, QEMU's query-pci does not (or with other ids, or it is reported twice)".into(),
                },
                None => CaseOutcome::Passed,
            },
        };
        cases.push(Case::new(classname, name, outcome));
    }
    if let Oracle::Taken { comparison, .. } = oracle {
        for e in &comparison.missing {
            cases.push(Case::new(
                classname,
                format!("{e} (missing from the report)"),
                CaseOutcome::Failed {
                    message: format!("missing: QEMU lists {e}, the report does not"),
                    detail: String::new(),
                },
            ));
        }
    }
    cases
}

/// The run's own case: passes only when the run passed; otherwise fails with the exit and the findings.
pub fn verdict_case(classname: &str, exit: Exit, findings: &[String], time: f64) -> Case {
    let outcome = if exit == Exit::Passed {
        CaseOutcome::Passed
    } else {
        CaseOutcome::Failed {
            message: format!(
                "{}: {}",
                exit.as_str(),
                findings.first().map_or("", String::as_str)
            ),
            detail: findings.join("\n"),
        }
    };
    Case {
        time,
        ..Case::new(classname, "verdict", outcome)
    }
}

/// `scenario=all` joins several boots, each reporting the device checks again: a repeated key gets its
/// occurrence (` #2`, ...), so every case name is unique (CI systems merge cases of one name).
fn unique_keys(keys: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    keys.map(|key| {
        let n = seen.entry(key.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            format!("{key} #{n}")
        } else {
            key
        }
    })
    .collect()
}

/// The suite of a run or decoded capture.
pub fn run_suite(o: &RunOutcome) -> Suite {
    let (name, time) = match &o.source {
        Source::Qemu(q) => (
            format!("msifw {} {}", q.machine, q.accel),
            q.elapsed.as_secs_f64(),
        ),
        Source::Capture(c) => (format!("msifw capture {}", c.com1.display()), 0.0),
    };
    let scenarios_class = "msifw.scenarios";
    let keys = unique_keys(o.report.scenarios.iter().map(|s| scenario_key(&s.name, s.bdf.as_deref(), s.control)));
    let mut cases: Vec<Case> = o
        .report
        .scenarios
        .iter()
        .zip(keys)
        .map(|(s, key)| scenario_case_with(scenarios_class, key, s.result, &s.detail, s.deviation.as_ref()))
        .collect();
    let functions = o.report.functions.iter().map(|f| {
        (
            f.bdf.as_str(),
            format!("{}:{}", f.vendor, f.device),
            f.driver.as_deref(),
        )
    });
    cases.extend(device_cases("msifw.devices", functions, &o.oracle));
    cases.push(verdict_case("msifw.run", o.exit, &o.findings, time));
    Suite { name, time, cases }
}

/// The suite of a matrix cell: one case per scenario line it has, and its verdict.
pub fn cell_suite(cell: &Cell, label: &str) -> Suite {
    let class = format!("{label}.scenarios");
    let mut cases = Vec::new();
    for (key, value) in &cell.scenarios {
        let result = crate::matrix::result_of(value);
        let deviation = cell.deviations.get(key).map(String::as_str).unwrap_or("no known deviation recorded");
        let outcome = match result {
            Some(ScenarioResult::Pass | ScenarioResult::Xfail) => CaseOutcome::Passed,
            Some(ScenarioResult::Skip) => {
                CaseOutcome::Skipped("SKIP (the run's report has the reason)".into())
            }
            Some(ScenarioResult::Xpass) => CaseOutcome::Failed {
                message: format!("XPASS: passed where {deviation}"),
                detail: String::new(),
            },
            _ => CaseOutcome::Failed {
                message: value.clone(),
                detail: String::new(),
            },
        };
        let mut case = Case::new(&class, key.clone(), outcome);
        if result == Some(ScenarioResult::Xfail) {
            case.output = format!("XFAIL (expected failure, counted as passed): {deviation}");
        }
        cases.push(case);
    }
    let note = cell.note.clone().unwrap_or_default();
    let outcome = match cell.verdict.as_str() {
        "passed" => CaseOutcome::Passed,
        "skipped" => CaseOutcome::Skipped(note),
        v => CaseOutcome::Failed {
            message: format!("{v}: {note}"),
            detail: note,
        },
    };
    cases.push(Case {
        time: cell.seconds,
        ..Case::new(&format!("{label}.run"), "verdict", outcome)
    });
    Suite {
        name: format!("msifw matrix {label}"),
        time: cell.seconds,
        cases,
    }
}

/// Writes `suites` to `path`.
pub fn write(path: &std::path::Path, suites: &[Suite]) -> std::io::Result<()> {
    std::fs::write(path, render(suites))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::{Comparison, Entry};
    use std::time::Duration;

    fn entry(bdf: &str, id: &str) -> Entry {
        Entry {
            bdf: bdf.into(),
            id: id.into(),
        }
    }

    /// A minimal well-formedness check: every tag opened is closed in order, attribute values are
    /// quoted and hold no raw `<` or `&` that is not an entity.
    fn well_formed(xml: &str) -> Result<Vec<String>, String> {
        let body = xml
            .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
            .ok_or("no declaration")?;
        let mut stack: Vec<String> = Vec::new();
        let mut seen = Vec::new();
        let mut rest = body;
        while let Some(open) = rest.find('<') {
            let text = &rest[..open];
            check_text(text)?;
            let close = rest[open..].find('>').ok_or("unclosed tag")? + open;
            let tag = &rest[open + 1..close];
            if let Some(name) = tag.strip_prefix('/') {
                if stack.pop().as_deref() != Some(name) {
                    return Err(format!("</{name}> closes nothing open"));
                }
            } else {
                let self_closing = tag.ends_with('/');
                let tag = tag.trim_end_matches('/');
                let name = tag.split(' ').next().unwrap_or("").to_string();
                let attrs = &tag[name.len()..];
                // name="value" pairs, values without a raw quote, < or stray &.
                let mut a = attrs.trim();
                while !a.is_empty() {
                    let eq = a
                        .find("=\"")
                        .ok_or(format!("attribute without a quoted value in <{tag}>"))?;
                    let end = a[eq + 2..].find('"').ok_or("unterminated attribute")? + eq + 2;
                    check_text(&a[eq + 2..end])?;
                    if a[eq + 2..end].contains('<') || a[eq + 2..end].contains('\n') {
                        return Err(format!("raw < or newline in an attribute of <{name}>"));
                    }
                    a = a[end + 1..].trim_start();
                }
                seen.push(name.clone());
                if !self_closing {
                    stack.push(name);
                }
            }
            rest = &rest[close + 1..];
        }
        check_text(rest)?;
        if !stack.is_empty() {
            return Err(format!("left open: {stack:?}"));
        }
        Ok(seen)
    }

    fn check_text(text: &str) -> Result<(), String> {
        for (i, _) in text.match_indices('&') {
            let ent = &text[i..];
            if ![
                "&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#9;", "&#10;", "&#13;",
            ]
            .iter()
            .any(|e| ent.starts_with(e))
            {
                return Err(format!("stray & in {text:?}"));
            }
        }
        if text
            .chars()
            .any(|c| (c as u32) < 0x20 && !"\t\n\r".contains(c))
        {
            return Err(format!("control character in {text:?}"));
        }
        Ok(())
    }

    #[test]
    fn escaping() {
        assert_eq!(escape("a<b>&\"c'", false), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(
            escape("x\ny\tz\u{1}\u{1b}[0m", false),
            "x\ny\tz\u{FFFD}\u{FFFD}[0m"
        );
        assert_eq!(escape("x\ny", true), "x&#10;y");
        assert_eq!(escape("é ✓", true), "é ✓");
    }

    #[test]
    fn repeated_scenario_keys_become_unique() {
        let keys = ["msix-delivery 00:02.0", "write-order 00:02.0", "msix-delivery 00:02.0", "msix-delivery 00:02.0"];
        let got = unique_keys(keys.iter().map(|k| k.to_string()));
        assert_eq!(got, ["msix-delivery 00:02.0", "write-order 00:02.0", "msix-delivery 00:02.0 #2", "msix-delivery 00:02.0 #3"]);
    }

    #[test]
    fn a_run_becomes_a_suite_of_scenarios_devices_and_its_verdict() {
        let comparison = Comparison {
            qemu: 3,
            firmware: 3,
            phantom: vec![entry("00:05.0", "1234:11e8")],
            missing: vec![entry("00:06.0", "8086:100e")],
            ..Comparison::default()
        };
        let oracle = Oracle::Taken {
            comparison,
            cost: Duration::from_millis(1),
        };
        let mut cases = vec![
            scenario_case(
                "c",
                scenario_key("msix-delivery", Some("00:02.0"), false),
                ScenarioResult::Pass,
                "2 of 2 vectors",
            ),
            scenario_case(
                "c",
                scenario_key("shutdown", Some("00:03.0"), true),
                ScenarioResult::Fail,
                "a <stale> vector & \"more\"\nsecond line",
            ),
            scenario_case(
                "c",
                scenario_key("intx-storm", None, false),
                ScenarioResult::Skip,
                "no edu function",
            ),
        ];
        cases.extend(device_cases(
            "d",
            [
                ("00:02.0", "8086:10d3".to_string(), Some("e1000e")),
                ("00:05.0", "1234:11e8".to_string(), None),
            ],
            &oracle,
        ));
        cases.push(verdict_case(
            "r",
            Exit::Failed,
            &["the firmware reported 1 failed scenario(s)".into()],
            1.5,
        ));
        let suite = Suite {
            name: "msifw q35 tcg".into(),
            time: 1.5,
            cases,
        };
        assert_eq!(
            (suite.cases.len(), suite.failures(), suite.skipped()),
            (7, 4, 1)
        );
        let xml = render(&[suite]);
        let tags = well_formed(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
        assert_eq!(tags.iter().filter(|t| *t == "testcase").count(), 7);
        assert!(xml.contains(r#"<testsuites name="msifw" tests="7" failures="4" errors="0" skipped="1" time="1.500">"#), "{xml}");
        assert!(
            xml.contains(r#"<testcase name="msix-delivery 00:02.0" classname="c" time="0.000">"#),
            "{xml}"
        );
        assert!(xml.contains(r#"<failure message="a &lt;stale&gt; vector &amp; &quot;more&quot;" type="failure">a &lt;stale&gt; vector &amp; &quot;more&quot;"#), "{xml}");
        assert!(
            xml.contains(r#"<testcase name="shutdown 00:03.0 (control)""#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<testcase name="intx-storm -" classname="c" time="0.000">"#)
                && xml.contains(r#"<skipped message="no edu function"/>"#),
            "{xml}"
        );
        assert!(
            xml.contains(
                r#"<testcase name="00:02.0 8086:10d3 e1000e" classname="d" time="0.000"/>"#
            ),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<failure message="phantom: QEMU does not list 00:05.0 1234:11e8""#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<testcase name="00:06.0 8086:100e (missing from the report)""#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<testcase name="verdict" classname="r" time="1.500">"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<failure message="failed: the firmware reported"#),
            "{xml}"
        );
    }

    #[test]
    fn oracle_off_skips_device_cases_and_a_passed_run_passes_its_verdict() {
        let cases = device_cases(
            "d",
            [("00:02.0", "8086:10d3".to_string(), Some("e1000e"))],
            &Oracle::Off("decoded capture: no QEMU to ask".into()),
        );
        assert!(matches!(&cases[0].outcome, CaseOutcome::Skipped(w) if w.contains("oracle off")));
        let cases = device_cases(
            "d",
            [("00:02.0", "8086:10d3".to_string(), None)],
            &Oracle::NotTaken("no QMP".into()),
        );
        assert!(matches!(&cases[0].outcome, CaseOutcome::Failed { .. }));
        assert_eq!(
            verdict_case("r", Exit::Passed, &[], 0.2).outcome,
            CaseOutcome::Passed
        );
        assert!(
            matches!(verdict_case("r", Exit::Timeout, &["did not exit".into()], 9.0).outcome, CaseOutcome::Failed { message, .. } if message == "timeout: did not exit")
        );
        let xml = render(&[Suite {
            name: "empty".into(),
            time: 0.0,
            cases: vec![],
        }]);
        well_formed(&xml).unwrap();
        assert!(xml.contains(
            r#"<testsuite name="empty" tests="0" failures="0" errors="0" skipped="0" time="0.000">"#
        ));
    }

    #[test]
    fn a_matrix_cell_becomes_a_suite() {
        let cell = Cell {
            index: 0,
            qemu: "qemu".into(),
            qemu_version: "QEMU emulator version 7.2.22".into(),
            machine: "pc".into(),
            boot: "pvh".into(),
            accel: "kvm".into(),
            verdict: "skipped".into(),
            note: Some("KVM does not work here: /dev/kvm missing".into()),
            seconds: 0.0,
            scenarios: [("msi-delivery 00:04.0".to_string(), "FAIL".to_string())]
                .into_iter()
                .collect(),
            deviations: Default::default(),
        };
        let s = cell_suite(&cell, "pc/pvh/kvm");
        assert_eq!(s.name, "msifw matrix pc/pvh/kvm");
        assert_eq!((s.failures(), s.skipped()), (1, 1));
        assert_eq!(s.cases[1].classname, "pc/pvh/kvm.run");
        well_formed(&render(&[s])).unwrap();
        let cell = Cell {
            verdict: "passed".into(),
            note: None,
            scenarios: [("dest-logical-flat -".to_string(), "XFAIL".to_string()), ("dest-lowest-priority -".to_string(), "XPASS".to_string())]
                .into_iter()
                .collect(),
            deviations: [
                ("dest-logical-flat -".to_string(), "known deviation tcg-logical-apic-id-hole: r (ref) [QEMU 7.2.22 tcg q35]".to_string()),
                ("dest-lowest-priority -".to_string(), "known deviation tcg-lowest-priority-lowest-id: r (ref) [QEMU 7.2.22 tcg q35]".to_string()),
            ]
            .into_iter()
            .collect(),
            ..cell
        };
        let s = cell_suite(&cell, "q35/pvh/tcg");
        assert_eq!((s.failures(), s.skipped()), (1, 0), "the XPASS fails, the XFAIL passes");
        assert_eq!(s.cases[0].outcome, CaseOutcome::Passed);
        assert!(s.cases[0].output.starts_with("XFAIL (expected failure, counted as passed): known deviation tcg-logical-apic-id-hole"));
        assert!(matches!(&s.cases[1].outcome, CaseOutcome::Failed { message, .. } if message.starts_with("XPASS: passed where known deviation tcg-lowest-priority-lowest-id")));
        well_formed(&render(&[s])).unwrap();
    }
}
