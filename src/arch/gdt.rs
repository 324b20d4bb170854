//! The long-mode GDT and TSS (SDM Vol. 3A 3.4.5, 8.7): the boot GDT from boot/pvh.s plus a TSS whose
//! interrupt stack table gives every CPU exception a stack of its own (SDM 7.14.5), so that an overflow of
//! the main stack into its guard page is reported instead of escalating into a triple fault. The BSP's
//! pair is static; each application processor gets its own ([`init_ap`]).

use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

/// The IST slot (1-based, as the IDT gate's field) used by exception vectors.
pub const EXCEPTION_IST: u8 = 1;

const IST_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stack([u8; IST_STACK_SIZE]);

static mut EXCEPTION_STACK: Stack = Stack([0; IST_STACK_SIZE]);
static TSS: spin::Once<TaskStateSegment> = spin::Once::new();
static GDT: spin::Once<GlobalDescriptorTable> = spin::Once::new();

/// Builds the GDT every CPU loads: code 0x08 and data 0x10 as in boot/pvh.s and the IDT gates, the TSS
/// at 0x18 (two entries), and the 32-bit code segment 0x28 (base 0, 4 GiB, D=1, L=0) for leaving long
/// mode in boot/pvh.s msifw_restart.
fn build(tss: &'static TaskStateSegment) -> GlobalDescriptorTable {
    let mut gdt = GlobalDescriptorTable::new();
    gdt.append(Descriptor::kernel_code_segment());
    gdt.append(Descriptor::kernel_data_segment());
    gdt.append(Descriptor::tss_segment(tss));
    gdt.append(Descriptor::UserSegment(0x00CF_9A00_0000_FFFF));
    gdt
}

/// Loads `gdt` and reloads the segment registers and the task register from it.
fn load(gdt: &'static GlobalDescriptorTable) {
    gdt.load();
    // SAFETY: the GDT (from `build`) has a 64-bit code segment at 0x08 and a data segment at 0x10, the
    // selectors the CPU already uses; reloading them makes the CPU read the new descriptors. 0x18 is a
    // valid 64-bit TSS descriptor, not busy (freshly built), pointing at a TSS that lives forever.
    unsafe {
        CS::set_reg(x86_64::structures::gdt::SegmentSelector(0x08));
        DS::set_reg(x86_64::structures::gdt::SegmentSelector(0x10));
        ES::set_reg(x86_64::structures::gdt::SegmentSelector(0x10));
        SS::set_reg(x86_64::structures::gdt::SegmentSelector(0x10));
        load_tss(x86_64::structures::gdt::SegmentSelector(0x18));
    }
}

/// An application processor's GDT and TSS (SDM Vol. 3A 8.7: one TSS per CPU; a TSS descriptor is busy
/// once loaded, so none is shared): built on the heap, the exception IST at `ist_top` (a stack of the
/// AP's own), and loaded. Each start of the AP (INIT-SIPI again after it went offline) builds a fresh
/// pair, since the old descriptor is still marked busy; the old one (about 200 bytes) is not reclaimed.
pub fn init_ap(ist_top: u64) {
    let mut tss = TaskStateSegment::new();
    tss.interrupt_stack_table[(EXCEPTION_IST - 1) as usize] = VirtAddr::new(ist_top);
    let tss: &'static TaskStateSegment = alloc::boxed::Box::leak(alloc::boxed::Box::new(tss));
    let gdt: &'static GlobalDescriptorTable = alloc::boxed::Box::leak(alloc::boxed::Box::new(build(tss)));
    load(gdt);
}

/// Loads a GDT with the same code (0x08) and data (0x10) selectors as the boot GDT, a TSS (0x18) and a
/// 32-bit code segment (0x28), and loads the TSS.
pub fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        // Only the address of the static is taken; the CPU is its only user, as a stack.
        let bottom = core::ptr::addr_of!(EXCEPTION_STACK) as u64;
        tss.interrupt_stack_table[(EXCEPTION_IST - 1) as usize] = VirtAddr::new(bottom + IST_STACK_SIZE as u64);
        tss
    });
    let gdt = GDT.call_once(|| build(tss));
    load(gdt);
}
