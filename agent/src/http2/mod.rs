//! HTTP/2 parser (being written).
