//! HTTP/2 frames (RFC 9113 §4, §6): the 9-byte frame header and the decoding of each frame type's payload. No
//! connection state lives here; every function takes bytes and returns values or a [`FrameError`].

/// Length of the frame header.
pub const HEADER_LEN: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE's initial value (RFC 9113 §6.5.2): every peer must accept frames this large.
pub const DEFAULT_MAX_FRAME: usize = 16_384;

/// DATA (§6.1).
pub const DATA: u8 = 0x0;
/// HEADERS (§6.2).
pub const HEADERS: u8 = 0x1;
/// PRIORITY (§6.3).
pub const PRIORITY: u8 = 0x2;
/// RST_STREAM (§6.4).
pub const RST_STREAM: u8 = 0x3;
/// SETTINGS (§6.5).
pub const SETTINGS: u8 = 0x4;
/// PUSH_PROMISE (§6.6).
pub const PUSH_PROMISE: u8 = 0x5;
/// PING (§6.7).
pub const PING: u8 = 0x6;
/// GOAWAY (§6.8).
pub const GOAWAY: u8 = 0x7;
/// WINDOW_UPDATE (§6.9).
pub const WINDOW_UPDATE: u8 = 0x8;
/// CONTINUATION (§6.10).
pub const CONTINUATION: u8 = 0x9;

/// END_STREAM flag (DATA, HEADERS).
pub const FLAG_END_STREAM: u8 = 0x1;
/// ACK flag (SETTINGS, PING).
pub const FLAG_ACK: u8 = 0x1;
/// END_HEADERS flag (HEADERS, PUSH_PROMISE, CONTINUATION).
pub const FLAG_END_HEADERS: u8 = 0x4;
/// PADDED flag (DATA, HEADERS, PUSH_PROMISE).
pub const FLAG_PADDED: u8 = 0x8;
/// PRIORITY flag (HEADERS).
pub const FLAG_PRIORITY: u8 = 0x20;

/// SETTINGS_HEADER_TABLE_SIZE identifier.
pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
/// SETTINGS_MAX_FRAME_SIZE identifier.
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;

/// A malformed frame payload. The frame's length is still known, so framing stays in sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The pad length is not smaller than the payload (§6.1, §6.2: a connection error).
    #[error("padding longer than the frame")]
    Padding,
    /// The payload is shorter or longer than the frame type requires.
    #[error("frame of type {0:#x} has a bad length {1}")]
    Length(u8, usize),
}

/// The 9-byte frame header (§4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length (24 bits).
    pub len: u32,
    /// Frame type.
    pub ty: u8,
    /// Flags.
    pub flags: u8,
    /// Stream identifier (31 bits).
    pub stream: u32,
    /// The reserved bit before the stream id was set (must be ignored by a receiver; suspicious when scanning).
    pub reserved: bool,
}

impl FrameHeader {
    /// Parses a frame header from the first 9 bytes of `b`; `None` when fewer are given.
    pub fn parse(b: &[u8]) -> Option<FrameHeader> {
        let b: &[u8; HEADER_LEN] = b.get(..HEADER_LEN)?.try_into().ok()?;
        let id = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
        Some(FrameHeader {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            ty: b[3],
            flags: b[4],
            stream: id & 0x7fff_ffff,
            reserved: id & 0x8000_0000 != 0,
        })
    }

    /// Whether `flag` is set.
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// Whether this header looks like a real frame, for finding frame boundaries in a stream joined in the middle:
    /// a known type, a length valid for the type, only flags the type defines, the reserved bit clear, and a
    /// stream id of zero exactly for connection-level frames. The length of a frame other than DATA must be within
    /// `max_len` (its payload is buffered); a DATA frame may be as long as the 24-bit field holds (2^24-1, the
    /// ceiling of SETTINGS_MAX_FRAME_SIZE, RFC 9113 §6.5.2): peers that raised the limit send such frames (gRPC C
    /// core sends 131 060-byte ones), and their payload is streamed, never buffered.
    pub fn plausible(&self, max_len: usize) -> bool {
        let len = self.len as usize;
        if self.reserved || (len > max_len && self.ty != DATA) {
            return false;
        }
        let (allowed_flags, conn_level, len_ok) = match self.ty {
            // An empty DATA frame without END_STREAM is legal but pointless, and zero-filled bytes look like one.
            DATA => (FLAG_END_STREAM | FLAG_PADDED, false, len > 0 || self.has(FLAG_END_STREAM)),
            HEADERS => (FLAG_END_STREAM | FLAG_END_HEADERS | FLAG_PADDED | FLAG_PRIORITY, false, len > 0),
            PRIORITY => (0, false, len == 5),
            RST_STREAM => (0, false, len == 4),
            SETTINGS => (FLAG_ACK, true, len.is_multiple_of(6) && (!self.has(FLAG_ACK) || len == 0)),
            PUSH_PROMISE => (FLAG_END_HEADERS | FLAG_PADDED, false, len >= 4),
            PING => (FLAG_ACK, true, len == 8),
            GOAWAY => (0, true, len >= 8),
            WINDOW_UPDATE => (0, self.stream == 0, len == 4),
            CONTINUATION => (FLAG_END_HEADERS, false, len > 0),
            _ => return false,
        };
        self.flags & !allowed_flags == 0 && len_ok && (self.stream == 0) == conn_level
    }
}

impl FrameHeader {
    /// Like [`FrameHeader::plausible`], but an extension frame (unknown type) passes when its length fits and its
    /// reserved bit is clear: used for the frames that follow a candidate boundary.
    pub fn plausible_or_extension(&self, max_len: usize) -> bool {
        if self.ty > CONTINUATION {
            return !self.reserved && (self.len as usize) <= max_len;
        }
        self.plausible(max_len)
    }
}

/// Removes padding (§6.1): returns the payload between the pad-length byte and the padding.
pub fn strip_padding<'a>(h: &FrameHeader, payload: &'a [u8]) -> Result<&'a [u8], FrameError> {
    if !h.has(FLAG_PADDED) {
        return Ok(payload);
    }
    let (&pad, rest) = payload.split_first().ok_or(FrameError::Padding)?;
    let keep = rest.len().checked_sub(usize::from(pad)).ok_or(FrameError::Padding)?;
    Ok(&rest[..keep])
}

/// The header block fragment of a HEADERS frame (§6.2): padding and priority fields removed.
pub fn headers_fragment<'a>(h: &FrameHeader, payload: &'a [u8]) -> Result<&'a [u8], FrameError> {
    let p = strip_padding(h, payload)?;
    if h.has(FLAG_PRIORITY) {
        return p.get(5..).ok_or(FrameError::Length(h.ty, payload.len()));
    }
    Ok(p)
}

/// The promised stream id and header block fragment of a PUSH_PROMISE frame (§6.6).
pub fn push_promise<'a>(h: &FrameHeader, payload: &'a [u8]) -> Result<(u32, &'a [u8]), FrameError> {
    let p = strip_padding(h, payload)?;
    let id = read_u32(p).ok_or(FrameError::Length(h.ty, payload.len()))? & 0x7fff_ffff;
    Ok((id, &p[4..]))
}

/// The error code of a RST_STREAM frame (§6.4).
pub fn rst_stream(h: &FrameHeader, payload: &[u8]) -> Result<u32, FrameError> {
    fixed(h, payload, 4).map(|_| read_u32(payload).unwrap_or(0))
}

/// The last stream id and error code of a GOAWAY frame (§6.8); debug data is ignored.
pub fn goaway(h: &FrameHeader, payload: &[u8]) -> Result<(u32, u32), FrameError> {
    match (read_u32(payload), payload.get(4..).and_then(read_u32)) {
        (Some(last), Some(code)) => Ok((last & 0x7fff_ffff, code)),
        _ => Err(FrameError::Length(h.ty, payload.len())),
    }
}

/// The window increment of a WINDOW_UPDATE frame (§6.9).
pub fn window_update(h: &FrameHeader, payload: &[u8]) -> Result<u32, FrameError> {
    fixed(h, payload, 4).map(|_| read_u32(payload).unwrap_or(0) & 0x7fff_ffff)
}

/// Checks the length of a PRIORITY (5) or PING (8) frame.
pub fn fixed(h: &FrameHeader, payload: &[u8], want: usize) -> Result<(), FrameError> {
    if payload.len() == want { Ok(()) } else { Err(FrameError::Length(h.ty, payload.len())) }
}

/// The (identifier, value) pairs of a SETTINGS frame (§6.5.1).
pub fn settings<'a>(h: &FrameHeader, payload: &'a [u8]) -> Result<impl Iterator<Item = (u16, u32)> + 'a, FrameError> {
    if !payload.len().is_multiple_of(6) || (h.has(FLAG_ACK) && !payload.is_empty()) {
        return Err(FrameError::Length(h.ty, payload.len()));
    }
    Ok(payload
        .chunks_exact(6)
        .map(|c| (u16::from_be_bytes([c[0], c[1]]), u32::from_be_bytes([c[2], c[3], c[4], c[5]]))))
}

fn read_u32(b: &[u8]) -> Option<u32> {
    let b: [u8; 4] = b.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_fields() {
        // A HEADERS frame, length 0x000102, flags END_STREAM|END_HEADERS, stream 3 with the reserved bit set.
        let h = FrameHeader::parse(&[0x00, 0x01, 0x02, 0x01, 0x05, 0x80, 0x00, 0x00, 0x03]).unwrap();
        assert_eq!(h, FrameHeader { len: 258, ty: HEADERS, flags: 5, stream: 3, reserved: true });
        assert!(h.has(FLAG_END_STREAM) && h.has(FLAG_END_HEADERS) && !h.has(FLAG_PADDED));
        assert_eq!(FrameHeader::parse(&[0; 8]), None);
    }

    #[test]
    fn plausibility() {
        let hdr = |len: u32, ty: u8, flags: u8, stream: u32| FrameHeader { len, ty, flags, stream, reserved: false };
        assert!(hdr(0, SETTINGS, 0, 0).plausible(16384));
        assert!(hdr(12, SETTINGS, 0, 0).plausible(16384));
        assert!(!hdr(12, SETTINGS, FLAG_ACK, 0).plausible(16384));
        assert!(!hdr(7, SETTINGS, 0, 0).plausible(16384));
        assert!(!hdr(0, SETTINGS, 0, 1).plausible(16384));
        assert!(hdr(100, DATA, 1, 5).plausible(16384));
        assert!(!hdr(100, DATA, 4, 5).plausible(16384));
        assert!(!hdr(100, DATA, 0, 0).plausible(16384));
        assert!(!hdr(0, DATA, 0, 3).plausible(16384));
        assert!(hdr(0, DATA, 1, 3).plausible(16384));
        assert!(hdr(4, 0xfa, 0xff, 0).plausible_or_extension(16384));
        assert!(!hdr(4, 0xfa, 0xff, 0).plausible(16384));
        assert!(!hdr(20000, HEADERS, 4, 1).plausible(16384));
        assert!(!hdr(20000, PING, 0, 0).plausible(16384));
        // DATA payloads are streamed: any length the 24-bit field holds, when the rest of the header fits.
        assert!(hdr(131_060, DATA, 0, 1).plausible(16384));
        assert!(hdr(0xff_ffff, DATA, 1, 3).plausible(16384));
        assert!(!hdr(131_060, DATA, 2, 1).plausible(16384));
        assert!(!hdr(131_060, DATA, 0, 0).plausible(16384));
        assert!(hdr(8, PING, 1, 0).plausible(16384));
        assert!(hdr(4, WINDOW_UPDATE, 0, 0).plausible(16384));
        assert!(hdr(4, WINDOW_UPDATE, 0, 7).plausible(16384));
        assert!(!hdr(5, RST_STREAM, 0, 1).plausible(16384));
        assert!(!hdr(4, 0x0a, 0, 1).plausible(16384));
        let mut r = hdr(4, RST_STREAM, 0, 1);
        r.reserved = true;
        assert!(!r.plausible(16384));
    }

    #[test]
    fn padding_and_priority() {
        let h = FrameHeader { len: 0, ty: HEADERS, flags: FLAG_PADDED | FLAG_PRIORITY, stream: 1, reserved: false };
        // pad length 2, priority (5 bytes), fragment "ab", padding 2 bytes.
        let p = [2, 0, 0, 0, 3, 16, b'a', b'b', 0, 0];
        assert_eq!(headers_fragment(&h, &p), Ok(&b"ab"[..]));
        assert_eq!(strip_padding(&h, &[5, 1, 2]), Err(FrameError::Padding));
        assert_eq!(strip_padding(&h, &[]), Err(FrameError::Padding));
        let h2 = FrameHeader { flags: FLAG_PRIORITY, ..h };
        assert_eq!(headers_fragment(&h2, &[0, 0, 0]), Err(FrameError::Length(HEADERS, 3)));
    }

    #[test]
    fn fixed_frames() {
        let h = FrameHeader { len: 8, ty: GOAWAY, flags: 0, stream: 0, reserved: false };
        assert_eq!(goaway(&h, &[0x80, 0, 0, 5, 0, 0, 0, 2, b'x']), Ok((5, 2)));
        assert!(goaway(&h, &[0, 0, 0]).is_err());
        let r = FrameHeader { ty: RST_STREAM, ..h };
        assert_eq!(rst_stream(&r, &[0, 0, 0, 8]), Ok(8));
        assert!(rst_stream(&r, &[0, 0, 8]).is_err());
        let w = FrameHeader { ty: WINDOW_UPDATE, ..h };
        assert_eq!(window_update(&w, &[0x80, 0, 1, 0]), Ok(256));
        let s = FrameHeader { ty: SETTINGS, ..h };
        let v: Vec<_> = settings(&s, &[0, 1, 0, 0, 0x10, 0, 0, 5, 0, 0, 0x40, 0]).unwrap().collect();
        assert_eq!(v, vec![(SETTINGS_HEADER_TABLE_SIZE, 4096), (SETTINGS_MAX_FRAME_SIZE, 16384)]);
        assert!(settings(&s, &[0, 1, 0]).is_err());
        let pp = FrameHeader { ty: PUSH_PROMISE, flags: FLAG_PADDED, ..h };
        assert_eq!(push_promise(&pp, &[1, 0x80, 0, 0, 2, b'h', 0]), Ok((2, &b"h"[..])));
    }
}
