#![no_main]
//! See `fuzz/README.md` and `src/harness.rs`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wsproto_fuzz::harness::frame_header(data));
