//! `replayer mock`: serves recorded responses to the service under test, standing in for its dependencies.
//!
//! ```text
//! segments ──select──▶ exchanges ──(--client / --service)──▶ index::Index ──▶ hyper server (HTTP/1.1 + h2c)
//!   request ──lookup (exact → without body → without query → method+path)──▶ recorded response (+ trailers)
//!          └─ no match ──▶ 502, x-tapedeck-mock: unmatched; reason=...   (logged, counted)
//! ```
//! Binds 127.0.0.1:8081 unless `--listen` names another address. `/metrics` (unless the recording has requests to
//! `/metrics`: the recording wins) and `/__tapedeck/metrics` (always) answer Prometheus text;
//! SIGINT or SIGTERM prints a stats line (matched, unmatched, match rate: `n/a` before any request) and ends the
//! process with status 0, or 1 when the input was damaged (what could be read is served; a warning at start says
//! how many exchanges were lost).

pub mod index;
mod server;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Args;
use tapedeck_model::Exchange;

use crate::select::{Budget, DEFAULT_MAX_SELECTION_BYTES, Filter, SelectStats, select_where};
use index::{Fields, Index};

pub use server::{Mock, MockStats};

/// Options of `replayer mock`.
#[derive(Debug, Args)]
pub struct MockOpts {
    /// Segment files, or directories holding them.
    #[arg(value_name = "PATH", required = true)]
    pub paths: Vec<PathBuf>,
    /// Address to listen on (loopback unless another address is given here; port 0: any free port, printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Request fields a match uses: a comma list of method, path, query, body, authority.
    #[arg(long = "match", value_name = "FIELDS", default_value = "method,path,query,body", value_parser = parse_fields)]
    pub match_on: Fields,
    /// Only exchanges whose recorded client is this address (IP or IP:PORT; repeatable): the outbound traffic
    /// of one service.
    #[arg(long = "client", value_name = "ADDR", value_parser = parse_client)]
    pub clients: Vec<ClientAddr>,
    /// Only exchanges with this label (a value, or NAME=VALUE; repeatable).
    #[arg(long = "service", value_name = "LABEL")]
    pub services: Vec<String>,
    /// Status of the answer to an unmatched request (400-599).
    #[arg(long, value_name = "STATUS", default_value_t = 502, value_parser = clap::value_parser!(u16).range(400..=599))]
    pub unmatched_status: u16,
    /// Most unmatched requests logged one by one on standard error (all are counted).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub log_unmatched: u64,
    /// Largest request body read for matching (larger ones are matched without their body and counted).
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    pub max_body: usize,
    /// Most memory the recorded exchanges may hold, bodies included (512MiB, 4GiB): past it the mock does not
    /// start and names the file; narrow the selection (--client, --service) or raise this.
    #[arg(long, value_name = "SIZE", default_value = DEFAULT_MAX_SELECTION_BYTES, value_parser = crate::select::parse_budget)]
    pub max_selection_bytes: Budget,
}

/// A `--client` address: an IP, or an IP and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAddr {
    /// Any port.
    Ip(IpAddr),
    /// This port only.
    Socket(SocketAddr),
}

impl ClientAddr {
    fn matches(&self, a: SocketAddr) -> bool {
        match self {
            ClientAddr::Ip(ip) => a.ip() == *ip,
            ClientAddr::Socket(s) => a == *s,
        }
    }
}

fn parse_fields(s: &str) -> Result<Fields, String> {
    s.parse()
}

fn parse_client(s: &str) -> Result<ClientAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(ClientAddr::Socket(a));
    }
    s.parse::<IpAddr>().map(ClientAddr::Ip).map_err(|_| format!("'{s}': expected an IP address or IP:PORT"))
}

/// Whether an exchange belongs to the selected clients or services (no selection: all).
pub fn selected(ex: &Exchange, clients: &[ClientAddr], services: &[String]) -> bool {
    let by_client = clients.iter().any(|c| c.matches(ex.client));
    let by_label = services.iter().any(|s| match s.split_once('=') {
        Some((n, v)) => ex.labels.iter().any(|(ln, lv)| ln == n && lv == v),
        None => ex.labels.iter().any(|(_, lv)| lv == s),
    });
    (clients.is_empty() && services.is_empty()) || by_client || by_label
}

/// Loads the recorded exchanges and indexes them; the selection's counters tell what was left out or lost.
pub fn load(opts: &MockOpts) -> anyhow::Result<(Index, SelectStats)> {
    let keep = |e: &Exchange| selected(e, &opts.clients, &opts.services);
    let selection =
        select_where(&opts.paths, &Filter::default(), opts.max_selection_bytes, &keep, "--client, --service")?;
    for w in &selection.warnings {
        eprintln!("replayer: warning: {w}");
    }
    Ok((Index::build(selection.exchanges, opts.match_on), selection.stats))
}

/// Runs `replayer mock` until SIGINT or SIGTERM.
pub fn run(opts: &MockOpts) -> anyhow::Result<()> {
    let (index, select_stats) = load(opts)?;
    let filtered_out = select_stats.filtered_out;
    let loss = select_stats.loss();
    if let Some(loss) = &loss {
        eprintln!("replayer: warning: {loss}: serving what could be read; the exit status will be 1");
    }
    if index.is_empty() {
        eprintln!("replayer: warning: no recorded request with its response to serve: every request will be unmatched");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        // Before the start line: a SIGTERM sent as soon as the mock says where it listens still gets the stats line.
        let stop = Shutdown::register();
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|e| anyhow::anyhow!("--listen {}: {e}", opts.listen))?;
        let addr = listener.local_addr()?;
        let s = &index.stats;
        eprintln!(
            "mock: serving {} recorded responses ({} exchanges not selected, {} incomplete, {} with a 1xx status, \
             {} responses cut at the capture's body cap) on http://{addr}",
            index.len(),
            filtered_out,
            s.skipped_incomplete,
            s.skipped_interim_status,
            s.response_truncated,
        );
        let mock = Mock::new(index, opts.unmatched_status, opts.log_unmatched, opts.max_body);
        eprintln!("mock: Prometheus metrics at {}", mock.metrics_paths());
        let stats = mock.stats();
        server::serve(listener, mock, stop.wait()).await;
        eprintln!("{}", stats.line());
        match loss {
            Some(loss) => Err(anyhow::anyhow!("{loss}")),
            None => Ok(()),
        }
    })
}

/// SIGINT and SIGTERM, listened to from [`Shutdown::register`] on (inside the runtime).
struct Shutdown {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Shutdown {
    fn register() -> Shutdown {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signals = signal(SignalKind::terminate()).and_then(|t| Ok((t, signal(SignalKind::interrupt())?))).ok();
            Shutdown { signals }
        }
        #[cfg(not(unix))]
        Shutdown {}
    }

    async fn wait(self) {
        #[cfg(unix)]
        if let Some((mut term, mut int)) = self.signals {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapedeck_model::{Flags, Protocol, Timing};

    fn ex(client: &str, labels: &[(&str, &str)]) -> Exchange {
        Exchange {
            id: 1,
            connection_id: 1,
            order: 0,
            stream_id: None,
            proto: Protocol::Http11,
            client: client.parse().unwrap(),
            server: "10.0.0.2:80".parse().unwrap(),
            timing: Timing::default(),
            request: None,
            response: None,
            flags: Flags::NONE,
            labels: labels.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            masked_by: vec![],
        }
    }

    #[test]
    fn selection_by_client_or_label() {
        let a = ex("10.0.0.1:4000", &[("service", "orders")]);
        let b = ex("10.0.0.5:4000", &[("service", "billing")]);
        assert!(selected(&a, &[], &[]) && selected(&b, &[], &[]), "no selection: everything");
        let ip = [parse_client("10.0.0.1").unwrap()];
        assert!(selected(&a, &ip, &[]) && !selected(&b, &ip, &[]));
        let port = [parse_client("10.0.0.1:4001").unwrap()];
        assert!(!selected(&a, &port, &[]));
        assert!(selected(&b, &[], &["billing".into()]) && !selected(&a, &[], &["billing".into()]));
        assert!(selected(&a, &[], &["service=orders".into()]) && !selected(&a, &[], &["node=orders".into()]));
        assert!(parse_client("nope").unwrap_err().contains("nope"));
    }
}
