//! msifw: bare-metal x86_64 firmware that owns PCI interrupts end to end.
//!
//! Data flows one way, and so do the modules (a lower layer never imports a higher one):
//! `boot` -> `platform` (ACPI) -> `bus` (PCI) -> `irq` (vectors, LAPIC, messages) -> `modes` (MSI, MSI-X)
//! -> `drivers` -> `scenarios` -> `report`, tied together by `app`. `arch` is the fenced hardware layer;
//! `console`, `log` and `time` are services every layer may use.
//! Pure logic is built for the host too and tested there (`cargo test`).

#![cfg_attr(not(any(test, feature = "sim")), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations)]

extern crate alloc;

pub mod log;

#[deny(unsafe_code)]
pub mod accounting;

pub mod arch;
#[deny(unsafe_code)]
pub mod boot;
#[deny(unsafe_code)]
pub mod cmdline;
#[deny(unsafe_code)]
pub mod console;
pub mod physmem;
#[deny(unsafe_code)]
pub mod time;

pub mod platform;
pub mod bus;
pub mod irq;
pub mod modes;
#[deny(unsafe_code)]
pub mod drivers;
#[deny(unsafe_code)]
pub mod scenarios;
#[deny(unsafe_code)]
pub mod report;

pub mod app;

#[cfg(target_os = "none")]
pub mod firmware;
