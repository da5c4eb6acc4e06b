#!/usr/bin/env bash
# Runs the Autobahn TestSuite (RFC 6455 and RFC 7692 conformance), strict, against our echo
# server over the mio, blocking and tokio adapters, over wss:// on the mio and tokio adapters,
# and against our client driver on the blocking and tokio adapters, all at once, and compares
# every case with the results kept in autobahn/expected-<target>.txt.
#
# usage: scripts/autobahn.sh [--quick] [--update] [mio|blocking|tokio|mio-wss|tokio-wss|client|tokio-client ...]
#        (default: all seven)
#   --quick    leave out the compression cases with large messages (12.*.6-18, 13.*.6-18), which
#              are most of the run's time: for a fast local check, never for CI
#   --update   rewrite the expected results of the cases run (after checking the reports!)
# Sections 1-10 run for all targets; the permessage-deflate sections 12-13 for all but the
# blocking server (which shares that code path with the mio one) and the wss:// servers (TLS is
# under the WebSocket code, which the plain targets run with compression). The wss:// servers
# use a throw-away certificate made with openssl (wstest does not check it).
# Needs ../shared/autobahn beside the repository (installs wstest on first use, ~2 minutes).
# Reports: target/autobahn/<target>/index.html
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${AUTOBAHN_SHARED:-$root/../shared/autobahn}
cd "$root"

update=
quick=
targets=()
for arg in "$@"; do
    case "$arg" in
        --update) update=--update ;;
        --quick) quick=1 ;;
        mio|blocking|tokio|mio-wss|tokio-wss|client|tokio-client) targets+=("$arg") ;;
        *) sed -n '2,15p' "$0"; exit 2 ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=(mio blocking tokio mio-wss tokio-wss client tokio-client)

[ -d "$shared" ] || { echo "autobahn: $shared not found (set AUTOBAHN_SHARED)"; exit 2; }
command -v wstest >/dev/null 2>&1 || "$shared/install-wstest"
# wsaccel: the C speedups (masking, UTF-8 validation) that Autobahn uses when it can import
# them. Without them wstest masks and validates in pure Python 2 and needs about an hour of CPU
# per target for the large compressed messages of sections 12-13; with them, minutes. 0.6.2
# ships its generated C sources (no Cython needed) and builds for Python 2.7.
if ! python2.7 -c 'import wsaccel' 2>/dev/null; then
    python2.7 -m pip install -q --no-warn-script-location wsaccel==0.6.2
fi
cargo build --release --bin echo-server --bin autobahn-client

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

cases_for() {
    case "$1" in
        blocking | *-wss) echo '1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*' ;;
        *) echo '*' ;;
    esac
}

# The wss:// targets' certificate, for this run only.
tls_dir=$(mktemp -d)
trap 'rm -rf "$tls_dir"' EXIT
if [[ " ${targets[*]} " == *-wss* ]]; then
    if ! command -v openssl >/dev/null 2>&1; then
        echo "autobahn: installing openssl (apt-get) for the wss:// targets' certificate"
        as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y openssl </dev/null
    fi
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tls_dir/key.pem" \
        -out "$tls_dir/cert.pem" -days 2 -subj /CN=localhost \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
fi
# With --quick: the compression cases with messages of 8 KiB and more are left out.
exclude=
if [ -n "$quick" ]; then
    exclude=$(for n in $(seq 6 18); do printf '12.*.%s,13.*.%s,' "$n" "$n"; done)
    exclude=${exclude%,}
fi

run_target() {
    local target=$1 out=target/autobahn/$1 port cases
    cases=$(cases_for "$target")
    rm -rf "$out"
    mkdir -p "$out"
    port=$(free_port)
    if [ "$target" = client ] || [ "$target" = tokio-client ]; then
        local flags=()
        [ "$target" = tokio-client ] && flags=(--tokio)
        AUTOBAHN_PORT=$port AUTOBAHN_AGENT=wsproto-$target AUTOBAHN_OUT=$out AUTOBAHN_STRICT=1 \
            AUTOBAHN_CASES=$cases AUTOBAHN_EXCLUDE=$exclude \
            "$shared/test-client" target/release/autobahn-client \
            --url "ws://127.0.0.1:$port" --agent "wsproto-$target" "${flags[@]}"
    else
        local adapter=$target scheme=ws tls=()
        if [[ "$target" == *-wss ]]; then
            adapter=${target%-wss} scheme=wss
            tls=(--tls-cert "$tls_dir/cert.pem" --tls-key "$tls_dir/key.pem")
        fi
        target/release/echo-server --addr "127.0.0.1:$port" --adapter "$adapter" "${tls[@]}" &
        local server=$!
        wait_for_port "$port" || { echo "autobahn: echo-server did not start"; kill $server; return 1; }
        local status=0
        AUTOBAHN_OUT=$out AUTOBAHN_STRICT=1 \
            "$shared/test-server" "$scheme://127.0.0.1:$port" "wsproto-$target" "$cases" "$exclude" \
            || status=$?
        kill $server 2>/dev/null || true
        wait $server 2>/dev/null || true
        return $status
    fi
}

started=$(date +%s)
pids=()
for target in "${targets[@]}"; do
    mkdir -p target/autobahn
    run_target "$target" > "target/autobahn/$target.log" 2>&1 &
    pids+=($!)
done
status=0
for i in "${!targets[@]}"; do
    target=${targets[$i]}
    wait "${pids[$i]}" || status=1
    echo "== autobahn: $target ($(( $(date +%s) - started ))s)"
    grep -E "^(autobahn|wsproto)" "target/autobahn/$target.log" | tail -20 || true
    python3 scripts/autobahn-results.py "target/autobahn/$target" "autobahn/expected-$target.txt" \
        --cases "$(cases_for "$target")" --exclude "$exclude" $update || status=1
done
exit $status
