//! tshark as the oracle for golden tests: the `<capture>.tshark.tsv` files are tshark's reading of each
//! capture (never typed by hand), plus capinfos' summary and request/response counts taken from the TSV.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::proc;

/// tshark's display filter: HTTP/1 requests and responses, HTTP/2 HEADERS frames.
pub const FILTER: &str = "http.request || http.response || http2.type == 1";

/// Fields written to the TSV, in order.
pub const FIELDS: &[&str] = &[
    "frame.number",
    "frame.time_epoch",
    "tcp.stream",
    "tcp.srcport",
    "tcp.dstport",
    "http.request.method",
    "http.request.uri",
    "http.host",
    "http.response.code",
    "http.content_length_header",
    "http.transfer_encoding",
    "http2.streamid",
    "http2.headers.method",
    "http2.headers.path",
    "http2.headers.status",
];

/// How tshark should decode a server port (`-d tcp.port==PORT,PROTO`).
#[derive(Clone, Copy, Debug)]
pub struct DecodeAs {
    /// The server port.
    pub port: u16,
    /// `http` or `http2`.
    pub proto: &'static str,
}

/// The tshark command that produces the TSV for `capture`.
pub fn tshark_command(capture: &Path, decode: &[DecodeAs]) -> Command {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(capture);
    for d in decode {
        cmd.args(["-d", &format!("tcp.port=={},{}", d.port, d.proto)]);
    }
    cmd.args(["-Y", FILTER, "-T", "fields"]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    cmd.args(["-E", "header=y", "-E", "separator=/t"]);
    cmd
}

/// Runs tshark and writes its output to `tsv`; returns the TSV text.
pub fn write_tsv(capture: &Path, decode: &[DecodeAs], tsv: &Path) -> Result<String> {
    let out = proc::run_ok(&mut tshark_command(capture, decode), Duration::from_secs(120))?;
    let text = String::from_utf8(out.stdout).context("tshark output is not UTF-8")?;
    if text.lines().count() < 2 {
        bail!("tshark found no HTTP messages in {}", capture.display());
    }
    std::fs::write(tsv, &text).with_context(|| format!("writing {}", tsv.display()))?;
    Ok(text)
}

/// Message counts in a TSV.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// HTTP/1 requests (`http.request.method` values).
    pub h1_requests: usize,
    /// HTTP/1 responses (`http.response.code` values, including 1xx).
    pub h1_responses: usize,
    /// HTTP/1 interim responses (1xx codes).
    pub h1_interim: usize,
    /// HTTP/2 request HEADERS (`http2.headers.method` values).
    pub h2_requests: usize,
    /// HTTP/2 response HEADERS (`http2.headers.status` values).
    pub h2_responses: usize,
    /// Distinct TCP connections with at least one message.
    pub connections: usize,
}

/// Counts messages in tshark's TSV (a cell may hold several comma-separated values).
pub fn count(tsv: &str) -> Counts {
    let mut lines = tsv.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (method, code, h2m, h2s, stream) = (
        col("http.request.method"),
        col("http.response.code"),
        col("http2.headers.method"),
        col("http2.headers.status"),
        col("tcp.stream"),
    );
    let mut c = Counts::default();
    let mut streams = std::collections::BTreeSet::new();
    for line in lines {
        let cells: Vec<&str> = line.split('\t').collect();
        let values = |i: Option<usize>| -> Vec<&str> {
            i.and_then(|i| cells.get(i)).map_or(Vec::new(), |v| v.split(',').filter(|s| !s.is_empty()).collect())
        };
        c.h1_requests += values(method).len();
        let codes = values(code);
        c.h1_responses += codes.len();
        c.h1_interim += codes.iter().filter(|v| v.starts_with('1')).count();
        c.h2_requests += values(h2m).len();
        c.h2_responses += values(h2s).len();
        if let Some(s) = values(stream).first() {
            streams.insert(s.to_string());
        }
    }
    c.connections = streams.len();
    c
}

/// The summary lines of `capinfos` for a capture.
pub fn capinfos(capture: &Path) -> Result<Vec<(String, String)>> {
    let out = proc::run_ok(Command::new("capinfos").arg(capture), Duration::from_secs(60))?;
    let keep = [
        "File type",
        "File encapsulation",
        "File timestamp precision",
        "Packet size limit",
        "Number of packets",
        "File size",
    ];
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| keep.iter().any(|want| k.starts_with(want)))
        .collect())
}

/// The packet count capinfos reports.
pub fn packet_count(info: &[(String, String)]) -> Option<u64> {
    info.iter()
        .find(|(k, _)| k == "Number of packets")
        .and_then(|(_, v)| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// tshark's TCP analysis of a capture: how many frames it flags as out-of-order, retransmitted, or following
/// a segment that is not in the capture. Real loopback traffic on several CPUs can be reordered.
pub fn tcp_analysis(capture: &Path) -> Result<Vec<(&'static str, usize)>> {
    let mut found = Vec::new();
    for (label, filter) in [
        ("out-of-order", "tcp.analysis.out_of_order"),
        ("retransmission", "tcp.analysis.retransmission"),
        ("previous segment not captured", "tcp.analysis.lost_segment"),
    ] {
        let mut cmd = Command::new("tshark");
        cmd.arg("-r").arg(capture).args(["-Y", filter, "-T", "fields", "-e", "frame.number"]);
        let out = proc::run_ok(&mut cmd, Duration::from_secs(60))?;
        let n = String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).count();
        found.push((label, n));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cells_and_multi_values() {
        let tsv = "frame.number\ttcp.stream\thttp.request.method\thttp.response.code\thttp2.headers.method\thttp2.headers.status\n\
                   4\t0\tGET\t\t\t\n\
                   6\t0\t\t100\t\t\n\
                   8\t0\t\t200\t\t\n\
                   9\t1\t\t\tGET,GET\t\n\
                   10\t1\t\t\t\t200,404\n";
        let c = count(tsv);
        assert_eq!((c.h1_requests, c.h1_responses, c.h1_interim), (1, 2, 1));
        assert_eq!((c.h2_requests, c.h2_responses, c.connections), (2, 2, 2));
    }
}
