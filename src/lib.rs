//! msifw: bare-metal x86_64 firmware that owns PCI interrupts end to end.
//!
//! Data flows one way, and so do the modules (a lower layer never imports a higher one):
//! `boot` -> `platform` (ACPI) -> `bus` (PCI) -> `irq` (vectors, LAPIC, messages) -> `modes` (MSI, MSI-X)
//! -> `drivers` -> `scenarios` -> `report`, tied together by `app`. `arch` is the fenced hardware layer;
//! `console`, `log` and `time` are services every layer may use.
//! Pure logic is built for the host too and tested there (`cargo test`).

#![cfg_attr(not(any(test, feature = "sim")), no_std)]
// Safe by default: a module may use `unsafe` only where it is allowed by name below (or in its parent's
// `mod.rs`), and then every block carries a `// SAFETY:` comment (README "Where unsafe lives").
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations)]

extern crate alloc;

pub mod log;

pub mod accounting;

pub mod arch;
pub mod boot;
pub mod cmdline;
pub mod console;
#[allow(unsafe_code)]
pub mod physmem;
pub mod sort;
pub mod time;

pub mod platform;
pub mod bus;
pub mod irq;
pub mod modes;
pub mod drivers;
pub mod scenarios;
pub mod report;

// The runner: safe but for `app::platform`, which builds the platform singletons (allowed there by name).
pub mod app;

#[cfg(target_os = "none")]
#[allow(unsafe_code)]
pub mod firmware;
