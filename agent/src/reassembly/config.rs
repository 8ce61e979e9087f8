//! Reassembly limits: how many flows, how many out-of-order bytes, how long a quiet flow lives. Every limit bounds
//! memory or state independently of the input; exceeding one is counted and turned into a gap or an eviction.

/// Limits and timeouts of [`super::FlowTable`]. Plain fields; [`Default`] gives values suited to a node agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// Most flows tracked at once. A new flow beyond it evicts the least recently seen flow (`close(Evicted)`).
    /// Default 262 144. Values below 1 are treated as 1.
    pub max_flows: usize,
    /// Most captured out-of-order bytes buffered for one direction of one flow. Beyond it, the oldest hole of that
    /// direction is declared a gap and the buffered data behind it is delivered. Default 1 MiB.
    pub max_ooo_bytes_per_direction: usize,
    /// Most out-of-order segments (pieces) buffered for one direction; bounds per-piece overhead when segments are
    /// tiny. Exceeding it is handled like the byte cap. Default 1024.
    pub max_ooo_segments_per_direction: usize,
    /// Most captured out-of-order bytes buffered over all flows. A direction that would exceed it skips its holes
    /// (gaps) instead of buffering more. Default 128 MiB.
    pub max_buffered_bytes_total: usize,
    /// A flow with no packet for this long (capture time) is closed with `close(Idle)`. Default 300 s.
    pub idle_timeout_nanos: u64,
    /// How long the 4-tuple of a flow closed by FIN or RST is remembered, so that trailing ACKs and late
    /// retransmissions are dropped (counted) instead of opening a new flow with the wrong roles. A SYN with a new
    /// ISN still opens a new flow. Default 10 s.
    pub tombstone_nanos: u64,
    /// Most closed 4-tuples remembered at once (oldest forgotten first). Default 65 536.
    pub max_tombstones: usize,
    /// A segment starting more than this many bytes ahead of the next expected byte is out of window: dropped and
    /// counted. Also the largest ACK advance believed. Default 1 GiB. Clamped to `2^31 - 1`.
    pub max_seq_ahead: u32,
    /// Bytes the other side acknowledged but the capture has not shown become a gap only once the first such
    /// acknowledgement is this old (capture time, checked on the flow's next acknowledgement and at close): a capture
    /// can show an ACK a little before the data it acknowledges (mirror ports, several interfaces, carved files),
    /// and a gap declared too early loses that data. Default 10 ms; 0 declares the gap at once.
    pub acked_gap_grace_nanos: u64,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            max_flows: 262_144,
            max_ooo_bytes_per_direction: 1 << 20,
            max_ooo_segments_per_direction: 1024,
            max_buffered_bytes_total: 128 << 20,
            idle_timeout_nanos: 300 * 1_000_000_000,
            tombstone_nanos: 10 * 1_000_000_000,
            max_tombstones: 65_536,
            max_seq_ahead: 1 << 30,
            acked_gap_grace_nanos: 10_000_000,
        }
    }
}

impl ReassemblyConfig {
    /// The flow cap actually applied (at least 1).
    pub(crate) fn flow_cap(&self) -> usize {
        self.max_flows.max(1)
    }
    /// The ahead window actually applied (fits a signed 32-bit sequence difference).
    pub(crate) fn ahead_window(&self) -> i64 {
        i64::from(self.max_seq_ahead.min(i32::MAX as u32))
    }
}
