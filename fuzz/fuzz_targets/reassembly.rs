//! Fuzz target `reassembly`: see [`tapedeck_fuzz::targets::reassembly`] for the input format.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tapedeck_fuzz::targets::reassembly(data));
