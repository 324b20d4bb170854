//! The word at physical address 0: a sentinel for negative controls. An MSI-X entry that was never
//! programmed reads address 0, data 0; a device signalling through it writes its data there instead of
//! interrupting, and the sentinel changes. Accessed with inline assembly, because for Rust a pointer to
//! address 0 is null and may not be dereferenced, while for the hardware it is ordinary RAM (the real-mode
//! interrupt table, unused once the firmware runs in long mode).

/// Reads the 32-bit word at physical 0.
pub fn read() -> u32 {
    let value: u32;
    // SAFETY: physical page 0 is identity-mapped RAM (boot/pvh.s maps 0-2 MiB) that nothing in the
    // firmware uses; a 4-byte read of it has no side effects.
    unsafe { core::arch::asm!("mov {0:e}, dword ptr [0]", out(reg) value, options(nostack, readonly, preserves_flags)) };
    value
}

/// Writes the 32-bit word at physical 0.
pub fn write(value: u32) {
    // SAFETY: as in `read`; no Rust object lives at address 0, so no reference is invalidated.
    unsafe { core::arch::asm!("mov dword ptr [0], {0:e}", in(reg) value, options(nostack, preserves_flags)) };
}
