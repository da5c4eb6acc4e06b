#!/usr/bin/env bash
# Miri over the core's one module with `unsafe` (wsproto/src/text.rs: validated UTF-8 viewed
# as `str`), on nightly; installs the miri component when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal
    rustup component add miri rust-src --toolchain nightly
fi
cargo +nightly miri test -p wsproto --lib text::
