//! Fuzz target `segment_blocks`: see [`tapedeck_fuzz::targets::segment_blocks`] for the input format.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tapedeck_fuzz::targets::segment_blocks(data));
