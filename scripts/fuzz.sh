#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 60), starting from the
# committed seed corpus, and fails if any target finds a crash.
#
#   bash scripts/fuzz.sh [SECONDS]
#
# Environment:
#   FUZZ_TARGETS    space-separated targets to run (default: all, from `cargo fuzz list`)
#   FUZZ_SANITIZER  none (default) or address: wsproto forbids unsafe code, so AddressSanitizer
#                   only guards the dependencies' unsafe code, at 3-5x fewer executions
#   FUZZ_JOBS       targets run at once (default 1)
#   FUZZ_TOOLCHAIN  nightly, stable or auto (default: nightly when rustup has it, else the
#                   default toolchain with RUSTC_BOOTSTRAP=1)
#
# Each target's working corpus is fuzz/corpus/<target>/: the seeds have readable names and are
# committed; libFuzzer's own finds are named by SHA-1 and ignored by git. Crashing inputs land in
# fuzz/artifacts/<target>/, logs in fuzz/target/fuzz-logs/<target>.log. Debug assertions and
# overflow checks are on (`-a`): arithmetic overflow on peer-controlled values is a crash.
set -euo pipefail

seconds=${1:-60}
case $seconds in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root/fuzz"

# cargo fuzz needs nightly-only compiler flags. Without nightly, RUSTC_BOOTSTRAP lets stable
# accept them, and cargo must not reuse a compiler probe cached without it
# (fuzz/target/.rustc_info.json).
use_stable() {
    export RUSTC_BOOTSTRAP=1 CARGO_CACHE_RUSTC_INFO=0
}
case ${FUZZ_TOOLCHAIN:-auto} in
    nightly) toolchain=(+nightly) ;;
    stable) toolchain=(+stable) && use_stable ;;
    auto)
        if command -v rustup >/dev/null && rustup toolchain list | grep -q '^nightly'; then
            toolchain=(+nightly)
        else
            toolchain=() && use_stable
        fi
        ;;
    *) echo "FUZZ_TOOLCHAIN must be nightly, stable or auto" >&2 && exit 2 ;;
esac
if ! cargo "${toolchain[@]}" fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

sanitizer=${FUZZ_SANITIZER:-none}
build_flags=(--debug-assertions --sanitizer "$sanitizer")
read -r -a targets <<<"${FUZZ_TARGETS:-$(cargo "${toolchain[@]}" fuzz list | tr '\n' ' ')}"
jobs=${FUZZ_JOBS:-1}
logs=target/fuzz-logs
mkdir -p "$logs"

echo "fuzz: building ${targets[*]} (toolchain ${toolchain[*]:-default}${RUSTC_BOOTSTRAP:+ with RUSTC_BOOTSTRAP=1}, sanitizer $sanitizer)"
cargo "${toolchain[@]}" fuzz build "${build_flags[@]}"

max_len() {
    case $1 in
        frame_header) echo 64 ;;
        *_handshake) echo 2048 ;;
        *) echo 8192 ;;
    esac
}

dict() {
    case $1 in
        *_handshake | *_connection) echo "-dict=$root/fuzz/dicts/websocket.dict" ;;
    esac
}

run_target() {
    local target=$1
    mkdir -p "corpus/$target"
    # shellcheck disable=SC2046 # dict() prints zero or one word
    cargo "${toolchain[@]}" fuzz run "${build_flags[@]}" "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=10 -rss_limit_mb=2048 \
        $(dict "$target") -print_final_stats=1 >"$logs/$target.log" 2>&1
}

# The last status line reads "#<execs> DONE cov: <n> ft: <n> corp: ..." (or a crash report).
summary() {
    local target=$1 status=$2 line
    line=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$logs/$target.log" | tail -n 1 || true)
    local execs cov ft
    execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$line")
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$line")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$line")
    if [[ $status -eq 0 ]]; then
        printf '%-18s ok     execs %-10s cov %-6s ft %s\n' "$target" "${execs:-?}" "${cov:-?}" "${ft:-?}"
    else
        printf '%-18s FAILED execs %-10s cov %-6s ft %s  (log: fuzz/%s/%s.log)\n' \
            "$target" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$logs" "$target"
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written' -A2 "$logs/$target.log" | head -n 20 | sed 's/^/    /'
    fi
}

failed=0
pids=() names=()
finish_one() {
    local status=0
    wait "${pids[0]}" || status=$?
    summary "${names[0]}" "$status"
    [[ $status -eq 0 ]] || failed=1
    pids=("${pids[@]:1}") names=("${names[@]:1}")
}
for target in "${targets[@]}"; do
    echo "fuzz: $target for ${seconds}s"
    run_target "$target" &
    pids+=("$!") names+=("$target")
    if [[ ${#pids[@]} -ge $jobs ]]; then finish_one; fi
done
while [[ ${#pids[@]} -gt 0 ]]; do finish_one; done

if [[ $failed -ne 0 ]]; then
    echo "fuzz: crashes found; inputs are in fuzz/artifacts/ (reproduce: cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...)" >&2
    exit 1
fi
echo "fuzz: no crashes"
