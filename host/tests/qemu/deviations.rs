//! Known deviations (host/src/deviations.rs) end to end on the host, from synthetic reports: the frames a
//! firmware sends, judged against a platform the test names, through the verdict, the text report, the
//! JSON document and JUnit. One QEMU boot (the last test) checks what a real run gives the table: the
//! firmware's CPU list with its APIC-ID hole, and QEMU's version.

use crate::common;

use std::time::Duration;

use msifw_host::deviations::{self, accel_of, apply, apply_table, Deviation, Fact, HostPlatform, QemuPlatform, QemuVersion, Topology, VersionRange};
use msifw_host::junit::{render, run_suite};
use msifw_host::qemu::{MachineFamily, MachineType, QemuCommand};
use msifw_host::{judge, outcome, Accel, Com1Log, Exit, Machine, QemuExit, QemuRun, RunConfig, RunOutcome, ScenarioResult, Source};
use msifw_proto::frame;
use msifw_proto::record as wire;

const HOLE: &[u32] = &[0, 1, 2, 4, 5, 6];
const DENSE: &[u32] = &[0, 1, 2, 3];

fn platform_record(apic_ids: &[u32]) -> wire::Record<'static> {
    wire::Record::Platform(wire::Platform {
        apic_id: 0,
        x2apic: false,
        config_access: wire::ConfigAccess::Ecam(0xb000_0000),
        ioapics: 1,
        cmdline: "oracle".into(),
        boot: "pvh".into(),
        loader: None,
        bar_assignment: wire::BarAssignment::BootFirmware,
        timer_fence: "hpet".into(),
        intx_routing: "acpi-prt".into(),
        config_reason: "ECAM from mcfg".into(),
        root_source: "acpi".into(),
        root_buses: "00-ff PCI0".into(),
        cpus: apic_ids
            .iter()
            .enumerate()
            .map(|(i, &id)| wire::Cpu {
                index: i as u32,
                apic_id: id,
                acpi_uid: i as u32,
                logical_id: 1 << i,
                state: if i == 0 { wire::CpuState::Online } else { wire::CpuState::Offline },
            })
            .collect(),
    })
}

fn scenario(name: &'static str, result: wire::Outcome, detail: &'static str) -> wire::Record<'static> {
    wire::Record::Scenario(wire::Scenario { name: name.into(), bdf: None, result, detail: detail.into(), control: false })
}

/// The COM1 lines a firmware sends for these records, with its `end` counting them as it does.
fn lines(records: &[wire::Record<'static>]) -> Vec<String> {
    let mut end = wire::End::default();
    let mut out = Vec::new();
    for r in records {
        if let wire::Record::Scenario(s) = r {
            match s.result {
                wire::Outcome::Pass => end.passed += 1,
                wire::Outcome::Fail => end.failed += 1,
                _ => end.skipped += 1,
            }
        }
        out.push(line(r));
    }
    out.push(line(&wire::Record::End(end)));
    out
}

fn line(record: &wire::Record) -> String {
    let mut bytes = Vec::new();
    frame::encode(record, &mut bytes).unwrap();
    String::from_utf8(bytes).unwrap()
}

fn qemu(version: (u32, u32, u32), accel: Accel, machine: &str) -> HostPlatform {
    HostPlatform::Qemu(QemuPlatform {
        version: Ok(QemuVersion(version.0, version.1, version.2)),
        accel: Ok(accel),
        machine: MachineType::parse(machine),
        kvm_vector_hashing: Ok(true),
    })
}

fn tcg72() -> HostPlatform {
    qemu((7, 2, 22), Accel::Tcg, "q35")
}

/// A QEMU run's outcome: the firmware's lines, the table applied for `platform`, judged with QEMU's
/// status as the firmware would have exited (3 when it saw a failure).
fn run_on(platform: &HostPlatform, records: &[wire::Record<'static>]) -> RunOutcome {
    let mut com1 = Com1Log::new(false);
    for l in lines(records) {
        com1.push_line(&l);
    }
    deviations::apply(&mut com1.report, platform);
    let failed = com1.report.end.is_some_and(|e| e.failed > 0);
    let status = QemuExit::Code(if failed { 3 } else { 1 });
    let source = Source::Qemu(QemuRun {
        exit: status,
        command: QemuCommand { program: "qemu-system-x86_64".into(), args: vec!["-M".into(), "q35".into()] },
        stderr: String::new(),
        machine: "q35".into(),
        accel: Accel::Tcg,
        elapsed: Duration::from_millis(800),
    });
    outcome(com1, Vec::new(), None, |report, output| judge(status, report, output), source)
}

fn result_of(o: &RunOutcome, name: &str) -> ScenarioResult {
    common::scenarios(o, name).next().unwrap_or_else(|| panic!("no {name}")).result
}

/// The run of the issue: `-smp 6,sockets=2,cores=3` under TCG, logical flat fails (CPUs 4-6 got
/// nothing), lowest priority failed too, everything else passed.
fn hole_run() -> Vec<wire::Record<'static>> {
    vec![
        platform_record(HOLE),
        scenario("msix-delivery", wire::Outcome::Pass, "10 interrupts"),
        scenario("dest-logical-flat", wire::Outcome::Fail, "logical flat 0x3f: CPUs 3, 4, 5 (APIC 4, 5, 6) got nothing"),
        scenario("dest-lowest-priority", wire::Outcome::Fail, "TPR 0x80 on CPU 0, yet CPU 0 took it"),
    ]
}

#[test]
fn a_failure_a_row_covers_is_an_expected_failure_and_the_run_passes() {
    let o = run_on(&tcg72(), &hole_run());
    let why = common::explain(&o);
    let s = common::assert_xfail(&o, "dest-logical-flat", "tcg-logical-apic-id-hole");
    let d = s.deviation.as_ref().unwrap();
    assert!(d.reason.contains("first APIC ID no CPU has") && d.reference.contains("smp-ir.md §2.3") && d.reference.contains("hw/intc/apic.c"), "{d:?}");
    assert_eq!(d.platform, "QEMU 7.2.22 tcg q35, APIC IDs 0,1,2,4,5,6");
    assert_eq!(s.detail, "logical flat 0x3f: CPUs 3, 4, 5 (APIC 4, 5, 6) got nothing", "the firmware's detail is kept");
    common::assert_xfail(&o, "dest-lowest-priority", "tcg-lowest-priority-lowest-id");
    assert_eq!(result_of(&o, "msix-delivery"), ScenarioResult::Pass);
    // QEMU exited with 3 (the firmware saw two failures); both were expected: the run passes.
    assert_eq!(o.exit, Exit::Passed, "{why}");
    assert!(o.findings.is_empty(), "{:?}", o.findings);
    common::assert_passed(&o);
    assert_eq!(common::assert_pass_or_xfail(&o, "dest-logical-flat"), 1);
    let c = o.report.counts();
    assert_eq!((c.passed, c.failed, c.skipped, c.xfailed, c.xpassed), (1, 0, 0, 2, 0));
    assert!(o.report.check().is_empty(), "the firmware's end counts an xfail as its fail: {:?}", o.report.check());
    assert_eq!(o.summary_line(), "msifw: 1 passed, 0 failed, 0 skipped, 2 xfail, 0 xpass");
}

#[test]
fn a_pass_a_row_covers_is_an_unexpected_pass_and_fails_the_run() {
    let mut records = hole_run();
    records[2] = scenario("dest-logical-flat", wire::Outcome::Pass, "every CPU took its logical-flat interrupt");
    let o = run_on(&tcg72(), &records);
    assert_eq!(result_of(&o, "dest-logical-flat"), ScenarioResult::Xpass);
    assert_eq!(o.exit, Exit::Failed, "an xpass fails the run: {:?}", o.findings);
    assert!(
        o.findings.iter().any(|f| f.contains("XPASS") && f.contains("dest-logical-flat - (known deviation tcg-logical-apic-id-hole)") && f.contains("narrow the row")),
        "{:?}",
        o.findings
    );
    // The xfail beside it is still one.
    assert_eq!(result_of(&o, "dest-lowest-priority"), ScenarioResult::Xfail);
    assert_eq!(o.summary_line(), "msifw: 1 passed, 0 failed, 0 skipped, 1 xfail, 1 xpass");
    // With the firmware's own exit `passed` (status 1) too.
    records.truncate(3);
    let o = run_on(&tcg72(), &records);
    assert_eq!(o.exit, Exit::Failed);
    assert_eq!(o.report.counts().xpassed, 1);
}

#[test]
fn a_failure_no_row_covers_stays_a_failure() {
    let mut records = hole_run();
    records.push(scenario("msi-delivery", wire::Outcome::Fail, "no interrupt"));
    let o = run_on(&tcg72(), &records);
    assert_eq!(result_of(&o, "msi-delivery"), ScenarioResult::Fail);
    assert_eq!(result_of(&o, "dest-logical-flat"), ScenarioResult::Xfail);
    assert_eq!(o.exit, Exit::Failed);
    assert_eq!(o.summary_line(), "msifw: 1 passed, 1 failed, 0 skipped, 2 xfail, 0 xpass");
}

#[test]
fn a_failure_on_a_platform_the_row_does_not_cover_stays_a_failure_and_says_why() {
    let cases: [(HostPlatform, &[u32], &str); 5] = [
        (qemu((7, 2, 22), Accel::Kvm, "q35"), HOLE, "tcg-logical-apic-id-hole: the accelerator is kvm, the row is about tcg"),
        (qemu((8, 0, 0), Accel::Tcg, "q35"), HOLE, "tcg-logical-apic-id-hole: QEMU 8.0.0 is outside the row's versions (7.2.0 to before 7.3.0)"),
        (qemu((7, 1, 0), Accel::Tcg, "pc"), HOLE, "QEMU 7.1.0 is outside"),
        (tcg72(), DENSE, "tcg-logical-apic-id-hole: the row needs one of the first 8 CPUs above a hole in the APIC IDs; the platform record lists APIC IDs 0,1,2,3"),
        (tcg72(), &[], "the row needs one of the first 8 CPUs above a hole in the APIC IDs, and the platform record has no CPU list"),
    ];
    for (platform, ids, why) in cases {
        let mut records = hole_run();
        records[0] = platform_record(ids);
        let o = run_on(&platform, &records);
        assert_eq!(result_of(&o, "dest-logical-flat"), ScenarioResult::Fail, "{platform}: {ids:?}");
        assert_eq!(o.exit, Exit::Failed, "{platform}");
        let text = o.render();
        assert!(text.contains("not applied: dest-logical-flat -: known deviation ") && text.contains(why), "{platform} {ids:?}: {text}");
        let j = o.to_json();
        assert!(j["deviations"]["not_applied"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains(why)), "{j}");
    }
    // Lowest priority needs two CPUs, no hole: it is expected on the dense machine too, and under KVM
    // (vector hashing), but not with one CPU (nothing to arbitrate; it passes there, not an xpass).
    let mut records = hole_run();
    records[0] = platform_record(DENSE);
    assert_eq!(result_of(&run_on(&tcg72(), &records), "dest-lowest-priority"), ScenarioResult::Xfail);
    assert_eq!(result_of(&run_on(&qemu((7, 2, 0), Accel::Kvm, "pc"), &records), "dest-lowest-priority"), ScenarioResult::Xfail);
    records[0] = platform_record(&[0]);
    assert_eq!(result_of(&run_on(&tcg72(), &records), "dest-lowest-priority"), ScenarioResult::Fail, "one CPU: not covered");
}

#[test]
fn no_row_applies_where_the_platform_is_not_known() {
    // A capture from a machine or Bochs: the host did not launch it.
    let unknown = HostPlatform::Unknown("a serial capture".into());
    let o = run_on(&unknown, &hole_run());
    assert_eq!(result_of(&o, "dest-logical-flat"), ScenarioResult::Fail);
    assert_eq!(o.exit, Exit::Failed);
    assert!(o.render().contains("not applied: dest-logical-flat -: known deviation tcg-logical-apic-id-hole: the platform is not known: a serial capture"), "{}", o.render());
    assert_eq!(o.to_json()["deviations"]["platform"], serde_json::Value::Null);
    // A QEMU whose version could not be read, or whose accelerator a verbatim argument may have changed.
    let mut no_version = tcg72();
    if let HostPlatform::Qemu(q) = &mut no_version {
        q.version = Err("qemu-x --version printed nothing".into());
    }
    assert_eq!(result_of(&run_on(&no_version, &hole_run()), "dest-logical-flat"), ScenarioResult::Fail);
    let cfg = RunConfig::new().qemu_arg("-accel").qemu_arg("kvm");
    assert!(accel_of(&cfg).is_err_and(|e| e.contains("`-accel`")));
    assert!(accel_of(&RunConfig::new().qemu_arg("-M").qemu_arg("q35,accel=kvm")).is_err());
    assert!(accel_of(&RunConfig::new().qemu_arg("-enable-kvm")).is_err());
    assert_eq!(accel_of(&RunConfig::new().accel(Accel::Kvm).qemu_arg("-smp").qemu_arg("4")), Ok(Accel::Kvm));
}

#[test]
fn a_decoded_capture_keeps_its_failures() {
    let dir = tempfile::tempdir().unwrap();
    let com1 = dir.path().join("com1.txt");
    let mut text = String::from("msifw 0.1.0: booting\n");
    for l in lines(&hole_run()) {
        text.push_str(&l);
        text.push('\n');
    }
    std::fs::write(&com1, text).unwrap();
    let mut cfg = msifw_host::DecodeConfig::new(&com1);
    cfg.elf = Some(std::env::current_exe().unwrap());
    let o = msifw_host::decode_capture(&cfg).unwrap();
    assert_eq!(result_of(&o, "dest-logical-flat"), ScenarioResult::Fail, "{}", o.render());
    assert_eq!(o.exit, Exit::Failed);
    assert!(o.render().contains("the platform is not known: a serial capture"), "{}", o.render());
}

#[test]
fn rows_are_keyed_by_version_range_accelerator_machine_topology_detail_and_control() {
    const TABLE: &[Deviation] = &[Deviation {
        id: "pc-only",
        scenarios: &["intx-concurrent"],
        detail: Some("line 11"),
        control: false,
        qemu: VersionRange { from: QemuVersion(7, 0, 0), before: None },
        accel: Some(Accel::Kvm),
        machine: Some(MachineFamily::Pc),
        facts: &[Fact::CpusAtLeast(4)],
        reason: "r",
        reference: "ref",
    }];
    let judge = |platform: &HostPlatform, ids: &[u32], detail: &'static str, control: bool| {
        let mut com1 = Com1Log::new(false);
        let mut s = scenario("intx-concurrent", wire::Outcome::Fail, detail);
        if let wire::Record::Scenario(s) = &mut s {
            s.control = control;
        }
        for l in lines(&[platform_record(ids), s]) {
            com1.push_line(&l);
        }
        apply_table(&mut com1.report, platform, TABLE);
        com1.report.scenarios[0].result
    };
    let kvm_pc = qemu((9, 1, 0), Accel::Kvm, "pc-i440fx-9.1");
    assert_eq!(judge(&kvm_pc, DENSE, "GSI on line 11 lost", false), ScenarioResult::Xfail, "open-ended range, pc family");
    assert_eq!(judge(&qemu((9, 1, 0), Accel::Kvm, "q35"), DENSE, "line 11", false), ScenarioResult::Fail, "machine");
    assert_eq!(judge(&qemu((9, 1, 0), Accel::Tcg, "pc"), DENSE, "line 11", false), ScenarioResult::Fail, "accelerator");
    assert_eq!(judge(&qemu((6, 2, 0), Accel::Kvm, "pc"), DENSE, "line 11", false), ScenarioResult::Fail, "version");
    assert_eq!(judge(&kvm_pc, &[0, 1], "line 11", false), ScenarioResult::Fail, "topology: too few CPUs");
    assert_eq!(judge(&kvm_pc, DENSE, "line 10", false), ScenarioResult::Fail, "detail");
    assert_eq!(judge(&kvm_pc, DENSE, "line 11", true), ScenarioResult::Fail, "a control is not the check");
    // The cluster-broadcast row needs the word in the detail.
    let mut records = hole_run();
    records[0] = platform_record(DENSE);
    records.push(scenario("dest-logical-cluster", wire::Outcome::Fail, "cluster broadcast 0xFF reached nobody"));
    let o = run_on(&tcg72(), &records);
    common::assert_xfail(&o, "dest-logical-cluster", "tcg-cluster-broadcast");
    records.pop();
    records.push(scenario("dest-logical-cluster", wire::Outcome::Fail, "cluster 1 member 2 got nothing"));
    assert_eq!(result_of(&run_on(&tcg72(), &records), "dest-logical-cluster"), ScenarioResult::Fail);
}

#[test]
fn apic_id_holes_come_from_the_cpu_list() {
    let t = |ids: &[u32]| Topology { apic_ids: Some(ids.to_vec()) };
    assert_eq!(t(HOLE).apic_id_hole_within(8), Some(true));
    assert_eq!(t(DENSE).apic_id_hole_within(8), Some(false));
    assert_eq!(t(&[3, 1, 0, 2]).apic_id_hole_within(8), Some(false), "order does not matter");
    assert_eq!(t(&[1, 2]).apic_id_hole_within(8), Some(true), "no CPU with APIC ID 0");
    assert_eq!(t(&[0]).apic_id_hole_within(8), Some(false));
    assert_eq!(Topology { apic_ids: None }.apic_id_hole_within(8), None);
    // `-smp 18,sockets=2,cores=9`: 0-8 and 16-24. The hole lies above CPU 8, which a flat check does not
    // reach: its first 8 CPUs are all below it (a pass there is no xpass), but CPU 9 (ID 16) is above.
    let wide: Vec<u32> = (0..9).chain(16..25).collect();
    assert_eq!(t(&wide).apic_id_hole_within(8), Some(false));
    assert_eq!(t(&wide).apic_id_hole_within(10), Some(true));
}

#[test]
fn qemu_versions_parse_and_compare() {
    assert_eq!(QemuVersion::parse("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"), Some(QemuVersion(7, 2, 22)));
    assert_eq!(QemuVersion::parse("QEMU emulator version 8.0.0\nCopyright"), Some(QemuVersion(8, 0, 0)));
    assert_eq!(QemuVersion::parse("QEMU emulator version 9.1"), Some(QemuVersion(9, 1, 0)));
    assert_eq!(QemuVersion::parse("QEMU emulator version 9.0.50 (v9.0.0-1-g1234)"), Some(QemuVersion(9, 0, 50)));
    assert_eq!(QemuVersion::parse("not qemu"), None);
    let r = VersionRange { from: QemuVersion(7, 2, 0), before: Some(QemuVersion(7, 3, 0)) };
    assert!(r.contains(QemuVersion(7, 2, 0)) && r.contains(QemuVersion(7, 2, 22)));
    assert!(!r.contains(QemuVersion(7, 1, 9)) && !r.contains(QemuVersion(7, 3, 0)) && !r.contains(QemuVersion(8, 0, 0)));
}

#[test]
fn text_json_and_junit_show_the_deviation() {
    let mut records = hole_run();
    records.push(scenario("dest-logical-cluster", wire::Outcome::Pass, "every CPU took its cluster interrupt"));
    let o = run_on(&tcg72(), &records);
    let text = o.render();
    assert!(text.contains("  XFAIL  -  dest-logical-flat "), "{text}");
    assert!(text.contains("  PASS   -  msix-delivery "), "labels are aligned: {text}");
    assert!(text.contains("         known deviation tcg-logical-apic-id-hole: QEMU TCG's logical-destination match"), "{text}");
    assert!(text.contains("         passed, but known deviation tcg-logical-apic-id-hole"), "{text}");
    assert!(text.contains("known deviations (platform: QEMU 7.2.22 tcg q35):\n  2 xfail, 1 xpass\n"), "{text}");

    let j = o.to_json();
    assert_eq!(j["schema_version"], 2);
    let flat = j["scenarios"].as_array().unwrap().iter().find(|s| s["name"] == "dest-logical-flat").unwrap();
    assert_eq!(flat["result"], "xfail");
    assert_eq!(flat["deviation"]["id"], "tcg-logical-apic-id-hole");
    assert!(flat["deviation"]["reference"].as_str().unwrap().contains("smp-ir.md §2.3"));
    assert_eq!(flat["deviation"]["platform"], "QEMU 7.2.22 tcg q35, APIC IDs 0,1,2,4,5,6");
    let cluster = j["scenarios"].as_array().unwrap().iter().find(|s| s["name"] == "dest-logical-cluster").unwrap();
    assert_eq!(cluster["result"], "xpass");
    let msix = j["scenarios"].as_array().unwrap().iter().find(|s| s["name"] == "msix-delivery").unwrap();
    assert_eq!(msix["deviation"], serde_json::Value::Null);
    assert_eq!(j["summary"], serde_json::json!({"passed": 1, "failed": 0, "skipped": 0, "xfailed": 2, "xpassed": 1}));
    assert_eq!(j["deviations"]["platform"], "QEMU 7.2.22 tcg q35");
    assert_eq!(j["exit"], "failed");
    assert_eq!(j["platform"]["cpus"].as_array().unwrap().len(), 6);
    assert_eq!(j["platform"]["cpus"][3]["apic_id"], 4);

    let xml = render(&[run_suite(&o)]);
    assert!(xml.contains(r#"<testcase name="dest-logical-flat -" classname="msifw.scenarios" time="0.000">"#), "{xml}");
    assert!(xml.contains("<system-out>XFAIL (expected failure, counted as passed): known deviation tcg-logical-apic-id-hole:"), "{xml}");
    assert!(xml.contains(r#"<failure message="XPASS: passed where known deviation tcg-logical-apic-id-hole:"#), "{xml}");
    let suite = run_suite(&o);
    // XPASS and the verdict fail; the two xfails pass.
    assert_eq!(suite.failures(), 2, "{xml}");
}

#[test]
fn an_xfail_or_xpass_from_the_firmware_is_refused() {
    // Only the host's table makes an xfail: a firmware (or a hand-made capture) that sends one would
    // otherwise turn any failure into a pass.
    let records = vec![platform_record(DENSE), scenario("msi-delivery", wire::Outcome::Xfail, "no interrupt")];
    let o = run_on(&tcg72(), &records);
    assert_eq!(result_of(&o, "msi-delivery"), ScenarioResult::Xfail);
    assert_eq!(o.exit, Exit::Failed);
    assert!(o.findings.iter().any(|f| f.contains("came with result xfail and no known deviation")), "{:?}", o.findings);
}

#[test]
fn applying_twice_changes_nothing() {
    let mut com1 = Com1Log::new(false);
    for l in lines(&hole_run()) {
        com1.push_line(&l);
    }
    apply(&mut com1.report, &tcg72());
    let once = com1.report.clone();
    apply(&mut com1.report, &tcg72());
    assert_eq!(com1.report, once);
}

#[test]
fn the_host_knows_the_qemu_it_launches() {
    let HostPlatform::Qemu(q) = HostPlatform::of_run(&RunConfig::new().machine(Machine::Pc).accel(Accel::Kvm)) else {
        panic!("a QEMU run's platform is QEMU's")
    };
    assert_eq!((q.accel, q.machine.family), (Ok(Accel::Kvm), MachineFamily::Pc));
    match q.version {
        Ok(v) => assert!(v >= QemuVersion(4, 0, 0), "{v}"),
        Err(e) => eprintln!("no QEMU here ({e}): its version is not known, and no QEMU row applies"),
    }
    let HostPlatform::Qemu(q) = HostPlatform::of_run(&RunConfig::new().qemu("/nonexistent/qemu")) else { unreachable!() };
    assert!(q.version.is_err_and(|e| e.contains("/nonexistent/qemu --version")));
}

/// One boot with holes in the APIC IDs: the firmware's platform record lists every enabled CPU of the
/// MADT (before application processors are started: the boot CPU online, the others offline), and the
/// table sees the hole.
#[test]
fn a_real_run_lists_its_cpus_and_the_hole() {
    let cfg = common::config(Machine::Q35).default_devices(false).qemu_arg("-smp").qemu_arg("6,sockets=2,cores=3");
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    common::assert_passed(&o);
    let p = o.report.platform.as_ref().unwrap_or_else(|| panic!("no platform record{why}"));
    let ids: Vec<u32> = p.cpus.iter().map(|c| c.apic_id).collect();
    assert_eq!(ids, HOLE, "{:?}{why}", p.cpus);
    assert_eq!(p.cpus[0].state, "online");
    assert_eq!(Topology::of(Some(p)).apic_id_hole_within(8), Some(true));
    // No scenario of this run is one a row is about: QEMU was not asked for its version.
    assert_eq!(o.to_json()["deviations"]["note"], "no scenario of the run is one a known deviation is about");
}

#[test]
fn kvm_lowest_priority_row_needs_the_host_to_hash_vectors() {
    let records = vec![
        platform_record(DENSE),
        scenario("dest-lowest-priority", wire::Outcome::Fail, "(b) CPU 0 alone at priority 0: went to CPU 3"),
        wire::Record::End(wire::End { passed: 0, failed: 1, skipped: 0 }),
    ];
    let hashing = qemu((7, 2, 22), Accel::Kvm, "q35");
    common::assert_xfail(&run_on(&hashing, &records), "dest-lowest-priority", "kvm-lowest-priority-vector-hashing");
    // A host with vector_hashing off arbitrates by priority: the failure stays one, and says why.
    let mut arbitrating = hashing.clone();
    if let HostPlatform::Qemu(q) = &mut arbitrating {
        q.kvm_vector_hashing = Ok(false);
    }
    let o = run_on(&arbitrating, &records);
    assert_eq!(result_of(&o, "dest-lowest-priority"), ScenarioResult::Fail);
    assert!(o.render().contains("the row needs the kvm module's vector_hashing on; this host has it off"), "{}", o.render());
}
