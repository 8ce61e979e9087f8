//! `replayer export PATH... --har FILE --jsonl FILE`: recorded exchanges out as HAR 1.2 (for browser dev tools
//! and HAR viewers) and/or JSON lines (one object per exchange, for log pipelines; `-` is standard output).
//! Segments are streamed: memory does not grow with the capture. Damaged segments are read up to what is intact,
//! with one warning per file naming it and the offsets.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use tapedeck_model::Exchange;
use tapedeck_model::segment::{SegmentReader, list_segments_with_tmp};

use crate::har::{HarStats, HarWriter, entry_from_exchange};
use crate::view::ExchangeView;

/// Counters of an export.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ExportStats {
    /// Segment files read.
    pub files: u64,
    /// Files that could not be opened.
    pub files_unreadable: u64,
    /// Files with damage (skipped blocks, torn tail, missing footer); each gave one warning.
    pub files_damaged: u64,
    /// Damaged blocks or regions skipped.
    pub damaged_regions: u64,
    /// Exchanges lost in damaged blocks (from their record counts; regions skipped by a scan and torn tails are
    /// not counted).
    pub exchanges_lost: u64,
    /// Exchanges read.
    pub exchanges: u64,
    /// Exchanges without a request: in JSON lines, not in HAR (a HAR entry needs a request).
    pub har_skipped_no_request: u64,
    /// JSON lines written.
    pub jsonl_lines: u64,
    /// HAR counters.
    pub har: HarStats,
}

impl ExportStats {
    /// Files that could not be read, in full or in part.
    pub fn problems(&self) -> u64 {
        self.files_unreadable + self.files_damaged
    }
}

/// One JSON line: the `inspect --json` view plus what log pipelines want at hand.
#[derive(Serialize)]
struct Line<'a> {
    #[serde(flatten)]
    view: ExchangeView<'a>,
    /// Request start to response end, ms.
    duration_ms: Option<f64>,
    /// Masking rules that changed the exchange.
    masked_by: &'a [String],
}

fn line(ex: &Exchange) -> Line<'_> {
    let t = &ex.timing;
    let duration_ms = match (t.request_first.or(t.request_last), t.response_last.or(t.response_first)) {
        (Some(a), Some(b)) if b >= a => Some((b.0 - a.0) as f64 / 1e6),
        _ => None,
    };
    Line { view: ExchangeView::new(ex), duration_ms, masked_by: &ex.masked_by }
}

/// Where output goes.
pub struct ExportTargets {
    /// HAR file.
    pub har: Option<PathBuf>,
    /// JSON lines file, or `-` for standard output.
    pub jsonl: Option<PathBuf>,
}

fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    File::create(path).map(BufWriter::new).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Exports every exchange under `paths`. Warnings go to `warn` (standard error in the binary). An empty directory
/// is not a problem (a run that found no HTTP writes no segment); see [`ExportStats::problems`].
pub fn export(
    paths: &[PathBuf],
    to: &ExportTargets,
    stdout: &mut dyn Write,
    warn: &mut dyn FnMut(&str),
) -> anyhow::Result<ExportStats> {
    if to.har.is_none() && to.jsonl.is_none() {
        anyhow::bail!("nothing to do: give --har FILE and/or --jsonl FILE (- for standard output)");
    }
    let mut stats = ExportStats::default();
    let mut har = match &to.har {
        Some(p) => Some(HarWriter::new(create(p)?, "exported by tapedeck replayer from recorded segments")?),
        None => None,
    };
    let mut jsonl_file = match &to.jsonl {
        Some(p) if p.as_os_str() != "-" => Some(create(p)?),
        _ => None,
    };
    let to_stdout = to.jsonl.as_ref().is_some_and(|p| p.as_os_str() == "-");
    for path in paths {
        let files = list_segments_with_tmp(path).map_err(|e| anyhow::anyhow!("{e}"))?;
        if files.is_empty() {
            warn(&format!("{}: no segment files there", path.display()));
        }
        for file in files {
            let mut reader = match SegmentReader::open(&file) {
                Ok(r) => r,
                Err(e) => {
                    stats.files_unreadable += 1;
                    warn(&e.to_string());
                    continue;
                }
            };
            stats.files += 1;
            let mut damage = Vec::new();
            let mut damaged_at = Vec::new();
            for item in reader.exchanges() {
                let ex = match item {
                    Ok(ex) => ex,
                    Err(e) => {
                        stats.damaged_regions += 1;
                        damaged_at.push(e.offset());
                        damage.push(e.offset().map_or_else(|| e.to_string(), |o| format!("offset {o}")));
                        continue;
                    }
                };
                stats.exchanges += 1;
                if let Some(h) = har.as_mut() {
                    match entry_from_exchange(&ex) {
                        Some(entry) => h.entry(&entry)?,
                        None => stats.har_skipped_no_request += 1,
                    }
                }
                if to.jsonl.is_some() {
                    let w: &mut dyn Write = match jsonl_file.as_mut() {
                        Some(f) => f,
                        None => &mut *stdout,
                    };
                    let written = serde_json::to_writer(&mut *w, &line(&ex)).map_err(io::Error::from);
                    match written.and_then(|()| w.write_all(b"\n")) {
                        Ok(()) => stats.jsonl_lines += 1,
                        // A closed pipe (`| head`): stop quietly.
                        Err(e) if to_stdout && e.kind() == io::ErrorKind::BrokenPipe => return Ok(stats),
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            let lost = crate::select::Lost::count(reader.blocks(), &damaged_at);
            stats.exchanges_lost += lost.exchanges;
            let recovery = reader.recovery();
            if recovery.torn_tail_bytes > 0 {
                damage
                    .push(format!("offset {} (torn tail)", recovery.file_len.saturating_sub(recovery.torn_tail_bytes)));
            }
            if !recovery.is_clean() || !damage.is_empty() {
                stats.files_damaged += 1;
                let at = if damage.is_empty() { String::new() } else { format!(" (damage at {})", damage.join(", ")) };
                let uncounted = lost.uncounted + u64::from(recovery.torn_tail_bytes > 0);
                warn(&format!(
                    "{}: damaged segment{at}: exported what could be read: {recovery}; {}",
                    file.display(),
                    crate::select::lost_words(lost.exchanges, lost.blocks, uncounted)
                ));
            }
        }
    }
    if let Some(h) = har {
        let (_, s) = h.finish()?;
        stats.har = s;
    }
    if let Some(mut f) = jsonl_file {
        f.flush()?;
    }
    stdout.flush()?;
    Ok(stats)
}
