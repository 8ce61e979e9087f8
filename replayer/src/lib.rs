//! tapedeck replayer library (being written).
