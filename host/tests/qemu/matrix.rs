//! The platform matrix runs each combination it is given, with a progress line each, skips what cannot
//! run with the reason, and tabulates every scenario per device; split into shards (`--shard K/N`),
//! each runs its own cells and `--merge` joins them into the whole table.

use std::path::PathBuf;

use crate::common;

use msifw_host::matrix::{all_passed, matrix, merge, render, MatrixOptions, Shard};
use msifw_host::{Accel, BootPath, Machine};

#[test]
fn matrix_tabulates_each_combination_and_skips_a_missing_qemu() {
    let opts = MatrixOptions {
        qemus: vec![
            PathBuf::from("qemu-system-x86_64"),
            PathBuf::from("/nonexistent/qemu-system-x86_64"),
        ],
        machines: vec![Machine::Q35, Machine::Pc],
        boots: vec![BootPath::Pvh],
        accels: vec![Accel::Tcg],
        append: "rounds=1".into(),
        ..MatrixOptions::default()
    };
    // Cells 0 and 2 (q35 on each QEMU), then 1 and 3 (pc): one boot in each shard.
    let mut docs = Vec::new();
    for k in 1..=2 {
        let slot = common::slot(Accel::Tcg);
        let (cells, json, table) = matrix(&MatrixOptions {
            shard: Some(Shard { k, n: 2 }),
            ..opts.clone()
        });
        drop(slot);
        assert_eq!(
            cells.iter().map(|c| c.index).collect::<Vec<_>>(),
            [k - 1, k + 1],
            "shard {k}/2\n{table}"
        );
        assert!(
            cells
                .iter()
                .all(|c| c.machine == if k == 1 { "q35" } else { "pc" }),
            "shard {k}/2\n{table}"
        );
        assert_eq!(json["plan"].as_array().map(Vec::len), Some(4));
        docs.push((format!("shard{k}.json"), json));
    }
    let err = merge(&docs[..1]).unwrap_err();
    assert!(err.contains("2 of 4 cells are in no shard"), "{err}");
    let merged = merge(&docs).unwrap_or_else(|e| panic!("{e}"));
    let (cells, json) = (merged.cells, merged.json);
    let table = render(&cells, merged.qemus);
    assert_eq!(cells.len(), 4, "{table}");
    let ran: Vec<_> = cells.iter().filter(|c| c.verdict != "skipped").collect();
    assert_eq!(ran.len(), 2, "{table}");
    for c in &ran {
        assert_eq!(c.verdict, "passed", "{}: {:?}\n{table}", c.machine, c.note);
        assert_eq!(
            c.scenarios.get("msix-delivery 00:02.0").map(String::as_str),
            Some("PASS"),
            "{table}"
        );
    }
    for c in cells.iter().filter(|c| c.qemu.starts_with("/nonexistent")) {
        assert_eq!(c.verdict, "skipped");
        assert!(
            c.note
                .as_deref()
                .is_some_and(|n| n.contains("/nonexistent")),
            "{:?}",
            c.note
        );
    }
    assert!(all_passed(&cells), "skipped cells do not fail the matrix");
    let row = table
        .lines()
        .find(|l| l.starts_with("msi-delivery 00:04.0"))
        .unwrap_or_else(|| panic!("no msi-delivery row\n{table}"));
    assert_eq!(row.matches("PASS").count(), 2, "{row}");
    assert_eq!(json["cells"].as_array().map(Vec::len), Some(4));
}
