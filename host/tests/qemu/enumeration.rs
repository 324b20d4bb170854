//! The firmware finds exactly the PCI functions QEMU has, with the same ids, classes and BARs.
//! QEMU's own view comes from QMP `query-pci` on the same machine started with `-S`.

use crate::common;

use std::collections::BTreeSet;

use msifw_host::{qmp_query_pci, BarKind, Function, Machine, QemuFunction, RegionKind, RunConfig};

/// BAR as (index, kind, prefetchable, size) in the firmware's terms.
type BarKey = (u8, BarKind, bool, u64);

fn qemu_bars(f: &QemuFunction) -> BTreeSet<BarKey> {
    f.bars()
        .map(|r| {
            let kind = match (r.kind, r.mem64) {
                (RegionKind::Io, _) => BarKind::Io,
                (RegionKind::Memory, true) => BarKind::Mem64,
                (RegionKind::Memory, false) => BarKind::Mem32,
            };
            (r.bar, kind, r.prefetch, r.size)
        })
        .collect()
}

fn firmware_bars(f: &Function) -> BTreeSet<BarKey> {
    f.bars
        .iter()
        .map(|b| (b.index, b.kind, b.prefetchable, b.size))
        .collect()
}

fn show(b: &BarKey) -> String {
    let (index, kind, prefetchable, size) = *b;
    format!(
        "{index}:{}{} size {size:#x}",
        kind.short(),
        if prefetchable { "p" } else { "" }
    )
}

/// Compares one function; returns the differences.
fn compare(q: &QemuFunction, f: &Function) -> Vec<String> {
    let bdf = q.bdf();
    let mut out = Vec::new();
    let (vendor, device) = (format!("{:04x}", q.vendor), format!("{:04x}", q.device));
    if (f.vendor.as_str(), f.device.as_str()) != (vendor.as_str(), device.as_str()) {
        out.push(format!(
            "{bdf}: QEMU has id {vendor}:{device}, the firmware reported {}:{}",
            f.vendor, f.device
        ));
    }
    if f.class.len() != 6 || !f.class.starts_with(&q.class_hex()) {
        out.push(format!(
            "{bdf}: QEMU has class/subclass {}, the firmware reported class {:?} (6 hex digits: class, subclass, prog-if)",
            q.class_hex(),
            f.class
        ));
    }
    let (qb, fb) = (qemu_bars(q), firmware_bars(f));
    for missing in qb.difference(&fb) {
        out.push(format!(
            "{bdf}: QEMU has BAR {} that the firmware did not report (or reported differently)",
            show(missing)
        ));
    }
    for extra in fb.difference(&qb) {
        out.push(format!("{bdf}: the firmware reported BAR {} that QEMU does not have (sizing or 64-bit pairing wrong?)", show(extra)));
    }
    out
}

fn check(machine: Machine) {
    let cfg: RunConfig = common::config(machine);
    let qemu =
        qmp_query_pci(&cfg).unwrap_or_else(|e| panic!("QEMU's query-pci on {machine} failed: {e}"));
    assert!(
        !qemu.is_empty(),
        "query-pci on {machine} listed no function"
    );
    let o = common::boot_shared(&cfg);
    common::assert_passed(&o);
    let why = common::explain(&o);
    assert!(
        o.report.end.is_some(),
        "the firmware run on {machine} did not complete (verdict {}), so its function list may be \
         partial; fix the boot first (see host/tests/qemu/boot.rs){why}",
        o.exit
    );

    let mut diffs = Vec::new();
    for q in &qemu {
        match o.report.function(&q.bdf()) {
            Some(f) => diffs.extend(compare(q, f)),
            None => diffs.push(format!(
                "{}: QEMU has {} (class {}{}) but the firmware did not report it (enumeration missed it)",
                q.bdf(),
                q.id(),
                q.class_hex(),
                q.desc.as_deref().map(|d| format!(", {d}")).unwrap_or_default()
            )),
        }
    }
    let known: BTreeSet<String> = qemu.iter().map(QemuFunction::bdf).collect();
    for f in &o.report.functions {
        if !known.contains(&f.bdf) {
            diffs.push(format!(
                "{}: the firmware reported {}:{} but QEMU has no such function (bad BDF decoding, or a \
                 phantom function from a wrong header-type/multifunction check)",
                f.bdf, f.vendor, f.device
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for f in &o.report.functions {
        if !seen.insert(&f.bdf) {
            diffs.push(format!("{}: reported more than once", f.bdf));
        }
    }
    assert!(
        diffs.is_empty(),
        "the firmware's PCI enumeration on {machine} differs from QEMU's query-pci:\n  {}\nQEMU's view:\n{}{why}",
        diffs.join("\n  "),
        qemu.iter()
            .map(|q| {
                let bars: Vec<String> = qemu_bars(q).iter().map(show).collect();
                format!("  {} {} class {} bars [{}]", q.bdf(), q.id(), q.class_hex(), bars.join(", "))
            })
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn q35_matches_qemu() {
    check(Machine::Q35);
}

#[test]
fn pc_matches_qemu() {
    check(Machine::Pc);
}
