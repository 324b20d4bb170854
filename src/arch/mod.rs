//! x86_64 hardware access, where most of the firmware's `unsafe` lives (README "Where unsafe lives" lists
//! the rest): ports, MMIO windows, the IDT, the local APIC, the 8259 PIC, paging, and the TSC.
//! Layout follows the SDM: `cpu` (instructions, MSRs), `idt` (Vol. 3A ch. 7), `lapic` (Vol. 3A ch. 11),
//! `paging` (Vol. 3A ch. 5); `uart`, `pic`, `pit` and `exit` are PC platform devices.

pub mod cpu;
pub mod dma;
pub mod exit;
pub mod hpet;
pub mod gdt;
pub mod handoff;
pub mod heap;
pub mod idt;
pub mod ioapic;
pub mod irqbench;
pub mod lapic;
pub mod lowmem;
pub mod mmio;
pub mod paging;
pub mod pio;
pub mod pic;
pub mod pit;
pub mod uart;
