//! Fuzz target `mask`: see [`tapedeck_fuzz::targets::mask`] for the input format.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tapedeck_fuzz::targets::mask(data));
