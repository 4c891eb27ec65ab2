//! cargo-fuzz target: `socialgate::fuzz_harness::dlp_charset` on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    socialgate::fuzz_harness::dlp_charset(data);
});
