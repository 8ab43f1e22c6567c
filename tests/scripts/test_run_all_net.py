#!/usr/bin/env python3
"""The driver's --net setups with the real binaries: Unix sockets, and (as root) a wan link with
10 ms of round-trip time through the link emulator, where physics bounds one keep-alive
connection at 100 requests per second with a median latency of at least 10 ms. Nothing of the
link (namespace, emulator) may be left afterwards.

usage: test_run_all_net.py BUILD_DIR"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(ROOT, "build"))


def run(out, *args):
    return subprocess.run([os.path.join(ROOT, "run_all.sh"), "--profile", "smoke", "--no-build", "--no-microbench",
                           "--no-plots", "--build-dir", BUILD, "--models", "epoll", "--out", out, *args],
                          capture_output=True, text=True, timeout=300)


def result(run_dir, rel):
    with open(os.path.join(run_dir, "points", rel)) as f:
        return json.load(f)


def namespaces():
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()


class NetTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="serverbench-net-")

    def tearDown(self):
        self.tmp.cleanup()

    def test_unix_sockets(self):
        out = os.path.join(self.tmp.name, "unix")
        proc = run(out, "--net", "unix", "--scenarios", "http-keepalive,idle-conns")
        self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
        r = result(out, "epoll/http-keepalive/c10-r1.json")
        self.assertEqual(r["env"]["network"], {"kind": "unix"})
        self.assertGreater(r["totals"]["throughput_rps"], 0)
        self.assertEqual(result(out, "epoll/idle-conns/idle100-c10-r1.json")["idle_connections"]["established"], 100)

    def test_wan_physics(self):
        if os.geteuid() != 0:
            self.skipTest("network namespaces need root")
        before = set(namespaces())
        out = os.path.join(self.tmp.name, "wan")
        proc = run(out, "--net", "wan", "--rtt-ms", "10", "--scenarios", "distance")
        self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
        r = result(out, "epoll/distance/c1-r1.json")
        net = r["env"]["network"]
        self.assertEqual((net["kind"], net["rtt_ms"], net["mtu"]), ("wan", 10.0, 1500))
        self.assertIn(net["emulator"], ("netem", "linkemu"))
        self.assertLessEqual(r["totals"]["throughput_rps"], 100.0)
        self.assertGreater(r["totals"]["throughput_rps"], 50.0)
        self.assertGreaterEqual(r["latency_us"]["p50"], 10_000)
        self.assertEqual(set(namespaces()) - before, set())

    def test_wan_flags_need_wan(self):
        proc = run(os.path.join(self.tmp.name, "x"), "--rtt-ms", "10")
        self.assertEqual(proc.returncode, 2)
        self.assertEqual(len(proc.stderr.strip().splitlines()), 1, proc.stderr)


if __name__ == "__main__":
    if not os.access(os.path.join(BUILD, "bin", "server-epoll"), os.X_OK):
        print(f"SKIP: {BUILD}/bin/server-epoll not built")
        sys.exit(77)
    unittest.main()
