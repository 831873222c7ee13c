//! Fuzz target `initrd`: see reliability/src/parsers.rs for what it drives.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    reliability_tests::parsers::initrd(data);
});
