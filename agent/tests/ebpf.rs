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

#[test]
fn kernel_filters_drop_what_they_exclude_and_count_it() {
    let mut net = ebpf_setup!();
    let tmp = tempfile::tempdir().unwrap();
    let www = www(tmp.path());
    net.start_server(&www).unwrap();
    // A second HTTP server on another port.
    let other = H2_PORT.to_string();
    net.spawn_in_server(&[
        "python3",
        "-m",
        "http.server",
        &other,
        "--bind",
        SERVER_IP,
        "--directory",
        www.to_str().unwrap(),
    ])
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while net
        .in_ns(&net.server_ns, &["curl", "-s", "-o", "/dev/null", "--max-time", "1"])
        .arg(format!("http://{SERVER_IP}:{H2_PORT}/a.txt"))
        .status()
        .is_ok_and(|s| !s.success())
    {
        assert!(Instant::now() < deadline, "the second server did not answer");
        std::thread::sleep(Duration::from_millis(100));
    }
    let port = PORT.to_string();
    let agents: [(&str, Vec<&str>); 3] = [
        // Only port 8000.
        ("127.0.0.1:9481", vec!["--ebpf-port", &port]),
        // A prefix no traffic is in.
        ("127.0.0.1:9482", vec!["--ebpf-cidr", "10.99.0.0/16"]),
        // Port 8001 and the veth's prefix, both.
        ("127.0.0.1:9483", vec!["--ebpf-port", &other, "--ebpf-cidr", "10.213.0.0/24"]),
    ];
    let mut running = Vec::new();
    for (i, (addr, flags)) in agents.iter().enumerate() {
        let out = tmp.path().join(format!("out{i}"));
        let log = tmp.path().join(format!("agent{i}.log"));
        let mut args = vec!["--backend", "ebpf"];
        args.extend(flags.iter().copied());
        running.push((net.start_agent_at(addr, &out, &args, &log), out, log, *addr));
    }
    assert_eq!(net.curl(&[], "/a.txt"), 200);
    assert_eq!(net.curl(&[], "/b.json"), 200);
    let other_url = format!("http://{SERVER_IP}:{H2_PORT}/a.txt");
    let ok = net.in_ns(&net.client_ns, &["curl", "-s", "-o", "/dev/null", "--max-time", "5", &other_url]).status();
    assert!(ok.is_ok_and(|s| s.success()));
    // Not TCP at all: seen, never matched.
    run(&["ip", "netns", "exec", &net.client_ns, "ping", "-c", "3", "-i", "0.2", "-W", "1", SERVER_IP]).ok();

    let expect_exchanges = [2u64, 0, 1];
    let mut texts = Vec::new();
    for ((agent, out, log, addr), n) in running.iter_mut().zip(expect_exchanges) {
        let text = if n > 0 {
            wait_exchanges(&net, addr, n, log);
            std::thread::sleep(Duration::from_millis(700));
            net.fetch_at(addr, "/metrics").1
        } else {
            std::thread::sleep(Duration::from_millis(700));
            net.fetch_at(addr, "/metrics").1
        };
        stop(agent, log);
        texts.push((text, read_all(out)));
    }
    let c = |i: usize, name: &str| ebpf_metric(&net, &texts[i].0, name);
    for (i, (text, _)) in texts.iter().enumerate() {
        eprintln!("agent {i}: seen {}, matched {}, submitted {}", c(i, "seen"), c(i, "matched"), c(i, "submitted"));
        // Three HTTP connections (about 10 packets each) and ICMP: every agent's classifiers see them all.
        assert!(c(i, "seen") >= 30, "agent {i}\n{text}");
        assert_eq!(c(i, "submitted"), c(i, "matched"), "agent {i}: nothing lost");
        assert_eq!(c(i, "reserve_failures"), 0);
    }
    // Port 8000 only: the other connection and the pings were dropped in the kernel.
    assert!(c(0, "seen") > c(0, "matched") && c(0, "matched") > 0);
    let paths: Vec<(String, String, u16)> = texts[0].1.iter().map(summary_of).collect();
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert!(texts[0].1.iter().all(|e| e.server.port() == PORT));
    // A prefix outside the traffic: nothing matched, nothing recorded.
    assert_eq!(c(1, "matched"), 0, "{}", texts[1].0);
    assert!(texts[1].1.is_empty());
    // Port 8001 within 10.213.0.0/24: only the one exchange on 8001.
    assert!(c(2, "seen") > c(2, "matched") && c(2, "matched") > 0);
    assert_eq!(texts[2].1.len(), 1);
    assert_eq!(texts[2].1[0].server.port(), H2_PORT);
    // The port filter keeps more than the port-and-prefix one (two connections against one).
    assert!(c(0, "matched") > c(2, "matched"));
}

#[test]
fn a_ring_too_small_for_the_traffic_counts_its_losses_and_flags_gaps() {
    let mut net = ebpf_setup!();
    let tmp = tempfile::tempdir().unwrap();
    let www = www(tmp.path());
    net.start_server(&www).unwrap();
    let (out, log, addr) = (tmp.path().join("out"), tmp.path().join("agent.log"), "127.0.0.1:9491");
    let port = PORT.to_string();
    let args = ["--backend", "ebpf", "--ebpf-port", &port, "--ebpf-ring-size", "4096"];
    let mut agent = net.start_agent_at(addr, &out, &args, &log);
    for _ in 0..3 {
        assert_eq!(net.curl(&[], "/big.bin"), 200);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let (_, text) = net.fetch_at(addr, "/metrics");
    stop(&mut agent, &log);
    let c = |name: &str| ebpf_metric(&net, &text, name);
    let (matched, submitted, failed) = (c("matched"), c("submitted"), c("reserve_failures"));
    eprintln!("small ring: matched {matched}, submitted {submitted}, reserve failures {failed}");
    // A 4 KiB ring cannot hold a 64 KiB super-packet's record: those are lost, and counted.
    assert!(failed > 0, "{text}");
    assert_eq!(matched, submitted + failed + c("copy_failures"), "every matched packet is accounted for\n{text}");
    let iface = &net.client_if;
    let drops = metric(&text, &format!("tapedeck_kernel_drops_total{{interface=\"{iface}\"}}"));
    assert_eq!(drops, Some(failed), "reserve failures are the interface's kernel drops");
    // The pipeline saw the holes: counted gaps, and exchanges flagged (not silently short).
    let gaps = metric(&text, "tapedeck_gaps_total").unwrap();
    assert!(gaps > 0, "no gaps counted\n{text}");
    let exchanges = read_all(&out);
    assert!(
        exchanges.iter().any(|e| e.flags.contains(Flags::GAP)),
        "no exchange flagged: {:?}",
        exchanges.iter().map(|e| e.flags.names()).collect::<Vec<_>>()
    );
    assert!(
        exchanges
            .iter()
            .all(|e| e.response.as_ref().is_none_or(|r| r.body.full_len < 3_000_000) || e.flags.contains(Flags::GAP)),
        "a body seen whole through a lossy ring?"
    );
}

#[test]
fn unsupported_filters_are_refused_by_ebpf_and_make_auto_fall_back() {
    let mut net = ebpf_setup!();
    let tmp = tempfile::tempdir().unwrap();
    let www = www(tmp.path());
    net.start_server(&www).unwrap();
    let out = tmp.path().join("out");
    // --backend ebpf: a bad flag (exit 2) naming what is supported.
    let refused = net
        .in_ns(&net.client_ns, &[AGENT, "--iface", &net.client_if, "--out"])
        .arg(&out)
        .args(["--backend", "ebpf", "--filter", "tcp port 8000 and host 10.213.0.1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(err.contains("tcp port N") && err.contains("--ebpf-port"), "{err}");

    // --backend auto with the same filter: libpcap, said once in the log, and capturing.
    let (log, addr) = (tmp.path().join("auto.log"), "127.0.0.1:9495");
    let args = ["--backend", "auto", "--filter", "tcp port 8000 and host 10.213.0.1"];
    let mut agent = net.start_agent_at(addr, &out, &args, &log);
    assert_eq!(net.curl(&[], "/a.txt"), 200);
    let text = wait_exchanges(&net, addr, 1, &log);
    stop(&mut agent, &log);
    let iface = &net.client_if;
    assert!(text.contains(&format!("tapedeck_capture_backend{{interface=\"{iface}\",backend=\"pcap\"}} 1")), "{text}");
    let logged = log_text(&log);
    let lines: Vec<&str> = logged.lines().filter(|l| l.contains("capture backend")).collect();
    assert_eq!(lines.len(), 1, "{logged}");
    assert!(lines[0].contains("libpcap") && lines[0].contains("tcp port N"), "{}", lines[0]);
    assert_eq!(read_all(&out).len(), 1);

    // --backend auto with a supported filter: eBPF.
    let (out2, log2, addr2) = (tmp.path().join("out2"), tmp.path().join("auto2.log"), "127.0.0.1:9496");
    let mut agent = net.start_agent_at(addr2, &out2, &["--backend", "auto", "--filter", "tcp port 8000"], &log2);
    assert_eq!(net.curl(&[], "/b.json"), 200);
    let text = wait_exchanges(&net, addr2, 1, &log2);
    stop(&mut agent, &log2);
    assert!(text.contains(&format!("tapedeck_capture_backend{{interface=\"{iface}\",backend=\"ebpf\"}} 1")), "{text}");
    let logged = log_text(&log2);
    assert!(logged.lines().any(|l| l.contains("capture backend: eBPF")), "{logged}");
    assert_eq!(read_all(&out2).len(), 1);
}

#[test]
fn on_loopback_each_packet_is_captured_once_as_with_libpcap() {
    let mut net = ebpf_setup!();
    let tmp = tempfile::tempdir().unwrap();
    let www = www(tmp.path());
    let server = net
        .in_ns(&net.client_ns, &["python3", "-m", "http.server", "8080", "--bind", "127.0.0.1", "--directory"])
        .arg(&www)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    net.children.push(server);
    let url = "http://127.0.0.1:8080/a.txt";
    let get = |net: &Net| {
        net.in_ns(&net.client_ns, &["curl", "-s", "-o", "/dev/null", "--max-time", "2", url])
            .status()
            .is_ok_and(|s| s.success())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get(&net) {
        assert!(Instant::now() < deadline, "the loopback server did not answer");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut agents = Vec::new();
    for (backend, addr) in [("ebpf", "127.0.0.1:9501"), ("pcap", "127.0.0.1:9502")] {
        let (out, log) = (tmp.path().join(backend), tmp.path().join(format!("{backend}.log")));
        // The metrics listener is on loopback too: only port 8080 is kept.
        let args = ["--iface", "lo", "--backend", backend, "--ebpf-port", "8080"];
        let child = net
            .in_ns(&net.client_ns, &[AGENT, "--metrics-addr", addr, "--out"])
            .arg(&out)
            .args(args)
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        agents.push((Agent(child), out, log, addr));
        let deadline = Instant::now() + Duration::from_secs(10);
        while net.fetch_at(addr, "/healthz").0 != 200 {
            assert!(Instant::now() < deadline, "{backend} agent not ready");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    for _ in 0..3 {
        assert!(get(&net));
    }
    let mut results = Vec::new();
    for (agent, out, log, addr) in &mut agents {
        let text = wait_exchanges(&net, addr, 3, log);
        std::thread::sleep(Duration::from_millis(700));
        let text = Some(net.fetch_at(addr, "/metrics").1).filter(|t| !t.is_empty()).unwrap_or(text);
        stop(agent, log);
        let packets = metric(&text, "tapedeck_packets_total{interface=\"lo\"}").unwrap();
        results.push((packets, keys(out)));
    }
    eprintln!("loopback packets: eBPF {}, libpcap {}", results[0].0, results[1].0);
    assert_eq!(results[0].0, results[1].0, "packet counts differ");
    assert_eq!(results[0].1, results[1].1);
    assert_eq!(results[0].1.len(), 3);
}

#[test]
fn a_short_snaplen_cuts_the_same_way_as_libpcap() {
    let mut net = ebpf_setup!();
    let tmp = tempfile::tempdir().unwrap();
    let www = www(tmp.path());
    net.start_server(&www).unwrap();
    let mut agents = Vec::new();
    for (backend, addr) in [("ebpf", "127.0.0.1:9511"), ("pcap", "127.0.0.1:9512")] {
        let (out, log) = (tmp.path().join(backend), tmp.path().join(format!("{backend}.log")));
        let stats = tmp.path().join(format!("{backend}.json"));
        let args = ["--backend", backend, "--ebpf-port", "8000", "--snaplen", "200", "--stats-json"];
        let mut args: Vec<&str> = args.to_vec();
        args.push(stats.to_str().unwrap());
        agents.push((net.start_agent_at(addr, &out, &args, &log), out, log, stats));
    }
    assert_eq!(net.curl(&[], "/a.txt"), 200);
    assert_eq!(net.curl(&[], "/big.bin"), 200);
    std::thread::sleep(Duration::from_millis(1500));
    let mut results = Vec::new();
    for (agent, out, log, stats) in &mut agents {
        stop(agent, log);
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
        results.push((json["live"]["interfaces"][0].clone(), keys(out)));
    }
    let (ebpf, pcap) = (&results[0].0, &results[1].0);
    let truncated = ebpf["ebpf"]["truncated"].as_u64().unwrap();
    eprintln!("snaplen 200: eBPF truncated {truncated} of {}, libpcap {}", ebpf["packets"], pcap["truncated"]);
    assert!(truncated > 0, "{ebpf}");
    assert_eq!(ebpf["truncated"].as_u64(), Some(truncated), "the reader saw every cut record as cut");
    assert_eq!(ebpf["packets"], pcap["packets"], "{ebpf}\n{pcap}");
    assert_eq!(ebpf["truncated"], pcap["truncated"], "{ebpf}\n{pcap}");
    assert_eq!(results[0].1, results[1].1, "eBPF and libpcap disagree with a short snaplen");
    let flags: Vec<Vec<String>> = results[0].1.iter().map(|k| k.7.clone()).collect();
    // Both responses are longer than 200 bytes a packet: the pipeline marks what the cut lost as gaps.
    assert!(flags.len() == 2 && flags.iter().all(|f| f.iter().any(|n| n == "gap")), "{flags:?}");
}
