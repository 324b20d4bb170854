//! The fatal paths: a CPU exception and a panic are reported on COM1 (vector, error code, RIP; the panic
//! message) and end the run with the crash exit code, never a silent triple fault or a hang.

use crate::common;

use msifw_host::{Exit, Machine};

#[test]
fn cpu_exception_is_reported_with_vector_and_rip() {
    let o = common::boot(&common::config(Machine::Q35).default_devices(false).append("selftest=exception"));
    let why = common::explain(&o);
    assert_eq!(o.exit, Exit::Panic, "a #UD must end the run as a firmware crash (QEMU status 5){why}");
    let line = o.com1.lines().find(|l| l.contains("CPU exception")).unwrap_or_else(|| panic!("no exception line on COM1{why}"));
    assert!(line.contains("exception 6 (invalid opcode)"), "wrong vector reported: {line}");
    assert!(line.contains("rip=0x"), "no RIP in: {line}");
    assert!(line.contains("error_code=0x0"), "no error code in: {line}");
}

#[test]
fn panic_is_reported_with_its_message() {
    let o = common::boot(&common::config(Machine::Pc).default_devices(false).append("selftest=panic"));
    let why = common::explain(&o);
    assert_eq!(o.exit, Exit::Panic, "a panic must end the run as a firmware crash (QEMU status 5){why}");
    assert!(o.com1.contains("panic: panicked at") && o.com1.contains("selftest: deliberate panic"), "panic message missing{why}");
}

#[test]
fn stack_overflow_hits_the_guard_page_and_is_reported() {
    let o = common::boot(&common::config(Machine::Q35).default_devices(false).append("selftest=stack-overflow"));
    let why = common::explain(&o);
    assert_eq!(o.exit, Exit::Panic, "an overflow must be a reported page fault, not a triple fault (crash){why}");
    let line = o.com1.lines().find(|l| l.contains("CPU exception")).unwrap_or_else(|| panic!("no exception line{why}"));
    assert!(line.contains("exception 14 (page fault)"), "{line}");
}
