#!/usr/bin/env bash
# Smoke test of run_all.sh with the real binaries: the hidden "smoke" profile (500 ms points)
# on two models and one scenario, then the charts. Exit 77 (skipped) when the binaries or
# matplotlib are missing. usage: run_all_smoke_test.sh [BUILD_DIR]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build_dir=${1:-$root/build}
for bin in loadgen server-epoll server-blocking; do
    if [[ ! -x $build_dir/bin/$bin ]]; then
        echo "SKIP: $build_dir/bin/$bin not built"
        exit 77
    fi
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

"$root/run_all.sh" --profile smoke --no-build --no-microbench --no-plots --build-dir "$build_dir" \
    --out "$out/run" --models blocking,epoll --scenarios http-keepalive || fail "run_all.sh exited $?"

run="$out/run"
[[ -f $run/manifest.json ]] || fail "no manifest.json"
for f in points/epoll/http-keepalive/c1-r1.json points/epoll/http-keepalive/c10-r1.json \
         points/blocking/http-keepalive/c1-r1.json; do
    [[ -s $run/$f ]] || fail "missing $f"
done
/usr/bin/python3 - "$run" <<'PY' || fail "manifest check"
import json, sys
m = json.load(open(sys.argv[1] + "/manifest.json"))
assert m["schema"] == "serverbench.manifest/2"
bad = [p for p in m["points"] if p["status"] != "ok"]
assert not bad, bad
for p in m["points"]:
    r = json.load(open(sys.argv[1] + "/" + p["file"]))
    assert r["schema"] == "serverbench.result/1" and r["model"] == p["model"], p
    if p["model"] == "epoll":
        assert r["totals"]["throughput_rps"] > 0, p
PY
if /usr/bin/python3 -c 'import matplotlib' 2>/dev/null; then
    PYTHONPATH="$root" /usr/bin/python3 -P -m plots "$run" >/dev/null || fail "python3 -m plots"
    [[ -s $run/summary.md && -s $run/throughput_vs_connections.png ]] || fail "no charts in the run folder"
fi
echo "PASS: run_all.sh smoke profile"
