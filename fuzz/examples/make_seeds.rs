//! Writes the seed corpora under `<out>/<target>/`: `make_seeds <out> <capture dir>...`. Every `*.pcap`,
//! `*.pcapng` and `*.cap` file found (recursively) in the capture directories is run through the agent's stages
//! and turned into inputs for each target (see `tapedeck_fuzz::seeds`). Seeds are named by content hash, so
//! running it twice adds nothing.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// Captures larger than this are skipped (slow to seed from, and too big for the targets' `-max_len`).
const MAX_CAPTURE: u64 = 4 << 20;

fn captures(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            captures(&p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("pcap" | "pcapng" | "cap"))
            && p.metadata().is_ok_and(|m| m.len() <= MAX_CAPTURE)
        {
            out.push(p);
        }
    }
}

fn write(out: &Path, target: &str, bytes: &[u8]) -> std::io::Result<bool> {
    let dir = out.join(target);
    std::fs::create_dir_all(&dir)?;
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    let path = dir.join(format!("seed-{:016x}", h.finish()));
    if path.exists() {
        return Ok(false);
    }
    std::fs::write(path, bytes)?;
    Ok(true)
}

fn main() -> std::io::Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let Some((out, dirs)) = args.split_first() else {
        eprintln!("usage: make_seeds <out> <capture dir>...");
        std::process::exit(2);
    };
    let mut files = Vec::new();
    for d in dirs {
        captures(d, &mut files);
    }
    let mut exchanges = Vec::new();
    let mut counts = std::collections::BTreeMap::<&str, u64>::new();
    for f in &files {
        let bytes = std::fs::read(f)?;
        for (target, seed) in tapedeck_fuzz::seeds::from_capture(&bytes, &mut exchanges) {
            if write(out, target, &seed)? {
                *counts.entry(target).or_default() += 1;
            }
        }
    }
    let tmp = std::env::temp_dir().join(format!("tapedeck-seeds-{}", std::process::id()));
    for (target, seed) in tapedeck_fuzz::seeds::segment_seeds(&exchanges, &tmp) {
        if write(out, target, &seed)? {
            *counts.entry(target).or_default() += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    for (target, seed) in tapedeck_fuzz::seeds::replayer_arg_seeds() {
        if write(out, target, &seed)? {
            *counts.entry(target).or_default() += 1;
        }
    }
    for (name, _) in tapedeck_fuzz::TARGETS {
        std::fs::create_dir_all(out.join(name))?;
    }
    println!("make_seeds: {} captures, {} exchanges; new seeds: {counts:?}", files.len(), exchanges.len());
    Ok(())
}
