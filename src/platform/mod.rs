//! Platform discovery from firmware tables (ACPI: RSDP, RSDT/XSDT, MADT, MCFG, DSDT routing and host bridge
//! windows).

pub mod acpi;
pub mod aml;
pub mod crs;
pub mod ecam;
pub mod mptable;
pub mod namespace;
pub mod prt;
pub mod range;
