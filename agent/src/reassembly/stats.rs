//! Counters of everything reassembly saw, delivered, dropped or skipped. Nothing is dropped without a count.

/// Reassembly counters, cumulative over the life of a [`super::FlowTable`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReassemblyStats {
    /// TCP segments processed.
    pub packets: u64,
    /// Captured payload bytes of all segments (retransmissions included).
    pub payload_bytes: u64,
    /// Flows created (a sink was made for each).
    pub flows_created: u64,
    /// Flows closed because both directions finished (FIN) or the connection was reset.
    pub flows_closed: u64,
    /// Flows closed because a SYN with a new ISN arrived on their 4-tuple (port reuse while the old flow was open).
    pub flows_replaced: u64,
    /// Flows closed after the idle timeout.
    pub flows_expired_idle: u64,
    /// Flows evicted because `max_flows` was reached.
    pub flows_evicted: u64,
    /// Flows closed by `flush_all` (end of input).
    pub flows_end_of_input: u64,
    /// RST segments seen.
    pub resets: u64,
    /// RST segments for no known flow (dropped).
    pub resets_without_flow: u64,
    /// RST segments ignored because they carry a TCP-MD5 or TCP-AO option on a connection whose SYN did not: the
    /// receiving host discards such a segment, so the connection goes on (an injected RST).
    pub resets_ignored_signed: u64,
    /// Segments for a 4-tuple closed moments ago (a tombstone): trailing ACKs, late retransmissions (dropped).
    pub late_segments_after_close: u64,
    /// Bytes passed to `sink.data`.
    pub delivered_bytes: u64,
    /// Segments whose every byte had already been delivered or buffered (pure retransmissions).
    pub retransmitted_segments: u64,
    /// Bytes received again that had already been delivered or buffered (dropped: first copy wins).
    pub retransmitted_bytes: u64,
    /// Overlaps where the new copy's captured bytes differ from the buffered copy (the first copy is kept).
    /// Bytes already delivered are not kept, so overlaps with them cannot be compared and are not counted here.
    pub overlap_conflicts: u64,
    /// Gap events passed to `sink.gap`, for any cause.
    pub gaps: u64,
    /// Bytes declared as gaps, for any cause.
    pub gap_bytes: u64,
    /// Gaps declared because the other side acknowledged bytes that were never captured ("acked-unseen").
    pub gaps_acked_unseen: u64,
    /// Gaps declared because an out-of-order cap (bytes, segments, or global bytes) would be exceeded.
    pub gaps_cap: u64,
    /// Gaps declared when a flow closed with holes before buffered data or before its FIN.
    pub gaps_at_close: u64,
    /// Gaps for bytes cut off by the capture's snaplen.
    pub gaps_snaplen: u64,
    /// Segments cut by snaplen (`missing > 0`).
    pub snaplen_truncated_segments: u64,
    /// Bytes cut by snaplen, as declared by the segments (retransmitted ones included).
    pub snaplen_missing_bytes: u64,
    /// Segments dropped whole as out of window: too far ahead, before the stream's start, or after its FIN.
    pub out_of_window_segments: u64,
    /// Bytes dropped as out of window (whole segments and trimmed parts).
    pub out_of_window_bytes: u64,
    /// Segments (or pieces of segments) copied into an out-of-order buffer.
    pub ooo_segments_buffered: u64,
    /// Highest number of captured bytes buffered out of order at once, over all flows.
    pub peak_buffered_bytes: u64,
    /// Times the per-direction out-of-order byte cap forced a gap.
    pub cap_hits_direction_bytes: u64,
    /// Times the per-direction out-of-order segment cap forced a gap.
    pub cap_hits_direction_segments: u64,
    /// Times the global buffered byte cap forced a gap.
    pub cap_hits_total_bytes: u64,
    /// FINs delivered to sinks.
    pub fins: u64,
}

crate::impl_merge!(ReassemblyStats {
    packets,
    payload_bytes,
    flows_created,
    flows_closed,
    flows_replaced,
    flows_expired_idle,
    flows_evicted,
    flows_end_of_input,
    resets,
    resets_without_flow,
    resets_ignored_signed,
    late_segments_after_close,
    delivered_bytes,
    retransmitted_segments,
    retransmitted_bytes,
    overlap_conflicts,
    gaps,
    gap_bytes,
    gaps_acked_unseen,
    gaps_cap,
    gaps_at_close,
    gaps_snaplen,
    snaplen_truncated_segments,
    snaplen_missing_bytes,
    out_of_window_segments,
    out_of_window_bytes,
    ooo_segments_buffered,
    peak_buffered_bytes,
    cap_hits_direction_bytes,
    cap_hits_direction_segments,
    cap_hits_total_bytes,
    fins
});
