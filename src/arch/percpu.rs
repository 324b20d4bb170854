//! Per-CPU blocks: a minimal stand-in with the interface of helper A2's module (issue 15 split), so the
//! application-processor code builds before A2's GS-based blocks land; the lead replaces this file with
//! A2's on merge. Here a CPU's index is found by its local APIC ID in the table `init` records.

use alloc::vec::Vec;

static APIC_IDS: spin::Once<Vec<u32>> = spin::Once::new();

/// BSP: one block per CPU (index order, index 0 = the BSP).
pub fn init(apic_ids: &[u32]) {
    APIC_IDS.call_once(|| apic_ids.to_vec());
}

/// On an AP: makes `index` this CPU's block. (Nothing to do in this stand-in: the index is looked up.)
pub fn enter(index: usize) {
    let _ = index;
}

/// This CPU's index (0 before [`init`], or on a CPU the table does not list).
pub fn index() -> usize {
    let Some(ids) = APIC_IDS.get() else { return 0 };
    let me = super::lapic::id();
    ids.iter().position(|&id| id == me).unwrap_or(0)
}

/// Blocks allocated.
pub fn len() -> usize {
    APIC_IDS.get().map_or(1, |ids| ids.len().max(1))
}
