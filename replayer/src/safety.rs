//! Where requests may go. The replayer connects only to the host of `--target`: recorded `Host` / `:authority`
//! values are never used as destinations (they are only sent as the virtual host, and absolute-form targets are
//! reduced to their path). A `--rewrite-host OLD=NEW` whose NEW host is neither the target's host nor named by
//! `--allow-host` is refused at start, before anything is sent: a rewrite that reads as "send to that host" must
//! not silently go elsewhere, and a typo must not put a production name in front of a test server unnoticed.

use crate::select::strip_port;
use crate::transform::{HostRewrite, Target};

/// Whether `host` (a host, or host:port) is the target's host or one of `allowed` (case-insensitive; a port in
/// an allowed entry must match too).
pub fn host_allowed(host: &str, target: &Target, allowed: &[String]) -> bool {
    let bare = |s: &str| -> String {
        let h = String::from_utf8_lossy(strip_port(s.as_bytes())).to_ascii_lowercase();
        h.trim_start_matches('[').trim_end_matches(']').to_string()
    };
    let h = bare(host);
    if h == target.host.to_ascii_lowercase() {
        return true;
    }
    allowed.iter().any(|a| {
        let a_has_port = strip_port(a.as_bytes()).len() != a.len();
        if a_has_port { a.eq_ignore_ascii_case(host) } else { bare(a) == h }
    })
}

/// Checks every host rewrite against the target and `--allow-host`; the error names each refused rewrite.
pub fn check_rewrites(target: &Target, rewrites: &[HostRewrite], allowed: &[String]) -> Result<(), String> {
    let refused: Vec<String> = rewrites
        .iter()
        .filter(|rw| !host_allowed(&rw.to, target, allowed))
        .map(|rw| format!("--rewrite-host {}={}", rw.from, rw.to))
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} would name a host other than the target ({}); requests only ever go to --target. Name the host with \
         --allow-host HOST if this is intended",
        refused.join(", "),
        target.host
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        s.parse().unwrap()
    }

    #[test]
    fn only_the_target_and_allowed_hosts_pass() {
        let target = t("http://staging.internal:8080");
        assert!(host_allowed("staging.internal", &target, &[]));
        assert!(host_allowed("STAGING.internal:9999", &target, &[]), "the target's host with any port");
        assert!(!host_allowed("api.prod", &target, &[]));
        assert!(host_allowed("api.staging", &target, &["api.staging".into()]));
        assert!(host_allowed("api.staging:81", &target, &["api.staging".into()]));
        assert!(!host_allowed("api.staging:81", &target, &["api.staging:80".into()]), "ports must match");
        assert!(host_allowed("[::1]:80", &t("http://[::1]:80"), &[]));
    }

    #[test]
    fn rewrites_to_other_hosts_are_refused_at_start() {
        let target = t("http://127.0.0.1:9000");
        let rw = |s: &str| s.parse::<HostRewrite>().unwrap();
        assert!(check_rewrites(&target, &[rw("api.prod=127.0.0.1:9000")], &[]).is_ok());
        let e = check_rewrites(&target, &[rw("api.prod=api.staging:8080"), rw("a=127.0.0.1")], &[]).unwrap_err();
        assert!(e.contains("--rewrite-host api.prod=api.staging:8080") && e.contains("--allow-host"), "{e}");
        assert!(!e.contains("a=127.0.0.1"), "{e}");
        assert!(check_rewrites(&target, &[rw("api.prod=api.staging:8080")], &["api.staging".into()]).is_ok());
    }
}
