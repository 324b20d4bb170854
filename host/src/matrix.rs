//! `cargo run -- matrix`: the scenario set (`scenario=all`, which the launcher splits into the boots it
//! needs) over machine types, boot paths (PVH, the GRUB ISO under SeaBIOS, under OVMF), accelerators
//! (TCG, and KVM where it works) and one or more QEMU binaries, with a progress line per run, a table of
//! pass/fail per scenario and device, and a JSON document.
//!
//! A CI fan-out splits a matrix with `--shard K/N` (this machine runs cells K-1, K-1+N, K-1+2N, ... of
//! the plan, counted from 0 in the order qemu, accel, machine, boot) and joins the shards' JSON with
//! `--merge` ([`merge`]), which insists on every cell of the plan exactly once.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::qemu::{Accel, BootPath, Machine, RunConfig};
use crate::report::ScenarioResult;
use crate::run::{run, run_all};

/// What the matrix covers.
#[derive(Clone, Debug, PartialEq)]
pub struct MatrixOptions {
    /// QEMU binaries (default: `qemu-system-x86_64` from PATH).
    pub qemus: Vec<PathBuf>,
    /// Machine types.
    pub machines: Vec<Machine>,
    /// Boot paths.
    pub boots: Vec<BootPath>,
    /// Accelerators; KVM cells are skipped, with the reason, where KVM does not work.
    pub accels: Vec<Accel>,
    /// The firmware command line of every cell.
    pub append: String,
    /// Where to write the JSON.
    pub json: Option<PathBuf>,
    /// Limit per QEMU boot.
    pub timeout: Duration,
    /// The oracle on every boot (off with `--no-oracle`).
    pub oracle: bool,
    /// Where to write JUnit XML (a suite per cell).
    pub junit: Option<PathBuf>,
    /// Run only this shard's cells.
    pub shard: Option<Shard>,
}

/// `--shard K/N`: the cells whose index `i` (from 0, in plan order) has `i % N == K - 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Which, 1..=n.
    pub k: usize,
    /// How many.
    pub n: usize,
}

impl Shard {
    /// Parses `K/N` with 1 <= K <= N.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (k, n) = s.split_once('/').ok_or_else(|| format!("`{s}` is not K/N"))?;
        let num = |v: &str| v.trim().parse::<usize>().map_err(|_| format!("`{v}` in `{s}` is not a whole number"));
        let (k, n) = (num(k)?, num(n)?);
        if n == 0 || k == 0 || k > n {
            return Err(format!("shard {k}/{n}: K must be 1 to N (shards are counted from 1)"));
        }
        Ok(Shard { k, n })
    }

    /// Whether cell `index` is this shard's.
    pub fn has(self, index: usize) -> bool {
        index % self.n == self.k - 1
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

/// One cell of the plan, before it runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planned {
    /// Its index.
    pub index: usize,
    /// QEMU binary.
    pub qemu: String,
    /// Machine type.
    pub machine: String,
    /// Boot path.
    pub boot: String,
    /// Accelerator.
    pub accel: String,
}

impl Planned {
    fn label(&self) -> String {
        format!("{}/{}/{} ({})", self.machine, self.boot, self.accel, self.qemu)
    }
}

/// Every cell of the matrix, in the order they run and are numbered.
pub fn plan(opts: &MatrixOptions) -> Vec<Planned> {
    let mut cells = Vec::new();
    for qemu in &opts.qemus {
        for &accel in &opts.accels {
            for &machine in &opts.machines {
                for &boot in &opts.boots {
                    let index = cells.len();
                    cells.push(Planned { index, qemu: qemu.display().to_string(), machine: machine.as_str().into(), boot: boot.as_str().into(), accel: accel.as_str().into() });
                }
            }
        }
    }
    cells
}

impl Default for MatrixOptions {
    fn default() -> Self {
        MatrixOptions {
            qemus: vec![PathBuf::from(crate::qemu::DEFAULT_QEMU)],
            machines: vec![Machine::Q35, Machine::Pc],
            boots: vec![BootPath::Pvh, BootPath::IsoBios, BootPath::IsoUefi],
            accels: vec![Accel::Tcg, Accel::Kvm],
            append: "scenario=all".into(),
            json: None,
            oracle: true,
            timeout: Duration::from_secs(180),
            junit: None,
            shard: None,
        }
    }
}

/// One cell: a combination and what came of it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cell {
    /// Its index in the plan ([`plan`]).
    #[serde(default)]
    pub index: usize,
    /// QEMU binary.
    pub qemu: String,
    /// Its version line.
    pub qemu_version: String,
    /// Machine type.
    pub machine: String,
    /// Boot path.
    pub boot: String,
    /// Accelerator.
    pub accel: String,
    /// `passed`, `failed`, `timeout`, `crash`, ..., or `skipped`.
    pub verdict: String,
    /// Why it was skipped or could not run.
    pub note: Option<String>,
    /// Wall time of its boots.
    pub seconds: f64,
    /// Scenario results: `name bdf` (or `name -`), with ` (control)` for controls -> PASS/FAIL/SKIP, or
    /// XFAIL/XPASS where a known deviation judged them.
    pub scenarios: BTreeMap<String, String>,
    /// For the XFAIL and XPASS results: the same key -> `known deviation ID: reason (reference) [platform]`.
    #[serde(default)]
    pub deviations: BTreeMap<String, String>,
}

impl Cell {
    /// Short column label.
    pub fn label(&self, qemus: usize) -> String {
        let mut l = format!("{}/{}/{}", self.machine, self.boot, self.accel);
        if qemus > 1 {
            let _ = write!(l, "@{}", self.qemu_version.split_whitespace().nth(3).unwrap_or(&self.qemu));
        }
        l
    }
}

/// The version line of a QEMU binary, or why there is none.
pub fn qemu_version(qemu: &Path) -> Result<String, String> {
    let out = std::process::Command::new(qemu).arg("-version").output().map_err(|e| format!("{}: {e}", qemu.display()))?;
    String::from_utf8_lossy(&out.stdout).lines().next().map(str::to_string).ok_or_else(|| format!("{}: no version", qemu.display()))
}

/// Whether KVM works with `qemu` here: /dev/kvm usable and a plain boot passing. `Err` says why not.
pub fn kvm_works(qemu: &Path) -> Result<(), String> {
    let dev = Path::new("/dev/kvm");
    if std::fs::OpenOptions::new().read(true).write(true).open(dev).is_err() {
        return Err("/dev/kvm missing or not accessible".into());
    }
    let cfg = RunConfig::new().accel(Accel::Kvm).qemu(qemu).echo(false).timeout(Duration::from_secs(60));
    match run(&cfg) {
        Ok(o) if o.passed() => Ok(()),
        Ok(o) => Err(format!("a plain boot under KVM ended {} ({})", o.exit.as_str(), o.findings.first().map(String::as_str).unwrap_or(""))),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs every cell (of the shard, with [`MatrixOptions::shard`]), printing a progress line per cell to
/// stderr.
pub fn matrix(opts: &MatrixOptions) -> (Vec<Cell>, Value, String) {
    let plan = plan(opts);
    let mine: Vec<&Planned> = plan.iter().filter(|p| opts.shard.is_none_or(|s| s.has(p.index))).collect();
    let mut cells = Vec::new();
    let total = mine.len();
    for qemu in &opts.qemus {
        let name = qemu.display().to_string();
        let todo: Vec<&&Planned> = mine.iter().filter(|p| p.qemu == name).collect();
        if todo.is_empty() {
            continue;
        }
        let version = qemu_version(qemu);
        let kvm = if todo.iter().any(|p| p.accel == Accel::Kvm.as_str()) && version.is_ok() { Some(kvm_works(qemu)) } else { None };
        for p in todo {
            let (Some(machine), Some(boot), Some(accel)) = (Machine::parse(&p.machine), BootPath::parse(&p.boot), Accel::parse(&p.accel)) else {
                unreachable!("the plan holds the options' own names")
            };
            let n = cells.len() + 1;
            let mut cell = Cell {
                index: p.index,
                qemu: name.clone(),
                qemu_version: version.clone().unwrap_or_default(),
                machine: p.machine.clone(),
                boot: p.boot.clone(),
                accel: p.accel.clone(),
                verdict: "skipped".into(),
                note: None,
                seconds: 0.0,
                scenarios: BTreeMap::new(),
                deviations: BTreeMap::new(),
            };
            let skip = match (&version, accel, &kvm) {
                (Err(e), _, _) => Some(e.clone()),
                (_, Accel::Kvm, Some(Err(why))) => Some(format!("KVM does not work here: {why}")),
                _ => None,
            };
            if let Some(why) = skip {
                eprintln!("matrix [{n}/{total}] {}: skipped ({why})", cell.label(opts.qemus.len()));
                cell.note = Some(why);
                cells.push(cell);
                continue;
            }
            let cfg = RunConfig::new()
                .machine(machine)
                .boot(boot)
                .accel(accel)
                .qemu(qemu)
                .append(opts.append.clone())
                .oracle(opts.oracle)
                .echo(false)
                .timeout(opts.timeout);
            let start = Instant::now();
            match run_all(&cfg) {
                Ok(o) => {
                    cell.verdict = o.exit.as_str().into();
                    for s in &o.report.scenarios {
                        let key = format!("{} {}{}", s.name, s.bdf.as_deref().unwrap_or("-"), if s.control { " (control)" } else { "" });
                        // A scenario reported twice (several boots) keeps its worst result.
                        let value = s.result.label().to_string();
                        let worse = |old: &String| rank(old) > rank(&value);
                        if !cell.scenarios.get(&key).is_some_and(worse) {
                            if let Some(d) = &s.deviation {
                                let note = format!("known deviation {}: {} ({}) [{}]", d.id, d.reason, d.reference, d.platform);
                                cell.deviations.insert(key.clone(), note);
                            } else {
                                cell.deviations.remove(&key);
                            }
                            cell.scenarios.insert(key, value);
                        }
                    }
                    if !o.passed() {
                        cell.note = o.findings.first().cloned();
                    }
                }
                Err(e) => {
                    cell.verdict = "error".into();
                    cell.note = Some(e.to_string());
                }
            }
            cell.seconds = start.elapsed().as_secs_f64();
            let failed = cell.scenarios.values().filter(|v| *v == "FAIL" || *v == "XPASS").count();
            eprintln!(
                "matrix [{n}/{total}] {}: {} ({} scenarios, {failed} failed) in {:.1} s",
                cell.label(opts.qemus.len()),
                cell.verdict,
                cell.scenarios.len(),
                cell.seconds
            );
            cells.push(cell);
        }
    }
    cells.sort_by_key(|c| c.index);
    let table = render(&cells, opts.qemus.len());
    let json = json!({
        "append": opts.append,
        "oracle": opts.oracle,
        "cells": cells,
        "shard": opts.shard.map(|s| s.to_string()),
        "plan": plan,
    });
    (cells, json, table)
}

/// What [`merge`] made of the shards' JSON.
#[derive(Clone, Debug)]
pub struct Merged {
    /// Every cell of the plan, in order.
    pub cells: Vec<Cell>,
    /// The joined JSON document (as `matrix --json` writes it, `shard` null, `merged_from` naming the files).
    pub json: Value,
    /// How many QEMU binaries the plan has (for the column labels).
    pub qemus: usize,
}

/// Joins the JSON of `matrix --shard K/N --json` runs, given as (file name, document): they must be of
/// one plan (same cells, firmware command line and oracle setting), and together hold each cell of it
/// exactly once. The error says which cell is missing or duplicated, and where.
pub fn merge(docs: &[(String, Value)]) -> Result<Merged, String> {
    let Some((first_name, first)) = docs.first() else {
        return Err("no shard to merge".into());
    };
    let plan_of = |name: &str, doc: &Value| -> Result<Vec<Planned>, String> {
        let plan = doc.get("plan").ok_or_else(|| format!("{name}: no `plan` (not the JSON of `matrix --json`, or of a version before --shard)"))?;
        serde_json::from_value(plan.clone()).map_err(|e| format!("{name}: `plan`: {e}"))
    };
    let plan = plan_of(first_name, first)?;
    let mut by_index: BTreeMap<usize, (Cell, &str)> = BTreeMap::new();
    for (name, doc) in docs {
        if plan_of(name, doc)? != plan {
            return Err(format!("{name} is of another matrix than {first_name} (its cells differ)"));
        }
        for key in ["append", "oracle"] {
            if doc.get(key) != first.get(key) {
                return Err(format!("{name} has another `{key}` than {first_name}: {} against {}", doc.get(key).unwrap_or(&Value::Null), first.get(key).unwrap_or(&Value::Null)));
            }
        }
        let cells: Vec<Cell> = serde_json::from_value(doc.get("cells").cloned().unwrap_or(Value::Null)).map_err(|e| format!("{name}: `cells`: {e}"))?;
        for cell in cells {
            let Some(p) = plan.get(cell.index) else {
                return Err(format!("{name}: cell {} is not in the plan of {} cells", cell.index, plan.len()));
            };
            if (p.qemu.as_str(), p.machine.as_str(), p.boot.as_str(), p.accel.as_str()) != (cell.qemu.as_str(), cell.machine.as_str(), cell.boot.as_str(), cell.accel.as_str()) {
                return Err(format!("{name}: cell {} is {}/{}/{} but the plan has {}", cell.index, cell.machine, cell.boot, cell.accel, p.label()));
            }
            if let Some((_, other)) = by_index.get(&cell.index) {
                return Err(format!("cell {} ({}) is in both {other} and {name}", cell.index, p.label()));
            }
            by_index.insert(cell.index, (cell, name));
        }
    }
    let missing: Vec<String> = plan.iter().filter(|p| !by_index.contains_key(&p.index)).map(|p| format!("{} ({})", p.index, p.label())).collect();
    if !missing.is_empty() {
        return Err(format!("{} of {} cells are in no shard: {}", missing.len(), plan.len(), missing.join(", ")));
    }
    let cells: Vec<Cell> = by_index.into_values().map(|(c, _)| c).collect();
    let mut qemus: Vec<&str> = plan.iter().map(|p| p.qemu.as_str()).collect();
    qemus.dedup();
    let qemus = qemus.len();
    let json = json!({
        "append": first.get("append"),
        "oracle": first.get("oracle"),
        "cells": cells,
        "shard": Value::Null,
        "plan": plan,
        "merged_from": docs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
    });
    Ok(Merged { cells, json, qemus })
}

/// The table: one row per scenario and device, one column per cell.
pub fn render(cells: &[Cell], qemus: usize) -> String {
    let mut rows: Vec<&String> = cells.iter().flat_map(|c| c.scenarios.keys()).collect();
    rows.sort();
    rows.dedup();
    let labels: Vec<String> = cells.iter().map(|c| c.label(qemus)).collect();
    let width = rows.iter().map(|r| r.len()).max().unwrap_or(8).max(8);
    // Four characters a column, five when an XFAIL or XPASS is among the results.
    let col = cells.iter().flat_map(|c| c.scenarios.values()).map(String::len).max().unwrap_or(4).max(4);
    let mut t = String::new();
    // Column headers, one per line, numbered; the table uses the numbers.
    for (i, (l, c)) in labels.iter().zip(cells).enumerate() {
        let note = c.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
        let _ = writeln!(t, "[{}] {l}: {}{note}, {:.1} s", i + 1, c.verdict, c.seconds);
    }
    let _ = write!(t, "\n{:<width$}", "scenario / device");
    for i in 0..cells.len() {
        let _ = write!(t, " {:>col$}", format!("[{}]", i + 1));
    }
    t.push('\n');
    for r in rows {
        let _ = write!(t, "{r:<width$}");
        for c in cells {
            let v = c.scenarios.get(r).map_or(if c.verdict == "skipped" { "" } else { "-" }, String::as_str);
            let _ = write!(t, " {v:>col$}");
        }
        t.push('\n');
    }
    let _ = write!(t, "{:<width$}", "verdict");
    for c in cells {
        let v = match c.verdict.as_str() {
            "passed" => "ok",
            "skipped" => "skip",
            _ => "FAIL",
        };
        let _ = write!(t, " {v:>col$}");
    }
    t.push('\n');
    t
}

/// Whether every cell that ran passed.
pub fn all_passed(cells: &[Cell]) -> bool {
    cells.iter().all(|c| c.verdict == "passed" || c.verdict == "skipped")
}

/// Counts of scenario results over every cell, for a summary line: passed, failed, skipped, with an
/// XFAIL counted as passed and an XPASS as failed, as the exit status counts them ([`deviation_totals`]
/// has them apart).
pub fn totals(cells: &[Cell]) -> (usize, usize, usize) {
    let all = cells.iter().flat_map(|c| c.scenarios.values());
    let (mut p, mut f, mut s) = (0, 0, 0);
    for v in all {
        match v.as_str() {
            "PASS" | "XFAIL" => p += 1,
            "FAIL" | "XPASS" => f += 1,
            _ => s += 1,
        }
    }
    (p, f, s)
}

/// XFAIL and XPASS results over every cell.
pub fn deviation_totals(cells: &[Cell]) -> (usize, usize) {
    let all = cells.iter().flat_map(|c| c.scenarios.values());
    all.fold((0, 0), |(xf, xp), v| match v.as_str() {
        "XFAIL" => (xf + 1, xp),
        "XPASS" => (xf, xp + 1),
        _ => (xf, xp),
    })
}

/// How bad a result label is, for a scenario reported by several boots of a cell (the worst is kept):
/// SKIP, PASS, XFAIL, XPASS, FAIL.
fn rank(label: &str) -> u8 {
    match label {
        "SKIP" => 0,
        "PASS" => 1,
        "XFAIL" => 2,
        "XPASS" => 3,
        _ => 4,
    }
}

/// A result label back to its enum (for callers that want it typed).
pub fn result_of(label: &str) -> Option<ScenarioResult> {
    match label {
        "PASS" => Some(ScenarioResult::Pass),
        "FAIL" => Some(ScenarioResult::Fail),
        "SKIP" => Some(ScenarioResult::Skip),
        "XFAIL" => Some(ScenarioResult::Xfail),
        "XPASS" => Some(ScenarioResult::Xpass),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(machine: &str, verdict: &str, results: &[(&str, &str)]) -> Cell {
        Cell {
            index: 0,
            qemu: "qemu".into(),
            qemu_version: "QEMU emulator version 7.2.22".into(),
            machine: machine.into(),
            boot: "pvh".into(),
            accel: "tcg".into(),
            verdict: verdict.into(),
            note: None,
            seconds: 1.0,
            scenarios: results.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            deviations: BTreeMap::new(),
        }
    }

    #[test]
    fn table_has_a_row_per_scenario_and_a_column_per_cell() {
        let cells = [
            cell("q35", "passed", &[("msix-delivery 00:02.0", "PASS"), ("shutdown 00:02.0 (control)", "PASS")]),
            cell("pc", "failed", &[("msix-delivery 00:02.0", "FAIL")]),
            cell("pc", "skipped", &[]),
        ];
        let t = render(&cells, 1);
        assert!(t.contains("[1] q35/pvh/tcg: passed"), "{t}");
        let row = t.lines().find(|l| l.starts_with("msix-delivery 00:02.0")).unwrap();
        assert!(row.ends_with("PASS FAIL     "), "{row:?}");
        let row = t.lines().find(|l| l.starts_with("shutdown")).unwrap();
        assert!(row.contains("PASS    -"), "{row:?}");
        assert!(t.lines().last().unwrap().ends_with("ok FAIL skip"));
        assert!(!all_passed(&cells));
        assert_eq!(totals(&cells), (2, 1, 0));
        assert_eq!(result_of("SKIP"), Some(ScenarioResult::Skip));
    }

    #[test]
    fn expected_failures_and_unexpected_passes_have_their_own_labels() {
        let cells = [
            cell("q35", "passed", &[("dest-logical-flat -", "XFAIL"), ("msix-delivery 00:02.0", "PASS")]),
            cell("pc", "failed", &[("dest-logical-flat -", "XPASS")]),
        ];
        let t = render(&cells, 1);
        let row = t.lines().find(|l| l.starts_with("dest-logical-flat")).unwrap();
        assert!(row.ends_with("XFAIL XPASS"), "{row:?}");
        assert!(t.lines().last().unwrap().ends_with("   ok  FAIL"), "{t}");
        assert_eq!(totals(&cells), (2, 1, 0), "an XFAIL counts as passed, an XPASS as failed");
        assert_eq!(deviation_totals(&cells), (1, 1));
        assert_eq!(result_of("XFAIL"), Some(ScenarioResult::Xfail));
        assert_eq!(result_of("XPASS"), Some(ScenarioResult::Xpass));
        // Several boots of a cell keep the worst: FAIL over XPASS over XFAIL over PASS over SKIP.
        let order = ["SKIP", "PASS", "XFAIL", "XPASS", "FAIL"];
        assert!(order.windows(2).all(|w| rank(w[0]) < rank(w[1])));
    }

    #[test]
    fn shards_split_the_plan_and_refuse_a_bad_k() {
        assert_eq!(Shard::parse("2/3"), Ok(Shard { k: 2, n: 3 }));
        for bad in ["0/3", "4/3", "1/0", "3", "a/2", "1/-2", ""] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        let opts = MatrixOptions { qemus: vec!["a".into(), "b".into()], accels: vec![Accel::Tcg], ..MatrixOptions::default() };
        let plan = plan(&opts);
        assert_eq!(plan.len(), 12);
        assert_eq!((plan[0].qemu.as_str(), plan[0].machine.as_str(), plan[0].boot.as_str()), ("a", "q35", "pvh"));
        assert_eq!((plan[4].machine.as_str(), plan[4].boot.as_str()), ("pc", "iso-bios"));
        assert_eq!(plan[11].qemu, "b");
        // Every cell in exactly one shard, every N-th one in each.
        for n in 1..=13 {
            let mut count = vec![0; plan.len()];
            for k in 1..=n {
                let s = Shard { k, n };
                let mine: Vec<usize> = plan.iter().map(|p| p.index).filter(|&i| s.has(i)).collect();
                assert!(mine.iter().all(|i| i % n == k - 1));
                mine.iter().for_each(|&i| count[i] += 1);
            }
            assert!(count.iter().all(|&c| c == 1), "n={n}: {count:?}");
        }
    }

    /// The JSON of one shard, as `matrix` writes it, with the cells of `indexes` from a 3-cell plan.
    fn shard_doc(indexes: &[usize], verdict: &str) -> Value {
        let opts = MatrixOptions { machines: vec![Machine::Q35, Machine::Pc], boots: vec![BootPath::Pvh], accels: vec![Accel::Tcg, Accel::Kvm], ..MatrixOptions::default() };
        let plan = plan(&opts);
        let cells: Vec<Cell> = indexes
            .iter()
            .map(|&i| Cell { index: i, machine: plan[i].machine.clone(), accel: plan[i].accel.clone(), qemu: plan[i].qemu.clone(), ..cell("", verdict, &[("msix-delivery 00:02.0", "PASS")]) })
            .collect();
        json!({ "append": "scenario=all", "oracle": true, "cells": cells, "shard": "x", "plan": plan })
    }

    #[test]
    fn merge_joins_shards_and_names_a_missing_or_duplicated_cell() {
        let a = ("a.json".to_string(), shard_doc(&[0, 2], "passed"));
        let b = ("b.json".to_string(), shard_doc(&[1, 3], "passed"));
        let m = merge(&[b.clone(), a.clone()]).unwrap();
        assert_eq!(m.cells.iter().map(|c| c.index).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert!(all_passed(&m.cells));
        assert_eq!(m.json["merged_from"], json!(["b.json", "a.json"]));
        assert_eq!(m.json["cells"].as_array().map(Vec::len), Some(4));
        assert_eq!(m.qemus, 1);
        // One failed cell fails the merged matrix.
        let failed = ("b.json".to_string(), shard_doc(&[1, 3], "failed"));
        assert!(!all_passed(&merge(&[a.clone(), failed]).unwrap().cells));
        // A cell in no shard, and one in two.
        let err = merge(std::slice::from_ref(&a)).unwrap_err();
        assert!(err.contains("2 of 4 cells are in no shard: 1 (pc/pvh/tcg (qemu-system-x86_64)), 3 (pc/pvh/kvm"), "{err}");
        let c = ("c.json".to_string(), shard_doc(&[1, 2, 3], "passed"));
        let err = merge(&[a.clone(), c]).unwrap_err();
        assert!(err.contains("cell 2 (q35/pvh/kvm (qemu-system-x86_64)) is in both a.json and c.json"), "{err}");
        // Shards of different matrices.
        let mut other = b.clone();
        other.1["append"] = json!("rounds=3");
        assert!(merge(&[a.clone(), other]).unwrap_err().contains("another `append`"));
        let mut other = b.clone();
        other.1["plan"].as_array_mut().unwrap().pop();
        assert!(merge(&[a.clone(), other]).unwrap_err().contains("another matrix"));
        assert!(merge(&[("x.json".into(), json!({"cells": []}))]).unwrap_err().contains("no `plan`"));
        assert!(merge(&[]).is_err());
    }
}
