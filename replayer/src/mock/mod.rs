//! The mock server (placeholder while it is written).

/// Options of `replayer mock`.
#[derive(Debug, clap::Args)]
pub struct MockOpts {}

/// Runs the mock server.
pub fn run(_opts: &MockOpts) -> anyhow::Result<()> {
    Ok(())
}
