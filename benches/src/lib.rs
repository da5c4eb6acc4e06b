//! Benchmarks for the workspace: codec benches (criterion, `cargo bench -p wsproto-benches`)
//! and the loopback load harness (`cargo run --profile release-lto -p wsproto-benches --bin
//! load`), each measuring our stack side by side with tungstenite, fastwebsockets and
//! tokio-tungstenite and with what the hardware allows (the raw-TCP ceiling), so that every
//! figure is a ratio taken in the same run on the same machine. See `README.md` and
//! `RESULTS.md` next to this crate.
//!
//! The peers are dependencies of this crate only.
#![deny(missing_docs)]

pub mod client;
pub mod codec;
pub mod frames;
pub mod mem;
pub mod procfs;
pub mod report;
pub mod servers;
