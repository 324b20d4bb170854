//! Hot removal under QEMU: an edu behind a hot-pluggable pcie-root-port is deleted with QMP `device_del`
//! while its MSI is live. The firmware answers the attention button by powering the slot off, sees the
//! function read all-ones, tears it down (vectors freed) and the other devices keep delivering.

use crate::common;

use msifw_host::{Machine, ScenarioResult};

#[test]
fn device_del_below_a_root_port_is_torn_down_and_the_rest_keeps_running() {
    let cfg = common::config(Machine::Q35)
        .device("pcie-root-port,id=rp1,chassis=1,slot=1,addr=06.0")
        .device("edu,bus=rp1,id=victim")
        // Native PCIe hot-plug (attention button, slot power): q35 in QEMU 6.1+ hands root-port hot-plug
        // to ACPI by default, which a firmware without an AML interpreter cannot answer.
        .qemu_arg("-global")
        .qemu_arg("ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off")
        .append("scenario=hot-unplug")
        .unplug("victim");
    let o = common::boot(&cfg);
    common::assert_passed(&o);
    let s = o
        .report
        .scenarios
        .iter()
        .find(|s| s.name == "hot-unplug")
        .unwrap_or_else(|| panic!("no hot-unplug scenario{}", common::explain(&o)));
    assert_eq!(s.result, ScenarioResult::Pass, "{}", s.detail);
    assert_eq!(s.bdf.as_deref(), Some("00:06.0"), "{}", s.detail);
    // The default e1000e, nvme, edu, q35's built-in AHCI and the port itself still deliver.
    assert!(s.detail.contains("5 other devices still deliver"), "{}", s.detail);
}
