//! The segment file format (writer and reader). See docs/format.md.
//! (Being written: this module is owned by the segment-format work.)
