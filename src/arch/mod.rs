//! x86_64 hardware access, where most of the firmware's `unsafe` lives (README "Where unsafe lives" lists
//! the rest): ports, MMIO windows, the IDT, the local APIC, the 8259 PIC, paging, and the TSC.
//! Layout follows the SDM: `cpu` (instructions, MSRs), `idt` (Vol. 3A ch. 7), `lapic` (Vol. 3A ch. 11),
//! `paging` (Vol. 3A ch. 5); `uart`, `pic`, `pit` and `exit` are PC platform devices.
//! Every module here is allowed `unsafe` by name (the crate root denies it); a new one is safe until it is
//! listed so.

#[allow(unsafe_code)]
pub mod cpu;
#[allow(unsafe_code)]
pub mod dma;
#[allow(unsafe_code)]
pub mod exit;
#[allow(unsafe_code)]
pub mod hpet;
#[allow(unsafe_code)]
pub mod fwcfg;
#[allow(unsafe_code)]
pub mod gdt;
#[allow(unsafe_code)]
pub mod handoff;
#[allow(unsafe_code)]
pub mod heap;
#[allow(unsafe_code)]
pub mod idt;
#[allow(unsafe_code)]
pub mod ioapic;
#[allow(unsafe_code)]
pub mod irqbench;
#[allow(unsafe_code)]
pub mod lapic;
#[allow(unsafe_code)]
pub mod lowmem;
#[allow(unsafe_code)]
pub mod mmio;
#[allow(unsafe_code)]
pub mod paging;
#[allow(unsafe_code)]
pub mod percpu;
#[allow(unsafe_code)]
pub mod pio;
#[allow(unsafe_code)]
pub mod pic;
#[allow(unsafe_code)]
pub mod pit;
#[allow(unsafe_code)]
pub mod smp;
#[allow(unsafe_code)]
pub mod uart;
