//! Platform discovery from firmware tables (ACPI: RSDP, RSDT/XSDT, MADT, MCFG).

pub mod acpi;
pub mod prt;
