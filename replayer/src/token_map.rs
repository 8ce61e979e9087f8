//! `--token-map FILE`: live credentials for masked recorded ones. The file is TOML with one `[tokens]` table; each
//! key is a recorded value or keyed token as `inspect` shows it (`tdk_0123456789abcdef`, `[REDACTED]`, any other
//! text), each value what to send in its place. Every recorded header value holding a key has each occurrence
//! replaced (longest key first where keys overlap), so each recorded session gets its own live credential
//! (`Authorization: Bearer tdk_...` becomes `Authorization: Bearer <live token>`). Applied in the transform stage
//! ([`crate::transform::Transform`]), before `--set-header` (a set header replaces the recorded field whole).
//!
//! ```toml
//! [tokens]
//! "tdk_3f2a9c0e5b7d1a48" = "eyJhbGciOi...live-token-of-user-a"
//! "tdk_91c0d2e4f6a8b0c2" = "eyJhbGciOi...live-token-of-user-b"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use aho_corasick::{AhoCorasick, MatchKind};
use serde::Deserialize;

/// The file's shape: a `[tokens]` table and nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MapFile {
    tokens: BTreeMap<String, String>,
}

/// A loaded token map.
#[derive(Debug)]
pub struct TokenMap {
    path: PathBuf,
    keys: Vec<String>,
    values: Vec<Vec<u8>>,
    finder: AhoCorasick,
    /// Replacements made per key (for the keys never used).
    used: Vec<AtomicU64>,
}

impl TokenMap {
    /// Reads and checks `path`; errors name the file (and the key at fault).
    pub fn load(path: &Path) -> anyhow::Result<TokenMap> {
        let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("--token-map {}: {e}", path.display()))?;
        TokenMap::parse(path, &text).map_err(|e| anyhow::anyhow!("--token-map {}: {e}", path.display()))
    }

    /// Parses the text of a token map file read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<TokenMap, String> {
        let file: MapFile = toml::from_str(text).map_err(|e| {
            format!(
                "{}(expected one [tokens] table of \"recorded value\" = \"value to send\")",
                e.to_string().trim_end()
            )
        })?;
        if file.tokens.is_empty() {
            return Err("the [tokens] table is empty".into());
        }
        for (k, v) in &file.tokens {
            if k.is_empty() {
                return Err("an empty key: each key is a recorded value or token, e.g. \"tdk_0123456789abcdef\"".into());
            }
            if let Some(b) = v.bytes().find(|&b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(format!("the value of {k:?} holds byte {b:#04x}, which a header value cannot"));
            }
        }
        let (keys, values): (Vec<String>, Vec<Vec<u8>>) =
            file.tokens.into_iter().map(|(k, v)| (k, v.into_bytes())).unzip();
        let finder = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&keys)
            .map_err(|e| format!("cannot search for the keys: {e}"))?;
        let used = keys.iter().map(|_| AtomicU64::new(0)).collect();
        Ok(TokenMap { path: path.to_path_buf(), keys, values, finder, used })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the map has no key (never true for a loaded map).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// `value` with every key replaced by its value, and the number of replacements; None when no key is in it.
    pub fn apply(&self, value: &[u8]) -> Option<(Vec<u8>, u64)> {
        let mut out = Vec::new();
        let (mut at, mut n) = (0, 0);
        for m in self.finder.find_iter(value) {
            let key = m.pattern().as_usize();
            out.extend_from_slice(&value[at..m.start()]);
            out.extend_from_slice(&self.values[key]);
            self.used[key].fetch_add(1, Ordering::Relaxed);
            at = m.end();
            n += 1;
        }
        if n == 0 {
            return None;
        }
        out.extend_from_slice(&value[at..]);
        Some((out, n))
    }

    /// The keys no header value held so far.
    pub fn unused(&self) -> Vec<&str> {
        self.keys
            .iter()
            .zip(&self.used)
            .filter(|(_, n)| n.load(Ordering::Relaxed) == 0)
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(text: &str) -> Result<TokenMap, String> {
        TokenMap::parse(Path::new("map.toml"), text)
    }

    #[test]
    fn every_occurrence_of_every_key_is_replaced() {
        let m =
            map("[tokens]\n\"tdk_aaaa\" = \"live-a\"\n\"tdk_aaaa1\" = \"live-a1\"\n\"[REDACTED]\" = \"r\"\n").unwrap();
        assert_eq!(m.len(), 3);
        let (v, n) = m.apply(b"Bearer tdk_aaaa").unwrap();
        assert_eq!((v.as_slice(), n), (&b"Bearer live-a"[..], 1));
        let (v, n) = m.apply(b"a=tdk_aaaa1; b=tdk_aaaa; c=[REDACTED]").unwrap();
        assert_eq!((String::from_utf8(v).unwrap().as_str(), n), ("a=live-a1; b=live-a; c=r", 3), "longest key wins");
        assert!(m.apply(b"Bearer tdk_bbbb").is_none());
        assert!(m.unused().is_empty());
        let m = map("[tokens]\nx = \"y\"\nunseen = \"z\"\n").unwrap();
        m.apply(b"x");
        assert_eq!(m.unused(), ["unseen"]);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        assert!(map("tokens = 1\n").unwrap_err().contains("[tokens]"));
        assert!(map("[tokens]\n").unwrap_err().contains("empty"));
        assert!(map("[tokens]\na = \"b\"\n[other]\nc = \"d\"\n").unwrap_err().contains("other"));
        assert!(map("[tokens]\n\"\" = \"b\"\n").unwrap_err().contains("empty key"));
        assert!(map("[tokens]\na = \"b\\r\\nX-Evil: 1\"\n").unwrap_err().contains("\"a\""));
        assert!(map("[tokens]\na = 1\n").is_err());
        let e = TokenMap::load(Path::new("/nonexistent/map.toml")).unwrap_err().to_string();
        assert!(e.contains("--token-map /nonexistent/map.toml"), "{e}");
    }
}
