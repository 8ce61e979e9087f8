//! `replayer inspect`: lists the exchanges of segment files, as readable lines or as JSON (one object per line), in
//! time order across every file and segment given (the selection of `run`: [`crate::select`], with its filters),
//! optionally with their bodies, and says on standard error what could not be read.
//!
//! A readable line names the connection as `c<connection id>#<order on it>`, the recorded ids that `--json`, the
//! HAR export and `run --dry-run` show too. Times are UTC, marked `Z`.

use std::io::{self, Write};

use tapedeck_model::{Body, Exchange, Header};

use crate::bodies;
use crate::cli::InspectOpts;
use crate::select::select;
use crate::view::{ExchangeView, start_time, text};

/// What `inspect` found, for the exit status.
#[derive(Debug, Default)]
pub struct InspectOutcome {
    /// Exchanges printed.
    pub exchanges: u64,
    /// Segment files read (in full or in part).
    pub files: u64,
    /// Problems met (damaged blocks, torn tails, unreadable files), each already reported on standard error.
    pub problems: u64,
}

/// Prints the selected exchanges of every segment under `opts.paths`, earliest first.
pub fn inspect(opts: &InspectOpts, out: &mut dyn Write) -> anyhow::Result<InspectOutcome> {
    let mut filter = opts.filter.filter();
    filter.keep_without_request = true;
    let selection = select(&opts.paths, &filter, opts.filter.max_selection_bytes)?;
    for w in &selection.warnings {
        // An empty directory is not an error: a run that found no HTTP writes no segment.
        eprintln!("replayer: {w}");
    }
    let stats = &selection.stats;
    let mut outcome = InspectOutcome {
        exchanges: 0,
        files: stats.files,
        problems: stats.files_unreadable + stats.damaged_regions + stats.torn_tails,
    };
    for ex in &selection.exchanges {
        let written = if opts.json { print_json(ex, opts.bodies, out) } else { print_line(ex, opts.bodies, out) };
        match written {
            Ok(()) => outcome.exchanges += 1,
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(outcome),
            Err(e) => return Err(e.into()),
        }
    }
    out.flush().or_else(|e| if e.kind() == io::ErrorKind::BrokenPipe { Ok(()) } else { Err(e) })?;
    if let Some(loss) = stats.loss() {
        eprintln!("replayer: {loss}");
    }
    if filter.narrows() || filter.from.is_some() || filter.to.is_some() || filter.limit.is_some() {
        eprintln!("replayer: {}", opts.filter.summary(stats, "exchanges"));
    }
    Ok(outcome)
}

fn print_json(ex: &Exchange, bodies: bool, out: &mut dyn Write) -> io::Result<()> {
    let view = if bodies { ExchangeView::with_bodies(ex) } else { ExchangeView::new(ex) };
    serde_json::to_writer(&mut *out, &view)?;
    out.write_all(b"\n")
}

fn print_line(ex: &Exchange, bodies: bool, out: &mut dyn Write) -> io::Result<()> {
    let when = readable_time(ex).unwrap_or_else(|| "-".into());
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
    )?;
    if bodies {
        if let Some(r) = &ex.request {
            print_body(">", &r.body, &r.headers, out)?;
        }
        if let Some(r) = &ex.response {
            print_body("<", &r.body, &r.headers, out)?;
        }
    }
    Ok(())
}

/// A body under its exchange's line, each line of it prefixed with `    > ` (request) or `    < ` (response).
fn print_body(side: &str, body: &Body, headers: &[Header], out: &mut dyn Write) -> io::Result<()> {
    if body.bytes.is_empty() {
        return Ok(());
    }
    let shown = bodies::shown(body, headers);
    let mut about = Vec::new();
    if let Some(u) = &shown.undone {
        about.push(format!("{u} decoded"));
    }
    if let Some(why) = &shown.not_decoded {
        about.push(format!("not decoded: {why}"));
    }
    if (body.bytes.len() as u64) < body.full_len {
        about.push(format!("{} of {} bytes stored", body.bytes.len(), body.full_len));
    }
    if !about.is_empty() {
        writeln!(out, "    {side} ({})", about.join("; "))?;
    }
    if let Some(lines) = bodies::grpc_lines(body, headers) {
        for line in lines {
            writeln!(out, "    {side} {line}")?;
        }
        return Ok(());
    }
    if bodies::is_text(&shown.bytes) {
        for line in String::from_utf8_lossy(&shown.bytes).lines() {
            writeln!(out, "    {side} {line}")?;
        }
        Ok(())
    } else {
        writeln!(out, "    {side} ({})", bodies::binary_summary(&shown.bytes))
    }
}

/// `2026-11-21 19:33:00.500000Z`: the start of `ex` in UTC.
fn readable_time(ex: &Exchange) -> Option<String> {
    start_time(ex).map(|t| t.replacen('T', " ", 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapedeck_model::{Timestamp, Timing};

    #[test]
    fn times_carry_their_zone() {
        let mut ex = Exchange {
            id: 0,
            connection_id: 0,
            order: 0,
            stream_id: None,
            proto: tapedeck_model::Protocol::Http11,
            client: "10.0.0.1:1".parse().unwrap(),
            server: "10.0.0.2:2".parse().unwrap(),
            timing: Timing::default(),
            request: None,
            response: None,
            flags: Default::default(),
            labels: vec![],
            masked_by: vec![],
        };
        assert_eq!(readable_time(&ex), None);
        // 2026-11-21 19:33:00.5 UTC
        ex.timing.request_first = Some(Timestamp(1_795_289_580_500_000_000));
        assert_eq!(readable_time(&ex).as_deref(), Some("2026-11-21 19:33:00.500000Z"));
        assert_eq!(start_time(&ex).as_deref(), Some("2026-11-21T19:33:00.500000Z"));
        // 2000-02-29 (leap day) 12:00:00
        ex.timing.request_first = Some(Timestamp(951_825_600_000_000_000));
        assert_eq!(readable_time(&ex).as_deref(), Some("2000-02-29 12:00:00.000000Z"));
    }
}
