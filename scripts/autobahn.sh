#!/usr/bin/env bash
# Runs the Autobahn TestSuite (RFC 6455 conformance) against our echo server (both adapters)
# and our client driver, strict, and compares every case with the results kept in autobahn/.
#
# usage: scripts/autobahn.sh [--update] [mio|blocking|client ...]   (default: all three)
# Needs ../shared/autobahn beside the repository (installs wstest on first use, ~2 minutes).
# Reports: target/autobahn/<target>/index.html
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${AUTOBAHN_SHARED:-$root/../shared/autobahn}
cd "$root"

update=
targets=()
for arg in "$@"; do
    case "$arg" in
        --update) update=--update ;;
        mio|blocking|client) targets+=("$arg") ;;
        *) sed -n '2,8p' "$0"; exit 2 ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(mio blocking client)

[ -d "$shared" ] || { echo "autobahn: $shared not found (set AUTOBAHN_SHARED)"; exit 2; }
command -v wstest >/dev/null 2>&1 || "$shared/install-wstest"
cargo build --release --bin echo-server --bin autobahn-client

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

status=0
for target in "${targets[@]}"; do
    out=target/autobahn/$target
    rm -rf "$out"
    mkdir -p "$out"
    echo "== autobahn: $target"
    if [ "$target" = client ]; then
        port=$(free_port)
        AUTOBAHN_PORT=$port AUTOBAHN_AGENT=wsproto-client AUTOBAHN_OUT=$out AUTOBAHN_STRICT=1 \
            "$shared/test-client" target/release/autobahn-client \
            --url "ws://127.0.0.1:$port" --agent wsproto-client || status=1
    else
        port=$(free_port)
        target/release/echo-server --addr "127.0.0.1:$port" --adapter "$target" &
        server=$!
        wait_for_port "$port" || { echo "autobahn: echo-server did not start"; kill $server; exit 1; }
        AUTOBAHN_OUT=$out AUTOBAHN_STRICT=1 "$shared/test-server" "ws://127.0.0.1:$port" "wsproto-$target" || status=1
        kill $server 2>/dev/null || true
        wait $server 2>/dev/null || true
    fi
    python3 scripts/autobahn-results.py "$out" "autobahn/expected-$target.txt" $update || status=1
done
exit $status
