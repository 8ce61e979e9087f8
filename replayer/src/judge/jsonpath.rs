//! JSON paths: the patterns of rules (`$.items[*].updatedAt`, `$..id`, `$['a b']`) and the concrete paths of
//! values found while comparing (`$.items[3].updatedAt`), with matching between them.
//!
//! Pattern syntax: `$` then any of `.name`, `['name']`, `["name"]`, `[N]`, `[*]` (any index), `.*` (any key or
//! index) and `..` (any number of levels, including none) followed by a name or `*`. Matching is a dynamic
//! programme over pattern and path, so it is linear in their product whatever the pattern.

use std::fmt;

/// One step of a concrete path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Elem {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

/// One step of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
    AnyIndex,
    Any,
    Descend,
}

/// A compiled path pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
    segs: Vec<Seg>,
}

/// Most steps in one pattern.
pub const MAX_PATTERN_SEGS: usize = 64;

impl PathPattern {
    /// Parses a pattern; the error says what is wrong and where.
    pub fn parse(s: &str) -> Result<PathPattern, String> {
        let bad =
            |at: usize, what: &str| format!("'{s}' is not a JSON path: {what} at offset {at} (e.g. $.items[*].id)");
        let b = s.as_bytes();
        if b.first() != Some(&b'$') {
            return Err(bad(0, "must start with '$'"));
        }
        let mut segs = Vec::new();
        let mut i = 1;
        while i < b.len() {
            if segs.len() >= MAX_PATTERN_SEGS {
                return Err(bad(i, "too many steps"));
            }
            match b[i] {
                b'.' => {
                    let mut j = i + 1;
                    if b.get(j) == Some(&b'.') {
                        segs.push(Seg::Descend);
                        j += 1;
                    }
                    if b.get(j) == Some(&b'*') {
                        segs.push(Seg::Any);
                        i = j + 1;
                        continue;
                    }
                    if b.get(j) == Some(&b'[') {
                        if segs.last() == Some(&Seg::Descend) {
                            i = j;
                            continue;
                        }
                        return Err(bad(j, "'.' followed by '['"));
                    }
                    let start = j;
                    while j < b.len() && b[j] != b'.' && b[j] != b'[' {
                        j += 1;
                    }
                    if j == start {
                        return Err(bad(start, "empty name"));
                    }
                    segs.push(Seg::Key(s[start..j].to_string()));
                    i = j;
                }
                b'[' => {
                    let close = s[i..].find(']').map(|c| i + c).ok_or_else(|| bad(i, "unclosed '['"))?;
                    let inner = s[i + 1..close].trim();
                    let seg = if inner == "*" {
                        Seg::AnyIndex
                    } else if let Ok(n) = inner.parse::<usize>() {
                        Seg::Index(n)
                    } else if inner.len() >= 2
                        && ((inner.starts_with('\'') && inner.ends_with('\''))
                            || (inner.starts_with('"') && inner.ends_with('"')))
                    {
                        Seg::Key(inner[1..inner.len() - 1].to_string())
                    } else {
                        return Err(bad(i, "expected [N], [*] or ['name']"));
                    };
                    segs.push(seg);
                    i = close + 1;
                }
                _ => return Err(bad(i, "expected '.' or '['")),
            }
        }
        if segs.last() == Some(&Seg::Descend) {
            return Err(bad(b.len(), "'..' must be followed by a name or '*'"));
        }
        Ok(PathPattern { text: s.to_string(), segs })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the concrete `path` matches the whole pattern.
    pub fn matches(&self, path: &[Elem]) -> bool {
        let (m, n) = (self.segs.len(), path.len());
        // dp[j]: pattern[..i] matches path[..j], rolled over i.
        let mut dp = vec![false; n + 1];
        dp[0] = true;
        for seg in &self.segs {
            let mut next = vec![false; n + 1];
            for j in 0..=n {
                next[j] = match seg {
                    Seg::Descend => dp[j] || (j > 0 && next[j - 1]),
                    _ => j > 0 && dp[j - 1] && step(seg, &path[j - 1]),
                };
            }
            dp = next;
        }
        let _ = m;
        dp[n]
    }
}

fn step(seg: &Seg, e: &Elem) -> bool {
    match (seg, e) {
        (Seg::Any, _) => true,
        (Seg::AnyIndex, Elem::Index(_)) => true,
        (Seg::Index(a), Elem::Index(b)) => a == b,
        (Seg::Key(a), Elem::Key(b)) => a == b,
        _ => false,
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Renders a concrete path: `$.a.b[3]['x y']` (a protobuf field, `#2`, plain: `$.message[0].#2`).
pub fn render(path: &[Elem]) -> String {
    let mut s = String::from("$");
    for e in path {
        match e {
            Elem::Index(i) => {
                s.push('[');
                s.push_str(&i.to_string());
                s.push(']');
            }
            Elem::Key(k) if !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '#')) => {
                s.push('.');
                s.push_str(k);
            }
            Elem::Key(k) => {
                s.push_str("['");
                s.push_str(k);
                s.push_str("']");
            }
        }
    }
    s
}

/// A rendered path with every array index replaced by `[*]`: the form noise is learned and reported in.
pub fn normalize(rendered: &str) -> String {
    let mut out = String::with_capacity(rendered.len());
    let mut rest = rendered;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find(']') {
            Some(close) if !after[..close].is_empty() && after[..close].bytes().all(|b| b.is_ascii_digit()) => {
                out.push_str("[*]");
                rest = &after[close + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Looks a concrete path up in a value.
pub fn lookup<'a>(v: &'a serde_json::Value, path: &[Elem]) -> Option<&'a serde_json::Value> {
    let mut cur = v;
    for e in path {
        cur = match (e, cur) {
            (Elem::Key(k), serde_json::Value::Object(m)) => m.get(k)?,
            (Elem::Index(i), serde_json::Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<Elem> {
        // A tiny parser for concrete test paths: $.a[1].b
        let pat = PathPattern::parse(s).unwrap();
        pat.segs
            .iter()
            .map(|s| match s {
                Seg::Key(k) => Elem::Key(k.clone()),
                Seg::Index(i) => Elem::Index(*i),
                other => panic!("not concrete: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn patterns_match_as_documented() {
        let cases: &[(&str, &str, bool)] = &[
            ("$.items[*].updatedAt", "$.items[3].updatedAt", true),
            ("$.items[*].updatedAt", "$.items[3].createdAt", false),
            ("$.items[*].updatedAt", "$.items.updatedAt", false),
            ("$..id", "$.id", true),
            ("$..id", "$.a.b[2].id", true),
            ("$..id", "$.a.b[2].idx", false),
            ("$.a.*", "$.a.b", true),
            ("$.a.*", "$.a[0]", true),
            ("$.a.*", "$.a.b.c", false),
            ("$['x y'][0]", "$['x y'][0]", true),
            ("$", "$", true),
            ("$.a..*", "$.a.b.c", true),
        ];
        for (pat, path, want) in cases {
            let got = PathPattern::parse(pat).unwrap().matches(&p(path));
            assert_eq!(got, *want, "{pat} vs {path}");
        }
    }

    #[test]
    fn bad_patterns_say_why() {
        for bad in ["items", "$.", "$[x]", "$.a[", "$..", "$.a b[0"] {
            let e = PathPattern::parse(bad).unwrap_err();
            assert!(e.contains(bad) && e.contains("offset"), "{bad}: {e}");
        }
    }

    #[test]
    fn render_and_normalize() {
        let path = vec![Elem::Key("items".into()), Elem::Index(12), Elem::Key("a b".into())];
        assert_eq!(render(&path), "$.items[12]['a b']");
        assert_eq!(normalize("$.items[12]['a b'][0].x"), "$.items[*]['a b'][*].x");
        let v: serde_json::Value = serde_json::json!({"items": [0, {"a b": 5}]});
        assert_eq!(lookup(&v, &[Elem::Key("items".into()), Elem::Index(1), Elem::Key("a b".into())]), Some(&5.into()));
    }
}
