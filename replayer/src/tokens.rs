//! `--token-file NAME=PATH`: files whose content (trimmed) is the value of `{{file.NAME}}` in `--set-header`.
//! A file is read at start (a missing or unreadable file is an error then) and read again during the run when its
//! modification time changes, looked at most once per [`RECHECK`]; a failed re-read keeps the last value and is
//! counted. Values are capped at [`MAX_TOKEN_BYTES`].

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

/// How often a file's modification time is looked at.
pub const RECHECK: Duration = Duration::from_secs(1);
/// Longest value read from a token file.
pub const MAX_TOKEN_BYTES: u64 = 64 * 1024;

/// One `--token-file` flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenFileArg {
    /// The variable name (`{{file.NAME}}`).
    pub name: String,
    /// The file.
    pub path: PathBuf,
}

impl std::str::FromStr for TokenFileArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((n, p))
                if !n.trim().is_empty()
                    && !p.trim().is_empty()
                    && n.trim().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                Ok(TokenFileArg { name: n.trim().to_string(), path: PathBuf::from(p.trim()) })
            }
            _ => Err(format!("'{s}' is not a token file: expected NAME=PATH, e.g. token=/run/secrets/api-token")),
        }
    }
}

/// Counters of the token files.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TokenStats {
    /// Times a file was read again because it changed.
    pub reloads: u64,
    /// Re-reads that failed (the previous value was kept).
    pub reload_failures: u64,
    /// Values cut at [`MAX_TOKEN_BYTES`].
    pub truncated: u64,
}

struct Entry {
    name: String,
    path: PathBuf,
    value: String,
    mtime: Option<SystemTime>,
    checked: Instant,
}

/// The token files of a run. Shared between connections; one lock around all (a look-up is a compare and a
/// clone, and at most one `stat` per file per second).
#[derive(Default)]
pub struct TokenFiles {
    entries: Mutex<(Vec<Entry>, TokenStats)>,
}

impl std::fmt::Debug for TokenFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenFiles")
    }
}

fn read(path: &std::path::Path, stats: &mut TokenStats) -> std::io::Result<(String, Option<SystemTime>)> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mtime = file.metadata().and_then(|m| m.modified()).ok();
    let mut buf = Vec::new();
    file.take(MAX_TOKEN_BYTES + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_TOKEN_BYTES {
        buf.truncate(MAX_TOKEN_BYTES as usize);
        stats.truncated += 1;
    }
    Ok((String::from_utf8_lossy(&buf).trim().to_string(), mtime))
}

impl TokenFiles {
    /// Reads every file once. Fails naming the flag and the file when one cannot be read, or a name is repeated.
    pub fn load(args: &[TokenFileArg]) -> anyhow::Result<TokenFiles> {
        let mut entries: Vec<Entry> = Vec::new();
        let mut stats = TokenStats::default();
        for a in args {
            if entries.iter().any(|e| e.name == a.name) {
                anyhow::bail!("--token-file: the name {} is given twice", a.name);
            }
            let (value, mtime) =
                read(&a.path, &mut stats).map_err(|e| anyhow::anyhow!("--token-file {}: {e}", a.path.display()))?;
            entries.push(Entry { name: a.name.clone(), path: a.path.clone(), value, mtime, checked: Instant::now() });
        }
        Ok(TokenFiles { entries: Mutex::new((entries, stats)) })
    }

    /// Whether `name` was declared.
    pub fn has(&self, name: &str) -> bool {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).0.iter().any(|e| e.name == name)
    }

    /// The current value of `name` (empty when undeclared: names are checked at start), re-read when the file
    /// changed and the last look is over [`RECHECK`] old.
    pub fn get(&self, name: &str) -> String {
        self.get_at(name, Instant::now())
    }

    fn get_at(&self, name: &str, now: Instant) -> String {
        let mut guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (entries, stats) = &mut *guard;
        let Some(e) = entries.iter_mut().find(|e| e.name == name) else { return String::new() };
        if now.saturating_duration_since(e.checked) >= RECHECK {
            e.checked = now;
            let mtime = std::fs::metadata(&e.path).and_then(|m| m.modified()).ok();
            if mtime != e.mtime {
                match read(&e.path, stats) {
                    Ok((v, m)) => {
                        e.value = v;
                        e.mtime = m;
                        stats.reloads += 1;
                    }
                    Err(_) => stats.reload_failures += 1,
                }
            }
        }
        e.value.clone()
    }

    /// The counters so far.
    pub fn stats(&self) -> TokenStats {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).1.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags() {
        let a: TokenFileArg = "api=/run/t".parse().unwrap();
        assert_eq!((a.name.as_str(), a.path.to_str()), ("api", Some("/run/t")));
        for bad in ["api", "=x", "a b=/x", "api="] {
            assert!(bad.parse::<TokenFileArg>().unwrap_err().contains("NAME=PATH"), "{bad}");
        }
    }

    #[test]
    fn reads_trimmed_and_rereads_on_change_at_most_once_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tok");
        std::fs::write(&path, "  first\n").unwrap();
        let files = TokenFiles::load(&[TokenFileArg { name: "t".into(), path: path.clone() }]).unwrap();
        let t0 = Instant::now();
        assert_eq!(files.get_at("t", t0), "first");
        std::fs::write(&path, "second\n").unwrap();
        // Force a different mtime even on coarse file systems.
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(10)).unwrap();
        assert_eq!(files.get_at("t", t0 + Duration::from_millis(500)), "first", "not looked again within 1 s");
        assert_eq!(files.get_at("t", t0 + Duration::from_millis(1500)), "second");
        assert_eq!(files.stats().reloads, 1);
        // Unchanged: no reload.
        assert_eq!(files.get_at("t", t0 + Duration::from_secs(5)), "second");
        assert_eq!(files.stats().reloads, 1);
        // A vanished file keeps the last value and is counted.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(files.get_at("t", t0 + Duration::from_secs(10)), "second");
        assert_eq!(files.stats().reload_failures, 1);
        assert!(files.has("t") && !files.has("u"));
    }

    #[test]
    fn missing_file_and_repeated_name_fail_at_start() {
        let e = TokenFiles::load(&[TokenFileArg { name: "t".into(), path: "/nonexistent/tok".into() }])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--token-file") && e.contains("/nonexistent/tok"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        std::fs::write(&p, "x").unwrap();
        let a = TokenFileArg { name: "t".into(), path: p };
        assert!(TokenFiles::load(&[a.clone(), a]).unwrap_err().to_string().contains("twice"));
    }
}
