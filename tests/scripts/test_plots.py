#!/usr/bin/env python3
"""plots/plot_results.py on the fixture run: every chart in PNG and SVG, and a summary.md
that shows statuses as such and ends with the verdict table. Exit 77 (skip) without
matplotlib."""
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURE = os.path.join(HERE, "fixtures", "run-a")
PLOT = os.path.join(ROOT, "plots", "plot_results.py")
CHARTS = ["throughput_vs_connections", "latency_percentiles", "server_cpu_per_request",
          "server_memory_threads", "idle_capacity", "microbench_readiness", "microbench_dispatch",
          "scenario_http-keepalive", "scenario_http-close", "scenario_cpu-bound", "scenario_io-wait",
          "scenario_idle-conns", "scenario_open-loop"]


class PlotResultsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = os.path.join(cls.tmp.name, "charts")
        cls.proc = subprocess.run([sys.executable, PLOT, FIXTURE, "--out", cls.out],
                                  capture_output=True, text=True, timeout=120)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_exits_zero(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)

    def test_every_chart_in_png_and_svg(self):
        for chart in CHARTS:
            for ext in ("png", "svg"):
                path = os.path.join(self.out, f"{chart}.{ext}")
                self.assertTrue(os.path.isfile(path), f"missing {chart}.{ext}")
                self.assertGreater(os.path.getsize(path), 1000, f"{chart}.{ext} is nearly empty")
        with open(os.path.join(self.out, "throughput_vs_connections.png"), "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_summary_tables(self):
        with open(os.path.join(self.out, "summary.md")) as f:
            text = f.read()
        for needle in ("| model |", "n/a", "unsupported", "failed", "61,200", "## Verdicts",
                       "thread spawn + join", "epoll_wait", "**holds**"):
            self.assertIn(needle, text)
        # every model of the manifest has a row in the overview
        overview = text.split("## Overview")[1].split("\n## ")[0]
        for model in ("blocking", "thread-per-conn", "thread-pool", "fork-per-conn", "select", "epoll", "io-uring"):
            self.assertIn(f"| {model} |", overview)
        verdict_rows = [l for l in text.split("## Verdicts")[1].splitlines() if l.startswith("| ") and "claim" not in l]
        self.assertEqual(len(verdict_rows), 10)

    def test_bad_input_exits_2(self):
        with tempfile.TemporaryDirectory() as empty:
            proc = subprocess.run([sys.executable, PLOT, empty, "--out", os.path.join(empty, "o")],
                                  capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("manifest.json", proc.stderr)


if __name__ == "__main__":
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("SKIP: no matplotlib in this python (apt-get install -y python3-matplotlib)")
        sys.exit(77)
    unittest.main()
