//! `cargo xtask man [--out DIR]`: man pages and shell completions for `agent` and `replayer`, generated from their
//! clap definitions (`clap_mangen`, `clap_complete`), so that they never disagree with `--help`. Writes
//! `DIR/man/man1/*.1` (one page per command and subcommand: `replayer-run.1`) and
//! `DIR/completions/{bash/NAME, zsh/_NAME, fish/NAME.fish}`, the file names each shell looks for; deploy/Dockerfile
//! installs them.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::CommandFactory;
use clap_complete::Shell;

/// The default output directory: `target/dist` in the workspace.
pub fn default_out() -> PathBuf {
    crate::demo::workspace_root().join("target/dist")
}

/// Writes the pages and completions of both programs under `out`.
pub fn man(out: &Path) -> Result<()> {
    let programs = [tapedeck_agent::cli::Args::command(), tapedeck_replayer::cli::Cli::command()];
    let pages = out.join("man/man1");
    mkdir(&pages)?;
    for cmd in programs {
        // The package version only: the build details `--version` adds (git revision, backends) are those of
        // xtask's own build of the crates (without libpcap), not of the installed binaries.
        let cmd = cmd.version(env!("CARGO_PKG_VERSION"));
        let name = cmd.get_name().to_string();
        for (shell, dir, file) in [
            (Shell::Bash, "bash", name.clone()),
            (Shell::Zsh, "zsh", format!("_{name}")),
            (Shell::Fish, "fish", format!("{name}.fish")),
        ] {
            let dir = out.join("completions").join(dir);
            mkdir(&dir)?;
            let path = dir.join(file);
            let mut f = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
            clap_complete::generate(shell, &mut cmd.clone(), name.clone(), &mut f);
        }
        clap_mangen::generate_to(cmd, &pages).with_context(|| format!("writing man pages into {}", pages.display()))?;
    }
    println!("man pages in {}, completions in {}", pages.display(), out.join("completions").display());
    Ok(())
}

fn mkdir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn pages_and_completions_name_the_real_flags() {
        let dir = tempfile::tempdir().unwrap();
        man(dir.path()).unwrap();
        let pages = dir.path().join("man/man1");
        // roff writes a dash as `\-`.
        let agent = read(&pages.join("agent.1"));
        for flag in ["\\-\\-pcap", "\\-\\-iface", "\\-\\-out", "\\-\\-backend", "\\-\\-mask\\-policy"] {
            assert!(agent.contains(flag), "agent.1 lacks {flag}");
        }
        let th = agent.lines().find(|l| l.starts_with(".TH ")).unwrap_or_default();
        assert_eq!(th.split_whitespace().take(3).collect::<Vec<_>>(), [".TH", "agent", "1"], "{th}");
        assert!(!th.contains("libpcap"), "xtask's build of the agent is no guide to the binary's: {th}");
        let run = read(&pages.join("replayer-run.1"));
        assert!(run.contains("\\-\\-target"), "replayer-run.1 lacks --target");
        assert!(pages.join("replayer-inspect.1").is_file() && pages.join("replayer.1").is_file());
        let completions = dir.path().join("completions");
        let bash = read(&completions.join("bash/agent"));
        assert!(bash.contains("--pcap") && bash.contains("--iface"), "bash completion lacks --pcap");
        assert!(read(&completions.join("zsh/_agent")).contains("--pcap"));
        assert!(read(&completions.join("fish/agent.fish")).contains("-l pcap"));
        assert!(read(&completions.join("bash/replayer")).contains("--target"));
    }
}
