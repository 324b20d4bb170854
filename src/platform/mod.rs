//! Platform discovery from firmware tables (ACPI: RSDP, RSDT/XSDT, MADT, MCFG, DSDT routing and host bridge
//! windows).

pub mod acpi;
#[deny(unsafe_code)]
pub mod crs;
#[deny(unsafe_code)]
pub mod ecam;
#[deny(unsafe_code)]
pub mod hostbridge;
pub mod prt;
#[deny(unsafe_code)]
pub mod mptable;
