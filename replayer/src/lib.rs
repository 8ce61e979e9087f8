//! tapedeck's replayer as a library: reading segments, presenting their exchanges, and replaying them.
//!
//! Brief overview:
//! ```text
//! *.seg ──SegmentReader──Exchange──▶ inspect (lines, JSON)
//! *.seg ──select (filters)──Vec<Exchange>──▶ plan (connections, order)──Plan──▶ pace (time scale, max gap)
//!       ──Plan──▶ transform (target, hosts, headers, variables)──OutRequest──▶ client (hyper, tokio)
//!       ──Outcome──▶ report (hdrhistogram, JSON)
//! ```
//! [`run`] puts the replay stages together for `replayer run`.

pub mod cli;
pub mod client;
pub mod correlate;
pub mod inspect;
pub mod judge;
pub mod mock;
pub mod pace;
pub mod plan;
pub mod report;
pub mod run;
pub mod select;
pub mod transform;
pub mod view;
