//! Parsers for flag values with units: sizes (`64KiB`, `1MiB`, `1G`), durations (`30s`, `10m`) and labels.

use std::time::Duration;

/// Parses a byte size such as `1048576`, `64KiB`, `1MiB`, `1 GB` (SI and binary units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    parse_size::parse_size(s.trim())
        .map_err(|e| format!("'{s}' is not a size ({e}); use a number of bytes or a unit: 64KiB, 1MiB, 2GB"))
}

/// Parses a duration such as `30s`, `10m`, `1h 30m`, `250ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("'{s}' is not a duration ({e}); use forms like 30s, 10m, 1h, 250ms"))
}

/// Parses `NAME=VALUE`.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("'{s}' is not a label; use NAME=VALUE, e.g. node=worker-3")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("lots").unwrap_err().contains("not a size"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn labels() {
        assert_eq!(parse_label("node=a=b"), Ok(("node".into(), "a=b".into())));
        assert!(parse_label("=x").is_err());
        assert!(parse_label("novalue").is_err());
    }
}
