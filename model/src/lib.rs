//! The data that crosses a process boundary in tapedeck: the [`Exchange`] (one HTTP request and its response as
//! seen on the wire) and the segment file format that stores exchanges on disk.
//!
//! Brief overview:
//! ```text
//! agent:    ... parsers ──Exchange──▶ mask ──Exchange──▶ segment::SegmentWriter ──▶ *.seg files
//! replayer: *.seg files ──▶ segment::SegmentReader ──Exchange──▶ filter ▶ plan ▶ ...
//! ```
//! This crate does no network I/O and knows nothing about packets: it is the contract between the two programs.
#![deny(missing_docs)]

pub mod exchange;
pub mod grpc;
pub mod protobuf;
pub mod segment;

pub use exchange::{Body, Exchange, Flag, Flags, Header, Interim, Protocol, Request, Response, Timestamp, Timing};
