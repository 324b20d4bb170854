/* Two ways in, both in 32-bit protected mode with paging and interrupts off:
 * - PVH: QEMU's pvh option ROM jumps to pvh_start32 with EBX = physical address of hvm_start_info
 *   (qemu-7.2-facts.md section 7);
 * - Multiboot2 (GRUB, BIOS or UEFI): mb2_start32 with EAX = 0x36D76289 and EBX = physical address of the
 *   boot information (Multiboot2 spec 1.0, 3.3 "I386 machine state").
 * The stack and the GDT are the loader's, so we set our own, build identity page tables for the low 4 GiB
 * with 2 MiB pages, enter long mode (SDM Vol. 3A 10.8.5 "Initializing IA-32e Mode") and call
 * msifw_entry(info, flags): flags bit 0 = restart, bit 1 = Multiboot2. Mappings above 4 GiB are added
 * later, on demand, by arch::paging. */

    /* Multiboot2 header (spec 3.1): in the first 32 KiB of the file, 8-byte aligned; the linker script
     * puts it first in .text. GRUB loads the ELF's PT_LOAD segments at their physical addresses and enters
     * at the entry-address tag's address. */
    .pushsection .multiboot2, "a"
    .balign 8
mb2_header:
    .long 0xE85250D6                    /* magic */
    .long 0                             /* architecture: i386 protected mode */
    .long mb2_header_end - mb2_header   /* header length */
    .long 0x100000000 - (0xE85250D6 + 0 + (mb2_header_end - mb2_header))   /* checksum */
    .balign 8
    .short 3                            /* entry address tag */
    .short 0
    .long 12
    .long mb2_start32
    .balign 8
    .short 0                            /* end tag */
    .short 0
    .long 8
mb2_header_end:
    .popsection

    .pushsection .note.pvh, "a", @note
    .balign 4
    .long 4                 /* namesz */
    .long 4                 /* descsz */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long pvh_start32       /* 32-bit physical entry point */
    .popsection

    .pushsection .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    /* The firmware's guest time starts here (bench `firmware_ms`): EAX, EDX and ECX are free. */
    rdtsc
    movl %eax, boot_entry_tsc
    movl %edx, boot_entry_tsc + 4
    /* EBX (start_info or Multiboot2 information) and EBP (the flags) survive until the call below. */
    xorl %ebp, %ebp
    jmp cold_start32

    .global mb2_start32
mb2_start32:
    cli
    cld
    cmpl $0x36D76289, %eax
    jne 6f
    rdtsc
    movl %eax, boot_entry_tsc
    movl %edx, boot_entry_tsc + 4
    movl $2, %ebp
    jmp cold_start32
    /* Not entered by a Multiboot2 loader: nothing is known about the machine, so stop. */
6:  hlt
    jmp 6b

cold_start32:
    /* Keep a pristine copy of .data for a later restart. */
    movl $__data_start, %esi
    movl $__data_save, %edi
    movl $__data_end, %ecx
    subl $__data_start, %ecx
    rep movsb
    jmp pvh_common32

    /* Restart (scenario crash-restart): entered from msifw_restart with paging off, EBX = start_info,
     * as a crash kernel starts: devices untouched, memory fresh (.data put back, .bss zeroed below). */
pvh_restart32:
    cld
    orl $1, %ebp
    movl $__data_save, %esi
    movl $__data_start, %edi
    movl $__data_end, %ecx
    subl $__data_start, %ecx
    rep movsb
    /* The restarted run's time starts here (after .data was put back, which held the first run's). */
    rdtsc
    movl %eax, boot_entry_tsc
    movl %edx, boot_entry_tsc + 4

pvh_common32:
    /* Zero .bss: QEMU zero-fills segments past p_filesz, but a bootloader need not. */
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    xorl %eax, %eax
    rep stosb

    movl $boot_stack_top, %esp
    lgdt gdt64_pointer

    /* PML4[0] -> PDPT; PDPT[0..4] -> PD[0..4]; each PD entry maps 2 MiB (PS). */
    movl $boot_pdpt, %eax
    orl $0x3, %eax                      /* present | writable */
    movl %eax, boot_pml4

    xorl %ecx, %ecx
1:  movl %ecx, %eax
    shll $12, %eax
    addl $boot_pd, %eax
    orl $0x3, %eax
    movl %eax, boot_pdpt(,%ecx,8)
    incl %ecx
    cmpl $4, %ecx
    jb 1b

    xorl %ecx, %ecx
2:  movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax                     /* present | writable | 2 MiB page */
    cmpl $1536, %ecx                    /* 3 GiB and up: the PCI hole, LAPIC, IOAPIC: uncached */
    jb 3f
    orl $0x18, %eax                     /* PWT | PCD */
3:  movl %eax, boot_pd(,%ecx,8)
    incl %ecx
    cmpl $2048, %ecx
    jb 2b

    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $0x20, %eax                     /* CR4.PAE */
    movl %eax, %cr4
    movl $0xC0000080, %ecx              /* IA32_EFER */
    rdmsr
    orl $0x100, %eax                    /* EFER.LME */
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax               /* CR0.PG | CR0.PE */
    movl %eax, %cr0
    ljmp $0x08, $long_mode_entry

    .code64
long_mode_entry:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorw %ax, %ax
    movw %ax, %fs
    movw %ax, %gs
    movabsq $boot_stack_top, %rsp
    movl %ebx, %edi                     /* arg 0: start_info or Multiboot2 information address */
    movl %ebp, %esi                     /* arg 1: flags (zero-extended) */
    xorl %ebp, %ebp
    call msifw_entry
4:  cli
    hlt
    jmp 4b

    /* msifw_restart(info, flags): back to the 32-bit entry without touching any device (SDM Vol. 3A
     * 10.8.5.4, "Switching Out of IA-32e Mode"): to compatibility mode through the 32-bit code segment
     * 0x28 of arch::gdt, paging off (which leaves IA-32e mode), EFER.LME off, then pvh_restart32. The code
     * runs identity-mapped, so the addresses stay valid with paging off. */
    .global msifw_restart
msifw_restart:
    cli
    movl %edi, %ebx
    movl %esi, %ebp                     /* the boot's flags; pvh_restart32 adds the restart bit */
    leaq 5f(%rip), %rax
    pushq $0x28
    pushq %rax
    lretq
    .code32
5:  movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr0, %eax
    andl $0x7FFFFFFF, %eax              /* CR0.PG off: IA-32e mode off */
    movl %eax, %cr0
    movl $0xC0000080, %ecx              /* IA32_EFER */
    rdmsr
    andl $0xFFFFFEFF, %eax              /* EFER.LME off */
    wrmsr
    jmp pvh_restart32
    /* Back to 64-bit mode for whatever assembly follows in the same unit (with LTO, every global_asm!
     * block of the image is assembled together). */
    .code64
    .popsection

    /* TSC at the entry (read by time::entry_tsc): in .data, because .bss is zeroed after it is taken. */
    .pushsection .data.boot, "aw"
    .balign 8
    .global boot_entry_tsc
boot_entry_tsc:
    .quad 0
    .popsection

    .pushsection .rodata.boot, "a"
    .balign 8
gdt64:
    .quad 0                             /* null */
    .quad 0x00AF9A000000FFFF            /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00CF92000000FFFF            /* 0x10: data */
gdt64_end:
    .balign 4
    .word 0
gdt64_pointer:
    .word gdt64_end - gdt64 - 1
    .long gdt64
    .popsection

    .pushsection .bss.boot, "aw", @nobits
    .balign 4096
    .global boot_pml4
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4096 * 4
    .balign 4096
    .global boot_stack_guard
boot_stack_guard:                       /* unmapped by arch::paging::unmap_4k: overflow faults here */
    .skip 4096
boot_stack_bottom:
    .skip 128 * 1024
    .global boot_stack_top
boot_stack_top:
    .popsection
