//! `agent`: see `agent --help`.
fn main() {}
