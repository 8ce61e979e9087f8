//! The masking engine: applied to every exchange on the writer thread, before it is written, so that secrets never
//! reach a segment file. A [`Masker`] is built from a [`Policy`] (and the hash key, when a rule hashes) and
//! changes exchanges in place: header values, cookies, query parameters, JSON values, form fields and detector hits
//! are replaced by a marker (`[REDACTED]`, or `0`/`false`/`[]`/`{}` for JSON values of other types) or a keyed
//! token (`tdk_` + 16 hex digits of HMAC-SHA256); bodies or whole exchanges are dropped when a rule says so.
//!
//! Bodies are classified by `Content-Type` (JSON, urlencoded form, multipart form, text, gRPC, binary) and decoded
//! from their `Content-Encoding` first. A masked body that was whole is encoded again with its coding; one that was
//! cut (at the body cap, or at the decoding cap) is stored decoded and its `Content-Encoding` header removed. A
//! JSON body that does not parse (typically one cut at the body cap) gets a lexical scan for secret-like keys and
//! the detectors over its text; a body that cannot be decoded gets the detectors over its bytes as stored. gRPC
//! and binary bodies are left alone. Each changed exchange is flagged `masked` and lists the rules that fired in
//! `Exchange::masked_by`, with notes (`@response-body:re-encoded:gzip`, `@request-body:stored-decoded:br`,
//! `@response-body:dropped`) about what happened to bodies.

pub mod codec;
pub mod detect;
pub mod digits;
pub mod form;
pub mod hash;
pub mod header_lists;
pub mod headers;
pub mod json;
pub mod keyfile;
pub mod names;
pub mod policy;
pub mod query;
pub mod stats;

use regex::bytes::Regex;
use tapedeck_model::{Body, Exchange, Flags, Header};

pub use hash::{Hasher, MaskKey};
pub use keyfile::KeyOrigin;
pub use policy::{Action, DetectorKind, Policy, PolicyError, PolicyFile, Rule, Target};
pub use stats::MaskStats;

use codec::{Coding, Decoded};
use detect::{Detector, Detectors};
use header_lists::{ListMemo, Side};
use headers::Fields;
use json::JsonPath;
pub use names::NameRules;

/// The marker that replaces redacted text.
pub const REDACTED: &str = "[REDACTED]";
/// Default cap on the decoded size of one body (a decompression bomb stops here).
pub const DEFAULT_MAX_DECODED: usize = 16 << 20;
/// Lazy-DFA cache of each regular expression (the regex crate's default is 2 MiB each; a few hundred KiB keeps
/// matching fast and the masker's memory small whatever the input).
pub const REGEX_CACHE: usize = 256 << 10;

/// A policy ready to apply.
#[derive(Clone, Debug, Default)]
pub struct Compiled {
    rules: Vec<Rule>,
    header: NameRules,
    cookie: NameRules,
    query: NameRules,
    json_key: NameRules,
    form: NameRules,
    json_paths: Vec<(usize, JsonPath)>,
    detectors: Detectors,
    /// The rule of the card detector, if any (JSON numbers are checked against it).
    card_rule: Option<usize>,
    grpc: Vec<(usize, Option<Regex>)>,
    paths: Vec<(usize, Regex)>,
}

fn compile(policy: &Policy) -> Result<Compiled, PolicyError> {
    policy.validate()?;
    let mut c = Compiled { rules: policy.rules.clone(), header: NameRules::for_headers(), ..Compiled::default() };
    let re = |r: &Rule, src: &str| {
        regex::bytes::RegexBuilder::new(src)
            .size_limit(1 << 22)
            .dfa_size_limit(REGEX_CACHE)
            .build()
            .map_err(|e| PolicyError::Rule { rule: r.name.clone(), message: e.to_string() })
    };
    for (i, r) in policy.rules.iter().enumerate() {
        match r.target {
            Target::Header => c.header.push(i, r)?,
            Target::Cookie => c.cookie.push(i, r)?,
            Target::Query => c.query.push(i, r)?,
            Target::JsonKey => c.json_key.push(i, r)?,
            Target::Form => c.form.push(i, r)?,
            Target::JsonPath => {
                for p in &r.paths {
                    let path =
                        JsonPath::parse(p).map_err(|m| PolicyError::Rule { rule: r.name.clone(), message: m })?;
                    c.json_paths.push((i, path));
                }
            }
            Target::Detector => {
                let kind = r.detector.unwrap_or(DetectorKind::Regex);
                let d = Detector::new(kind, r.regex.as_deref())
                    .map_err(|e| PolicyError::Rule { rule: r.name.clone(), message: e.to_string() })?;
                if kind == DetectorKind::Card && c.card_rule.is_none() {
                    c.card_rule = Some(i);
                }
                c.detectors.push(i, d);
            }
            Target::Grpc => {
                let alt = (!r.patterns.is_empty()).then(|| r.patterns.join("|"));
                c.grpc.push((i, alt.map(|a| re(r, &a)).transpose()?));
            }
            Target::Path => c.paths.push((i, re(r, &r.patterns.join("|"))?)),
        }
    }
    Ok(c)
}

/// Applies a policy to exchanges. Cheap to clone; build one per writer thread.
#[derive(Clone, Debug)]
pub struct Masker {
    c: Compiled,
    policy: Policy,
    hasher: Option<Hasher>,
    /// Where the key came from (shown at start; never the key).
    key_origin: Option<KeyOrigin>,
    max_decoded: usize,
    stats: MaskStats,
    /// Exchanges in which each rule fired, by rule index.
    per_rule: Vec<u64>,
    /// Rules fired in the current exchange.
    fired: Vec<bool>,
    /// Header-name lists seen last on each connection.
    lists: ListMemo,
}

impl Masker {
    /// A masker for `policy`. A policy with a `hash` rule needs `key`.
    pub fn new(policy: Policy, key: Option<&MaskKey>) -> Result<Masker, PolicyError> {
        if let (Some(rule), None) = (policy.first_hash_rule(), key) {
            return Err(PolicyError::NoKey(rule.to_string()));
        }
        let c = compile(&policy)?;
        let n = policy.rules.len();
        Ok(Masker {
            c,
            policy,
            hasher: key.map(Hasher::new),
            key_origin: None,
            max_decoded: DEFAULT_MAX_DECODED,
            stats: MaskStats::default(),
            per_rule: vec![0; n],
            fired: vec![false; n],
            lists: ListMemo::default(),
        })
    }

    /// Sets the cap on the decoded size of one body.
    pub fn with_max_decoded(mut self, bytes: usize) -> Self {
        self.max_decoded = bytes.max(1);
        self
    }

    /// Where the key came from, when [`setup`] found or created one.
    pub fn key_origin(&self) -> Option<&KeyOrigin> {
        self.key_origin.as_ref()
    }

    /// The policy applied.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The policy's fingerprint (recorded in segment headers).
    pub fn fingerprint(&self) -> [u8; 32] {
        self.policy.fingerprint()
    }

    /// The counters so far.
    pub fn stats(&self) -> MaskStats {
        let mut s = self.stats.clone();
        for (r, n) in self.policy.rules.iter().zip(&self.per_rule) {
            if *n > 0 {
                s.by_rule.insert(r.name.clone(), *n);
            }
        }
        s
    }

    /// Masks every exchange of a batch and removes those a `drop_exchange` rule dropped.
    pub fn mask_batch(&mut self, batch: &mut Vec<Exchange>) {
        self.mask_tail(batch, 0);
    }

    /// Masks the exchanges of `batch[from..]` and removes those a `drop_exchange` rule dropped (in order);
    /// `batch[..from]` is left alone.
    pub fn mask_tail(&mut self, batch: &mut Vec<Exchange>, from: usize) {
        let mut kept = from;
        for i in from..batch.len() {
            if self.mask(&mut batch[i]) {
                // An exchange is a large struct: no swap with itself (the usual case, nothing dropped).
                if kept != i {
                    batch.swap(kept, i);
                }
                kept += 1;
            }
        }
        batch.truncate(kept);
    }

    /// Runs `f` with the state of masking one exchange (tests of the parts).
    #[cfg(test)]
    pub(crate) fn with_ctx<R>(&mut self, f: impl FnOnce(&mut Ctx<'_>) -> R) -> R {
        let mut fired = std::mem::take(&mut self.fired);
        let mut ctx =
            Ctx::new(&self.c, self.hasher.as_ref(), &mut fired, &mut self.stats, &mut self.lists, self.max_decoded);
        let r = f(&mut ctx);
        fired.iter_mut().for_each(|f| *f = false);
        self.fired = fired;
        r
    }

    /// Masks one exchange in place. Returns false when the exchange must not be written.
    pub fn mask(&mut self, ex: &mut Exchange) -> bool {
        self.stats.exchanges_seen += 1;
        let mut fired = std::mem::take(&mut self.fired);
        let mut ctx =
            Ctx::new(&self.c, self.hasher.as_ref(), &mut fired, &mut self.stats, &mut self.lists, self.max_decoded);
        let keep = ctx.exchange(ex);
        let any = ctx.any;
        let notes = std::mem::take(&mut ctx.notes);
        drop(ctx);
        if any {
            let mut names: Vec<String> = Vec::new();
            for (i, f) in fired.iter_mut().enumerate() {
                if *f {
                    *f = false;
                    self.per_rule[i] += 1;
                    names.push(self.policy.rules[i].name.clone());
                }
            }
            names.extend(notes);
            names.sort();
            names.dedup();
            ex.masked_by = names;
            ex.flags.insert(Flags::MASKED);
            self.stats.exchanges_masked += 1;
        }
        self.fired = fired;
        if !keep {
            self.stats.exchanges_dropped += 1;
        }
        keep
    }
}

/// The masker the agent's flags describe: the default policy unless `default_on` is false, extended or replaced by
/// the policy file, keyed by the key file (created when missing), else the `TAPEDECK_MASK_KEY` environment
/// variable, else, when a rule hashes, the default key file (created on first start; see [`keyfile`]). None when
/// no rule is left (masking off).
pub fn setup(
    policy_file: Option<&std::path::Path>,
    default_on: bool,
    key_file: Option<&std::path::Path>,
) -> Result<Option<Masker>, PolicyError> {
    let file = match policy_file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| PolicyError::Parse { path: p.display().to_string(), message: e.to_string() })?;
            Some(Policy::parse_file(&p.display().to_string(), &text)?)
        }
        None => None,
    };
    let policy = Policy::build(default_on, file)?;
    if policy.rules.is_empty() {
        return Ok(None);
    }
    let (key, origin) = keyfile::resolve(key_file, policy.first_hash_rule().is_some())?.unzip();
    let mut m = Masker::new(policy, key.as_ref())?;
    m.key_origin = origin;
    Ok(Some(m))
}

/// What `agent --print-masking` prints: the effective rules as a policy file, with the fingerprint and whether a
/// key is set in comments.
pub fn describe(masker: Option<&Masker>) -> String {
    match masker {
        None => "# masking is off (--no-default-masking and no --mask-policy): exchanges are written as seen\n".into(),
        Some(m) => format!(
            "# effective masking policy\n# fingerprint (sha256, in segment headers): {}\n# hash key: {}\n{}",
            policy::hex(&m.fingerprint()),
            match (&m.hasher, &m.key_origin) {
                (Some(_), Some(origin)) => format!("set ({origin})"),
                (Some(_), None) => "set".into(),
                _ => "not set".into(),
            },
            m.policy.to_toml()
        ),
    }
}

/// The state of masking one exchange.
pub struct Ctx<'a> {
    c: &'a Compiled,
    hasher: Option<&'a Hasher>,
    fired: &'a mut Vec<bool>,
    any: bool,
    /// A rule with `drop_body` fired in the current message.
    drop_body: bool,
    drop_exchange: bool,
    stats: &'a mut MaskStats,
    lists: &'a mut ListMemo,
    scratch: Vec<(usize, usize)>,
    max_decoded: usize,
    notes: Vec<String>,
}

impl<'a> Ctx<'a> {
    /// The state of masking one exchange: nothing fired yet.
    fn new(
        c: &'a Compiled,
        hasher: Option<&'a Hasher>,
        fired: &'a mut Vec<bool>,
        stats: &'a mut MaskStats,
        lists: &'a mut ListMemo,
        max_decoded: usize,
    ) -> Self {
        Ctx {
            c,
            hasher,
            fired,
            any: false,
            drop_body: false,
            drop_exchange: false,
            stats,
            lists,
            scratch: Vec::new(),
            max_decoded,
            notes: Vec::new(),
        }
    }
}

/// How a body is looked at, from its content type.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Json,
    Form,
    Multipart(Option<Vec<u8>>),
    /// Text, or no content type (JSON is tried when it looks like JSON).
    Text {
        sniff: bool,
    },
    Grpc,
    Binary,
}

fn kind_of(content_type: Option<&[u8]>) -> Kind {
    let Some(ct) = content_type else { return Kind::Text { sniff: true } };
    let media = ct.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
    let starts = |prefix: &[u8]| media.get(..prefix.len()).is_some_and(|m| m.eq_ignore_ascii_case(prefix));
    // The two commonest answers without copying.
    if starts(b"text/") {
        return Kind::Text { sniff: true };
    }
    if starts(b"application/grpc") {
        return Kind::Grpc;
    }
    // Lower-cased on the stack (media types are short; a longer one is cut, which only matters for odd types).
    let mut buf = [0u8; 96];
    let n = media.len().min(buf.len());
    for (d, s) in buf.iter_mut().zip(&media[..n]) {
        *d = s.to_ascii_lowercase();
    }
    let media = &buf[..n];
    let has = |s: &[u8]| memchr::memmem::find(media, s).is_some();
    if media.starts_with(b"application/grpc") {
        Kind::Grpc
    } else if media.starts_with(b"text/") {
        Kind::Text { sniff: true }
    } else if has(b"json") {
        Kind::Json
    } else if media == b"application/x-www-form-urlencoded" {
        Kind::Form
    } else if media.starts_with(b"multipart/") {
        Kind::Multipart(form::boundary(ct))
    } else if media.is_empty() {
        Kind::Text { sniff: true }
    } else if has(b"xml") || has(b"javascript") || has(b"graphql") || has(b"yaml") || has(b"csv") {
        Kind::Text { sniff: false }
    } else {
        Kind::Binary
    }
}

fn header<'h>(headers: &'h [Header], name: &str) -> Option<&'h [u8]> {
    headers.iter().find(|h| h.name.eq_ignore_ascii_case(name.as_bytes())).map(|h| h.value.as_slice())
}

/// `<scheme> <credentials>` of an authorization value: the scheme a token (RFC 9110 `tchar`s), then blanks, then
/// non-empty credentials (trailing blanks not included). None for any other form.
fn split_scheme(value: &[u8]) -> Option<(&[u8], &[u8])> {
    let tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    let scheme_len = value.iter().take_while(|b| tchar(b)).count();
    let rest = &value[scheme_len..];
    let credentials = rest.trim_ascii();
    if scheme_len == 0 || rest.first().is_none_or(|b| !matches!(b, b' ' | b'\t')) || credentials.is_empty() {
        return None;
    }
    Some((&value[..scheme_len], credentials))
}

/// Replaces byte ranges of `src` (sorted, not overlapping).
pub fn splice(src: &[u8], edits: &[(usize, usize, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len() + 16 * edits.len());
    let mut at = 0;
    for (start, end, with) in edits {
        out.extend_from_slice(&src[at..*start]);
        out.extend_from_slice(with);
        at = *end;
    }
    out.extend_from_slice(&src[at..]);
    out
}

impl Ctx<'_> {
    /// Records that `rule` fired on one value.
    fn fire(&mut self, rule: usize) -> Action {
        self.fired[rule] = true;
        self.any = true;
        self.stats.values_masked += 1;
        let action = self.c.rules[rule].action;
        match action {
            Action::DropBody => self.drop_body = true,
            Action::DropExchange => self.drop_exchange = true,
            Action::Redact | Action::Hash => {}
        }
        action
    }

    /// What replaces `value` under `rule`: the token for `hash`, the marker otherwise.
    pub fn replace(&mut self, rule: usize, value: &[u8]) -> Vec<u8> {
        match (self.fire(rule), self.hasher) {
            (Action::Hash, Some(h)) => h.token(value).into_bytes(),
            _ => REDACTED.as_bytes().to_vec(),
        }
    }

    /// What replaces the value of header field `name` under `rule`: as [`Ctx::replace`], except that a hashed
    /// `Authorization` or `Proxy-Authorization` value of the form `<scheme> <credentials>` keeps its scheme word
    /// (`Bearer tdk_...`, `Basic tdk_...`): the token is that of the credentials alone, so a bearer token gets
    /// the same token here as where a detector or a query rule finds it bare.
    pub fn replace_header(&mut self, rule: usize, name: &[u8], value: &[u8]) -> Vec<u8> {
        let keeps_scheme =
            |n: &[u8]| n.eq_ignore_ascii_case(b"authorization") || n.eq_ignore_ascii_case(b"proxy-authorization");
        if self.c.rules[rule].action == Action::Hash
            && self.hasher.is_some()
            && keeps_scheme(name)
            && let Some((scheme, credentials)) = split_scheme(value)
        {
            let mut out = Vec::with_capacity(scheme.len() + 1 + 20);
            out.extend_from_slice(scheme);
            out.push(b' ');
            out.extend(self.replace(rule, credentials));
            return out;
        }
        self.replace(rule, value)
    }

    /// The hash token of `value` under `rule` if it hashes, else None (the caller writes its typed marker).
    fn token_for(&mut self, rule: usize, value: &[u8]) -> Option<String> {
        match (self.fire(rule), self.hasher) {
            (Action::Hash, Some(h)) => Some(h.token(value)),
            _ => None,
        }
    }

    /// `text` with every detector hit replaced, or None when nothing was found.
    #[inline]
    pub fn mask_text(&mut self, text: &[u8]) -> Option<Vec<u8>> {
        // Inlined: most header values are shorter than any detector's shortest find, and cost no call; most of
        // the others fail a detector's necessary condition (a card needs 13 digits), one call and no scan.
        if self.c.detectors.too_short(text.len()) || !self.c.detectors.may_find(text) {
            return None;
        }
        self.scan_and_mask(text)
    }

    fn scan_and_mask(&mut self, text: &[u8]) -> Option<Vec<u8>> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let hits = self.c.detectors.scan(text, &mut scratch);
        self.scratch = scratch;
        if hits.is_empty() {
            return None;
        }
        let edits: Vec<(usize, usize, Vec<u8>)> =
            hits.iter().map(|h| (h.start, h.end, self.replace(h.rule, &text[h.start..h.end]))).collect();
        Some(splice(text, &edits))
    }

    /// Whether a detector finds anything in `text` (nothing is replaced, no rule fires).
    pub fn mask_text_would_change(&mut self, text: &[u8]) -> bool {
        if !self.c.detectors.may_find(text) {
            return false;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let hit = !self.c.detectors.scan(text, &mut scratch).is_empty();
        self.scratch = scratch;
        hit
    }

    fn exchange(&mut self, ex: &mut Exchange) -> bool {
        let path = ex.request.as_ref().map(|r| r.path.as_slice()).unwrap_or_default();
        let mut drop_bodies = false;
        for (rule, re) in &self.c.paths {
            if re.is_match(path) {
                drop_bodies |= self.fire(*rule) == Action::DropBody;
            }
        }
        if !self.c.grpc.is_empty() {
            let is_grpc =
                |hs: &[Header]| header(hs, "content-type").is_some_and(|v| v.starts_with(b"application/grpc"));
            let grpc = ex.request.as_ref().is_some_and(|r| is_grpc(&r.headers))
                || ex.response.as_ref().is_some_and(|r| is_grpc(&r.headers));
            if grpc {
                for (rule, re) in &self.c.grpc {
                    if re.as_ref().is_none_or(|re| re.is_match(path)) {
                        drop_bodies |= self.fire(*rule) == Action::DropBody;
                    }
                }
            }
        }
        if self.drop_exchange {
            return false;
        }
        if let Some(req) = &mut ex.request {
            query::mask_target(self, &mut req.path);
            let list = (ex.connection_id, Side::Request);
            self.message(list, &mut req.headers, &mut req.trailers, &mut req.body, &mut ex.flags, drop_bodies);
        }
        if let Some(resp) = &mut ex.response {
            for interim in &mut resp.interim {
                headers::mask_headers(self, &mut interim.headers, None);
            }
            let list = (ex.connection_id, Side::Response);
            self.message(list, &mut resp.headers, &mut resp.trailers, &mut resp.body, &mut ex.flags, drop_bodies);
        }
        !self.drop_exchange
    }

    fn message(
        &mut self,
        list: (u64, Side),
        hs: &mut Vec<Header>,
        trailers: &mut [Header],
        body: &mut Body,
        flags: &mut Flags,
        force_drop: bool,
    ) {
        self.drop_body = false;
        let side = match list.1 {
            Side::Request => "request",
            Side::Response => "response",
        };
        let fields = headers::mask_headers(self, hs, Some(list));
        headers::mask_headers(self, trailers, None);
        if !force_drop && !self.drop_body {
            self.body(side, hs, fields, body, flags);
        }
        if (force_drop || self.drop_body) && !body.bytes.is_empty() {
            body.bytes = Vec::new();
            self.stats.bodies_dropped += 1;
            self.notes.push(format!("@{side}-body:dropped"));
        }
        self.drop_body = false;
    }

    fn body(&mut self, side: &str, hs: &mut Vec<Header>, fields: Fields, body: &mut Body, flags: &mut Flags) {
        if body.bytes.is_empty() {
            return;
        }
        let value = |at: Option<usize>| at.and_then(|i| hs.get(i)).map(|h| h.value.as_slice());
        let kind = kind_of(value(fields.content_type));
        match kind {
            Kind::Grpc => {
                self.stats.bodies_skipped_grpc += 1;
                return;
            }
            Kind::Binary => {
                self.stats.bodies_skipped_binary += 1;
                return;
            }
            _ => {}
        }
        let coding = value(fields.content_encoding).map_or(Coding::Identity, Coding::from_header);
        let cut = (body.bytes.len() as u64) < body.full_len;
        if coding == Coding::Identity {
            if let Some(new) = self.content(&kind, &body.bytes) {
                if !cut {
                    body.full_len = new.len() as u64;
                }
                body.bytes = new;
            }
            return;
        }
        let (decoded, form) = codec::decode(coding, &body.bytes, self.max_decoded);
        let (plain, whole) = match decoded {
            Decoded::Whole(p) => (p, true),
            Decoded::Partial(p) => (p, false),
            Decoded::OverCap(p) => {
                self.stats.decode_over_cap += 1;
                flags.insert(Flags::TRUNCATED);
                (p, false)
            }
            Decoded::Failed => {
                // Not decodable: the detectors over the bytes as stored are all that can be done.
                self.stats.decode_failures += 1;
                if let Some(new) = self.mask_text(&body.bytes) {
                    body.bytes = new;
                }
                return;
            }
        };
        self.stats.bodies_decoded += 1;
        let masked = self.content(&kind, &plain);
        if masked.is_none() && whole {
            return;
        }
        // Something changed, or the decoded body is a prefix whose rest could not be looked at: in both cases
        // the stored body must not be the original encoded bytes.
        let plain = masked.unwrap_or(plain);
        if whole
            && !cut
            && let Ok(enc) = codec::encode(coding, form, &plain)
        {
            body.full_len = enc.len() as u64;
            body.bytes = enc;
            self.stats.bodies_reencoded += 1;
            self.notes.push(format!("@{side}-body:re-encoded:{}", coding.name()));
            return;
        }
        body.bytes = plain;
        hs.retain(|h| !h.name.eq_ignore_ascii_case(b"content-encoding"));
        self.stats.bodies_stored_decoded += 1;
        self.notes.push(format!("@{side}-body:stored-decoded:{}", coding.name()));
        self.any = true;
    }

    /// Masks decoded body bytes by kind; None when unchanged.
    fn content(&mut self, kind: &Kind, bytes: &[u8]) -> Option<Vec<u8>> {
        match kind {
            Kind::Json => json::mask_json_body(self, bytes, true),
            Kind::Form => query::mask_pairs(self, bytes, Which::Form),
            Kind::Multipart(Some(b)) => form::mask_multipart(self, bytes, b),
            Kind::Multipart(None) => {
                self.stats.multipart_parse_failures += 1;
                self.mask_text(bytes)
            }
            Kind::Text { sniff: true } if json::looks_like_json(bytes) => json::mask_json_body(self, bytes, false),
            Kind::Text { .. } => self.mask_text(bytes),
            Kind::Grpc | Kind::Binary => None,
        }
    }

    fn names(&self, which: Which) -> &NameRules {
        match which {
            Which::Query => &self.c.query,
            Which::Form => &self.c.form,
        }
    }
}

/// Which by-name rules apply to urlencoded pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// Query parameters.
    Query,
    /// Form fields.
    Form,
}

#[cfg(test)]
mod tests;
