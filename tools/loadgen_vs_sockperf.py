#!/usr/bin/env python3
"""loadgen beside sockperf's own client, against the same `sockperf server`, the way
tools/loadgen_vs_wrk.sh measures loadgen beside wrk over HTTP.

usage: tools/loadgen_vs_sockperf.py [--rounds 3] [--duration 3] [--mps 20000] [--size 64]
                                    [--modes recvfrom,epoll] [--build-dir build]
                                    [--server-cpu 0] [--client-cpu 1]

For each of sockperf server's loops (--modes: its recvfrom loop, and its select, poll or epoll
loop over a feed file), pinned to --server-cpu, rounds alternate the two clients, each pinned to
--client-cpu:

* ping-pong: `sockperf ping-pong --full-rtt` against loadgen's closed loop at one flow
  (`--transport udp --udp-format sockperf --connections 1`): p50 and mean round trip;
* under load: `sockperf under-load --reply-every 1 --mps R --full-rtt` against loadgen's open
  loop at the same rate: p50 (loadgen's from the intended send time, and from the actual send, as
  sockperf times it), and the share of datagrams lost (for loadgen, with what the kernel counted
  dropped on the server's and loadgen's sockets).

Prints each round and the medians. Needs sockperf (apt-get install -y sockperf) and taskset.
"""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

P50_RE = re.compile(r"percentile 50\.000 =\s+([\d.]+)")
MEAN_RE = re.compile(r"Summary: (?:Round trip|Latency) is ([\d.]+) usec")
SENT_RE = re.compile(r"SentMessages=(\d+); ReceivedMessages=(\d+)")
DROPPED_RE = re.compile(r"# dropped messages = (\d+)")


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(port):
    """Whether a sockperf server on port answers a ping in its own format."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.1)
        s.connect(("127.0.0.1", port))
        s.send(struct.pack("!QHI", 0, 3, 64) + bytes(50))
        try:
            return len(s.recv(100)) == 64
        except OSError:
            return False


class SockperfServer:
    """sockperf server with one of its loops, pinned; stopped on exit."""

    def __init__(self, mode, cpu, folder):
        self.port = free_udp_port()
        argv = ["taskset", "-c", str(cpu), "sockperf", "server", "-i", "127.0.0.1", "-p", str(self.port)]
        if mode != "recvfrom":
            feed = os.path.join(folder, f"feed-{mode}")
            with open(feed, "w") as f:
                f.write(f"U:127.0.0.1:{self.port}\n")
            argv = ["taskset", "-c", str(cpu), "sockperf", "server", "-f", feed, "-F", mode]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __enter__(self):
        deadline = time.monotonic() + 5
        while not answers(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.__exit__()
                raise SystemExit("loadgen_vs_sockperf.py: sockperf server did not answer")
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def sockperf_client(args, port, under_load):
    mode = ["under-load", "--reply-every", "1", "--mps", str(args.mps)] if under_load else ["ping-pong"]
    out = subprocess.run(["taskset", "-c", str(args.client_cpu), "sockperf", *mode, "-i", "127.0.0.1",
                          "-p", str(port), "-t", str(args.duration), "-m", str(args.size), "--full-rtt"],
                         capture_output=True, text=True, timeout=args.duration + 30).stdout
    p50, mean = P50_RE.search(out), MEAN_RE.search(out)
    sent = SENT_RE.search(out)
    dropped = DROPPED_RE.search(out)
    loss = None
    if sent and int(sent.group(1)):
        lost = int(dropped.group(1)) if dropped else int(sent.group(1)) - int(sent.group(2))
        loss = lost / int(sent.group(1))
    return {"p50_us": float(p50.group(1)) if p50 else None, "mean_us": float(mean.group(1)) if mean else None,
            "loss": loss}


def loadgen_client(args, port, under_load, folder):
    out = os.path.join(folder, "loadgen.json")
    rate = ["--rate", str(args.mps)] if under_load else []
    subprocess.run(["taskset", "-c", str(args.client_cpu), os.path.join(args.build_dir, "bin", "loadgen"),
                    "--transport", "udp", "--udp-format", "sockperf", "--port", str(port), "--connections", "1",
                    "--message-bytes", str(args.size), "--duration", f"{args.duration}s", "--warmup", "400ms",
                    *rate, "--quiet", "--out", out], check=False, timeout=args.duration + 30)
    with open(out) as f:
        r = json.load(f)
    d = r.get("datagrams") or {}
    kernel = (d.get("kernel_drops") or {}).get("server_namespace") or {}
    # sockperf times a reply from the moment it sent the request: loadgen's uncorrected latency.
    sent_from = r.get("latency_uncorrected_us") or r["latency_us"]
    return {"p50_us": r["latency_us"]["p50"], "mean_us": r["latency_us"]["mean"], "loss": d.get("loss_ratio"),
            "p50_sent_us": sent_from["p50"],
            "lost": d.get("lost"), "dropped": sum(kernel.get(k, 0) for k in ("server_socket_drops", "loadgen_socket_drops"))}


def median(rows, key):
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def text(v, fmt):
    return "-" if v is None else format(v, fmt)


def measure(args, mode, folder):
    with SockperfServer(mode, args.server_cpu, folder) as server:
        for under_load in (False, True):
            what = f"under load at {args.mps} msg/s" if under_load else "ping-pong, one flow"
            rows = {"sockperf": [], "loadgen": []}
            for rnd in range(args.rounds):
                order = ("sockperf", "loadgen") if rnd % 2 == 0 else ("loadgen", "sockperf")
                for client in order:
                    row = (sockperf_client(args, server.port, under_load) if client == "sockperf"
                           else loadgen_client(args, server.port, under_load, folder))
                    rows[client].append(row)
                    sent = f" (from the send {text(row['p50_sent_us'], '.1f')})" if under_load and "p50_sent_us" in row else ""
                    print(f"  {mode:<8} {what:<28} r{rnd + 1} {client:<8} p50 {text(row['p50_us'], '7.1f')} µs{sent}  "
                          f"mean {text(row['mean_us'], '7.1f')} µs  loss {text(row['loss'], '.4%')}"
                          + (f" ({row['lost']} lost, the sockets' kernel drops {row['dropped']})" if row.get("lost") else ""),
                          flush=True)
            s, g = ({k: median(rows[c], k) for k in ("p50_us", "p50_sent_us", "mean_us", "loss")}
                    for c in ("sockperf", "loadgen"))
            ratio = g["p50_us"] / s["p50_us"] if s["p50_us"] and g["p50_us"] else None
            print(f"== {mode:<8} {what:<28} medians: sockperf p50 {text(s['p50_us'], '.1f')} µs, loadgen "
                  f"{text(g['p50_us'], '.1f')} µs (loadgen/sockperf {text(ratio, '.3f')}"
                  + (f"; from the send {text(g['p50_sent_us'], '.1f')} µs" if under_load else "") + "); mean "
                  f"{text(s['mean_us'], '.1f')} / {text(g['mean_us'], '.1f')} µs; loss {text(s['loss'], '.4%')} / "
                  f"{text(g['loss'], '.4%')}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=3, help="seconds per client run")
    parser.add_argument("--mps", type=int, default=20000, help="the under-load rate, datagrams/s")
    parser.add_argument("--size", type=int, default=64, help="datagram bytes (16..65507)")
    parser.add_argument("--modes", default="recvfrom,epoll", help="sockperf server loops: recvfrom,select,poll,epoll")
    parser.add_argument("--build-dir", default="build")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    args = parser.parse_args()
    modes = args.modes.split(",")
    if any(m not in ("recvfrom", "select", "poll", "epoll") for m in modes) or not 16 <= args.size <= 65507:
        parser.error("--modes takes recvfrom, select, poll, epoll; --size 16..65507")
    for tool in ("sockperf", "taskset"):
        if not shutil.which(tool):
            sys.exit(f"loadgen_vs_sockperf.py: {tool} not found (apt-get install -y sockperf)")
    with tempfile.TemporaryDirectory() as folder:
        for mode in modes:
            measure(args, mode, folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
