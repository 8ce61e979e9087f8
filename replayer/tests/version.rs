//! `replayer --version` names the git revision it was built from (replayer/build.rs).

#[test]
fn version_names_the_git_revision() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_replayer")).arg("--version").output().unwrap();
    assert!(o.status.success());
    // The revision as git gives it (or the override a Docker build passes), independently of the build script.
    let git = std::process::Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success());
    let rev = match (std::env::var("TAPEDECK_GIT_REV").ok().filter(|r| !r.is_empty()), git) {
        (Some(r), _) => r,
        (None, Some(o)) => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        (None, None) => "unknown".into(),
    };
    let expected = format!("replayer {} (git {rev})", env!("CARGO_PKG_VERSION"));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), expected);
}
