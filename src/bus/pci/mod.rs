//! PCI: configuration access, enumeration, BARs, capabilities.
//!
//! Hand-written rather than `pci_types`: its capability iterator has no loop guard or extended-capability
//! walk, it has no MSI-X table access, and its MSI mask helper skips 32-bit MSI with per-vector masking
//! (toolchain-facts.md); every parser here must survive hostile config space and report what it met.

pub mod assign;
#[allow(unsafe_code)]
pub mod bar;
pub mod caps;
#[allow(unsafe_code)]
pub mod config;
pub mod enumerate;
pub mod regs;
pub mod reset;
pub mod trace;

pub use config::{Bdf, ConfigRegion};
