//! The servers captures are made against: a document root of known content, a throwaway nginx config
//! (HTTP/1.x on fixed ports inside the private namespace) and nghttpd for cleartext HTTP/2.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use crate::netns::Netns;
use crate::proc::{self, Daemon};

/// nginx, IPv4 (`127.0.0.1`).
pub const NGINX_PORT: u16 = 18080;
/// nginx, IPv6 (`[::1]`).
pub const NGINX_V6_PORT: u16 = 18086;
/// nghttpd `--no-tls` (h2c prior knowledge and h2c upgrade).
pub const NGHTTPD_PORT: u16 = 18082;
/// nginx's h2c (HTTP/2 with prior knowledge, no TLS) listener.
pub const NGINX_H2C_PORT: u16 = 18083;
/// microsocks, a SOCKS5 proxy (no authentication).
pub const SOCKS_PORT: u16 = 18087;

/// Every served file's modification time: 2024-01-01T00:00:00Z, so `Last-Modified` is stable.
pub const MTIME_UNIX: u64 = 1_704_067_200;
/// `MTIME_UNIX` as an HTTP date, for `If-Modified-Since`.
pub const MTIME_HTTP: &str = "Mon, 01 Jan 2024 00:00:00 GMT";
/// Size of `/big.bin`.
pub const BIG_LEN: usize = 200 * 1024;
/// Size of `/small.txt` (benchmarks).
pub const SMALL_LEN: usize = 600;

/// Writes the document root under `www` and returns a description of each file for the README.
pub fn write_site(www: &Path) -> Result<Vec<(String, String)>> {
    let mut files: Vec<(&str, Vec<u8>, String)> = Vec::new();
    files.push(("hello.txt", b"Hello from tapedeck testdata.\n".to_vec(), "text, 30 bytes".into()));
    let json = br#"{"service":"tapedeck","version":1,"items":[{"id":1,"name":"alpha"},{"id":2,"name":"beta"},{"id":3,"name":"gamma"}],"ok":true}
"#;
    files.push(("data.json", json.to_vec(), format!("JSON, {} bytes", json.len())));
    files.push(("big.bin", pseudo_random(BIG_LEN), format!("{BIG_LEN} bytes of xorshift64 output, seed 0x7a9e_d3c1")));
    let lorem = lorem(8 * 1024);
    files.push(("gz/lorem.txt", lorem, "numbered text lines, 8192 bytes (served gzip-encoded)".into()));
    files.push(("gz/data.json", json.to_vec(), "copy of data.json (served gzip-encoded)".into()));
    let page = b"<html><body>\n<!--# include virtual=\"/hello.txt\" -->\n<p>between includes</p>\n<!--# include virtual=\"/data.json\" -->\n</body></html>\n";
    files.push((
        "ssi/page.shtml",
        page.to_vec(),
        "SSI page including /hello.txt and /data.json (chunked response)".into(),
    ));
    let small: Vec<u8> = lorem_line_bytes(SMALL_LEN);
    files.push(("small.txt", small, format!("text, {SMALL_LEN} bytes (benchmarks)")));
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(MTIME_UNIX);
    let mut described = Vec::new();
    for (name, bytes, what) in files {
        let path = www.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        fs::File::options().write(true).open(&path)?.set_modified(mtime)?;
        described.push((format!("/{name}"), what));
    }
    fs::create_dir_all(www.join("upload"))?;
    Ok(described)
}

/// Deterministic incompressible bytes.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x7a9e_d3c1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Numbered lines of text, exactly `len` bytes.
fn lorem(len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < len {
        i += 1;
        out.extend_from_slice(
            format!("{i:04} Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\n").as_bytes(),
        );
    }
    out.truncate(len);
    out
}

fn lorem_line_bytes(len: usize) -> Vec<u8> {
    let mut v = lorem(len);
    if let Some(last) = v.last_mut() {
        *last = b'\n';
    }
    v
}

/// An nginx configuration for one foreground process whose files all stay under `work`: the global settings, the
/// MIME types, the temporary paths, then `http` (further directives and the servers) inside the `http` block.
pub fn nginx_foreground_conf(work: &Path, error_level: &str, http: &str) -> String {
    let w = work.display();
    format!(
        r#"# Throwaway config written by `cargo xtask`; runs in the foreground as one process.
daemon off;
master_process off;
worker_processes 1;
error_log {w}/nginx-error.log {error_level};
pid {w}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    types {{ text/plain txt; application/json json; text/html html shtml; application/octet-stream bin; }}
    default_type application/octet-stream;
    client_body_temp_path {w}/nginx-tmp/client_body;
    proxy_temp_path {w}/nginx-tmp/proxy;
    fastcgi_temp_path {w}/nginx-tmp/fastcgi;
    uwsgi_temp_path {w}/nginx-tmp/uwsgi;
    scgi_temp_path {w}/nginx-tmp/scgi;
{http}}}
"#
    )
}

/// The nginx configuration: one server on `127.0.0.1:NGINX_PORT` and `[::1]:NGINX_V6_PORT`.
pub fn nginx_conf(work: &Path, www: &Path, access_log: bool) -> String {
    let w = work.display();
    let access = if access_log { format!("access_log {w}/nginx-access.log;") } else { "access_log off;".into() };
    let www = www.display();
    nginx_foreground_conf(
        work,
        "notice",
        &format!(
            r#"    {access}
    server_tokens off;
    keepalive_requests 100000;
    keepalive_timeout 30s;
    if_modified_since exact;
    server {{
        listen 127.0.0.1:{NGINX_PORT};
        listen [::1]:{NGINX_V6_PORT};
        root {www};
        location / {{ }}
        # gzip content-encoding (the response is also chunked: gzip drops Content-Length)
        location /gz/ {{ gzip on; gzip_types text/plain application/json; gzip_min_length 0; gzip_vary on; }}
        # server-side includes: a dynamic body, sent with Transfer-Encoding: chunked
        location /ssi/ {{ ssi on; }}
        location = /empty {{ return 204; }}
        location = /old {{ return 301 /hello.txt; }}
        location = /api/echo {{ default_type application/json; return 200 '{{"ok":true}}\n'; }}
        # WebDAV PUT: nginx reads the whole request body and answers 201/204
        location /upload/ {{ dav_methods PUT; create_full_put_path on; client_max_body_size 1m; }}
    }}
    # h2c with prior knowledge (`listen ... http2` without TLS)
    server {{
        listen 127.0.0.1:{NGINX_H2C_PORT} http2;
        root {www};
        location / {{ }}
        location /gz/ {{ gzip on; gzip_types text/plain application/json; gzip_min_length 0; }}
        location = /api/echo {{ default_type application/json; return 200 '{{"ok":true}}\n'; }}
    }}
"#
        ),
    )
}

/// Starts nginx with the config at `conf` and waits until both listeners answer.
pub fn start_nginx(ns: &Netns, work: &Path, conf: &Path) -> Result<(Daemon, String)> {
    fs::create_dir_all(work.join("nginx-tmp"))?;
    let mut cmd = ns.command("nginx");
    cmd.arg("-c").arg(conf).arg("-p").arg(work);
    let shown = ns.show(&cmd);
    let mut daemon = Daemon::spawn("nginx", &mut cmd, "QUIT", work)?;
    for url in [format!("http://127.0.0.1:{NGINX_PORT}/hello.txt"), format!("http://[::1]:{NGINX_V6_PORT}/hello.txt")] {
        wait_http(ns, &mut daemon, &url, false)?;
    }
    Ok((daemon, shown))
}

/// Starts nghttpd (cleartext) serving `www` and waits until it answers.
pub fn start_nghttpd(ns: &Netns, work: &Path, www: &Path) -> Result<(Daemon, String)> {
    let mut cmd = ns.command("nghttpd");
    cmd.args(["--no-tls", "-a", "127.0.0.1", "-d"]).arg(www).arg(NGHTTPD_PORT.to_string());
    let shown = ns.show(&cmd);
    let mut daemon = Daemon::spawn("nghttpd", &mut cmd, "TERM", work)?;
    wait_http(ns, &mut daemon, &format!("http://127.0.0.1:{NGHTTPD_PORT}/hello.txt"), true)?;
    Ok((daemon, shown))
}

/// Starts microsocks (SOCKS5) on `SOCKS_PORT` and waits until nginx answers through it.
pub fn start_microsocks(ns: &Netns, work: &Path) -> Result<(Daemon, String)> {
    let mut cmd = ns.command("microsocks");
    cmd.args(["-i", "127.0.0.1", "-p", &SOCKS_PORT.to_string()]);
    let shown = ns.show(&cmd);
    let mut daemon = Daemon::spawn("microsocks", &mut cmd, "TERM", work)?;
    proc::wait_until("microsocks to relay", Duration::from_secs(15), || {
        daemon.ensure_running()?;
        let mut cmd = ns.command("curl");
        cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", "--socks5"])
            .arg(format!("127.0.0.1:{SOCKS_PORT}"))
            .arg(format!("http://127.0.0.1:{NGINX_PORT}/hello.txt"));
        Ok(proc::run(&mut cmd, Duration::from_secs(5))?.stdout == b"200")
    })?;
    Ok((daemon, shown))
}

/// Polls `url` with curl inside the namespace (before any capture starts) until it answers 200.
fn wait_http(ns: &Netns, server: &mut Daemon, url: &str, h2: bool) -> Result<()> {
    proc::wait_until(&format!("{url} to answer"), Duration::from_secs(15), || {
        server.ensure_running()?;
        let mut cmd = ns.command("curl");
        cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", "-g"]);
        if h2 {
            cmd.arg("--http2-prior-knowledge");
        }
        cmd.arg(url);
        let out = proc::run(&mut cmd, Duration::from_secs(5))?;
        Ok(out.stdout == b"200")
    })
}

/// The document root inside a work directory.
pub fn www_dir(work: &Path) -> PathBuf {
    work.join("www")
}

/// Starts hypercorn serving the inline ASGI app (`pyapps::H2C_APP`, written to `work`) on `HYPERCORN_PORT`.
pub fn start_hypercorn(ns: &Netns, work: &Path) -> Result<(Daemon, String)> {
    use crate::pyapps::{H2C_APP, H2C_APP_FILE, HYPERCORN_PORT};
    fs::write(work.join(H2C_APP_FILE), H2C_APP)?;
    let mut cmd = ns.command("python3");
    cmd.args(["-m", "hypercorn", "--bind", &format!("127.0.0.1:{HYPERCORN_PORT}"), "h2c_app:app"]).current_dir(work);
    let shown = format!("(cd $WORK && {})", ns.show(&cmd));
    let mut daemon = Daemon::spawn("hypercorn", &mut cmd, "INT", work)?;
    wait_http(ns, &mut daemon, &format!("http://127.0.0.1:{HYPERCORN_PORT}/ready"), false)?;
    Ok((daemon, shown))
}

/// Starts the inline gRPC server (`pyapps::GRPC_SCRIPT`, written to `work`) on `GRPC_PORT`; ready when it
/// prints `serving`.
pub fn start_grpc(ns: &Netns, work: &Path) -> Result<(Daemon, String)> {
    use crate::pyapps::{GRPC_FILE, GRPC_PORT, GRPC_SCRIPT};
    let script = work.join(GRPC_FILE);
    fs::write(&script, GRPC_SCRIPT)?;
    let mut cmd = ns.command("python3");
    cmd.arg(&script).args(["serve", &GRPC_PORT.to_string()]);
    let shown = ns.show(&cmd);
    let mut daemon = Daemon::spawn("grpc-server", &mut cmd, "TERM", work)?;
    proc::wait_until("the gRPC server to print `serving`", Duration::from_secs(30), || {
        daemon.ensure_running()?;
        Ok(daemon.stdout_text().contains("serving"))
    })?;
    Ok((daemon, shown))
}
