#!/usr/bin/env bash
# Builds the sanitizer trees and runs the test suites under them; exits non-zero on any failure.
#   build-asan/ (-DSANITIZE=address,undefined): every test labelled `servers` or `loadgen`.
#   build-tsan/ (-DSANITIZE=thread): the server tests of the thread-based models.
# Servers run as child processes of the tests, so the sanitizer options below are exported to them:
# a report aborts the server (or makes it exit non-zero), and the tests check every server's exit
# status and scan its stderr for reports. Both trees keep assert() on: the top CMakeLists.txt
# undefines NDEBUG when SANITIZE is set, whatever the build type.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: tests/sanitize.sh [--help] [asan] [tsan]

Builds build-asan/ and/or build-tsan/ (default: both) and runs the tests under them.
Environment: SANITIZE_JOBS (default 2) for building and for ctest -j.
USAGE
}

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo_root
readonly jobs="${SANITIZE_JOBS:-2}"
# The models whose servers run several threads against shared state: TSan has something to check.
readonly tsan_models='thread[-_]per[-_]conn|thread[-_]pool|epoll[-_]reuseport|epoll[-_]pool'

export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:strict_string_checks=1:check_initialization_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export TSAN_OPTIONS="halt_on_error=1:exitcode=66:second_deadlock_stack=1"

# build_tree DIR SANITIZE_LIST
build_tree() {
    local dir="$1" sanitize="$2"
    echo "== building $dir (-DSANITIZE=$sanitize)" >&2
    cmake -S "$repo_root" -B "$repo_root/$dir" -DSANITIZE="$sanitize" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null &&
        cmake --build "$repo_root/$dir" -j "$jobs"
}

# run_tests DIR CTEST_ARGS...
run_tests() {
    local dir="$1"
    shift
    echo "== testing $dir: ctest $*" >&2
    ctest --test-dir "$repo_root/$dir" --output-on-failure --no-tests=error -j "$jobs" "$@"
}

# Called as `run_x || ...`, where bash ignores set -e inside the function: hence the explicit &&.
run_asan() {
    build_tree build-asan address,undefined && run_tests build-asan -L 'servers|loadgen'
}

run_tsan() {
    build_tree build-tsan thread && run_tests build-tsan -L servers -R "$tsan_models"
}

main() {
    local suites=()
    for arg in "$@"; do
        case "$arg" in
        -h | --help) usage; exit 0 ;;
        asan | tsan) suites+=("$arg") ;;
        *) echo "sanitize.sh: unknown argument '$arg'" >&2; usage >&2; exit 2 ;;
        esac
    done
    [[ ${#suites[@]} -gt 0 ]] || suites=(asan tsan)
    local failed=()
    for suite in "${suites[@]}"; do
        "run_$suite" || failed+=("$suite")
    done
    if [[ ${#failed[@]} -gt 0 ]]; then
        echo "== sanitize.sh: FAILED under: ${failed[*]}" >&2
        return 1
    fi
    echo "== sanitize.sh: all suites passed under: ${suites[*]}" >&2
}

main "$@"
