//! HTTP/2 parser (being written).

pub mod hpack;
