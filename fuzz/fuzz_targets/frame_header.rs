#![no_main]
//! See `fuzz/README.md` and `harness/src/lib.rs`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wsproto_fuzz_harness::frame_header(data));
