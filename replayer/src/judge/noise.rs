//! Noise learning (Diffy's method): each request is also replayed to a baseline (the old build, `--baseline`);
//! fields that differ between the recording and the baseline's answer are noise (time stamps, ids, random
//! values) and are not held against the candidate. Fields are learned per endpoint in normalised form (array
//! indices as `[*]`); a learned field also covers everything under it (`$.meta` covers `$.meta.at`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::compare::FieldDiff;
use super::jsonpath::normalize;

/// Most noise fields learned per endpoint.
pub const MAX_NOISE_FIELDS: usize = 500;
/// Most endpoints noise is learned for.
pub const MAX_NOISE_ENDPOINTS: usize = 10_000;

/// Counters of noise learning.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NoiseStats {
    /// Baseline answers compared with the recording.
    pub baseline_compared: u64,
    /// Baseline requests that got no answer (nothing learned from them).
    pub baseline_errors: u64,
    /// Fields not learned past [`MAX_NOISE_FIELDS`] per endpoint or [`MAX_NOISE_ENDPOINTS`].
    pub fields_not_kept: u64,
}

/// Noise fields per endpoint.
#[derive(Clone, Debug, Default)]
pub struct Noise {
    fields: BTreeMap<String, BTreeSet<String>>,
    /// Counters.
    pub stats: NoiseStats,
}

impl Noise {
    /// Learns the fields of `diffs` (recording against baseline) as noise of `endpoint`.
    pub fn learn(&mut self, endpoint: &str, diffs: &[FieldDiff]) {
        self.stats.baseline_compared += 1;
        if diffs.is_empty() {
            return;
        }
        if !self.fields.contains_key(endpoint) && self.fields.len() >= MAX_NOISE_ENDPOINTS {
            self.stats.fields_not_kept += diffs.len() as u64;
            return;
        }
        let set = self.fields.entry(endpoint.to_string()).or_default();
        for d in diffs {
            let f = normalize(&d.field);
            if set.contains(&f) {
                continue;
            }
            if set.len() >= MAX_NOISE_FIELDS {
                self.stats.fields_not_kept += 1;
                continue;
            }
            set.insert(f);
        }
    }

    /// Whether a difference in `field` of `endpoint` is noise.
    pub fn is_noise(&self, endpoint: &str, field: &str) -> bool {
        let Some(set) = self.fields.get(endpoint) else { return false };
        let f = normalize(field);
        if set.contains(&f) {
            return true;
        }
        // An ancestor: `$.a` covers `$.a.b` and `$.a[*]`; `body:lines` covers nothing else.
        set.iter().any(|n| {
            n.starts_with('$')
                && f.len() > n.len()
                && f.starts_with(n.as_str())
                && matches!(f.as_bytes()[n.len()], b'.' | b'[')
        })
    }

    /// Learned fields per endpoint, for the report.
    pub fn learned(&self) -> BTreeMap<String, Vec<String>> {
        self.fields
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(e, s)| (e.clone(), s.iter().cloned().collect()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::compare::DiffKind;

    fn d(field: &str) -> FieldDiff {
        FieldDiff { field: field.into(), kind: DiffKind::Changed, recorded: None, live: None }
    }

    #[test]
    fn learned_fields_cover_indices_and_children() {
        let mut n = Noise::default();
        n.learn("GET /a", &[d("$.items[3].at"), d("$.meta"), d("header:etag")]);
        n.learn("GET /a", &[]);
        assert!(n.is_noise("GET /a", "$.items[0].at"));
        assert!(n.is_noise("GET /a", "$.meta.x[2]"));
        assert!(n.is_noise("GET /a", "header:etag"));
        assert!(!n.is_noise("GET /a", "$.metadata"));
        assert!(!n.is_noise("GET /a", "$.items[0].name"));
        assert!(!n.is_noise("GET /b", "$.meta"));
        assert_eq!(n.learned()["GET /a"], vec!["$.items[*].at", "$.meta", "header:etag"]);
        assert_eq!(n.stats.baseline_compared, 2);
    }
}
