//! Per-CPU data: one [`PerCpu`] block for every CPU the MADT lists, reached through the CPU's GS base.
//!
//! The GS base of a CPU holds the address of its own block (IA32_GS_BASE, MSR 0xC000_0101; SDM Vol. 3A
//! 3.4.4 "Segment Loading Instructions in IA-32e Mode": in 64-bit mode the GS base comes from that MSR and
//! `%gs:`-relative accesses add it). The interrupt entry (arch::idt) counts and acknowledges with
//! `%gs:`-relative instructions, so two CPUs taking interrupts at once never touch the same cache line;
//! Rust code reaches its own block through the block's first word, its own address (`%gs:0`).
//!
//! Block 0 is a static, for the boot processor: [`boot`] points the GS base at it before the IDT is
//! loaded, so the entry works from the first interrupt, before the MADT is read. [`init`] (on the boot
//! processor, once the MADT is parsed) allocates a block on the heap for every other CPU (no fixed count;
//! an allocation that fails is an error naming the CPU) and [`enter`] (on an application processor,
//! before it enables interrupts) points that CPU's GS base at its block. Blocks are never freed: a CPU
//! that goes offline keeps its block, so its counts stay readable and it can come back.
//!
//! Loading a selector into GS reloads the base from the descriptor (SDM Vol. 3A 3.4.4): nothing here
//! does, and a CPU that reloads GS must call [`enter`] again.

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// IA32_GS_BASE (SDM Vol. 4 Table 2-2, MSR 0xC000_0101).
const IA32_GS_BASE: u32 = 0xC000_0101;

/// Number of interrupt vectors (SDM Vol. 3A 7.2).
pub const VECTORS: usize = 256;

/// One CPU's data. Everything is atomic: other CPUs read the counts and set the handlers and flags while
/// the owning CPU takes interrupts. The entry's fields (read by the assembly in arch::idt at the offsets
/// [`offset_of!`](core::mem::offset_of) gives) come first; the dispatcher's (irq::dispatch) follow.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct PerCpu {
    /// The block's own address (`%gs:0`), so that Rust code finds its block without reading the MSR.
    this: AtomicPtr<PerCpu>,
    /// The CPU's index (0 = boot processor), `%gs:8`.
    index: AtomicUsize,
    /// The CPU's APIC ID, from the MADT.
    apic_id: AtomicU32,
    /// Interrupts the entry handled on its fast path on this CPU.
    pub(crate) fast_hits: AtomicU64,
    /// Per vector: the entry counts and ends the interrupt itself (arch::idt::set_fast_on).
    pub(crate) fast: [AtomicBool; VECTORS],
    /// Interrupts delivered on this CPU, per vector.
    pub(crate) counts: [AtomicU64; VECTORS],
    /// Per vector, the address of a one-shot acknowledge write (arch::idt::arm_ack_once_on), 0: none.
    pub(crate) ack_once: [AtomicU64; VECTORS],
    /// Per vector, the ECAM address of the armed function's Command/Status dword.
    pub(crate) ack_status: [AtomicU64; VECTORS],
    /// Per vector, the value of the one-shot write.
    pub(crate) ack_value: [AtomicU32; VECTORS],
    /// Per vector, the dispatcher's handler on this CPU (0: none), a `fn(u8)` as an address.
    pub(crate) handlers: [AtomicUsize; VECTORS],
    /// Per vector, whether the vector allocator has handed it out on this CPU.
    pub(crate) owned: [AtomicBool; VECTORS],
    /// Per vector, interrupts that arrived here on a device vector nobody owned on this CPU.
    pub(crate) unowned: [AtomicU64; VECTORS],
}

/// Offsets the interrupt entry uses (`%gs:OFFSET`).
pub(crate) mod offsets {
    use super::PerCpu;
    use core::mem::offset_of;
    pub const FAST_HITS: usize = offset_of!(PerCpu, fast_hits);
    pub const FAST: usize = offset_of!(PerCpu, fast);
    pub const COUNTS: usize = offset_of!(PerCpu, counts);
    pub const ACK_ONCE: usize = offset_of!(PerCpu, ack_once);
    pub const ACK_STATUS: usize = offset_of!(PerCpu, ack_status);
    pub const ACK_VALUE: usize = offset_of!(PerCpu, ack_value);
}
const _: () = assert!(core::mem::offset_of!(PerCpu, this) == 0);
const _: () = assert!(core::mem::offset_of!(PerCpu, index) == 8);

impl PerCpu {
    /// A block with everything zero: no handler, nothing owned, nothing counted, nothing fast.
    const fn zero() -> PerCpu {
        PerCpu {
            this: AtomicPtr::new(core::ptr::null_mut()),
            index: AtomicUsize::new(0),
            apic_id: AtomicU32::new(0),
            fast_hits: AtomicU64::new(0),
            fast: [const { AtomicBool::new(false) }; VECTORS],
            counts: [const { AtomicU64::new(0) }; VECTORS],
            ack_once: [const { AtomicU64::new(0) }; VECTORS],
            ack_status: [const { AtomicU64::new(0) }; VECTORS],
            ack_value: [const { AtomicU32::new(0) }; VECTORS],
            handlers: [const { AtomicUsize::new(0) }; VECTORS],
            owned: [const { AtomicBool::new(false) }; VECTORS],
            unowned: [const { AtomicU64::new(0) }; VECTORS],
        }
    }

    /// The CPU's index (0 = boot processor).
    pub fn index(&self) -> usize {
        self.index.load(Ordering::Relaxed)
    }

    /// The CPU's APIC ID as the MADT gave it (the boot processor's: as [`init`] gave it, 0 before).
    pub fn apic_id(&self) -> u32 {
        self.apic_id.load(Ordering::Relaxed)
    }
}

/// The boot processor's block: all zero, so it lives in .bss (and a restart in place, which zeroes .bss,
/// starts it afresh); [`boot`] fills in its address.
static BOOT_BLOCK: PerCpu = PerCpu::zero();

/// The blocks of CPUs 0..[`COUNT`], once [`init`] has run (null before: only [`BOOT_BLOCK`]). A list that
/// is replaced by a longer one is left in place (leaked), since a reader may still be walking it.
static TABLE: AtomicPtr<&'static PerCpu> = AtomicPtr::new(core::ptr::null_mut());
/// Entries of [`TABLE`] (0 before [`init`]).
static COUNT: AtomicUsize = AtomicUsize::new(0);
/// Serialises [`init`] calls.
static INIT: spin::Mutex<()> = spin::Mutex::new(());
/// Called for each block [`init`] adds, once it is reachable through [`block`] (the dispatcher sets the
/// vectors' fast-path flags of a new CPU); 0: none.
static NEW_BLOCK_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Why a CPU got no block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerCpuError {
    /// [`init`] was given no CPU.
    NoCpus,
    /// The heap had no room for the block of CPU `index` (or for the list of blocks).
    OutOfMemory {
        /// The CPU whose block could not be allocated.
        index: usize,
    },
    /// [`enter`] was called for a CPU that has no block.
    NoBlock {
        /// The index asked for.
        index: usize,
        /// Blocks allocated.
        len: usize,
    },
}

impl core::fmt::Display for PerCpuError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoCpus => write!(f, "no CPU listed for the per-CPU blocks"),
            Self::OutOfMemory { index } => {
                write!(f, "no heap left for the per-CPU block of CPU {index}")
            }
            Self::NoBlock { index, len } => {
                write!(f, "CPU {index} has no per-CPU block ({len} allocated)")
            }
        }
    }
}

/// Points this CPU's GS base at `block`.
fn set_gs_base(block: &'static PerCpu) {
    #[cfg(target_os = "none")]
    // SAFETY: IA32_GS_BASE exists on every x86-64 CPU (SDM Vol. 4 Table 2-2; CPUID.80000001H:EDX.LM);
    // the address is canonical (a static or a heap block in the identity-mapped space). Nothing in the
    // firmware uses GS except the per-CPU accesses, which need exactly this value.
    unsafe {
        super::cpu::wrmsr(IA32_GS_BASE, block as *const PerCpu as u64)
    };
    #[cfg(not(target_os = "none"))]
    let _ = (block, IA32_GS_BASE);
}

/// Sets the boot processor up with block 0: fills in the block's address and points the GS base at it.
/// Called by arch::idt before it loads the IDT the first time (the first thing the firmware does that
/// can take an interrupt), so the entry's `%gs:` accesses are valid from the start.
pub(crate) fn boot() {
    BOOT_BLOCK.this.store(
        core::ptr::addr_of!(BOOT_BLOCK).cast_mut(),
        Ordering::Release,
    );
    set_gs_base(&BOOT_BLOCK);
}

/// Registers the function called for every block [`init`] adds (with its index).
pub fn on_new_block(hook: fn(usize)) {
    NEW_BLOCK_HOOK.store(hook as usize, Ordering::Release);
}

/// Allocates one block per CPU (index order, index 0 = the boot processor, the CPU this runs on) and
/// points the boot processor's GS base at block 0. Called again with more CPUs it adds blocks (the
/// existing keep their index, counts and handlers); the APIC IDs of existing blocks are updated. A
/// failure is logged and leaves the CPUs it names without a block ([`try_init`] returns it).
pub fn init(apic_ids: &[u32]) {
    if let Err(e) = try_init(apic_ids) {
        let len = len();
        crate::warn!(
            "per-CPU blocks: {=str}; {=usize} CPUs have one",
            alloc::format!("{e}").as_str(),
            len
        );
    }
}

/// [`init`], returning what went wrong. On `OutOfMemory { index }`, CPUs `0..index` have blocks.
pub fn try_init(apic_ids: &[u32]) -> Result<(), PerCpuError> {
    if apic_ids.is_empty() {
        return Err(PerCpuError::NoCpus);
    }
    let _guard = INIT.lock();
    boot();
    let existing = len();
    for (i, &id) in apic_ids.iter().enumerate().take(existing) {
        if let Some(b) = block(i) {
            b.apic_id.store(id, Ordering::Relaxed);
        }
    }
    if apic_ids.len() <= existing {
        return Ok(());
    }
    let mut list: alloc::vec::Vec<&'static PerCpu> = alloc::vec::Vec::new();
    list.try_reserve_exact(apic_ids.len())
        .map_err(|_| PerCpuError::OutOfMemory { index: existing })?;
    list.extend((0..existing).filter_map(block));
    let mut failed = None;
    for (i, &id) in apic_ids.iter().enumerate().skip(existing) {
        match new_block(i, id) {
            Some(b) => list.push(b),
            None => {
                failed = Some(PerCpuError::OutOfMemory { index: i });
                break;
            }
        }
    }
    let added = existing..list.len();
    let count = list.len();
    let table = alloc::boxed::Box::leak(list.into_boxed_slice());
    // Published table first, then its length: a reader that sees the new length sees the new table (a
    // reader of the old length and new table sees a prefix of it, which is the old table's content).
    TABLE.store(table.as_mut_ptr(), Ordering::Release);
    COUNT.store(count, Ordering::Release);
    let hook = NEW_BLOCK_HOOK.load(Ordering::Acquire);
    if hook != 0 {
        // SAFETY: NEW_BLOCK_HOOK only ever holds 0 or a `fn(usize)` stored by `on_new_block`.
        let hook = unsafe { core::mem::transmute::<usize, fn(usize)>(hook) };
        added.for_each(hook);
    }
    failed.map_or(Ok(()), Err)
}

/// A zeroed block on the heap for CPU `index`, or None when the heap has no room.
fn new_block(index: usize, apic_id: u32) -> Option<&'static PerCpu> {
    let layout = core::alloc::Layout::new::<PerCpu>();
    // SAFETY: the layout has a non-zero size. An all-zero PerCpu is valid (every field is an atomic
    // integer, bool or pointer, for which zero is a value) and is the state `PerCpu::zero` builds.
    let raw = unsafe { alloc::alloc::alloc_zeroed(layout) } as *mut PerCpu;
    if raw.is_null() {
        return None;
    }
    // SAFETY: `raw` is a fresh, zeroed, suitably aligned allocation of a PerCpu that is never freed, and
    // nothing else refers to it yet.
    let b: &'static PerCpu = unsafe { &*raw };
    b.this.store(raw, Ordering::Relaxed);
    b.index.store(index, Ordering::Relaxed);
    b.apic_id.store(apic_id, Ordering::Relaxed);
    Some(b)
}

/// On an application processor, before it enables interrupts: points its GS base at block `index`. A CPU
/// without a block must not take interrupts (the entry would count into another CPU's block): it is
/// halted with interrupts off, which its starter sees as a CPU that did not come up ([`try_enter`] returns
/// the error instead).
pub fn enter(index: usize) {
    if try_enter(index).is_err() {
        super::cpu::halt_forever();
    }
}

/// [`enter`], returning an error for an index without a block (the GS base is then left as it was).
pub fn try_enter(index: usize) -> Result<(), PerCpuError> {
    match block(index) {
        Some(b) => {
            set_gs_base(b);
            Ok(())
        }
        None => Err(PerCpuError::NoBlock { index, len: len() }),
    }
}

/// The block of CPU `index`, if it has one.
pub fn block(index: usize) -> Option<&'static PerCpu> {
    if index == 0 {
        return Some(&BOOT_BLOCK);
    }
    let count = COUNT.load(Ordering::Acquire);
    if index >= count {
        return None;
    }
    let table = TABLE.load(Ordering::Acquire);
    // SAFETY: TABLE points at a leaked list of at least COUNT entries once COUNT is non-zero (stored
    // before COUNT, never freed), and index < COUNT.
    Some(unsafe { *table.add(index) })
}

/// This CPU's block (block 0 before [`boot`]/[`enter`] ran on it, as far as the boot processor goes).
pub fn current() -> &'static PerCpu {
    #[cfg(target_os = "none")]
    {
        let this: *const PerCpu;
        // SAFETY: the GS base points at this CPU's block (set by `boot` before the IDT is loaded on the boot
        // processor, by `enter` on the others), whose first word is its own address; a read only.
        unsafe {
            core::arch::asm!("movq %gs:0, {}", out(reg) this, options(att_syntax, nostack, preserves_flags, readonly));
        }
        if this.is_null() {
            return &BOOT_BLOCK;
        }
        // SAFETY: `this` is the address of a block, which lives forever (static or leaked heap block).
        unsafe { &*this }
    }
    #[cfg(not(target_os = "none"))]
    &BOOT_BLOCK
}

/// This CPU's index (0 = boot processor; 0 before [`init`]).
pub fn index() -> usize {
    current().index()
}

/// Blocks allocated (1 before [`init`]: the boot processor's).
pub fn len() -> usize {
    COUNT.load(Ordering::Acquire).max(1)
}

/// The APIC ID of CPU `index`, as [`init`] was given it.
pub fn apic_id(index: usize) -> Option<u32> {
    block(index).map(PerCpu::apic_id)
}

/// The index of the CPU with APIC ID `apic_id`.
pub fn index_of(apic_id: u32) -> Option<usize> {
    (0..len()).find(|&i| self::apic_id(i) == Some(apic_id))
}

/// Every block, in index order.
pub fn blocks() -> impl Iterator<Item = &'static PerCpu> {
    (0..len()).filter_map(block)
}
