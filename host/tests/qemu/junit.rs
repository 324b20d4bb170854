//! `cargo run -- --junit FILE` on a real boot: a test case per scenario line and per PCI function
//! beside the same run's `--json`, counts that agree with it, and a document CI systems parse
//! (testsuites / testsuite / testcase with name, classname and time).

use std::fs;

use crate::common;

use msifw_host::{cli_run, ScratchDir};
use serde_json::Value;

/// The value of attribute `name` in the element text `tag` (`<testcase name="..." ...`).
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(&tag[start..start + tag[start..].find('"')?])
}

#[test]
fn junit_beside_json_on_the_default_platform() {
    let dir = ScratchDir::create().unwrap();
    let (json, junit) = (dir.path().join("run.json"), dir.path().join("run.xml"));
    let slot = common::slot(msifw_host::Accel::Tcg);
    let code = cli_run([
        "--machine".into(),
        "q35".into(),
        "--timeout".into(),
        "120".into(),
        "--json".into(),
        json.clone().into_os_string(),
        "--junit".into(),
        junit.clone().into_os_string(),
    ]);
    drop(slot);
    let doc: Value = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    let xml = fs::read_to_string(&junit).unwrap();
    assert_eq!(
        code, 0,
        "the default run did not pass: {}\n{xml}",
        doc["problems"]
    );
    assert!(
        xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites "),
        "{xml}"
    );
    assert!(xml.trim_end().ends_with("</testsuites>"), "{xml}");
    assert_eq!(
        xml.matches("<testsuite ").count(),
        1,
        "one suite per run: {xml}"
    );

    // Each case's start tag, from the space before its first attribute.
    let cases: Vec<&str> = xml
        .match_indices("<testcase ")
        .map(|(i, _)| &xml[i + 9..i + xml[i..].find('>').unwrap()])
        .collect();
    for c in &cases {
        for a in ["name", "classname", "time"] {
            assert!(
                attr(c, a).is_some_and(|v| !v.is_empty()),
                "<testcase {c}> has no {a}"
            );
        }
        assert!(attr(c, "time").unwrap().parse::<f64>().is_ok(), "{c}");
    }
    let named = |class: &str| {
        cases
            .iter()
            .filter(|c| attr(c, "classname") == Some(class))
            .count()
    };
    let scenarios = doc["scenarios"].as_array().unwrap();
    let functions = doc["functions"].as_array().unwrap();
    assert_eq!(named("msifw.scenarios"), scenarios.len(), "{xml}");
    assert_eq!(named("msifw.devices"), functions.len(), "{xml}");
    assert_eq!(named("msifw.run"), 1, "{xml}");
    for s in scenarios {
        let key = format!(
            "{} {}{}",
            s["name"].as_str().unwrap(),
            s["bdf"].as_str().unwrap_or("-"),
            if s["control"] == true {
                " (control)"
            } else {
                ""
            }
        );
        assert!(
            cases.iter().any(|c| attr(c, "name") == Some(key.as_str())),
            "no case {key:?}: {xml}"
        );
    }
    for f in functions {
        let bdf = f["bdf"].as_str().unwrap();
        assert!(
            cases
                .iter()
                .any(|c| attr(c, "name").is_some_and(|n| n.starts_with(bdf))),
            "no case for {bdf}: {xml}"
        );
    }
    // The totals are the report's: every skip a <skipped/>, no failure in a passing run.
    let summary = &doc["summary"];
    let suites = &xml[xml.find("<testsuites ").unwrap() + 11..];
    let suites = &suites[..suites.find('>').unwrap()];
    assert_eq!(attr(suites, "failures"), Some("0"), "{xml}");
    assert_eq!(
        attr(suites, "skipped").map(|s| s.parse::<u64>().unwrap()),
        summary["skipped"].as_u64(),
        "{xml}"
    );
    assert_eq!(
        xml.matches("<skipped ").count() as u64,
        summary["skipped"].as_u64().unwrap(),
        "{xml}"
    );
    assert_eq!(
        attr(suites, "tests").map(|s| s.parse::<usize>().unwrap()),
        Some(cases.len())
    );
    assert!(!xml.contains("<failure"), "{xml}");
}
