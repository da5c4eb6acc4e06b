//! Fuzz targets for `wsproto`: the shared harness ([`harness`]) and the structure-aware
//! scenario ([`scenario`]). The targets themselves live in `fuzz_targets/`; see `README.md`.

pub mod harness;
pub mod scenario;
