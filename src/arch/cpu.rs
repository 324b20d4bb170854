//! CPU instructions and model-specific registers (SDM Vol. 2 and Vol. 4).

use x86_64::registers::model_specific::Msr;

/// IA32_APIC_BASE (SDM Vol. 4, MSR 0x1B): APIC base address, xAPIC enable (bit 11), x2APIC enable (bit 10).
pub const IA32_APIC_BASE: u32 = 0x1B;

/// Reads a model-specific register.
///
/// # Safety
/// The MSR must exist on this CPU (reading an unimplemented MSR raises #GP).
pub unsafe fn rdmsr(msr: u32) -> u64 {
    // SAFETY: the caller guarantees that the MSR exists.
    unsafe { Msr::new(msr).read() }
}

/// Writes a model-specific register.
///
/// # Safety
/// The MSR must exist and the value must be valid for it; MSR writes change CPU behaviour globally.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { Msr::new(msr).write(value) }
}

/// CPUID leaf/subleaf.
pub fn cpuid(leaf: u32, subleaf: u32) -> core::arch::x86_64::CpuidResult {
    // `__cpuid_count` is a safe function on x86_64: every x86_64 CPU has CPUID.
    core::arch::x86_64::__cpuid_count(leaf, subleaf)
}

/// Whether CPUID says a hypervisor runs us (CPUID.1:ECX bit 31, reserved for hypervisors: SDM Vol. 2A
/// Table 3-10); QEMU sets it under TCG and KVM alike. Read once (CPUID exits to a hypervisor).
pub fn under_hypervisor() -> bool {
    static KNOWN: spin::Once<bool> = spin::Once::new();
    *KNOWN.call_once(|| cpuid(1, 0).ecx & (1 << 31) != 0)
}

/// Whether the hypervisor's CPUID signature (leaf 0x4000_0000, EBX ECX EDX) is QEMU TCG's,
/// "TCGTCGTCGTCG": the local APIC, its timer included, is then QEMU's own device model.
pub fn under_tcg() -> bool {
    if !under_hypervisor() {
        return false;
    }
    let r = cpuid(0x4000_0000, 0);
    let mut sig = [0u8; 12];
    sig[..4].copy_from_slice(&r.ebx.to_le_bytes());
    sig[4..8].copy_from_slice(&r.ecx.to_le_bytes());
    sig[8..].copy_from_slice(&r.edx.to_le_bytes());
    &sig == b"TCGTCGTCGTCG"
}

/// The midpoint of two TSC readings taken around one access: where the access happened, to within half
/// the bracket.
pub fn tsc_mid(before: u64, after: u64) -> u64 {
    before / 2 + after / 2
}

/// Time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects; CR4.TSD is clear (we never set it), so it is allowed at CPL 0.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Executes `ud2`, which raises #UD (SDM Vol. 2B, UD: "Raises an invalid opcode exception in all
/// operating modes"): the `selftest=exception` check of the fatal path. The exception handler reports it
/// and stops the firmware, so this does not return there.
pub fn raise_invalid_opcode() {
    // SAFETY: ud2 touches no memory or register; it only raises #UD, which the IDT's handler reports as
    // fatal.
    unsafe { core::arch::asm!("ud2") };
}

// In host builds (unit tests) the interrupt-flag functions do nothing: `cli`/`sti` fault in a user
// process, and host tests exercise only the logic around them.

/// Whether RFLAGS.IF is set.
pub fn interrupts_enabled() -> bool {
    #[cfg(target_os = "none")]
    return x86_64::instructions::interrupts::are_enabled();
    #[cfg(not(target_os = "none"))]
    false
}

/// Clears RFLAGS.IF.
pub fn disable_interrupts() {
    #[cfg(target_os = "none")]
    x86_64::instructions::interrupts::disable();
}

/// Sets RFLAGS.IF.
pub fn enable_interrupts() {
    #[cfg(target_os = "none")]
    x86_64::instructions::interrupts::enable();
}

/// Runs `f` with interrupts disabled and restores the previous RFLAGS.IF.
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_os = "none")]
    return x86_64::instructions::interrupts::without_interrupts(f);
    #[cfg(not(target_os = "none"))]
    f()
}

/// Spin-loop hint.
pub fn relax() {
    core::hint::spin_loop();
}

/// Halts forever with interrupts off.
pub fn halt_forever() -> ! {
    loop {
        disable_interrupts();
        x86_64::instructions::hlt();
    }
}

/// The CR2 register (faulting address of the last page fault).
pub fn cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}
