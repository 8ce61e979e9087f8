//! tapedeck's replayer as a library: reading segments, presenting their exchanges, and replaying them.
//!
//! Brief overview:
//! ```text
//! *.seg ──SegmentReader──Exchange──▶ inspect (lines, JSON)
//! *.seg ──select (filters)──Vec<Exchange>──▶ plan (connections, order)──Plan──▶ pace (time scale, max gap)
//!       ──Plan──▶ transform (target, hosts, headers, variables)──OutRequest──▶ client (hyper, tokio)
//!       ──Outcome──▶ report (hdrhistogram, JSON), progress (bar / lines), har (HAR 1.2)
//! *.seg ──export──▶ HAR 1.2, JSON lines
//! ```
//! Around the sender: precise (sub-millisecond send deadlines), safety (where requests may go), tls (https targets), ratelimit (`--max-rate`), tokens
//! (`--token-file`).
//! [`run`] puts the replay stages together for `replayer run`.

pub mod cli;
pub mod client;
pub mod correlate;
pub mod export;
pub mod har;
pub mod inspect;
pub mod judge;
pub mod mock;
pub mod pace;
pub mod plan;
pub mod precise;
pub mod progress;
pub mod ratelimit;
pub mod replayed;
pub mod report;
pub mod run;
pub mod safety;
pub mod select;
pub mod tls;
pub mod tokens;
pub mod transform;
pub mod view;
