//! Output files of `replayer run` (`--report`, `--junit`, `--har`) checked before anything is read or sent, so a
//! typo in a path fails at once, naming the flag and the path, not after hours of replay.

use std::fs::OpenOptions;
use std::path::Path;

/// Checks that `path` can be written: its directory exists, and the file can be opened for writing (an existing
/// file is opened without truncating it; a new one is created and removed again). The error names `flag`.
pub fn check_writable(flag: &str, path: &Path) -> anyhow::Result<()> {
    let fail = |why: String| anyhow::anyhow!("{flag} {}: {why}; nothing was sent", path.display());
    if path.is_dir() {
        return Err(fail("is a directory, not a file".into()));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(fail(format!("directory {} does not exist", dir.display())));
    }
    if path.exists() {
        OpenOptions::new().write(true).open(path).map_err(|e| fail(format!("cannot be written: {e}")))?;
        return Ok(());
    }
    OpenOptions::new().write(true).create_new(true).open(path).map_err(|e| fail(format!("cannot be created: {e}")))?;
    std::fs::remove_file(path).map_err(|e| fail(format!("created as a test but cannot be removed: {e}")))
}

/// Checks every `(flag, path)` given, in order; the first failure is the error.
pub fn check_all(outputs: &[(&str, Option<&Path>)]) -> anyhow::Result<()> {
    for (flag, path) in outputs {
        if let Some(p) = path {
            check_writable(flag, p)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_output_paths_name_the_flag_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no/such/dir/report.json");
        let e = check_writable("--report", &missing).unwrap_err().to_string();
        assert!(e.starts_with("--report ") && e.contains("no/such/dir") && e.contains("does not exist"), "{e}");
        let e = check_writable("--junit", dir.path()).unwrap_err().to_string();
        assert!(e.contains("--junit") && e.contains("is a directory"), "{e}");
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let e = check_writable("--har", &file.join("out.har")).unwrap_err().to_string();
        assert!(e.contains("--har") && e.contains("does not exist"), "{e}");
    }

    #[test]
    fn good_output_paths_are_left_as_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("report.json");
        check_writable("--report", &new).unwrap();
        assert!(!new.exists(), "the test file is removed");
        let old = dir.path().join("old.json");
        std::fs::write(&old, "kept").unwrap();
        check_writable("--report", &old).unwrap();
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "kept", "not truncated");
        check_all(&[("--report", Some(&new)), ("--junit", None)]).unwrap();
    }
}
