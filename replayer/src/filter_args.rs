//! The selection flags that `replayer run` and `replayer inspect` share (one clap `Args` struct flattened into
//! both): method, host, path prefix and regex, recorded status, protocol, time window, limit and the selection's
//! memory budget; turned into a [`Filter`], and described back as flags for messages about what they left out.

use clap::Args;
use regex::bytes::Regex;
use tapedeck_model::Protocol;

use crate::select::{
    Budget, DEFAULT_MAX_SELECTION_BYTES, Filter, SelectStats, StatusMatch, TimeBound, parse_protocols,
};

/// Which recorded exchanges to take.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Selecting exchanges")]
pub struct FilterArgs {
    /// Only these methods (repeatable).
    #[arg(long = "method", value_name = "METHOD")]
    pub methods: Vec<String>,
    /// Only this host or authority (repeatable).
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only paths starting with this prefix (repeatable).
    #[arg(long = "path-prefix", value_name = "PREFIX")]
    pub path_prefixes: Vec<String>,
    /// Only paths (with query) matching this regex.
    #[arg(long, value_name = "REGEX", value_parser = parse_regex)]
    pub path_regex: Option<Regex>,
    /// Only recorded statuses: a code (404) or a class (5xx) (repeatable).
    #[arg(long = "status", value_name = "STATUS", value_parser = parse_status)]
    pub statuses: Vec<StatusMatch>,
    /// Only this protocol: http/1.0, http/1.1, h1 (both) or h2 (repeatable).
    #[arg(long = "protocol", value_name = "PROTO", value_parser = parse_protocols)]
    pub protocols: Vec<Vec<Protocol>>,
    /// Start of the time window: an offset from the capture start (30s) or an RFC 3339 time.
    #[arg(long, value_name = "TIME", value_parser = parse_time_bound)]
    pub from: Option<TimeBound>,
    /// End of the time window (exclusive), same forms as --from.
    #[arg(long, value_name = "TIME", value_parser = parse_time_bound)]
    pub to: Option<TimeBound>,
    /// At most this many exchanges (the earliest).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Most memory the selected exchanges may hold, bodies included (512MiB, 4GiB): past it the command stops
    /// before doing anything and names the file; narrow the selection (--from/--to, --limit, filters) or raise this.
    #[arg(long, value_name = "SIZE", default_value = DEFAULT_MAX_SELECTION_BYTES, value_parser = crate::select::parse_budget)]
    pub max_selection_bytes: Budget,
}

impl FilterArgs {
    /// The filter these flags describe.
    pub fn filter(&self) -> Filter {
        Filter {
            methods: self.methods.clone(),
            hosts: self.hosts.clone(),
            path_prefixes: self.path_prefixes.clone(),
            path_regex: self.path_regex.clone(),
            statuses: self.statuses.clone(),
            protocols: self.protocols.iter().flatten().copied().collect(),
            from: self.from,
            to: self.to,
            limit: self.limit,
            keep_without_request: false,
        }
    }

    /// The method/host/path/status/protocol flags given, as typed (`--method PUT --host a`); empty when none.
    pub fn matching_flags(&self) -> String {
        let mut f: Vec<String> = Vec::new();
        f.extend(self.methods.iter().map(|m| format!("--method {m}")));
        f.extend(self.hosts.iter().map(|h| format!("--host {h}")));
        f.extend(self.path_prefixes.iter().map(|p| format!("--path-prefix {p}")));
        f.extend(self.path_regex.iter().map(|r| format!("--path-regex {}", r.as_str())));
        f.extend(self.statuses.iter().map(|s| format!("--status {s}")));
        for p in &self.protocols {
            let names: Vec<&str> = p.iter().map(|p| p.as_str()).collect();
            f.push(format!("--protocol {}", names.join("+")));
        }
        f.join(" ")
    }

    /// The time window flags given (`--from 30s --to 1m`); empty when none.
    pub fn window_flags(&self) -> String {
        let mut f: Vec<String> = Vec::new();
        f.extend(self.from.iter().map(|t| format!("--from {t}")));
        f.extend(self.to.iter().map(|t| format!("--to {t}")));
        f.join(" ")
    }

    /// Why a selection holds nothing: `0 requests selected (12 read, 12 filtered out by --method PUT)`.
    pub fn empty_selection(&self, stats: &SelectStats) -> String {
        self.summary(stats, "requests")
    }

    /// What the selection kept and why it left the rest out: `3 NOUN selected (12 read, 9 filtered out by ...)`.
    pub fn summary(&self, stats: &SelectStats, noun: &str) -> String {
        let mut why = vec![format!("{} read", stats.exchanges_read)];
        if stats.skipped_no_request > 0 {
            why.push(format!("{} without a request", stats.skipped_no_request));
        }
        if stats.filtered_out > 0 {
            let by = self.matching_flags();
            let by = if by.is_empty() { String::new() } else { format!(" by {by}") };
            why.push(format!("{} filtered out{by}", stats.filtered_out));
        }
        if stats.outside_window > 0 {
            why.push(format!("{} outside {}", stats.outside_window, self.window_flags()));
        }
        if stats.over_limit > 0 {
            why.push(format!("{} over --limit {}", stats.over_limit, self.limit.unwrap_or(0)));
        }
        format!("{} {noun} selected ({})", stats.selected, why.join(", "))
    }
}

fn parse_regex(s: &str) -> Result<Regex, String> {
    Regex::new(s).map_err(|e| format!("'{s}' is not a valid regex: {e}"))
}

fn parse_status(s: &str) -> Result<StatusMatch, String> {
    s.parse()
}

fn parse_time_bound(s: &str) -> Result<TimeBound, String> {
    s.parse()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        f: FilterArgs,
    }

    fn args(a: &[&str]) -> FilterArgs {
        T::try_parse_from(std::iter::once("t").chain(a.iter().copied())).unwrap().f
    }

    #[test]
    fn an_empty_selection_says_what_left_each_exchange_out() {
        let a = args(&["--method", "PUT", "--status", "5xx", "--from", "30s", "--limit", "3"]);
        let stats = SelectStats {
            exchanges_read: 12,
            skipped_no_request: 1,
            filtered_out: 9,
            outside_window: 2,
            ..Default::default()
        };
        assert_eq!(
            a.empty_selection(&stats),
            "0 requests selected (12 read, 1 without a request, 9 filtered out by --method PUT --status 5xx, \
             2 outside --from 30s)"
        );
        let none = args(&[]);
        assert_eq!(none.empty_selection(&SelectStats::default()), "0 requests selected (0 read)");
        assert_eq!(args(&["--protocol", "h1"]).matching_flags(), "--protocol http/1.0+http/1.1");
        assert_eq!(args(&["--to", "2026-11-21T19:33:00Z"]).window_flags(), "--to 2026-11-21T19:33:00Z");
    }
}
