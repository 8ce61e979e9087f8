//! The segment writer: exchanges in, `.seg` files out. Encodes each exchange with bincode into a reused block
//! buffer, seals full blocks with a reused zstd compressor, rotates files by size and capture-time age at block
//! boundaries, and finishes a file with its footer index, an fsync and an atomic rename from `.seg.tmp` to `.seg`.
//!
//! Nothing is dropped silently: an exchange that cannot be encoded is refused with an error and counted in
//! [`WriterStats::exchanges_rejected`]; exchanges lost because a block could not be written are counted in
//! [`WriterStats::exchanges_lost`].
//!
//! After an I/O error (disk full, quota, a vanished directory) the writer leaves nothing that could confuse a
//! reader: the file being written is cut back to its last whole block and finished (footer, rename to `.seg`)
//! when that is possible, left as a `.seg.tmp` ending on a whole block when the footer cannot be written, and
//! removed when it holds no block. The next [`SegmentWriter::write`] starts a new file, so a caller retries by
//! writing again; [`SegmentWriter::note_dropped`] counts what the caller dropped meanwhile.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::files::{create_private, ensure_dir, segment_paths, sync_dir};
use super::layout::{self, BlockFields, CODEC_STORED, CODEC_ZSTD, HeaderBody, MAX_FINGERPRINT};
use super::{MAX_BLOCK_BYTES, MAX_RECORD_BYTES, SegmentError, bincode_config, time_key};
use crate::{Exchange, Timestamp};

/// Configuration of a [`SegmentWriter`]. Plain fields; [`Default`] gives the documented defaults.
#[derive(Clone, Debug)]
pub struct SegmentWriterConfig {
    /// Directory of the files (created with mode 0700 if missing). Default `.`.
    pub dir: PathBuf,
    /// File name prefix: files are `<prefix>-<YYYYMMDDTHHMMSSZ>-<seq>.seg`. Default `tapedeck`.
    pub prefix: String,
    /// Rotate once a file reaches this many bytes (checked after each block). Default 256 MiB.
    pub max_file_bytes: u64,
    /// Rotate before an exchange would make the capture times of a file span more than this. Default 10 minutes.
    pub max_file_age: Duration,
    /// Seal a block once its raw (uncompressed) records reach this many bytes. Default 1 MiB; at most 64 MiB.
    pub block_raw_bytes: usize,
    /// Seal a block once it holds this many exchanges. Default 8192.
    pub max_block_exchanges: usize,
    /// zstd compression level. Default 1: on JSON-like traffic it compresses about as well as level 3 (5.0x
    /// against 4.6x in tests/throughput.rs) at 1.7 times the speed (about 470 against 280 MB/s of raw records per
    /// core), which keeps the writer well over 300 MB/s.
    pub zstd_level: i32,
    /// Labels written in every file header.
    pub labels: Vec<(String, String)>,
    /// Masking-policy fingerprint written in every file header (at most 64 bytes; empty for none).
    pub masking_fingerprint: Vec<u8>,
    /// Writer name written in the header. Default `tapedeck-model/<version>`.
    pub writer_name: String,
}

impl Default for SegmentWriterConfig {
    fn default() -> Self {
        SegmentWriterConfig {
            dir: PathBuf::from("."),
            prefix: "tapedeck".into(),
            max_file_bytes: 256 << 20,
            max_file_age: Duration::from_secs(600),
            block_raw_bytes: 1 << 20,
            max_block_exchanges: 8192,
            zstd_level: 1,
            labels: Vec::new(),
            masking_fingerprint: Vec::new(),
            writer_name: concat!("tapedeck-model/", env!("CARGO_PKG_VERSION")).into(),
        }
    }
}

impl SegmentWriterConfig {
    /// The defaults, writing into `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SegmentWriterConfig { dir: dir.into(), ..Default::default() }
    }

    fn validate(&self) -> Result<(), SegmentError> {
        let bad = |m: String| Err(SegmentError::Config(m));
        if self.prefix.is_empty() || self.prefix.contains(['/', '\0']) {
            return bad(format!("prefix {:?} must be non-empty without '/' or NUL", self.prefix));
        }
        if self.block_raw_bytes == 0 || self.block_raw_bytes > MAX_BLOCK_BYTES as usize {
            return bad(format!("block_raw_bytes {} must be in 1..={MAX_BLOCK_BYTES}", self.block_raw_bytes));
        }
        if self.max_block_exchanges == 0 || self.max_block_exchanges > u32::MAX as usize {
            return bad("max_block_exchanges must be at least 1".into());
        }
        if self.max_file_bytes == 0 {
            return bad("max_file_bytes must be at least 1".into());
        }
        if !zstd::compression_level_range().contains(&self.zstd_level) {
            return bad(format!("zstd level {} is out of range", self.zstd_level));
        }
        if self.masking_fingerprint.len() > MAX_FINGERPRINT {
            return bad(format!("masking fingerprint is over {MAX_FINGERPRINT} bytes"));
        }
        Ok(())
    }
}

/// Counters of a [`SegmentWriter`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriterStats {
    /// Exchanges accepted (not refused); those then lost to an I/O error are also in `exchanges_lost`. Every
    /// exchange offered is in `exchanges` or `exchanges_rejected`, and every one the caller had is in those or in
    /// `exchanges_dropped`.
    pub exchanges: u64,
    /// Exchanges refused by `write` (too large to encode, or an encoding error); not written.
    pub exchanges_rejected: u64,
    /// Exchanges lost because their block could not be written (I/O error); see the returned error.
    pub exchanges_lost: u64,
    /// Blocks written.
    pub blocks: u64,
    /// Blocks written uncompressed because zstd did not make them smaller.
    pub blocks_stored: u64,
    /// Raw (encoded, uncompressed) record bytes of the blocks written, length prefixes included.
    pub raw_bytes: u64,
    /// Payload bytes of the blocks written (after compression).
    pub compressed_bytes: u64,
    /// All bytes written to files (headers, blocks, footers).
    pub file_bytes: u64,
    /// Files created.
    pub files_started: u64,
    /// Files finished (footer written, renamed to `.seg`).
    pub files_finished: u64,
    /// Files left behind as `.seg.tmp` after an I/O error while writing them (cut back to their last whole block
    /// when the file system allowed it).
    pub files_abandoned: u64,
    /// I/O errors returned by the writer (each failed create, write, sync or rename that a call returned).
    pub write_errors: u64,
    /// Exchanges the caller dropped without offering them to the writer, while writing was failing (counted
    /// through [`SegmentWriter::note_dropped`]).
    pub exchanges_dropped: u64,
    /// Files finished early after an I/O error: cut back to their last whole block, then footer and rename.
    pub files_salvaged: u64,
    /// Partial files removed after an I/O error because they held no whole block.
    pub files_removed: u64,
    /// Rotations because a file reached `max_file_bytes`.
    pub rotations_by_size: u64,
    /// Rotations because a file's capture times would have spanned more than `max_file_age`.
    pub rotations_by_age: u64,
}

/// The file being written.
struct OpenFile {
    file: File,
    tmp: PathBuf,
    path: PathBuf,
    len: u64,
    entries: Vec<u8>,
    min_key: u64,
    max_key: u64,
}

/// Writes exchanges into rotating segment files. See the module docs.
///
/// Dropping a writer without [`SegmentWriter::finish`] behaves like a crash after a best-effort
/// [`SegmentWriter::flush`]: the `.seg.tmp` file stays, readable up to its last block.
pub struct SegmentWriter {
    cfg: SegmentWriterConfig,
    stats: WriterStats,
    compressor: zstd::bulk::Compressor<'static>,
    /// Records of the block being filled.
    raw: Vec<u8>,
    /// Compressed payload, reused.
    packed: Vec<u8>,
    pending: u32,
    pending_first: u64,
    pending_last: u64,
    last_key: u64,
    file: Option<OpenFile>,
    next_seq: u64,
    finished: Vec<PathBuf>,
}

/// bincode `Writer` appending to a `Vec` (faster than going through `std::io::Write`).
struct VecWriter<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for VecWriter<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

impl SegmentWriter {
    /// Checks the configuration and creates the directory; files are created on the first exchange.
    pub fn create(cfg: SegmentWriterConfig) -> Result<Self, SegmentError> {
        cfg.validate()?;
        ensure_dir(&cfg.dir)?;
        let compressor = zstd::bulk::Compressor::new(cfg.zstd_level).map_err(SegmentError::Zstd)?;
        let raw = Vec::with_capacity(cfg.block_raw_bytes + cfg.block_raw_bytes / 8);
        Ok(SegmentWriter {
            cfg,
            stats: WriterStats::default(),
            compressor,
            raw,
            packed: Vec::new(),
            pending: 0,
            pending_first: u64::MAX,
            pending_last: 0,
            last_key: 0,
            file: None,
            next_seq: 0,
            finished: Vec::new(),
        })
    }

    /// The counters.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &SegmentWriterConfig {
        &self.cfg
    }

    /// The `.seg.tmp` path of the file being written, if one is open.
    pub fn current_tmp_path(&self) -> Option<&Path> {
        self.file.as_ref().map(|f| f.tmp.as_path())
    }

    /// Counts `n` exchanges the caller dropped instead of writing them (while writing was failing), so that the
    /// writer's counters account for every exchange.
    pub fn note_dropped(&mut self, n: u64) {
        self.stats.exchanges_dropped += n;
    }

    /// Counts an I/O error on its way out.
    fn counted<T>(&mut self, r: Result<T, SegmentError>) -> Result<T, SegmentError> {
        if let Err(SegmentError::Io { .. } | SegmentError::IoAt { .. }) = &r {
            self.stats.write_errors += 1;
        }
        r
    }

    /// Buffers one exchange, sealing the block when it is full and rotating the file when it is full or old.
    ///
    /// An I/O error means the exchanges of the block being sealed are lost (counted in
    /// [`WriterStats::exchanges_lost`]) and the file was closed (see the module docs); the next call opens a new
    /// file. An encoding error refuses only this exchange.
    pub fn write(&mut self, ex: &Exchange) -> Result<(), SegmentError> {
        let r = self.write_inner(ex);
        self.counted(r)
    }

    fn write_inner(&mut self, ex: &Exchange) -> Result<(), SegmentError> {
        let key = time_key(ex, self.last_key);
        if let Some(f) = &self.file {
            let span = f.max_key.max(key) - f.min_key.min(key);
            if u128::from(span) > self.cfg.max_file_age.as_nanos() {
                self.stats.rotations_by_age += 1;
                if let Err(e) = self.finish_current() {
                    self.stats.exchanges += 1;
                    self.stats.exchanges_lost += 1;
                    return Err(e);
                }
            }
        }

        let start = self.raw.len();
        self.raw.extend_from_slice(&[0; 4]);
        if let Err(source) = bincode::encode_into_writer(ex, VecWriter(&mut self.raw), bincode_config()) {
            self.raw.truncate(start);
            self.stats.exchanges_rejected += 1;
            return Err(SegmentError::Encode { id: ex.id, source });
        }
        let size = self.raw.len() - start - 4;
        if size > MAX_RECORD_BYTES as usize {
            self.raw.truncate(start);
            self.raw.shrink_to(self.cfg.block_raw_bytes + self.cfg.block_raw_bytes / 8);
            self.stats.exchanges_rejected += 1;
            return Err(SegmentError::RecordTooLarge { id: ex.id, size });
        }
        self.raw[start..start + 4].copy_from_slice(&(size as u32).to_le_bytes());

        let mut start = start;
        if self.raw.len() > MAX_BLOCK_BYTES as usize && self.pending > 0 {
            // The new record does not fit beside the pending ones: seal those alone, keep the record.
            let record = self.raw.split_off(start);
            let sealed = self.seal_block();
            self.raw = record;
            start = 0;
            if let Err(e) = sealed {
                self.raw.clear();
                self.stats.exchanges += 1;
                self.stats.exchanges_lost += 1;
                return Err(e);
            }
        }

        if self.file.is_none()
            && let Err(e) = self.open_file(key)
        {
            self.raw.truncate(start);
            self.stats.exchanges += 1;
            self.stats.exchanges_lost += 1;
            return Err(e);
        }
        if let Some(f) = &mut self.file {
            f.min_key = f.min_key.min(key);
            f.max_key = f.max_key.max(key);
        }
        self.pending += 1;
        self.pending_first = self.pending_first.min(key);
        self.pending_last = self.pending_last.max(key);
        self.last_key = key;
        self.stats.exchanges += 1;

        if self.raw.len() >= self.cfg.block_raw_bytes || self.pending as usize >= self.cfg.max_block_exchanges {
            self.seal_block()?;
            if self.file.as_ref().is_some_and(|f| f.len >= self.cfg.max_file_bytes) {
                self.stats.rotations_by_size += 1;
                self.finish_current()?;
            }
        }
        Ok(())
    }

    /// Seals the block being filled and fsyncs the file's data: every exchange written so far is durable.
    pub fn flush(&mut self) -> Result<(), SegmentError> {
        let r = self.seal_block().and_then(|()| match &self.file {
            Some(f) => f.file.sync_data().map_err(|e| SegmentError::io(&f.tmp, "syncing", e)),
            None => Ok(()),
        });
        self.counted(r)
    }

    /// Finishes the current file now, if one is open (the next exchange starts a new one); returns its path.
    /// Lets a caller rotate on its own schedule, e.g. when capture time advances with no traffic.
    pub fn rotate(&mut self) -> Result<Option<PathBuf>, SegmentError> {
        let r = self.finish_current();
        self.counted(r)
    }

    /// Rotates if the open file's first capture time is more than `max_file_age` before `now` (a capture time).
    /// Call it as capture time advances so that a quiet period still closes files.
    pub fn advance_time(&mut self, now: Timestamp) -> Result<Option<PathBuf>, SegmentError> {
        let old = self
            .file
            .as_ref()
            .is_some_and(|f| u128::from(now.0.saturating_sub(f.min_key)) > self.cfg.max_file_age.as_nanos());
        if old {
            self.stats.rotations_by_age += 1;
            let r = self.finish_current();
            return self.counted(r);
        }
        Ok(None)
    }

    /// Takes the paths of the files finished so far (by rotation), so that a long-running writer's list stays
    /// small.
    pub fn take_finished(&mut self) -> Vec<PathBuf> {
        std::mem::take(&mut self.finished)
    }

    /// Seals the last block, writes the footer, fsyncs, renames the file to `.seg` and fsyncs the directory.
    /// Returns every file finished and not yet taken with [`SegmentWriter::take_finished`].
    pub fn finish(mut self) -> Result<Vec<PathBuf>, SegmentError> {
        let r = self.finish_current();
        self.counted(r)?;
        Ok(std::mem::take(&mut self.finished))
    }

    fn open_file(&mut self, first: u64) -> Result<(), SegmentError> {
        let first = Timestamp(first);
        let (path, tmp, file) = loop {
            let seq = self.next_seq;
            self.next_seq += 1;
            let (path, tmp) = segment_paths(&self.cfg.dir, &self.cfg.prefix, first, seq);
            if path.exists() {
                continue;
            }
            match create_private(&tmp) {
                Ok(file) => break (path, tmp, file),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(SegmentError::io(&tmp, "creating", e)),
            }
        };
        let body = layout::encode_header_body(&HeaderBody {
            created_unix_nanos: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            first_capture: first,
            sequence: self.next_seq - 1,
            pid: std::process::id(),
            writer: self.cfg.writer_name.clone(),
            masking_fingerprint: self.cfg.masking_fingerprint.clone(),
            labels: self.cfg.labels.clone(),
        });
        let body_len = u32::try_from(body.len())
            .ok()
            .filter(|&n| n <= layout::MAX_HEADER_BODY)
            .ok_or_else(|| SegmentError::Config(format!("header (labels) of {} bytes is over 1 MiB", body.len())))?;
        let mut header = Vec::with_capacity(layout::FILE_PREFIX_LEN + body.len() + 4);
        header.extend_from_slice(&layout::encode_prefix(body_len));
        header.extend_from_slice(&body);
        let c = layout::crc(&header);
        header.extend_from_slice(&c.to_le_bytes());
        let mut file = file;
        if let Err(e) = file.write_all(&header) {
            // Nothing of value is in it: remove it rather than leave a torn header for readers.
            drop(file);
            if std::fs::remove_file(&tmp).is_ok() {
                self.stats.files_removed += 1;
            } else {
                self.stats.files_abandoned += 1;
            }
            return Err(SegmentError::io(&tmp, "writing header", e));
        }
        if let Err(e) = sync_dir(&self.cfg.dir) {
            drop(file);
            if std::fs::remove_file(&tmp).is_ok() {
                self.stats.files_removed += 1;
            } else {
                self.stats.files_abandoned += 1;
            }
            return Err(e);
        }
        self.stats.files_started += 1;
        self.stats.file_bytes += header.len() as u64;
        self.file = Some(OpenFile {
            file,
            tmp,
            path,
            len: header.len() as u64,
            entries: Vec::new(),
            min_key: first.0,
            max_key: first.0,
        });
        Ok(())
    }

    /// Compresses and writes the pending records as one block.
    fn seal_block(&mut self) -> Result<(), SegmentError> {
        if self.pending == 0 {
            return Ok(());
        }
        let records = self.pending;
        let (first, last) = (self.pending_first, self.pending_last);
        self.pending = 0;
        self.pending_first = u64::MAX;
        self.pending_last = 0;
        let Some(f) = &mut self.file else {
            // Unreachable by construction (a record is only pending once a file is open); count, don't panic.
            self.stats.exchanges_lost += u64::from(records);
            self.raw.clear();
            return Ok(());
        };

        self.packed.clear();
        self.packed.reserve(zstd::zstd_safe::compress_bound(self.raw.len()));
        let compressed = self.compressor.compress_to_buffer(&self.raw[..], &mut self.packed);
        let (codec, payload): (u8, &[u8]) = match compressed {
            Ok(n) if n < self.raw.len() => (CODEC_ZSTD, &self.packed[..n]),
            _ => (CODEC_STORED, &self.raw[..]),
        };
        // Both lengths are at most MAX_BLOCK_BYTES (checked in `write`), so they fit a u32.
        let fields = BlockFields {
            codec,
            stored_len: payload.len() as u32,
            raw_len: self.raw.len() as u32,
            records,
            first_ts: first,
            last_ts: last,
            payload_crc: layout::crc(payload),
        };
        let header = layout::encode_block_header(&fields);
        let written = f.file.write_all(&header).and_then(|()| f.file.write_all(payload));
        if let Err(e) = written {
            let offset = f.len;
            let tmp = f.tmp.clone();
            self.stats.exchanges_lost += u64::from(records);
            self.raw.clear();
            if let Some(f) = self.file.take() {
                self.close_after_error(f);
            }
            return Err(SegmentError::io_at(&tmp, offset, "writing block", e));
        }
        layout::push_index_entry(&mut f.entries, f.len, &fields);
        let block_len = (header.len() + payload.len()) as u64;
        f.len += block_len;
        self.stats.blocks += 1;
        self.stats.blocks_stored += u64::from(codec == CODEC_STORED);
        self.stats.raw_bytes += self.raw.len() as u64;
        self.stats.compressed_bytes += payload.len() as u64;
        self.stats.file_bytes += block_len;
        self.raw.clear();
        Ok(())
    }

    /// Seals, writes footer and trailer, fsyncs, renames and fsyncs the directory.
    fn finish_current(&mut self) -> Result<Option<PathBuf>, SegmentError> {
        self.seal_block()?;
        let Some(mut f) = self.file.take() else {
            return Ok(None);
        };
        let footer = layout::encode_footer(&f.entries);
        let footer_len = u32::try_from(footer.len()).unwrap_or(u32::MAX);
        let trailer = layout::encode_trailer(f.len, footer_len);
        let done = f
            .file
            .write_all(&footer)
            .and_then(|()| f.file.write_all(&trailer))
            .map_err(|e| SegmentError::io_at(&f.tmp, f.len, "writing footer", e))
            .and_then(|()| f.file.sync_all().map_err(|e| SegmentError::io(&f.tmp, "syncing", e)))
            .and_then(|()| {
                std::fs::rename(&f.tmp, &f.path).map_err(|e| SegmentError::io(&f.tmp, "renaming to .seg", e))
            });
        if let Err(e) = done {
            // Not renamed: cut the partial footer off so that the .seg.tmp ends on a whole block.
            let _ = f.file.set_len(f.len);
            self.stats.files_abandoned += 1;
            return Err(e);
        }
        self.stats.file_bytes += (footer.len() + trailer.len()) as u64;
        self.stats.files_finished += 1;
        self.finished.push(f.path.clone());
        sync_dir(&self.cfg.dir)?;
        Ok(Some(f.path))
    }
}

impl SegmentWriter {
    /// After a failed block write: cuts the file back to its last whole block and finishes it if it holds one
    /// (salvaged), else removes it; when finishing fails too, leaves the `.seg.tmp` ending on a whole block.
    fn close_after_error(&mut self, mut f: OpenFile) {
        let cut = f.file.set_len(f.len);
        if f.entries.is_empty() {
            drop(f.file);
            if std::fs::remove_file(&f.tmp).is_ok() {
                self.stats.files_removed += 1;
            } else {
                self.stats.files_abandoned += 1;
            }
            return;
        }
        if cut.is_err() {
            self.stats.files_abandoned += 1;
            return;
        }
        let footer = layout::encode_footer(&f.entries);
        let footer_len = u32::try_from(footer.len()).unwrap_or(u32::MAX);
        let trailer = layout::encode_trailer(f.len, footer_len);
        let done = f
            .file
            .seek(SeekFrom::Start(f.len))
            .and_then(|_| f.file.write_all(&footer))
            .and_then(|()| f.file.write_all(&trailer))
            .and_then(|()| f.file.sync_all())
            .and_then(|()| std::fs::rename(&f.tmp, &f.path));
        match done {
            Ok(()) => {
                let _ = sync_dir(&self.cfg.dir);
                self.stats.file_bytes += (footer.len() + trailer.len()) as u64;
                self.stats.files_finished += 1;
                self.stats.files_salvaged += 1;
                self.finished.push(f.path);
            }
            Err(_) => {
                let _ = f.file.set_len(f.len);
                self.stats.files_abandoned += 1;
            }
        }
    }
}

impl Drop for SegmentWriter {
    fn drop(&mut self) {
        // Best effort: keep what was buffered readable in the .tmp file. Errors are counted in stats by
        // seal_block and cannot be reported from here.
        let _ = self.seal_block();
    }
}
