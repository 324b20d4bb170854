//! The benchmark's machinery, not its figures (those are printed by `cargo run --release -- bench`):
//! the dispatch benchmark really takes the path it claims for every source, the accesses are counted per
//! function, enumeration probes nothing a bridge does not lead to, and the floor firmware boots and exits.

use crate::common;

use msifw_host::bench::floor_elf;
use msifw_host::{Machine, QemuExit, ScenarioResult};

#[test]
fn dispatch_benchmark_takes_each_path_for_every_source() {
    let cfg = common::config(Machine::Q35).device("edu,addr=05.0").append("dispatch=500 irq.00:05.0=intx");
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    let s = o.report.scenarios.iter().find(|s| s.name == "dispatch-benchmark").unwrap_or_else(|| panic!("no dispatch-benchmark scenario{why}"));
    assert_eq!(s.result, ScenarioResult::Pass, "{}{why}", s.detail);
    for source in ["self-ipi", "msix", "msi", "intx"] {
        for path in ["handler", "minimal"] {
            let d = o
                .report
                .dispatch
                .iter()
                .find(|d| d.source == source && d.path == path)
                .unwrap_or_else(|| panic!("no {source} {path} record{why}"));
            assert_eq!(d.n, 500, "{source} {path}: {} interrupts measured{why}", d.n);
            // Through the firmware's dispatcher every time on the handler path, never on the minimal one.
            let expected = if path == "handler" { 500 } else { 0 };
            assert_eq!(d.dispatched, expected, "{source} {path}: {} dispatched{why}", d.dispatched);
            // Edge sources need only a count and an EOI: the entry's fast path. The edu is alone on its INTx
            // line and its driver names its acknowledge write, so the entry makes that write and takes the
            // fast path too (the handler then sees no interrupt: none is left unacknowledged).
            let fast = if path == "handler" { 500 } else { 0 };
            assert_eq!(d.fast, fast, "{source} {path}: {} on the entry's fast path{why}", d.fast);
            assert!(d.path_min > 0 && d.path_min <= d.path_median && d.path_median <= d.path_p99, "{source} {path}: {d:?}{why}");
            assert!(d.entry_min <= d.entry_median && d.entry_median <= d.entry_p99, "{source} {path}: {d:?}{why}");
        }
    }
    let msix = o.report.dispatch.iter().find(|d| d.source == "msix").map(|d| d.bdf.clone());
    assert_eq!(msix, Some(Some("00:03.0".to_string())), "MSI-X is measured on the nvme, not the e1000e{why}");
    assert!(o.passed(), "run did not pass{why}");
}

#[test]
fn accesses_are_counted_per_function_and_no_bus_without_a_bridge_is_probed() {
    let cfg = common::config(Machine::Q35)
        .default_devices(false)
        .device("pcie-root-port,id=rp1,chassis=1,slot=1,addr=05.0")
        .device("edu,bus=rp1")
        .append("bench");
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    assert!(o.passed(), "run did not pass{why}");
    // The six phases in order, then the time of the Command-register writes within them.
    let (phases, command): (Vec<_>, Vec<_>) = o.report.phases.iter().partition(|p| !p.name.starts_with(msifw_host::bench::COMMAND_WRITES));
    let names: Vec<&str> = phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, msifw_host::bench::FIRMWARE_PHASES, "{why}");
    assert!(phases.iter().all(|p| p.us > 0), "every phase takes time: {:?}{why}", o.report.phases);
    // Sizing the root port's and the edu's BARs toggles decoding, and setup turns Bus Master on.
    assert_eq!(command.len(), 1, "one command-writes record: {command:?}{why}");
    let writes = msifw_host::bench::command_writes(&o.report).map(|(n, _)| n);
    assert!(writes.is_some_and(|n| n >= 4), "one command-writes record with at least 4 writes: {command:?}{why}");
    let enumeration_us: u64 = phases.iter().filter(|p| matches!(p.name.as_str(), "enumeration" | "quiet" | "setup")).map(|p| p.us).sum();
    assert!(command[0].us <= enumeration_us, "Command-register writes take part of enumeration, quiet and setup: {command:?}{why}");
    for f in &o.report.functions {
        let e = o.report.accesses.iter().find(|a| a.bdf == f.bdf && a.phase == "enumeration");
        assert!(e.is_some_and(|e| e.present && e.config_reads >= 4), "{}: enumeration accesses {e:?}{why}", f.bdf);
    }
    // The edu's driver maps BAR0 and raises interrupts through it: MMIO counted during setup.
    let edu = o.report.accesses.iter().find(|a| a.bdf == "01:00.0" && a.phase == "setup");
    assert!(edu.is_some_and(|a| a.mmio_reads > 0 && a.mmio_writes > 0), "edu setup accesses {edu:?}{why}");
    // Absent functions were probed only on bus 0 (32 device numbers) and on the port's link (device 0
    // only, and it is present): nothing on any other bus.
    let absent: Vec<&str> = o.report.accesses.iter().filter(|a| !a.present).map(|a| a.bdf.as_str()).collect();
    assert!(!absent.is_empty() && absent.iter().all(|b| b.starts_with("00:")), "absent probes off bus 0: {absent:?}{why}");
}

#[test]
fn floor_firmware_exits_at_its_first_instruction() {
    let dir = std::env::temp_dir().join(format!("msifw-floor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let elf = dir.join("floor.elf");
    std::fs::write(&elf, floor_elf()).unwrap();
    let o = common::boot(&common::config(Machine::Q35).elf(&elf));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(o.qemu().unwrap().exit, QemuExit::Code(1), "the floor firmware must write 0 to isa-debug-exit ({})", common::explain(&o));
    assert!(o.report.functions.is_empty() && o.com1.trim().is_empty(), "the floor firmware prints nothing");
}
