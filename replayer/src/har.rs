//! HAR 1.2 (<http://www.softwareishard.com/blog/har-12-spec/>) as serde structs, the streaming [`HarWriter`]
//! (entries are written as they come, so memory does not grow with the number of exchanges), and the two sources
//! of entries: a recorded [`Exchange`] (`replayer export --har`) and a replayed request ([`Replayed`],
//! `replayer run --har`).
//!
//! Bodies are what the segment stored (maybe cut at the capture's body cap; `bodySize` is the length seen on the
//! wire, and a `comment` says when they differ), HTTP-decoded as HAR 1.2 wants `text`: a `Content-Encoding` (gzip,
//! deflate, br, zstd) is undone with the judge's codecs ([`crate::judge::decode`]), then text (valid UTF-8) is
//! written as is, anything else base64 with `"encoding": "base64"`. A decoded response has `content.size` the
//! decoded length, `content.compression` the bytes saved and a `comment` naming the codings undone. A body that
//! cannot be decoded (cut short, a bad stream) is written as stored, and the comment says why. Times:
//! `startedDateTime` is RFC 3339 with milliseconds, UTC.

use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::Serialize;
use tapedeck_model::{Exchange, Header, Protocol};

use crate::judge::decode::{Decoded, decode, encodings};
use crate::replayed::Replayed;

/// Most bytes a body may grow to when its content-encoding is undone; past it the stored bytes are written.
const MAX_DECODED: usize = 64 << 20;

/// `log.creator`.
#[derive(Debug, Clone, Serialize)]
pub struct Creator {
    /// Program name.
    pub name: String,
    /// Program version.
    pub version: String,
}

/// A name/value pair (headers, query parameters).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NameValue {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// `request.postData`.
#[derive(Debug, Clone, Serialize)]
pub struct PostData {
    /// Content-Type of the body.
    #[serde(rename = "mimeType")]
    pub mime_type: String,
    /// The body as text, content-encoding undone (base64 when binary; HAR 1.2 has no encoding field here, so a
    /// comment says so).
    pub text: String,
    /// Set when `text` is base64, when a content-encoding was undone, or could not be.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// `text` is base64 (not written: HAR has no field for it).
    #[serde(skip)]
    pub base64: bool,
    /// A content-encoding was undone.
    #[serde(skip)]
    pub decoded: bool,
}

/// `entry.request`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HarRequest {
    /// Method.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// `HTTP/1.1`, `HTTP/2`, ...
    pub http_version: String,
    /// Cookies (not split out: they stay in `headers`).
    pub cookies: Vec<NameValue>,
    /// Header fields in order.
    pub headers: Vec<NameValue>,
    /// Query parameters in order.
    pub query_string: Vec<NameValue>,
    /// The body, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post_data: Option<PostData>,
    /// Unknown: -1.
    pub headers_size: i64,
    /// Body length.
    pub body_size: i64,
}

/// `response.content`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    /// Length of the body, decoded when its content-encoding was undone.
    pub size: i64,
    /// Bytes saved by the content-encoding (`size` minus the length on the wire), when it was undone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<i64>,
    /// Content-Type.
    pub mime_type: String,
    /// The stored body, content-encoding undone when it could be.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `base64` when `text` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Says when the text is shorter than the body, and which content-encoding was undone (or why not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The stored body is shorter than the body (not written: the comment says so).
    #[serde(skip)]
    pub partial: bool,
}

/// `entry.response`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HarResponse {
    /// Status code (0 when no response came).
    pub status: u16,
    /// Reason phrase.
    pub status_text: String,
    /// Version.
    pub http_version: String,
    /// Cookies (kept in `headers`).
    pub cookies: Vec<NameValue>,
    /// Header fields in order.
    pub headers: Vec<NameValue>,
    /// The body.
    pub content: Content,
    /// `Location`, if any.
    #[serde(rename = "redirectURL")]
    pub redirect_url: String,
    /// Unknown: -1.
    pub headers_size: i64,
    /// Body length (-1 when no response).
    pub body_size: i64,
}

/// `entry.timings` in milliseconds (-1: does not apply).
#[derive(Debug, Clone, Serialize)]
pub struct Timings {
    /// Waiting for a connection slot.
    pub blocked: f64,
    /// Name resolution.
    pub dns: f64,
    /// TCP connect (-1 on a reused connection).
    pub connect: f64,
    /// Sending the request.
    pub send: f64,
    /// Waiting for the response head.
    pub wait: f64,
    /// Reading the response.
    pub receive: f64,
    /// TLS handshake (-1 when none).
    pub ssl: f64,
}

/// One HAR entry.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Start of the request, RFC 3339.
    pub started_date_time: String,
    /// Total time, ms.
    pub time: f64,
    /// The request.
    pub request: HarRequest,
    /// The response.
    pub response: HarResponse,
    /// Cache info (none).
    pub cache: serde_json::Map<String, serde_json::Value>,
    /// Phase timings.
    pub timings: Timings,
    /// Server address, when known.
    #[serde(rename = "serverIPAddress", skip_serializing_if = "Option::is_none")]
    pub server_ip_address: Option<String>,
    /// Connection id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// Notes (flags, masking, errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Counters of a HAR writer.
#[derive(Debug, Default, Clone, Serialize)]
pub struct HarStats {
    /// Entries written.
    pub entries: u64,
    /// Entries with a body written base64 (not UTF-8).
    pub bodies_base64: u64,
    /// Entries whose response text is shorter than the body (capture cap, or the replay keep cap).
    pub bodies_partial: u64,
    /// Entries with a body whose content-encoding was undone (request or response).
    pub bodies_decoded: u64,
}

/// Writes `{"log": {..., "entries": [` first, each entry as it comes, and the closing brackets at [`finish`].
///
/// [`finish`]: HarWriter::finish
pub struct HarWriter<W: Write> {
    out: W,
    first: bool,
    /// Counters.
    pub stats: HarStats,
}

impl<W: Write> HarWriter<W> {
    /// Starts the document.
    pub fn new(mut out: W, comment: &str) -> io::Result<Self> {
        let creator = Creator { name: "tapedeck replayer".into(), version: env!("CARGO_PKG_VERSION").into() };
        write!(
            out,
            "{{\"log\":{{\"version\":\"1.2\",\"creator\":{},\"comment\":{},\"pages\":[],\"entries\":[",
            serde_json::to_string(&creator)?,
            serde_json::to_string(comment)?
        )?;
        Ok(HarWriter { out, first: true, stats: HarStats::default() })
    }

    /// Appends one entry.
    pub fn entry(&mut self, e: &Entry) -> io::Result<()> {
        if !self.first {
            self.out.write_all(b",\n")?;
        } else {
            self.out.write_all(b"\n")?;
        }
        self.first = false;
        serde_json::to_writer(&mut self.out, e)?;
        self.stats.entries += 1;
        if e.response.content.encoding.is_some() || e.request.post_data.as_ref().is_some_and(|p| p.base64) {
            self.stats.bodies_base64 += 1;
        }
        if e.response.content.partial {
            self.stats.bodies_partial += 1;
        }
        if e.response.content.compression.is_some() || e.request.post_data.as_ref().is_some_and(|p| p.decoded) {
            self.stats.bodies_decoded += 1;
        }
        Ok(())
    }

    /// Closes the document and returns the writer.
    pub fn finish(mut self) -> io::Result<(W, HarStats)> {
        self.out.write_all(b"\n]}}\n")?;
        self.out.flush()?;
        Ok((self.out, self.stats))
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn pairs(h: &[Header]) -> Vec<NameValue> {
    h.iter().map(|h| NameValue { name: text(&h.name), value: text(&h.value) }).collect()
}

fn find<'a>(h: &'a [NameValue], name: &str) -> Option<&'a str> {
    h.iter().find(|p| p.name.eq_ignore_ascii_case(name)).map(|p| p.value.as_str())
}

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Query parameters of a request target, in order (not percent-decoded).
pub fn query_string(path: &str) -> Vec<NameValue> {
    let Some((_, q)) = path.split_once('?') else { return Vec::new() };
    let q = q.split('#').next().unwrap_or_default();
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((n, v)) => NameValue { name: n.into(), value: v.into() },
            None => NameValue { name: p.into(), value: String::new() },
        })
        .collect()
}

/// A body as HAR text: (text, base64?).
fn body_text(b: &[u8]) -> (String, bool) {
    match std::str::from_utf8(b) {
        Ok(s) => (s.to_string(), false),
        Err(_) => (base64::engine::general_purpose::STANDARD.encode(b), true),
    }
}

/// A body as HAR 1.2 wants it: HTTP-decoded when it can be.
struct HarBody {
    /// The bytes to write: decoded, or as stored.
    bytes: Vec<u8>,
    /// The content-encodings undone (`gzip`), when there were some and decoding worked.
    undone: Option<String>,
    /// Why a content-encoding was left in place.
    not_decoded: Option<String>,
}

/// `stored` with the content-encoding of `headers` undone; `partial` bodies (cut short) are left as stored.
fn har_body(headers: &[NameValue], stored: &[u8], partial: bool) -> HarBody {
    let fields: Vec<Header> = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-encoding"))
        .map(|h| Header::new(h.name.as_str(), h.value.as_str()))
        .collect();
    let codings = encodings(&fields);
    let as_stored = |why: Option<String>| HarBody { bytes: stored.to_vec(), undone: None, not_decoded: why };
    if codings.is_empty() || stored.is_empty() {
        return as_stored(None);
    }
    let list = codings.join(", ");
    let kept = |why: String| as_stored(Some(format!("content-encoding {list} left in place: {why}")));
    if partial {
        return kept("the body is cut".into());
    }
    match decode(stored, &codings, MAX_DECODED) {
        Decoded::Ok(bytes) => HarBody { bytes, undone: Some(list), not_decoded: None },
        Decoded::TooLarge => kept(format!("decoded it would pass {MAX_DECODED} bytes")),
        Decoded::Failed(e) => kept(e),
    }
}

fn post_data(headers: &[NameValue], body: &[u8], full_len: u64) -> Option<PostData> {
    if body.is_empty() {
        return None;
    }
    let hb = har_body(headers, body, (body.len() as u64) < full_len);
    let (text, b64) = body_text(&hb.bytes);
    let mut notes = Vec::new();
    if let Some(list) = &hb.undone {
        notes.push(format!("content-encoding {list} undone"));
    }
    notes.extend(hb.not_decoded);
    if b64 {
        notes.push("text is base64 (the body is not UTF-8)".to_string());
    }
    Some(PostData {
        mime_type: find(headers, "content-type").unwrap_or_default().to_string(),
        text,
        comment: (!notes.is_empty()).then(|| notes.join("; ")),
        base64: b64,
        decoded: hb.undone.is_some(),
    })
}

fn content(headers: &[NameValue], stored: &[u8], full_len: u64) -> Content {
    let partial = (stored.len() as u64) < full_len;
    let hb = har_body(headers, stored, partial);
    let (t, b64) = body_text(&hb.bytes);
    let wire = i64::try_from(full_len).unwrap_or(i64::MAX);
    let mut notes = Vec::new();
    if partial {
        notes.push(format!("text holds the first {} of {full_len} bytes", stored.len()));
    }
    let (size, compression) = match &hb.undone {
        Some(list) => {
            notes.push(format!("content-encoding {list} undone: {full_len} bytes on the wire"));
            let size = i64::try_from(hb.bytes.len()).unwrap_or(i64::MAX);
            (size, Some(size.saturating_sub(wire)))
        }
        None => (wire, None),
    };
    notes.extend(hb.not_decoded);
    Content {
        size,
        compression,
        mime_type: find(headers, "content-type").unwrap_or_default().to_string(),
        text: (!hb.bytes.is_empty()).then_some(t),
        encoding: (b64 && !hb.bytes.is_empty()).then(|| "base64".to_string()),
        comment: (!notes.is_empty()).then(|| notes.join("; ")),
        partial,
    }
}

fn http_version(p: Protocol) -> &'static str {
    match p {
        Protocol::Http10 => "HTTP/1.0",
        Protocol::Http11 => "HTTP/1.1",
        Protocol::H2 => "HTTP/2",
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The absolute URL of a request: scheme (recorded, else from the server port: 443 is https), authority
/// (recorded, else the server address) and path.
fn url(scheme: &str, authority: &str, path: &str) -> String {
    if path.starts_with("http://") || path.starts_with("https://") {
        return path.to_string();
    }
    let path = if path.starts_with('/') || path == "*" { path.to_string() } else { format!("/{path}") };
    format!("{scheme}://{authority}{path}")
}

/// The HAR entry of a recorded exchange; `None` when it has no request (HAR entries need one).
pub fn entry_from_exchange(ex: &Exchange) -> Option<Entry> {
    let req = ex.request.as_ref()?;
    let version = http_version(ex.proto);
    let scheme = match req.scheme.as_slice() {
        b"" if ex.server.port() == 443 => "https".to_string(),
        b"" => "http".to_string(),
        s => text(s),
    };
    let authority = if req.authority.is_empty() { ex.server.to_string() } else { text(&req.authority) };
    let path = text(&req.path);
    let req_headers = pairs(&req.headers);
    let t = &ex.timing;
    let start_ns = t.request_first.or(t.request_last).or_else(|| t.start()).map_or(0, |t| t.0);
    let dur = |a: Option<tapedeck_model::Timestamp>, b: Option<tapedeck_model::Timestamp>| match (a, b) {
        (Some(a), Some(b)) if b.0 >= a.0 => Duration::from_nanos(b.0 - a.0),
        _ => Duration::ZERO,
    };
    let send = dur(t.request_first, t.request_last);
    let wait = dur(t.request_last.or(t.request_first), t.response_first);
    let receive = dur(t.response_first, t.response_last);
    let response = match &ex.response {
        Some(r) => {
            let headers = pairs(&r.headers);
            HarResponse {
                status: r.status,
                status_text: text(&r.reason),
                http_version: version.into(),
                cookies: vec![],
                redirect_url: find(&headers, "location").unwrap_or_default().to_string(),
                content: content(&headers, &r.body.bytes, r.body.full_len),
                headers,
                headers_size: -1,
                body_size: i64::try_from(r.body.full_len).unwrap_or(i64::MAX),
            }
        }
        None => no_response(version),
    };
    let mut notes = Vec::new();
    if !ex.flags.is_empty() {
        notes.push(format!("flags: {}", ex.flags.names().join(",")));
    }
    if !ex.masked_by.is_empty() {
        notes.push(format!("masked by: {}", ex.masked_by.join(",")));
    }
    if ex.response.is_none() {
        notes.push("no response was recorded".into());
    }
    Some(Entry {
        started_date_time: rfc3339(UNIX_EPOCH + Duration::from_nanos(start_ns)),
        time: ms(send + wait + receive),
        request: HarRequest {
            method: text(&req.method),
            url: url(&scheme, &authority, &path),
            http_version: version.into(),
            cookies: vec![],
            query_string: query_string(&path),
            post_data: post_data(&req_headers, &req.body.bytes, req.body.full_len),
            headers: req_headers,
            headers_size: -1,
            body_size: i64::try_from(req.body.full_len).unwrap_or(i64::MAX),
        },
        response,
        cache: Default::default(),
        timings: Timings {
            blocked: -1.0,
            dns: -1.0,
            connect: -1.0,
            send: ms(send),
            wait: ms(wait),
            receive: ms(receive),
            ssl: -1.0,
        },
        server_ip_address: Some(ex.server.ip().to_string()),
        connection: Some(ex.connection_id.to_string()),
        comment: (!notes.is_empty()).then(|| notes.join("; ")),
    })
}

fn no_response(version: &str) -> HarResponse {
    HarResponse {
        status: 0,
        status_text: String::new(),
        http_version: version.into(),
        cookies: vec![],
        headers: vec![],
        content: Content {
            size: 0,
            compression: None,
            mime_type: String::new(),
            text: None,
            encoding: None,
            comment: None,
            partial: false,
        },
        redirect_url: String::new(),
        headers_size: -1,
        body_size: -1,
    }
}

/// The HAR entry of a replayed request. `masked_body` adds a note that the body carried masking markers.
pub fn entry_from_replayed(r: &Replayed, masked_body: bool) -> Entry {
    let req = &r.request;
    let path = text(&req.path);
    let mut headers = vec![NameValue { name: "host".into(), value: req.authority.clone() }];
    headers.extend(req.headers.iter().map(|(n, v)| NameValue { name: text(n), value: text(v) }));
    let response = match &r.response {
        Some(resp) => {
            let headers: Vec<NameValue> =
                resp.headers.iter().map(|(n, v)| NameValue { name: n.clone(), value: v.clone() }).collect();
            HarResponse {
                status: resp.status,
                status_text: resp.reason.clone(),
                http_version: r.version.into(),
                cookies: vec![],
                redirect_url: find(&headers, "location").unwrap_or_default().to_string(),
                content: content(&headers, &resp.body, resp.body_len),
                headers,
                headers_size: -1,
                body_size: i64::try_from(resp.body_len).unwrap_or(i64::MAX),
            }
        }
        None => no_response(r.version),
    };
    let t = &r.timings;
    let opt = |d: Option<Duration>| d.map_or(-1.0, ms);
    let total = t.connect.unwrap_or_default() + t.tls.unwrap_or_default() + t.wait + t.receive;
    let mut notes = Vec::new();
    if let Some(e) = &r.error {
        notes.push(format!("error: {e}"));
    }
    if masked_body {
        notes.push("replayed with masked body fields".into());
    }
    Entry {
        started_date_time: rfc3339(r.started),
        time: ms(total),
        request: HarRequest {
            method: text(&req.method),
            url: url(r.scheme, &req.authority, &path),
            http_version: r.version.into(),
            cookies: vec![],
            query_string: query_string(&path),
            post_data: post_data(&headers, &req.body, req.body.len() as u64),
            headers,
            headers_size: -1,
            body_size: req.body.len() as i64,
        },
        response,
        cache: Default::default(),
        timings: Timings {
            blocked: -1.0,
            dns: -1.0,
            // HAR: connect includes ssl.
            connect: t.connect.map_or(-1.0, |c| ms(c + t.tls.unwrap_or_default())),
            send: 0.0,
            wait: ms(t.wait),
            receive: ms(t.receive),
            ssl: opt(t.tls),
        },
        server_ip_address: None,
        connection: None,
        comment: (!notes.is_empty()).then(|| notes.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapedeck_model::{Body, Flags, Request, Response, Timestamp, Timing};

    fn exchange() -> Exchange {
        let t = |ms: u64| Some(Timestamp(1_700_000_000_000_000_000 + ms * 1_000_000));
        Exchange {
            id: 1,
            connection_id: 9,
            order: 0,
            stream_id: None,
            proto: Protocol::Http11,
            client: "10.0.0.1:5000".parse().unwrap(),
            server: "10.0.0.2:8080".parse().unwrap(),
            timing: Timing { request_first: t(0), request_last: t(2), response_first: t(12), response_last: t(15) },
            request: Some(Request {
                method: b"POST".to_vec(),
                scheme: vec![],
                authority: b"api:8080".to_vec(),
                path: b"/a?x=1&y".to_vec(),
                headers: vec![Header::new("Content-Type", "application/json")],
                body: Body { bytes: b"{}".to_vec(), full_len: 2 },
                trailers: vec![],
            }),
            response: Some(Response {
                status: 302,
                reason: b"Found".to_vec(),
                headers: vec![Header::new("Location", "/b")],
                body: Body { bytes: vec![0xff, 0x00], full_len: 10 },
                ..Default::default()
            }),
            flags: Flags::TRUNCATED,
            labels: vec![],
            masked_by: vec!["auth-headers".into()],
        }
    }

    #[test]
    fn exchange_entry_has_url_times_and_bodies() {
        let e = entry_from_exchange(&exchange()).unwrap();
        assert_eq!(e.request.url, "http://api:8080/a?x=1&y");
        assert_eq!(e.started_date_time, "2023-11-14T22:13:20.000Z");
        assert_eq!((e.timings.send, e.timings.wait, e.timings.receive, e.time), (2.0, 10.0, 3.0, 15.0));
        assert_eq!(
            e.request.query_string,
            vec![
                NameValue { name: "x".into(), value: "1".into() },
                NameValue { name: "y".into(), value: String::new() }
            ]
        );
        assert_eq!(e.request.post_data.as_ref().unwrap().mime_type, "application/json");
        assert_eq!(e.response.redirect_url, "/b");
        assert_eq!(e.response.content.encoding.as_deref(), Some("base64"));
        assert_eq!(e.response.content.text.as_deref(), Some("/wA="));
        assert_eq!(e.response.content.size, 10);
        assert!(e.response.content.comment.as_ref().unwrap().contains("first 2 of 10"));
        let c = e.comment.unwrap();
        assert!(c.contains("truncated") && c.contains("auth-headers"), "{c}");
        let mut no_req = exchange();
        no_req.request = None;
        assert!(entry_from_exchange(&no_req).is_none());
    }

    fn gzip(b: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b).unwrap();
        z.finish().unwrap()
    }

    #[test]
    fn encoded_bodies_are_written_decoded_with_the_compression_noted() {
        let plain = "{\"greeting\": \"hello\"}\n".repeat(50);
        let gz = gzip(plain.as_bytes());
        let mut ex = exchange();
        let r = ex.response.as_mut().unwrap();
        r.headers = vec![Header::new("Content-Type", "application/json"), Header::new("Content-Encoding", "gzip")];
        r.body = Body { bytes: gz.clone(), full_len: gz.len() as u64 };
        let e = entry_from_exchange(&ex).unwrap();
        let c = &e.response.content;
        assert_eq!(c.text.as_deref(), Some(plain.as_str()));
        assert_eq!(c.encoding, None);
        assert_eq!(c.size, plain.len() as i64);
        assert_eq!(c.compression, Some(plain.len() as i64 - gz.len() as i64));
        assert_eq!(e.response.body_size, gz.len() as i64);
        assert!(c.comment.as_deref().unwrap().contains("content-encoding gzip undone"), "{:?}", c.comment);
        let mut w = HarWriter::new(Vec::new(), "").unwrap();
        w.entry(&e).unwrap();
        assert_eq!((w.stats.bodies_decoded, w.stats.bodies_base64, w.stats.bodies_partial), (1, 0, 0));

        // Cut at the capture's body cap: the stored bytes cannot be decoded and are written as they are.
        let r = ex.response.as_mut().unwrap();
        r.body = Body { bytes: gz[..gz.len() / 2].to_vec(), full_len: gz.len() as u64 };
        let e = entry_from_exchange(&ex).unwrap();
        let c = &e.response.content;
        assert_eq!(c.encoding.as_deref(), Some("base64"));
        assert_eq!((c.size, c.compression), (gz.len() as i64, None));
        let note = c.comment.as_deref().unwrap();
        assert!(note.contains("first") && note.contains("gzip left in place: the body is cut"), "{note}");

        // A deflate request body (a replayed one: `run --har`), and a response whose gzip stream is broken.
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut z, b"a=1&b=2").unwrap();
        let req = crate::transform::OutRequest {
            method: b"POST".to_vec(),
            authority: "api".into(),
            path: b"/f".to_vec(),
            headers: vec![(b"content-encoding".to_vec(), b"deflate".to_vec())],
            body: z.finish().unwrap(),
        };
        let resp = crate::replayed::ReplayedResponse {
            status: 200,
            headers: vec![("content-encoding".into(), "gzip".into())],
            body: b"not gzip".to_vec(),
            body_len: 8,
            ..Default::default()
        };
        let r = Replayed {
            started: UNIX_EPOCH,
            scheme: "http",
            version: "HTTP/1.1",
            request: req,
            response: Some(resp),
            timings: Default::default(),
            error: None,
        };
        let e = entry_from_replayed(&r, false);
        let p = e.request.post_data.unwrap();
        assert_eq!(p.text, "a=1&b=2");
        assert_eq!(p.comment.as_deref(), Some("content-encoding deflate undone"));
        let c = &e.response.content;
        assert_eq!(c.text.as_deref(), Some("not gzip"));
        assert!(c.comment.as_deref().unwrap().starts_with("content-encoding gzip left in place: gzip: "), "{c:?}");
    }

    #[test]
    fn writer_produces_one_json_document() {
        let mut w = HarWriter::new(Vec::new(), "test").unwrap();
        let e = entry_from_exchange(&exchange()).unwrap();
        w.entry(&e).unwrap();
        w.entry(&e).unwrap();
        let (bytes, stats) = w.finish().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["log"]["version"], "1.2");
        assert!(v["log"]["pages"].as_array().unwrap().is_empty());
        assert_eq!(v["log"]["entries"].as_array().unwrap().len(), 2);
        assert_eq!(v["log"]["entries"][0]["response"]["status"], 302);
        assert_eq!(v["log"]["entries"][0]["serverIPAddress"], "10.0.0.2");
        assert_eq!((stats.entries, stats.bodies_base64, stats.bodies_partial), (2, 2, 2));
        let empty = HarWriter::new(Vec::new(), "").unwrap().finish().unwrap().0;
        let v: serde_json::Value = serde_json::from_slice(&empty).unwrap();
        assert!(v["log"]["entries"].as_array().unwrap().is_empty());
    }
}
