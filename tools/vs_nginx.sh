#!/usr/bin/env bash
# Measures a serverbench model against nginx (one worker) in the same run: each server pinned to
# CPU 0, wrk pinned to CPU 1, HTTP keep-alive, 13-byte body. Rounds alternate between the two so
# drift on a shared machine hits both. Prints req/s and server CPU µs per request per round, and
# the medians with the model/nginx ratios.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: tools/vs_nginx.sh [--model epoll] [--rounds 3] [--duration 5] [--connections 50] [--build-dir build]
Needs nginx and wrk (apt-get install -y nginx-light wrk).
USAGE
}

model=epoll rounds=3 duration=5 connections=50 build_dir=build
while [[ $# -gt 0 ]]; do
    case $1 in
        --model) model=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --connections) connections=$2; shift 2 ;;
        --build-dir) build_dir=$2; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "vs_nginx.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
for tool in nginx wrk taskset python3; do
    command -v "$tool" >/dev/null || { echo "vs_nginx.sh: $tool not found (apt-get install -y nginx-light wrk util-linux)" >&2; exit 2; }
done
server="$build_dir/bin/server-$model"
[[ -x $server ]] || { echo "vs_nginx.sh: $server not built" >&2; exit 2; }

# shellcheck source=tools/nginx_one_worker.sh
source "$(dirname "${BASH_SOURCE[0]}")/nginx_one_worker.sh"
work=$(mktemp -d)
model_pid=""
cleanup() {
    stop_nginx
    if [[ -n $model_pid ]]; then kill "$model_pid" 2>/dev/null || true; wait "$model_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# Starts the model (readiness line, never a fixed sleep); sets model_pid and model_port.
start_model() {
    taskset -c 0 "$server" --port 0 >"$work/ready" 2>"$work/model.err" &
    model_pid=$!
    for _ in $(seq 100); do
        grep -q 'port=' "$work/ready" && break
        sleep 0.05
    done
    model_port=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' "$work/ready")
    [[ -n $model_port ]] || { echo "vs_nginx.sh: $server printed no readiness line" >&2; exit 1; }
}

# measure PID PORT: runs wrk against it; prints "req/s cpu_us_per_req".
measure() {
    local pid=$1 port=$2 before after rps
    before=$(process_cpu_s "$pid")
    rps=$(taskset -c 1 wrk -t1 -c"$connections" -d"${duration}s" "http://127.0.0.1:$port/" | awk '/Requests\/sec/ {print $2}')
    after=$(process_cpu_s "$pid")
    awk -v r="$rps" -v b="$before" -v a="$after" -v d="$duration" 'BEGIN {printf "%.0f %.2f", r, (a - b) * 1e6 / (r * d)}'
}

start_nginx 0 "$work"
start_model
printf '%-6s %-18s %10s %10s\n' round server "req/s" "cpu_us/req"
for round in $(seq "$rounds"); do
    for side in nginx "$model"; do
        if [[ $side == nginx ]]; then figures=$(measure "$nginx_pid" "$nginx_port")
        else figures=$(measure "$model_pid" "$model_port"); fi
        read -r rps cpu <<<"$figures"
        printf '%-6s %-18s %10s %10s\n' "$round" "$side" "$rps" "$cpu"
        echo "$side $rps $cpu" >>"$work/rows"
    done
done
python3 - "$work/rows" "$model" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
med = {side: [statistics.median(float(r[i]) for r in rows if r[0] == side) for i in (1, 2)]
       for side in ("nginx", sys.argv[2])}
(n_rps, n_cpu), (m_rps, m_cpu) = med["nginx"], med[sys.argv[2]]
print(f"\nmedian  nginx {n_rps:.0f} req/s {n_cpu:.2f} us/req;  {sys.argv[2]} {m_rps:.0f} req/s {m_cpu:.2f} us/req")
print(f"ratio {sys.argv[2]}/nginx: throughput {m_rps / n_rps:.2f}x, CPU per request {m_cpu / n_cpu:.2f}x")
PY
