#![no_main]
//! See `fuzz/README.md` and `src/scenario.rs`.

use libfuzzer_sys::fuzz_target;
use wsproto_fuzz::harness::CountingAlloc;
use wsproto_fuzz::scenario::{self, Scenario};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fuzz_target!(|scenario: Scenario| scenario::run(&scenario));
