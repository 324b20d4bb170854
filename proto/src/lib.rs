//! The wire protocol between the msifw firmware and its host tool, defined once for both (`no_std`): the
//! names both sides use (scenarios, interrupt modes, outcomes), the report's record types, and the frames
//! that carry them on COM1 (docs/protocol.md).

#![no_std]

extern crate alloc;

pub mod frame;
pub mod names;
pub mod record;
pub mod text;
