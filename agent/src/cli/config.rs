//! The configuration file (`--config FILE`, TOML): one key per flag, named like the flag without its dashes
//! (`max-body = "64KiB"`, `iface = ["eth0"]`, `quiet = true`). Unknown keys and values of the wrong type are
//! errors naming the file and the key.
//!
//! Precedence is flag > environment > file > default: the file's keys become flags added to the command line,
//! except those whose flag was given on the command line or in the environment (or that conflict with one that
//! was, e.g. the file's `iface` when `--pcap` was given), and the whole command line is parsed again, so that
//! file values go through exactly the checks flags do. [`FileConfig::from_args`] is the reverse, for
//! `--print-config`; its output parses back to the same configuration.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use serde::{Deserialize, Serialize};

use super::Args;

/// A size in the file: bytes, or a string with a unit (`"64KiB"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Size {
    /// A number of bytes.
    Bytes(u64),
    /// A size with a unit, as the flag takes it.
    Text(String),
}

/// Every key of a configuration file. Each is the long name of a flag of [`Args`] (a unit test checks both ways).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[allow(missing_docs)]
pub struct FileConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcap: Option<Vec<PathBuf>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iface: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snaplen: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer_size: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retain_age: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retain_bytes: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_policy: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_default_masking: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_key_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats_json: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_max_bytes: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_max_age: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_by_service: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_map: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_open_services: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zstd_level: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_flows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_flow_buffer: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_buffered: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quiet: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ebpf_port: Option<Vec<u16>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ebpf_cidr: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ebpf_ring_size: Option<Size>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ebpf_wakeup_bytes: Option<Size>,
}

/// Flags that are not configuration keys.
#[cfg(test)]
const NOT_KEYS: [&str; 5] = ["config", "print-config", "print-masking", "help", "version"];

/// Why the configuration could not be put together.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("config file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key (and its line).
        message: String,
    },
    /// The flags (with the file's values added) do not parse; clap's error, which names the flag (= the key).
    #[error("{prefix}{error}")]
    Clap {
        /// Names the file when its values were part of the command line.
        prefix: String,
        /// clap's error.
        error: clap::Error,
    },
}

impl ConfigError {
    /// The exit status: 0 for --help and --version, 2 otherwise (bad flags or configuration).
    pub fn exit_code(&self) -> u8 {
        match self {
            ConfigError::Clap { error, .. } if !error.use_stderr() => 0,
            _ => 2,
        }
    }
    /// Prints it (clap's own formatting for clap errors).
    pub fn print(&self) {
        match self {
            ConfigError::Clap { prefix, error } => {
                if !prefix.is_empty() {
                    eprint!("agent: {prefix}");
                }
                let _ = error.print();
            }
            other => eprintln!("agent: error: {other}"),
        }
    }
}

/// Parses a configuration file's text. `path` only names it in errors.
pub fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Invalid { path: path.to_path_buf(), message: e.to_string() })
}

/// Parses the command line `argv` (program name first) with the environment and the --config file it names.
pub fn load<I, T>(argv: I) -> Result<Args, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let cmd = Args::command();
    // A lenient first pass: which flags the command line and the environment set, and --config.
    let first = cmd.clone().ignore_errors(true).try_get_matches_from(&argv);
    let config = first.as_ref().ok().and_then(|m| m.get_one::<PathBuf>("config").cloned());
    let Some(path) = config else {
        return parse(&cmd, &argv, String::new());
    };
    let Ok(first) = first else {
        return parse(&cmd, &argv, String::new());
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
    let file = parse_file(&text, &path)?;
    let table = toml::Table::try_from(&file)
        .map_err(|e| ConfigError::Invalid { path: path.clone(), message: e.to_string() })?;
    let given: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| {
            matches!(first.value_source(a.get_id().as_str()), Some(ValueSource::CommandLine | ValueSource::EnvVariable))
        })
        .collect();
    let mut full = argv.clone();
    for (key, value) in &table {
        let Some(arg) = cmd.get_arguments().find(|a| a.get_long() == Some(key.as_str())) else {
            return Err(ConfigError::Invalid { path, message: format!("unknown key `{key}`") });
        };
        if given.iter().any(|g| g.get_id() == arg.get_id() || conflict(&cmd, g, arg)) {
            continue;
        }
        push_value(&mut full, key, value);
    }
    parse(&cmd, &full, format!("with config file {}: ", path.display()))
}

/// Whether two flags cannot be used together.
fn conflict(cmd: &clap::Command, a: &clap::Arg, b: &clap::Arg) -> bool {
    cmd.get_arg_conflicts_with(a).iter().any(|c| c.get_id() == b.get_id())
        || cmd.get_arg_conflicts_with(b).iter().any(|c| c.get_id() == a.get_id())
}

/// Appends a file value as flags: `--key value`, once per element of an array; `--key` alone for `true`.
fn push_value(argv: &mut Vec<OsString>, key: &str, value: &toml::Value) {
    let flag = OsString::from(format!("--{key}"));
    match value {
        toml::Value::Boolean(true) => argv.push(flag),
        toml::Value::Boolean(false) => {}
        toml::Value::Array(items) => {
            for item in items {
                push_value(argv, key, item);
            }
        }
        toml::Value::String(s) => {
            argv.push(flag);
            argv.push(s.into());
        }
        other => {
            argv.push(flag);
            argv.push(other.to_string().into());
        }
    }
}

fn parse(cmd: &clap::Command, argv: &[OsString], prefix: String) -> Result<Args, ConfigError> {
    let m =
        cmd.clone().try_get_matches_from(argv).map_err(|error| ConfigError::Clap { prefix: prefix.clone(), error })?;
    Args::from_arg_matches(&m).map_err(|error| ConfigError::Clap { prefix, error })
}

impl FileConfig {
    /// The configuration `args` describe, every key present (optional flags not given are left out).
    pub fn from_args(a: &Args) -> FileConfig {
        let dur = |d: std::time::Duration| humantime::format_duration(d).to_string();
        FileConfig {
            pcap: Some(a.pcap.clone()),
            iface: Some(a.iface.clone()),
            filter: a.filter.clone(),
            snaplen: Some(Size::Bytes(a.snaplen)),
            buffer_size: Some(Size::Bytes(a.buffer_size)),
            metrics_addr: a.metrics_addr.map(|m| m.to_string()),
            retain_age: a.retain_age.map(dur),
            retain_bytes: a.retain_bytes.map(Size::Bytes),
            shutdown_timeout: Some(dur(a.shutdown_timeout)),
            out: a.out.clone(),
            mask_policy: a.mask_policy.clone(),
            no_default_masking: Some(a.no_default_masking),
            mask_key_file: a.mask_key_file.clone(),
            max_body: Some(Size::Bytes(a.max_body)),
            stats_json: a.stats_json.clone(),
            segment_max_bytes: Some(Size::Bytes(a.segment_max_bytes)),
            segment_max_age: Some(dur(a.segment_max_age)),
            split_by_service: Some(a.split_by_service),
            service_map: a.service_map.clone(),
            max_open_services: Some(u64::from(a.max_open_services)),
            zstd_level: Some(i64::from(a.zstd_level)),
            max_flows: Some(a.max_flows as u64),
            max_flow_buffer: Some(Size::Bytes(a.max_flow_buffer)),
            max_buffered: Some(Size::Bytes(a.max_buffered)),
            idle_timeout: Some(dur(a.idle_timeout)),
            label: Some(a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            quiet: Some(a.quiet),
            log_format: Some(a.log_format.clone()),
            log_file: a.log_file.clone(),
            workers: Some(a.workers() as u64),
            flush_interval: Some(dur(a.flush_interval)),
            backend: clap::ValueEnum::to_possible_value(&a.backend).map(|v| v.get_name().to_string()),
            ebpf_port: Some(a.ebpf_port.clone()),
            ebpf_cidr: Some(a.ebpf_cidr.clone()),
            ebpf_ring_size: a.ebpf_ring_size.map(Size::Bytes),
            ebpf_wakeup_bytes: a.ebpf_wakeup_bytes.map(Size::Bytes),
        }
    }

    /// As a TOML file, with a comment saying how it was made.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"));
        format!("# tapedeck agent configuration (agent --print-config); use with --config FILE\n{body}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn every_key_is_a_flag_and_every_flag_a_key() {
        let cmd = Args::command();
        let longs: Vec<String> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_string))
            .filter(|l| !NOT_KEYS.contains(&l.as_str()))
            .collect();
        let a =
            Args::try_parse_from(["agent", "--iface", "eth0", "--out", "o", "--filter", "tcp", "--retain-age", "1h"])
                .map_err(|e| e.to_string());
        let mut a = a.unwrap_or_else(|e| panic!("{e}"));
        a.metrics_addr = Some("127.0.0.1:1".parse().unwrap_or_else(|e| panic!("{e}")));
        a.retain_bytes = Some(1);
        a.mask_policy = Some("p".into());
        a.mask_key_file = Some("k".into());
        a.ebpf_ring_size = Some(1 << 20);
        a.ebpf_wakeup_bytes = Some(1 << 16);
        a.stats_json = Some("s".into());
        a.log_file = Some("l".into());
        a.service_map = Some("m".into());
        let table = toml::Table::try_from(FileConfig::from_args(&a)).unwrap_or_else(|e| panic!("{e}"));
        let mut keys: Vec<String> = table.keys().cloned().collect();
        let mut flags = longs.clone();
        keys.sort();
        flags.sort();
        assert_eq!(keys, flags, "config keys and flags differ");
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_file_and_key() {
        let e = parse_file("out = \"o\"\nmax-bodyy = 3\n", Path::new("/etc/agent.toml")).unwrap_err().to_string();
        assert!(e.contains("/etc/agent.toml") && e.contains("max-bodyy"), "{e}");
        let e = parse_file("quiet = \"yes\"\n", Path::new("a.toml")).unwrap_err().to_string();
        assert!(e.contains("quiet"), "{e}");
        let f = parse_file("max-body = \"64KiB\"\nmax-flows = 10\niface = [\"a\", \"b\"]\n", Path::new("a")).unwrap();
        assert_eq!(f.max_body, Some(Size::Text("64KiB".into())));
        assert_eq!(f.max_flows, Some(10));
        assert_eq!(f.iface, Some(vec!["a".to_string(), "b".to_string()]));
    }

    #[test]
    fn file_values_become_flags_unless_given() {
        let mut v = Vec::new();
        push_value(&mut v, "iface", &toml::Value::Array(vec!["a".into(), "b".into()]));
        push_value(&mut v, "quiet", &toml::Value::Boolean(true));
        push_value(&mut v, "no-default-masking", &toml::Value::Boolean(false));
        push_value(&mut v, "max-flows", &toml::Value::Integer(7));
        let v: Vec<&str> = v.iter().map(|s| s.to_str().unwrap_or("?")).collect();
        assert_eq!(v, ["--iface", "a", "--iface", "b", "--quiet", "--max-flows", "7"]);
    }
}
