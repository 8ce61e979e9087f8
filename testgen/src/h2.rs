//! Just enough HTTP/2 and HPACK encoding for the generators: frame headers, SETTINGS, and header blocks made of
//! static-table references and literals (RFC 9113 §4.1, RFC 7541 §5 and §6).

/// The client connection preface.
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// DATA frame type.
pub const DATA: u8 = 0x0;
/// HEADERS frame type.
pub const HEADERS: u8 = 0x1;
/// SETTINGS frame type.
pub const SETTINGS: u8 = 0x4;
/// END_STREAM flag.
pub const END_STREAM: u8 = 0x1;
/// END_HEADERS flag.
pub const END_HEADERS: u8 = 0x4;
/// ACK flag of SETTINGS.
pub const ACK: u8 = 0x1;
/// SETTINGS_HEADER_TABLE_SIZE.
pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;

/// Appends one frame (9-byte header, then the payload) to `out`.
pub fn frame(out: &mut Vec<u8>, ty: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(ty);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Appends a SETTINGS frame with the given (identifier, value) pairs.
pub fn settings(out: &mut Vec<u8>, pairs: &[(u16, u32)]) {
    let mut p = Vec::with_capacity(pairs.len() * 6);
    for (id, v) in pairs {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    frame(out, SETTINGS, 0, 0, &p);
}

/// Appends an HPACK integer with an `n`-bit prefix; `first` holds the pattern bits above the prefix.
pub fn int(out: &mut Vec<u8>, n: u32, first: u8, mut v: u64) {
    let max = (1u64 << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// Appends a raw (not Huffman-coded) HPACK string.
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    int(out, 7, 0, s.len() as u64);
    out.extend_from_slice(s);
}

/// Appends a field with a static-table name index, literal value, not indexed (RFC 7541 §6.2.2).
pub fn literal_indexed_name(out: &mut Vec<u8>, name_index: u64, value: &[u8]) {
    int(out, 4, 0x00, name_index);
    string(out, value);
}

/// Appends a literal field with a new name, added to the dynamic table (RFC 7541 §6.2.1).
pub fn literal_incremental(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x40);
    string(out, name);
    string(out, value);
}

/// Appends a dynamic table size update (RFC 7541 §6.3).
pub fn size_update(out: &mut Vec<u8>, size: u64) {
    int(out, 5, 0x20, size);
}

/// Appends a GET request's pseudo-headers: `:method GET`, `:scheme http`, `:path`, `:authority`.
pub fn get_request(out: &mut Vec<u8>, path: &[u8], authority: &[u8]) {
    out.push(0x82);
    out.push(0x86);
    literal_indexed_name(out, 4, path);
    literal_indexed_name(out, 1, authority);
}

/// `n` pseudo-random bytes (xorshift), deterministic for a seed, standing for
/// protobuf payloads: they hold false frame headers.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_rfc7541_c1() {
        // C.1.1: 10 with a 5-bit prefix; C.1.2: 1337 with a 5-bit prefix.
        let mut v = Vec::new();
        int(&mut v, 5, 0, 10);
        assert_eq!(v, [0x0a]);
        v.clear();
        int(&mut v, 5, 0, 1337);
        assert_eq!(v, [0x1f, 0x9a, 0x0a]);
    }

    #[test]
    fn frame_header_layout() {
        let mut v = Vec::new();
        frame(&mut v, HEADERS, END_HEADERS, 3, b"ab");
        assert_eq!(v, [0, 0, 2, 1, 4, 0, 0, 0, 3, b'a', b'b']);
    }
}
