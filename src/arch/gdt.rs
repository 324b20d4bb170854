//! The long-mode GDT and TSS (SDM Vol. 3A 3.4.5, 8.7): the boot GDT from boot/pvh.s plus a TSS whose
//! interrupt stack table gives every CPU exception a stack of its own (SDM 7.14.5), so that an overflow of
//! the main stack into its guard page is reported instead of escalating into a triple fault.

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
    let gdt = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        gdt.append(Descriptor::kernel_code_segment()); // 0x08, as in boot/pvh.s and the IDT gates
        gdt.append(Descriptor::kernel_data_segment()); // 0x10
        gdt.append(Descriptor::tss_segment(tss)); // 0x18 (two entries)
        // 0x28: 32-bit code (base 0, 4 GiB, D=1, L=0), for leaving long mode in boot/pvh.s msifw_restart.
        gdt.append(Descriptor::UserSegment(0x00CF_9A00_0000_FFFF));
        gdt
    });
    gdt.load();
    // SAFETY: the new GDT has a 64-bit code segment at 0x08 and a data segment at 0x10, the selectors the
    // CPU already uses; reloading them makes the CPU read the new descriptors. 0x18 is a valid, unused
    // 64-bit TSS descriptor pointing at a static TSS.
    unsafe {
        CS::set_reg(x86_64::structures::gdt::SegmentSelector(0x08));
        DS::set_reg(x86_64::structures::gdt::SegmentSelector(0x10));
        ES::set_reg(x86_64::structures::gdt::SegmentSelector(0x10));
        SS::set_reg(x86_64::structures::gdt::SegmentSelector(0x10));
        load_tss(x86_64::structures::gdt::SegmentSelector(0x18));
    }
}
