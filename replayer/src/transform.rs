//! Transforms: a recorded request in, the request to send out: the target (scheme, host, port), host/authority
//! mapping (`--rewrite-host old=new`), path prefix mapping (`--rewrite-path /old=/new`), header removal and
//! setting (`--remove-header`, `--set-header 'Name: value'`), variables in set values, and the hop-by-hop and
//! length fix-ups that make the result a valid message.
//!
//! Variables: `${NAME}` and `{{env.NAME}}` are read from the environment once, when the flag is parsed (a missing
//! variable is an error at start-up, not a silent empty value); `{{now}}` (RFC 3339 UTC, milliseconds) and
//! `{{uuid}}` (v4) take a fresh value per request, supplied by the caller in [`RuntimeVars`], so this module stays
//! pure; `{{file.NAME}}` is the current content of a `--token-file` (see [`crate::tokens`]).
//!
//! Fix-ups: hop-by-hop headers (`Connection` and the names it lists, `Keep-Alive`, `Proxy-Connection`,
//! `Transfer-Encoding`, `Upgrade`, `Trailer`, `TE` except `TE: trailers`) are removed; `Host` is rebuilt from the
//! (rewritten) authority by the client; `Content-Length` is set to the length of the body actually sent.

use std::fmt;

use serde::Serialize;
use tapedeck_model::Request;

use crate::select::strip_port;

/// Where requests are sent: `http://host:port` or `https://host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Target {
    /// `host:port` as an authority (IPv6 bracketed).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority())
    }
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let forms = "expected http://HOST[:PORT] or https://HOST[:PORT], e.g. http://staging:8080 or \
                     https://127.0.0.1:8443";
        let t = s.trim();
        let (scheme, rest) = match t.split_once("://") {
            Some((sc, rest)) => (sc.to_ascii_lowercase(), rest),
            None => ("http".to_string(), t),
        };
        if scheme != "http" && scheme != "https" {
            return Err(format!("'{s}': unknown scheme '{scheme}'; {forms}"));
        }
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') {
            return Err(format!("'{s}' is not a target (a path is not allowed); {forms}"));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let Some((h, after)) = v6.split_once(']') else { return Err(format!("'{s}': unclosed '['; {forms}")) };
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(format!("'{s}': junk after ']'; {forms}")),
            };
            (h.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        let port = match port {
            None if scheme == "https" => 443,
            None => 80,
            Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| format!("'{s}': bad port; {forms}"))?,
        };
        if host.is_empty() {
            return Err(format!("'{s}': missing host; {forms}"));
        }
        Ok(Target { scheme, host, port })
    }
}

/// One piece of a value template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Lit(String),
    Now,
    Uuid,
    File(String),
}

/// A header value with runtime variables (`{{now}}`, `{{uuid}}`); environment variables are already substituted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(Vec<Part>);

impl Template {
    /// Parses `s`, reading `${NAME}` and `{{env.NAME}}` through `env`. Unknown `{{...}}` and missing variables
    /// are errors naming them.
    pub fn parse(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("${") {
                let end = after.find('}').ok_or_else(|| format!("unclosed '${{' in '{s}'"))?;
                let name = &after[..end];
                lit.push_str(&env(name).ok_or_else(|| format!("environment variable {name} is not set"))?);
                rest = &after[end + 1..];
            } else if let Some(after) = rest.strip_prefix("{{") {
                let end = after.find("}}").ok_or_else(|| format!("unclosed '{{{{' in '{s}'"))?;
                let var = after[..end].trim();
                let runtime = match var {
                    "now" => Some(Part::Now),
                    "uuid" => Some(Part::Uuid),
                    _ if var.starts_with("file.") && var.len() > 5 => Some(Part::File(var[5..].to_string())),
                    _ => match var.strip_prefix("env.") {
                        Some(name) => {
                            lit.push_str(&env(name).ok_or_else(|| format!("environment variable {name} is not set"))?);
                            None
                        }
                        None => {
                            return Err(format!(
                                "unknown variable {{{{{var}}}}} in '{s}': expected {{{{now}}}}, {{{{uuid}}}}, \
                                 {{{{env.NAME}}}} or {{{{file.NAME}}}}"
                            ));
                        }
                    },
                };
                if let Some(part) = runtime {
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(part);
                }
                rest = &after[end + 2..];
            } else {
                let mut chars = rest.chars();
                if let Some(c) = chars.next() {
                    lit.push(c);
                }
                rest = chars.as_str();
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template(parts))
    }

    /// The value with the runtime variables filled in.
    pub fn render(&self, vars: &RuntimeVars) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Now => out.push_str(&vars.now),
                Part::Uuid => out.push_str(&vars.uuid),
                Part::File(name) => {
                    if let Some(files) = &vars.files {
                        out.push_str(&files.get(name));
                    }
                }
            }
        }
        out
    }

    /// Whether the template uses `{{now}}`, `{{uuid}}`.
    pub fn uses(&self) -> (bool, bool) {
        (self.0.contains(&Part::Now), self.0.contains(&Part::Uuid))
    }

    /// The `{{file.NAME}}` names used.
    pub fn file_names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|p| match p {
            Part::File(n) => Some(n.as_str()),
            _ => None,
        })
    }
}

/// Values of the runtime variables for one request.
#[derive(Clone, Debug, Default)]
pub struct RuntimeVars {
    /// `{{now}}`.
    pub now: String,
    /// `{{uuid}}`.
    pub uuid: String,
    /// `{{file.NAME}}` values.
    pub files: Option<std::sync::Arc<crate::tokens::TokenFiles>>,
}

impl RuntimeVars {
    /// Fresh values from the clock and a random v4 UUID.
    pub fn fresh() -> Self {
        RuntimeVars {
            now: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            uuid: uuid::Uuid::new_v4().to_string(),
            files: None,
        }
    }

    /// Values for `transform`: the clock and a random UUID only when a template uses them (both cost a system
    /// call or a format per request), and its token files.
    pub fn for_transform(transform: &Transform) -> Self {
        let (mut now, mut uuid) = (false, false);
        for s in &transform.set_headers {
            let (n, u) = s.value.uses();
            now |= n;
            uuid |= u;
        }
        RuntimeVars {
            now: if now {
                humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
            } else {
                String::new()
            },
            uuid: if uuid { uuid::Uuid::new_v4().to_string() } else { String::new() },
            files: transform.token_files.clone(),
        }
    }

    /// The same, with token files for `{{file.NAME}}`.
    pub fn with_files(mut self, files: Option<std::sync::Arc<crate::tokens::TokenFiles>>) -> Self {
        self.files = files;
        self
    }
}

/// The header to set: a name and a value template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetHeader {
    /// Header name (as given).
    pub name: String,
    /// Value template.
    pub value: Template,
}

impl SetHeader {
    /// Parses `Name: value`, reading environment variables through `env`.
    pub fn parse(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<SetHeader, String> {
        let Some((name, value)) = s.split_once(':') else {
            return Err(format!(
                "'{s}' is not a header: expected 'Name: value', e.g. 'Authorization: Bearer ${{TOKEN}}'"
            ));
        };
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(format!("'{name}' is not a valid header name (in '{s}')"));
        }
        Ok(SetHeader { name: name.to_string(), value: Template::parse(value.trim(), env)? })
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A host mapping: requests whose authority (or its host part) is `from` get `to` as their authority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostRewrite {
    /// Authority or host to match (case-insensitive).
    pub from: String,
    /// Replacement authority.
    pub to: String,
}

impl std::str::FromStr for HostRewrite {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((a, b)) if !a.trim().is_empty() && !b.trim().is_empty() => {
                Ok(HostRewrite { from: a.trim().to_string(), to: b.trim().to_string() })
            }
            _ => Err(format!("'{s}' is not a host rewrite: expected OLD=NEW, e.g. api.prod:443=api.staging:8080")),
        }
    }
}

/// A path prefix mapping: paths equal to `from`, or starting with it followed by `/` or `?` (or any path
/// starting with `from` when it ends in `/`), get `to` in its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathRewrite {
    /// Prefix to match.
    pub from: String,
    /// Replacement.
    pub to: String,
}

impl std::str::FromStr for PathRewrite {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((a, b)) if a.starts_with('/') && (b.starts_with('/') || b.is_empty()) => {
                Ok(PathRewrite { from: a.to_string(), to: b.to_string() })
            }
            _ => Err(format!("'{s}' is not a path rewrite: expected /OLD=/NEW, e.g. /v1=/api/v1")),
        }
    }
}

impl PathRewrite {
    /// The rewritten path, if `path` matches.
    pub fn apply(&self, path: &[u8]) -> Option<Vec<u8>> {
        let from = self.from.as_bytes();
        let rest = path.strip_prefix(from)?;
        let boundary = from.ends_with(b"/") || rest.is_empty() || rest[0] == b'/' || rest[0] == b'?';
        if !boundary {
            return None;
        }
        let mut out = self.to.as_bytes().to_vec();
        if out.is_empty() && !rest.starts_with(b"/") {
            out.push(b'/');
        }
        out.extend_from_slice(rest);
        Some(out)
    }
}

/// All transforms, in the order they apply: host rewrite, path rewrite, header removal, header setting, fix-ups.
#[derive(Clone, Debug, Default)]
pub struct Transform {
    /// Host mappings; the first match wins.
    pub rewrite_hosts: Vec<HostRewrite>,
    /// Path prefix mappings; the first match wins.
    pub rewrite_paths: Vec<PathRewrite>,
    /// `--token-file` values for `{{file.NAME}}`.
    pub token_files: Option<std::sync::Arc<crate::tokens::TokenFiles>>,
    /// Header names to remove (case-insensitive).
    pub remove_headers: Vec<String>,
    /// Headers to set (replacing every recorded field of that name).
    pub set_headers: Vec<SetHeader>,
    /// `--token-map`: recorded values (masked tokens) replaced inside recorded header values.
    pub token_map: Option<std::sync::Arc<crate::token_map::TokenMap>>,
}

/// The request to send, before it becomes an `http::Request`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutRequest {
    /// Method.
    pub method: Vec<u8>,
    /// Authority for `Host` / `:authority`.
    pub authority: String,
    /// Request target (origin form: path and query).
    pub path: Vec<u8>,
    /// Header fields in order; no `Host`, no hop-by-hop fields; `content-length` when there is a body.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Counters of the transform stage (pure counts, summed by the caller).
#[derive(Clone, Debug, Default, Serialize)]
pub struct TransformStats {
    /// Requests whose authority was rewritten.
    pub hosts_rewritten: u64,
    /// Requests whose path was rewritten.
    pub paths_rewritten: u64,
    /// Hop-by-hop header fields removed.
    pub hop_by_hop_removed: u64,
    /// Header fields removed by `--remove-header`.
    pub headers_removed: u64,
    /// Header fields set by `--set-header`.
    pub headers_set: u64,
    /// Request trailers dropped (not replayed).
    pub trailers_dropped: u64,
    /// Recorded values replaced by `--token-map` inside header values.
    pub tokens_replaced: u64,
}

impl TransformStats {
    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &TransformStats) {
        self.hosts_rewritten += other.hosts_rewritten;
        self.paths_rewritten += other.paths_rewritten;
        self.hop_by_hop_removed += other.hop_by_hop_removed;
        self.headers_removed += other.headers_removed;
        self.headers_set += other.headers_set;
        self.trailers_dropped += other.trailers_dropped;
        self.tokens_replaced += other.tokens_replaced;
    }
}

const HOP_BY_HOP: &[&str] =
    &["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "trailer", "te"];

impl Transform {
    /// Whether [`Transform::apply`] gives the same result whenever it runs: no `{{now}}`, `{{uuid}}` or
    /// `{{file.NAME}}` (re-read during the run) in a `--set-header` value.
    pub fn is_static(&self) -> bool {
        self.set_headers.iter().all(|s| s.value.uses() == (false, false) && s.value.file_names().next().is_none())
    }

    /// The request to send for `req`. `target` gives the authority when the recording has none.
    pub fn apply(&self, req: &Request, target: &Target, vars: &RuntimeVars, stats: &mut TransformStats) -> OutRequest {
        let mut authority = String::from_utf8_lossy(&req.authority).into_owned();
        if let Some(rw) = self.rewrite_hosts.iter().find(|rw| {
            authority.eq_ignore_ascii_case(&rw.from)
                || strip_port(authority.as_bytes()).eq_ignore_ascii_case(rw.from.as_bytes())
        }) {
            authority = rw.to.clone();
            stats.hosts_rewritten += 1;
        }
        if authority.is_empty() {
            authority = target.authority();
        }

        // Names the Connection header lists are hop-by-hop too (no allocation unless there is one).
        let mut listed: Vec<&[u8]> = Vec::new();
        for h in req.headers.iter().filter(|h| h.name.eq_ignore_ascii_case(b"connection")) {
            listed.extend(h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii).filter(|n| !n.is_empty()));
        }
        let is = |name: &[u8], other: &[u8]| name.eq_ignore_ascii_case(other);
        let mut headers = Vec::with_capacity(req.headers.len() + self.set_headers.len() + 1);
        for h in &req.headers {
            let name = h.name.as_slice();
            if is(name, b"host") || is(name, b"content-length") {
                continue;
            }
            let hop = HOP_BY_HOP.iter().any(|n| is(name, n.as_bytes())) || listed.iter().any(|n| is(name, n));
            if hop && !(is(name, b"te") && h.value.trim_ascii().eq_ignore_ascii_case(b"trailers")) {
                stats.hop_by_hop_removed += 1;
                continue;
            }
            if self.remove_headers.iter().any(|r| is(name, r.as_bytes())) {
                stats.headers_removed += 1;
                continue;
            }
            if self.set_headers.iter().any(|s| is(name, s.name.as_bytes())) {
                continue; // replaced below
            }
            match self.token_map.as_ref().and_then(|m| m.apply(&h.value)) {
                Some((value, n)) => {
                    stats.tokens_replaced += n;
                    headers.push((h.name.clone(), value));
                }
                None => headers.push((h.name.clone(), h.value.clone())),
            }
        }
        for s in &self.set_headers {
            headers.push((s.name.as_bytes().to_vec(), s.value.render(vars).into_bytes()));
            stats.headers_set += 1;
        }
        let had_length = req.headers.iter().any(|h| h.name.eq_ignore_ascii_case(b"content-length"))
            || req.headers.iter().any(|h| h.name.eq_ignore_ascii_case(b"transfer-encoding"));
        let body = req.body.bytes.clone();
        if !body.is_empty() || had_length {
            headers.push((b"content-length".to_vec(), body.len().to_string().into_bytes()));
        }
        if !req.trailers.is_empty() {
            stats.trailers_dropped += req.trailers.len() as u64;
        }
        let mut path = origin_form(&req.path);
        if let Some(p) = self.rewrite_paths.iter().find_map(|rw| rw.apply(&path)) {
            path = p;
            stats.paths_rewritten += 1;
        }
        // Tokens in the query string (`?token=tdk_...`) are mapped as in header values.
        if let Some((p, n)) = self.token_map.as_ref().and_then(|m| m.apply(&path)) {
            path = p;
            stats.tokens_replaced += n;
        }
        OutRequest { method: req.method.clone(), authority, path, headers, body }
    }
}

/// The origin form of a request target: an absolute-form target (`http://h/p?q`) loses its scheme and authority;
/// an empty one becomes `/`.
fn origin_form(path: &[u8]) -> Vec<u8> {
    for scheme in [&b"http://"[..], b"https://"] {
        if path.len() >= scheme.len() && path[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &path[scheme.len()..];
            return match rest.iter().position(|&b| b == b'/' || b == b'?') {
                Some(i) if rest[i] == b'/' => rest[i..].to_vec(),
                Some(i) => [b"/", &rest[i..]].concat(),
                None => b"/".to_vec(),
            };
        }
    }
    if path.is_empty() { b"/".to_vec() } else { path.to_vec() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapedeck_model::{Body, Header};

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".into()),
            "REGION" => Some("eu".into()),
            _ => None,
        }
    }

    fn target() -> Target {
        "http://127.0.0.1:9000".parse().unwrap()
    }

    fn vars() -> RuntimeVars {
        RuntimeVars {
            now: "2030-01-02T03:04:05.000Z".into(),
            uuid: "00000000-0000-4000-8000-000000000001".into(),
            files: None,
        }
    }

    fn header<'a>(out: &'a OutRequest, name: &str) -> Vec<&'a str> {
        out.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| std::str::from_utf8(v).unwrap())
            .collect()
    }

    #[test]
    fn parses_targets() {
        assert_eq!(
            "http://staging:8080".parse::<Target>(),
            Ok(Target { scheme: "http".into(), host: "staging".into(), port: 8080 })
        );
        assert_eq!("staging".parse::<Target>().unwrap().port, 80);
        let v6: Target = "http://[::1]:81/".parse().unwrap();
        assert_eq!((v6.host.as_str(), v6.port, v6.authority()), ("::1", 81, "[::1]:81".to_string()));
        let tls: Target = "https://secure".parse().unwrap();
        assert_eq!((tls.scheme.as_str(), tls.port), ("https", 443));
        for bad in ["ftp://x", "http://x:0", "http://x:port", "http://x/path", "http://", "http://[::1"] {
            let e = bad.parse::<Target>().unwrap_err();
            assert!(e.contains("http://HOST"), "{bad}: {e}");
        }
    }

    #[test]
    fn templates_read_env_at_parse_and_runtime_vars_per_request() {
        let t = Template::parse("Bearer ${TOKEN}", &env).unwrap();
        assert_eq!(t.render(&vars()), "Bearer s3cret");
        let t = Template::parse("id={{uuid}} at {{ now }} in {{env.REGION}}!", &env).unwrap();
        assert_eq!(t.render(&vars()), "id=00000000-0000-4000-8000-000000000001 at 2030-01-02T03:04:05.000Z in eu!");
        assert!(Template::parse("${MISSING}", &env).unwrap_err().contains("MISSING"));
        assert!(Template::parse("{{env.NOPE}}", &env).unwrap_err().contains("NOPE"));
        assert!(Template::parse("{{later}}", &env).unwrap_err().contains("{{now}}"));
        assert!(Template::parse("${TOKEN", &env).is_err());
        let t =
            Transform { set_headers: vec![SetHeader::parse("X-Id: {{uuid}}", &env).unwrap()], ..Default::default() };
        let v = RuntimeVars::for_transform(&t);
        assert_eq!((v.uuid.len(), v.now.len()), (36, 0), "only what the templates use is made");
        let fresh = RuntimeVars::fresh();
        assert_eq!(fresh.uuid.len(), 36);
        assert!(fresh.now.ends_with('Z'));
    }

    #[test]
    fn static_transforms_are_told_from_per_send_ones() {
        let with = |values: &[&str]| Transform {
            set_headers: values.iter().map(|v| SetHeader::parse(v, &env).unwrap()).collect(),
            ..Default::default()
        };
        assert!(with(&[]).is_static());
        assert!(with(&["Authorization: Bearer ${TOKEN}", "X-Region: {{env.REGION}}"]).is_static());
        assert!(!with(&["X-Id: {{uuid}}"]).is_static());
        assert!(!with(&["X-Region: ${REGION}", "X-At: {{now}}"]).is_static());
        assert!(!with(&["Authorization: Bearer {{file.token}}"]).is_static(), "token files are re-read");
    }

    #[test]
    fn rewrites_hosts_headers_and_fixes_lengths() {
        let req = Request {
            method: b"POST".to_vec(),
            scheme: vec![],
            authority: b"api.prod:443".to_vec(),
            path: b"/orders?x=1".to_vec(),
            headers: vec![
                Header::new("Host", "api.prod:443"),
                Header::new("Connection", "keep-alive, X-Hop"),
                Header::new("X-Hop", "1"),
                Header::new("Keep-Alive", "timeout=5"),
                Header::new("Transfer-Encoding", "chunked"),
                Header::new("Authorization", "Bearer old"),
                Header::new("Cookie", "a=b"),
                Header::new("X-Keep", "yes"),
                Header::new("Content-Length", "999"),
            ],
            body: Body { bytes: b"{\"a\":1}".to_vec(), full_len: 7 },
            trailers: vec![],
        };
        let t = Transform {
            rewrite_hosts: vec!["api.prod=api.staging:8080".parse().unwrap()],
            remove_headers: vec!["cookie".into()],
            set_headers: vec![
                SetHeader::parse("Authorization: Bearer ${TOKEN}", &env).unwrap(),
                SetHeader::parse("X-Request-Id: {{uuid}}", &env).unwrap(),
            ],
            ..Default::default()
        };
        let mut st = TransformStats::default();
        let out = t.apply(&req, &target(), &vars(), &mut st);
        assert_eq!(out.authority, "api.staging:8080");
        assert_eq!(out.path, b"/orders?x=1");
        let names: Vec<String> = out.headers.iter().map(|(n, _)| String::from_utf8_lossy(n).to_lowercase()).collect();
        assert_eq!(names, vec!["x-keep", "authorization", "x-request-id", "content-length"]);
        assert_eq!(header(&out, "authorization"), vec!["Bearer s3cret"]);
        assert_eq!(header(&out, "x-request-id"), vec!["00000000-0000-4000-8000-000000000001"]);
        assert_eq!(header(&out, "content-length"), vec!["7"]);
        assert_eq!((st.hosts_rewritten, st.hop_by_hop_removed, st.headers_removed, st.headers_set), (1, 4, 1, 2));
    }

    #[test]
    fn keeps_te_trailers_fills_missing_authority_and_origin_form() {
        let req = Request {
            method: b"GET".to_vec(),
            path: b"http://old.host/a/b?c".to_vec(),
            headers: vec![Header::new("te", "trailers"), Header::new("upgrade", "websocket")],
            ..Default::default()
        };
        let out = Transform::default().apply(&req, &target(), &vars(), &mut TransformStats::default());
        assert_eq!(out.authority, "127.0.0.1:9000");
        assert_eq!(out.path, b"/a/b?c");
        assert_eq!(header(&out, "te"), vec!["trailers"]);
        assert!(header(&out, "upgrade").is_empty() && header(&out, "content-length").is_empty());
        assert_eq!(origin_form(b"http://h?q"), b"/?q");
        assert_eq!(origin_form(b""), b"/");
    }

    #[test]
    fn header_and_rewrite_flags_are_checked() {
        assert!(SetHeader::parse("NoColon", &env).unwrap_err().contains("Name: value"));
        assert!(SetHeader::parse("Bad Name: v", &env).is_err());
        assert!("nothing".parse::<HostRewrite>().unwrap_err().contains("OLD=NEW"));
        assert!("=x".parse::<HostRewrite>().is_err());
    }

    #[test]
    fn path_prefixes_are_rewritten_on_segment_boundaries() {
        let rw: PathRewrite = "/v1=/api/v2".parse().unwrap();
        assert_eq!(rw.apply(b"/v1/users?x=1").as_deref(), Some(&b"/api/v2/users?x=1"[..]));
        assert_eq!(rw.apply(b"/v1").as_deref(), Some(&b"/api/v2"[..]));
        assert_eq!(rw.apply(b"/v1?q").as_deref(), Some(&b"/api/v2?q"[..]));
        assert_eq!(rw.apply(b"/v10/x"), None, "not a segment boundary");
        assert_eq!(rw.apply(b"/other/v1"), None);
        let strip: PathRewrite = "/prefix=".parse().unwrap();
        assert_eq!(strip.apply(b"/prefix/a").as_deref(), Some(&b"/a"[..]));
        assert_eq!(strip.apply(b"/prefix").as_deref(), Some(&b"/"[..]));
        let slash: PathRewrite = "/old/=/new/".parse().unwrap();
        assert_eq!(slash.apply(b"/old/x").as_deref(), Some(&b"/new/x"[..]));
        for bad in ["v1=/x", "/v1", "/a=b"] {
            assert!(bad.parse::<PathRewrite>().unwrap_err().contains("/OLD=/NEW"), "{bad}");
        }
        // In a transform: first match wins, applied after origin-form conversion, counted.
        let t =
            Transform { rewrite_paths: vec!["/a=/b".parse().unwrap(), "/a=/c".parse().unwrap()], ..Default::default() };
        let req = Request { method: b"GET".to_vec(), path: b"http://h/a/x".to_vec(), ..Default::default() };
        let mut st = TransformStats::default();
        assert_eq!(t.apply(&req, &target(), &vars(), &mut st).path, b"/b/x");
        assert_eq!(st.paths_rewritten, 1);
    }

    #[test]
    fn file_variables_render_current_token_file_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc123\n").unwrap();
        let files = std::sync::Arc::new(
            crate::tokens::TokenFiles::load(&[crate::tokens::TokenFileArg { name: "api".into(), path }]).unwrap(),
        );
        let t = Template::parse("Bearer {{file.api}}", &env).unwrap();
        assert_eq!(t.file_names().collect::<Vec<_>>(), vec!["api"]);
        assert_eq!(t.render(&vars().with_files(Some(files))), "Bearer abc123");
        assert_eq!(t.render(&vars()), "Bearer ", "no token files: empty (names are checked at start)");
        assert!(Template::parse("{{file.}}", &env).is_err());
    }
}
