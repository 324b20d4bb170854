//! Platform discovery from firmware tables (ACPI: RSDP, RSDT/XSDT, MADT, MCFG, DSDT routing and host bridge
//! windows).

pub mod acpi;
pub mod aml;
pub mod crs;
pub mod ecam;
pub mod mptable;
pub mod namespace;
// `cargo run -- tables DIR`: the host tool's pre-flight over a machine's table files.
#[cfg(all(not(target_os = "none"), feature = "launcher"))]
pub mod preflight;
pub mod prt;
pub mod range;
