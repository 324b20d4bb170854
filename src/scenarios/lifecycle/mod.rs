//! The five lifecycle scenarios, one per seed thread (README "Lifecycle scenarios"): interrupt state across
//! a shutdown (000), a reset (001), a re-enable (002), a crash restart (003) and an incremental enable
//! (004). Each runs with the firmware's guard on and again as a negative control with it off.

pub mod crash_restart;
pub mod incremental;
pub mod reenable;
pub mod reset_restore;
pub mod shutdown;
