//! `cargo xtask gen-hostile`: writes every hostile capture of `tapedeck-testgen` into a directory, at the sizes
//! the memory-bounds issue names (or the smaller sizes the test uses), and prints what each file holds.

use std::path::Path;

use anyhow::Context;
use tapedeck_testgen::{Scenario, Sizes};

/// Writes `<out>/<scenario>.pcap` for every scenario.
pub fn gen_hostile(out: &Path, small: bool, seed: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let sizes = if small { Sizes::test() } else { Sizes::full() };
    for s in Scenario::ALL {
        let path = out.join(format!("{}.pcap", s.name()));
        let w = s.write_file(&path, &sizes, seed).with_context(|| format!("writing {}", path.display()))?;
        println!("{}: {} frames, {:.1} MB", path.display(), w.frames, w.bytes as f64 / 1e6);
    }
    Ok(())
}
