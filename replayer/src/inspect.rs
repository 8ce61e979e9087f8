//! `replayer inspect`: lists the exchanges of segment files, as readable lines or as JSON (one object per line),
//! and says on standard error how much of each file was recovered when it was damaged or unfinished.

use std::io::{self, Write};
use std::path::PathBuf;

use tapedeck_model::Exchange;
use tapedeck_model::segment::{SegmentReader, list_segments_with_tmp};

use crate::view::{ExchangeView, text};

/// What `inspect` found, for the exit status.
#[derive(Debug, Default)]
pub struct InspectOutcome {
    /// Exchanges printed.
    pub exchanges: u64,
    /// Segment files read (in full or in part).
    pub files: u64,
    /// Problems met (damaged blocks, unreadable files), each already reported on standard error.
    pub problems: u64,
}

/// Prints the exchanges of every segment under `paths`.
pub fn inspect(paths: &[PathBuf], json: bool, out: &mut dyn Write) -> anyhow::Result<InspectOutcome> {
    let mut outcome = InspectOutcome::default();
    for path in paths {
        let files = list_segments_with_tmp(path).map_err(|e| anyhow::anyhow!("{e}"))?;
        if files.is_empty() {
            // A run that found no HTTP writes no segment: an empty directory is not an error.
            eprintln!("replayer: {}: no segment files there", path.display());
        }
        for file in files {
            let mut reader = match SegmentReader::open(&file) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("replayer: {e}");
                    outcome.problems += 1;
                    continue;
                }
            };
            outcome.files += 1;
            for item in reader.exchanges() {
                match item {
                    Ok(ex) => {
                        outcome.exchanges += 1;
                        let written = if json { print_json(&ex, out) } else { print_line(&ex, out) };
                        if let Err(e) = written {
                            if e.kind() == io::ErrorKind::BrokenPipe {
                                return Ok(outcome);
                            }
                            return Err(e.into());
                        }
                    }
                    Err(e) => {
                        eprintln!("replayer: {e}");
                        outcome.problems += 1;
                    }
                }
            }
            let recovery = reader.recovery();
            if !recovery.is_clean() {
                eprintln!("replayer: {}: {recovery}", file.display());
            }
        }
    }
    Ok(outcome)
}

fn print_json(ex: &Exchange, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer(&mut *out, &ExchangeView::new(ex))?;
    out.write_all(b"\n")
}

fn print_line(ex: &Exchange, out: &mut dyn Write) -> io::Result<()> {
    let when = ex.timing.start().map(|t| format_time(t.as_nanos())).unwrap_or_else(|| "-".into());
    let req = match &ex.request {
        Some(r) => format!("{} {}{}", text(&r.method), text(&r.authority), text(&r.path)),
        None => "(no request)".into(),
    };
    let resp = match &ex.response {
        Some(r) => format!("{} ({} B)", r.status, r.body.full_len),
        None => "(no response)".into(),
    };
    let stream = ex.stream_id.map(|s| format!(" s{s}")).unwrap_or_default();
    let flags = if ex.flags.is_empty() { String::new() } else { format!(" [{}]", ex.flags.names().join(",")) };
    writeln!(
        out,
        "{when} c{}#{}{stream} {} {} -> {} {req} => {resp}{flags}",
        ex.connection_id, ex.order, ex.proto, ex.client, ex.server
    )
}

/// `HH:MM:SS.micro` UTC of a nanosecond timestamp, with the date.
fn format_time(nanos: u64) -> String {
    let secs = nanos / 1_000_000_000;
    let micros = (nanos % 1_000_000_000) / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{micros:06}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_dates() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00.000000");
        // 2026-11-21 19:33:00.5 UTC
        assert_eq!(format_time(1_795_289_580_500_000_000), "2026-11-21 19:33:00.500000");
        // 2000-02-29 (leap day) 12:00:00
        assert_eq!(format_time(951_825_600_000_000_000), "2000-02-29 12:00:00.000000");
    }
}
