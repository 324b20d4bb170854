//! Interrupt resources: local-APIC vectors, MSI message composition, and the dispatcher that counts
//! every delivered vector.

pub mod dispatch;
pub mod message;
pub mod vector;
