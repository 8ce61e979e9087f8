//! tapedeck's capture agent as a library: every stage of the capture pipeline, each testable on data in memory.
//!
//! Brief overview:
//! ```text
//! source ──Frame──▶ decode ──TcpSegment──▶ reassembly ──StreamEvent (data/gap/fin/reset)──▶ session
//!   (pcap, pcapng, stdin)   (link, IP, defrag)   (flows, order, caps)          (detection, http1, http2)
//!        session ──Exchange──▶ pipeline (ids, batching) ──▶ writer thread (tapedeck_model::segment)
//! ```
//! Time is data from the capture: no stage reads the clock.

pub mod body;
pub mod decode;
pub mod http1;
pub mod http2;
pub mod reassembly;
pub mod source;
pub mod stream;
