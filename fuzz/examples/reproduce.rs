//! Runs inputs through a fuzz target on stable Rust, without libFuzzer: `cargo run --example reproduce --
//! <target> <file>...`. A panic shows the crash with a normal backtrace.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((name, files)) = args.split_first() else {
        eprintln!("usage: reproduce <target> <file>...");
        std::process::exit(2);
    };
    let Some(&(_, run)) = tapedeck_fuzz::TARGETS.iter().find(|(n, _)| n == name) else {
        eprintln!("unknown target {name}");
        std::process::exit(2);
    };
    for f in files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{f}: {e}"));
        eprintln!("{f}: {} bytes", data.len());
        run(&data);
    }
}
