//! The wire protocol between the msifw firmware and its host tool, defined once for both (`no_std`): the
//! names both sides use (scenarios, interrupt modes, outcomes) and the report's record types.

#![no_std]

pub mod names;
pub mod record;
