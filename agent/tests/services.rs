//! `--split-by-service` and `--service-map` on the capture-file path, as users run the agent: three bundled
//! captures of three servers (nginx HTTP/1.1 on 127.0.0.1:18080, nginx on [::1]:18086, nginx h2c on
//! 127.0.0.1:18083) give three service directories, each holding exactly its server's exchanges (read back from
//! the segments; the expected requests come from the captures' tshark listings in testdata/).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tapedeck_model::segment::{SegmentReader, list_segments};

const AGENT: &str = env!("CARGO_BIN_EXE_agent");

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata").join(name)
}

/// The three captures, one `--pcap` each.
fn inputs() -> Vec<String> {
    let mut args = Vec::new();
    for f in ["h1-curl-basic.pcap", "h1-ipv6.pcap", "h2c-nginx.pcap"] {
        args.push("--pcap".to_string());
        args.push(testdata(f).display().to_string());
    }
    args
}

fn agent(out: &Path, extra: &[&str]) -> Output {
    Command::new(AGENT)
        .args(inputs())
        .arg("--out")
        .arg(out)
        .args(["--quiet"])
        .args(extra)
        .env_remove("TAPEDECK_LOG")
        .output()
        .unwrap()
}

/// Request paths (sorted) per directory below `out` ("" for `out` itself), read from the segments.
fn paths_by_dir(out: &Path) -> BTreeMap<String, Vec<String>> {
    let mut by_dir: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in list_segments(out).unwrap() {
        let dir = f.parent().unwrap().strip_prefix(out).unwrap().display().to_string();
        let mut r = SegmentReader::open(&f).unwrap();
        assert!(r.recovery().is_clean(), "{}", f.display());
        let header_service = r.header().labels.iter().find(|(k, _)| k == "service").map(|(_, v)| v.clone());
        assert_eq!(header_service.as_deref().unwrap_or(""), dir, "the header names the service: {}", f.display());
        for ex in r.exchanges() {
            let ex = ex.unwrap();
            let path = String::from_utf8_lossy(&ex.request.as_ref().unwrap().path).into_owned();
            by_dir.entry(dir.clone()).or_default().push(path);
        }
    }
    for v in by_dir.values_mut() {
        v.sort();
    }
    by_dir
}

/// What tshark saw in each capture (testdata/*.tshark.tsv), by the directory the split should give it.
fn expected(names: [&str; 3]) -> BTreeMap<String, Vec<String>> {
    let h1: Vec<&str> = vec![
        "/api/echo",
        "/data.json",
        "/empty",
        "/hello.txt",
        "/hello.txt",
        "/hello.txt",
        "/hello.txt",
        "/hello.txt",
        "/missing.txt",
        "/old",
        "/upload/put.txt",
    ];
    let v6 = vec!["/api/echo", "/data.json", "/hello.txt"];
    let h2 = vec!["/data.json", "/gz/lorem.txt", "/hello.txt"];
    names
        .into_iter()
        .zip([h1, v6, h2])
        .map(|(n, v)| (n.to_string(), v.into_iter().map(str::to_string).collect()))
        .collect()
}

fn stats(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn each_server_gets_its_own_directory_with_its_exchanges() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let json = dir.path().join("stats.json");
    let o = agent(&out, &["--split-by-service", "--stats-json", json.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(paths_by_dir(&out), expected(["127.0.0.1_18080", "0--1_18086", "127.0.0.1_18083"]));
    for d in ["127.0.0.1_18080", "0--1_18086", "127.0.0.1_18083"] {
        let mode = std::fs::metadata(out.join(d)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{d}");
    }
    for f in list_segments(&out).unwrap() {
        assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600, "{}", f.display());
    }
    let s = stats(&json);
    assert_eq!(s["services"]["writers_opened"], 3, "{}", s["services"]);
    assert_eq!(s["services"]["writers_evicted"], 0);
    assert_eq!(s["writer"]["exchanges"], 17);
    assert_eq!(s["segments"].as_array().unwrap().len(), 3);
}

#[test]
fn without_the_flag_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let json = dir.path().join("stats.json");
    let o = agent(&out, &["--stats-json", json.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let by_dir = paths_by_dir(&out);
    assert_eq!(by_dir.keys().collect::<Vec<_>>(), [""], "everything in --out itself");
    assert_eq!(by_dir[""].len(), 17);
    assert!(stats(&json).get("services").is_none(), "no services section without splitting");
}

#[test]
fn a_service_map_names_directories_and_implies_splitting() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let map = dir.path().join("services.toml");
    std::fs::write(
        &map,
        "[[service]]\nlabel = \"web\"\naddr = \"127.0.0.1:18080\"\n\n\
         [[service]]\nlabel = \"web-v6\"\ncidr = \"::1/128\"\nport = 18086\n",
    )
    .unwrap();
    // Through the environment variable, which stands for the flag.
    let o = Command::new(AGENT)
        .args(inputs())
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .env("TAPEDECK_SERVICE_MAP", &map)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The h2c server matches no entry: named by address and port.
    assert_eq!(paths_by_dir(&out), expected(["web", "web-v6", "127.0.0.1_18083"]));
}

#[test]
fn the_open_writer_bound_evicts_and_exchanges_stay_in_their_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let json = dir.path().join("stats.json");
    let o = agent(&out, &["--split-by-service", "--max-open-services", "1", "--stats-json", json.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(paths_by_dir(&out), expected(["127.0.0.1_18080", "0--1_18086", "127.0.0.1_18083"]));
    let s = &stats(&json)["services"];
    let (opened, evicted) = (s["writers_opened"].as_u64().unwrap(), s["writers_evicted"].as_u64().unwrap());
    // One writer at a time for three services: every writer but the last was evicted, at least two.
    assert!(evicted >= 2, "{s}");
    assert_eq!(opened, evicted + 1, "{s}");
    assert_eq!(s["peak_open"], 1, "{s}");
}

#[test]
fn a_bad_service_map_is_refused_naming_the_file_and_entry() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("bad.toml");
    std::fs::write(
        &map,
        "[[service]]\nlabel = \"ok\"\naddr = \"127.0.0.1:1\"\n[[service]]\nlabel = \"../x\"\naddr = \"127.0.0.1:2\"\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = agent(&out, &["--service-map", map.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(map.to_str().unwrap()) && err.contains("entry 2") && err.contains("../x"), "{err}");
    assert!(list_segments(&out).map(|v| v.is_empty()).unwrap_or(true), "nothing written");
}

#[test]
fn print_config_shows_the_service_settings_and_they_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(AGENT)
        .args(["--pcap", "x.pcap", "--out", "o", "--split-by-service", "--max-open-services", "9", "--print-config"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("split-by-service = true") && text.contains("max-open-services = 9"), "{text}");
    // The printed file, given back with --config, splits the same way.
    let cfg = dir.path().join("agent.toml");
    let mut text = text.replace("pcap = [\"x.pcap\"]", "pcap = []");
    text = text.replace("out = \"o\"", &format!("out = {:?}", dir.path().join("out").display().to_string()));
    std::fs::write(&cfg, text).unwrap();
    let o = Command::new(AGENT).args(inputs()).arg("--config").arg(&cfg).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(paths_by_dir(&dir.path().join("out")), expected(["127.0.0.1_18080", "0--1_18086", "127.0.0.1_18083"]));
}
