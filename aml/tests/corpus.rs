//! Real machines' tables (`../shared/acpi-corpus`, beside the project) against what ACPICA's `acpiexec`
//! evaluated for them after `\_PIC(1)` with operation regions simulated as zero-filled memory
//! (`oracle.json`; its README says what it holds). The evaluator runs with the same simulation
//! ([`Overlay::zero_filled`]), then once more without it to count what needs no region read at all.

use msifw_aml::pci::{self, Eval, PrtEntry, RootBridge};
use msifw_aml::{Aml, ErrorKind, Overlay, Value};
use serde_json::Value as J;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn machines() -> Option<Vec<PathBuf>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/acpi-corpus");
    let Ok(dir) = std::fs::read_dir(&root) else {
        eprintln!(
            "{}: absent, the corpus test has nothing to check",
            root.display()
        );
        return None;
    };
    let mut v: Vec<_> = dir
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("oracle.json").exists())
        .collect();
    v.sort();
    Some(v)
}

fn tables(m: &Path, oracle: &J) -> Vec<Vec<u8>> {
    oracle["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| std::fs::read(m.join(f.as_str().unwrap())).unwrap())
        .collect()
}

fn opt_int(e: &Eval<u64>) -> Option<u64> {
    match e {
        Some(Ok(v)) => Some(*v),
        _ => None,
    }
}

/// One `_PRT` entry as the oracle writes it: (slot, func, pin, source path, index).
type Entry = (u64, u64, u64, Option<String>, u64);

fn ours(aml: &Aml, e: &PrtEntry) -> Entry {
    (
        e.slot(),
        e.address & 0xFFFF,
        e.pin,
        e.source.map(|n| aml.path(n)),
        e.index,
    )
}

/// ACPICA gives a link it could not resolve when it built the package as the name string itself
/// (QEMU's `PRTA` names `GSIE` before defining it); Linux resolves that from the `_PRT`'s device.
fn theirs(aml: &Aml, owner: &str, prt: &J) -> Option<Vec<Entry>> {
    let scope = aml.find(0, owner)?;
    if prt["status"] != "ok" {
        return None;
    }
    Some(
        prt["entries"]
            .as_array()?
            .iter()
            .map(|e| {
                (
                    e["slot"].as_u64().unwrap(),
                    e["func"].as_u64().unwrap(),
                    e["pin"].as_u64().unwrap(),
                    e["source"].as_str().map(|s| match aml.find(scope, s) {
                        Some(n) if !s.starts_with('\\') => aml.path(n),
                        _ => s.to_string(),
                    }),
                    e["index"].as_u64().unwrap(),
                )
            })
            .collect(),
    )
}

#[derive(Default, Debug)]
struct Figures {
    machines: usize,
    root_prt_equal: usize,
    root_prt_total: usize,
    bridge_entries_equal: usize,
    bridge_entries_total: usize,
    roots_found: usize,
    roots_total: usize,
    values_equal: usize,
    values_total: usize,
    budget: usize,
    panics: usize,
    errors: BTreeMap<String, (usize, String)>,
    static_root_prt: usize,
    static_bridge_entries: usize,
    static_errors: BTreeMap<String, (usize, String)>,
    links_equal: usize,
    links_total: usize,
    static_links: usize,
    load_problems: usize,
    acpica_load_errors: usize,
    roots_extra: usize,
}

fn note(f: &mut Figures, aml: &Aml, what: &str, e: &msifw_aml::Error, machine: &str) {
    if matches!(e.kind, ErrorKind::Budget(_)) {
        f.budget += 1;
    }
    note_in(&mut f.errors, aml, what, e, machine);
}

fn note_in(
    map: &mut BTreeMap<String, (usize, String)>,
    aml: &Aml,
    what: &str,
    e: &msifw_aml::Error,
    machine: &str,
) {
    let key = match e.kind {
        ErrorKind::UnknownOpcode(op) | ErrorKind::Unsupported(op) => {
            format!("{what} {:?} {op:#x}", e.kind)
        }
        ErrorKind::Region { space, .. } => format!("{what} region space {space}"),
        k => format!("{what} {k:?}"),
    };
    let ex = format!(
        "{machine} {} @{}:{:#x}",
        aml.path(e.scope),
        e.table,
        e.offset
    );
    map.entry(key).or_insert((0, ex)).0 += 1;
}

/// A link's `_CRS` interrupts as the oracle writes them: (extended, irqs, level, active low, shared).
type LinkIrq = (bool, Vec<u64>, bool, bool, bool);

fn link_irqs(buf: &[u8]) -> Vec<LinkIrq> {
    let mut v = Vec::new();
    msifw_aml::resource::walk(buf, |tag, _| {
        if tag == 0x04 || tag == 0x89 {
            v.push(tag == 0x89);
        }
    });
    v.into_iter()
        .zip(msifw_aml::resource::irqs(buf))
        .map(|(ext, i)| {
            (
                ext,
                i.irqs.iter().map(|&x| u64::from(x)).collect(),
                i.level,
                i.active_low,
                i.shared,
            )
        })
        .collect()
}

fn check_links(aml: &mut Aml, oracle: &J, f: &mut Figures, name: &str) {
    let links = pci::links(aml);
    for (path, o) in oracle["links"].as_object().unwrap() {
        let Some(want) = o["_crs"].as_array() else {
            continue;
        };
        let want: Vec<LinkIrq> = want
            .iter()
            .map(|d| {
                (
                    d["kind"] == "ext_irq",
                    d["irqs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_u64().unwrap())
                        .collect(),
                    d["level"].as_bool().unwrap(),
                    d["active_low"].as_bool().unwrap(),
                    d["shared"].as_bool().unwrap(),
                )
            })
            .collect();
        f.links_total += 1;
        let got = links.iter().find(|l| aml.path(l.node) == *path);
        let (sta, crs) = match got {
            Some(l) => (opt_int(&l.sta), l.crs.clone()),
            None => (None, None),
        };
        match crs {
            Some(Ok(b)) if link_irqs(&b) == want && sta == o["sta"].as_u64() => f.links_equal += 1,
            other => println!(
                "{name}: link {path}: {:?} sta {sta:?}, ACPICA {want:?} sta {}",
                other.map(|r| r.map(|b| link_irqs(&b))),
                o["sta"]
            ),
        }
    }
}

fn check_machine(m: &Path, f: &mut Figures) {
    let name = m.file_name().unwrap().to_string_lossy().into_owned();
    let oracle: J =
        serde_json::from_str(&std::fs::read_to_string(m.join("oracle.json")).unwrap()).unwrap();
    let t = tables(m, &oracle);
    let mut aml = Aml::new(Box::new(Overlay::zero_filled()));
    if let Ok(d) = std::env::var("AML_DEPTH") {
        aml.limits.depth = d.parse().unwrap();
    }
    for x in &t {
        aml.load(x).unwrap();
    }
    let (problems, count) = aml.problems();
    for e in problems {
        note(f, &aml, "load", e, &name);
    }
    f.load_problems += count as usize;
    f.acpica_load_errors += oracle["acpiexec"]["load_errors"].as_u64().unwrap_or(0) as usize;
    if let Some(Err(e)) = pci::set_apic_mode(&mut aml) {
        note(f, &aml, "_PIC", &e, &name);
    }
    let roots = pci::root_bridges(&mut aml);
    let by_path: BTreeMap<String, &RootBridge> =
        roots.iter().map(|r| (aml.path(r.node), r)).collect();
    for r in &roots {
        for (what, e) in [("_PRT", r.prt.as_ref().and_then(|p| p.as_ref().err()))]
            .into_iter()
            .chain(
                r.bridges
                    .iter()
                    .map(|b| ("bridge _PRT", b.prt.as_ref().err())),
            )
        {
            if let Some(e) = e {
                note(f, &aml, what, e, &name);
            }
        }
    }
    for p in by_path.keys() {
        if !oracle["root_bridges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["path"] == p.as_str())
        {
            println!("{name}: root bridge {p} that ACPICA does not list");
            f.roots_extra += 1;
        }
    }
    for o in oracle["root_bridges"].as_array().unwrap() {
        let path = o["path"].as_str().unwrap();
        f.roots_total += 1;
        let Some(r) = by_path.get(path) else {
            println!("{name}: root bridge {path} not found");
            continue;
        };
        f.roots_found += 1;
        for (key, got) in [
            ("sta", opt_int(&r.sta)),
            ("bbn", opt_int(&r.bbn)),
            ("seg", opt_int(&r.seg)),
        ] {
            f.values_total += 1;
            if o[key].as_u64() == got {
                f.values_equal += 1;
            } else {
                println!("{name}: {path} {key} {got:?}, ACPICA {}", o[key]);
            }
        }
        let uid = match &r.uid {
            Some(Ok(Value::Int(i))) => Some(*i),
            _ => None,
        };
        f.values_total += 1;
        if o["uid"].as_u64() == uid {
            f.values_equal += 1;
        }
        let want_bus: Vec<(u64, u64)> = o["crs"]["windows"]["any"]["bus"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| (p[0].as_u64().unwrap(), p[1].as_u64().unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        f.values_total += 1;
        if want_bus == r.bus_ranges() {
            f.values_equal += 1;
        } else {
            println!(
                "{name}: {path} _CRS bus {:?}, ACPICA {want_bus:?} ({:?})",
                r.bus_ranges(),
                r.crs.as_ref().map(|c| c.as_ref().err())
            );
        }
        if let Some(want) = theirs(&aml, path, &o["prt"]) {
            f.root_prt_total += 1;
            let got = match &r.prt {
                Some(Ok(p)) => Some(p.iter().map(|e| ours(&aml, e)).collect::<Vec<_>>()),
                _ => None,
            };
            if got.as_ref() == Some(&want) {
                f.root_prt_equal += 1;
            } else {
                println!(
                    "{name}: {path} _PRT differs: {} of ACPICA's {} entries; ours {:?}",
                    got.as_ref()
                        .map_or(0, |g| g.iter().zip(&want).filter(|(a, b)| a == b).count()),
                    want.len(),
                    r.prt.as_ref().map(|p| p.as_ref().map(|v| v.len()))
                );
            }
        }
        for b in o["bridges"].as_array().unwrap() {
            let bpath = b["path"].as_str().unwrap();
            let Some(want) = theirs(&aml, bpath, &b["prt"]) else {
                continue;
            };
            f.bridge_entries_total += want.len();
            let got = r.bridges.iter().find(|x| aml.path(x.node) == bpath);
            let got = match got.map(|g| &g.prt) {
                Some(Ok(p)) => p.iter().map(|e| ours(&aml, e)).collect::<Vec<_>>(),
                other => {
                    println!(
                        "{name}: bridge {bpath}: {:?}",
                        other.map(|x| x.as_ref().err())
                    );
                    continue;
                }
            };
            let eq = got.iter().zip(&want).filter(|(a, b)| a == b).count();
            if eq != want.len() || got.len() != want.len() {
                println!(
                    "{name}: bridge {bpath}: {eq} of {} entries equal (ours {})",
                    want.len(),
                    got.len()
                );
            }
            f.bridge_entries_equal += eq.min(want.len());
        }
    }
    check_links(&mut aml, &oracle, f, &name);
    // The same without any simulated memory: what a firmware gets from the tables alone.
    let mut aml = Aml::new(Box::new(Overlay::new()));
    for x in &t {
        aml.load(x).unwrap();
    }
    if let Some(Err(e)) = pci::set_apic_mode(&mut aml) {
        note_in(&mut f.static_errors, &aml, "_PIC", &e, &name);
    }
    for l in pci::links(&mut aml) {
        match &l.crs {
            Some(Ok(_)) => f.static_links += 1,
            Some(Err(e)) => note_in(&mut f.static_errors, &aml, "link _CRS", e, &name),
            None => {}
        }
    }
    for r in pci::root_bridges(&mut aml) {
        if let Some(Err(e)) = &r.prt {
            note_in(&mut f.static_errors, &aml, "_PRT", e, &name);
        }
        for b in &r.bridges {
            match &b.prt {
                Ok(p) => f.static_bridge_entries += p.len(),
                Err(e) => note_in(&mut f.static_errors, &aml, "bridge _PRT", e, &name),
            }
        }
        let p = aml.path(r.node);
        let want = oracle["root_bridges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["path"] == p.as_str())
            .and_then(|o| theirs(&aml, &p, &o["prt"]));
        if let (Some(Ok(got)), Some(want)) = (&r.prt, want) {
            if got.iter().map(|e| ours(&aml, e)).collect::<Vec<_>>() == want {
                f.static_root_prt += 1;
            }
        }
    }
}

#[test]
fn corpus_routing_equals_acpica() {
    let Some(ms) = machines() else { return };
    let mut f = Figures::default();
    for m in &ms {
        f.machines += 1;
        let mut g = Figures::default();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_machine(m, &mut g)));
        if r.is_err() {
            println!("{}: PANIC", m.display());
            f.panics += 1;
            continue;
        }
        f.root_prt_equal += g.root_prt_equal;
        f.root_prt_total += g.root_prt_total;
        f.bridge_entries_equal += g.bridge_entries_equal;
        f.bridge_entries_total += g.bridge_entries_total;
        f.roots_found += g.roots_found;
        f.roots_total += g.roots_total;
        f.values_equal += g.values_equal;
        f.values_total += g.values_total;
        f.budget += g.budget;
        f.static_root_prt += g.static_root_prt;
        f.static_bridge_entries += g.static_bridge_entries;
        f.static_links += g.static_links;
        f.links_equal += g.links_equal;
        f.links_total += g.links_total;
        f.load_problems += g.load_problems;
        f.roots_extra += g.roots_extra;
        f.acpica_load_errors += g.acpica_load_errors;
        for (k, (n, ex)) in g.errors {
            f.errors.entry(k).or_insert((0, ex)).0 += n;
        }
        for (k, (n, ex)) in g.static_errors {
            f.static_errors.entry(k).or_insert((0, ex)).0 += n;
        }
    }
    println!("machines: {}", f.machines);
    println!(
        "root _PRT equal to ACPICA's: {} of {}",
        f.root_prt_equal, f.root_prt_total
    );
    println!(
        "bridge _PRT entries equal: {} of {} ({:.1} %)",
        f.bridge_entries_equal,
        f.bridge_entries_total,
        100.0 * f.bridge_entries_equal as f64 / f.bridge_entries_total.max(1) as f64
    );
    println!(
        "root bridges found: {} of {} ({} that ACPICA does not list)",
        f.roots_found, f.roots_total, f.roots_extra
    );
    println!(
        "_STA/_BBN/_SEG/_UID/_CRS bus range equal: {} of {}",
        f.values_equal, f.values_total
    );
    println!(
        "PNP0C0F links with _STA and _CRS interrupts equal: {} of {}",
        f.links_equal, f.links_total
    );
    println!(
        "with no region simulated (the tables alone): root _PRT equal {} of {}, bridge _PRT entries {}, link _CRS {}",
        f.static_root_prt, f.root_prt_total, f.static_bridge_entries, f.static_links
    );
    println!(
        "load problems (names defined twice, scopes that do not exist, ...): {}; ACPICA's load errors: {}",
        f.load_problems, f.acpica_load_errors
    );
    println!("budget overruns: {}", f.budget);
    println!("panics: {}", f.panics);
    for (k, (n, ex)) in &f.errors {
        println!("not evaluated: {k}: {n} (e.g. {ex})");
    }
    for (k, (n, ex)) in &f.static_errors {
        println!("not evaluated from the tables alone: {k}: {n} (e.g. {ex})");
    }
    assert_eq!(f.panics, 0, "the evaluator panicked");
    assert!(f.machines >= 31, "{} machines", f.machines);
    assert_eq!(
        f.roots_found, f.roots_total,
        "root bridges ACPICA finds are missing"
    );
    assert_eq!(
        f.root_prt_equal, f.root_prt_total,
        "root _PRTs differ from ACPICA's"
    );
    assert_eq!(
        f.bridge_entries_equal, f.bridge_entries_total,
        "bridge _PRT entries differ"
    );
    assert_eq!(
        f.values_equal, f.values_total,
        "_STA/_BBN/_SEG/_UID/_CRS differ"
    );
    assert_eq!(f.links_equal, f.links_total, "link devices differ");
    assert_eq!(f.budget, 0, "an evaluation ran past its budget");
}

/// The corpus' tables with bytes changed at random (xorshift, fixed seed): no panic, no hang. 20 runs per
/// machine by default (3 s); `MUTATIONS=N` sets the runs per machine.
#[test]
fn mutated_corpus_tables_never_panic() {
    let Some(ms) = machines() else { return };
    let n: usize = std::env::var("MUTATIONS").map_or(20, |v| v.parse().unwrap());
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for m in &ms {
        let oracle: J =
            serde_json::from_str(&std::fs::read_to_string(m.join("oracle.json")).unwrap()).unwrap();
        let t = tables(m, &oracle);
        for _ in 0..n {
            let mut t = t.clone();
            for _ in 0..8 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let which = (x as usize >> 8) % t.len();
                let len = t[which].len();
                if len > 36 {
                    t[which][36 + (x as usize >> 16) % (len - 36)] = (x >> 56) as u8;
                }
            }
            let mut aml = Aml::new(Box::new(Overlay::zero_filled()));
            aml.limits.steps = 50_000;
            for x in &t {
                let _ = aml.load(x);
            }
            let _ = pci::set_apic_mode(&mut aml);
            let _ = pci::root_bridges(&mut aml);
            let _ = pci::links(&mut aml);
        }
    }
}
