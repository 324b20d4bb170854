//! Platform discovery from firmware tables (ACPI: RSDP, RSDT/XSDT, MADT, MCFG, DSDT routing and host bridge
//! windows).

pub mod acpi;
#[deny(unsafe_code)]
pub mod crs;
pub mod prt;
#[deny(unsafe_code)]
pub mod mptable;
