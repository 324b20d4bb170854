//! Checks of interrupt behaviour. Each returns an [`Outcome`] and a detail line for the report.
//!
//! [`SCENARIOS`] lists every scenario with its body, in run order; each body is given one
//! [`context::Context`]. Adding a scenario: README "Adding a scenario".

pub mod concurrent;
pub mod conformance;
pub mod context;
pub mod delivery;
pub mod destinations;
pub(crate) mod device_checks;
pub(crate) mod hot_unplug;
pub mod intx_hold;
pub mod lifecycle;
pub mod masking;
pub mod retarget;
pub(crate) mod self_ipi;
pub mod soak;
pub mod storm;
pub mod stuck;
pub mod table;
pub mod virtio;
pub(crate) mod write_order;

pub use table::{Stage, SCENARIOS};

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
    /// A verdict with formatted detail. A detail longer than its 256 bytes is cut at a character and ends
    /// in `...` (a piece that does not fit is not dropped whole, which would lose the end of the message
    /// without a trace).
    pub fn new(outcome: Outcome, args: core::fmt::Arguments) -> Verdict {
        let mut w = Cut { s: String::new(), cut: false };
        let _ = core::fmt::Write::write_fmt(&mut w, args);
        let mut detail = w.s;
        if w.cut {
            while detail.len() > detail.capacity() - 3 {
                detail.pop();
            }
            let _ = detail.push_str("...");
        }
        Verdict { outcome, detail }
    }
}

/// What a negative control provoked: the failure it is about can show only through something live. Each
/// control fills in what it made live; [`judge_control`] turns "nothing" into a skip.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Provoked {
    /// Functions (or entries) left signalling through live MSI or MSI-X messages.
    pub live_messages: u32,
    /// INTx lines a function could assert.
    pub asserted_lines: u32,
    /// MSI-X entries exposed (unmasked) without a programmed message.
    pub vectors_exposed: u32,
}

impl Provoked {
    /// Nothing live: the control cannot catch anything, whatever it sees.
    pub fn nothing(&self) -> bool {
        self.live_messages == 0 && self.asserted_lines == 0 && self.vectors_exposed == 0
    }
}

/// The one place a negative control's verdict is decided: a control that provoked nothing is a skip with
/// the reason (`why_nothing`), never a pass (it caught nothing) nor a fail (there was nothing to catch).
/// Otherwise the control's own verdict stands.
pub fn judge_control(verdict: Verdict, provoked: Provoked, why_nothing: &str) -> Verdict {
    if provoked.nothing() {
        Verdict::new(Outcome::Skip, format_args!("nothing to provoke: {why_nothing}"))
    } else {
        verdict
    }
}

/// Writes as much as fits, character by character.
struct Cut {
    s: String<256>,
    cut: bool,
}

impl core::fmt::Write for Cut {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        for c in text.chars() {
            if self.s.push(c).is_err() {
                self.cut = true;
                return Err(core::fmt::Error);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod verdict_tests {
    use super::*;

    #[test]
    fn a_control_that_provoked_nothing_is_a_skip_whatever_it_saw() {
        for outcome in [Outcome::Pass, Outcome::Fail] {
            let v = judge_control(Verdict::new(outcome, format_args!("seen")), Provoked::default(), "no live device");
            assert_eq!(v.outcome, Outcome::Skip);
            assert_eq!(v.detail.as_str(), "nothing to provoke: no live device");
        }
        for p in [
            Provoked { live_messages: 1, ..Provoked::default() },
            Provoked { asserted_lines: 1, ..Provoked::default() },
            Provoked { vectors_exposed: 1, ..Provoked::default() },
        ] {
            for outcome in [Outcome::Pass, Outcome::Fail] {
                assert_eq!(judge_control(Verdict::new(outcome, format_args!("seen")), p, "x").outcome, outcome, "{p:?}");
            }
        }
    }

    #[test]
    fn long_details_are_cut_with_a_mark_not_dropped() {
        let long = "x".repeat(300);
        let v = Verdict::new(Outcome::Fail, format_args!("start: {long}"));
        assert_eq!(v.detail.len(), 256);
        assert!(v.detail.starts_with("start: xxx") && v.detail.ends_with("x..."));
        assert_eq!(Verdict::new(Outcome::Pass, format_args!("short {}", 1)).detail.as_str(), "short 1");
    }
}
