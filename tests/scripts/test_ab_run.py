#!/usr/bin/env python3
"""An end-to-end A/B run with the real binaries and a known regression: side B's epoll burns
20 µs of CPU more per request (the test knob --inject-cpu-us, off by default), which at least
doubles its CPU per request. The comparison must call epoll `slower` on CPU per request, with
an interval above 1, and poll, identical on both sides, unchanged.

usage: test_ab_run.py BUILD_DIR (the build tree whose bin/ the test uses)."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.join(os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(ROOT, "build")), "bin")
INJECTED_US = 20
# The injected effect is 2x or more; a large minimum effect keeps the unchanged model's verdict
# from depending on how loaded the machine running the tests is.
MIN_EFFECT = 0.2


def side_b_bin(root):
    """A build folder like BIN's whose server-epoll carries the injected regression."""
    b = os.path.join(root, "build-b")
    subprocess.run([os.path.join(ROOT, "tools", "inject_regression.sh"), b, f"epoll={INJECTED_US}",
                    "--build-dir", os.path.dirname(BIN)], check=True, stdout=subprocess.DEVNULL)
    return b


class AbRunTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="serverbench-ab-")
        cls.run_dir = os.path.join(cls.tmp.name, "run")
        cls.proc = subprocess.run(
            [os.path.join(ROOT, "run_all.sh"), "--profile", "gate", "--no-build", "--no-microbench", "--no-plots",
             "--build-dir", side_b_bin(cls.tmp.name), "--baseline-bin", BIN, "--models", "epoll,poll",
             "--scenarios", "http-keepalive", "--trials", "4", "--out", cls.run_dir,
             "--min-effect", f"cpu_us_per_request={MIN_EFFECT}", "--gate"],
            capture_output=True, text=True, timeout=600)
        with open(os.path.join(cls.run_dir, "comparison.json")) as f:
            cls.doc = json.load(f)
        cls.rows = {(r["model"], r["metric"]): r for r in cls.doc["rows"]}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_injected_regression_is_slower(self):
        r = self.rows[("epoll", "cpu_us_per_request")]
        self.assertEqual(r["verdict"], "slower", r)
        self.assertGreater(r["ci_low"], 1.0, r)
        self.assertGreater(r["ratio"], 1.5, r)
        self.assertEqual((r["n_a"], r["n_b"]), (4, 4))

    def test_unchanged_model_is_not_flagged(self):
        for metric in ("cpu_us_per_request", "throughput_rps"):
            r = self.rows[("poll", metric)]
            self.assertIn(r["verdict"], ("no change", "not gated"), r)

    def test_gate_fails_on_the_confirmed_regression(self):
        self.assertEqual(self.proc.returncode, 1, self.proc.stderr[-3000:])
        self.assertIn("epoll http-keepalive c50 cpu_us_per_request slower", self.proc.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.run_dir, "confirm", "comparison.json")))

    def test_run_folder(self):
        for name in ("comparison.md", "comparison.svg", "comparison.png", "manifest.json"):
            self.assertTrue(os.path.getsize(os.path.join(self.run_dir, name)) > 0, name)
        with open(os.path.join(self.run_dir, "manifest.json")) as f:
            sides = {p.get("side") for p in json.load(f)["points"]}
        self.assertEqual(sides, {"A", "B"})


if __name__ == "__main__":
    if not os.access(os.path.join(BIN, "server-epoll"), os.X_OK):
        print(f"SKIP: {BIN}/server-epoll not built")
        sys.exit(77)
    unittest.main()
