//! The end-of-run summary for humans: a headline of the figures users look at first, then every non-zero counter
//! of every stage, so that no drop, gap or error is left out.

use std::fmt::Write;

use serde::Serialize;
use tapedeck_model::Flags;

use crate::pipeline::RunSummary;

/// Renders the summary as text lines.
pub fn render(s: &RunSummary) -> String {
    let mut out = String::new();
    let mb = s.source.bytes_read as f64 / 1e6;
    let rate = if s.seconds > 0.0 { mb / s.seconds } else { 0.0 };
    let _ = writeln!(
        out,
        "read {} packets ({:.1} MB) from {} input(s) in {:.2}s ({:.0} MB/s)",
        s.source.frames,
        mb,
        s.inputs.len(),
        s.seconds,
        rate
    );
    if s.source.filtered_out > 0 {
        let _ = writeln!(out, "--filter: {} packet(s) filtered out", s.source.filtered_out);
    }
    if let Some(rss) = s.peak_rss_bytes {
        let _ = writeln!(out, "peak memory (RSS): {:.1} MB", rss as f64 / 1e6);
    }
    for input in &s.inputs {
        if let Some(e) = &input.error {
            let _ = writeln!(out, "  {}: {} frames, stopped: {e}", input.name, input.frames);
        }
    }
    let t = &s.exchanges;
    let _ = writeln!(
        out,
        "exchanges: {} ({} with request, {} with response) {}",
        t.total,
        t.with_request,
        t.with_response,
        t.by_proto.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
    );
    let _ = writeln!(
        out,
        "flagged: gap={} incomplete={} truncated={} parse_error={} no_response={} no_request={} reset={} \
         evicted={} mid_stream={}",
        t.flagged(Flags::GAP),
        t.flagged(Flags::INCOMPLETE),
        t.flagged(Flags::TRUNCATED),
        t.flagged(Flags::PARSE_ERROR),
        t.flagged(Flags::NO_RESPONSE),
        t.flagged(Flags::NO_REQUEST),
        t.flagged(Flags::RESET),
        t.flagged(Flags::EVICTED),
        t.flagged(Flags::MID_STREAM),
    );
    let _ = writeln!(
        out,
        "segments: {} file(s), {} bytes compressed",
        s.segments.len(),
        counter(&s.writer, "compressed_bytes").unwrap_or(0)
    );
    section(&mut out, "source", &s.source);
    section(&mut out, "decode", &s.decode);
    section(&mut out, "reassembly", &s.reassembly);
    section(&mut out, "sessions", &s.sessions);
    if let Some(m) = &s.masking {
        let _ = writeln!(
            out,
            "masking: {} exchange(s) masked, {} dropped, {} value(s) replaced",
            m.exchanges_masked, m.exchanges_dropped, m.values_masked
        );
        section(&mut out, "masking", m);
    } else {
        let _ = writeln!(out, "masking: off");
    }
    section(&mut out, "writer", &s.writer);
    if let Some(services) = &s.services {
        section(&mut out, "services", services);
    }
    if let Some(live) = &s.live {
        for i in &live.interfaces {
            section(&mut out, &format!("interface {}", i.name), i);
        }
        section(&mut out, "retention", &live.retention);
    }
    out
}

/// One line with every non-zero counter of a stage (nested structs flattened with dots).
fn section(out: &mut String, name: &str, stats: &impl Serialize) {
    let Ok(value) = serde_json::to_value(stats) else { return };
    let mut parts = Vec::new();
    flatten("", &value, &mut parts);
    if !parts.is_empty() {
        let _ = writeln!(out, "  {name}: {}", parts.join(" "));
    }
}

fn flatten(prefix: &str, v: &serde_json::Value, parts: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, parts);
            }
        }
        serde_json::Value::Number(n) if n.as_f64() != Some(0.0) => parts.push(format!("{prefix}={n}")),
        _ => {}
    }
}

fn counter(stats: &impl Serialize, name: &str) -> Option<u64> {
    serde_json::to_value(stats).ok()?.get(name)?.as_u64()
}
