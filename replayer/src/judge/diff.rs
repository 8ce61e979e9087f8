//! The vocabulary of a judgment's differences, shared by every comparer ([`super::compare`], [`super::json_diff`],
//! [`super::grpc`]): a [`FieldDiff`] and its [`DiffKind`], the counters of what was compared ([`CompareStats`]),
//! the caps ([`Limits`]), and the [`Out`] that collects differences up to the cap.

use serde::Serialize;
use tapedeck_model::Header;

/// Most characters of a value shown in a diff.
pub const MAX_VALUE_CHARS: usize = 120;

/// What kind of difference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// Present on both sides with different values.
    Changed,
    /// Recorded, absent from the live response.
    Missing,
    /// In the live response only.
    Added,
    /// Different JSON types (or JSON against not JSON).
    Type,
    /// A matcher (regex) rejected the live value.
    NoMatch,
    /// Different lengths or counts.
    Length,
}

/// One difference.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldDiff {
    /// The field: `status`, `header:NAME`, a JSON path, `body:...`, `grpc...`.
    pub field: String,
    /// The kind.
    pub kind: DiffKind,
    /// The recorded value, shortened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<String>,
    /// The live value, shortened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<String>,
}

impl std::fmt::Display for FieldDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.recorded.as_deref().unwrap_or("(absent)");
        let l = self.live.as_deref().unwrap_or("(absent)");
        match self.kind {
            DiffKind::NoMatch => write!(f, "{}: {l} does not match {r}", self.field),
            _ => write!(f, "{}: {r} -> {l}", self.field),
        }
    }
}

/// Counters of the comparison.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CompareStats {
    /// Bodies compared as JSON.
    pub bodies_json: u64,
    /// Bodies compared as text lines.
    pub bodies_text: u64,
    /// Bodies compared as gRPC messages.
    pub bodies_grpc: u64,
    /// Bodies compared by length and hash.
    pub bodies_binary: u64,
    /// gRPC messages that did not read as protobuf (compared as bytes).
    pub grpc_messages_not_protobuf: u64,
    /// Bodies not compared: one side was cut at a body cap.
    pub bodies_skipped_truncated: u64,
    /// Bodies not compared: larger than the decode cap once decoded.
    pub bodies_skipped_too_large: u64,
    /// Bodies whose content-encoding did not decode (compared as stored).
    pub decode_failed: u64,
    /// Recorded bodies labelled JSON that did not parse (compared as text).
    pub json_invalid: u64,
    /// Differences dropped past the per-exchange cap.
    pub diffs_capped: u64,
}

/// Comparison settings.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest decoded body compared.
    pub decode_cap: usize,
    /// Most differences kept per exchange.
    pub max_diffs: usize,
}

/// The differences found so far, capped.
pub(super) struct Out<'a> {
    pub(super) diffs: Vec<FieldDiff>,
    pub(super) max: usize,
    pub(super) stats: &'a mut CompareStats,
}

impl Out<'_> {
    pub(super) fn push(&mut self, field: String, kind: DiffKind, recorded: Option<String>, live: Option<String>) {
        if self.diffs.len() >= self.max {
            self.stats.diffs_capped += 1;
            return;
        }
        self.diffs.push(FieldDiff { field, kind, recorded, live });
    }
}

pub(super) fn short(s: &str) -> String {
    if s.chars().count() <= MAX_VALUE_CHARS {
        return s.to_string();
    }
    let mut t: String = s.chars().take(MAX_VALUE_CHARS).collect();
    t.push('…');
    t
}

/// The values of the `name` fields, trimmed, joined with `, `; `None` without such a field.
pub(super) fn header_values(headers: &[Header], name: &str) -> Option<String> {
    let mut fields = headers.iter().filter(|h| h.name.eq_ignore_ascii_case(name.as_bytes()));
    let mut joined = String::from_utf8_lossy(&fields.next()?.value).trim().to_string();
    for h in fields {
        joined.push_str(", ");
        joined.push_str(String::from_utf8_lossy(&h.value).trim());
    }
    Some(joined)
}
