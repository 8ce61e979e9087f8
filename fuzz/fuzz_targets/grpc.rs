//! Fuzz target `grpc`: see [`tapedeck_fuzz::targets::grpc`] for the input format.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tapedeck_fuzz::targets::grpc(data));
