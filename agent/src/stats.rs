//! Run counters that span stages: what protocol detection decided per connection, the parsers' totals, and the
//! exchange tallies. Each stage keeps its own counters next to its code; this module gathers them for the
//! summary, `--stats-json` and (later) `/metrics`.

use std::collections::BTreeMap;

use serde::Serialize;
use tapedeck_model::{Exchange, Flags};

use crate::http1::Http1Stats;
use crate::http2::H2Stats;

/// Adds another instance's counters into this one (for totals across connections or workers).
pub trait Merge {
    /// `self += other`, field by field.
    fn merge(&mut self, other: &Self);
}

/// Implements [`Merge`] for a struct of counters: the fields before `;` are added, those after it (counter structs
/// themselves) merged. The struct is destructured, so a counter added to it and not listed here fails to compile.
#[macro_export]
macro_rules! impl_merge {
    ($($ty:ident)::+ { $($field:ident),* $(,)? $(; $($nested:ident),* $(,)?)? }) => {
        impl $crate::stats::Merge for $($ty)::+ {
            fn merge(&mut self, other: &Self) {
                let $($ty)::+ { $($field,)* $($($nested,)*)? } = other;
                $( self.$field += *$field; )*
                $($( $crate::stats::Merge::merge(&mut self.$nested, $nested); )*)?
            }
        }
    };
}

/// Per-connection decisions of protocol detection, and the parsers' counters summed over connections.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SessionStats {
    /// Connections recognised as HTTP/1.x.
    pub flows_http1: u64,
    /// Connections recognised as HTTP/2 (preface, or frames mid-stream).
    pub flows_h2: u64,
    /// HTTP/1.1 connections upgraded to HTTP/2 (h2c).
    pub h2c_upgrades: u64,
    /// Connections that became tunnels (CONNECT, WebSocket and other upgrades); what they carry is detected
    /// again like a new connection (HTTP inside a CONNECT tunnel is recorded; TLS is counted and skipped).
    pub tunnels: u64,
    /// Connections whose HTTP followed a SOCKS handshake (its bytes are counted in `ignored_bytes`).
    pub socks_handshakes: u64,
    /// Connections ignored because they carry TLS.
    pub flows_tls: u64,
    /// Connections ignored because they carry SSH.
    pub flows_ssh: u64,
    /// Connections ignored because no HTTP was found in their first bytes.
    pub flows_not_http: u64,
    /// Connections that ended before their protocol could be decided.
    pub flows_undecided: u64,
    /// Payload bytes of ignored connections (not parsed).
    pub ignored_bytes: u64,
    /// HTTP/1 parser counters, summed.
    pub http1: Http1Stats,
    /// HTTP/2 parser counters, summed.
    pub h2: H2Stats,
}

/// Tallies of the exchanges produced.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ExchangeTally {
    /// Exchanges written.
    pub total: u64,
    /// Exchanges with a request.
    pub with_request: u64,
    /// Exchanges with a final response.
    pub with_response: u64,
    /// Exchanges by protocol name.
    pub by_proto: BTreeMap<String, u64>,
    /// Exchanges carrying each flag, by flag name.
    pub by_flag: BTreeMap<String, u64>,
}

impl ExchangeTally {
    /// Counts one exchange.
    pub fn add(&mut self, ex: &Exchange) {
        self.total += 1;
        self.with_request += u64::from(ex.request.is_some());
        self.with_response += u64::from(ex.response.is_some());
        *self.by_proto.entry(ex.proto.as_str().to_string()).or_default() += 1;
        if ex.flags != Flags::NONE {
            for name in ex.flags.names() {
                *self.by_flag.entry(name).or_default() += 1;
            }
        }
    }
    /// How many exchanges carry `flag`.
    pub fn flagged(&self, flag: Flags) -> u64 {
        flag.names().first().and_then(|n| self.by_flag.get(n)).copied().unwrap_or(0)
    }
}

crate::impl_merge!(SessionStats {
    flows_http1,
    flows_h2,
    h2c_upgrades,
    tunnels,
    socks_handshakes,
    flows_tls,
    flows_ssh,
    flows_not_http,
    flows_undecided,
    ignored_bytes;
    http1, h2
});
