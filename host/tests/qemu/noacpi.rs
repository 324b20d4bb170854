//! No ACPI (`-machine acpi=off`, `-no-acpi`): the IOAPIC and PCI INTx routing come from the MP table the boot
//! firmware leaves (Intel MP 1.4), as Linux takes them, and the missing ACPI is one report line, not one per
//! thing it changes. What the tables hold on QEMU 7.2:
//! - SeaBIOS: IOAPIC 0 at 0xFEC00000; one entry per bus-0 device and pin that has a function (bridges' own
//!   INTA included), to the ISA IRQ it wrote into Interrupt Line (10/11), active-high, level; nothing for
//!   buses behind bridges. A function behind a bridge is routed through the bridge's entry when its swizzled
//!   pin is the bridge's own INTA, else by the chipset's rule.
//! - qboot (also QEMU's `bios-microvm.bin`): IOAPIC 2 and an ISA bus only, no PCI bus, and an entry count
//!   of 0: the IOAPIC comes from it, INTx from the chipset's rule.
//! - q35 with `acpi=off` under SeaBIOS still has ACPI: SeaBIOS builds its own tables (below).
//!
//! Neither ACPI nor an MP table: SeaBIOS builds no MP table when it is told of more than 255 possible CPUs
//! (`etc/max-cpus`, given here through `-fw_cfg`; QEMU only warns about the name). INTx is then one SKIP with
//! the reason, and the run passes.

use crate::common;

use msifw_host::{IrqMode, Machine, RunConfig, RunOutcome, ScenarioResult};

/// Every driven function `bdfs` is on INTx, its delivery passed with interrupts counted, and its route came
/// from `source` to `gsi`.
fn assert_intx(o: &RunOutcome, expect: &[(&str, &str, u32)]) {
    let why = common::explain(o);
    for &(bdf, source, gsi) in expect {
        let f = o
            .report
            .function(bdf)
            .unwrap_or_else(|| panic!("{bdf} not reported{why}"));
        assert_eq!(f.irq_mode, IrqMode::Intx, "{bdf}: mode{why}");
        assert_eq!(
            (f.route_source.as_deref(), f.gsi),
            (Some(source), Some(gsi)),
            "{bdf}: route{why}"
        );
        assert!(f.interrupts > 0, "{bdf}: no interrupt counted{why}");
        let s = o
            .report
            .scenarios
            .iter()
            .find(|s| s.name == "intx-delivery" && s.bdf.as_deref() == Some(bdf));
        assert!(
            s.is_some_and(|s| s.result == ScenarioResult::Pass),
            "{bdf}: intx-delivery {s:?}{why}"
        );
    }
}

/// The run passed, INTx routing is `routing`, and the missing ACPI is one line, with `extra` other
/// problems of the given sources.
fn assert_one_cause(o: &RunOutcome, routing: &str, extra: &[&str]) {
    let why = common::explain(o);
    common::assert_passed(o);
    let p = o
        .report
        .platform
        .as_ref()
        .unwrap_or_else(|| panic!("no platform record{why}"));
    assert_eq!(p.intx_routing, routing, "{why}");
    assert_eq!(p.config_access, "port", "{why}");
    let acpi: Vec<_> = o
        .report
        .problems
        .iter()
        .filter(|p| p.source == "acpi")
        .collect();
    assert!(
        acpi.len() == 1 && acpi[0].detail.starts_with("no ACPI tables"),
        "one line for the missing ACPI: {acpi:?}{why}"
    );
    let mut others: Vec<&str> = o
        .report
        .problems
        .iter()
        .filter(|p| p.source != "acpi")
        .map(|p| p.source.as_str())
        .collect();
    others.sort();
    assert_eq!(others, extra, "{why}");
}

fn no_acpi(machine: Machine) -> RunConfig {
    common::config(machine)
        .qemu_arg("-machine")
        .qemu_arg("acpi=off")
        .append("nomsi")
}

#[test]
fn pc_routes_intx_through_the_mp_table() {
    for cfg in [
        no_acpi(Machine::Pc),
        common::config(Machine::Pc)
            .qemu_arg("-no-acpi")
            .append("nomsi"),
    ] {
        let o = common::boot(&cfg);
        assert_one_cause(&o, "mp-table", &[]);
        assert_intx(
            &o,
            &[
                ("00:02.0", "mp-table", 10),
                ("00:03.0", "mp-table", 11),
                ("00:04.0", "mp-table", 11),
            ],
        );
    }
}

/// Behind a pci-bridge at 00:05.0 (its INTA on line 10): 01:04.0 INTA swizzles to the bridge's INTA, which
/// the MP table lists; 01:01.0 (INTB of slot 5) and 01:02.0 (INTC) are not listed, so the PIIX3 registers
/// route them, and the lines they share with the table's entries keep the table's trigger and polarity.
#[test]
fn pc_functions_behind_a_pci_bridge() {
    let cfg = no_acpi(Machine::Pc)
        .device("pci-bridge,id=br,chassis_nr=1,addr=05.0")
        .device("edu,bus=br,addr=04.0")
        .device("edu,bus=br,addr=01.0")
        .device("e1000e,bus=br,addr=02.0,romfile=");
    let o = common::boot(&cfg);
    assert_one_cause(&o, "mp-table", &[]);
    assert_intx(
        &o,
        &[
            ("00:02.0", "mp-table", 10),
            ("01:04.0", "mp-table", 10),
            ("01:01.0", "piix-pirq", 10),
            ("01:02.0", "piix-pirq", 11),
        ],
    );
}

/// q35 with `acpi=off` is not a platform without ACPI: QEMU builds no tables, but SeaBIOS then makes its
/// own (its legacy `acpi_setup`, for the ICH9 LPC it finds): MADT, MCFG, HPET and a DSDT whose `_PRT` names
/// links SeaBIOS left disabled (PIRQ route registers 0x80; Linux would program them through `_SRS`). With
/// ACPI there, the MP table is not read (as Linux) and the chipset's rule routes those links.
#[test]
fn q35_acpi_off_gets_seabios_own_acpi_tables() {
    let o = common::boot(&no_acpi(Machine::Q35));
    let why = common::explain(&o);
    common::assert_passed(&o);
    let p = o
        .report
        .platform
        .as_ref()
        .unwrap_or_else(|| panic!("no platform record{why}"));
    assert_eq!(
        (p.intx_routing.as_str(), p.config_access.as_str()),
        ("acpi-prt", "ecam"),
        "{why}"
    );
    assert!(
        o.report
            .problems
            .iter()
            .all(|p| p.source != "acpi" && p.source != "mptable"),
        "{why}"
    );
    assert_intx(
        &o,
        &[
            ("00:02.0", "chipset", 22),
            ("00:03.0", "chipset", 23),
            ("00:04.0", "chipset", 20),
        ],
    );
}

/// qboot builds no ACPI tables without QEMU's and an MP table with no PCI bus: the IOAPIC comes from it,
/// INTx from the chipset's rule (pc: the PIIX3 registers, q35: GSI 16 + PIRQ); its entry count of 0 is
/// reported.
#[test]
fn qboot_mp_table_without_pci_entries() {
    for (machine, expect) in [
        (
            Machine::Pc,
            [
                ("00:02.0", "piix-pirq", 10),
                ("00:03.0", "piix-pirq", 11),
                ("00:04.0", "piix-pirq", 11),
            ],
        ),
        (
            Machine::Q35,
            [
                ("00:02.0", "chipset", 22),
                ("00:03.0", "chipset", 23),
                ("00:04.0", "chipset", 20),
            ],
        ),
    ] {
        let o = common::boot(
            &no_acpi(machine)
                .qemu_arg("-bios")
                .qemu_arg("/usr/share/qemu/qboot.rom"),
        );
        assert_one_cause(&o, "chipset", &["mptable"]);
        let why = common::explain(&o);
        assert!(
            o.report
                .problems
                .iter()
                .any(|p| p.source == "mptable" && p.detail.contains("counts 0 entries")),
            "{why}"
        );
        assert_intx(&o, &expect);
    }
}

/// `scenario=all` boots several times, crash-restart twice in one boot: the missing ACPI is still one line.
#[test]
fn scenario_all_reports_the_cause_once() {
    let cfg = common::config(Machine::Pc)
        .qemu_arg("-no-acpi")
        .append("scenario=all");
    let o = msifw_host::run_all(&cfg).unwrap_or_else(|e| panic!("could not run: {e}"));
    assert_one_cause(&o, "mp-table", &[]);
}

/// SeaBIOS told of 256 possible CPUs builds no MP table (`qemu_platform_setup`: `MaxCountCPUs <= 255`).
fn no_acpi_no_mp_table() -> RunConfig {
    let path = std::env::temp_dir().join(format!("msifw-max-cpus-{}.bin", std::process::id()));
    std::fs::write(&path, 256u16.to_le_bytes()).expect("write the fw_cfg file");
    common::config(Machine::Pc)
        .qemu_arg("-machine")
        .qemu_arg("acpi=off")
        .qemu_arg("-fw_cfg")
        .qemu_arg(format!("name=etc/max-cpus,file={}", path.display()))
}

/// No IOAPIC is described: INTx is one SKIP naming the reason and the functions (no FAIL, nothing per
/// function), each function's `irq_reason` says so, and the missing ACPI is one line.
#[test]
fn no_acpi_and_no_mp_table_intx_is_one_skip() {
    let o = common::boot(&no_acpi_no_mp_table().append("nomsi"));
    let why = common::explain(&o);
    assert_one_cause(&o, "none", &[]);
    assert!(
        o.report.problems[0].detail.contains("no MP table either"),
        "{why}"
    );
    let intx: Vec<_> = o
        .report
        .scenarios
        .iter()
        .filter(|s| s.name == "intx-delivery")
        .collect();
    assert!(
        intx.len() == 1
            && intx[0].bdf.is_none()
            && intx[0].result == ScenarioResult::Skip
            && intx[0].detail.contains("no IOAPIC is described")
            && intx[0]
                .detail
                .contains("3 function(s) left without INTx: 00:02.0 00:03.0 00:04.0"),
        "one INTx skip with the reason: {intx:?}{why}"
    );
    for bdf in ["00:02.0", "00:03.0", "00:04.0"] {
        let f = o
            .report
            .function(bdf)
            .unwrap_or_else(|| panic!("{bdf} not reported{why}"));
        assert_eq!(f.irq_mode, IrqMode::None, "{bdf}{why}");
        assert!(
            f.irq_reason
                .as_deref()
                .is_some_and(|r| r.contains("INTx unavailable on this platform")),
            "{bdf}: {:?}{why}",
            f.irq_reason
        );
        assert!(
            f.problems.is_empty(),
            "{bdf}: the cause is not repeated per function: {:?}{why}",
            f.problems
        );
    }
    // Message-signalled interrupts need no IOAPIC: the same platform passes with every device driven.
    let o = common::boot(&no_acpi_no_mp_table());
    let why = common::explain(&o);
    assert_one_cause(&o, "none", &[]);
    assert!(
        o.report
            .scenarios
            .iter()
            .all(|s| s.result == ScenarioResult::Pass),
        "{why}"
    );
    for bdf in ["00:02.0", "00:03.0", "00:04.0"] {
        let f = o
            .report
            .function(bdf)
            .unwrap_or_else(|| panic!("{bdf} not reported{why}"));
        assert!(
            f.irq_mode != IrqMode::None && f.interrupts > 0,
            "{bdf}{why}"
        );
    }
}
