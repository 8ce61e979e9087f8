//! Counters of one HTTP/2 connection's decoding: frames by type, bytes, HPACK trouble, stream lifecycle, protocol
//! errors and recoveries. Every byte skipped, frame dropped and stream cut short is counted here.

/// What the HTTP/2 decoder saw and what it could not use. Add connections' stats with [`H2Stats::add`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct H2Stats {
    /// Bytes handed to the decoder (both directions).
    pub bytes: u64,
    /// Bytes reported lost by reassembly gaps.
    pub gap_bytes: u64,
    /// Gaps that fell inside a DATA payload, so framing and HPACK stayed in sync.
    pub gaps_in_data: u64,
    /// Bytes skipped while looking for a frame boundary (mid-stream start, after a gap or a bad preface).
    pub bytes_skipped: u64,
    /// Times a frame boundary was found again after joining mid-stream or losing sync.
    pub mid_stream_recoveries: u64,
    /// Client connection prefaces that did not match `PRI * HTTP/2.0...`.
    pub preface_errors: u64,
    /// DATA frames.
    pub frames_data: u64,
    /// HEADERS frames.
    pub frames_headers: u64,
    /// PRIORITY frames.
    pub frames_priority: u64,
    /// RST_STREAM frames.
    pub frames_rst_stream: u64,
    /// SETTINGS frames.
    pub frames_settings: u64,
    /// PUSH_PROMISE frames.
    pub frames_push_promise: u64,
    /// PING frames.
    pub frames_ping: u64,
    /// GOAWAY frames.
    pub frames_goaway: u64,
    /// WINDOW_UPDATE frames.
    pub frames_window_update: u64,
    /// CONTINUATION frames.
    pub frames_continuation: u64,
    /// Frames of unknown types (skipped, as RFC 9113 §4.1 requires).
    pub frames_unknown: u64,
    /// Frames whose payload was malformed (bad padding, bad length for the type); their exchanges get PARSE_ERROR.
    pub malformed_frames: u64,
    /// Frames longer than the configured buffering limit (non-DATA: payload skipped) or than the peer allowed
    /// (DATA, when the peer's SETTINGS_MAX_FRAME_SIZE is known: not after joining mid-stream).
    pub oversized_frames: u64,
    /// Frames cut by the end of the stream (FIN, reset or close in the middle of a frame).
    pub truncated_frames: u64,
    /// Protocol violations that do not break framing: CONTINUATION out of place, HEADERS on a closed stream, ...
    pub protocol_errors: u64,
    /// Frames for streams already finished, evicted or never opened, dropped.
    pub frames_on_closed_streams: u64,
    /// Header blocks that failed HPACK decoding (the direction's table is unknown afterwards).
    pub hpack_errors: u64,
    /// Header blocks decoded while the direction's dynamic table was unknown.
    pub header_blocks_unknown_table: u64,
    /// Header fields that could not be decoded because they referred to an unknown dynamic table.
    pub header_fields_skipped: u64,
    /// Header blocks larger (compressed) than `max_header_list_bytes`, dropped (the table is unknown afterwards).
    pub header_blocks_oversized: u64,
    /// Header lists cut at `max_header_list_bytes` (decoded fields past the cap not kept).
    pub header_lists_truncated: u64,
    /// Streams opened (request HEADERS, promised by PUSH_PROMISE, upgraded, or first seen mid-stream).
    pub streams_opened: u64,
    /// Streams that ended normally on both sides.
    pub streams_closed: u64,
    /// Streams reset by RST_STREAM.
    pub streams_reset: u64,
    /// Streams refused by a GOAWAY (id above its last-stream-id).
    pub streams_refused: u64,
    /// Streams evicted to respect `max_streams`.
    pub streams_evicted: u64,
    /// Streams flushed unfinished at FIN, TCP reset or close.
    pub streams_incomplete: u64,
    /// PUSH_PROMISE frames (server pushes, each recorded as an exchange flagged PUSHED).
    pub push_promises: u64,
    /// GOAWAY frames (also counted in `frames_goaway`; kept apart for dashboards).
    pub goaways: u64,
    /// Exchanges emitted.
    pub exchanges: u64,
}

impl H2Stats {
    /// Counts one frame of type `ty`.
    pub(crate) fn count_frame(&mut self, ty: u8) {
        use super::frame::*;
        let c = match ty {
            DATA => &mut self.frames_data,
            HEADERS => &mut self.frames_headers,
            PRIORITY => &mut self.frames_priority,
            RST_STREAM => &mut self.frames_rst_stream,
            SETTINGS => &mut self.frames_settings,
            PUSH_PROMISE => &mut self.frames_push_promise,
            PING => &mut self.frames_ping,
            GOAWAY => &mut self.frames_goaway,
            WINDOW_UPDATE => &mut self.frames_window_update,
            CONTINUATION => &mut self.frames_continuation,
            _ => &mut self.frames_unknown,
        };
        *c += 1;
    }
}

crate::impl_merge!(H2Stats {
    bytes,
    gap_bytes,
    gaps_in_data,
    bytes_skipped,
    mid_stream_recoveries,
    preface_errors,
    frames_data,
    frames_headers,
    frames_priority,
    frames_rst_stream,
    frames_settings,
    frames_push_promise,
    frames_ping,
    frames_goaway,
    frames_window_update,
    frames_continuation,
    frames_unknown,
    malformed_frames,
    oversized_frames,
    truncated_frames,
    protocol_errors,
    frames_on_closed_streams,
    hpack_errors,
    header_blocks_unknown_table,
    header_fields_skipped,
    header_blocks_oversized,
    header_lists_truncated,
    streams_opened,
    streams_closed,
    streams_reset,
    streams_refused,
    streams_evicted,
    streams_incomplete,
    push_promises,
    goaways,
    exchanges
});
