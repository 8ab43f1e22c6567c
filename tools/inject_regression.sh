#!/usr/bin/env bash
# A build folder for side B of an A/B run that carries known regressions: every binary of
# build/bin, with the named servers burning extra CPU per request (the servers' test knob
# --inject-cpu-us). An A/B run against the real build then shows whether the gate calls those
# models `slower`, and nothing else: what a gate can see, checked with real processes.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: tools/inject_regression.sh OUT_DIR MODEL=US [MODEL=US ...] [--build-dir build]

Makes OUT_DIR/bin: links to the build's loadgen and servers, and for each MODEL a wrapper that
runs server-MODEL with --inject-cpu-us US. Then, for example:
  ./run_all.sh --profile gate --build-dir OUT_DIR --baseline-bin build/bin --gate \
      --no-build --no-microbench --no-plots --out /tmp/injected
USAGE
}

main() {
    local build_dir=build out="" injected=()
    while (($#)); do
        case "$1" in
            -h|--help) usage; exit 0 ;;
            --build-dir) build_dir="${2:?--build-dir needs a folder}"; shift 2 ;;
            *=*) injected+=("$1"); shift ;;
            -*) echo "inject_regression.sh: unknown flag $1" >&2; exit 2 ;;
            *) [[ -z "$out" ]] || { echo "inject_regression.sh: one OUT_DIR, not '$1' too" >&2; exit 2; }
               out="$1"; shift ;;
        esac
    done
    [[ -n "$out" && ${#injected[@]} -gt 0 ]] || { echo "inject_regression.sh: needs OUT_DIR and MODEL=US (--help)" >&2; exit 2; }
    local bin
    bin="$(cd "$build_dir/bin" 2>/dev/null && pwd)" || { echo "inject_regression.sh: no $build_dir/bin" >&2; exit 2; }
    mkdir -p "$out/bin"
    local binary
    for binary in "$bin"/loadgen "$bin"/server-*; do
        ln -sfn "$binary" "$out/bin/$(basename "$binary")"
    done
    local item model us
    for item in "${injected[@]}"; do
        model="${item%%=*}" us="${item#*=}"
        [[ -x "$bin/server-$model" ]] || { echo "inject_regression.sh: no server-$model in $bin" >&2; exit 2; }
        [[ "$us" =~ ^[0-9]+$ ]] || { echo "inject_regression.sh: $item: US must be whole microseconds" >&2; exit 2; }
        rm -f "$out/bin/server-$model"
        printf '#!/bin/sh\nexec "%s" --inject-cpu-us %s "$@"\n' "$bin/server-$model" "$us" >"$out/bin/server-$model"
        chmod 755 "$out/bin/server-$model"
    done
    echo "$out/bin: ${injected[*]}"
}

main "$@"
