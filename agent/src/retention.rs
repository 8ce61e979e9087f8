//! Segment retention: deletes finished segment files (`*.seg`) of the output directory that are older than a
//! maximum age, then the oldest ones while all segment files together exceed a maximum size. Oldest means the
//! earliest modification time (when the file was finished), ties broken by path. Files being written
//! (`*.seg.tmp`) are never deleted, but those being written count towards the size.
//!
//! The output directory's direct subdirectories (the service directories of `--split-by-service`) are one tree
//! with it: ages and the byte total are taken over all of them, and the oldest file goes first wherever it is.
//! Service directories left empty are kept (a service that comes back writes there again).
//!
//! Every deletion is counted and logged; a file that cannot be deleted is counted and logged, and the next
//! oldest is tried.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tapedeck_model::segment::list_segments;

/// What to keep. `None` means no limit of that kind.
#[derive(Clone, Debug, Default)]
pub struct RetentionConfig {
    /// Delete finished files last modified longer ago than this.
    pub max_age: Option<Duration>,
    /// Delete the oldest finished files while all segment files together are larger than this.
    pub max_bytes: Option<u64>,
}

impl RetentionConfig {
    /// Whether any limit is set.
    pub fn enabled(&self) -> bool {
        self.max_age.is_some() || self.max_bytes.is_some()
    }
}

/// Counters of retention passes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RetentionStats {
    /// Passes run.
    pub passes: u64,
    /// Files deleted because of their age.
    pub deleted_by_age: u64,
    /// Files deleted because the directory held too many bytes.
    pub deleted_by_size: u64,
    /// Bytes of the deleted files.
    pub bytes_deleted: u64,
    /// Deletions or directory listings that failed (permissions, a file vanished); logged.
    pub errors: u64,
}

impl RetentionStats {
    /// Files deleted for any reason.
    pub fn deleted(&self) -> u64 {
        self.deleted_by_age + self.deleted_by_size
    }
}

struct Candidate {
    path: PathBuf,
    modified: SystemTime,
    len: u64,
}

/// One retention pass over `dir` at time `now`. `open_bytes` is the size of files being written (counted in the
/// total, never deleted). Returns the paths deleted.
pub fn enforce(
    dir: &Path,
    cfg: &RetentionConfig,
    now: SystemTime,
    open_bytes: u64,
    stats: &mut RetentionStats,
) -> Vec<PathBuf> {
    let mut deleted = Vec::new();
    if !cfg.enabled() {
        return deleted;
    }
    stats.passes += 1;
    let paths = match list_segments(dir) {
        Ok(p) => p,
        Err(e) => {
            stats.errors += 1;
            tracing::warn!("retention: {e}");
            return deleted;
        }
    };
    let mut files: Vec<Candidate> = Vec::with_capacity(paths.len());
    for path in paths {
        match std::fs::metadata(&path) {
            Ok(m) => files.push(Candidate { modified: m.modified().unwrap_or(now), len: m.len(), path }),
            // Deleted meanwhile (another agent's retention, an operator): nothing to do.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                stats.errors += 1;
                tracing::warn!("retention: reading {}: {e}", path.display());
            }
        }
    }
    files.sort_by(|a, b| a.modified.cmp(&b.modified).then_with(|| a.path.cmp(&b.path)));
    let mut total: u64 = open_bytes + files.iter().map(|f| f.len).sum::<u64>();
    for f in files {
        let too_old = cfg.max_age.is_some_and(|age| now.duration_since(f.modified).is_ok_and(|d| d > age));
        let too_big = cfg.max_bytes.is_some_and(|max| total > max);
        if !too_old && !too_big {
            // Sorted oldest first: every later file is younger, and the total only shrinks from here on.
            break;
        }
        match std::fs::remove_file(&f.path) {
            Ok(()) => {
                if too_old {
                    stats.deleted_by_age += 1;
                } else {
                    stats.deleted_by_size += 1;
                }
                stats.bytes_deleted += f.len;
                total = total.saturating_sub(f.len);
                tracing::info!(
                    file = %f.path.display(),
                    bytes = f.len,
                    reason = if too_old { "age" } else { "size" },
                    "retention: deleted segment"
                );
                deleted.push(f.path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                total = total.saturating_sub(f.len);
            }
            Err(e) => {
                stats.errors += 1;
                tracing::warn!("retention: deleting {}: {e}", f.path.display());
            }
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    /// Makes `name` with `len` bytes, modified `age` before `now`.
    fn file(dir: &Path, name: &str, len: usize, now: SystemTime, age: Duration) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, vec![0u8; len]).unwrap();
        File::options().write(true).open(&p).unwrap().set_modified(now - age).unwrap();
        p
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }

    #[test]
    fn deletes_the_oldest_until_under_the_byte_limit() {
        let d = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        // Names sort the other way round from ages: the order must come from the modification time.
        file(d.path(), "a.seg", 100, now, Duration::from_secs(10));
        file(d.path(), "b.seg", 100, now, Duration::from_secs(30));
        file(d.path(), "c.seg", 100, now, Duration::from_secs(20));
        file(d.path(), "d.seg.tmp", 100, now, Duration::from_secs(40));
        let cfg = RetentionConfig { max_age: None, max_bytes: Some(200) };
        let mut st = RetentionStats::default();
        // 300 finished + 50 being written = 350 > 200: b (oldest) goes, 250 > 200: c goes, leaving 100 + 50.
        let gone = enforce(d.path(), &cfg, now, 50, &mut st);
        assert_eq!(gone, vec![d.path().join("b.seg"), d.path().join("c.seg")]);
        assert_eq!(names(d.path()), vec!["a.seg", "d.seg.tmp"]);
        assert_eq!((st.deleted_by_size, st.deleted_by_age, st.bytes_deleted, st.passes), (2, 0, 200, 1));
        // Under the limit now: a second pass deletes nothing.
        assert!(enforce(d.path(), &cfg, now, 50, &mut st).is_empty());
        assert_eq!(st.deleted(), 2);
    }

    #[test]
    fn deletes_files_older_than_the_age_limit_only() {
        let d = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        file(d.path(), "old.seg", 10, now, Duration::from_secs(7200));
        file(d.path(), "new.seg", 10, now, Duration::from_secs(60));
        file(d.path(), "older.seg.tmp", 10, now, Duration::from_secs(9000));
        file(d.path(), "other.txt", 10, now, Duration::from_secs(9000));
        let cfg = RetentionConfig { max_age: Some(Duration::from_secs(3600)), max_bytes: None };
        let mut st = RetentionStats::default();
        let gone = enforce(d.path(), &cfg, now, 0, &mut st);
        assert_eq!(gone, vec![d.path().join("old.seg")]);
        assert_eq!(names(d.path()), vec!["new.seg", "older.seg.tmp", "other.txt"]);
        assert_eq!((st.deleted_by_age, st.deleted_by_size, st.bytes_deleted), (1, 0, 10));
    }

    #[test]
    fn both_limits_and_no_limits() {
        let d = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        file(d.path(), "1.seg", 100, now, Duration::from_secs(500));
        file(d.path(), "2.seg", 100, now, Duration::from_secs(300));
        file(d.path(), "3.seg", 100, now, Duration::from_secs(100));
        let mut st = RetentionStats::default();
        assert!(enforce(d.path(), &RetentionConfig::default(), now, 0, &mut st).is_empty());
        assert_eq!(st.passes, 0, "no limits: no pass at all");
        let cfg = RetentionConfig { max_age: Some(Duration::from_secs(400)), max_bytes: Some(150) };
        let gone = enforce(d.path(), &cfg, now, 0, &mut st);
        assert_eq!(gone.len(), 2);
        assert_eq!(names(d.path()), vec!["3.seg"]);
        assert_eq!((st.deleted_by_age, st.deleted_by_size), (1, 1));
    }

    #[test]
    fn service_directories_share_one_budget_oldest_first() {
        let d = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        for s in ["10.0.0.1_80", "payments"] {
            std::fs::create_dir(d.path().join(s)).unwrap();
        }
        // Ages interleave across the directories; 100 bytes each, 500 in all.
        file(d.path(), "10.0.0.1_80/a.seg", 100, now, Duration::from_secs(50));
        file(d.path(), "10.0.0.1_80/b.seg", 100, now, Duration::from_secs(20));
        file(d.path(), "payments/c.seg", 100, now, Duration::from_secs(40));
        file(d.path(), "payments/d.seg", 100, now, Duration::from_secs(10));
        file(d.path(), "top.seg", 100, now, Duration::from_secs(30));
        let cfg = RetentionConfig { max_age: None, max_bytes: Some(250) };
        let mut st = RetentionStats::default();
        let gone = enforce(d.path(), &cfg, now, 0, &mut st);
        let rel: Vec<String> = gone.iter().map(|p| p.strip_prefix(d.path()).unwrap().display().to_string()).collect();
        assert_eq!(rel, ["10.0.0.1_80/a.seg", "payments/c.seg", "top.seg"]);
        assert_eq!(names(&d.path().join("10.0.0.1_80")), ["b.seg"]);
        assert_eq!(names(&d.path().join("payments")), ["d.seg"]);
        assert_eq!((st.deleted_by_size, st.bytes_deleted), (3, 300));
        // By age, across directories too; the emptied directory stays.
        let cfg = RetentionConfig { max_age: Some(Duration::from_secs(15)), max_bytes: None };
        let gone = enforce(d.path(), &cfg, now, 0, &mut st);
        assert_eq!(gone, [d.path().join("10.0.0.1_80/b.seg")]);
        assert!(d.path().join("10.0.0.1_80").is_dir());
        assert_eq!(st.deleted_by_age, 1);
    }

    #[test]
    fn a_missing_directory_is_counted_not_fatal() {
        let d = tempfile::tempdir().unwrap();
        let cfg = RetentionConfig { max_age: None, max_bytes: Some(1) };
        let mut st = RetentionStats::default();
        assert!(enforce(&d.path().join("nope"), &cfg, SystemTime::now(), 0, &mut st).is_empty());
        assert_eq!(st.errors, 1);
    }
}
