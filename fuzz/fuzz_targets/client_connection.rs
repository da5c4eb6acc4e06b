#![no_main]
//! See `fuzz/README.md` and `src/harness.rs`.

use libfuzzer_sys::fuzz_target;
use wsproto::Role;
use wsproto_fuzz::harness::{self, CountingAlloc};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fuzz_target!(|data: &[u8]| harness::connection(Role::Client, data));
