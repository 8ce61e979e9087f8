//! `cargo xtask bench-masking`: what the default masking policy costs on ingest, as issue 8 measures it: `agent
//! --pcap` with masking off and with the default policy, run alternately in pairs so that both runs of a pair see
//! the same machine (on a shared VM the same command varies by a third from one minute to the next). Each pair
//! gives a throughput ratio (off time / default time, so 0.9 is "the default policy keeps 90 % of the
//! throughput"), by wall clock and by CPU time (the children's user + system time from `/proc/self/stat`); the
//! medians of the pair ratios are the figures reported, with the medians and bests of each side.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::demo::{build_release, workspace_root};

/// Options of `bench-masking`.
#[derive(Debug)]
pub struct MaskingBenchOptions {
    /// The capture to read.
    pub pcap: PathBuf,
    /// Pairs of runs (masking off, then the default policy).
    pub pairs: usize,
}

/// CPU seconds (user + system) of the children this process has waited for.
fn children_cpu_secs() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // Fields after the command name (which is in parentheses and may hold spaces): state is field 3, cutime 16,
    // cstime 17 (proc(5)).
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // The kernel reports these in USER_HZ, 100 on Linux.
    Ok((ticks(16) + ticks(17)) / 100.0)
}

/// One run of the agent on `pcap`: (wall seconds, CPU seconds).
fn run(agent: &Path, pcap: &Path, masking: bool) -> Result<(f64, f64)> {
    let out = tempfile::tempdir()?;
    let cpu_before = children_cpu_secs()?;
    let started = Instant::now();
    let mut cmd = Command::new(agent);
    cmd.arg("--pcap").arg(pcap).arg("--out").arg(out.path().join("segments")).arg("--quiet");
    if !masking {
        cmd.arg("--no-default-masking");
    }
    let status = cmd.status().with_context(|| format!("running {}", agent.display()))?;
    let wall = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("agent failed ({status})");
    }
    Ok((wall, children_cpu_secs()? - cpu_before))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn best(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

/// Runs the pairs and prints each, then the summary as a Markdown row for BENCHMARKS.md.
pub fn bench_masking(opts: &MaskingBenchOptions) -> Result<()> {
    let root = workspace_root();
    let agent = build_release(&root)?.join("agent");
    let size = std::fs::metadata(&opts.pcap).with_context(|| format!("{}", opts.pcap.display()))?.len();
    let mb = size as f64 / 1e6;
    println!(
        "capture: {} ({mb:.0} MB), {} pairs (masking off, then the default policy)",
        opts.pcap.display(),
        opts.pairs
    );
    let (mut off, mut on, mut wall_ratio, mut cpu_ratio) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for pair in 1..=opts.pairs.max(1) {
        let (off_wall, off_cpu) = run(&agent, &opts.pcap, false)?;
        let (on_wall, on_cpu) = run(&agent, &opts.pcap, true)?;
        println!(
            "pair {pair}: off {off_wall:.2} s ({off_cpu:.2} s CPU), default {on_wall:.2} s ({on_cpu:.2} s CPU): \
             {:.1} % by wall clock, {:.1} % by CPU",
            100.0 * off_wall / on_wall,
            100.0 * off_cpu / on_cpu
        );
        off.push(off_wall);
        on.push(on_wall);
        wall_ratio.push(off_wall / on_wall);
        cpu_ratio.push(off_cpu / on_cpu);
    }
    println!(
        "| default policy / masking off | **{:.1} %** median of pair ratios by wall clock, {:.1} % by CPU | off: {:.0} MB/s \
         median, {:.0} best | default: {:.0} MB/s median, {:.0} best | {} pairs |",
        100.0 * median(wall_ratio),
        100.0 * median(cpu_ratio),
        mb / median(off.clone()),
        mb / best(&off),
        mb / median(on.clone()),
        mb / best(&on),
        off.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
        assert_eq!(best(&[2.0, 0.5, 1.0]), 0.5);
    }

    #[test]
    fn waited_children_add_cpu_time() {
        let before = children_cpu_secs().unwrap();
        // A child that spins for about 0.3 s of CPU.
        let status = Command::new("sh").args(["-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"]).status();
        assert!(status.unwrap().success());
        let after = children_cpu_secs().unwrap();
        assert!(after > before, "{before} -> {after}");
    }
}
