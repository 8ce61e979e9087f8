//! tapedeck's replayer as a library: reading segments and presenting their exchanges.
//!
//! Brief overview:
//! ```text
//! *.seg ──SegmentReader──Exchange──▶ inspect (lines, JSON)
//! ```
//! (Replay, filters, validation and mocks come with their own modules.)

pub mod cli;
pub mod inspect;
pub mod view;
