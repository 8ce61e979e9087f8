//! Segment file names and the file-system side of writing them: the `<prefix>-<UTC time>-<seq>.seg[.tmp]` naming,
//! private permissions (directory 0700, files 0600), directory fsync, and listing the segments of a directory.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::SegmentError;
use crate::Timestamp;

/// Extension of a finished segment file.
pub const SEGMENT_EXT: &str = ".seg";
/// Extension of a segment file still being written (or left by a writer that died).
pub const TMP_EXT: &str = ".seg.tmp";

/// Formats a capture time as `YYYYMMDDTHHMMSSZ` (UTC, whole seconds).
pub fn utc_stamp(ts: Timestamp) -> String {
    let secs = ts.0 / 1_000_000_000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day). Howard Hinnant's `civil_from_days`
/// (<https://howardhinnant.github.io/date_algorithms.html#civil_from_days>), for non-negative day counts.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// The final and temporary paths of segment number `seq` starting at `first`.
pub fn segment_paths(dir: &Path, prefix: &str, first: Timestamp, seq: u64) -> (PathBuf, PathBuf) {
    let stem = format!("{prefix}-{}-{seq:06}", utc_stamp(first));
    (dir.join(format!("{stem}{SEGMENT_EXT}")), dir.join(format!("{stem}{TMP_EXT}")))
}

/// Creates `dir` (and missing parents) with mode 0700 if it does not exist.
pub fn ensure_dir(dir: &Path) -> Result<(), SegmentError> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| SegmentError::io(dir, "creating directory", e))
}

/// Creates a new file with mode 0600, failing if it exists.
pub fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

/// Fsyncs a directory so that a create or rename in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), SegmentError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| SegmentError::io(dir, "syncing directory", e))
}

/// The segment files at `path`: the file itself if it is one, or the `.seg` files of a directory and of its
/// direct subdirectories (the per-service directories of `agent --split-by-service`), sorted by path: a
/// directory's own files first by name (which sorts each writer's files by first capture time, then sequence),
/// then each subdirectory's files. One level deep only: deeper directories, and symbolic links to directories,
/// are not followed.
pub fn list_segments(path: &Path) -> Result<Vec<PathBuf>, SegmentError> {
    list(path, false)
}

/// Like [`list_segments`], but also lists `.seg.tmp` files: segments being written, or left by a writer that died
/// (readable up to their last whole block).
pub fn list_segments_with_tmp(path: &Path) -> Result<Vec<PathBuf>, SegmentError> {
    list(path, true)
}

fn list(path: &Path, include_tmp: bool) -> Result<Vec<PathBuf>, SegmentError> {
    let meta = fs::metadata(path).map_err(|e| SegmentError::io(path, "reading metadata", e))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut subdirs = Vec::new();
    let mut out = list_dir(path, include_tmp, Some(&mut subdirs))?;
    out.sort();
    subdirs.sort();
    for dir in subdirs {
        let mut files = match list_dir(&dir, include_tmp, None) {
            Ok(f) => f,
            // Removed meanwhile (retention of another process, an operator): nothing there.
            Err(SegmentError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        files.sort();
        out.extend(files);
    }
    Ok(out)
}

/// The segment files directly in `dir` (unsorted), and its subdirectories into `subdirs` when given.
fn list_dir(
    dir: &Path,
    include_tmp: bool,
    mut subdirs: Option<&mut Vec<PathBuf>>,
) -> Result<Vec<PathBuf>, SegmentError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| SegmentError::io(dir, "listing directory", e))? {
        let entry = entry.map_err(|e| SegmentError::io(dir, "listing directory", e))?;
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            if let Some(s) = subdirs.as_deref_mut() {
                s.push(entry.path());
            }
            continue;
        }
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let wanted = name.ends_with(SEGMENT_EXT) || (include_tmp && name.ends_with(TMP_EXT));
        if wanted && kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps_match_known_dates() {
        assert_eq!(utc_stamp(Timestamp(0)), "19700101T000000Z");
        // 2026-11-21T19:33:00Z = 1795289580 s (date -u -d @1795289580).
        assert_eq!(utc_stamp(Timestamp::from_secs_nanos(1_795_289_580, 999_999_999)), "20261121T193300Z");
        // 2000-02-29T23:59:59Z = 951868799 s: a leap day in a century leap year.
        assert_eq!(utc_stamp(Timestamp::from_secs_nanos(951_868_799, 0)), "20000229T235959Z");
        // 2100-03-01T00:00:00Z = 4107542400 s: 2100 is not a leap year.
        assert_eq!(utc_stamp(Timestamp::from_secs_nanos(4_107_542_400, 0)), "21000301T000000Z");
    }

    #[test]
    fn listing_goes_one_directory_level_deep() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for dir in ["b_svc", "a_svc", "a_svc/deeper", "empty"] {
            fs::create_dir(root.join(dir)).unwrap();
        }
        for f in [
            "z.seg",
            "top.seg.tmp",
            "notes.txt",
            "a_svc/2.seg",
            "a_svc/1.seg",
            "a_svc/open.seg.tmp",
            "a_svc/deeper/no.seg",
            "b_svc/0.seg",
        ] {
            fs::write(root.join(f), b"x").unwrap();
        }
        let rel = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter().map(|p| p.strip_prefix(root).unwrap().display().to_string()).collect()
        };
        assert_eq!(rel(list_segments(root).unwrap()), ["z.seg", "a_svc/1.seg", "a_svc/2.seg", "b_svc/0.seg"]);
        assert_eq!(
            rel(list_segments_with_tmp(root).unwrap()),
            ["top.seg.tmp", "z.seg", "a_svc/1.seg", "a_svc/2.seg", "a_svc/open.seg.tmp", "b_svc/0.seg"]
        );
        // A service directory given directly lists its own files (and its subdirectories', one level).
        assert_eq!(rel(list_segments(&root.join("b_svc")).unwrap()), ["b_svc/0.seg"]);
    }

    #[test]
    fn names_follow_the_pattern() {
        let (fin, tmp) = segment_paths(Path::new("/d"), "cap", Timestamp::from_secs_nanos(1_795_289_580, 0), 3);
        assert_eq!(fin, Path::new("/d/cap-20261121T193300Z-000003.seg"));
        assert_eq!(tmp, Path::new("/d/cap-20261121T193300Z-000003.seg.tmp"));
    }
}
