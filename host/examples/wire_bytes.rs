//! Measures the report's bytes on COM1 for the default run (q35, e1000e + nvme + edu, TCG):
//! `cargo run -p msifw-host --example wire_bytes [-- --elf PATH]`.

use msifw_host::{run, Machine, RunConfig};

fn main() {
    let mut cfg = RunConfig::new().machine(Machine::Q35).echo(false);
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--elf") {
        cfg = cfg.elf(args[i + 1].clone());
    }
    let o = run(&cfg).expect("run");
    let mut report = 0usize;
    let mut records = 0usize;
    for raw in o.com1_bytes.split_inclusive(|&b| b == b'\n') {
        let line = msifw_host::line_text(raw);
        if msifw_host::report::is_record_line(&line) {
            report += raw.len();
            records += 1;
        }
    }
    if let Some(path) = args
        .iter()
        .position(|a| a == "--save")
        .map(|i| &args[i + 1])
    {
        std::fs::write(path, &o.com1_bytes).expect("save");
    }
    println!(
        "exit {}: COM1 {} bytes, report {} bytes in {} records",
        o.exit,
        o.com1_bytes.len(),
        report,
        records
    );
}
