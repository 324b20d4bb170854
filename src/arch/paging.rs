//! Identity mappings beyond the boot tables (SDM Vol. 3A 5.5, 4-level paging with 2 MiB pages).
//! boot/pvh.s maps 0-4 GiB; a 64-bit BAR or an ECAM window placed above 4 GiB is mapped here, uncached.

use spin::Mutex;

const PRESENT: u64 = 1;
const WRITABLE: u64 = 1 << 1;
const PWT: u64 = 1 << 3;
const PCD: u64 = 1 << 4;
const HUGE: u64 = 1 << 7;
const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
const TWO_MIB: u64 = 2 << 20;
/// Physical addresses the 4-level tables can reach with an identity map (MAXPHYADDR 46 on common CPUs).
const MAX_PHYS: u64 = 1 << 46;

extern "C" {
    static mut boot_pml4: [u64; 512];
}

#[repr(C, align(4096))]
struct Table([u64; 512]);

/// Page-table pages in .bss, for mappings made before the heap exists (the stack guard page) and the first
/// few after: each covers 1 GiB (a PD) or 512 GiB (a PDPT). Further ones come from the heap, so BARs spread
/// over many GiB above 4 GiB are all mapped.
const POOL_PAGES: usize = 4;
struct Pool {
    pages: [Table; POOL_PAGES],
    used: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool { pages: [const { Table([0; 512]) }; POOL_PAGES], used: 0 });

/// Why a mapping could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PagingError {
    /// The range wraps or lies beyond what 4-level paging maps.
    OutOfRange,
    /// The page-table pool is exhausted and the heap has no page left.
    PoolExhausted,
}

/// Makes the 4 KiB page at `addr` (in the low 4 GiB) not present, splitting its 2 MiB page into 4 KiB
/// pages first: a guard page, so running into it faults at once.
pub fn unmap_4k(addr: u64) -> Result<(), PagingError> {
    if addr >= 1 << 32 {
        return Err(PagingError::OutOfRange);
    }
    let mut pool = POOL.lock();
    let pdpt_index = ((addr >> 30) & 511) as usize;
    let pd_index = ((addr >> 21) & 511) as usize;
    // SAFETY: as in `map_2m`: the boot tables are live and identity-mapped, and POOL's lock serialises
    // every change. The 4 KiB table mirrors the 2 MiB entry's flags, so nothing but the guard page changes
    // before the TLB flush.
    unsafe {
        let pml4 = &mut *core::ptr::addr_of_mut!(boot_pml4);
        let pdpt = (pml4[0] & ADDR_MASK) as *mut u64;
        let pd = (*pdpt.add(pdpt_index) & ADDR_MASK) as *mut u64;
        let entry = &mut *pd.add(pd_index);
        if *entry & HUGE != 0 {
            // From the pool while it lasts, then from the heap (a guard page under every CPU's stacks).
            let table: *mut u64 = if pool.used < POOL_PAGES {
                let slot = pool.used;
                pool.used += 1;
                pool.pages[slot].0.as_mut_ptr()
            } else {
                // The heap's page is zeroed, 4 KiB-aligned, identity-mapped RAM, never freed (it stays part
                // of the live page tables), as in `next_table`.
                let page = alloc::alloc::alloc_zeroed(core::alloc::Layout::new::<Table>());
                if page.is_null() {
                    return Err(PagingError::PoolExhausted);
                }
                page.cast::<u64>()
            };
            let base = *entry & 0x000F_FFFF_FFE0_0000;
            let flags = *entry & (PRESENT | WRITABLE | PWT | PCD);
            for i in 0..512 {
                *table.add(i) = (base + i as u64 * 4096) | flags;
            }
            *entry = (table as u64) | PRESENT | WRITABLE;
        }
        let pt = (*entry & ADDR_MASK) as *mut u64;
        *pt.add(((addr >> 12) & 511) as usize) &= !PRESENT;
    }
    x86_64::instructions::tlb::flush_all();
    Ok(())
}

/// Identity-maps `phys..phys + len` uncached. Below 4 GiB the boot tables already map everything, uncached
/// only from 3 GiB up: pages there are re-flagged PCD|PWT (q35's ECAM window sits at 0xB0000000, and a
/// real machine's MMIO may lie anywhere in the hole), so the result does not depend on the MTRRs.
pub fn map_uncached(phys: u64, len: u64) -> Result<(), PagingError> {
    let end = phys.checked_add(len).ok_or(PagingError::OutOfRange)?;
    if end > MAX_PHYS {
        return Err(PagingError::OutOfRange);
    }
    let mut pool = POOL.lock();
    let mut page = phys & !(TWO_MIB - 1);
    while page < end {
        map_2m(&mut pool, page)?;
        page += TWO_MIB;
    }
    x86_64::instructions::tlb::flush_all();
    Ok(())
}

fn next_table(pool: &mut Pool, entry: &mut u64) -> Result<*mut u64, PagingError> {
    if *entry & PRESENT == 0 {
        let table = if pool.used < POOL_PAGES {
            let table = &mut pool.pages[pool.used].0;
            pool.used += 1;
            table.fill(0);
            table.as_mut_ptr()
        } else {
            let layout = core::alloc::Layout::new::<Table>();
            // SAFETY: `Table` has a non-zero size. The page is zeroed, 4 KiB-aligned, identity-mapped heap
            // RAM (arch::heap), and never freed: it stays part of the live page tables.
            let page = unsafe { alloc::alloc::alloc_zeroed(layout) };
            if page.is_null() {
                return Err(PagingError::PoolExhausted);
            }
            page.cast::<u64>()
        };
        *entry = (table as u64) | PRESENT | WRITABLE;
    }
    Ok((*entry & ADDR_MASK) as *mut u64)
}

fn map_2m(pool: &mut Pool, addr: u64) -> Result<(), PagingError> {
    let pml4_index = ((addr >> 39) & 511) as usize;
    let pdpt_index = ((addr >> 30) & 511) as usize;
    let pd_index = ((addr >> 21) & 511) as usize;
    // SAFETY: boot_pml4 is the live top-level table built by boot/pvh.s; we hold POOL's lock, the only path
    // that edits page tables after boot, and all table pages are identity-mapped (they live in .bss).
    unsafe {
        let pml4 = &mut *core::ptr::addr_of_mut!(boot_pml4);
        let pdpt = next_table(pool, &mut pml4[pml4_index])?;
        let pd = next_table(pool, &mut *pdpt.add(pdpt_index))?;
        let entry = &mut *pd.add(pd_index);
        if *entry & PRESENT == 0 {
            *entry = addr | PRESENT | WRITABLE | HUGE | PWT | PCD;
        } else if *entry & HUGE != 0 {
            *entry |= PWT | PCD;
        } else {
            // Split earlier into 4 KiB pages (a guard page): each one uncached, present or not as it was.
            let pt = (*entry & ADDR_MASK) as *mut u64;
            for i in 0..512 {
                *pt.add(i) |= PWT | PCD;
            }
        }
    }
    Ok(())
}
