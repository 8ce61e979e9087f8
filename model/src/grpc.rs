//! A gRPC view of an exchange, computed from what was recorded (never stored): service and method from the path,
//! the length-prefixed messages of each body, and the status from the trailers.
//!
//! Covers gRPC over HTTP/2 (`application/grpc`, `application/grpc+proto`, `application/grpc+json`, ...) and
//! gRPC-Web over HTTP/1.1 or HTTP/2 (`application/grpc-web[+fmt]`, and `application/grpc-web-text[+fmt]` whose body
//! is base64), where the trailers travel as a last length-prefixed frame with flag `0x80`. Bodies cut at the body
//! cap are split as far as they go: what can be counted is counted and the side is marked `partial`.
//! See <https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md> and `PROTOCOL-WEB.md`.

use base64::Engine as _;

use crate::exchange::{Body, Exchange, Header};

/// The 5-byte prefix of every gRPC message: compressed flag and big-endian length.
pub const PREFIX_LEN: usize = 5;

/// The gRPC facts of one exchange.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GrpcSummary {
    /// `package.Service` from the path `/package.Service/Method` (empty when the path has another shape).
    pub service: String,
    /// `Method` from the path (empty when the path has another shape).
    pub method: String,
    /// gRPC-Web (trailers inside the response body).
    pub web: bool,
    /// gRPC-Web text mode (base64 bodies).
    pub text: bool,
    /// `grpc-status` from the trailers (or the headers of a trailers-only response), if seen and numeric.
    pub status: Option<u32>,
    /// `grpc-message`, percent-decoded, if present.
    pub message: Option<String>,
    /// The request's messages.
    pub request: GrpcMessages,
    /// The response's messages.
    pub response: GrpcMessages,
}

/// The length-prefixed messages found in one body.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GrpcMessages {
    /// Messages whose prefix was seen, in order.
    pub messages: Vec<GrpcMessage>,
    /// The body was cut (body cap or capture gap): more messages may have followed, and the last one may be cut.
    pub partial: bool,
    /// The body ended in the middle of a prefix or message although it was stored whole.
    pub malformed: bool,
}

/// One message's prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GrpcMessage {
    /// The compressed flag (bit 0 of the flag byte).
    pub compressed: bool,
    /// The declared length of the message.
    pub len: u32,
    /// Offset of the message payload in the (decoded) body.
    pub offset: usize,
    /// The whole payload is in the stored body.
    pub complete: bool,
}

/// Whether a content-type is gRPC; returns `(web, text)`.
pub fn grpc_content_type(ct: &[u8]) -> Option<(bool, bool)> {
    let ct = ct.split(|&b| b == b';').next().unwrap_or(&[]);
    let ct = ct.trim_ascii().to_ascii_lowercase();
    let base = ct.split(|&b| b == b'+').next().unwrap_or(&[]);
    match base {
        b"application/grpc" => Some((false, false)),
        b"application/grpc-web" => Some((true, false)),
        b"application/grpc-web-text" => Some((true, true)),
        _ => None,
    }
}

/// Splits `/package.Service/Method` into service and method.
pub fn service_method(path: &[u8]) -> Option<(String, String)> {
    let path = path.split(|&b| b == b'?').next().unwrap_or(&[]);
    let rest = path.strip_prefix(b"/")?;
    let slash = rest.iter().rposition(|&b| b == b'/')?;
    let (svc, m) = (&rest[..slash], &rest[slash + 1..]);
    if svc.is_empty() || m.is_empty() {
        return None;
    }
    Some((String::from_utf8_lossy(svc).into_owned(), String::from_utf8_lossy(m).into_owned()))
}

/// Splits a body into length-prefixed messages. `truncated` says the stored bytes are not the whole body. With
/// `web`, a frame whose flag has bit `0x80` is the trailer frame: its payload is returned and splitting stops.
pub fn split_messages(bytes: &[u8], truncated: bool, web: bool) -> (GrpcMessages, Option<&[u8]>) {
    let mut out = GrpcMessages { partial: truncated, ..GrpcMessages::default() };
    let mut pos = 0;
    while pos < bytes.len() {
        let Some(prefix) = bytes.get(pos..pos + PREFIX_LEN) else {
            out.malformed |= !truncated;
            break;
        };
        let flag = prefix[0];
        let len = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
        let start = pos + PREFIX_LEN;
        let end = start.saturating_add(len as usize);
        let complete = end <= bytes.len();
        if web && flag & 0x80 != 0 {
            if complete {
                return (out, Some(&bytes[start..end]));
            }
            out.malformed |= !truncated;
            break;
        }
        out.messages.push(GrpcMessage { compressed: flag & 1 != 0, len, offset: start, complete });
        if !complete {
            out.malformed |= !truncated;
            break;
        }
        pos = end;
    }
    (out, None)
}

/// Decodes a grpc-web-text body: base64 chunks, each possibly padded, concatenated. A cut body decodes as far as
/// whole 4-character groups go.
pub fn decode_web_text(bytes: &[u8]) -> Vec<u8> {
    let clean: Vec<u8> = bytes.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    // A chunk ends after its padding; groups of 4 characters decode independently.
    for group in clean.chunks(4) {
        if group.len() < 4 {
            break;
        }
        if base64::engine::general_purpose::STANDARD.decode_vec(group, &mut out).is_err() {
            break;
        }
    }
    out
}

fn header<'a>(headers: &'a [Header], name: &[u8]) -> Option<&'a [u8]> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value.as_slice())
}

/// Decodes `grpc-message`'s percent-encoding (`%20`); bytes that are not UTF-8 are replaced.
pub fn percent_decode(v: &[u8]) -> String {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%'
            && let Some(h) = v.get(i + 1..i + 3)
            && let Ok(s) = std::str::from_utf8(h)
            && let Ok(b) = u8::from_str_radix(s, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(v[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses the HTTP/1-style header lines of a gRPC-Web trailer frame (names lower-cased).
pub fn web_trailers(payload: &[u8]) -> Vec<Header> {
    payload
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&b| b == b':')?;
            Some(Header::new(line[..colon].trim_ascii().to_ascii_lowercase(), line[colon + 1..].trim_ascii()))
        })
        .collect()
}

fn split_body(body: &Body, web: bool, text: bool) -> (GrpcMessages, Vec<Header>) {
    let truncated = body.full_len > body.bytes.len() as u64;
    let decoded;
    let bytes = if text {
        decoded = decode_web_text(&body.bytes);
        &decoded[..]
    } else {
        &body.bytes[..]
    };
    let (msgs, trailer) = split_messages(bytes, truncated, web);
    (msgs, trailer.map(web_trailers).unwrap_or_default())
}

/// The gRPC summary of an exchange, or `None` when its content-type is not gRPC.
pub fn grpc_summary(ex: &Exchange) -> Option<GrpcSummary> {
    let req = ex.request.as_ref();
    let resp = ex.response.as_ref();
    let ct = req
        .and_then(|r| header(&r.headers, b"content-type"))
        .or_else(|| resp.and_then(|r| header(&r.headers, b"content-type")))?;
    let (web, text) = grpc_content_type(ct)?;
    let mut s = GrpcSummary { web, text, ..GrpcSummary::default() };
    if let Some((svc, m)) = req.and_then(|r| service_method(&r.path)) {
        s.service = svc;
        s.method = m;
    }
    if let Some(r) = req {
        s.request = split_body(&r.body, web, text).0;
    }
    if let Some(r) = resp {
        let (msgs, web_trailers) = split_body(&r.body, web, text);
        s.response = msgs;
        // Trailers, then a trailers-only response's headers, then gRPC-Web's trailer frame.
        for fields in [&r.trailers, &r.headers, &web_trailers] {
            if let Some(v) = header(fields, b"grpc-status") {
                s.status = std::str::from_utf8(v).ok().and_then(|v| v.trim().parse().ok());
                s.message = header(fields, b"grpc-message").map(percent_decode);
                break;
            }
        }
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exchange::{Flags, Protocol, Request, Response, Timing};

    fn msg(flag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![flag];
        m.extend_from_slice(&(body.len() as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn exchange(
        ct: &str,
        path: &str,
        req: Vec<u8>,
        resp: Body,
        headers: Vec<Header>,
        trailers: Vec<Header>,
    ) -> Exchange {
        let mut rh = vec![Header::new("content-type", ct)];
        rh.extend(headers);
        Exchange {
            id: 0,
            connection_id: 0,
            order: 0,
            stream_id: Some(1),
            proto: Protocol::H2,
            client: "127.0.0.1:1".parse().unwrap(),
            server: "127.0.0.1:2".parse().unwrap(),
            timing: Timing::default(),
            request: Some(Request {
                method: b"POST".to_vec(),
                path: path.as_bytes().to_vec(),
                headers: vec![Header::new("content-type", ct)],
                body: Body { full_len: req.len() as u64, bytes: req },
                ..Request::default()
            }),
            response: Some(Response { status: 200, headers: rh, body: resp, trailers, ..Response::default() }),
            flags: Flags::NONE,
            labels: Vec::new(),
            masked_by: Vec::new(),
        }
    }

    fn whole(b: Vec<u8>) -> Body {
        Body { full_len: b.len() as u64, bytes: b }
    }

    #[test]
    fn unary_call() {
        let ex = exchange(
            "application/grpc",
            "/helloworld.Greeter/SayHello",
            msg(0, b"\x0a\x05world"),
            whole(msg(0, b"\x0a\x0bhello world")),
            vec![],
            vec![Header::new("grpc-status", "0")],
        );
        let s = grpc_summary(&ex).unwrap();
        assert_eq!(s.service, "helloworld.Greeter");
        assert_eq!(s.method, "SayHello");
        assert_eq!(s.status, Some(0));
        assert_eq!(s.request.messages, vec![GrpcMessage { compressed: false, len: 7, offset: 5, complete: true }]);
        assert_eq!(s.response.messages.len(), 1);
        assert_eq!(s.response.messages[0].len, 13);
        assert!(!s.request.partial && !s.response.malformed && !s.web);
    }

    #[test]
    fn streaming_and_compressed() {
        let mut body = msg(0, b"a");
        body.extend(msg(1, b"bbbb"));
        body.extend(msg(0, b""));
        let ex = exchange("application/grpc+proto", "/p.S/M", body.clone(), whole(body), vec![], vec![]);
        let s = grpc_summary(&ex).unwrap();
        let lens: Vec<(bool, u32)> = s.request.messages.iter().map(|m| (m.compressed, m.len)).collect();
        assert_eq!(lens, vec![(false, 1), (true, 4), (false, 0)]);
        assert_eq!(s.status, None);
    }

    #[test]
    fn truncated_body_counts_what_it_can() {
        let mut body = msg(0, &[7; 10]);
        body.extend(msg(0, &[8; 10]));
        // Stored only 22 of 30 bytes: first message (15 bytes) whole, second prefix seen but payload cut.
        let cut = Body { bytes: body[..22].to_vec(), full_len: 30 };
        let ex = exchange("application/grpc", "/p.S/M", vec![], cut, vec![], vec![]);
        let s = grpc_summary(&ex).unwrap();
        assert!(s.response.partial);
        assert!(!s.response.malformed);
        assert_eq!(s.response.messages.len(), 2);
        assert!(s.response.messages[0].complete);
        assert!(!s.response.messages[1].complete);
        // A body stored whole that stops mid-message is malformed, not partial.
        let (m, _) = split_messages(&body[..22], false, false);
        assert!(m.malformed && !m.partial);
        let (m, _) = split_messages(&[0, 0], false, false);
        assert!(m.malformed && m.messages.is_empty());
    }

    #[test]
    fn trailers_only_error() {
        let ex = exchange(
            "application/grpc",
            "/p.S/Missing",
            msg(0, b"x"),
            whole(vec![]),
            vec![Header::new("grpc-status", "12"), Header::new("grpc-message", "unknown%20method%3A%20Missing")],
            vec![],
        );
        let s = grpc_summary(&ex).unwrap();
        assert_eq!(s.status, Some(12));
        assert_eq!(s.message.as_deref(), Some("unknown method: Missing"));
        assert!(s.response.messages.is_empty());
    }

    #[test]
    fn grpc_web_binary_and_text() {
        let mut body = msg(0, b"resp");
        body.extend(msg(0x80, b"grpc-status: 5\r\ngrpc-message: not found\r\n"));
        let ex = exchange("application/grpc-web+proto", "/p.S/M", msg(0, b"q"), whole(body.clone()), vec![], vec![]);
        let s = grpc_summary(&ex).unwrap();
        assert!(s.web && !s.text);
        assert_eq!(s.response.messages.len(), 1);
        assert_eq!(s.status, Some(5));
        assert_eq!(s.message.as_deref(), Some("not found"));

        // Text mode: each frame base64-encoded separately (padding in the middle), as servers stream it.
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut text = b64.encode(msg(0, b"resp")).into_bytes();
        text.extend(b64.encode(msg(0x80, b"grpc-status: 0\r\n")).into_bytes());
        let ex = exchange(
            "application/grpc-web-text",
            "/p.S/M",
            b64.encode(msg(0, b"q")).into_bytes(),
            whole(text),
            vec![],
            vec![],
        );
        let s = grpc_summary(&ex).unwrap();
        assert!(s.web && s.text);
        assert_eq!(s.request.messages.len(), 1);
        assert_eq!(s.response.messages.len(), 1);
        assert_eq!(s.response.messages[0].len, 4);
        assert_eq!(s.status, Some(0));
    }

    #[test]
    fn not_grpc() {
        let ex = exchange("application/json", "/p.S/M", vec![], whole(vec![]), vec![], vec![]);
        assert_eq!(grpc_summary(&ex), None);
        assert_eq!(grpc_content_type(b"application/grpc; charset=utf-8"), Some((false, false)));
        assert_eq!(grpc_content_type(b"Application/GRPC-Web-Text+proto"), Some((true, true)));
        assert_eq!(grpc_content_type(b"application/grpcx"), None);
        assert_eq!(service_method(b"/onlyone"), None);
        assert_eq!(service_method(b"/a.B/C?x=1"), Some(("a.B".into(), "C".into())));
    }
}
