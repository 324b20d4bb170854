//! Lending the caller's hook to the CPU a retarget runs on.
//!
//! Linux's two-step MSI move runs on the interrupt's old CPU with interrupts off there
//! (arch/x86/kernel/apic/msi.c, msi_set_affinity), and a negative control or a check wants its hook (make
//! the device raise) run in the middle of it: on that CPU, while the caller waits in `call_on`.

use spin::Mutex;

/// A `&mut dyn FnMut()` that another CPU may call while its owner is blocked waiting for that CPU.
pub struct Lent<'a>(Mutex<&'a mut dyn FnMut()>);

impl core::fmt::Debug for Lent<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Lent")
    }
}

// SAFETY: a `Lent` is built from the caller's `&mut` borrow and handed only to `call_on`, which does not
// return while the function it runs (and so the hook) is still running on the other CPU: its timeout is
// for a CPU that never picked the call up, and every closure borrowing the caller's stack relies on the
// same contract.
// The mutex keeps the hook from being entered twice at once; the firmware has no thread-local state a hook
// could depend on, only per-CPU data it reads through the CPU it runs on, which is the point of running
// it there.
unsafe impl Sync for Lent<'_> {}

impl<'a> Lent<'a> {
    /// Lends `hook`.
    pub fn new(hook: &'a mut dyn FnMut()) -> Self {
        Lent(Mutex::new(hook))
    }

    /// Runs the hook (on whichever CPU calls this).
    pub fn call(&self) {
        let mut hook = self.0.lock();
        (*hook)();
    }
}
