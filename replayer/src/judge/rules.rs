//! Comparison rules: which headers are compared, which are ignored, which JSON paths are ignored or matched
//! loosely (numeric tolerance, regex, presence), and which text is ignored; global and per endpoint (method plus
//! path pattern). Read from a TOML file (`--rules FILE`, unknown keys are errors naming the file and the key) and
//! from command-line shortcuts (`--ignore-header`, `--ignore-json`, `--header`).
//!
//! ```toml
//! headers = ["content-type", "cache-control"]   # compared headers ("*": all but the ignored ones)
//! ignore_headers = ["date"]
//! ignore_json = ["$.meta.generatedAt", "$..traceId"]
//! ignore_text = ['\d{4}-\d\d-\d\dT[0-9:.]+Z']   # regexes blanked out of text bodies
//! numeric_tolerance = 0.0                        # absolute, for every JSON number
//!
//! [[matcher]]
//! path = "$.id"
//! regex = '^[0-9a-f-]{36}$'                      # the live value must match; the recorded one is not compared
//!
//! [[endpoint]]
//! method = "GET"                                  # optional: any method
//! path = "/orders/*"                              # `*` one segment, `**` any number
//! ignore_json = ["$.items[*].updatedAt"]
//! [[endpoint.matcher]]
//! path = "$.total"
//! tolerance = 0.01                                # or relative_tolerance = 0.001, or present = true
//! ```

use std::path::Path;

use regex::Regex;
use serde::Deserialize;

use super::jsonpath::{Elem, PathPattern};

/// Headers compared when no rule says otherwise.
pub const DEFAULT_HEADERS: &[&str] = &["content-type"];

/// Headers never compared under `headers = ["*"]`: they differ between any two responses.
pub const ALWAYS_IGNORED: &[&str] =
    &["date", "content-length", "transfer-encoding", "connection", "keep-alive", "x-tapedeck-mock"];

/// The file and each `[[endpoint]]` share one shape (serde's `flatten` cannot be combined with
/// `deny_unknown_fields`); `method`/`path` are for endpoints only and `endpoint` for the top level only.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetSpec {
    method: Option<String>,
    path: Option<String>,
    headers: Option<Vec<String>>,
    #[serde(default)]
    ignore_headers: Vec<String>,
    #[serde(default)]
    ignore_json: Vec<String>,
    #[serde(default)]
    ignore_text: Vec<String>,
    numeric_tolerance: Option<f64>,
    ignore_status: Option<bool>,
    #[serde(default, rename = "matcher")]
    matchers: Vec<MatcherSpec>,
    #[serde(default, rename = "endpoint")]
    endpoints: Vec<SetSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatcherSpec {
    path: String,
    regex: Option<String>,
    present: Option<bool>,
    tolerance: Option<f64>,
    relative_tolerance: Option<f64>,
}

/// How a matched JSON value is judged instead of by equality.
#[derive(Clone, Debug)]
pub enum Check {
    /// The live string (or number as text) must match.
    Regex(Regex),
    /// The value must be present (any value).
    Present,
    /// Numbers may differ by this much.
    Tolerance(f64),
    /// Numbers may differ by this fraction of the recorded value.
    Relative(f64),
}

/// A matcher: a path pattern and its check.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// Where.
    pub path: PathPattern,
    /// How.
    pub check: Check,
}

/// One set of rules (global, or one endpoint's).
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    /// Compared headers (lower case); `None`: inherit (global default [`DEFAULT_HEADERS`]); `"*"`: all.
    pub headers: Option<Vec<String>>,
    /// Ignored headers (lower case).
    pub ignore_headers: Vec<String>,
    /// Ignored JSON paths.
    pub ignore_json: Vec<PathPattern>,
    /// Regexes blanked out of text bodies.
    pub ignore_text: Vec<Regex>,
    /// Absolute tolerance for every number.
    pub numeric_tolerance: Option<f64>,
    /// Do not compare the status.
    pub ignore_status: Option<bool>,
    /// Matchers.
    pub matchers: Vec<Matcher>,
}

/// An endpoint selector: method (or any) and a path glob.
#[derive(Clone, Debug)]
pub struct EndpointMatch {
    /// Upper-case method, or `None` for any.
    pub method: Option<String>,
    /// The glob as written.
    pub pattern: String,
    segs: Vec<String>,
}

impl EndpointMatch {
    /// Parses `path` (`/orders/*/items`, `/static/**`).
    pub fn new(method: Option<&str>, path: &str) -> Result<EndpointMatch, String> {
        if !path.starts_with('/') {
            return Err(format!("path pattern '{path}' must start with '/'"));
        }
        let segs = path.split('/').skip(1).map(str::to_string).collect();
        Ok(EndpointMatch {
            method: method.filter(|m| *m != "*").map(|m| m.to_ascii_uppercase()),
            pattern: path.to_string(),
            segs,
        })
    }

    /// Whether a request matches (`path` without the query).
    pub fn matches(&self, method: &str, path: &str) -> bool {
        if self.method.as_deref().is_some_and(|m| !m.eq_ignore_ascii_case(method)) {
            return false;
        }
        let parts: Vec<&str> = path.split('/').skip(1).collect();
        glob(&self.segs, &parts)
    }
}

fn glob(pat: &[String], parts: &[&str]) -> bool {
    // dp over segments; `**` matches any number of parts.
    let n = parts.len();
    let mut dp = vec![false; n + 1];
    dp[0] = true;
    for p in pat {
        let mut next = vec![false; n + 1];
        for j in 0..=n {
            next[j] = if p == "**" {
                dp[j] || (j > 0 && next[j - 1])
            } else {
                j > 0 && dp[j - 1] && (p == "*" || p == parts[j - 1])
            };
        }
        dp = next;
    }
    dp[n]
}

/// All rules: global and per endpoint (first matching endpoint wins).
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// Global rules.
    pub global: RuleSet,
    /// Endpoint rules.
    pub endpoints: Vec<(EndpointMatch, RuleSet)>,
}

/// The rules in force for one request.
#[derive(Debug)]
pub struct Effective<'a> {
    /// Compared headers; empty with `all` set means every header.
    pub headers: Vec<&'a str>,
    /// Compare every header but the ignored ones.
    pub all_headers: bool,
    /// Ignored headers.
    pub ignore_headers: Vec<&'a str>,
    /// Ignored JSON paths.
    pub ignore_json: Vec<&'a PathPattern>,
    /// Text regexes.
    pub ignore_text: Vec<&'a Regex>,
    /// Number tolerance.
    pub numeric_tolerance: f64,
    /// Status not compared.
    pub ignore_status: bool,
    /// Matchers, endpoint ones first.
    pub matchers: Vec<&'a Matcher>,
}

impl Effective<'_> {
    /// Whether a JSON path is ignored.
    pub fn ignored(&self, path: &[Elem]) -> bool {
        self.ignore_json.iter().any(|p| p.matches(path))
    }

    /// The first matcher for a path.
    pub fn matcher(&self, path: &[Elem]) -> Option<&Matcher> {
        self.matchers.iter().copied().find(|m| m.path.matches(path))
    }

    /// Whether the header (lower case) is compared.
    pub fn compares_header(&self, name: &str) -> bool {
        if self.ignore_headers.contains(&name) {
            return false;
        }
        if self.all_headers { !ALWAYS_IGNORED.contains(&name) } else { self.headers.contains(&name) }
    }
}

impl Rules {
    /// Reads a rules file; errors name the file and the key.
    pub fn from_file(path: &Path) -> Result<Rules, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Rules::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses rules from TOML text; errors name the key.
    pub fn from_toml(text: &str) -> Result<Rules, String> {
        let mut spec: SetSpec = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        if spec.method.is_some() || spec.path.is_some() {
            return Err("method/path: only allowed inside [[endpoint]]".into());
        }
        let eps = std::mem::take(&mut spec.endpoints);
        let global = compile(spec, "")?;
        let mut endpoints = Vec::new();
        for (i, mut ep) in eps.into_iter().enumerate() {
            let at = format!("endpoint[{i}]");
            if !ep.endpoints.is_empty() {
                return Err(format!("{at}.endpoint: endpoints do not nest"));
            }
            let path = ep.path.take().ok_or_else(|| format!("{at}.path: missing (e.g. path = \"/orders/*\")"))?;
            let m = EndpointMatch::new(ep.method.as_deref(), &path).map_err(|e| format!("{at}.path: {e}"))?;
            endpoints.push((m, compile(ep, &format!("{at}."))?));
        }
        Ok(Rules { global, endpoints })
    }

    /// Adds command-line shortcuts to the global rules.
    pub fn add_shortcuts(
        &mut self,
        headers: &[String],
        ignore_headers: &[String],
        ignore_json: &[String],
    ) -> Result<(), String> {
        if !headers.is_empty() {
            let list =
                self.global.headers.get_or_insert_with(|| DEFAULT_HEADERS.iter().map(|s| s.to_string()).collect());
            list.extend(headers.iter().map(|h| h.to_ascii_lowercase()));
        }
        self.global.ignore_headers.extend(ignore_headers.iter().map(|h| h.to_ascii_lowercase()));
        for p in ignore_json {
            self.global.ignore_json.push(PathPattern::parse(p).map_err(|e| format!("--ignore-json: {e}"))?);
        }
        Ok(())
    }

    /// The endpoint a request is reported under: the first `[[endpoint]]` whose pattern matches
    /// (`GET /orders/*`), else the method and the path with numeric and long hex/UUID segments replaced
    /// (`GET /orders/{n}`, `GET /keys/{id}`), so that ids do not make an endpoint each.
    pub fn endpoint_name(&self, method: &str, path: &str) -> String {
        if let Some((m, _)) = self.endpoints.iter().find(|(m, _)| m.matches(method, path)) {
            return format!("{method} {}", m.pattern);
        }
        let segs: Vec<&str> = path
            .split('/')
            .map(|seg| {
                let digits = seg.bytes().filter(u8::is_ascii_digit).count();
                if !seg.is_empty() && digits == seg.len() {
                    "{n}"
                } else if seg.len() >= 8 && digits > 0 && seg.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
                    "{id}"
                } else {
                    seg
                }
            })
            .collect();
        format!("{method} {}", segs.join("/"))
    }

    /// The rules for one request (`path` without query).
    pub fn for_request(&self, method: &str, path: &str) -> Effective<'_> {
        let ep = self.endpoints.iter().find(|(m, _)| m.matches(method, path)).map(|(_, s)| s);
        let g = &self.global;
        let headers_src = ep.and_then(|e| e.headers.as_ref()).or(g.headers.as_ref());
        let headers: Vec<&str> = match headers_src {
            Some(h) => h.iter().map(String::as_str).collect(),
            None => DEFAULT_HEADERS.to_vec(),
        };
        let all_headers = headers.contains(&"*");
        let sets: Vec<&RuleSet> = ep.into_iter().chain(std::iter::once(g)).collect();
        Effective {
            headers,
            all_headers,
            ignore_headers: sets.iter().flat_map(|s| s.ignore_headers.iter().map(String::as_str)).collect(),
            ignore_json: sets.iter().flat_map(|s| s.ignore_json.iter()).collect(),
            ignore_text: sets.iter().flat_map(|s| s.ignore_text.iter()).collect(),
            numeric_tolerance: sets.iter().find_map(|s| s.numeric_tolerance).unwrap_or(0.0),
            ignore_status: sets.iter().find_map(|s| s.ignore_status).unwrap_or(false),
            matchers: sets.iter().flat_map(|s| s.matchers.iter()).collect(),
        }
    }
}

fn compile(s: SetSpec, at: &str) -> Result<RuleSet, String> {
    let lower = |v: Vec<String>| v.into_iter().map(|h| h.to_ascii_lowercase()).collect::<Vec<_>>();
    let mut ignore_json = Vec::new();
    for (i, p) in s.ignore_json.iter().enumerate() {
        ignore_json.push(PathPattern::parse(p).map_err(|e| format!("{at}ignore_json[{i}]: {e}"))?);
    }
    let mut ignore_text = Vec::new();
    for (i, r) in s.ignore_text.iter().enumerate() {
        ignore_text.push(Regex::new(r).map_err(|e| format!("{at}ignore_text[{i}]: '{r}' is not a valid regex: {e}"))?);
    }
    if let Some(t) = s.numeric_tolerance
        && !(t >= 0.0 && t.is_finite())
    {
        return Err(format!("{at}numeric_tolerance: {t} must be a finite number >= 0"));
    }
    let mut matchers = Vec::new();
    for (i, m) in s.matchers.into_iter().enumerate() {
        let key = format!("{at}matcher[{i}]");
        let path = PathPattern::parse(&m.path).map_err(|e| format!("{key}.path: {e}"))?;
        let mut checks = Vec::new();
        if let Some(r) = &m.regex {
            checks.push(Check::Regex(
                Regex::new(r).map_err(|e| format!("{key}.regex: '{r}' is not a valid regex: {e}"))?,
            ));
        }
        if let Some(p) = m.present {
            if !p {
                return Err(format!("{key}.present: only `present = true` is supported"));
            }
            checks.push(Check::Present);
        }
        for (name, v, mk) in [
            ("tolerance", m.tolerance, Check::Tolerance as fn(f64) -> Check),
            ("relative_tolerance", m.relative_tolerance, Check::Relative as fn(f64) -> Check),
        ] {
            if let Some(t) = v {
                if !(t >= 0.0 && t.is_finite()) {
                    return Err(format!("{key}.{name}: {t} must be a finite number >= 0"));
                }
                checks.push(mk(t));
            }
        }
        match checks.len() {
            1 => matchers.push(Matcher { path, check: checks.remove(0) }),
            0 => {
                return Err(format!("{key}: needs one of regex, present, tolerance, relative_tolerance"));
            }
            _ => return Err(format!("{key}: give only one of regex, present, tolerance, relative_tolerance")),
        }
    }
    Ok(RuleSet {
        headers: s.headers.map(lower),
        ignore_headers: lower(s.ignore_headers),
        ignore_json,
        ignore_text,
        numeric_tolerance: s.numeric_tolerance,
        ignore_status: s.ignore_status,
        matchers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
headers = ["Content-Type", "Cache-Control"]
ignore_headers = ["Date"]
ignore_json = ["$.meta.at"]
numeric_tolerance = 0.5

[[matcher]]
path = "$.id"
regex = '^\d+$'

[[endpoint]]
method = "get"
path = "/orders/*"
ignore_json = ["$.items[*].updatedAt"]
[[endpoint.matcher]]
path = "$.total"
tolerance = 0.01
"#;

    #[test]
    fn a_full_file_compiles_and_merges() {
        let r = Rules::from_toml(FILE).unwrap();
        let e = r.for_request("GET", "/orders/17");
        assert!(e.compares_header("cache-control") && !e.compares_header("date") && !e.compares_header("server"));
        assert_eq!(e.ignore_json.len(), 2);
        assert_eq!(e.numeric_tolerance, 0.5);
        let total = [Elem::Key("total".into())];
        assert!(matches!(e.matcher(&total).map(|m| &m.check), Some(Check::Tolerance(t)) if *t == 0.01));
        assert!(e.matcher(&[Elem::Key("id".into())]).is_some(), "global matchers apply too");
        let other = r.for_request("POST", "/orders/17");
        assert_eq!(other.ignore_json.len(), 1, "method differs: only the global rules");
        assert!(r.for_request("GET", "/orders/17/x").matcher(&total).is_none());
    }

    #[test]
    fn unknown_keys_are_named() {
        for (text, key) in [
            ("ignore_header = [\"x\"]", "ignore_header"),
            ("[[endpoint]]\npath = \"/\"\nbogus = 1", "bogus"),
            ("[[matcher]]\npath = \"$.a\"\nregexp = \"x\"", "regexp"),
        ] {
            let e = Rules::from_toml(text).unwrap_err();
            assert!(e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn bad_values_are_named_by_key() {
        for (text, key) in [
            ("ignore_json = [\"$.ok\", \"nope\"]", "ignore_json[1]"),
            ("[[endpoint]]\npath = \"/\"\n[[endpoint.matcher]]\npath = \"$.a\"", "endpoint[0].matcher[0]"),
            ("[[matcher]]\npath = \"$.a\"\nregex = \"(\"", "matcher[0].regex"),
            ("[[endpoint]]\npath = \"x\"", "endpoint[0].path"),
            ("numeric_tolerance = -1.0", "numeric_tolerance"),
        ] {
            let e = Rules::from_toml(text).unwrap_err();
            assert!(e.contains(key), "{text}: {e}");
        }
        let e = Rules::from_file(Path::new("/nonexistent/rules.toml")).unwrap_err();
        assert!(e.contains("/nonexistent/rules.toml"), "{e}");
    }

    #[test]
    fn every_prefix_of_a_file_parses_or_errs_without_panicking() {
        for end in 0..=FILE.len() {
            if FILE.is_char_boundary(end) {
                let _ = Rules::from_toml(&FILE[..end]);
            }
        }
        for bad in ["$..", "$[", "$['", "$.a[99999999999999999999]", "$..[*]..*"] {
            let _ = PathPattern::parse(bad);
        }
    }

    #[test]
    fn endpoint_names_group_ids() {
        let r = Rules::from_toml("[[endpoint]]\npath = \"/orders/*\"").unwrap();
        assert_eq!(r.endpoint_name("GET", "/orders/ord-17"), "GET /orders/*");
        assert_eq!(r.endpoint_name("GET", "/users/42/keys/9f86d081-884c-7d65"), "GET /users/{n}/keys/{id}");
        assert_eq!(r.endpoint_name("GET", "/v2/status"), "GET /v2/status");
        assert_eq!(r.endpoint_name("GET", "/"), "GET /");
    }

    #[test]
    fn endpoint_globs() {
        let m = EndpointMatch::new(None, "/static/**").unwrap();
        assert!(m.matches("GET", "/static/a/b.css") && m.matches("PUT", "/static"));
        assert!(!m.matches("GET", "/api/static"));
        let m = EndpointMatch::new(Some("POST"), "/a/*/c").unwrap();
        assert!(m.matches("post", "/a/b/c") && !m.matches("POST", "/a/b/d") && !m.matches("GET", "/a/b/c"));
    }

    #[test]
    fn shortcuts_add_to_the_global_rules() {
        let mut r = Rules::default();
        r.add_shortcuts(&["ETag".into()], &["Date".into()], &["$.id".into()]).unwrap();
        let e = r.for_request("GET", "/");
        assert!(e.compares_header("etag") && e.compares_header("content-type"));
        assert!(e.ignored(&[Elem::Key("id".into())]));
        assert!(r.add_shortcuts(&[], &[], &["id".into()]).unwrap_err().contains("--ignore-json"));
    }
}
