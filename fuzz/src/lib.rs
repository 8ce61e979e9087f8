//! Fuzz harnesses for tapedeck: one function per target, each turning fuzzer bytes into calls to a stage's public
//! API, plus the encoders that turn real captures into seed inputs of the same shapes.
//!
//! The `fuzz_targets/*.rs` binaries are one-line wrappers around [`TARGETS`]; `examples/make_seeds.rs` writes the
//! seed corpora; `examples/reproduce.rs` runs an input through a target on stable Rust (for debugging a crash).
//! Input formats (every byte is consumed by a [`Bytes`] reader that yields zeros past the end):
//! - `pcap_reader`: a capture file, read through a reader that returns short reads.
//! - `decode`: one byte picking the link type ([`LINKS`]), then frames ([`encode_frames`]).
//! - `reassembly`: a script of synthetic TCP segments over four fixed connections ([`SegScript`]).
//! - `http1` / `http2`: a mode byte, then a script of client/server chunks, gaps, FINs ([`encode_stream_ops`]).
//! - `grpc`: a flag byte, then a body split by [`tapedeck_model::grpc`] and a whole exchange summarised.
//! - `mask`: a flag byte, a content type, a path and header fields, then a body, masked ([`targets::mask`]).
//! - `segment_reader`: a segment file, written to a temporary file and read block by block.
//! - `segment_blocks`: block payloads (raw records) wrapped into a segment file with valid checksums, so that the
//!   record decoding behind the CRCs is reached ([`targets::segment_blocks`]).
//! - `replayer_args`: NUL-separated flag values for the replayer's parsers ([`targets::replayer_args`]).

pub mod input;
pub mod seeds;
pub mod targets;

pub use input::{Bytes, LINKS, SegScript, StreamOp, encode_frames, encode_stream_ops};

/// A harness: fuzzer bytes in.
pub type Harness = fn(&[u8]);

/// Every target: its name (the `fuzz_targets/<name>.rs` binary) and its harness.
pub const TARGETS: &[(&str, Harness)] = &[
    ("pcap_reader", targets::pcap_reader),
    ("decode", targets::decode),
    ("reassembly", targets::reassembly),
    ("http1", targets::http1),
    ("http2", targets::http2),
    ("grpc", targets::grpc),
    ("mask", targets::mask),
    ("segment_reader", targets::segment_reader),
    ("segment_blocks", targets::segment_blocks),
    ("replayer_args", targets::replayer_args),
];
