//! Times the evaluator on every machine of `../shared/acpi-corpus` (beside the project): loading its DSDT
//! and SSDTs, `\_PIC(1)`, `root_bridges` and `links`, with regions read as zero (what the corpus test does).
//! Prints per machine the table bytes, nodes and the best of `REPS` runs (default 5); `ONLY=NAME` times the machines whose folder name contains NAME of each phase in
//! milliseconds, then the totals. `cargo run --release -p msifw-aml --example corpus_time`.

use msifw_aml::{pci, Aml, Overlay};
use std::path::Path;
use std::time::{Duration, Instant};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/acpi-corpus");
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let only = std::env::var("ONLY").ok();
    let mut machines: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("oracle.json").exists())
        .filter(|p| {
            only.as_ref()
                .is_none_or(|o| p.to_string_lossy().contains(o.as_str()))
        })
        .collect();
    machines.sort();
    println!(
        "{:<52} {:>8} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "machine", "bytes", "nodes", "load", "_PIC", "roots", "links", "total"
    );
    let mut sum = [Duration::ZERO; 4];
    let mut worst = (Duration::ZERO, String::new());
    for m in &machines {
        let oracle: serde_json::Value =
            serde_json::from_slice(&std::fs::read(m.join("oracle.json")).expect("oracle.json"))
                .expect("json");
        let tables: Vec<Vec<u8>> = oracle["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|f| std::fs::read(m.join(f.as_str().expect("name"))).expect("table"))
            .collect();
        let bytes: usize = tables.iter().map(Vec::len).sum();
        let mut best = [Duration::MAX; 4];
        let mut nodes = 0;
        for _ in 0..reps {
            let mut t = [Duration::ZERO; 4];
            let start = Instant::now();
            let mut aml = Aml::new(Box::new(Overlay::zero_filled()));
            for tb in &tables {
                let _ = aml.load(tb);
            }
            t[0] = start.elapsed();
            let s = Instant::now();
            let _ = pci::set_apic_mode(&mut aml);
            t[1] = s.elapsed();
            let s = Instant::now();
            let r = pci::root_bridges(&mut aml);
            t[2] = s.elapsed();
            let s = Instant::now();
            let l = pci::links(&mut aml);
            t[3] = s.elapsed();
            std::hint::black_box((r, l));
            nodes = aml.len();
            for (b, x) in best.iter_mut().zip(t) {
                *b = (*b).min(x);
            }
        }
        let total: Duration = best.iter().sum();
        if total > worst.0 {
            worst = (
                total,
                m.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        for (s, b) in sum.iter_mut().zip(best) {
            *s += b;
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{:<52} {:>8} {:>6} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            m.file_name().unwrap_or_default().to_string_lossy(),
            bytes,
            nodes,
            ms(best[0]),
            ms(best[1]),
            ms(best[2]),
            ms(best[3]),
            ms(total)
        );
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let total: Duration = sum.iter().sum();
    println!(
        "{} machines, best of {reps}: load {:.1} ms, _PIC {:.1} ms, root bridges {:.1} ms, links {:.1} ms, all {:.1} ms; slowest {} {:.2} ms",
        machines.len(),
        ms(sum[0]),
        ms(sum[1]),
        ms(sum[2]),
        ms(sum[3]),
        ms(total),
        worst.1,
        ms(worst.0)
    );
}
