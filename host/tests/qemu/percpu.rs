//! Per-CPU interrupt blocks: every CPU the MADT lists enabled gets one (holes in the APIC IDs and
//! disabled `maxcpus` entries included), and interrupts on the boot processor keep working with several.

use crate::common;

use msifw_host::Machine;

/// `-smp 4,sockets=2,cores=3,maxcpus=6` lists six CPUs with APIC IDs 0,1,2,4,5,6 (a hole at 3), the last
/// two disabled: four blocks, and the run passes as on one CPU.
#[test]
fn every_enabled_cpu_gets_a_block_and_the_run_still_passes() {
    let cfg = common::config(Machine::Q35).qemu_arg("-smp").qemu_arg("4,sockets=2,cores=3,maxcpus=6");
    let o = common::boot(&cfg);
    let why = common::explain(&o);
    common::assert_passed(&o);
    let blocks: Vec<&str> = o.defmt.lines.iter().filter(|l| l.message.starts_with("per-CPU blocks:")).map(|l| l.message.as_str()).collect();
    assert_eq!(blocks, ["per-CPU blocks: 4 CPUs"], "one block per enabled MADT CPU (the defmt log's lines){why}");
    assert!(o.report.functions.iter().any(|f| f.interrupts > 0), "no function interrupted{why}");
}
