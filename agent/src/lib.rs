//! tapedeck's capture agent as a library: every stage of the capture pipeline, each testable on data in memory.
//!
//! Brief overview:
//! ```text
//! source ──Frame──▶ decode ──TcpSegment──▶ reassembly ──data/gap/fin/reset (StreamSink)──▶ session
//!  (pcap, pcapng, stdin)  (link, IP, defrag)  (flows, order, caps)           (detection by content)
//!                                                                         ├─▶ http1 ──Exchange──┐
//!                                                                         └─▶ http2 ──Exchange──┤
//!        pipeline (ids, labels, batches) ◀────────────────────────────────────────────────────┘
//!           ──Vec<Exchange>──▶ writer thread (tapedeck_model::segment) ──▶ *.seg
//! ```
//! Time is data from the capture: no stage reads the clock.

pub mod body;
pub mod cli;
pub mod decode;
pub mod http1;
pub mod http2;
pub mod live;
pub mod logfile;
pub mod mask;
pub mod metrics;
pub mod pipeline;
pub mod privileges;
pub mod reassembly;
pub mod reload;
pub mod retention;
pub mod service;
pub mod session;
pub mod shard;
pub mod signals;
pub mod socks;
pub mod source;
pub mod stats;
pub mod stream;
pub mod summary;
pub mod writers;
