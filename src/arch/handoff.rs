//! Words that survive a restart in place (`firmware::restart`, scenario `crash-restart`): they live in the
//! linker script's `.handoff` section, which is zero when the image is loaded and which the entry code
//! never zeroes, so a restarted run reads what the run before it wrote.
//!
//! Atomics, so neither side needs `unsafe` to reach them: every bit pattern is a valid `u32`, and the
//! firmware runs on one CPU.

use core::sync::atomic::{AtomicU32, Ordering};

/// How many words survive.
pub const WORDS: usize = 6;

// SAFETY (`link_section`, which the `unsafe_code` lint counts): linker/msifw.ld places `.handoff` in the
// image's writable data segment, zero at load and never zeroed by the entry code (boot/pvh.s), so a
// fresh boot finds the initialiser's zeros and a restart what the previous run wrote; every bit pattern
// is a valid `AtomicU32`, and nothing else lives in the section's first words.
#[link_section = ".handoff"]
static HANDOFF: [AtomicU32; WORDS] = [const { AtomicU32::new(0) }; WORDS];

/// The words as the previous run left them (zeros on a fresh boot).
pub fn read() -> [u32; WORDS] {
    core::array::from_fn(|i| HANDOFF[i].load(Ordering::Relaxed))
}

/// Leaves `words` for the run after a restart in place.
pub fn write(words: [u32; WORDS]) {
    for (slot, w) in HANDOFF.iter().zip(words) {
        slot.store(w, Ordering::Relaxed);
    }
}
