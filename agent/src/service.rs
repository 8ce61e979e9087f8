//! Services for `--split-by-service`: the directory name of a server endpoint ([`endpoint_name`]:
//! `10.0.0.5_8080`, `fd00--1_443`) and the service map file (`--service-map`, [`ServiceMap`]) that gives
//! endpoints a label to use instead.
//!
//! The map is a TOML file of `[[service]]` tables, tried in file order (the first match wins):
//!
//! ```toml
//! [[service]]
//! label = "payments"
//! addr = "10.0.0.5:8080"      # one address and port ("[fd00::1]:443" for IPv6)
//!
//! [[service]]
//! label = "users"
//! cidr = "10.1.0.0/16"        # any address of a range ...
//! port = 443                  # ... on this port (any port without it)
//! ```
//!
//! Each entry has a `label` and exactly one of `addr` or `cidr` (`port` only with `cidr`). Unknown keys are
//! errors. Labels are directory names: 1 to 128 ASCII letters, digits, `.`, `_` or `-`, starting with a letter or
//! a digit (so no path separator, no `.` or `..`, no hidden or option-like names). Errors name the file and the
//! entry (counted from 1).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

/// The longest label (bytes).
pub const MAX_LABEL: usize = 128;

/// The directory name of a server endpoint without a label: `<address>_<port>`, IPv6 addresses in their short
/// form with `:` replaced by `-` (`fd00::1` port 443 is `fd00--1_443`), and a `0` put in front when that would
/// start with `-` (`::1` is `0--1`), so that no name looks like a command-line option.
pub fn endpoint_name(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V4(ip) => format!("{ip}_{}", addr.port()),
        IpAddr::V6(ip) => {
            let text = ip.to_string().replace(':', "-");
            let zero = if text.starts_with('-') { "0" } else { "" };
            format!("{zero}{text}_{}", addr.port())
        }
    }
}

/// Which server endpoints an entry of the map names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// One address and port.
    Addr(SocketAddr),
    /// Every address of a range, on one port or on any.
    Range {
        /// The range.
        net: IpNet,
        /// The port, or None for any.
        port: Option<u16>,
    },
}

impl Endpoint {
    /// Whether `addr` is one of these endpoints.
    pub fn matches(&self, addr: SocketAddr) -> bool {
        match self {
            Endpoint::Addr(a) => a.ip() == addr.ip() && a.port() == addr.port(),
            Endpoint::Range { net, port } => net.contains(&addr.ip()) && port.is_none_or(|p| p == addr.port()),
        }
    }
}

/// One entry of a [`ServiceMap`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceEntry {
    /// The endpoints.
    pub endpoint: Endpoint,
    /// Their label (a valid directory name, see [`check_label`]).
    pub label: String,
}

/// Labels for server endpoints; empty when no `--service-map` is given (every service is named by
/// [`endpoint_name`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceMap {
    entries: Vec<ServiceEntry>,
}

/// A service map that could not be read or is invalid; the message names the file and, for an entry, its number
/// and label.
#[derive(Debug, thiserror::Error)]
#[error("service map {path}: {message}")]
pub struct ServiceMapError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMap {
    #[serde(default)]
    service: Vec<FileEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    label: String,
    addr: Option<String>,
    cidr: Option<String>,
    port: Option<u16>,
}

/// Checks that a label can be a directory name of its own (see the module docs).
pub fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("the label is empty".into());
    }
    if label.contains(['/', '\\']) {
        return Err(format!("label {label:?} contains a path separator"));
    }
    if label == "." || label == ".." {
        return Err(format!("label {label:?} is not a directory name"));
    }
    if label.len() > MAX_LABEL {
        return Err(format!("label {label:?} is longer than {MAX_LABEL} bytes"));
    }
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !label.chars().all(ok_char) || !label.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "label {label:?} must hold only ASCII letters, digits, '.', '_' and '-', starting with a letter or digit"
        ));
    }
    Ok(())
}

impl ServiceMap {
    /// A map of these entries (labels are not checked: use [`ServiceMap::parse`] for input).
    pub fn new(entries: Vec<ServiceEntry>) -> Self {
        ServiceMap { entries }
    }

    /// Reads and checks a map file.
    pub fn load(path: &Path) -> Result<Self, ServiceMapError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServiceMapError { path: path.to_path_buf(), message: format!("cannot read it: {e}") })?;
        Self::parse(&text, path)
    }

    /// Parses a map file's text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ServiceMapError> {
        let err = |message: String| ServiceMapError { path: path.to_path_buf(), message };
        let file: FileMap = toml::from_str(text).map_err(|e| err(e.to_string().trim_end().to_string()))?;
        let mut entries = Vec::with_capacity(file.service.len());
        for (i, e) in file.service.into_iter().enumerate() {
            let at = |m: String| err(format!("[[service]] entry {} (label {:?}): {m}", i + 1, e.label));
            check_label(&e.label).map_err(at)?;
            let endpoint = match (&e.addr, &e.cidr, e.port) {
                (Some(a), None, None) => Endpoint::Addr(a.parse().map_err(|_| {
                    at(format!("addr {a:?} is not an address and port (10.0.0.5:8080, [fd00::1]:443)"))
                })?),
                (Some(_), None, Some(_)) => return Err(at("`port` goes with `cidr`; `addr` has its own port".into())),
                (None, Some(c), port) => {
                    let net: IpNet = match c.parse() {
                        Ok(n) => n,
                        // A bare address is a range of one.
                        Err(_) => c
                            .parse::<IpAddr>()
                            .map(IpNet::from)
                            .map_err(|_| at(format!("cidr {c:?} is not an address range (10.1.0.0/16, fd00::/8)")))?,
                    };
                    Endpoint::Range { net: net.trunc(), port }
                }
                (Some(_), Some(_), _) => return Err(at("give either `addr` or `cidr`, not both".into())),
                (None, None, _) => return Err(at("missing `addr` or `cidr`".into())),
            };
            entries.push(ServiceEntry { endpoint, label: e.label });
        }
        Ok(ServiceMap { entries })
    }

    /// The entries, in the order they are tried.
    pub fn entries(&self) -> &[ServiceEntry] {
        &self.entries
    }

    /// The label of the first entry naming `addr`, if any.
    pub fn label(&self, addr: SocketAddr) -> Option<&str> {
        self.entries.iter().find(|e| e.endpoint.matches(addr)).map(|e| e.label.as_str())
    }

    /// The directory name of the service at `addr`: its label, or [`endpoint_name`].
    pub fn name(&self, addr: SocketAddr) -> String {
        self.label(addr).map_or_else(|| endpoint_name(addr), str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn endpoint_names_are_file_names() {
        assert_eq!(endpoint_name(sa("10.0.0.5:8080")), "10.0.0.5_8080");
        assert_eq!(endpoint_name(sa("[fd00::1]:443")), "fd00--1_443");
        assert_eq!(endpoint_name(sa("[::1]:18086")), "0--1_18086");
        assert_eq!(endpoint_name(sa("[2001:db8:0:1::a]:80")), "2001-db8-0-1--a_80");
        for a in ["10.0.0.5:8080", "[fd00::1]:443", "[::1]:1", "[::ffff:10.0.0.1]:80"] {
            let n = endpoint_name(sa(a));
            assert!(!n.contains(['/', ':', '\0']) && !n.starts_with(['-', '.']), "{a}: {n}");
        }
    }

    #[test]
    fn labels_come_from_the_first_matching_entry() {
        let text = r#"
            [[service]]
            label = "payments"
            addr = "10.0.0.5:8080"

            [[service]]
            label = "users-443"
            cidr = "10.1.0.0/16"
            port = 443

            [[service]]
            label = "users"
            cidr = "10.1.2.3"

            [[service]]
            label = "v6.svc"
            addr = "[fd00::1]:443"

            [[service]]
            label = "anything-v6"
            cidr = "fd00::/8"
        "#;
        let m = ServiceMap::parse(text, Path::new("m.toml")).unwrap();
        assert_eq!(m.entries().len(), 5);
        assert_eq!(m.name(sa("10.0.0.5:8080")), "payments");
        assert_eq!(m.name(sa("10.0.0.5:8081")), "10.0.0.5_8081", "another port: no label");
        assert_eq!(m.name(sa("10.1.200.7:443")), "users-443");
        assert_eq!(m.name(sa("10.1.2.3:443")), "users-443", "the first match wins");
        assert_eq!(m.name(sa("10.1.2.3:80")), "users");
        assert_eq!(m.name(sa("10.1.2.4:80")), "10.1.2.4_80");
        assert_eq!(m.name(sa("[fd00::1]:443")), "v6.svc");
        assert_eq!(m.name(sa("[fd00::2]:9")), "anything-v6");
        assert_eq!(m.name(sa("[fe80::2]:9")), "fe80--2_9");
        assert!(ServiceMap::parse("", Path::new("e.toml")).unwrap().entries().is_empty());
    }

    #[test]
    fn bad_files_name_the_file_and_the_entry() {
        let bad = |text: &str| ServiceMap::parse(text, Path::new("/etc/svc.toml")).unwrap_err().to_string();
        let entry =
            |body: &str| bad(&format!("[[service]]\nlabel = \"ok\"\naddr = \"1.2.3.4:5\"\n[[service]]\n{body}"));
        for (body, says) in [
            ("label = \"a/b\"\naddr = \"1.2.3.4:5\"", "path separator"),
            ("label = \"..\"\naddr = \"1.2.3.4:5\"", "not a directory name"),
            ("label = \"\"\naddr = \"1.2.3.4:5\"", "empty"),
            ("label = \".hidden\"\naddr = \"1.2.3.4:5\"", "starting with a letter"),
            ("label = \"-rf\"\naddr = \"1.2.3.4:5\"", "starting with a letter"),
            ("label = \"sp ace\"\naddr = \"1.2.3.4:5\"", "ASCII letters"),
            ("label = \"x\"\naddr = \"1.2.3.4\"", "not an address and port"),
            ("label = \"x\"\ncidr = \"1.2.3.0/33\"", "not an address range"),
            ("label = \"x\"\naddr = \"1.2.3.4:5\"\ncidr = \"1.0.0.0/8\"", "not both"),
            ("label = \"x\"\naddr = \"1.2.3.4:5\"\nport = 5", "`port` goes with `cidr`"),
            ("label = \"x\"", "missing `addr` or `cidr`"),
        ] {
            let e = entry(body);
            assert!(e.contains("/etc/svc.toml") && e.contains("entry 2") && e.contains(says), "{body}: {e}");
        }
        let long = "a".repeat(MAX_LABEL + 1);
        assert!(entry(&format!("label = \"{long}\"\naddr = \"1.2.3.4:5\"")).contains("longer than"));
        let e = bad("[[service]]\nlabel = \"x\"\naddr = \"1.2.3.4:5\"\nlabl = \"y\"\n");
        assert!(e.contains("/etc/svc.toml") && e.contains("labl"), "unknown key: {e}");
        let e = bad("services = []\n");
        assert!(e.contains("services"), "unknown top-level key: {e}");
        let e = bad("[[service]]\nlabel = 3\naddr = \"1.2.3.4:5\"\n");
        assert!(e.contains("label"), "wrong type: {e}");
        let e = ServiceMap::load(Path::new("/nonexistent/svc.toml")).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/svc.toml") && e.contains("cannot read"), "{e}");
    }
}
