#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build-fuzz/ and runs each for SECONDS on a scratch copy
# of its seed corpus (the repository's corpus is never written). Exits non-zero if any target
# crashes, leaks, trips a sanitizer or an invariant; the input that did it is kept under
# build-fuzz/artifacts/<target>/ and its path printed.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: fuzz/run_fuzzers.sh [--help] SECONDS [TARGET...]

Builds build-fuzz/ with clang (-DBUILD_FUZZERS=ON) and runs each fuzz target for SECONDS
(default: http_request_fuzz loadgen_response_fuzz). Environment: FUZZ_JOBS (default 2) build jobs.
USAGE
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo_root
readonly build_dir="$repo_root/build-fuzz"

build_targets() {
    CC=clang CXX=clang++ cmake -S "$repo_root" -B "$build_dir" -DBUILD_FUZZERS=ON \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build_dir" -j "${FUZZ_JOBS:-2}" --target "$@"
}

# run_target NAME SECONDS: fuzzes on a copy of fuzz/corpus/NAME's seeds; returns libFuzzer's status.
run_target() {
    local name="$1" seconds="$2"
    local corpus_name="${name%_fuzz}"
    local work="$build_dir/corpus/$name" artifacts="$build_dir/artifacts/$name/"
    rm -rf "$work"
    mkdir -p "$work" "$artifacts"
    if [[ -d "$repo_root/fuzz/corpus/$corpus_name" ]]; then
        cp "$repo_root/fuzz/corpus/$corpus_name"/* "$work"/ 2>/dev/null || true
    fi
    echo "== $name: ${seconds}s on $(ls "$work" | wc -l) seeds" >&2
    "$build_dir/bin/$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts" "$work" 2>"$build_dir/$name.log" || {
        local status=$?
        tail -n 40 "$build_dir/$name.log" >&2
        echo "== $name FAILED (exit $status); input(s): $(ls "$artifacts")" >&2
        return "$status"
    }
    grep -E '^(stat::number_of_executed_units|Done)' "$build_dir/$name.log" >&2 || true
}

main() {
    if [[ $# -lt 1 || "$1" == "--help" || "$1" == "-h" ]]; then
        usage
        [[ $# -ge 1 ]] && exit 0 || exit 2
    fi
    local seconds="$1"
    shift
    [[ "$seconds" =~ ^[0-9]+$ ]] || { echo "run_fuzzers.sh: SECONDS must be a number, got '$seconds'" >&2; exit 2; }
    local targets=("$@")
    [[ ${#targets[@]} -gt 0 ]] || targets=(http_request_fuzz loadgen_response_fuzz)

    local t
    for t in "${targets[@]}"; do
        [[ -f "$repo_root/fuzz/${t}.cpp" ]] || { echo "run_fuzzers.sh: no fuzz target '$t' (fuzz/${t}.cpp)" >&2; exit 2; }
    done
    build_targets "${targets[@]}"

    local failed=0
    for t in "${targets[@]}"; do
        run_target "$t" "$seconds" || failed=1
    done
    return "$failed"
}

main "$@"
