#!/usr/bin/env python3
"""A stand-in for build/bin/loadgen: connects once to prove the server is up, then
writes a plausible serverbench.result/1 document (numbers derived from the model name
and connection count) to --out. Exit 1 when it cannot connect. A point takes
SERVERBENCH_FAKE_POINT_S seconds (default 0.2).

Capacity scenarios (capacity*) follow a scripted curve instead: the model serves up to
capacity_of(model) req/s; below it every arrival is served and p50/p99 rise as the rate nears
it, above it the rate achieved stays at the capacity and the queue (p50, p99) grows."""
import argparse
import json
import os
import socket
import sys
import time
import zlib

from fake_loadgen_curve import capacity_curve

ap = argparse.ArgumentParser()
for flag in ("--window-fifo", "--marker", "--host", "--protocol", "--mode", "--duration", "--warmup", "--timeout", "--cpus", "--out",
             "--model", "--scenario", "--server-flags", "--rate", "--message-bytes", "--interval"):
    ap.add_argument(flag)
for flag in ("--port", "--connections", "--threads", "--server-pid"):
    ap.add_argument(flag, type=int)
ap.add_argument("--quiet", action="store_true")
a = ap.parse_args()

try:
    socket.create_connection((a.host or "127.0.0.1", a.port), timeout=2).close()
    ok = True
except OSError:
    ok = False


def signal_window(command):
    """loadgen's --window-fifo PATH,ACK: the measured window's start and end, each acknowledged."""
    if not a.window_fifo:
        return
    path, _, ack = a.window_fifo.partition(",")
    with open(path, "w") as f:
        f.write(command + "\n")
    if ack:
        with open(ack) as f:
            f.readline()


signal_window("enable")
time.sleep(float(os.environ.get("SERVERBENCH_FAKE_POINT_S", "0.2")))  # a point takes time; a server that dies on connect is dead by the end
signal_window("disable")
base = 10000 + zlib.crc32((a.model or "").encode()) % 20000
# A model named held-*: every worker held, nothing served (a pool under idle clients).
rps = base * min(a.connections, 4) / 4 if ok and not (a.model or "").startswith("held") else 0.0
if a.rate:
    rps = float(a.rate)


p50, p99 = 40, 200
if ok and (a.scenario or "").startswith("capacity"):
    rps, p50, p99 = capacity_curve(a.model, float(a.rate) if a.rate else None, a.connections)
doc = {
    "schema": "serverbench.result/1", "model": a.model, "scenario": a.scenario,
    "config": {"connections": a.connections, "threads": a.threads, "duration_s": 1, "warmup_s": 0.2,
               "interval_ms": 100 if a.interval else 1000,
               "mode": a.mode or "keepalive", "pipeline": 1, "rate": float(a.rate) if a.rate else None,
               "protocol": a.protocol, "message_bytes": int(a.message_bytes or 13),
               "server_flags": (a.server_flags or "").split()},
    "env": {"kernel": "fake", "cpu_model": "fake", "cpus": 2, "server_cpus": "0",
            "loadgen_cpus": a.cpus, "started_at": "2026-01-01T00:00:00Z", "git_rev": "fake"},
    "connections": {"requested": a.connections, "established": a.connections if ok else 0},
    "totals": {"requests": int(rps), "duration_s": 1.0, "throughput_rps": rps,
               "bytes_sent": 0, "bytes_received": 0,
               "errors": {"connect": 0 if ok else a.connections, "read": 0, "write": 0,
                          "timeout": 0, "protocol": 0, "reset": 0}},
    "latency_us": {"min": 10, "mean": 50, "stdev": 5, "p50": p50, "p90": 80, "p99": p99,
                   "p99_9": 2 * p99, "max": 4 * p99, "histogram": [[100, 10]]},
    "timeseries": [{"t_s": (i + 1) / 10, "requests": int(rps / 10), "errors": 0, "p99_us": p99}
                   for i in range(10)] if a.interval else [],
    "server": {"cpu_user_s": 0.5, "cpu_sys_s": 0.3, "peak_rss_kib": 4096, "peak_threads": 1,
               "peak_processes": 1, "ctx_switches_voluntary": 10, "ctx_switches_involuntary": 1,
               "cpu_us_per_request": 800000.0 / rps if rps else None},
    "loadgen": {"cpu_user_s": 0.2, "cpu_sys_s": 0.2},
    "saturation": {"server_cpu_util": 0.8, "loadgen_cpu_util": 0.4, "bound": "server"},
    "valid": ok,
}
with open(a.out, "w") as f:
    json.dump(doc, f)
sys.exit(0 if ok else 1)
