#![no_main]
//! See `fuzz/README.md` and `harness/src/scenario.rs`.

use libfuzzer_sys::fuzz_target;
use wsproto_fuzz_harness::scenario::{self, Scenario};
use wsproto_fuzz_harness::CountingAlloc;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fuzz_target!(|scenario: Scenario| scenario::run(&scenario));
