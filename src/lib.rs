//! msifw: bare-metal x86_64 firmware that owns PCI interrupts end to end.
//!
//! Data flows one way, and so do the modules (a lower layer never imports a higher one):
//! `boot` -> `platform` (ACPI) -> `bus` (PCI) -> `irq` (vectors, LAPIC, messages) -> `modes` (MSI, MSI-X)
//! -> `drivers` -> `scenarios` -> `report`, tied together by `app`. `arch` is the fenced hardware layer;
//! `console`, `log` and `time` are services every layer may use.
//! Pure logic is built for the host too and tested there (`cargo test`).

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations)]

pub mod log;

pub mod arch;
pub mod boot;
pub mod cmdline;
pub mod console;
pub mod physmem;
pub mod time;

pub mod platform;
pub mod bus;
pub mod irq;
pub mod modes;
pub mod drivers;
pub mod scenarios;
pub mod report;

pub mod app;

#[cfg(target_os = "none")]
pub mod firmware;
