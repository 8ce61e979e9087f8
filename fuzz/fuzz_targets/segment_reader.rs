//! Fuzz target `segment_reader`: see [`tapedeck_fuzz::targets::segment_reader`] for the input format.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tapedeck_fuzz::targets::segment_reader(data));
