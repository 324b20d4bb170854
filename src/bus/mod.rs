//! Buses. Only PCI (conventional and PCI Express) for now.

pub mod pci;
