//! The host's integration tests, QEMU boots and all, in one test binary: one harness runs every boot
//! in parallel (a former file is a module here: `cargo test -p msifw-host --test qemu ahci::` runs what
//! `--test ahci` ran), the firmware is built once for all of them (host/src/firmware.rs), and
//! `common::boot` bounds how many QEMUs run at once (see common.rs).

mod common;

mod ahci;
mod bench;
mod bigmadt;
mod bochs;
mod boot;
mod capacity;
mod conformance;
mod cpus;
mod decode;
mod deviations;
mod e1000;
mod enumeration;
mod exhaustion;
mod fatal;
mod faults;
mod fence;
mod hotplug;
mod interrupts;
mod iso;
mod junit;
mod launcher;
mod lifecycle;
mod matrix;
mod modes;
mod noacpi;
mod oracle;
mod percpu;
mod ports;
mod qboot;
mod retarget;
mod review;
mod rootbus;
mod smp;
mod soak;
mod topology;
mod verdicts;
mod virtio_modern;
mod virtio_net;
mod x2apic;
mod xhci;
