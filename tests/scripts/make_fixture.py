#!/usr/bin/env python3
"""Writes the fixture run tests/scripts/fixtures/run-a/ (manifest, point JSONs,
microbench.json). The numbers are handcrafted to look like a 2-core quick run and to
exercise every status (ok, failed, not-applicable, unsupported), repeats (medians),
idle-connection fields and the microbenchmark families. Re-run after changing it;
the tests read the committed output."""
import json
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(HERE, "fixtures", "run-a")
MODELS = ["blocking", "thread-per-conn", "thread-pool", "fork-per-conn", "select", "epoll", "io-uring"]
# model -> (req/s, p99 µs, server CPU µs/req, peak RSS KiB, threads, processes
#           [, errors, established, idle established, idle closed by server])
DATA = {
    ("http-keepalive", "c1"): {
        "blocking": (20000, 90, 40, 3000, 1, 1), "thread-per-conn": (18000, 110, 45, 3500, 2, 1),
        "thread-pool": (18000, 110, 46, 9000, 65, 1), "fork-per-conn": (17000, 120, 48, 3000, 1, 2),
        "select": (19000, 95, 42, 3000, 1, 1), "epoll": (20000, 90, 40, 3000, 1, 1)},
    ("http-keepalive", "c50"): {
        "blocking": (20000, 150, 40, 3000, 1, 1, 4900, 1), "thread-per-conn": (45000, 3000, 20, 9000, 51, 1),
        "thread-pool": (48000, 2800, 19, 9000, 65, 1), "fork-per-conn": (40000, 3500, 23, 40000, 1, 51),
        "select": (50000, 2500, 17, 3000, 1, 1), "epoll": (60000, 2000, 15, 3000, 1, 1)},
    ("http-close", "c50"): {
        "thread-per-conn": (8000, 9000, 60, 9000, 51, 1), "thread-pool": (10000, 8000, 45, 9000, 65, 1),
        "fork-per-conn": (2000, 40000, 300, 40000, 1, 51), "select": (12000, 6000, 35, 3000, 1, 1),
        "epoll": (13000, 5500, 33, 3000, 1, 1)},
    ("io-wait", "c50"): {
        "thread-per-conn": (40000, 1800, 22, 9000, 51, 1), "thread-pool": (35000, 2000, 21, 9000, 65, 1),
        "fork-per-conn": (30000, 2500, 30, 40000, 1, 51), "select": (950, 52000, 30, 3000, 1, 1),
        "epoll": (960, 52000, 29, 3000, 1, 1)},
    ("cpu-bound", "c50"): {
        "thread-per-conn": (14500, 6000, 130, 9000, 51, 1), "thread-pool": (15000, 5800, 128, 9000, 65, 1),
        "fork-per-conn": (14000, 6500, 135, 40000, 1, 51), "select": (9000, 6000, 110, 3000, 1, 1),
        "epoll": (9200, 5900, 108, 3000, 1, 1)},
    ("idle-conns", "idle1000-c50"): {
        "thread-per-conn": (40000, 3200, 22, 82000, 1051, 1, 0, 50, 1000, 0),
        "thread-pool": (0, 0, 0, 9500, 65, 1, 50, 50, 1000, 0),
        "fork-per-conn": (30000, 4000, 30, 900000, 1, 1051, 0, 50, 1000, 0),
        "select": (0, 0, 0, 3000, 1, 1, 50, 0, 1000, 50),
        "epoll": (55000, 2100, 16, 12000, 1, 1, 0, 50, 1000, 0)},
    ("open-loop", "c50"): {
        "thread-per-conn": (22500, 400, 25, 9000, 51, 1), "thread-pool": (24000, 380, 24, 9000, 65, 1),
        "fork-per-conn": (20000, 500, 27, 40000, 1, 51), "select": (25000, 300, 20, 3000, 1, 1),
        "epoll": (30000, 250, 18, 3000, 1, 1)},
}


def result(model, scenario, conns, idle, vals):
    rps, p99, cpu, rss, threads, procs = vals[:6]
    errors, established, idle_est, idle_closed = (list(vals[6:]) + [0, conns, idle, 0][len(vals) - 6:])[:4]
    r = {
        "schema": "serverbench.result/1", "model": model, "scenario": scenario,
        "config": {"connections": conns, "threads": 1, "duration_s": 1, "warmup_s": 0.25,
                   "mode": "close" if scenario == "http-close" else "keepalive", "pipeline": 1,
                   "rate": rps if scenario == "open-loop" else None, "protocol": "http", "message_bytes": 13,
                   "server_flags": ["--protocol", "http"]},
        "env": {"kernel": "6.1.0", "cpu_model": "Fixture CPU", "cpus": 2, "server_cpus": "0", "loadgen_cpus": "1",
                "started_at": "2026-01-01T00:00:00Z", "git_rev": "fixture"},
        "connections": {"requested": conns, "established": established},
        "totals": {"requests": int(rps), "duration_s": 1.0, "throughput_rps": float(rps), "bytes_sent": 0,
                   "bytes_received": 0, "errors": {"connect": 0, "read": 0, "write": 0, "timeout": errors,
                                                   "protocol": 0, "reset": 0}},
        "latency_us": {"min": 10, "mean": p99 / 3, "stdev": p99 / 5, "p50": p99 / 4, "p90": p99 / 2, "p99": p99,
                       "p99_9": p99 * 2, "max": p99 * 3, "histogram": [[p99, int(rps)]]},
        "timeseries": [{"t_s": 1, "requests": int(rps), "errors": errors, "p99_us": p99}],
        "server": {"cpu_user_s": cpu * rps / 2e6, "cpu_sys_s": cpu * rps / 2e6, "peak_rss_kib": rss,
                   "peak_threads": threads, "peak_processes": procs,
                   "ctx_switches_voluntary": int(rps * (threads + procs - 1) / 10), "ctx_switches_involuntary": 10,
                   "cpu_us_per_request": float(cpu) if rps else None},
        "loadgen": {"cpu_user_s": 0.3, "cpu_sys_s": 0.2, "cpu_us_per_request": 5.0},
        "saturation": {"server_cpu_util": 0.9, "loadgen_cpu_util": 0.5, "bound": "server"},
        "valid": errors == 0,
    }
    if scenario == "open-loop":
        r["latency_uncorrected_us"] = {k: v / 2 for k, v in r["latency_us"].items() if k != "histogram"}
        r["open_loop"] = {"target_rps": rps, "achieved_rps": rps, "late_sends": 0, "valid": True}
    if idle:
        r["idle_connections"] = {"requested": idle, "established": idle_est, "closed_by_server": idle_closed}
    return r


def main():
    shutil.rmtree(RUN, ignore_errors=True)
    points = []
    for (scenario, label), per_model in DATA.items():
        conns = int(label.rsplit("c", 1)[1])
        idle = 1000 if scenario == "idle-conns" else 0
        repeats = 2 if (scenario, label) == ("http-keepalive", "c50") else 1
        for model in MODELS:
            for rep in range(1, repeats + 1):
                e = {"model": model, "scenario": scenario, "point": label, "connections": conns, "repeat": rep,
                     "file": None, "reason": None, "idle_connections": idle, "server_cpus": "0", "loadgen_cpus": "1"}
                if model == "io-uring":
                    e.update(status="unsupported", reason="server-io-uring: io_uring unsupported by this kernel")
                elif model not in per_model:
                    e.update(status="not-applicable", server_cpus=None, loadgen_cpus=None,
                             reason="the blocking model serves one client at a time")
                else:
                    vals = per_model[model]
                    if rep == 2:
                        vals = (vals[0] * 1.04,) + vals[1:]
                    rel = f"points/{model}/{scenario}/{label}-r{rep}.json"
                    os.makedirs(os.path.dirname(os.path.join(RUN, rel)), exist_ok=True)
                    with open(os.path.join(RUN, rel), "w") as f:
                        json.dump(result(model, scenario, conns, idle, vals), f, indent=1)
                    e.update(status="ok", file=rel)
                points.append(e)
    points.append({"model": "fork-per-conn", "scenario": "http-keepalive", "point": "c200", "connections": 200,
                   "repeat": 1, "status": "failed", "file": None, "reason": "server died mid-point (exit code 139)",
                   "idle_connections": 0, "server_cpus": "0", "loadgen_cpus": "1"})
    manifest = {
        "schema": "serverbench.manifest/1", "run_id": "fixture-run-a", "git_rev": "fixture", "profile": "quick",
        "repeat": 2, "warmup": "250ms", "duration": "1s", "started_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:03:00Z", "interrupted": False,
        "machine": {"uname": "Linux fixture", "kernel": "6.1.0", "cpu_model": "Fixture CPU", "cpus": 2},
        "models": MODELS, "scenarios": ["http-keepalive", "http-close", "cpu-bound", "io-wait", "idle-conns", "open-loop"],
        "microbench": "microbench.json", "points": points,
    }
    with open(os.path.join(RUN, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    benchmarks = []

    def bench(name, ns):
        benchmarks.append({"name": name, "run_name": name, "run_type": "iteration", "iterations": 1000,
                           "real_time": ns, "cpu_time": ns, "time_unit": "ns"})
    for name, ns in (("BM_ThreadSpawnJoin", 25000), ("BM_ThreadPoolHandoff", 4000), ("BM_ForkWaitpid", 120000),
                     ("BM_AcceptClose", 9000), ("BM_ContextSwitchThreads", 2500), ("BM_ContextSwitchProcesses", 3000),
                     ("BM_HttpParseSingle", 300), ("BM_EchoPath", 200), ("BM_HistogramRecord", 5),
                     ("BM_HistogramMerge", 2000)):
        bench(name, ns)
    for n in (8, 64, 512, 1000):
        bench(f"BM_SelectReady/{n}", 300 + n * 6)
    for n in (8, 64, 512, 1000, 10000):
        bench(f"BM_PollReady/{n}", 250 + n * 4)
        bench(f"BM_EpollWaitReady/{n}", 400 + n * 0.001)
    with open(os.path.join(RUN, "microbench.json"), "w") as f:
        json.dump({"context": {"num_cpus": 2}, "benchmarks": benchmarks}, f, indent=1)


if __name__ == "__main__":
    main()
