#!/usr/bin/env python3
"""plots/compare.py: identical runs pass, a slowed model fails (exit 1), a slowed epoll
fails, noise below the threshold passes, missing points are reported but not fatal,
bad input exits 2."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURE = os.path.join(HERE, "fixtures", "run-a")
COMPARE = os.path.join(ROOT, "plots", "compare.py")


def scaled_copy(dest, factors):
    """Copy of the fixture with each model's req/s multiplied by factors[model]
    (a callable (scenario, label) -> factor, or a number)."""
    shutil.copytree(FIXTURE, dest)
    for root, _, files in os.walk(os.path.join(dest, "points")):
        for name in files:
            path = os.path.join(root, name)
            with open(path) as f:
                r = json.load(f)
            factor = factors.get(r["model"], 1.0)
            if callable(factor):
                factor = factor(r["scenario"], name)
            r["totals"]["throughput_rps"] *= factor
            with open(path, "w") as f:
                json.dump(r, f)
    return dest


def run_compare(*args):
    return subprocess.run([sys.executable, COMPARE, *args], capture_output=True, text=True, timeout=60)


class CompareTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def test_identical_runs_pass(self):
        proc = run_compare(FIXTURE, FIXTURE)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("OK:", proc.stdout)
        self.assertIn("thread-pool", proc.stdout)

    def test_slowed_model_fails(self):
        slow = scaled_copy(self.path("slow"), {"thread-pool": 0.5})
        proc = run_compare(FIXTURE, slow)
        self.assertEqual(proc.returncode, 1, proc.stdout)
        self.assertIn("FAIL", proc.stdout)
        self.assertIn("thread-pool", proc.stdout.split("FAIL")[1])
        self.assertNotIn("select", proc.stdout.split("FAIL")[1])

    def test_slowed_epoll_fails(self):
        slow = scaled_copy(self.path("slow-epoll"), {"epoll": 0.5})
        proc = run_compare(FIXTURE, slow)
        self.assertEqual(proc.returncode, 1, proc.stdout)
        self.assertIn("epoll", proc.stdout.split("FAIL")[1])

    def test_faster_machine_passes(self):
        """Everything 3x faster: ratios unchanged, so nothing to report."""
        fast = scaled_copy(self.path("fast"), {m: 3.0 for m in ("blocking", "thread-per-conn", "thread-pool",
                                                               "fork-per-conn", "select", "epoll")})
        self.assertEqual(run_compare(FIXTURE, fast).returncode, 0)

    def test_noise_below_threshold_passes(self):
        noisy = scaled_copy(self.path("noisy"), {"select": 0.8, "thread-per-conn": 1.2,
                                                 "fork-per-conn": lambda s, n: 0.4 if s == "cpu-bound" else 1.0})
        proc = run_compare(FIXTURE, noisy)
        self.assertEqual(proc.returncode, 0, proc.stdout)
        self.assertIn("<-- drop", proc.stdout)   # the one bad point is shown, not fatal

    def test_threshold_flag(self):
        slow = scaled_copy(self.path("slow"), {"select": 0.8})
        self.assertEqual(run_compare(FIXTURE, slow).returncode, 0)
        self.assertEqual(run_compare(FIXTURE, slow, "--threshold", "0.1").returncode, 1)

    def test_missing_points_reported_not_fatal(self):
        partial = self.path("partial")
        shutil.copytree(FIXTURE, partial)
        with open(os.path.join(partial, "manifest.json")) as f:
            manifest = json.load(f)
        manifest["points"] = [p for p in manifest["points"] if p["scenario"] != "io-wait"]
        manifest["points"] = [p for p in manifest["points"]
                              if not (p["model"] == "select" and p["scenario"] == "http-close")]
        with open(os.path.join(partial, "manifest.json"), "w") as f:
            json.dump(manifest, f)
        proc = run_compare(FIXTURE, partial)
        self.assertEqual(proc.returncode, 0, proc.stdout)
        self.assertIn("only in the base run", proc.stdout)

    def test_bad_input_exits_2(self):
        os.makedirs(self.path("empty"))
        self.assertEqual(run_compare(FIXTURE, self.path("empty")).returncode, 2)
        self.assertEqual(run_compare(FIXTURE, self.path("does-not-exist")).returncode, 2)
        with open(self.path("garbage.json"), "w") as f:
            f.write("{not json")
        os.makedirs(self.path("garbage"))
        shutil.copy(self.path("garbage.json"), os.path.join(self.path("garbage"), "manifest.json"))
        self.assertEqual(run_compare(self.path("garbage"), FIXTURE).returncode, 2)
        self.assertEqual(run_compare(FIXTURE).returncode, 2)
        self.assertEqual(run_compare(FIXTURE, FIXTURE, "--threshold", "7").returncode, 2)


class PrintTableTest(unittest.TestCase):
    def test_table_of_the_fixture(self):
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "plots", "print_table.py"), FIXTURE],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        lines = proc.stdout.splitlines()
        self.assertTrue(any(l.startswith("epoll ") and "61k" in l for l in lines), proc.stdout)
        self.assertTrue(any(l.startswith("io-uring ") and "unsupp." in l for l in lines))
        self.assertTrue(any(l.startswith("blocking ") and "n/a" in l for l in lines))
        self.assertIn("FAILED", proc.stdout)

    def test_bad_input_exits_2(self):
        proc = subprocess.run([sys.executable, os.path.join(ROOT, "plots", "print_table.py"), "/nonexistent"],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 2)


if __name__ == "__main__":
    unittest.main()
