//! Interrupt resources: local-APIC vectors, MSI message composition, and the dispatcher that counts
//! every delivered vector.

pub mod dispatch;
#[deny(unsafe_code)]
pub mod intx;
#[deny(unsafe_code)]
pub mod message;
#[deny(unsafe_code)]
pub mod routing;
#[deny(unsafe_code)]
pub mod vector;
