//! HTTP/1.x parser (being written).
