//! No internal limit becomes a FAIL: what the platform decides (INTx sharers per line, DMA memory for many
//! controllers, the write-order trace of a long run, driven devices) is sized from the platform (the
//! firmware's heap over the memory map), so each of these topologies passes whole. Each limit they
//! exceed was a fixed capacity once: 8 sharers per line, 192 DMA pages, 8192 trace events, 64 devices.

use crate::common;

use msifw_host::{IrqMode, Machine, RunConfig, RunOutcome, ScenarioResult};

/// `count` functions of `model` (a `-device` spec without its address), eight to a multifunction
/// device from slot `first` on.
fn many(mut cfg: RunConfig, model: &str, count: usize, first: u8) -> RunConfig {
    for n in 0..count {
        let (slot, func) = (first as usize + n / 8, n % 8);
        let mf = if func == 0 { ",multifunction=on" } else { "" };
        let spec = model.replace("{n}", &n.to_string());
        cfg = cfg.device(format!("{spec},addr={slot:02x}.{func}{mf}"));
    }
    cfg
}

/// The functions `driver` drives, each checked to have interrupted and passed its delivery check.
fn driven<'a>(o: &'a RunOutcome, driver: &str) -> Vec<&'a msifw_host::Function> {
    let why = common::explain(o);
    let functions: Vec<_> = o.report.functions.iter().filter(|f| f.driver.as_deref() == Some(driver)).collect();
    for f in &functions {
        assert!(f.irq_mode != IrqMode::None && f.interrupts >= 2, "{} not driven: {:?} {:?}{why}", f.bdf, f.irq_mode, f.problems);
        let delivery = o.report.scenarios.iter().find(|s| s.bdf.as_deref() == Some(f.bdf.as_str()) && s.name.ends_with("-delivery"));
        assert!(delivery.is_some_and(|s| s.result == ScenarioResult::Pass), "{}: {delivery:?}{why}", f.bdf);
    }
    functions
}

#[test]
fn thirty_functions_share_the_two_pci_lines_of_pc_with_nomsi() {
    let cfg = many(common::config(Machine::Pc).default_devices(false), "edu", 30, 3).append("nomsi");
    let o = common::boot(&cfg);
    common::assert_passed(&o);
    let edus = driven(&o, "edu");
    assert_eq!(edus.len(), 30, "{}", common::explain(&o));
    let mut gsis: Vec<u32> = edus.iter().map(|f| f.gsi.expect("an INTx function has a GSI")).collect();
    assert!(edus.iter().all(|f| f.irq_mode == IrqMode::Intx), "{}", common::explain(&o));
    gsis.sort_unstable();
    gsis.dedup();
    assert_eq!(gsis, [10, 11], "SeaBIOS routes pc's PIRQs to ISA IRQs 10 and 11{}", common::explain(&o));
}

#[test]
fn eighteen_and_forty_nvme_controllers_get_dma_memory() {
    // QEMU 7.2's nvme runs without a drive (no namespace), and the driver reads none: no scratch drives.
    for count in [18, 40] {
        let cfg = many(common::config(Machine::Q35).default_devices(false), "nvme,serial=cap{n}", count, 5);
        let o = common::boot(&cfg);
        common::assert_passed(&o);
        let nvmes = driven(&o, "nvme");
        assert_eq!(nvmes.len(), count, "{}", common::explain(&o));
        assert!(nvmes.iter().all(|f| f.problems.is_empty()), "{}", common::explain(&o));
        if count == 40 {
            // 40 x 5 vectors exceed the 176 message vectors: the last ones fall back as Linux does.
            let intx: Vec<_> = nvmes.iter().filter(|f| f.irq_mode == IrqMode::Intx).collect();
            assert!(!intx.is_empty(), "{}", common::explain(&o));
            assert!(intx.iter().all(|f| f.irq_reason.as_deref().unwrap_or("").contains("vectors exhausted")), "{}", common::explain(&o));
        }
    }
}

#[test]
fn soak_on_shared_intx_lines_keeps_the_whole_write_order_trace() {
    // Every INTx interrupt reads each sharer's Status, all recorded: 3000 interrupts on 8 sharers make
    // tens of thousands of accesses.
    let cfg = many(common::config(Machine::Pc).default_devices(false), "edu", 8, 3).append("nomsi soak=3000");
    let o = common::boot(&cfg);
    common::assert_passed(&o);
    let orders: Vec<_> = o.report.scenarios.iter().filter(|s| s.name == "write-order").collect();
    assert_eq!(orders.len(), 8, "{}", common::explain(&o));
    let recorded: u64 = orders.iter().map(|s| s.detail.split(' ').next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0)).sum();
    assert!(recorded > 8192, "{recorded} accesses checked: more than the old trace's 8192{}", common::explain(&o));
    let soak = o.report.scenarios.iter().find(|s| s.name == "soak").expect("the soak ran");
    assert!(soak.detail.starts_with("soak: 3000 interrupts, 0 lost, 0 duplicated"), "{}", soak.detail);
}

#[test]
fn seventy_driven_devices_are_all_driven_and_checked() {
    let cfg = many(common::config(Machine::Q35).default_devices(false), "edu", 70, 2);
    let o = common::boot(&cfg);
    common::assert_passed(&o);
    let edus = driven(&o, "edu");
    assert_eq!(edus.len(), 70, "{}", common::explain(&o));
    assert!(edus.iter().all(|f| f.irq_mode == IrqMode::Msi), "{}", common::explain(&o));
    let orders = o.report.scenarios.iter().filter(|s| s.name == "write-order" && s.result == ScenarioResult::Pass).count();
    assert!(orders >= 70, "every owned function's write order is checked{}", common::explain(&o));
}

#[test]
fn a_trace_beyond_the_heap_fails_the_run_on_capacity_without_faking_a_verdict() {
    // 8 MiB of RAM leave a heap of about 6 MiB; 40000 interrupts on 8 sharers record about 440000
    // accesses (7 MB), and the trace doubles as it grows. The soak itself is sound; the write order
    // cannot be proved either way.
    let cfg = many(common::config(Machine::Pc).default_devices(false), "edu", 8, 3)
        .qemu_arg("-m")
        .qemu_arg("8M")
        .append("nomsi soak=40000");
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    assert_eq!(o.exit, msifw_host::Exit::Failed, "{why}");
    let failed: Vec<_> = o.report.scenarios.iter().filter(|s| s.result == ScenarioResult::Fail).collect();
    assert!(failed.len() == 1 && failed[0].name == "capacity" && failed[0].detail.contains("heap exhausted"), "{failed:?}{why}");
    let orders: Vec<_> = o.report.scenarios.iter().filter(|s| s.name == "write-order").collect();
    assert!(orders.len() == 8 && orders.iter().all(|s| s.result == ScenarioResult::Skip), "{orders:?}{why}");
    assert!(o.report.problems.iter().any(|p| p.source == "capacity" && p.detail.contains("trace")), "{why}");
    let soak = o.report.scenarios.iter().find(|s| s.name == "soak").expect("the soak ran");
    assert_eq!(soak.result, ScenarioResult::Pass, "{why}");
}

#[test]
fn bars_spread_over_twenty_gib_above_4_gib_are_all_mapped() {
    // SeaBIOS places ten 2 GiB BARs from 6 GiB up: 20 page directories (16 page-table pages in .bss
    // before: the last BARs were left unmapped, each a `paging` problem).
    let mut cfg = common::config(Machine::Q35);
    for i in 0..10 {
        cfg = cfg.device(format!("pci-testdev,membar=2G,addr={:02x}.0", 5 + i));
    }
    let o = common::boot(&cfg);
    common::assert_passed(&o);
    let high = o.report.functions.iter().flat_map(|f| f.bars.iter()).filter(|b| b.size == 2 << 30).count();
    assert_eq!(high, 10, "{}", common::explain(&o));
    assert!(o.report.problems.iter().all(|p| p.source != "paging"), "{:?}{}", o.report.problems, common::explain(&o));
}

#[test]
fn seventy_e1000e_outrun_the_vectors_and_fall_back_to_shared_intx() {
    // 70 x 5 MSI-X vectors are twice the CPU's 176 message vectors: as in Linux, the first get all
    // five, one gets fewer, the rest fall back to INTx (no MSI vector is left either) and share q35's
    // eight PCI GSIs, with irq_reason saying why; every one is driven and checked, none fails.
    let cfg = many(common::config(Machine::Q35).default_devices(false), "e1000e,romfile=", 70, 2);
    let o = common::boot(&cfg);
    common::assert_passed(&o);
    let nics = driven(&o, "e1000e");
    assert_eq!(nics.len(), 70, "{}", common::explain(&o));
    let intx: Vec<_> = nics.iter().filter(|f| f.irq_mode == IrqMode::Intx).collect();
    assert!(intx.len() >= 30, "{} on INTx{}", intx.len(), common::explain(&o));
    assert!(intx.iter().all(|f| f.irq_reason.as_deref().unwrap_or("").contains("vectors exhausted")), "{}", common::explain(&o));
}

#[test]
fn dma_memory_beyond_the_heap_fails_the_run_on_capacity_not_the_devices() {
    // 4 MiB of RAM leave a heap of at most 3 MiB whatever the image's size (1.9 MiB now), less than 64
    // controllers' DMA pages (2.8 MiB): the first controllers get theirs, the rest are not
    // driven (SKIP, naming the limit), and one `capacity` FAIL fails the run; no device check fails and
    // nothing else runs out (a reserve stays free for the run's own lists).
    let cfg = many(common::config(Machine::Q35).default_devices(false), "nvme,serial=cap{n}", 64, 5).qemu_arg("-m").qemu_arg("4M");
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    assert_eq!(o.exit, msifw_host::Exit::Failed, "{why}");
    let failed: Vec<_> = o.report.scenarios.iter().filter(|s| s.result == ScenarioResult::Fail).collect();
    assert!(failed.len() == 1 && failed[0].name == "capacity" && failed[0].detail.contains("no DMA memory"), "{failed:?}{why}");
    let delivered = o.report.scenarios.iter().filter(|s| s.name.ends_with("-delivery") && s.result == ScenarioResult::Pass).count();
    let kept_out = o.report.scenarios.iter().filter(|s| s.result == ScenarioResult::Skip && s.detail.contains("no DMA memory")).count();
    // The 64 controllers and q35's built-in AHCI at 00:1f.2, which needs a DMA page too.
    assert!(delivered > 0 && kept_out > 0 && delivered + kept_out == 64 + 1, "{delivered} driven, {kept_out} kept out{why}");
}

#[test]
fn an_aml_namespace_beyond_the_heap_fails_the_run_on_capacity() {
    // 3 MiB of RAM leave a heap of under 1 MiB: too little to load q35's DSDT into the evaluator with its
    // budget. That is msifw's own limit: one `capacity` FAIL naming it (no allocation failure, no panic),
    // and the devices are still checked (root buses from the peer-bus probe, INTx by the chipset rule).
    let cfg = common::config(Machine::Q35).qemu_arg("-m").qemu_arg("3M");
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    assert_eq!(o.exit, msifw_host::Exit::Failed, "{why}");
    let failed: Vec<_> = o.report.scenarios.iter().filter(|s| s.result == ScenarioResult::Fail).collect();
    assert!(failed.len() == 1 && failed[0].name == "capacity" && failed[0].detail.contains("AML namespace"), "{failed:?}{why}");
    assert!(o.report.scenarios.iter().any(|s| s.name == "msix-delivery" && s.result == ScenarioResult::Pass), "{why}");
}
