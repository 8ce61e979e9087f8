//! Embeds the git revision for `replayer --version` (see build-support/git_rev.rs).

#[path = "../build-support/git_rev.rs"]
mod git_rev;

fn main() {
    let manifest = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    git_rev::emit_git_rev(manifest.parent().unwrap_or(std::path::Path::new("..")));
}
