#![no_main]
//! See `fuzz/README.md` and `harness/src/lib.rs`.

use libfuzzer_sys::fuzz_target;
use wsproto::Role;
use wsproto_fuzz_harness::{self as harness, CountingAlloc};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fuzz_target!(|data: &[u8]| harness::handshake(Role::Server, data));
