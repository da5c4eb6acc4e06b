#!/usr/bin/env bash
# The tests, as the README gives them: every crate of the workspace, all features its members
# turn on (tokio, TLS, permessage-deflate). The chat's cluster tests start a real redis-server
# of their own, so this installs Debian's redis-server first if it is not on the PATH (as root,
# or through passwordless sudo). Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null 2>&1; then
    echo "test: installing redis-server (apt-get) for the chat's cluster tests"
    as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server </dev/null
fi
redis-server --version
cargo test --workspace "$@"
