#!/usr/bin/env bash
# Measures a serverbench model against nginx (one worker) in the same run: each server pinned to
# CPU 0, wrk pinned to CPU 1, HTTP keep-alive, 13-byte body. Rounds alternate between the two so
# drift on a shared machine hits both. Prints req/s and server CPU µs per request for each round.
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
for tool in nginx wrk taskset; do
    command -v "$tool" >/dev/null || { echo "vs_nginx.sh: $tool not found (apt-get install -y nginx-light wrk util-linux)" >&2; exit 2; }
done

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_nginx() {
    local port=$1
    cat >"$work/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process off;
error_log $work/error.log;
pid $work/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    server { listen 127.0.0.1:$port; location / { return 200 "Hello, World!"; } }
}
CONF
    taskset -c 0 nginx -c "$work/nginx.conf" -p "$work" &
    pids+=($!)
    echo $!
}

start_model() {
    local ready
    taskset -c 0 "$build_dir/bin/server-$model" --port 0 >"$work/ready" 2>/dev/null &
    pids+=($!)
    for _ in $(seq 100); do ready=$(cat "$work/ready"); [[ -n $ready ]] && break; sleep 0.05; done
    echo "$!" "$(sed -n 's/.*port=\([0-9]*\).*/\1/p' "$work/ready")"
}

cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14 + $15) / hz}' "/proc/$1/stat"; }

# Runs wrk against pid/port; prints "req/s cpu_us_per_req".
measure() {
    local pid=$1 port=$2 before after out rps
    before=$(cpu_seconds "$pid")
    out=$(taskset -c 1 wrk -t1 -c"$connections" -d"${duration}s" "http://127.0.0.1:$port/")
    after=$(cpu_seconds "$pid")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    awk -v r="$rps" -v b="$before" -v a="$after" -v d="$duration" \
        'BEGIN {printf "%10.0f %8.2f", r, (a - b) * 1e6 / (r * d)}'
}

nginx_port=$(free_port)
nginx_pid=$(start_nginx "$nginx_port")
read -r model_pid model_port < <(start_model)
sleep 0.5
printf '%-6s %-18s %10s %8s\n' round server "req/s" "cpu_us/req"
for round in $(seq "$rounds"); do
    printf '%-6s %-18s %s\n' "$round" nginx "$(measure "$nginx_pid" "$nginx_port")"
    printf '%-6s %-18s %s\n' "$round" "server-$model" "$(measure "$model_pid" "$model_port")"
done
