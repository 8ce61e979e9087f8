//! The `--log-file` writer: appends log lines to a file that can be reopened (SIGHUP), so that logrotate's
//! rename-and-signal works. Lines written while the file cannot be opened go to standard error.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A log file that can be reopened at the same path.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

fn open(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().create(true).append(true).mode(0o640).open(path)
}

impl LogFile {
    /// Opens (creates, appends to) `path`.
    pub fn open(path: &Path) -> io::Result<Arc<LogFile>> {
        let f = open(path)?;
        Ok(Arc::new(LogFile { path: path.to_path_buf(), file: Mutex::new(Some(f)) }))
    }

    /// Closes and opens the path again (after the file was renamed away by log rotation).
    pub fn reopen(&self) -> io::Result<()> {
        let f = open(&self.path);
        let mut slot = self.file.lock().unwrap_or_else(|p| p.into_inner());
        match f {
            Ok(f) => {
                *slot = Some(f);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// A writer for one log event.
    pub fn writer(self: &Arc<Self>) -> LogWriter {
        LogWriter(Arc::clone(self))
    }
}

/// Writes to the current file of a [`LogFile`].
#[derive(Debug)]
pub struct LogWriter(Arc<LogFile>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut slot = self.0.file.lock().unwrap_or_else(|p| p.into_inner());
        match slot.as_mut() {
            Some(f) => f.write(buf),
            None => io::stderr().write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        let mut slot = self.0.file.lock().unwrap_or_else(|p| p.into_inner());
        match slot.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopen_follows_a_rename() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.log");
        let log = LogFile::open(&p).unwrap();
        log.writer().write_all(b"one\n").unwrap();
        std::fs::rename(&p, dir.path().join("agent.log.1")).unwrap();
        log.writer().write_all(b"two\n").unwrap();
        log.reopen().unwrap();
        log.writer().write_all(b"three\n").unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("agent.log.1")).unwrap(), "one\ntwo\n");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "three\n");
    }
}
