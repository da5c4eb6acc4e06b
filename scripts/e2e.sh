#!/usr/bin/env bash
# Browser end-to-end test of the chat example: headless Chromium driven by playwright-core.
#
# usage: scripts/e2e.sh        (from anywhere; CI runs it as root with CI=true)
#
# Installs what is missing first: Debian's chromium + chromium-driver, redis-server (the
# cluster phase starts its own) and openssl (the TLS phase makes a certificate) with apt-get, the npm
# packages of examples/chat/e2e (npm ci, from the committed package-lock.json; no browser
# download), and the release build of the chat server. Then runs examples/chat/e2e/e2e.mjs,
# which prints `e2e: N passed, M failed` last and writes examples/chat/screenshots/chat.png and
# chat-phone.png.
# Set CHAT_BIN to test another server binary (the build is then skipped), CHROMIUM for
# another browser binary, E2E_TIMEOUT_MS for the whole-test limit (default 180000).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
e2e=examples/chat/e2e
chromium=${CHROMIUM:-/usr/bin/chromium}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        echo "e2e: need root (or sudo) to run: $*" >&2
        exit 2
    fi
}

if [ ! -x "$chromium" ]; then
    echo "e2e: installing chromium (apt-get)"
    # With its recommended packages: they bring the fonts (fonts-liberation) the pages use.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver </dev/null
fi

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
    echo "e2e: installing ${missing[*]} (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" </dev/null
fi

command -v node >/dev/null 2>&1 || { echo "e2e: node (>= 20) is required" >&2; exit 2; }
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
    echo "e2e: node >= 20 is required (playwright-core), found $(node --version)" >&2
    exit 2
fi

if [ ! -f "$e2e/node_modules/playwright-core/package.json" ]; then
    echo "e2e: npm ci in $e2e"
    (cd "$e2e" && npm ci --no-audit --no-fund </dev/null)
fi

if [ -z "${CHAT_BIN:-}" ]; then
    # A no-op when the binary is up to date.
    cargo build --release --bin chat </dev/null
fi

exec node "$e2e/e2e.mjs" </dev/null
