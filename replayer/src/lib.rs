//! tapedeck's replayer as a library: reading segments, presenting their exchanges, and replaying them.
//!
//! Brief overview:
//! ```text
//! *.seg ──select (filter_args)──Vec<Exchange>──▶ inspect (lines, JSON, bodies)
//! *.seg ──select (filters)──Vec<Exchange>──▶ plan (connections, order)──Plan──▶ pace (time scale, max gap)
//!       ──Plan──▶ transform (target, hosts, headers, variables)──OutRequest──▶ client (hyper, tokio)
//!       ──Outcome──▶ report (hdrhistogram, JSON), progress (bar / lines), har (HAR 1.2)
//! *.seg ──export──▶ HAR 1.2, JSON lines
//! ```
//! Around the sender: precise (sub-millisecond send deadlines), safety (where requests may go), tls (https targets), ratelimit (`--max-rate`), tokens
//! (`--token-file`).
//! Also: outputs (`--report`, `--junit`, `--har` checked at start), bodies (readable bodies for `inspect --bodies`).
//! [`run`] puts the replay stages together for `replayer run`.

pub mod bodies;
pub mod cli;
pub mod client;
pub mod correlate;
pub mod export;
pub mod filter_args;
pub mod har;
pub mod inspect;
pub mod judge;
pub mod masked;
pub mod mock;
pub mod outputs;
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
pub mod token_map;
pub mod tokens;
pub mod transform;
pub mod view;
