//! Streaming inputs (standard input, FIFOs, character devices): inputs that can stay open and quiet for as long
//! as their writer likes (`tcpdump -U -w - | agent --pcap -`).
//!
//! [`PolledReader`] reads such an input without ever blocking longer than a given time: when no byte arrives
//! within it, `read` fails with [`std::io::ErrorKind::WouldBlock`], which [`super::PcapSource::next_frame`]
//! passes on as [`super::SourceError::Idle`] with the reader's state intact. The caller gets control back on a
//! quiet pipe (to hand over what it holds, so that it reaches the segment file within `--flush-interval`) and
//! then simply asks for the next frame again.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};

/// Whether `path` is an input that can stay open without data: `-` (standard input), a FIFO, a socket or a
/// character device. Regular files (and paths that cannot be examined) are not.
pub fn is_streaming(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    if path.as_os_str() == "-" {
        return true;
    }
    std::fs::metadata(path).is_ok_and(|m| {
        let t = m.file_type();
        t.is_fifo() || t.is_socket() || t.is_char_device()
    })
}

/// A reader that waits at most `wait` for data on each read (see the module documentation).
pub struct PolledReader {
    file: File,
    wait: Timespec,
}

impl PolledReader {
    /// Reads `file`, waiting at most `wait` (at least 1 ms) for each read.
    pub fn new(file: File, wait: Duration) -> Self {
        let wait = Timespec::try_from(wait.max(Duration::from_millis(1))).unwrap_or(Timespec { tv_sec: 1, tv_nsec: 0 });
        PolledReader { file, wait }
    }

    /// Standard input, read directly (not through the standard library's buffer, which poll cannot see).
    pub fn stdin(wait: Duration) -> io::Result<Self> {
        let fd = io::stdin().as_fd().try_clone_to_owned()?;
        Ok(Self::new(File::from(fd), wait))
    }
}

impl Read for PolledReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut fds = [PollFd::new(&self.file, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&self.wait)) {
            // Nothing within the wait: the caller gets control back.
            Ok(0) => Err(io::ErrorKind::WouldBlock.into()),
            // Readable, hung up (EOF) or in error: read says which.
            Ok(_) => self.file.read(buf),
            Err(rustix::io::Errno::INTR) => Err(io::ErrorKind::Interrupted.into()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Instant;

    #[test]
    fn a_quiet_pipe_gives_control_back_and_then_its_data() {
        let (r, mut w) = io::pipe().unwrap();
        let mut reader = PolledReader::new(File::from(std::os::fd::OwnedFd::from(r)), Duration::from_millis(50));
        let mut buf = [0u8; 16];
        let started = Instant::now();
        let e = reader.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(started.elapsed() >= Duration::from_millis(40), "{:?}", started.elapsed());
        w.write_all(b"abc").unwrap();
        assert_eq!(reader.read(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
        drop(w);
        assert_eq!(reader.read(&mut buf).unwrap(), 0, "end of input once the writer is gone");
    }

    /// Hands out its chunks one per read; `None` is a read that timed out.
    struct Script(std::collections::VecDeque<Option<Vec<u8>>>);

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.pop_front() {
                None => Ok(0),
                Some(None) => Err(io::ErrorKind::WouldBlock.into()),
                Some(Some(mut chunk)) => {
                    let n = chunk.len().min(buf.len());
                    buf[..n].copy_from_slice(&chunk[..n]);
                    if n < chunk.len() {
                        self.0.push_front(Some(chunk.split_off(n)));
                    }
                    Ok(n)
                }
            }
        }
    }

    #[test]
    fn a_source_on_a_quiet_pipe_says_idle_and_resumes_mid_record() {
        // A classic pcap (microseconds, little endian, snaplen 8, raw IP) with one 10-byte record: above the
        // snaplen, counted once however often the record is started.
        let mut header = Vec::new();
        for v in [0xa1b2_c3d4u32.to_le_bytes().as_slice(), &2u16.to_le_bytes(), &4u16.to_le_bytes()] {
            header.extend_from_slice(v);
        }
        for v in [0u32, 0, 8, 101] {
            header.extend_from_slice(&v.to_le_bytes());
        }
        let mut record = Vec::new();
        for v in [7u32, 0, 10, 10] {
            record.extend_from_slice(&v.to_le_bytes());
        }
        record.extend_from_slice(b"0123456789");
        let steps = vec![
            Some(header[..10].to_vec()),
            None,
            Some(header[10..].to_vec()),
            None,
            Some(record[..20].to_vec()),
            None,
            None,
            Some(record[20..].to_vec()),
            None,
        ];
        let mut src = super::super::PcapSource::from_reader("pipe".into(), Box::new(Script(steps.into()))).unwrap();
        assert!(matches!(src.next_frame(), Err(super::super::SourceError::Idle { .. })));
        assert!(matches!(src.next_frame(), Err(super::super::SourceError::Idle { .. })));
        assert!(matches!(src.next_frame(), Err(super::super::SourceError::Idle { .. })));
        let f = src.next_frame().unwrap().unwrap();
        assert_eq!((f.data, f.number, f.ts.0), (&b"0123456789"[..], 1, 7_000_000_000));
        assert!(matches!(src.next_frame(), Err(super::super::SourceError::Idle { .. })));
        assert!(src.next_frame().unwrap().is_none());
        let s = src.stats();
        assert_eq!((s.frames, s.caplen_above_snaplen, s.damaged, s.bytes_read), (1, 1, 0, 24 + 26));
    }

    #[test]
    fn only_pipes_stdin_and_devices_are_streaming() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.pcap");
        std::fs::write(&file, b"x").unwrap();
        assert!(!is_streaming(&file));
        assert!(!is_streaming(&dir.path().join("missing")));
        assert!(is_streaming(Path::new("-")));
        assert!(is_streaming(Path::new("/dev/null")));
    }
}
