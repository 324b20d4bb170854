//! `cargo run -- decode` gives what a QEMU run gives: the default platform boots once, its raw COM1 and
//! COM2 output are saved as a machine's serial captures would be, and decoding them (the library
//! function and the CLI) must give the same report, rendering and JSON.

use crate::common;

use std::fs;

use msifw_host::{cli_run, decode_capture, DecodeConfig, Machine, RunOutcome, ScratchDir};
use serde_json::Value;

/// The rendering without the lines that say where the output came from (QEMU's verdict line, or the
/// capture's line and notes).
fn without_source_lines(o: &RunOutcome) -> String {
    o.render()
        .lines()
        .filter(|l| !l.starts_with(&format!("msifw: {} on ", o.exit)))
        .filter(|l| !l.starts_with(&format!("msifw: {} in a capture", o.exit)) && !l.starts_with("capture: "))
        // The oracle asks QEMU, which a capture has not.
        .filter(|l| !l.starts_with("oracle: "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The JSON document without the platform fields that say where the output came from (and the oracle,
/// which asks QEMU).
fn without_source_fields(mut j: Value) -> Value {
    j.as_object_mut().expect("a JSON object").remove("oracle");
    let platform = j["platform"].as_object_mut().expect("a platform object");
    for key in ["source", "machine", "accel", "qemu_command", "com1_capture", "com2_capture", "elf"] {
        platform.remove(key);
    }
    j
}

#[test]
fn decoded_capture_matches_the_qemu_run() {
    let o = common::boot_shared(&common::config(Machine::Q35));
    common::assert_passed(&o);
    assert!(!o.com2_bytes.is_empty(), "the run kept no COM2 bytes{}", common::explain(&o));
    let dir = ScratchDir::create().expect("scratch directory");
    let (com1, com2) = (dir.path().join("com1.txt"), dir.path().join("com2.bin"));
    fs::write(&com1, &o.com1_bytes).unwrap();
    fs::write(&com2, &o.com2_bytes).unwrap();
    let elf = o.elf.clone().expect("the booted ELF");

    let cfg = DecodeConfig { com2: Some(com2.clone()), elf: Some(elf.clone()), ..DecodeConfig::new(&com1) };
    let d = decode_capture(&cfg).unwrap_or_else(|e| panic!("decode failed: {e}"));
    let why = format!("{}\n--- decoded ---\n{}", common::explain(&o), d.render());
    assert_eq!(d.exit, o.exit, "verdicts differ{why}");
    assert_eq!(d.report.functions, o.report.functions, "functions differ{why}");
    assert_eq!(d.report.scenarios, o.report.scenarios, "scenarios differ{why}");
    assert_eq!(d.report.problems, o.report.problems, "problems differ{why}");
    assert_eq!(d.report.end, o.report.end, "end records differ{why}");
    assert_eq!(d.report, o.report, "reports differ{why}");
    assert_eq!(d.com1, o.com1, "COM1 text differs");
    assert_eq!(d.defmt, o.defmt, "defmt logs differ{why}");
    assert_eq!(without_source_lines(&d), without_source_lines(&o), "renderings differ{why}");
    assert!(d.render().contains(&format!("in a capture: COM1 {}", com1.display())), "{}", d.render());
    assert!(d.findings.is_empty(), "{:?}", d.findings);

    // The same output behind a boot loader's screen, with a terminal program's `\r\r\n`.
    let mut noisy = b"\x1b[2J\x1b[HGNU GRUB  version 2.06\r\r\n  Booting `msifw'\r\r\n\r\r\n".to_vec();
    noisy.extend(o.com1_bytes.iter().flat_map(|&b| if b == b'\n' { vec![b'\r', b'\n'] } else { vec![b] }));
    let noisy_path = dir.path().join("noisy.txt");
    fs::write(&noisy_path, &noisy).unwrap();
    let n = decode_capture(&DecodeConfig { com1: noisy_path, ..cfg.clone() }).unwrap();
    assert_eq!((n.exit, &n.report), (o.exit, &o.report), "a noisy capture decodes differently{}", n.render());
    assert!(n.render().contains("capture: "), "the left-out noise is not noted: {}", n.render());

    // The CLI: exit status and the --json document.
    let json = dir.path().join("decoded.json");
    let code = cli_run([
        "decode".into(),
        com1.clone().into_os_string(),
        "--com2".into(),
        com2.clone().into_os_string(),
        "--elf".into(),
        elf.into_os_string(),
        "--json".into(),
        json.clone().into_os_string(),
    ]);
    assert_eq!(code, o.exit.code(), "`cargo run -- decode` exit status{why}");
    let written: Value = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(written["platform"]["source"], "capture");
    assert_eq!(written["platform"]["com1_capture"], com1.display().to_string());
    assert_eq!(written["platform"]["com2_capture"], com2.display().to_string());
    assert!(written["platform"].get("machine").is_none(), "a capture has no QEMU machine: {written}");
    assert_eq!(
        without_source_fields(written),
        without_source_fields(o.to_json()),
        "the decoded JSON differs from the run's"
    );

    // One serial port only: the report alone, and no ELF needed.
    let c = decode_capture(&DecodeConfig::new(&com1)).unwrap();
    assert_eq!((c.exit, &c.report), (o.exit, &o.report));
    assert!(c.render().contains("defmt: no COM2 capture"), "{}", c.render());
}
