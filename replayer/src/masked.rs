//! Masked credentials in the requests about to be sent. The agent replaces credentials by `[REDACTED]` or by keyed
//! tokens (`tdk_` and 16 hex digits); sent as recorded, they make a real API refuse every request. Before
//! `replayer run` sends anything, [`scan`] looks at every header value each selected request would be sent with
//! (after `--remove-header`, `--set-header` and `--token-map`), and the run stops (exit 1) listing the fields,
//! the counts and the ways out, unless `--allow-masked`; `--dry-run` prints the same list as a warning. Query
//! parameters are looked at too (listed as `?name`); bodies are not (masked body fields are counted by the plan).

use std::collections::{BTreeMap, BTreeSet};

use crate::plan::Plan;
use crate::transform::Transform;

/// The marker of redacted values.
pub const REDACTED: &[u8] = b"[REDACTED]";
/// The prefix of keyed tokens.
pub const TOKEN_PREFIX: &[u8] = b"tdk_";
/// Hex digits after the prefix.
pub const TOKEN_HEX: usize = 16;
/// Distinct values kept per field (for the message; the count goes on).
const KEEP_VALUES: usize = 1000;
/// Distinct values shown per field in the message.
const SHOW_VALUES: usize = 4;

/// The masked values (`[REDACTED]`, `tdk_` tokens) in a header value, in order.
pub fn markers(value: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < value.len() {
        let rest = &value[i..];
        if rest.starts_with(REDACTED) {
            out.push(&rest[..REDACTED.len()]);
            i += REDACTED.len();
            continue;
        }
        let token_len = TOKEN_PREFIX.len() + TOKEN_HEX;
        let word_start = i == 0 || !is_word(value[i - 1]);
        if word_start
            && rest.starts_with(TOKEN_PREFIX)
            && rest.len() >= token_len
            && rest[TOKEN_PREFIX.len()..token_len].iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            && rest.get(token_len).is_none_or(|&b| !is_word(b))
        {
            out.push(&rest[..token_len]);
            i += token_len;
            continue;
        }
        i += 1;
    }
    out
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// What one header field carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Field {
    /// Requests in which the field holds a masked value.
    pub requests: u64,
    /// Distinct masked values (at most [`KEEP_VALUES`] kept).
    pub values: BTreeSet<String>,
    /// Whether more distinct values were seen than kept.
    pub more: bool,
}

/// Masked credentials in the requests to send.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Finding {
    /// Requests with at least one masked header value.
    pub requests: u64,
    /// Requests looked at.
    pub looked_at: u64,
    /// By header name (lower case).
    pub fields: BTreeMap<String, Field>,
}

/// Looks at the header values every request of `plan` would be sent with under `transform` (recorded fields that
/// `--remove-header` removes or `--set-header` replaces are not sent, so not counted; `--token-map` replacements
/// are made first).
pub fn scan(plan: &Plan, transform: &Transform) -> Finding {
    let mut f = Finding::default();
    let replaced = |name: &[u8]| {
        transform.remove_headers.iter().any(|r| name.eq_ignore_ascii_case(r.as_bytes()))
            || transform.set_headers.iter().any(|s| name.eq_ignore_ascii_case(s.name.as_bytes()))
    };
    for c in &plan.connections {
        for r in &c.requests {
            f.looked_at += 1;
            let mut any = false;
            for h in &r.request.headers {
                if replaced(&h.name) {
                    continue;
                }
                let mapped = transform.token_map.as_ref().and_then(|m| m.apply(&h.value));
                let value = mapped.as_ref().map_or(h.value.as_slice(), |(v, _)| v.as_slice());
                let found = markers(value);
                if found.is_empty() {
                    continue;
                }
                any = true;
                f.add(String::from_utf8_lossy(&h.name).to_ascii_lowercase(), found);
            }
            if let Some(q) = r.request.path.iter().position(|&b| b == b'?') {
                let query = &r.request.path[q + 1..];
                let mapped = transform.token_map.as_ref().and_then(|m| m.apply(query));
                let query = mapped.as_ref().map_or(query, |(v, _)| v.as_slice());
                for pair in query.split(|&b| b == b'&') {
                    let (name, value) = match pair.iter().position(|&b| b == b'=') {
                        Some(i) => (&pair[..i], &pair[i + 1..]),
                        None => (pair, &b""[..]),
                    };
                    let found = markers(value);
                    if !found.is_empty() {
                        any = true;
                        f.add(format!("?{}", String::from_utf8_lossy(name)), found);
                    }
                }
            }
            f.requests += u64::from(any);
        }
    }
    f
}

impl Finding {
    /// Counts one request whose field `name` holds the masked values `found`.
    fn add(&mut self, name: String, found: Vec<&[u8]>) {
        let field = self.fields.entry(name).or_default();
        field.requests += 1;
        for m in found {
            let m = String::from_utf8_lossy(m);
            if field.values.len() < KEEP_VALUES || field.values.contains(m.as_ref()) {
                field.values.insert(m.into_owned());
            } else {
                field.more = true;
            }
        }
    }

    /// Whether no request carries a masked value.
    pub fn is_empty(&self) -> bool {
        self.requests == 0
    }

    /// The fields, their counts and some of their values, one per line.
    pub fn lines(&self) -> Vec<String> {
        let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        self.fields
            .iter()
            .map(|(name, field)| {
                let distinct = field.values.len() as u64;
                let mut shown: Vec<&str> = field.values.iter().take(SHOW_VALUES).map(String::as_str).collect();
                if field.values.len() > SHOW_VALUES || field.more {
                    shown.push("...");
                }
                format!(
                    "  {name}: {}, {}{} ({})",
                    plural(field.requests, "request", "requests"),
                    plural(distinct, "distinct value", "distinct values"),
                    if field.more { " or more" } else { "" },
                    shown.join(", ")
                )
            })
            .collect()
    }

    /// The message that stops a run (or warns, in a dry run).
    pub fn message(&self) -> String {
        format!(
            "{} of {} selected requests would send masked credentials ([REDACTED] or tdk_ tokens, as recorded by \
             the agent), which the target will refuse:\n{}\nways out: --set-header 'Name: value' (one live value \
             for every request), --token-map FILE (TOML, one [tokens] table: \"tdk_...\" = \"live value\", each \
             recorded token replaced by its own value, so each recorded session keeps its own credential), or \
             --allow-masked (send them as recorded)",
            self.requests,
            self.looked_at,
            self.lines().join("\n")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_redactions_and_whole_tokens() {
        let s = |v: &str| {
            markers(v.as_bytes()).into_iter().map(|m| String::from_utf8_lossy(m).into_owned()).collect::<Vec<_>>()
        };
        assert_eq!(s("Bearer tdk_0123456789abcdef"), ["tdk_0123456789abcdef"]);
        assert_eq!(s("a=tdk_0123456789abcdef; b=[REDACTED]"), ["tdk_0123456789abcdef", "[REDACTED]"]);
        assert_eq!(s("[REDACTED]"), ["[REDACTED]"]);
        assert!(s("tdk_0123456789abcde").is_empty(), "15 digits");
        assert!(s("tdk_0123456789abcdef0").is_empty(), "17 digits");
        assert!(s("xtdk_0123456789abcdef").is_empty(), "inside a word");
        assert!(s("tdk_0123456789ABCDEF").is_empty(), "upper case is not the agent's");
        assert!(s("Bearer live-token").is_empty());
    }
}
