//! The eBPF capture backend against a real kernel: the verifier accepts the program, and in a pair of network
//! namespaces joined by a veth pair it captures real HTTP/1.1 (curl and python's http.server) and h2c (nghttp and
//! nghttpd) exchanges equal to those libpcap captures on the same traffic, drops in the kernel what its filter
//! excludes (counters prove it), and counts the losses of a ring too small for the traffic.
//!
//! Needs root; skipped with the reason otherwise, unless TAPEDECK_CI=1 (then a failure).
mod support;
use support::*;

use tapedeck_agent::source::ebpf;

fn ci() -> bool {
    std::env::var("TAPEDECK_CI").is_ok_and(|v| v == "1")
}

/// Why the eBPF tests cannot run here, if they cannot (an error under TAPEDECK_CI=1).
fn ebpf_unsupported() -> Option<String> {
    let why = if !ebpf::built_in() {
        Some("the agent was built without its eBPF program (no BPF toolchain, or TAPEDECK_NO_EBPF=1)".to_string())
    } else {
        unsupported()
    };
    if let Some(w) = &why {
        assert!(!ci(), "TAPEDECK_CI=1 but the eBPF tests cannot run: {w}");
    }
    why
}

macro_rules! ebpf_setup {
    () => {{
        if let Some(why) = ebpf_unsupported() {
            eprintln!("skipped: {why}");
            return;
        }
        Net::new().expect("creating the namespaces")
    }};
}

#[test]
fn the_kernel_verifier_accepts_the_program() {
    if let Some(why) = ebpf_unsupported() {
        eprintln!("skipped: {why}");
        return;
    }
    if let Err(e) = ebpf::verify() {
        panic!("{e}");
    }
}

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tapedeck_model::{Exchange, Flags};

const H2_PORT: u16 = 8001;

/// The served files: small text, a 3 MB body (many GSO super-packets, cut at the 1 MiB body cap), a JSON file.
fn www(root: &Path) -> PathBuf {
    let www = root.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(www.join("b.json"), "{\"b\": 2}\n").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(www.join("big.bin"), big).unwrap();
    www
}

/// Everything the comparison between backends looks at in one exchange.
type Key = (String, String, String, u16, u64, u64, Vec<u8>, Vec<String>);

fn key(ex: &Exchange) -> Key {
    let (method, path, status) = summary_of(ex);
    let req_len = ex.request.as_ref().map_or(0, |r| r.body.full_len);
    let (resp_len, body) = ex.response.as_ref().map_or((0, Vec::new()), |r| (r.body.full_len, r.body.bytes.clone()));
    (format!("{:?}", ex.proto), method, path, status, req_len, resp_len, body, ex.flags.names())
}

fn keys(dir: &Path) -> Vec<Key> {
    let mut k: Vec<Key> = read_all(dir).iter().map(key).collect();
    k.sort();
    k
}

/// Sum of `tapedeck_exchanges_total` over protocols.
fn exchanges_total(text: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with("tapedeck_exchanges_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// An eBPF counter of the client veth.
fn ebpf_metric(net: &Net, text: &str, name: &str) -> u64 {
    let series = format!("tapedeck_ebpf_{name}_total{{interface=\"{}\",backend=\"ebpf\"}}", net.client_if);
    metric(text, &series).unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// Waits until the agent at `addr` counted `n` exchanges; returns its metrics then.
fn wait_exchanges(net: &Net, addr: &str, n: u64, log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, text) = net.fetch_at(addr, "/metrics");
        assert_eq!(code, 200, "{}", log_text(log));
        if exchanges_total(&text) >= n {
            return text;
        }
        assert!(Instant::now() < deadline, "{addr}: fewer than {n} exchanges:\n{text}\n{}", log_text(log));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(agent: &mut Agent, log: &Path) {
    let status = terminate(agent, Duration::from_secs(10));
    assert!(status.success(), "exit {status:?}\n{}", log_text(log));
}

/// Starts nghttpd (h2c, prior knowledge) on the server side when nghttp2 is installed.
fn start_h2_server(net: &mut Net, www: &Path) -> bool {
    if run(&["nghttpd", "--version"]).is_err() || run(&["nghttp", "--version"]).is_err() {
        assert!(!ci(), "TAPEDECK_CI=1 but nghttp/nghttpd are missing (apt nghttp2-client nghttp2-server)");
        eprintln!("note: nghttp2 not installed: the h2c part is skipped");
        return false;
    }
    let port = H2_PORT.to_string();
    net.spawn_in_server(&["nghttpd", "--no-tls", "-a", SERVER_IP, "-d", www.to_str().unwrap(), &port]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let probe = net
            .in_ns(&net.server_ns, &["nghttp", "-n", "-t", "1"])
            .arg(format!("http://{SERVER_IP}:{H2_PORT}/a.txt"))
            .output()
            .is_ok_and(|o| o.status.success());
        if probe {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nghttpd did not answer within 10 s");
}

/// h2c requests on one connection (prior knowledge); returns whether nghttp succeeded.
fn nghttp(net: &Net, paths: &[&str]) -> bool {
    let urls: Vec<String> = paths.iter().map(|p| format!("http://{SERVER_IP}:{H2_PORT}{p}")).collect();
    net.in_ns(&net.client_ns, &["nghttp", "-n", "-t", "10"]).args(&urls).status().is_ok_and(|s| s.success())
}

#[test]
fn ebpf_exchanges_equal_libpcap_exchanges_on_the_same_traffic() {
    let mut net = ebpf_setup!();
    let tmp = tempfile::tempdir().unwrap();
    let www = www(tmp.path());
    net.start_server(&www).unwrap();
    let h2 = start_h2_server(&mut net, &www);
    let filter = format!("tcp port {PORT} or tcp port {H2_PORT}");
    let (out_e, out_p) = (tmp.path().join("ebpf"), tmp.path().join("pcap"));
    let (log_e, log_p) = (tmp.path().join("ebpf.log"), tmp.path().join("pcap.log"));
    let (m_e, m_p) = ("127.0.0.1:9471", "127.0.0.1:9472");
    // Both backends at once on the same veth: they see the same packets.
    let mut ebpf = net.start_agent_at(m_e, &out_e, &["--backend", "ebpf", "--filter", &filter], &log_e);
    let mut pcap = net.start_agent_at(m_p, &out_p, &["--backend", "pcap", "--filter", &filter], &log_p);

    let plan: Vec<(&[&str], &str, u16, &str)> = vec![
        (&[], "/a.txt", 200, "GET"),
        (&[], "/big.bin", 200, "GET"),
        (&[], "/missing", 404, "GET"),
        (&["-I"], "/b.json", 200, "HEAD"),
        (&["-X", "POST", "-d", "x=1"], "/a.txt?q=1", 501, "POST"),
    ];
    let mut expected = Vec::new();
    for (args, path, status, method) in &plan {
        assert_eq!(net.curl(args, path), *status, "curl {args:?} {path}");
        expected.push((method.to_string(), path.to_string(), *status));
    }
    if h2 {
        assert!(nghttp(&net, &["/a.txt", "/big.bin", "/missing"]), "nghttp failed");
        expected.extend(
            [("GET", "/a.txt", 200), ("GET", "/big.bin", 200), ("GET", "/missing", 404)]
                .map(|(m, p, s)| (m.to_string(), p.to_string(), s)),
        );
    }
    let n = expected.len() as u64;
    let text_e = wait_exchanges(&net, m_e, n, &log_e);
    let text_p = wait_exchanges(&net, m_p, n, &log_p);
    std::thread::sleep(Duration::from_millis(700));
    let text_e = {
        let (_, t) = net.fetch_at(m_e, "/metrics");
        if t.is_empty() { text_e } else { t }
    };
    stop(&mut ebpf, &log_e);
    stop(&mut pcap, &log_p);

    // The eBPF agent recorded what the clients did ...
    let got_e = read_all(&out_e);
    let mut summary: Vec<(String, String, u16)> = got_e.iter().map(summary_of).collect();
    summary.sort();
    expected.sort();
    assert_eq!(summary, expected, "eBPF agent log:\n{}", log_text(&log_e));
    let big: &Exchange = got_e.iter().find(|e| summary_of(e).1 == "/big.bin").expect("the big download");
    let resp = big.response.as_ref().unwrap();
    assert_eq!(resp.body.full_len, 3_000_000, "the whole body was seen");
    assert_eq!(&resp.body.bytes[..], &std::fs::read(www.join("big.bin")).unwrap()[..resp.body.bytes.len()]);
    assert!(got_e.iter().all(|e| !e.flags.contains(Flags::GAP)), "no gaps with the default ring");
    if h2 {
        assert_eq!(got_e.iter().filter(|e| format!("{:?}", e.proto).contains('2')).count(), 3, "three h2 streams");
    }
    // ... and exactly what libpcap recorded on the same traffic.
    assert_eq!(keys(&out_e), keys(&out_p), "eBPF and libpcap disagree");

    // Counters: nothing lost; wakeups batched (far fewer than records).
    let seen = ebpf_metric(&net, &text_e, "seen");
    let matched = ebpf_metric(&net, &text_e, "matched");
    let submitted = ebpf_metric(&net, &text_e, "submitted");
    let wakeups = ebpf_metric(&net, &text_e, "wakeups");
    eprintln!("{n} exchanges; eBPF: seen {seen}, matched {matched}, submitted {submitted}, wakeups {wakeups}");
    assert_eq!(ebpf_metric(&net, &text_e, "reserve_failures"), 0, "{text_e}");
    assert_eq!(submitted, matched, "{text_e}");
    assert!(seen >= matched && matched >= 7 * n, "seen {seen}, matched {matched}\n{text_e}");
    assert!(wakeups < submitted / 2, "wakeups {wakeups} for {submitted} records: not batched\n{text_e}");
    let iface = &net.client_if;
    let backend = format!("tapedeck_capture_backend{{interface=\"{iface}\",backend=\"ebpf\"}}");
    assert_eq!(metric(&text_e, &backend), Some(1), "{text_e}");
    let packets_e = metric(&text_e, &format!("tapedeck_packets_total{{interface=\"{iface}\"}}")).unwrap();
    assert_eq!(packets_e, submitted, "every record became a packet of the pipeline");
    assert!(text_p.contains(&format!("tapedeck_capture_backend{{interface=\"{iface}\",backend=\"pcap\"}} 1")));
}
