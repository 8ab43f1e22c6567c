#!/usr/bin/env bash
# What batching changes for a loop under load: server-epoll over UDP at 50 flows with a 20 µs
# handler (--cpu-us 20), so that datagrams arrive faster than the loop answers them one by one,
# with --udp-batch 1 (recvfrom, sendto) and 32 (recvmmsg, sendmmsg). perf counts the server's
# system calls over its whole life; per datagram it answered, the loop's I/O calls, with the
# handler's own (reads of the thread's CPU clock, which --cpu-us spins on) counted apart.
# usage: tools/udp_batching.sh [--build-dir build]   (as root: perf's tracepoints; CPUs 0 and 1)
set -euo pipefail
build_dir=build
[[ ${1:-} == --build-dir ]] && build_dir=$2
[[ ${1:-} == -h || ${1:-} == --help ]] && { sed -n '2,7p' "$0" | cut -c3-; exit 0; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for batch in 1 32; do
  perf stat -x, -e raw_syscalls:sys_enter -e syscalls:sys_enter_recvmmsg -e syscalls:sys_enter_sendmmsg \
      -e syscalls:sys_enter_sendto -e syscalls:sys_enter_recvfrom -e syscalls:sys_enter_epoll_wait \
      -e syscalls:sys_enter_clock_gettime -o "$out/perf-$batch.csv" -- \
      taskset -c 0 "$build_dir/bin/server-epoll" --transport udp --port 0 --cpu-us 20 --udp-batch $batch > "$out/server.out" 2> "$out/server.err" &
  perf_pid=$!
  for _ in $(seq 50); do grep -q port= "$out/server.out" 2>/dev/null && break; sleep 0.1; done
  port=$(grep -o 'port=[0-9]*' "$out/server.out" | cut -d= -f2); pid=$(grep -o 'pid=[0-9]*' "$out/server.out" | cut -d= -f2)
  taskset -c 1 "$build_dir/bin/loadgen" --transport udp --port "$port" --connections 50 --duration 2s --warmup 200ms \
      --server-pid "$pid" --quiet --out "$out/loadgen-$batch.json"
  kill -TERM "$pid"; wait "$perf_pid" || true
  answered=$(grep -o 'answered [0-9]*' "$out/server.err" | cut -d' ' -f2)
  python3 - "$batch" "$answered" "$out" <<'PY'
import csv, json, sys
batch, answered, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with open(f"{out}/perf-{batch}.csv") as f:
    counts = {row[2].split(":")[-1].replace("sys_enter_", ""): int(row[0])
              for row in csv.reader(f) if len(row) > 2 and row[0].isdigit()}
io = counts["sys_enter"] - counts["clock_gettime"]
with open(f"{out}/loadgen-{batch}.json") as f:
    r = json.load(f)
print(f"--udp-batch {batch}: {answered} answered, {io / answered:.3f} I/O calls per datagram "
      + ", ".join(f"{k} {v / answered:.3f}" for k, v in counts.items() if k not in ("sys_enter", "clock_gettime"))
      + f"; clock reads {counts['clock_gettime'] / answered:.1f}; {r['totals']['throughput_rps']:.0f} req/s, "
      f"server CPU {r['server']['cpu_us_per_request']:.2f} us/datagram")
PY
done
