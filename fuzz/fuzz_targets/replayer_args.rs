//! Fuzz target `replayer_args`: see [`tapedeck_fuzz::targets::replayer_args`] for the input format.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tapedeck_fuzz::targets::replayer_args(data));
