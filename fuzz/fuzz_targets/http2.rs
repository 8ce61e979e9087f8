//! Fuzz target `http2`: see [`tapedeck_fuzz::targets::http2`] for the input format.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tapedeck_fuzz::targets::http2(data));
