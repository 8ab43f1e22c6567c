#!/usr/bin/env bash
# loadgen side by side with wrk against the same nginx (one worker, pinned to one CPU), each load
# generator pinned to the other CPU, same connections and duration, rounds alternating so drift on
# a shared machine hits both. Prints, per round and as medians: requests/s, the load generator's
# own CPU time per request (user+sys of the whole process from /usr/bin/time, the same rule for
# both tools), p50 and mean latency, the mean a closed loop must show by Little's law
# (connections / throughput: every connection always has one request out; a tool whose mean is
# well under it leaves time out of its latency), and nginx's CPU µs per request (how the client's
# pattern changes the server's cost).
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: tools/loadgen_vs_wrk.sh [--rounds 3] [--duration 5] [--connections 50[,N...]]
                               [--build-dir build] [--server-cpu 0] [--client-cpu 1]
                               [--port PORT] [--keep DIR]

Starts the nginx of servers/references/nginx.toml (one worker, 13-byte "Hello, World!" body)
pinned to --server-cpu, through serverbench.launch_server as a run starts it, then
per connection count and round runs wrk -t1 --latency and loadgen --threads 1, both pinned to
--client-cpu, against it. --connections takes a list, e.g. 1,10,50: at low counts neither tool
queues requests inside itself, so their latencies are directly comparable.
--port: use an HTTP server already listening there instead of starting nginx.
--keep DIR: keep each run's wrk output and loadgen JSON in DIR.
Needs nginx, wrk, /usr/bin/time, taskset, python3 (apt-get install -y nginx-light wrk time).
USAGE
}

rounds=3 duration=5 connections=50 build_dir=build server_cpu=0 client_cpu=1 port="" keep=""

parse_args() {
    while [[ $# -gt 0 ]]; do
        case $1 in
            --rounds) rounds=$2; shift 2 ;;
            --duration) duration=$2; shift 2 ;;
            --connections) connections=$2; shift 2 ;;
            --build-dir) build_dir=$2; shift 2 ;;
            --server-cpu) server_cpu=$2; shift 2 ;;
            --client-cpu) client_cpu=$2; shift 2 ;;
            --port) port=$2; shift 2 ;;
            --keep) keep=$2; shift 2 ;;
            -h|--help) usage; exit 0 ;;
            *) echo "loadgen_vs_wrk.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
        esac
    done
    [[ $connections =~ ^[0-9]+(,[0-9]+)*$ ]] || { echo "loadgen_vs_wrk.sh: bad --connections '$connections'" >&2; exit 2; }
    for n in "$rounds" "$duration" "$server_cpu" "$client_cpu"; do
        [[ $n =~ ^[0-9]+$ ]] || { echo "loadgen_vs_wrk.sh: '$n' is not a number" >&2; exit 2; }
    done
}

check_tools() {
    local need=(wrk taskset python3)
    [[ -n $port ]] || need+=(nginx)
    for tool in "${need[@]}"; do
        command -v "$tool" >/dev/null || { echo "loadgen_vs_wrk.sh: $tool not found" >&2; exit 2; }
    done
    [[ -x /usr/bin/time ]] || { echo "loadgen_vs_wrk.sh: /usr/bin/time not found (apt-get install -y time)" >&2; exit 2; }
    loadgen="$build_dir/bin/loadgen"
    [[ -x $loadgen ]] || { echo "loadgen_vs_wrk.sh: $loadgen not built" >&2; exit 2; }
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d)
launcher_pid="" nginx_pid=""
cleanup() {
    if [[ -n $launcher_pid ]]; then kill "$launcher_pid" 2>/dev/null || true; wait "$launcher_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# The bundled nginx server file, started as a run starts it; sets launcher_pid, nginx_pid, port.
start_nginx() {
    taskset -c "$server_cpu" env PYTHONPATH="$root" /usr/bin/python3 -P -m serverbench.launch_server \
        "$root/servers/references/nginx.toml" --port 0 >"$work/ready" 2>"$work/nginx.log" &
    launcher_pid=$!
    for _ in $(seq 200); do
        grep -q '^port=' "$work/ready" && break
        kill -0 "$launcher_pid" 2>/dev/null || break
        sleep 0.05
    done
    port=$(sed -n 's/^port=\([0-9]*\).*/\1/p' "$work/ready")
    nginx_pid=$(sed -n 's/.* pid=\([0-9]*\).*/\1/p' "$work/ready")
    [[ -n $port ]] || { echo "loadgen_vs_wrk.sh: nginx did not start: $(tail -n 1 "$work/nginx.log")" >&2; exit 1; }
}

# Waits (at most 5 s) until something accepts on 127.0.0.1:$1.
wait_for_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "loadgen_vs_wrk.sh: nothing listening on port $1 after 5 s" >&2
    return 1
}

# CPU seconds (user+sys) nginx's master and worker have used so far; 0 when the server is not
# ours (--port).
server_cpu_s() {
    [[ -n $nginx_pid ]] || { echo 0; return; }
    local p
    for p in "$nginx_pid" $(pgrep -P "$nginx_pid"); do sed 's/^.*) //' "/proc/$p/stat"; done 2>/dev/null |
        awk -v hz="$(getconf CLK_TCK)" '{s += $12 + $13} END {printf "%.3f", s / hz}'
}

# measure TOOL CONNS TAG: runs run_TOOL; prints its figures and the server's CPU µs per request.
measure() {
    local before after figures
    before=$(server_cpu_s)
    figures=$("run_$1" "$2" "$3")
    after=$(server_cpu_s)
    read -r rps _ <<<"$figures"
    echo "$figures $(awk -v a="$after" -v b="$before" -v r="$rps" -v d="$duration" \
        'BEGIN {printf "%.2f", (a - b) * 1e6 / (r * d)}')"
}

# run_wrk CONNS TAG: prints "rps cpu_us_per_req p50_us mean_us".
run_wrk() {
    local out="$work/wrk.$2.txt"
    taskset -c "$client_cpu" /usr/bin/time -f "cpu %U %S" -o "$work/wrk.$2.time" \
        wrk -t1 -c"$1" -d"${duration}s" --latency "http://127.0.0.1:$port/" >"$out"
    python3 - "$out" "$work/wrk.$2.time" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
user, sys_ = map(float, open(sys.argv[2]).read().split()[-2:])
def us(value, unit):
    return float(value) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
requests = int(re.search(r"(\d+) requests in", text).group(1))
rps = float(re.search(r"Requests/sec:\s*([\d.]+)", text).group(1))
p50 = us(*re.search(r"^\s*50%\s+([\d.]+)(us|ms|s)\s*$", text, re.M).groups())
mean = us(*re.search(r"^\s*Latency\s+([\d.]+)(us|ms|s)", text, re.M).groups())
print(f"{rps:.0f} {(user + sys_) * 1e6 / requests:.2f} {p50:.0f} {mean:.0f}")
PY
}

# run_loadgen CONNS TAG: prints "rps cpu_us_per_req p50_us mean_us".
run_loadgen() {
    local out="$work/loadgen.$2.json"
    taskset -c "$client_cpu" /usr/bin/time -f "cpu %U %S" -o "$work/loadgen.$2.time" \
        "$loadgen" --port "$port" --connections "$1" --duration "${duration}s" \
        --cpus "$client_cpu" --quiet --out "$out"
    python3 - "$out" "$work/loadgen.$2.time" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
user, sys_ = map(float, open(sys.argv[2]).read().split()[-2:])
requests, latency = r["totals"]["requests"], r["latency_us"]
print(f'{r["totals"]["throughput_rps"]:.0f} {(user + sys_) * 1e6 / requests:.2f} '
      f'{latency["p50"]:.0f} {latency["mean"]:.0f}')
PY
}

row_format='%-5s %-6s %-8s %10s %11s %8s %8s %9s %11s\n'

# print_row CONNS ROUND TOOL "rps cpu p50 mean server_cpu": one table row, Little's-law mean added.
print_row() {
    local rps cpu p50 mean server
    read -r rps cpu p50 mean server <<<"$4"
    printf "$row_format" "$1" "$2" "$3" "$rps" "$cpu" "$p50" "$mean" "$(( $1 * 1000000 / rps ))" "$server"
}

# summarise FILE: FILE holds "conns tool rps cpu p50 mean server_cpu" lines; prints medians per connection
# count and tool, and the loadgen/wrk ratios.
summarise() {
    python3 - "$1" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1]) if line.strip()]
fmt = "%-5s %-6s %-8s %10s %11s %8s %8s %9s %11s"
for conns in dict.fromkeys(r[0] for r in rows):
    med = {}
    for tool in ("wrk", "loadgen"):
        med[tool] = [statistics.median(float(r[i]) for r in rows if r[0] == conns and r[1] == tool)
                     for i in (2, 3, 4, 5, 6)]
        rps, cpu, p50, mean, server = med[tool]
        print(fmt % (conns, "median", tool, f"{rps:.0f}", f"{cpu:.2f}", f"{p50:.0f}", f"{mean:.0f}",
                     f"{int(conns) * 1e6 / rps:.0f}", f"{server:.2f}"))
    w, l = med["wrk"], med["loadgen"]
    ratios = [f"{a / b:.2f}" if b else "-" for a, b in zip(l, w)]
    print(fmt % (conns, "ratio", "lg/wrk", *ratios[:4], "", ratios[4]))
PY
}

main() {
    parse_args "$@"
    check_tools
    if [[ -z $port ]]; then start_nginx; else wait_for_port "$port"; fi
    echo "server: ${nginx_pid:+nginx pid $nginx_pid on CPU $server_cpu, }port $port; clients on CPU $client_cpu," \
         "connections $connections, ${duration}s, $rounds rounds" >&2
    printf "$row_format" conns round tool "req/s" "cpu_us/req" "p50_us" "mean_us" "little_us" "srv_us/req"
    local conns round rows="$work/rows" w l
    for conns in ${connections//,/ }; do
        for round in $(seq "$rounds"); do
            w=$(measure wrk "$conns" "c$conns.r$round")
            l=$(measure loadgen "$conns" "c$conns.r$round")
            print_row "$conns" "$round" wrk "$w"
            print_row "$conns" "$round" loadgen "$l"
            printf '%s wrk %s\n%s loadgen %s\n' "$conns" "$w" "$conns" "$l" >>"$rows"
        done
    done
    echo
    summarise "$rows"
    if [[ -n $keep ]]; then mkdir -p "$keep" && cp "$work"/wrk.* "$work"/loadgen.* "$keep"/; fi
}

main "$@"
