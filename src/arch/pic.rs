//! The two 8259A PICs: remapped away from the exception vectors and fully masked. msifw uses the IOAPIC;
//! the remap makes a spurious PIC interrupt land on 0x20-0x2F (reserved, counted as spurious) instead of on
//! an exception vector.

use x86_64::instructions::port::Port;

/// First vector of the remapped master PIC.
pub const PIC_BASE: u8 = 0x20;

fn out(port: u16, value: u8) {
    // SAFETY: 0x20/0x21/0xA0/0xA1 are the PC's 8259 ports; programming them only changes legacy interrupt
    // routing, which we then mask.
    unsafe { Port::<u8>::new(port).write(value) }
}

/// ICW1-ICW4 (8259A datasheet) with vector bases 0x20/0x28, then OCW1 = all masked.
pub fn remap_and_mask() {
    out(0x20, 0x11); // ICW1: edge, cascade, ICW4 follows
    out(0xA0, 0x11);
    out(0x21, PIC_BASE); // ICW2: vector base
    out(0xA1, PIC_BASE + 8);
    out(0x21, 0x04); // ICW3: slave on IR2
    out(0xA1, 0x02);
    out(0x21, 0x01); // ICW4: 8086 mode
    out(0xA1, 0x01);
    out(0x21, 0xFF); // OCW1: mask all
    out(0xA1, 0xFF);
}
