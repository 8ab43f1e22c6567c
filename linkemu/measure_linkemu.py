#!/usr/bin/python3
"""Measures linkemu on this machine (the figures of docs/networks.md), as root:

  latency: one keep-alive echo connection, 1-byte messages, through a plain veth pair and through
           linkemu with no configured delay; the difference of the round trips is what the
           emulator adds (two traversals per round trip).
  rate:    http keep-alive with N connections through linkemu at --rtt-ms (default 0); frames/s
           from linkemu's counters, its CPU, its late departures, next to the same load on veth.

Server pinned to CPU 0, loadgen to CPU 1, linkemu unpinned (SCHED_FIFO). Usage:
  /usr/bin/python3 linkemu/measure_linkemu.py [--build build] [--duration 3] [--connections 1,10,50,200]
                                            [--rtt-ms 0] [--repeat 3]
"""

import argparse
import json
import re
import selectors
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from serverbench import namespaces  # noqa: E402


def start_server(link: namespaces.Link, binaries: Path, protocol: str) -> tuple[subprocess.Popen, int]:
    argv = link.server_cmd(["taskset", "-c", "0", str(binaries / "server-epoll"), "--host", link.server_addr,
                            "--port", "0", "--protocol", protocol])
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    with selectors.DefaultSelector() as selector:
        selector.register(server.stdout, selectors.EVENT_READ)
        line = server.stdout.readline() if selector.select(10) else ""
    match = re.search(r"port=(\d+)", line)
    if not match:
        server.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return server, int(match.group(1))


def run_loadgen(link: namespaces.Link, binaries: Path, port: int, args: list[str]) -> dict:
    argv = link.client_cmd([str(binaries / "loadgen"), "--host", link.server_addr, "--port", str(port),
                            "--cpus", "1", "--quiet", *args])
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    return json.loads(result.stdout)


def point(link: namespaces.Link, binaries: Path, protocol: str, args: list[str]) -> tuple[dict, dict]:
    """One loadgen run through link; returns its result and linkemu's counters over the run."""
    server, port = start_server(link, binaries, protocol)
    try:
        before = link.emulator_stats()
        result = run_loadgen(link, binaries, port, args)
        after = link.emulator_stats()
    finally:
        server.terminate()
        server.wait(timeout=5)
        server.stdout.close()
    window = namespaces.emulator_window(before, after) if link.emulator == "linkemu" else {}
    if window:
        late_sum = sum(after[d]["mean_late_us"] * after[d]["forwarded"] - before[d]["mean_late_us"] *
                       before[d]["forwarded"] for d in ("a_to_b", "b_to_a"))
        window["mean_late_us"] = late_sum / max(window["forwarded"], 1)
    return result, window


def measure_latency(binaries: Path, duration: int, repeat: int, extra: list[str]) -> None:
    """veth and linkemu runs alternate (ABAB...), so a change in the machine's load hits both."""
    print("latency: 1 connection, echo of 1 byte, round trip in us (median of runs: min / p50 / p99)")
    args = ["--protocol", "echo", "--message-bytes", "1", "--connections", "1", "--duration", f"{duration}s"]
    setups = {"veth": {}, "linkemu": {"rtt_ms": 0, "emulator": "linkemu", "linkemu_args": extra}}
    runs: dict[str, list] = {name: [] for name in setups}
    for _ in range(repeat):
        for name, kwargs in setups.items():
            with namespaces.Link("wan" if kwargs else "veth", **kwargs) as link:
                result, window = point(link, binaries, "echo", args)
            latency = result["latency_us"]
            runs[name].append((latency["min"], latency["p50"], latency["p99"], window.get("mean_late_us", 0.0)))
    for name, rows in runs.items():
        med = [statistics.median(column) for column in zip(*rows)]
        print(f"  {name:8} min {med[0]:7.1f}  p50 {med[1]:7.1f}  p99 {med[2]:8.1f}  "
              f"linkemu mean lateness {med[3]:.1f} us  (p50 of each run: {[round(r[1]) for r in rows]})")
    added = [e[1] - v[1] for v, e in zip(runs["veth"], runs["linkemu"])]
    print(f"  added p50 round trip, per pair of runs: {[round(a, 1) for a in added]} us, "
          f"median {statistics.median(added):.1f} us")


def measure_rate(binaries: Path, duration: int, connections: list[int], rtt_ms: float, extra: list[str]) -> None:
    print(f"rate: http keep-alive, linkemu at rtt {rtt_ms} ms vs veth; frames/s both directions")
    for n in connections:
        args = ["--connections", str(n), "--duration", f"{duration}s"]
        with namespaces.Link("veth") as link:
            plain, _ = point(link, binaries, "http", args)
        with namespaces.Link("wan", rtt_ms=rtt_ms, emulator="linkemu", linkemu_args=extra) as link:
            result, w = point(link, binaries, "http", args)
        print(f"  {n:4} conns  veth {plain['totals']['throughput_rps']:8.0f} req/s  "
              f"linkemu {result['totals']['throughput_rps']:8.0f} req/s p50 {result['latency_us']['p50']:8.0f} us  "
              f"{w['packets_per_s']:8.0f} frames/s  cpu {w['cpu_util']:.2f}  late {w['late']:.0f} "
              f"({100 * w['late'] / max(w['forwarded'], 1):.1f}%) mean lateness {w['mean_late_us']:.0f} us  "
              f"drops q/sock {w['dropped_queue']:.0f}/{w['dropped_socket']:.0f}  bound {w['bound']}")


# Sends UDP datagrams of 64 bytes to a port nobody listens on, at a paced rate, for a duration.
FLOOD = """
import socket, sys, time
addr, rate, duration = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload, target = bytes(64), (addr, 9)
start = time.perf_counter()
sent = 0
while (now := time.perf_counter()) - start < duration:
    due = int((now - start) * rate) if rate > 0 else sent + 64
    while sent < due:
        sock.sendto(payload, target)
        sent += 1
    if rate > 0:
        time.sleep(0.0005)  # a sender that sleeps between bursts, so the CPU it shares is not spun away
print(sent / duration)
"""


def measure_flood(duration: int, rates: list[float], rtt_ms: float, extra: list[str]) -> None:
    """One-way UDP frames from the client namespace (sender pinned to CPU 1) into the server
    namespace, where nothing listens: the cheapest receiver, so the emulator is what is measured."""
    print(f"flood: 64-byte UDP datagrams client -> server through linkemu at rtt {rtt_ms} ms "
          "(offered 0 = as fast as the sender can)")
    for rate in rates:
        with namespaces.Link("wan", rtt_ms=rtt_ms, emulator="linkemu", linkemu_args=extra) as link:
            before = link.emulator_stats()
            out = subprocess.run(link.client_cmd(["taskset", "-c", "1", sys.executable, "-c", FLOOD,
                                                  link.server_addr, str(rate), str(duration)]),
                                 capture_output=True, text=True, timeout=duration + 30).stdout
            after = link.emulator_stats()
        w = namespaces.emulator_window(before, after)
        received = after["b_to_a"]["received"] - before["b_to_a"]["received"]
        forwarded = after["b_to_a"]["forwarded"] - before["b_to_a"]["forwarded"]
        late = after["b_to_a"]["late"] - before["b_to_a"]["late"]
        print(f"  offered {float(out):8.0f}/s  received {received}  forwarded {forwarded}  "
              f"drops queue/socket {w['dropped_queue']:.0f}/{w['dropped_socket']:.0f}  "
              f"late {100 * late / max(received, 1):5.1f}%  max lateness {after['b_to_a']['max_late_us']:.0f} us  "
              f"cpu {w['cpu_util']:.2f} ({1e6 * w['cpu_util'] / max(float(out), 1):.1f} us/frame)  bound {w['bound']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build")
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", default="1,10,50,200")
    parser.add_argument("--rtt-ms", type=float, default=0.0)
    parser.add_argument("--only", choices=("latency", "rate", "flood"))
    parser.add_argument("--flood-rates", default="10000,30000,60000,100000,0")
    parser.add_argument("--linkemu-args", default="", help="more linkemu flags, e.g. '--spin-us 30'")
    options = parser.parse_args()
    try:
        namespaces.require_net_admin()
    except namespaces.NamespaceError as error:
        print(error, file=sys.stderr)
        sys.exit(2)
    binaries = Path(options.build) / "bin"
    namespaces.cleanup_leftovers()
    if options.only == "flood":
        measure_flood(options.duration, [float(r) for r in options.flood_rates.split(",")], options.rtt_ms,
                      options.linkemu_args.split())
        return
    if options.only != "rate":
        measure_latency(binaries, options.duration, options.repeat, options.linkemu_args.split())
    if options.only != "latency":
        measure_rate(binaries, options.duration, [int(n) for n in options.connections.split(",")], options.rtt_ms,
                     options.linkemu_args.split())


if __name__ == "__main__":
    main()
