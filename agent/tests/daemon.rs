//! The agent as a daemon, without a network: the configuration file (round trip through --print-config, unknown
//! keys, precedence flag > environment > file > default, environment equivalents) and the sharded pipeline (the
//! same exchanges whatever --workers is).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tapedeck_agent::pipeline::{CaptureConfig, RunSummary, run_files};
use tapedeck_model::Exchange;
use tapedeck_model::segment::{SegmentReader, list_segments};

fn agent() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_agent"));
    // The tests set what they mean to; nothing from the caller's environment.
    for (k, _) in std::env::vars() {
        if k.starts_with("TAPEDECK_") {
            c.env_remove(k);
        }
    }
    c
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn print_config(args: &[&str], env: &[(&str, &str)]) -> Output {
    agent().arg("--print-config").args(args).envs(env.iter().copied()).output().unwrap()
}

/// The value of `key` in a printed configuration.
fn value(toml_text: &str, key: &str) -> Option<toml::Value> {
    let t: toml::Table = toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}\n{toml_text}"));
    t.get(key).cloned()
}

#[test]
fn print_config_round_trips_through_config() {
    let dir = tempfile::tempdir().unwrap();
    let o = print_config(
        &[
            "--iface",
            "eth0",
            "--iface",
            "eth1",
            "--out",
            "/var/lib/tapedeck",
            "--filter",
            "tcp port 80",
            "--max-body",
            "64KiB",
            "--label",
            "node=a",
            "--label",
            "zone=b=c",
            "--workers",
            "3",
            "--retain-age",
            "90m",
            "--metrics-addr",
            "0.0.0.0:9090",
            "--no-default-masking",
            "--flush-interval",
            "2s",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let first = stdout(&o);
    assert_eq!(value(&first, "iface"), Some(toml::Value::Array(vec!["eth0".into(), "eth1".into()])));
    assert_eq!(value(&first, "max-body"), Some(toml::Value::Integer(65536)));
    assert_eq!(value(&first, "workers"), Some(toml::Value::Integer(3)));
    assert_eq!(value(&first, "no-default-masking"), Some(toml::Value::Boolean(true)));
    assert_eq!(value(&first, "label"), Some(toml::Value::Array(vec!["node=a".into(), "zone=b=c".into()])));
    let file = dir.path().join("agent.toml");
    std::fs::write(&file, &first).unwrap();
    let o = agent().arg("--config").arg(&file).arg("--print-config").output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), first, "the printed configuration reads back to itself");
}

#[test]
fn unknown_key_is_an_error_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "out = \"o\"\nmax-bodies = \"1MiB\"\n").unwrap();
    let o = agent().arg("--config").arg(&file).args(["--pcap", "x.pcap"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("bad.toml") && e.contains("max-bodies"), "{e}");
    // A value the flag would refuse is refused the same way, naming the file and the flag (= the key).
    std::fs::write(&file, "out = \"o\"\nsnaplen = \"lots\"\n").unwrap();
    let o = agent().arg("--config").arg(&file).args(["--iface", "lo", "--print-config"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("bad.toml") && e.contains("--snaplen"), "{e}");
    // A missing file is named too.
    let o = agent().args(["--config", "/nonexistent/agent.toml", "--print-config"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/agent.toml"), "{}", stderr(&o));
}

#[test]
fn precedence_is_flag_then_environment_then_file_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.toml");
    std::fs::write(&file, "max-body = \"1KiB\"\nout = \"from-file\"\niface = [\"file0\"]\n").unwrap();
    let cfg = file.to_str().unwrap();
    let body = |args: &[&str], env: &[(&str, &str)]| {
        let o = print_config(args, env);
        assert!(o.status.success(), "{}", stderr(&o));
        value(&stdout(&o), "max-body").and_then(|v| v.as_integer())
    };
    assert_eq!(body(&[], &[]), Some(1 << 20), "default");
    assert_eq!(body(&["--config", cfg], &[]), Some(1024), "file");
    assert_eq!(body(&["--config", cfg], &[("TAPEDECK_MAX_BODY", "2KiB")]), Some(2048), "environment over file");
    assert_eq!(
        body(&["--config", cfg, "--max-body", "3KiB"], &[("TAPEDECK_MAX_BODY", "2KiB")]),
        Some(3072),
        "flag over environment"
    );
    // The config file itself can come from the environment; list values from the environment are
    // comma-separated.
    let o = print_config(&[], &[("TAPEDECK_CONFIG", cfg), ("TAPEDECK_IFACE", "eth0,eth1")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = stdout(&o);
    assert_eq!(value(&t, "iface"), Some(toml::Value::Array(vec!["eth0".into(), "eth1".into()])));
    assert_eq!(value(&t, "out").and_then(|v| v.as_str().map(str::to_string)), Some("from-file".into()));
    // --pcap on the command line wins over the file's interfaces (they could not be used together).
    let o = print_config(&["--config", cfg, "--pcap", "x.pcap"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(value(&stdout(&o), "iface"), Some(toml::Value::Array(vec![])));
}

#[test]
fn every_setting_has_an_environment_equivalent() {
    let env = [
        ("TAPEDECK_OUT", "/tmp/o"),
        ("TAPEDECK_IFACE", "eth9"),
        ("TAPEDECK_FILTER", "tcp port 8080"),
        ("TAPEDECK_SNAPLEN", "2048"),
        ("TAPEDECK_BUFFER_SIZE", "4MiB"),
        ("TAPEDECK_METRICS_ADDR", "127.0.0.1:9100"),
        ("TAPEDECK_RETAIN_AGE", "2h"),
        ("TAPEDECK_RETAIN_BYTES", "1GiB"),
        ("TAPEDECK_SHUTDOWN_TIMEOUT", "3s"),
        ("TAPEDECK_MAX_BODY", "1KiB"),
        ("TAPEDECK_SEGMENT_MAX_BYTES", "1MiB"),
        ("TAPEDECK_SEGMENT_MAX_AGE", "1m"),
        ("TAPEDECK_ZSTD_LEVEL", "5"),
        ("TAPEDECK_MAX_FLOWS", "77"),
        ("TAPEDECK_MAX_FLOW_BUFFER", "64KiB"),
        ("TAPEDECK_MAX_BUFFERED", "8MiB"),
        ("TAPEDECK_IDLE_TIMEOUT", "30s"),
        ("TAPEDECK_LABEL", "node=n1"),
        ("TAPEDECK_QUIET", "true"),
        ("TAPEDECK_LOG_FORMAT", "json"),
        ("TAPEDECK_LOG_FILE", "/tmp/agent.log"),
        ("TAPEDECK_WORKERS", "2"),
        ("TAPEDECK_FLUSH_INTERVAL", "1s"),
        ("TAPEDECK_NO_DEFAULT_MASKING", "true"),
        ("TAPEDECK_MASK_POLICY", "/etc/p.toml"),
        ("TAPEDECK_MASK_KEY_FILE", "/etc/k"),
        ("TAPEDECK_STATS_JSON", "/tmp/s.json"),
    ];
    let o = print_config(&[], &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = stdout(&o);
    let s = |k: &str| value(&t, k).unwrap_or_else(|| panic!("{k} missing in\n{t}"));
    assert_eq!(s("out").as_str(), Some("/tmp/o"));
    assert_eq!(s("iface"), toml::Value::Array(vec!["eth9".into()]));
    assert_eq!(s("filter").as_str(), Some("tcp port 8080"));
    assert_eq!(s("snaplen").as_integer(), Some(2048));
    assert_eq!(s("buffer-size").as_integer(), Some(4 << 20));
    assert_eq!(s("metrics-addr").as_str(), Some("127.0.0.1:9100"));
    assert_eq!(s("retain-age").as_str(), Some("2h"));
    assert_eq!(s("retain-bytes").as_integer(), Some(1 << 30));
    assert_eq!(s("shutdown-timeout").as_str(), Some("3s"));
    assert_eq!(s("max-body").as_integer(), Some(1024));
    assert_eq!(s("segment-max-bytes").as_integer(), Some(1 << 20));
    assert_eq!(s("segment-max-age").as_str(), Some("1m"));
    assert_eq!(s("zstd-level").as_integer(), Some(5));
    assert_eq!(s("max-flows").as_integer(), Some(77));
    assert_eq!(s("max-flow-buffer").as_integer(), Some(64 << 10));
    assert_eq!(s("max-buffered").as_integer(), Some(8 << 20));
    assert_eq!(s("idle-timeout").as_str(), Some("30s"));
    assert_eq!(s("label"), toml::Value::Array(vec!["node=n1".into()]));
    assert_eq!(s("quiet").as_bool(), Some(true));
    assert_eq!(s("log-format").as_str(), Some("json"));
    assert_eq!(s("log-file").as_str(), Some("/tmp/agent.log"));
    assert_eq!(s("workers").as_integer(), Some(2));
    assert_eq!(s("flush-interval").as_str(), Some("1s"));
    assert_eq!(s("no-default-masking").as_bool(), Some(true));
    assert_eq!(s("mask-policy").as_str(), Some("/etc/p.toml"));
    assert_eq!(s("mask-key-file").as_str(), Some("/etc/k"));
    assert_eq!(s("stats-json").as_str(), Some("/tmp/s.json"));
}

#[test]
fn a_config_file_drives_a_real_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("segments");
    let stats = dir.path().join("stats.json");
    let file = dir.path().join("agent.toml");
    let text = format!(
        "pcap = [{:?}]\nout = {:?}\nstats-json = {:?}\nquiet = true\nworkers = 2\n",
        testdata().join("h1-curl-basic.pcap").to_str().unwrap(),
        out.to_str().unwrap(),
        stats.to_str().unwrap()
    );
    std::fs::write(&file, text).unwrap();
    let o = agent().arg("--config").arg(&file).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).is_empty(), "quiet from the file: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert!(v["exchanges"]["total"].as_u64().unwrap() >= 10, "{v}");
    assert_eq!(v["workers"].as_array().map(Vec::len), Some(2), "{v}");
}

/// Runs the file pipeline with `workers` workers and returns the summary and the exchanges written.
fn record(inputs: &[PathBuf], workers: usize) -> (RunSummary, Vec<Exchange>) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = CaptureConfig::default();
    cfg.writer.dir = dir.path().to_path_buf();
    cfg.workers = workers;
    let summary = run_files(inputs, cfg, &mut ()).expect("pipeline runs");
    let mut all = Vec::new();
    for file in list_segments(dir.path()).unwrap() {
        let mut r = SegmentReader::open(&file).unwrap();
        for ex in r.exchanges() {
            all.push(ex.expect("segment reads back"));
        }
    }
    (summary, all)
}

/// The exchanges as a sorted list of their debug forms, without the numbering that depends on which worker
/// handed them over first (exchange ids, connection ids; the order within a connection is kept).
fn normalized(mut v: Vec<Exchange>) -> Vec<String> {
    let mut out: Vec<String> = v
        .iter_mut()
        .map(|e| {
            e.id = 0;
            e.connection_id = 0;
            format!("{e:?}")
        })
        .collect();
    out.sort();
    out
}

/// The seconds of the first record of a classic little-endian pcap (0 for anything else: pcapng).
fn first_capture_second(path: &Path) -> u32 {
    let bytes = std::fs::read(path).unwrap_or_default();
    match bytes.get(..28) {
        Some(h) if h[..4] == [0xd4, 0xc3, 0xb2, 0xa1] || h[..4] == [0x4d, 0x3c, 0xb2, 0xa1] => {
            u32::from_le_bytes([h[24], h[25], h[26], h[27]])
        }
        _ => 0,
    }
}

fn captures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(testdata())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    v.sort();
    v
}

#[test]
fn the_same_exchanges_whatever_the_number_of_workers() {
    let all = captures();
    assert!(all.len() >= 10, "testdata captures: {all:?}");
    let mut runs: Vec<Vec<PathBuf>> = all.iter().map(|p| vec![p.clone()]).collect();
    // All captures as one input too: many connections, so that every worker gets some. In capture-time order, as
    // rotated files are joined: the captures were made hours apart, and a file whose times lie before the previous
    // file's makes idle expiry depend on which worker saw the later clock.
    let mut chronological = all.clone();
    chronological.sort_by_key(|p| first_capture_second(p));
    runs.push(chronological);
    for inputs in runs {
        let (s1, e1) = record(&inputs, 1);
        let (s3, e3) = record(&inputs, 3);
        let name = inputs.first().map(|p| p.display().to_string()).unwrap_or_default();
        assert_eq!(e1.len(), e3.len(), "{name}: exchange count");
        assert_eq!(normalized(e1), normalized(e3), "{name}: exchanges differ between 1 and 3 workers");
        // The summary adds up the workers' counters.
        assert_eq!(s3.workers.len(), 3);
        assert_eq!(s1.exchanges.total, s3.exchanges.total, "{name}");
        assert_eq!(s3.workers.iter().map(|w| w.exchanges).sum::<u64>(), s3.exchanges.total, "{name}");
        assert_eq!(s1.reassembly.packets, s3.reassembly.packets, "{name}");
        assert_eq!(s3.workers.iter().map(|w| w.segments).sum::<u64>(), s3.reassembly.packets, "{name}");
        assert_eq!(s1.reassembly.flows_created, s3.reassembly.flows_created, "{name}");
        assert_eq!(s1.reassembly.delivered_bytes, s3.reassembly.delivered_bytes, "{name}");
        assert_eq!(s1.reassembly.gaps, s3.reassembly.gaps, "{name}");
        assert_eq!(s1.sessions.flows_http1, s3.sessions.flows_http1, "{name}");
        assert_eq!(s1.sessions.flows_h2, s3.sessions.flows_h2, "{name}");
        assert_eq!(s1.exchanges.by_flag, s3.exchanges.by_flag, "{name}");
        if inputs.len() > 1 {
            assert!(s3.workers.iter().all(|w| w.exchanges > 0), "every worker got work: {:?}", s3.workers);
        }
    }
}
