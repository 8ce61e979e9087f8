//! TCP reassembly: [`TcpSegment`](crate::decode::TcpSegment)s in, per-connection ordered byte streams out, pushed
//! into a [`StreamSink`](crate::stream::StreamSink) made by a [`SinkFactory`](crate::stream::SinkFactory) for each
//! connection.
//!
//! ```text
//! TcpSegment ──▶ FlowTable (table.rs: 4-tuple → Flow, LRU order, idle/evict/tombstones)
//!                  └─ Flow (flow.rs: roles from SYN / SYN+ACK / first packet, RST, FIN pairs)
//!                       └─ HalfStream × 2 (stream.rs: offsets, retransmissions, gaps, FIN)
//!                            └─ OooBuffer (ooo.rs: out-of-order pieces, first copy wins)
//!                                 ──▶ sink.data / gap / fin / reset / close
//! ```
//!
//! What comes in: every TCP segment, in capture order (which may differ from sequence order). What goes out: for
//! each direction, every byte exactly once, in order, either as `data` or inside a `gap`, then `fin` if the FIN was
//! seen; `reset` for a RST; `close` exactly once per flow. What is dropped, always counted in [`ReassemblyStats`]:
//! retransmitted bytes (first copy wins), out-of-window segments, segments of a just-closed 4-tuple, RSTs of unknown
//! flows; what is skipped becomes a gap (lost in capture and acknowledged by the peer, beyond a buffering cap, cut
//! by snaplen, or still missing when the flow closes). Memory is bounded by [`ReassemblyConfig`].
//!
//! The in-order path passes the packet's payload slice straight to the sink and does not allocate; only
//! out-of-order segments are copied (one `Vec` per buffered piece). Idle expiry looks only at the least recently
//! seen flow on each segment (O(1)); the clock is the highest capture time seen, never the wall clock.
//!
//! Roles: a SYN's sender is the originator; a SYN+ACK seen first makes its receiver the originator (both with
//! `handshake_seen = true`, and the SYN+ACK's ACK number gives the originator's initial sequence number); otherwise
//! the first sender is the originator with `handshake_seen = false`.
//!
//! Known limits, by design:
//! - Overlap conflicts are detected against buffered bytes only; delivered bytes are not kept to compare with.
//! - An ACK seen before the data it acknowledges (capture reordering, e.g. across interfaces) makes that data a
//!   gap; the late copy is then counted as a retransmission. A FIN lost in capture but acknowledged stretches the
//!   last acked-unseen gap by the FIN's one sequence number.
//! - When a flow was joined mid-stream, bytes before the first data segment seen in a direction are dropped (out
//!   of window) if they arrive later.
//! - The global cap is enforced on the direction that would exceed it (it skips its own holes); other flows'
//!   buffers are not reclaimed early.
//! - A SYN with a new ISN on an open flow closes the old one with `CloseReason::Closed` (counted as replaced).

mod config;
mod flow;
mod ooo;
mod seq;
mod stats;
mod stream;
mod table;
mod tombstone;

#[cfg(test)]
mod tests;

pub use config::ReassemblyConfig;
pub use seq::SeqNumber;
pub use stats::ReassemblyStats;
pub use table::FlowTable;
