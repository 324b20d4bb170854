//! `cargo run -- matrix`: the scenario set (`scenario=all`, which the launcher splits into the boots it
//! needs) over machine types, boot paths (PVH, the GRUB ISO under SeaBIOS, under OVMF), accelerators
//! (TCG, and KVM where it works) and one or more QEMU binaries, with a progress line per run, a table of
//! pass/fail per scenario and device, and a JSON document.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
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
        }
    }
}

/// One cell: a combination and what came of it.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
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
    /// Scenario results: `name bdf` (or `name -`), with ` (control)` for controls -> PASS/FAIL/SKIP.
    pub scenarios: BTreeMap<String, String>,
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

/// Runs every cell, printing a progress line per cell to stderr.
pub fn matrix(opts: &MatrixOptions) -> (Vec<Cell>, Value, String) {
    let mut cells = Vec::new();
    let total = opts.qemus.len() * opts.machines.len() * opts.boots.len() * opts.accels.len();
    let mut n = 0;
    for qemu in &opts.qemus {
        let version = qemu_version(qemu);
        let kvm = if opts.accels.contains(&Accel::Kvm) && version.is_ok() { Some(kvm_works(qemu)) } else { None };
        for &accel in &opts.accels {
            for &machine in &opts.machines {
                for &boot in &opts.boots {
                    n += 1;
                    let mut cell = Cell {
                        qemu: qemu.display().to_string(),
                        qemu_version: version.clone().unwrap_or_default(),
                        machine: machine.as_str().into(),
                        boot: boot.as_str().into(),
                        accel: accel.as_str().into(),
                        verdict: "skipped".into(),
                        note: None,
                        seconds: 0.0,
                        scenarios: BTreeMap::new(),
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
                                let worse = |old: &String| old == "FAIL" || (old == "PASS" && value == "SKIP");
                                if !cell.scenarios.get(&key).is_some_and(worse) {
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
                    let failed = cell.scenarios.values().filter(|v| *v == "FAIL").count();
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
        }
    }
    let table = render(&cells, opts.qemus.len());
    let json = json!({ "append": opts.append, "oracle": opts.oracle, "cells": cells });
    (cells, json, table)
}

/// The table: one row per scenario and device, one column per cell.
pub fn render(cells: &[Cell], qemus: usize) -> String {
    let mut rows: Vec<&String> = cells.iter().flat_map(|c| c.scenarios.keys()).collect();
    rows.sort();
    rows.dedup();
    let labels: Vec<String> = cells.iter().map(|c| c.label(qemus)).collect();
    let width = rows.iter().map(|r| r.len()).max().unwrap_or(8).max(8);
    let mut t = String::new();
    // Column headers, one per line, numbered; the table uses the numbers.
    for (i, (l, c)) in labels.iter().zip(cells).enumerate() {
        let note = c.note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default();
        let _ = writeln!(t, "[{}] {l}: {}{note}, {:.1} s", i + 1, c.verdict, c.seconds);
    }
    let _ = write!(t, "\n{:<width$}", "scenario / device");
    for i in 0..cells.len() {
        let _ = write!(t, " {:>4}", format!("[{}]", i + 1));
    }
    t.push('\n');
    for r in rows {
        let _ = write!(t, "{r:<width$}");
        for c in cells {
            let v = c.scenarios.get(r).map_or(if c.verdict == "skipped" { "" } else { "-" }, String::as_str);
            let _ = write!(t, " {v:>4}");
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
        let _ = write!(t, " {v:>4}");
    }
    t.push('\n');
    t
}

/// Whether every cell that ran passed.
pub fn all_passed(cells: &[Cell]) -> bool {
    cells.iter().all(|c| c.verdict == "passed" || c.verdict == "skipped")
}

/// Counts of scenario results over every cell, for a summary line.
pub fn totals(cells: &[Cell]) -> (usize, usize, usize) {
    let all = cells.iter().flat_map(|c| c.scenarios.values());
    let (mut p, mut f, mut s) = (0, 0, 0);
    for v in all {
        match v.as_str() {
            "PASS" => p += 1,
            "FAIL" => f += 1,
            _ => s += 1,
        }
    }
    (p, f, s)
}

/// A result label back to its enum (for callers that want it typed).
pub fn result_of(label: &str) -> Option<ScenarioResult> {
    match label {
        "PASS" => Some(ScenarioResult::Pass),
        "FAIL" => Some(ScenarioResult::Fail),
        "SKIP" => Some(ScenarioResult::Skip),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(machine: &str, verdict: &str, results: &[(&str, &str)]) -> Cell {
        Cell {
            qemu: "qemu".into(),
            qemu_version: "QEMU emulator version 7.2.22".into(),
            machine: machine.into(),
            boot: "pvh".into(),
            accel: "tcg".into(),
            verdict: verdict.into(),
            note: None,
            seconds: 1.0,
            scenarios: results.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
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
}
