//! Checks of interrupt behaviour. Each returns an [`Outcome`] and a detail line for the report.

pub mod delivery;
pub mod incremental;
pub mod masking;
pub mod reenable;
pub mod reset;
pub mod soak;
pub mod storm;
pub mod stuck;

pub use crate::report::Outcome;
use heapless::String;

/// One device under a check that drives several devices at once: its interrupt source and its
/// interrupts.
pub type Target<'a, 'c, C> = (&'a mut dyn crate::drivers::InterruptSource, &'a mut crate::modes::DeviceIrq<'c, C>);

/// A scenario's verdict.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// Pass, fail or skip.
    pub outcome: Outcome,
    /// What was measured, or what went wrong.
    pub detail: String<256>,
}

impl Verdict {
    /// A verdict with formatted detail.
    pub fn new(outcome: Outcome, args: core::fmt::Arguments) -> Verdict {
        let mut detail = String::new();
        let _ = core::fmt::Write::write_fmt(&mut detail, args);
        Verdict { outcome, detail }
    }
}
