//! PCI: configuration access, enumeration, BARs, capabilities.
//!
//! Hand-written rather than `pci_types`: its capability iterator has no loop guard or extended-capability
//! walk, it has no MSI-X table access, and its MSI mask helper skips 32-bit MSI with per-vector masking
//! (toolchain-facts.md); every parser here must survive hostile config space and report what it met.

#[deny(unsafe_code)]
pub mod assign;
pub mod bar;
#[deny(unsafe_code)]
pub mod caps;
pub mod config;
#[deny(unsafe_code)]
pub mod enumerate;
#[deny(unsafe_code)]
pub mod regs;
#[deny(unsafe_code)]
pub mod reset;
#[deny(unsafe_code)]
pub mod trace;

pub use config::{Bdf, ConfigRegion};
