//! virtio-pci modern transport (`virtio-modern`, virtio 1.x 4.1) on q35, one boot with every shape at
//! once: virtio-rng, virtio-blk and virtio-net, transitional (1af4:1005/1001/1000, modern preferred)
//! and modern-only (`disable-legacy=on`, 1af4:1044/1042/1041), with `vectors=0` (no MSI-X: INTx), `1`,
//! the defaults (2, 2, 4), many (`num-queues=4,vectors=5`; `vectors=8`), INTx forced on a function that
//! has MSI-X, and behind a PCIe root port. Each request queue interrupts on its own entry (rng fills a
//! buffer, blk reads sector 0 of a disk image made here, net sends a frame and a control command);
//! the configuration and RX vectors are programmed and must stay silent. Where the table has fewer
//! entries than queues, a queue left at NO_VECTOR completes a request without interrupting
//! (`virtio-no-vector`); the configuration vector delivers the DEVICE_NEEDS_RESET notification
//! (`virtio-config`); and with MSI-X and INTx disabled every request queue completes a request with
//! nothing arriving (`msix-disabled`). A `disable-modern=on`
//! virtio-net still goes to the legacy driver. The seed 000 shutdown runs on all of them: the modern
//! ones turn MSI-X off without their device configuration moving; `reset-restore` brings the one behind
//! the root port back after its FLR.

use crate::common;

use msifw_host::{IrqMode, Machine, RunOutcome, ScenarioResult};

/// (BDF, QEMU device, expected device ID, mode, vectors, request queues interrupting).
const DEVICES: &[(&str, &str, &str, IrqMode, usize, usize)] = &[
    ("00:03.0", "virtio-rng-pci,addr=03.0", "1005", IrqMode::Msix, 2, 1),
    ("00:04.0", "virtio-rng-pci,disable-legacy=on,vectors=1,addr=04.0", "1044", IrqMode::Msix, 1, 1),
    ("00:05.0", "virtio-blk-pci,drive=d0,disable-legacy=on,num-queues=4,vectors=5,addr=05.0", "1042", IrqMode::Msix, 5, 4),
    ("00:06.0", "virtio-blk-pci,drive=d1,vectors=0,addr=06.0", "1001", IrqMode::Intx, 1, 1),
    ("00:07.0", "virtio-net-pci,addr=07.0", "1000", IrqMode::Msix, 4, 2),
    ("00:08.0", "virtio-net-pci,disable-legacy=on,vectors=8,addr=08.0", "1041", IrqMode::Msix, 4, 2),
    ("00:09.0", "virtio-rng-pci,addr=09.0", "1005", IrqMode::Intx, 1, 1),
    ("00:0a.0", "virtio-net-pci,disable-legacy=on,addr=0a.0", "1041", IrqMode::Intx, 1, 1),
    ("00:0b.0", "virtio-blk-pci,drive=d2,num-queues=2,vectors=1,addr=0b.0", "1001", IrqMode::Msix, 1, 1),
    ("00:0e.0", "virtio-net-pci,vectors=1,addr=0e.0", "1000", IrqMode::Msix, 1, 1),
];

/// What the disk images' sector 0 starts with ("msifw-se"), as the firmware logs it.
const SECTOR0: &[u8] = b"msifw-sector0";
const SECTOR0_LOGGED: &str = "first bytes 0x6d736966772d7365";

fn image(name: &str) -> String {
    let path = std::env::temp_dir().join(format!("msifw-virtio-{}-{name}.img", std::process::id()));
    let mut data = vec![0u8; 1 << 20];
    data[..SECTOR0.len()].copy_from_slice(SECTOR0);
    std::fs::write(&path, data).expect("write the disk image");
    path.to_string_lossy().into_owned()
}

fn passed<'a>(o: &'a RunOutcome, bdf: &'a str, name: &str) -> &'a str {
    let why = common::explain(o);
    let s = o.report.scenarios_for(bdf).find(|s| s.name == name).unwrap_or_else(|| panic!("{bdf}: no {name} scenario{why}"));
    assert_eq!(s.result, ScenarioResult::Pass, "{bdf}: {name}: {}{why}", s.detail);
    &s.detail
}

#[test]
fn rng_blk_net_interrupt_on_every_request_queue_vector_and_through_intx() {
    let disks: Vec<String> = ["d0", "d1", "d2"].iter().map(|d| image(d)).collect();
    let mut cfg = common::config(Machine::Q35)
        .default_devices(false)
        .append("irq.00:09.0=intx irq.00:0a.0=intx scenario=shutdown,reset-restore")
        .device("virtio-net-pci,disable-modern=on,romfile=,addr=0c.0")
        .device("pcie-root-port,id=rp1,chassis=1,addr=0d.0")
        .device("virtio-rng-pci,bus=rp1");
    for (i, d) in disks.iter().enumerate() {
        cfg = cfg.qemu_arg("-drive").qemu_arg(format!("file={d},if=none,id=d{i},format=raw"));
    }
    for (_, dev, ..) in DEVICES {
        cfg = cfg.device(format!("{dev},romfile="));
    }
    let o = common::boot(&cfg);
    for d in &disks {
        let _ = std::fs::remove_file(d);
    }
    common::assert_passed(&o);
    let why = common::explain(&o);
    for &(bdf, dev, id, mode, vectors, queues) in DEVICES {
        let f = o.report.function(bdf).unwrap_or_else(|| panic!("{bdf} ({dev}) not listed{why}"));
        assert_eq!((f.vendor.as_str(), f.device.as_str()), ("1af4", id), "{bdf}{why}");
        assert_eq!(f.driver.as_deref(), Some("virtio-modern"), "{bdf} ({dev}){why}");
        assert_eq!(f.irq_mode, mode, "{bdf} ({dev}){why}");
        assert_eq!(f.vectors.len(), vectors, "{bdf} ({dev}): vectors{why}");
        let delivery = passed(&o, bdf, if mode == IrqMode::Msix { "msix-delivery" } else { "intx-delivery" });
        let expect = format!("{} interrupts on {queues} vector(s)", 2 * queues);
        assert!(
            delivery.starts_with(&expect),
            "{bdf} ({dev}): each request queue twice on its own vector, the rest silent: {delivery}{why}"
        );
        if mode == IrqMode::Msix {
            // With MSI-X (and INTx) disabled the requests complete, ISR says so, and nothing arrives.
            let d = passed(&o, bdf, "msix-disabled");
            assert!(d.contains(&format!("{queues} request(s) completed, ISR status 0x1, no message")), "{bdf}: {d}{why}");
            passed(&o, bdf, "msix-vector-mask");
            passed(&o, bdf, "msix-function-mask");
        }
        passed(&o, bdf, "write-order");
    }
    // A table smaller than the queues plus the configuration vector is said on the function.
    let rng1 = o.report.function("00:04.0").unwrap();
    assert!(rng1.irq_reason.as_deref().is_some_and(|r| r.contains("1 MSI-X vectors for 2 wanted")), "{:?}{why}", rng1.irq_reason);
    // A request queue the table had no entry for (queue_msix_vector NO_VECTOR) completes a request and
    // stays silent: blk's second queue, net's control queue.
    for bdf in ["00:0b.0", "00:0e.0"] {
        let d = passed(&o, bdf, "virtio-no-vector");
        assert!(d.contains("at NO_VECTOR completed a request; no interrupt"), "{bdf}: {d}{why}");
    }
    let no_vector: Vec<_> =
        o.report.scenarios.iter().filter(|s| s.name == "virtio-no-vector").map(|s| s.bdf.clone().unwrap_or_default()).collect();
    assert_eq!(no_vector, ["00:0b.0", "00:0e.0"], "only functions with a queue left at NO_VECTOR are checked{why}");
    // The configuration vector delivers the device's DEVICE_NEEDS_RESET notification exactly once, on the
    // entry msix_config names (the guest cannot cause a configuration change of these models otherwise).
    for (bdf, entry) in [("00:03.0", 1), ("00:05.0", 4), ("00:07.0", 2), ("00:08.0", 2)] {
        let d = passed(&o, bdf, "virtio-config");
        assert!(d.contains(&format!("exactly one message on configuration entry {entry}, none elsewhere")), "{bdf}: {d}{why}");
    }
    for bdf in ["00:04.0", "00:0b.0", "00:0e.0"] {
        assert!(o.report.scenarios_for(bdf).all(|s| s.name != "virtio-config"), "{bdf}: no configuration vector, no check{why}");
    }
    // Behind a root port the device is modern-only (disable-legacy=auto).
    let port_rng = o
        .report
        .functions
        .iter()
        .find(|f| f.device == "1044" && f.bdf.starts_with("01:"))
        .unwrap_or_else(|| panic!("virtio-rng behind rp1{why}"));
    assert_eq!(port_rng.driver.as_deref(), Some("virtio-modern"), "{why}");
    passed(&o, &port_rng.bdf, "msix-delivery");
    // Its FLR wipes the device too: the driver brings it back (reinitialize) and it interrupts again.
    let d = passed(&o, &port_rng.bdf, "reset-restore");
    assert!(d.contains("FLR wiped the table") && d.contains("1 interrupts on 1 vector(s)"), "{d}{why}");
    // disable-modern=on: no vendor capabilities, the legacy driver.
    let legacy = o.report.function("00:0c.0").unwrap_or_else(|| panic!("legacy virtio-net{why}"));
    assert_eq!(legacy.driver.as_deref(), Some("virtio-net"), "{why}");
    // Shutdown (seed 000) through the modern interface: MSI-X really turned off, no quirk needed, and the
    // device-specific configuration stays where the capability put it; the legacy function keeps its quirk.
    for bdf in ["00:05.0", "00:07.0"] {
        let d = passed(&o, bdf, "shutdown");
        assert!(d.starts_with("interrupts shut down") && d.contains("config at 0x2000 before, 0x2000 after"), "{bdf}: {d}{why}");
    }
    let d = passed(&o, "00:0c.0", "shutdown");
    assert!(d.contains("quirk") && d.contains("0x18 before, 0x18 after"), "legacy virtio-net: {d}{why}");
    // Every blk request queue read the image's sector 0.
    let reads = o.defmt.lines.iter().filter(|l| l.message.contains("read sector 0") && l.message.contains(SECTOR0_LOGGED)).count();
    assert_eq!(reads, 4 + 1 + 1, "one first read per blk request queue (00:05.0: 4, 00:06.0, 00:0b.0){why}");
}

/// With several CPUs the virtio-modern devices are spread like every other device: `msix-disabled`
/// re-enables MSI-X (every entry on the boot CPU) and then aims each entry back at the CPU setup's spread
/// gave it, so the delivery checks after it find the entries on as many CPUs as there are entries (up to
/// the CPUs online), not all on CPU 0.
#[test]
fn virtio_entries_stay_spread_over_the_cpus_after_msix_disabled() {
    let cfg = common::config(Machine::Q35)
        .default_devices(false)
        .smp("4")
        .device("virtio-blk-pci,addr=07.0")
        .device("virtio-net-pci,romfile=,addr=06.0");
    let o = common::boot(&cfg);
    common::assert_passed(&o);
    let why = common::explain(&o);
    for bdf in ["00:06.0", "00:07.0"] {
        let d = passed(&o, bdf, "msix-disabled");
        assert!(d.contains("MSI-X enabled again") && d.contains("entries aimed back at their CPUs") && !d.contains(", 0 entries aimed back"), "{bdf}: {d}{why}");
        let f = o.report.function(bdf).unwrap_or_else(|| panic!("{bdf} not listed{why}"));
        assert_eq!(f.irq_mode, IrqMode::Msix, "{bdf}{why}");
        let mut cpus: Vec<u32> = f.vector_cpus.iter().map(|c| c.unwrap_or_else(|| panic!("{bdf}: an entry on no single CPU{why}"))).collect();
        assert_eq!(cpus.len(), f.vectors.len(), "{bdf}{why}");
        cpus.sort_unstable();
        cpus.dedup();
        assert_eq!(cpus.len(), f.vectors.len().min(4), "{bdf}: entries on CPUs {:?}{why}", f.vector_cpus);
        passed(&o, bdf, "msix-delivery");
    }
}
