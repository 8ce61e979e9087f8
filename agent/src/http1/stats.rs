//! Counters of one HTTP/1 connection (and, added up, of many): what was parsed, and every anomaly, drop, gap and
//! truncation, so that nothing is lost silently.

/// HTTP/1 parser counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Http1Stats {
    /// Request heads parsed.
    pub requests: u64,
    /// Final (non-1xx) response heads parsed, 101 included.
    pub responses: u64,
    /// Interim (1xx other than 101) response heads parsed.
    pub interim: u64,
    /// Exchanges emitted.
    pub exchanges: u64,
    /// Garbage where a head should be, oversized heads, and broken chunked framing.
    pub parse_errors: u64,
    /// Messages whose framing headers were anomalous (conflicting Content-Length, invalid Content-Length, a
    /// request Transfer-Encoding whose final coding is not chunked); the exchange is flagged `parse_error`.
    pub framing_anomalies: u64,
    /// Heads that httparse refused and the lenient parser read (obs-fold, odd spacing, odd versions...).
    pub lenient_heads: u64,
    /// Heads whose start line was malformed and read leniently (a request line without target or version, a
    /// status line with a version other than HTTP/1.x or a status that is not three digits); the exchange is
    /// flagged `parse_error`. Also counted in `lenient_heads`.
    pub malformed_start_lines: u64,
    /// Header lines the lenient parser dropped (no colon, empty name).
    pub dropped_header_lines: u64,
    /// Heads larger than `max_head_bytes` (also counted in `parse_errors`).
    pub oversized_heads: u64,
    /// Heads cut by the end of their direction (FIN, reset, close) before they were complete.
    pub incomplete_heads: u64,
    /// Heads cut by a gap whose captured lines were still recorded as a message (flagged gap, incomplete).
    pub salvaged_heads: u64,
    /// Times a direction started scanning for the next message start (mid-stream start, gap, garbage).
    pub resyncs: u64,
    /// Bytes skipped while scanning for a message start.
    pub resync_skipped_bytes: u64,
    /// Gap events (bytes never captured).
    pub gaps: u64,
    /// Bytes lost in gaps.
    pub gap_bytes: u64,
    /// Bodies cut at the body cap.
    pub truncated_bodies: u64,
    /// Messages that ended (FIN, reset, close, gap, broken framing) before their declared end.
    pub incomplete_messages: u64,
    /// Responses without a request (exchange flagged `no_request`).
    pub unmatched_responses: u64,
    /// Requests without a response (exchange flagged `no_response`).
    pub unanswered_requests: u64,
    /// Protocol switches: 101 responses and 2xx answers to CONNECT.
    pub upgrades: u64,
    /// Of `upgrades`, h2c upgrades handed to HTTP/2.
    pub h2c_upgrades: u64,
    /// Requests flushed early as unanswered because `max_pipelined` requests were already waiting.
    pub pipeline_overflows: u64,
    /// Times the client bytes held while waiting for the answer to an upgrade request exceeded the head cap and
    /// were parsed as HTTP/1 anyway.
    pub upgrade_hold_overflows: u64,
    /// Interim responses dropped because an exchange already kept the maximum number.
    pub dropped_interim: u64,
    /// Bytes received after the direction ended or the connection switched protocols, ignored.
    pub ignored_bytes: u64,
}

crate::impl_merge!(Http1Stats {
    requests,
    responses,
    interim,
    exchanges,
    parse_errors,
    framing_anomalies,
    lenient_heads,
    malformed_start_lines,
    dropped_header_lines,
    oversized_heads,
    incomplete_heads,
    salvaged_heads,
    resyncs,
    resync_skipped_bytes,
    gaps,
    gap_bytes,
    truncated_bodies,
    incomplete_messages,
    unmatched_responses,
    unanswered_requests,
    upgrades,
    h2c_upgrades,
    pipeline_overflows,
    upgrade_hold_overflows,
    dropped_interim,
    ignored_bytes
});
