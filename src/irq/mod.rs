//! Interrupt resources: local-APIC vectors, MSI message composition, and the dispatcher that counts
//! every delivered vector.

#[allow(unsafe_code)]
pub mod dispatch;
pub mod cpus;
pub mod intx;
pub mod message;
pub mod routing;
pub mod vector;
