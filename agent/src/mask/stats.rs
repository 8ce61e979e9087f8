//! Counters of the masking engine: what was masked, by which rule, and every body that could not be decoded or
//! parsed (and what was done instead).

use std::collections::BTreeMap;

use serde::Serialize;

/// Masking counters for a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MaskStats {
    /// Exchanges looked at.
    pub exchanges_seen: u64,
    /// Exchanges changed by at least one rule (flagged `masked`).
    pub exchanges_masked: u64,
    /// Exchanges not written because a `drop_exchange` rule fired.
    pub exchanges_dropped: u64,
    /// Exchanges in which each rule fired, by rule name.
    pub by_rule: BTreeMap<String, u64>,
    /// Values replaced (header values, cookies, parameters, JSON values, fields, detector hits).
    pub values_masked: u64,
    /// Bodies removed by a `drop_body` rule.
    pub bodies_dropped: u64,
    /// Bodies decoded from a content coding (gzip, deflate, br, zstd) to be looked at.
    pub bodies_decoded: u64,
    /// Masked bodies encoded again with their content coding.
    pub bodies_reencoded: u64,
    /// Masked bodies stored decoded (the encoded body was cut at the cap, or encoding again failed); their
    /// `Content-Encoding` header is removed.
    pub bodies_stored_decoded: u64,
    /// Bodies whose content coding could not be decoded (corrupt, or an unknown or stacked coding); detectors
    /// ran over the bytes as stored.
    pub decode_failures: u64,
    /// Bodies whose decoded size passed the decoding cap; the decoded part was masked and stored decoded, the
    /// rest dropped (flagged `truncated`).
    pub decode_over_cap: u64,
    /// JSON bodies that did not parse (often cut at the cap): secret-like keys were masked by a lexical scan and
    /// detectors ran over the text.
    pub json_parse_failures: u64,
    /// Multipart bodies without a usable boundary: detectors ran over the text.
    pub multipart_parse_failures: u64,
    /// JSON bodies not parsed because a scan of their text showed that no rule could change them (no key
    /// matching a rule, no detector hit, no escape sequence; see `json::may_change`).
    pub json_bodies_prefiltered: u64,
    /// Bodies left alone because they are binary (by content type).
    pub bodies_skipped_binary: u64,
    /// gRPC bodies left alone (no rule asked to drop them).
    pub bodies_skipped_grpc: u64,
}

impl MaskStats {
    /// Adds another run's counters.
    pub fn merge(&mut self, o: &MaskStats) {
        self.exchanges_seen += o.exchanges_seen;
        self.exchanges_masked += o.exchanges_masked;
        self.exchanges_dropped += o.exchanges_dropped;
        for (k, v) in &o.by_rule {
            *self.by_rule.entry(k.clone()).or_default() += v;
        }
        self.values_masked += o.values_masked;
        self.bodies_dropped += o.bodies_dropped;
        self.bodies_decoded += o.bodies_decoded;
        self.bodies_reencoded += o.bodies_reencoded;
        self.bodies_stored_decoded += o.bodies_stored_decoded;
        self.decode_failures += o.decode_failures;
        self.decode_over_cap += o.decode_over_cap;
        self.json_parse_failures += o.json_parse_failures;
        self.multipart_parse_failures += o.multipart_parse_failures;
        self.json_bodies_prefiltered += o.json_bodies_prefiltered;
        self.bodies_skipped_binary += o.bodies_skipped_binary;
        self.bodies_skipped_grpc += o.bodies_skipped_grpc;
    }
}
