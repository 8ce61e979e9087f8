//! The replay plan: selected exchanges in, connections out, each with its requests in recorded order, their
//! recorded offsets from the capture start, their planned send offsets, and whether each must wait for the answer
//! to the previous one.
//!
//! Rules:
//! - One recorded connection (connection id, client and server address: ids are unique only within the run that
//!   wrote them) becomes one replayed connection.
//! - Requests of a connection keep their recorded order (`Exchange::order`, then request time).
//! - HTTP/1.x: a request always waits for the previous response (the client does not pipeline); requests that the
//!   recording shows pipelined are counted in [`PlanStats::pipelined_serialized`].
//! - HTTP/2: streams are multiplexed as they were; a request waits for the previous response only when the
//!   recording shows it started after that response had been received (the client was sequential).
//!
//! Pure: no I/O, no clock.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;
use tapedeck_model::{Exchange, Flags, Protocol, Request, Timestamp};

use crate::pace::Pacing;

/// One request to send.
#[derive(Clone, Debug)]
pub struct PlannedRequest {
    /// The recorded exchange id.
    pub exchange_id: u64,
    /// Its order on the recorded connection.
    pub order: u32,
    /// Its recorded HTTP/2 stream id.
    pub stream_id: Option<u32>,
    /// Recorded offset from the start of the selection (its earliest request).
    pub recorded_offset: Duration,
    /// Planned send offset from the start of the run (after gap capping and time scale).
    pub planned: Duration,
    /// Whether it is sent only once the previous request of its connection has been answered.
    pub wait_for_previous: bool,
    /// The recorded request.
    pub request: Request,
    /// The recorded response status, if any.
    pub recorded_status: Option<u16>,
    /// The recorded request body was cut at the capture's body cap: what is sent is shorter than the original.
    pub body_truncated: bool,
    /// The recorded request body had fields masked (see [`masked_request_body`]): what is sent carries markers.
    pub masked_body: bool,
}

/// One connection to open to the target.
#[derive(Clone, Debug)]
pub struct ConnPlan {
    /// The recorded connection id.
    pub connection_id: u64,
    /// The recorded protocol.
    pub proto: Protocol,
    /// The recorded client.
    pub client: SocketAddr,
    /// The recorded server.
    pub server: SocketAddr,
    /// Requests in recorded order.
    pub requests: Vec<PlannedRequest>,
}

impl ConnPlan {
    /// Planned offset of the first request.
    pub fn first_planned(&self) -> Duration {
        self.requests.first().map_or(Duration::ZERO, |r| r.planned)
    }
}

/// Counters of the planner.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PlanStats {
    /// Connections planned.
    pub connections: u64,
    /// HTTP/2 connections among them.
    pub connections_h2: u64,
    /// Requests planned.
    pub requests: u64,
    /// Exchanges without a request (not replayable; normally already dropped by the selection).
    pub skipped_no_request: u64,
    /// Requests without any timestamp: given the offset of the request before them on their connection.
    pub untimed: u64,
    /// HTTP/1 requests the recording shows pipelined: sent after the previous response instead.
    pub pipelined_serialized: u64,
    /// HTTP/2 requests that wait for the previous response because the recording shows them sequential.
    pub h2_sequential: u64,
    /// Requests whose recorded body was truncated by the capture's body cap.
    pub bodies_truncated: u64,
    /// Requests replayed with masked body fields (markers or tokens instead of the recorded values).
    pub masked_bodies: u64,
}

/// The whole plan.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Capture time of the earliest request: offset zero.
    pub origin: Timestamp,
    /// Connections, ordered by their first request's recorded offset.
    pub connections: Vec<ConnPlan>,
    /// Counters.
    pub stats: PlanStats,
}

impl Plan {
    /// Groups `exchanges` into connections and orders them; planned offsets equal the recorded ones until
    /// [`Plan::pace`] is applied. Takes exchanges or boxes of them (a selection's): boxes are grouped by moving
    /// pointers.
    pub fn build<E: Into<Box<Exchange>> + Borrow<Exchange>>(exchanges: Vec<E>) -> Plan {
        Plan::build_with(exchanges, &mut |_| {})
    }

    /// [`Plan::build`], handing what is left of each exchange once its request is planned (its response, for a
    /// judge to keep without copying) to `rest`.
    pub fn build_with<E: Into<Box<Exchange>> + Borrow<Exchange>>(
        exchanges: Vec<E>,
        rest: &mut dyn FnMut(&mut Exchange),
    ) -> Plan {
        let mut stats = PlanStats::default();
        let origin = exchanges
            .iter()
            .map(Borrow::borrow)
            .filter(|e| e.request.is_some())
            .filter_map(request_time)
            .min()
            .unwrap_or(Timestamp(0));
        let mut index: HashMap<(u64, SocketAddr, SocketAddr), usize> = HashMap::new();
        let mut groups: Vec<(Protocol, Vec<Box<Exchange>>)> = Vec::new();
        for ex in exchanges {
            let ex: Box<Exchange> = ex.into();
            if ex.request.is_none() {
                stats.skipped_no_request += 1;
                continue;
            }
            let key = (ex.connection_id, ex.client, ex.server);
            let i = *index.entry(key).or_insert_with(|| {
                groups.push((ex.proto, Vec::new()));
                groups.len() - 1
            });
            groups[i].1.push(ex);
        }
        let mut connections = Vec::with_capacity(groups.len());
        for (proto, mut exs) in groups {
            exs.sort_by_key(|e| (e.order, request_time(e).unwrap_or(Timestamp(u64::MAX))));
            let first = &exs[0];
            let (connection_id, client, server) = (first.connection_id, first.client, first.server);
            let mut requests: Vec<PlannedRequest> = Vec::with_capacity(exs.len());
            // When the previous request of the connection was answered, as recorded.
            let mut prev_answered: Option<Option<Timestamp>> = None;
            let mut last_offset = Duration::ZERO;
            // By value: each request moves into the plan and the rest of its exchange is freed at once, so the
            // plan never holds a second copy of the selection.
            for mut ex in exs {
                let offset = match request_time(&ex) {
                    Some(t) => Duration::from_nanos(t.0.saturating_sub(origin.0)),
                    None => {
                        stats.untimed += 1;
                        last_offset
                    }
                };
                // Requests stay in recorded order on the wire, so their offsets never go backwards.
                let offset = offset.max(last_offset);
                last_offset = offset;
                let wait = match prev_answered {
                    None => false,
                    Some(answered_at) => {
                        let answered = answered_before(answered_at, &ex);
                        match proto {
                            Protocol::Http10 | Protocol::Http11 => {
                                if !answered {
                                    stats.pipelined_serialized += 1;
                                }
                                true
                            }
                            Protocol::H2 => {
                                if answered {
                                    stats.h2_sequential += 1;
                                }
                                answered
                            }
                        }
                    }
                };
                prev_answered = Some(answered_at(&ex));
                let masked_body = masked_request_body(&ex);
                let Some(request) = ex.request.take() else { continue };
                let body_truncated =
                    ex.flags.contains(Flags::TRUNCATED) && request.body.full_len > request.body.bytes.len() as u64;
                if body_truncated {
                    stats.bodies_truncated += 1;
                }
                if masked_body {
                    stats.masked_bodies += 1;
                }
                requests.push(PlannedRequest {
                    exchange_id: ex.id,
                    order: ex.order,
                    stream_id: ex.stream_id,
                    recorded_offset: offset,
                    planned: offset,
                    wait_for_previous: wait,
                    request,
                    recorded_status: ex.response.as_ref().map(|r| r.status),
                    body_truncated,
                    masked_body,
                });
                rest(&mut ex);
            }
            stats.requests += requests.len() as u64;
            stats.connections += 1;
            if proto == Protocol::H2 {
                stats.connections_h2 += 1;
            }
            connections.push(ConnPlan { connection_id, proto, client, server, requests });
        }
        connections.sort_by_key(|c| (c.requests.first().map(|r| r.recorded_offset), c.connection_id));
        Plan { origin, connections, stats }
    }

    /// Sets every request's planned offset from its recorded one.
    pub fn pace(&mut self, pacing: &Pacing) {
        let recorded: Vec<Duration> =
            self.connections.iter().flat_map(|c| c.requests.iter().map(|r| r.recorded_offset)).collect();
        let planned = pacing.schedule(&recorded);
        let mut it = planned.into_iter();
        for c in &mut self.connections {
            for r in &mut c.requests {
                r.planned = it.next().unwrap_or(r.planned);
            }
        }
    }

    /// The planned time of the last send: the planned duration of the run, not counting response times.
    pub fn planned_span(&self) -> Duration {
        self.connections.iter().flat_map(|c| c.requests.iter().map(|r| r.planned)).max().unwrap_or_default()
    }

    /// The recorded span between the first and the last request.
    pub fn recorded_span(&self) -> Duration {
        self.connections.iter().flat_map(|c| c.requests.iter().map(|r| r.recorded_offset)).max().unwrap_or_default()
    }

    /// Number of requests.
    pub fn request_count(&self) -> usize {
        self.connections.iter().map(|c| c.requests.len()).sum()
    }
}

/// Names of the default masking policy's rules that act on bodies (agent/src/mask/policy.rs).
pub const BODY_MASK_RULES: &[&str] = &[
    "secret-json-keys",
    "secret-form-fields",
    "token-json-keys",
    "token-form-fields",
    "payment-cards",
    "jwts",
    "bearer-tokens",
    "cloud-keys",
];

/// Whether the recorded request of `ex` had body fields masked. Only exchanges that list masking rules and whose
/// request has a body count; then any of: a masking note about the request body (`@request-body:...`); a marker
/// (`[REDACTED]`) or keyed token (`tdk_`) in the request body; a body rule of the default policy
/// ([`BODY_MASK_RULES`]) fired and the response body shows no marker (so the rule did not fire there). Custom
/// policy rule names do not say what they target: the markers catch those.
pub fn masked_request_body(ex: &Exchange) -> bool {
    let Some(req) = &ex.request else { return false };
    if ex.masked_by.is_empty() || req.body.bytes.is_empty() {
        return false;
    }
    let marked = |b: &[u8]| contains(b, b"[REDACTED]") || contains(b, b"tdk_");
    if ex.masked_by.iter().any(|m| m.starts_with("@request-body")) || marked(&req.body.bytes) {
        return true;
    }
    let body_rule = ex.masked_by.iter().any(|m| BODY_MASK_RULES.contains(&m.as_str()));
    body_rule && !ex.response.as_ref().is_some_and(|r| marked(&r.body.bytes))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// When the request started: its first byte, else its last, else the exchange's earliest timestamp.
fn request_time(ex: &Exchange) -> Option<Timestamp> {
    ex.timing.request_first.or(ex.timing.request_last).or_else(|| ex.timing.start())
}

/// When the recording shows `ex` answered: its response complete, or at least started when the end is unknown.
fn answered_at(ex: &Exchange) -> Option<Timestamp> {
    ex.timing.response_last.or(ex.timing.response_first)
}

/// Whether the previous exchange, answered at `answered` ([`answered_at`]), was answered before `next`'s request
/// started.
fn answered_before(answered: Option<Timestamp>, next: &Exchange) -> bool {
    match (answered, request_time(next)) {
        (Some(a), Some(n)) => a <= n,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pace::TimeScale;
    use tapedeck_model::{Body, Response, Timing};

    const S: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    /// An exchange on connection `conn`, request at `req` ms, response from `resp.0` to `resp.1` ms.
    fn ex(conn: u64, order: u32, proto: Protocol, req: u64, resp: Option<(u64, u64)>) -> Exchange {
        let base = 1_700_000_000 * S;
        Exchange {
            id: conn * 100 + u64::from(order),
            connection_id: conn,
            order,
            stream_id: (proto == Protocol::H2).then_some(1 + 2 * order),
            proto,
            client: format!("10.0.0.1:{}", 40000 + conn).parse().unwrap(),
            server: "10.0.0.2:80".parse().unwrap(),
            timing: Timing {
                request_first: Some(Timestamp(base + req * MS)),
                request_last: Some(Timestamp(base + req * MS)),
                response_first: resp.map(|r| Timestamp(base + r.0 * MS)),
                response_last: resp.map(|r| Timestamp(base + r.1 * MS)),
            },
            request: Some(Request {
                method: b"GET".to_vec(),
                path: format!("/c{conn}/{order}").into_bytes(),
                ..Default::default()
            }),
            response: resp.map(|_| Response { status: 200, ..Default::default() }),
            flags: Flags::NONE,
            labels: vec![],
            masked_by: vec![],
        }
    }

    fn paths(c: &ConnPlan) -> Vec<String> {
        c.requests.iter().map(|r| String::from_utf8_lossy(&r.request.path).into_owned()).collect()
    }

    #[test]
    fn groups_by_connection_in_recorded_order() {
        // Given out of order, interleaved across two connections.
        let exs = vec![
            ex(2, 1, Protocol::Http11, 300, Some((310, 320))),
            ex(1, 1, Protocol::Http11, 200, Some((210, 220))),
            ex(1, 0, Protocol::Http11, 100, Some((110, 120))),
            ex(2, 0, Protocol::Http11, 150, Some((160, 170))),
        ];
        let plan = Plan::build(exs);
        assert_eq!(plan.connections.len(), 2);
        assert_eq!(paths(&plan.connections[0]), vec!["/c1/0", "/c1/1"]);
        assert_eq!(paths(&plan.connections[1]), vec!["/c2/0", "/c2/1"]);
        let offs: Vec<u64> =
            plan.connections[1].requests.iter().map(|r| r.recorded_offset.as_millis() as u64).collect();
        assert_eq!(offs, vec![50, 200], "offsets from the earliest request (100 ms)");
        assert_eq!(plan.stats.requests, 4);
        assert_eq!(plan.recorded_span(), Duration::from_millis(200));
    }

    #[test]
    fn same_connection_id_from_different_peers_is_two_connections() {
        let a = ex(7, 0, Protocol::Http11, 0, None);
        let mut b = ex(7, 0, Protocol::Http11, 10, None);
        b.client = "10.9.9.9:5555".parse().unwrap();
        assert_eq!(Plan::build(vec![a, b]).connections.len(), 2);
    }

    #[test]
    fn http1_always_waits_and_counts_pipelining() {
        let exs = vec![
            ex(1, 0, Protocol::Http11, 0, Some((10, 20))),
            ex(1, 1, Protocol::Http11, 5, Some((30, 40))), // pipelined: sent before the first answer
            ex(1, 2, Protocol::Http11, 50, Some((60, 70))),
        ];
        let plan = Plan::build(exs);
        let waits: Vec<bool> = plan.connections[0].requests.iter().map(|r| r.wait_for_previous).collect();
        assert_eq!(waits, vec![false, true, true]);
        assert_eq!(plan.stats.pipelined_serialized, 1);
    }

    #[test]
    fn h2_waits_only_where_the_recording_was_sequential() {
        let exs = vec![
            ex(1, 0, Protocol::H2, 0, Some((10, 100))),
            ex(1, 1, Protocol::H2, 5, Some((20, 30))), // concurrent with stream 1
            ex(1, 2, Protocol::H2, 40, Some((50, 60))), // after stream 3 finished at 30
            ex(1, 3, Protocol::H2, 45, None),          // while stream 5 was open
        ];
        let plan = Plan::build(exs);
        let waits: Vec<bool> = plan.connections[0].requests.iter().map(|r| r.wait_for_previous).collect();
        assert_eq!(waits, vec![false, false, true, false]);
        assert_eq!(plan.stats.h2_sequential, 1);
        assert_eq!(plan.stats.connections_h2, 1);
    }

    #[test]
    fn pacing_sets_planned_offsets() {
        let exs = vec![
            ex(1, 0, Protocol::Http11, 0, None),
            ex(2, 0, Protocol::Http11, 1000, None),
            ex(1, 1, Protocol::Http11, 30_000, None),
        ];
        let mut plan = Plan::build(exs);
        plan.pace(&Pacing { scale: TimeScale::Factor(10.0), max_gap: Some(Duration::from_secs(2)) });
        let c1: Vec<u128> = plan.connections[0].requests.iter().map(|r| r.planned.as_millis()).collect();
        let c2: Vec<u128> = plan.connections[1].requests.iter().map(|r| r.planned.as_millis()).collect();
        // Gaps: 1 s kept, 29 s capped to 2 s; then / 10.
        assert_eq!(c1, vec![0, 300]);
        assert_eq!(c2, vec![100]);
        assert_eq!(plan.planned_span(), Duration::from_millis(300));
    }

    #[test]
    fn untimed_and_truncated_are_counted() {
        let mut a = ex(1, 0, Protocol::Http11, 100, None);
        let mut b = ex(1, 1, Protocol::Http11, 0, None);
        b.timing = Timing::default();
        a.flags = Flags::TRUNCATED;
        a.request.as_mut().unwrap().body = Body { bytes: vec![1; 10], full_len: 50 };
        let plan = Plan::build(vec![a, b]);
        assert_eq!(plan.stats.untimed, 1);
        assert_eq!(plan.stats.bodies_truncated, 1);
        let r = &plan.connections[0].requests;
        assert_eq!(r[1].recorded_offset, r[0].recorded_offset, "an untimed request follows its predecessor");
    }

    #[test]
    fn masked_request_bodies_are_recognised() {
        let mut e = ex(1, 0, Protocol::Http11, 0, Some((1, 2)));
        let set_body = |e: &mut Exchange, b: &str| {
            e.request.as_mut().unwrap().body = Body { bytes: b.as_bytes().to_vec(), full_len: b.len() as u64 };
        };
        set_body(&mut e, r#"{"password":"[REDACTED]"}"#);
        assert!(!masked_request_body(&e), "no masking rule listed: not counted");
        e.masked_by = vec!["secret-json-keys".into()];
        assert!(masked_request_body(&e));
        set_body(&mut e, r#"{"pin":0}"#);
        assert!(masked_request_body(&e), "a body rule fired and the response shows no marker");
        e.response.as_mut().unwrap().body.bytes = br#"{"token":"[REDACTED]"}"#.to_vec();
        assert!(!masked_request_body(&e), "the body rule fired on the response");
        e.masked_by = vec!["auth-headers".into()];
        set_body(&mut e, r#"{"a":1}"#);
        assert!(!masked_request_body(&e), "a header rule does not mask the body");
        e.masked_by = vec!["@request-body:stored-decoded:gzip".into(), "custom".into()];
        assert!(masked_request_body(&e));
        e.masked_by = vec!["custom".into()];
        set_body(&mut e, "card=tdk_0123456789abcdef");
        assert!(masked_request_body(&e));
        set_body(&mut e, "");
        assert!(!masked_request_body(&e), "no body, nothing masked in it");
        let plan = Plan::build(vec![{
            let mut m = ex(2, 0, Protocol::Http11, 0, None);
            m.masked_by = vec!["custom".into()];
            set_body(&mut m, "x=[REDACTED]");
            m
        }]);
        assert_eq!(plan.stats.masked_bodies, 1);
        assert!(plan.connections[0].requests[0].masked_body);
    }
}
