//! Fuzz target `decode`: see [`tapedeck_fuzz::targets::decode`] for the input format.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tapedeck_fuzz::targets::decode(data));
