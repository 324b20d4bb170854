//! Firmware-only glue: the Rust entry called by boot/pvh.s, the defmt global logger on COM2, the panic
//! handler and the interrupt dispatcher installation. Everything it calls lives in the layered modules.

use crate::arch::{cpu, exit, uart};
use crate::boot::BootInfo;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Entry flag (boot/pvh.s): this run is a restart in place.
pub const FLAG_RESTART: u32 = 1;
/// Entry flag (boot/pvh.s): entered by a Multiboot2 loader (GRUB), not through PVH.
pub const FLAG_MULTIBOOT2: u32 = 2;

/// The entry flags of this boot, without the restart bit (a restart enters the way the boot did).
static BOOT_FLAGS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Jumps back to the firmware's 32-bit entry without touching any device, as a crash kernel starts: the
/// next run finds every device as this one left it.
pub fn restart(start_info: u32) -> ! {
    extern "C" {
        fn msifw_restart(info: u32, flags: u32) -> !;
    }
    let flags = BOOT_FLAGS.load(Ordering::Relaxed);
    cpu::disable_interrupts();
    // The other CPUs stop first (a crash kernel's entry stops them too): the next run rebuilds the IDT and
    // everything else they use, then starts them again with INIT-SIPI-SIPI.
    crate::arch::smp::park_all();
    uart::COM2.drain();
    uart::COM1.drain();
    // SAFETY: msifw_restart (boot/pvh.s) leaves long mode through the 32-bit code segment 0x28 that
    // arch::gdt installed and re-enters the PVH entry, which rebuilds everything from scratch; nothing of
    // this run is used afterwards.
    unsafe { msifw_restart(start_info, flags) }
}

/// Called by boot/pvh.s in long mode with the physical address of `hvm_start_info` (PVH) or of the
/// Multiboot2 boot information, and the entry flags ([`FLAG_RESTART`], [`FLAG_MULTIBOOT2`]).
pub fn start(start_info: u32, flags: u32) -> ! {
    extern "C" {
        static boot_entry_tsc: u64;
    }
    // SAFETY: boot/pvh.s writes boot_entry_tsc once, at the entry, before anything else runs; it is an
    // aligned u64 in .data that nothing writes afterwards.
    crate::time::set_entry_tsc(unsafe { core::ptr::addr_of!(boot_entry_tsc).read_volatile() });
    let restarted = flags & FLAG_RESTART != 0;
    let multiboot2 = flags & FLAG_MULTIBOOT2 != 0;
    BOOT_FLAGS.store(flags & !FLAG_RESTART, Ordering::Relaxed);
    uart::COM1.init();
    uart::COM2.init();
    crate::println!("msifw {}: {}", env!("CARGO_PKG_VERSION"), if restarted { "restarted in place (devices untouched)" } else { "booting" });
    crate::arch::gdt::init();
    crate::arch::idt::load();
    extern "C" {
        static boot_stack_guard: u8;
    }
    // Only the address of the symbol defined in boot/pvh.s is taken.
    let guard = core::ptr::addr_of!(boot_stack_guard) as u64;
    if let Err(e) = crate::arch::paging::unmap_4k(guard) {
        crate::println!("msifw: stack guard page not set up: {e:?}");
    }
    crate::arch::pic::remap_and_mask();
    crate::time::calibrate();
    // The Multiboot2 information lies anywhere in RAM, and a restart in place reads it again: kept off the heap.
    let mut boot_info_range = 0..0;
    let boot = if multiboot2 {
        // The information's size is its first word; the reads end there (Multiboot2 spec 3.4).
        let info = start_info as u64;
        // SAFETY: boot/pvh.s identity-maps the low 4 GiB; the loader hands over its boot information in
        // RAM below 4 GiB that it set aside for it (spec 3.3, 3.4), and nothing writes it while it is
        // copied. The window is the information's first 8 bytes only.
        let header = unsafe { crate::physmem::IdentityMemory::window(info, (info + 8).min(1 << 32)) };
        let end = BootInfo::multiboot2_end(&header, info);
        // SAFETY: as above, for the information up to the end it gives for itself (at most 4 GiB).
        let memory = unsafe { crate::physmem::IdentityMemory::window(info, end) };
        boot_info_range = info..end;
        crate::arch::smp::reserve_low(info..end);
        BootInfo::from_multiboot2(&memory, start_info as u64)
    } else {
        // SAFETY: boot/pvh.s identity-maps the low 4 GiB; hvm_start_info, its command line and memory map
        // are ordinary RAM below 1 MiB that nothing writes while they are copied.
        let low_memory = unsafe { crate::physmem::IdentityMemory::new(1 << 20) };
        // A restart in place reads them again: the APs' trampoline page must not overwrite them.
        for r in crate::arch::smp::pvh_ranges(&low_memory, start_info as u64) {
            crate::arch::smp::reserve_low(r);
        }
        BootInfo::from_pvh(&low_memory, start_info as u64)
    };
    init_heap(&boot, boot_info_range);
    let code = crate::app::run(&boot, start_info, restarted);
    exit::exit(code)
}

/// Gives the heap the largest RAM region of the memory map, less the image and the boot information.
fn init_heap(boot: &BootInfo, boot_info: core::ops::Range<u64>) {
    extern "C" {
        static __image_start: u8;
        static __image_end: u8;
    }
    // Only the addresses of the linker-script symbols are taken.
    let image = core::ptr::addr_of!(__image_start) as u64..core::ptr::addr_of!(__image_end) as u64;
    use crate::arch::heap;
    match heap::largest_free(&boot.memmap, &[image, boot_info], heap::FLOOR, heap::CEILING) {
        Some(region) => {
            crate::println!("msifw: heap {:#x}-{:#x} ({} KiB) from the memory map", region.start, region.end, (region.end - region.start) >> 10);
            // SAFETY: RAM per the memory map, outside the image and the boot information, identity-mapped
            // writable below 3 GiB by boot/pvh.s; nothing has been allocated yet.
            unsafe { heap::init(region) };
        }
        None => crate::println!("msifw: no RAM region for the heap in the memory map; every allocation will fail"),
    }
}

#[defmt::global_logger]
struct Com2Logger;

/// Who holds the logger: 0 nobody, else the holder's local APIC ID + 1 (every CPU knows its own without
/// any per-CPU set-up; before the LAPIC is initialised only the BSP runs and reads 0).
static OWNER: AtomicU32 = AtomicU32::new(0);
static RESTORE_IF: AtomicBool = AtomicBool::new(false);
static mut ENCODER: defmt::Encoder = defmt::Encoder::new();
/// How long a CPU waits for another to finish its frame before it says so and stops the run (a frame
/// takes well under a millisecond; a holder that never releases has crashed).
const LOGGER_WAIT_US: u64 = 2_000_000;

fn com2_write(bytes: &[u8]) {
    uart::COM2.write_bytes(bytes);
}

// SAFETY: acquire disables interrupts and takes OWNER, so one CPU encodes one frame at a time: another CPU
// waits, and a re-entry on the holder (an exception handler logging while a frame is open) is refused;
// ENCODER is only touched between acquire and release by the holder.
unsafe impl defmt::Logger for Com2Logger {
    fn acquire() {
        let was_enabled = cpu::interrupts_enabled();
        cpu::disable_interrupts();
        let me = crate::arch::lapic::id().wrapping_add(1).max(1);
        let mut deadline = None;
        loop {
            match OWNER.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => break,
                Err(holder) if holder == me => {
                    // A log call from an exception handler while this CPU has a frame open: say so in text
                    // and stop.
                    crate::console::write_fmt_unlocked(format_args!("msifw: defmt logger re-entered\n"));
                    exit::exit(exit::ExitCode::Crashed);
                }
                Err(holder) => {
                    // Another CPU is writing a frame: wait for it, not forever.
                    let d = deadline.get_or_insert_with(|| crate::time::Deadline::after_us(LOGGER_WAIT_US));
                    if d.expired() {
                        crate::console::write_fmt_unlocked(format_args!(
                            "msifw: defmt logger held by APIC ID {} for {} ms\n",
                            holder - 1,
                            LOGGER_WAIT_US / 1000
                        ));
                        exit::exit(exit::ExitCode::Crashed);
                    }
                    cpu::relax();
                }
            }
        }
        RESTORE_IF.store(was_enabled, Ordering::Relaxed);
        // SAFETY: exclusive access established above.
        unsafe { (*core::ptr::addr_of_mut!(ENCODER)).start_frame(com2_write) }
    }

    unsafe fn flush() {
        uart::COM2.drain();
    }

    unsafe fn release() {
        // SAFETY: called after acquire by contract; exclusive access.
        unsafe { (*core::ptr::addr_of_mut!(ENCODER)).end_frame(com2_write) }
        let restore = RESTORE_IF.load(Ordering::Relaxed);
        OWNER.store(0, Ordering::Release);
        if restore {
            cpu::enable_interrupts();
        }
    }

    unsafe fn write(bytes: &[u8]) {
        // SAFETY: called between acquire and release by contract.
        unsafe { (*core::ptr::addr_of_mut!(ENCODER)).write(bytes, com2_write) }
    }
}

defmt::timestamp!("{=u64:us}", crate::time::now_us());

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    cpu::disable_interrupts();
    let index = crate::arch::percpu::index();
    if index == 0 {
        crate::console::write_fmt_unlocked(format_args!("\nmsifw: panic: {info}\n"));
    } else {
        // On an application processor: which one, then the same report (the run stops).
        let apic = crate::arch::lapic::id();
        crate::console::write_fmt_unlocked(format_args!("\nmsifw: panic on CPU {index} (APIC ID {apic}): {info}\n"));
    }
    exit::exit(exit::ExitCode::Crashed)
}
