//! The oracle of every QEMU run: the firmware's function list (BDF, vendor, device) held against
//! QEMU's own view of the same machine, QMP `query-pci` taken on the live VM while the firmware waits
//! with bus numbers final (`oracle` on its command line, src/app/oracle.rs; docs/protocol.md). A
//! function QEMU has and the report lacks is *missing*, one the report has and QEMU lacks a *phantom*;
//! either fails the run, and so does a firmware that says its list is incomplete.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_json::{json, Value};

use crate::qmp::QemuFunction;
use crate::report::Report;

/// The firmware command-line word that asks for the wait (src/cmdline.rs).
pub const WORD: &str = "oracle";
/// The COM1 text the firmware prints when bus numbers are final and it waits for the host
/// (src/app/oracle.rs).
pub const MARKER: &str = "oracle: bus numbers final, waiting for the host's query-pci";
/// Text in a firmware `problem` record's detail that says a function was left out of the list
/// (`pci` problems such as "function vanished while being read (all-ones); not listed"): the list is
/// then incomplete, whatever the comparison says.
pub const NOT_LISTED: &str = "not listed";

/// One function in the comparison.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// `"00:02.0"`.
    pub bdf: String,
    /// `"8086:10d3"`.
    pub id: String,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.bdf, self.id)
    }
}

/// The firmware's list against QEMU's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Functions QEMU lists.
    pub qemu: usize,
    /// Function records in the report.
    pub firmware: usize,
    /// In QEMU's list, not in the report (or there with other ids).
    pub missing: Vec<Entry>,
    /// In the report, not in QEMU's list (or there with other ids, or reported twice).
    pub phantom: Vec<Entry>,
    /// The firmware's own problems saying it left functions out ([`NOT_LISTED`]).
    pub incomplete: Vec<String>,
    /// Functions QEMU lists on a slot without function 0, which no OS finds (the PCI spec requires
    /// function 0 of every device, and discovery reads it first, as Linux's `pci_scan_slot`): not
    /// required of the firmware, only shown.
    pub undiscoverable: Vec<Entry>,
}

impl Comparison {
    /// Whether the lists agree and the firmware does not say its list is incomplete.
    pub fn agrees(&self) -> bool {
        self.missing.is_empty() && self.phantom.is_empty() && self.incomplete.is_empty()
    }
}

/// Compares QEMU's functions with the report's function records by BDF, vendor and device.
pub fn compare(qemu: &[QemuFunction], report: &Report) -> Comparison {
    let mut theirs: BTreeMap<String, String> = BTreeMap::new();
    let mut undiscoverable = Vec::new();
    for q in qemu {
        let entry = Entry {
            bdf: q.bdf(),
            id: q.id(),
        };
        if qemu
            .iter()
            .any(|o| (o.bus, o.slot, o.function) == (q.bus, q.slot, 0))
        {
            theirs.insert(entry.bdf, entry.id);
        } else {
            undiscoverable.push(entry);
        }
    }
    let mut ours: BTreeMap<String, String> = BTreeMap::new();
    let mut phantom = Vec::new();
    for f in &report.functions {
        let id = format!(
            "{}:{}",
            f.vendor.to_ascii_lowercase(),
            f.device.to_ascii_lowercase()
        );
        if ours.insert(f.bdf.clone(), id.clone()).is_some() {
            phantom.push(Entry {
                bdf: f.bdf.clone(),
                id: format!("{id} (reported twice)"),
            });
        }
    }
    let missing: Vec<Entry> = theirs
        .iter()
        .filter(|(bdf, id)| ours.get(*bdf) != Some(*id))
        .map(|(bdf, id)| Entry {
            bdf: bdf.clone(),
            id: id.clone(),
        })
        .collect();
    phantom.extend(
        ours.iter()
            .filter(|(bdf, id)| theirs.get(*bdf) != Some(*id))
            // Reporting a function of a slot without function 0 anyway is not inventing it.
            .filter(|(bdf, _)| !undiscoverable.iter().any(|e| &e.bdf == *bdf))
            .map(|(bdf, id)| Entry {
                bdf: bdf.clone(),
                id: id.clone(),
            }),
    );
    phantom.sort();
    let incomplete = report
        .problems
        .iter()
        .filter(|p| p.detail.contains(NOT_LISTED))
        .map(|p| format!("[{}] {}", p.source, p.detail))
        .collect();
    Comparison {
        qemu: qemu.len(),
        firmware: report.functions.len(),
        missing,
        phantom,
        incomplete,
        undiscoverable,
    }
}

/// What the oracle did in one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Oracle {
    /// Not asked for (`--no-oracle`, `bench`) or not possible (a decoded capture: no QEMU); the reason.
    Off(String),
    /// Asked for, but QEMU's view could not be had; why. Fails the run.
    NotTaken(String),
    /// QEMU's view, taken while the firmware waited, compared with the report.
    Taken {
        /// The comparison.
        comparison: Comparison,
        /// Wall time the firmware waited for the host, summed over every time it asked (a crash-restart
        /// run asks once per stage; the last answer is compared).
        cost: Duration,
    },
}

impl Oracle {
    /// Whether the oracle fails the run.
    pub fn failed(&self) -> bool {
        match self {
            Oracle::Off(_) => false,
            Oracle::NotTaken(_) => true,
            Oracle::Taken { comparison, .. } => !comparison.agrees(),
        }
    }

    /// The wall time it added to the run (zero when off).
    pub fn cost(&self) -> Duration {
        match self {
            Oracle::Taken { cost, .. } => *cost,
            _ => Duration::ZERO,
        }
    }

    /// The `oracle:` line for the user.
    pub fn line(&self) -> String {
        match self {
            Oracle::Off(why) => format!("oracle: off ({why})"),
            Oracle::NotTaken(why) => {
                format!("oracle: FAILED: QEMU's query-pci could not be compared: {why}")
            }
            Oracle::Taken {
                comparison: c,
                cost,
            } => {
                let ms = cost.as_secs_f64() * 1000.0;
                let aside = if c.undiscoverable.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; not required: {} (QEMU has no function 0 on the slot, so no OS discovers it)",
                        c.undiscoverable.iter().map(Entry::to_string).collect::<Vec<_>>().join(", ")
                    )
                };
                if c.agrees() {
                    return format!(
                        "oracle: the firmware's {} functions are QEMU's query-pci (BDF, vendor, device; taken with bus numbers final; cost {ms:.1} ms){aside}",
                        c.firmware
                    );
                }
                let list = |v: &[Entry]| {
                    if v.is_empty() {
                        "none".to_string()
                    } else {
                        v.iter()
                            .map(Entry::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                };
                let mut line = format!(
                    "oracle: FAILED: the firmware's function list differs from QEMU's query-pci ({} functions reported, QEMU has {}): missing {}; phantom {}",
                    c.firmware,
                    c.qemu,
                    list(&c.missing),
                    list(&c.phantom)
                );
                if !c.incomplete.is_empty() {
                    line.push_str(&format!(
                        "; the firmware says its list is incomplete: {}",
                        c.incomplete.join("; ")
                    ));
                }
                line.push_str(&format!(" (cost {ms:.1} ms){aside}"));
                line
            }
        }
    }

    /// The `oracle` object of the `--json` document.
    pub fn to_json(&self) -> Value {
        let entries = |v: &[Entry]| {
            v.iter()
                .map(|e| json!({"bdf": e.bdf, "id": e.id}))
                .collect::<Vec<_>>()
        };
        match self {
            Oracle::Off(why) => {
                json!({"enabled": false, "reason": why, "passed": null, "cost_ms": 0.0})
            }
            Oracle::NotTaken(why) => {
                json!({"enabled": true, "passed": false, "error": why, "cost_ms": 0.0})
            }
            Oracle::Taken {
                comparison: c,
                cost,
            } => json!({
                "enabled": true,
                "passed": c.agrees(),
                "qemu_functions": c.qemu,
                "firmware_functions": c.firmware,
                "missing": entries(&c.missing),
                "phantom": entries(&c.phantom),
                "incomplete": c.incomplete,
                "undiscoverable": entries(&c.undiscoverable),
                "cost_ms": cost.as_secs_f64() * 1000.0,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Problem;

    fn qemu(bdf: (u8, u8, u8), vendor: u16, device: u16) -> QemuFunction {
        QemuFunction {
            bus: bdf.0,
            slot: bdf.1,
            function: bdf.2,
            vendor,
            device,
            class: 0,
            subclass: 0,
            desc: None,
            qdev_id: String::new(),
            regions: Vec::new(),
        }
    }

    fn report(functions: &[(&str, &str, &str)]) -> Report {
        let mut r = Report::new();
        for (bdf, vendor, device) in functions {
            let line = format!(
                r#"msifw-report {{"kind":"function","bdf":"{bdf}","vendor":"{vendor}","device":"{device}","class":"020000","header_type":0,"bars":[],"capabilities":[],"irq_mode":"none","vectors":[],"interrupts":0,"driver":null,"problems":[]}}"#
            );
            r.push_line(&line)
                .expect("a report line")
                .expect("a function record");
        }
        r
    }

    fn entries(v: &[Entry]) -> Vec<String> {
        v.iter().map(Entry::to_string).collect()
    }

    #[test]
    fn the_same_functions_agree() {
        let q = [
            qemu((0, 0, 0), 0x8086, 0x29c0),
            qemu((0, 2, 0), 0x8086, 0x10d3),
            qemu((1, 0, 0), 0x1234, 0x11e8),
        ];
        // Order does not matter; upper-case hex in a report does not either.
        let r = report(&[
            ("01:00.0", "1234", "11E8"),
            ("00:00.0", "8086", "29c0"),
            ("00:02.0", "8086", "10d3"),
        ]);
        let c = compare(&q, &r);
        assert!(c.agrees(), "{c:?}");
        assert_eq!((c.qemu, c.firmware), (3, 3));
        let o = Oracle::Taken {
            comparison: c,
            cost: Duration::from_micros(12_500),
        };
        assert!(!o.failed());
        assert!(
            o.line()
                .starts_with("oracle: the firmware's 3 functions are QEMU's query-pci"),
            "{}",
            o.line()
        );
        assert!(o.line().contains("cost 12.5 ms"), "{}", o.line());
        assert_eq!(o.to_json()["passed"], true);
        assert_eq!(o.to_json()["cost_ms"], 12.5);
    }

    #[test]
    fn missing_phantom_changed_and_duplicate_functions() {
        // QEMU has an expander bus the firmware did not reach (02:00.0), and a function whose ids the
        // firmware got wrong (00:03.0); the firmware invented 00:07.0 and listed 00:02.0 twice.
        let q = [
            qemu((0, 2, 0), 0x8086, 0x10d3),
            qemu((0, 3, 0), 0x1b36, 0x0010),
            qemu((2, 0, 0), 0x1234, 0x11e8),
        ];
        let r = report(&[
            ("00:02.0", "8086", "10d3"),
            ("00:02.0", "8086", "10d3"),
            ("00:03.0", "1b36", "ffff"),
            ("00:07.0", "8086", "2922"),
        ]);
        let c = compare(&q, &r);
        assert!(!c.agrees());
        assert_eq!(
            entries(&c.missing),
            ["00:03.0 1b36:0010", "02:00.0 1234:11e8"]
        );
        assert_eq!(
            entries(&c.phantom),
            [
                "00:02.0 8086:10d3 (reported twice)",
                "00:03.0 1b36:ffff",
                "00:07.0 8086:2922"
            ]
        );
        let o = Oracle::Taken {
            comparison: c,
            cost: Duration::from_millis(3),
        };
        assert!(o.failed());
        let line = o.line();
        assert!(line.starts_with("oracle: FAILED: "), "{line}");
        assert!(line.contains("missing 00:03.0 1b36:0010, 02:00.0 1234:11e8; phantom 00:02.0 8086:10d3 (reported twice), 00:03.0 1b36:ffff, 00:07.0 8086:2922"), "{line}");
        let j = o.to_json();
        assert_eq!(j["passed"], false);
        assert_eq!(
            j["missing"][1],
            json!({"bdf": "02:00.0", "id": "1234:11e8"})
        );
        assert_eq!(j["phantom"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn an_incomplete_list_fails_even_when_it_matches() {
        let q = [qemu((0, 2, 0), 0x8086, 0x10d3)];
        let mut r = report(&[("00:02.0", "8086", "10d3")]);
        r.problems.push(Problem {
            source: "pci".into(),
            detail: "01:00.0: function vanished while being read (all-ones); not listed".into(),
        });
        r.problems.push(Problem {
            source: "cmdline".into(),
            detail: "unknown option 'x' ignored".into(),
        });
        let c = compare(&q, &r);
        assert!(c.missing.is_empty() && c.phantom.is_empty());
        assert!(!c.agrees());
        assert_eq!(
            c.incomplete,
            ["[pci] 01:00.0: function vanished while being read (all-ones); not listed"]
        );
        let o = Oracle::Taken {
            comparison: c,
            cost: Duration::ZERO,
        };
        assert!(
            o.line()
                .contains("the firmware says its list is incomplete: [pci] 01:00.0"),
            "{}",
            o.line()
        );
    }

    #[test]
    fn a_function_without_function_0_is_not_required() {
        // QEMU takes `-device edu,addr=05.1` with nothing at 05.0; no OS discovers it.
        let q = [
            qemu((0, 2, 0), 0x8086, 0x10d3),
            qemu((0, 5, 1), 0x1234, 0x11e8),
        ];
        let c = compare(&q, &report(&[("00:02.0", "8086", "10d3")]));
        assert!(c.agrees(), "{c:?}");
        assert_eq!(entries(&c.undiscoverable), ["00:05.1 1234:11e8"]);
        let o = Oracle::Taken {
            comparison: c,
            cost: Duration::ZERO,
        };
        assert!(
            o.line()
                .contains("not required: 00:05.1 1234:11e8 (QEMU has no function 0"),
            "{}",
            o.line()
        );
        // Reporting it anyway is not a phantom either; function 1 of a slot with function 0 is required.
        let c = compare(
            &q,
            &report(&[("00:02.0", "8086", "10d3"), ("00:05.1", "1234", "11e8")]),
        );
        assert!(c.agrees(), "{c:?}");
        let q = [
            qemu((0, 5, 0), 0x1234, 0x11e8),
            qemu((0, 5, 1), 0x1234, 0x11e8),
        ];
        let c = compare(&q, &report(&[("00:05.0", "1234", "11e8")]));
        assert_eq!(entries(&c.missing), ["00:05.1 1234:11e8"]);
    }

    #[test]
    fn no_pci_at_all_agrees_and_off_or_not_taken() {
        assert!(compare(&[], &Report::new()).agrees());
        let off = Oracle::Off("--no-oracle".into());
        assert!(!off.failed() && off.cost().is_zero());
        assert_eq!(off.line(), "oracle: off (--no-oracle)");
        assert_eq!(off.to_json()["enabled"], false);
        let not = Oracle::NotTaken("the firmware never said its bus numbers were final".into());
        assert!(not.failed());
        assert!(not.line().starts_with("oracle: FAILED: "));
        assert_eq!(not.to_json()["passed"], false);
    }
}
