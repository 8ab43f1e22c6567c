#!/usr/bin/env python3
"""run_all.sh driven with stand-in binaries (fakes/): no build needed, so it always runs.

Checks the run folder layout, the manifest, statuses (ok, failed for a server that
crashes at start or dies mid-point, unsupported for exit 2 + "unsupported", not-applicable
for the blocking model), the idle-connection fields, the exit code, and that nothing
the script started is left running."""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "fakes"))
from fake_build import make_fake_build, processes_mentioning  # noqa: E402


class RunAllWithFakesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="serverbench-fakes-")
        make_fake_build(cls.tmp.name, {"epoll": "ok", "blocking": "ok", "crashy": "crash",
                                       "io-uring": "unsupported", "dying": "die-mid-point",
                                       "held-pool": "ok"})
        cls.out = os.path.join(cls.tmp.name, "run")
        started = time.monotonic()
        cls.proc = subprocess.run(
            [os.path.join(ROOT, "run_all.sh"), "--profile", "smoke", "--no-build", "--no-plots",
             "--build-dir", os.path.join(cls.tmp.name, "build"), "--out", cls.out,
             "--scenarios", "http-keepalive,idle-conns"],
            capture_output=True, text=True, timeout=240)
        cls.wall = time.monotonic() - started
        cls.run_dir = cls.out
        with open(os.path.join(cls.run_dir, "manifest.json")) as f:
            cls.manifest = json.load(f)
        cls.timed = [p for p in cls.manifest["points"] if p.get("kind") != "count"]
        cls.counting = [p for p in cls.manifest["points"] if p.get("kind") == "count"]
        cls.points = {(p["model"], p["scenario"], p["point"]): p for p in cls.timed}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_exit_code_says_a_point_failed(self):
        self.assertEqual(self.proc.returncode, 1, self.proc.stderr)
        self.assertIn("failed point", self.proc.stderr)

    def test_manifest(self):
        m = self.manifest
        self.assertEqual(m["schema"], "serverbench.manifest/2")
        self.assertEqual(m["profile"], "smoke")
        self.assertEqual(m["network"]["kind"], "loopback")
        self.assertNotIn("net", m)
        for key in ("git_rev", "started_at", "finished_at"):
            self.assertTrue(m[key], key)
        for key in ("uname", "cpu_model", "cpus"):
            self.assertTrue(m["machine"][key], key)
        self.assertEqual(sorted(m["models"]), ["blocking", "crashy", "dying", "epoll", "held-pool", "io-uring"])
        # 6 models x (2 keep-alive points + 1 idle point), and a counting trial of each applicable one
        self.assertEqual(len(self.timed), 18)
        self.assertEqual(len(self.counting), 17)

    def test_statuses(self):
        p = self.points
        self.assertEqual(p[("epoll", "http-keepalive", "c1")]["status"], "ok")
        self.assertEqual(p[("epoll", "idle-conns", "idle100-c10")]["status"], "ok")
        self.assertEqual(p[("crashy", "http-keepalive", "c1")]["status"], "failed")
        self.assertIn("before its readiness line", p[("crashy", "http-keepalive", "c1")]["reason"])
        self.assertEqual(p[("io-uring", "http-keepalive", "c10")]["status"], "unsupported")
        self.assertEqual(p[("blocking", "idle-conns", "idle100-c10")]["status"], "not-applicable")
        self.assertEqual(p[("blocking", "http-keepalive", "c1")]["status"], "ok")
        self.assertEqual(p[("dying", "idle-conns", "idle100-c10")]["status"], "failed")
        self.assertIn("died mid-point", p[("dying", "idle-conns", "idle100-c10")]["reason"])

    def test_point_files(self):
        for point in self.manifest["points"]:
            if point["status"] == "ok":
                path = os.path.join(self.run_dir, point["file"])
                suffix = "-count-r1.json" if point.get("kind") == "count" else "-r1.json"
                self.assertTrue(path.endswith(f"points/{point['model']}/{point['scenario']}/{point['point']}{suffix}"))
                with open(path) as f:
                    self.assertEqual(json.load(f)["schema"], "serverbench.result/1")
            else:
                self.assertTrue(point["reason"], point)
        self.assertTrue(os.path.isdir(os.path.join(self.run_dir, "logs", "epoll", "http-keepalive")))

    def test_idle_connections_recorded(self):
        with open(os.path.join(self.run_dir, "points/epoll/idle-conns/idle100-c10-r1.json")) as f:
            idle = json.load(f)["idle_connections"]
        self.assertEqual(idle["requested"], 100)
        self.assertEqual(idle["established"], 100)
        self.assertEqual(idle["closed_by_server"], 0)

    def test_progress_lines(self):
        self.assertRegex(self.proc.stderr, r"\[\s*1/35\].*ETA")
        self.assertRegex(self.proc.stderr, r"\[\s*35/35\].*count")

    def test_counting_trials_carry_counts(self):
        with open(os.path.join(self.run_dir, "points/epoll/http-keepalive/c10-count-r1.json")) as f:
            counts = json.load(f)["counts"]
        # perf counts here when it can; otherwise the point says why not, and the run goes on.
        self.assertTrue(counts.get("server") or counts.get("not_counted"), counts)

    def test_a_point_that_served_nothing_is_not_counted(self):
        held = {(p["point"], p.get("kind")): p for p in self.manifest["points"] if p["model"] == "held-pool"}
        self.assertEqual(held[("c10", None)]["status"], "ok")
        self.assertEqual(held[("c10", "count")]["status"], "not-applicable")
        self.assertIn("served no request", held[("c10", "count")]["reason"])
        self.assertEqual(self.points[("epoll", "http-keepalive", "c10")]["status"], "ok")
        epoll_count = [p for p in self.counting if p["model"] == "epoll" and p["point"] == "c10"]
        self.assertEqual(epoll_count[0]["status"], "ok")

    def test_nothing_left_running(self):
        self.assertEqual(processes_mentioning(self.tmp.name), [])

    def test_usage_errors_exit_2(self):
        for args in (["--profile", "nope"], ["--bogus"], ["--scenarios", "nope"],
                     ["--no-build", "--build-dir", self.tmp.name + "/nothing"],
                     ["--no-build", "--out", self.run_dir]):  # its points would mix with the new run's
            proc = subprocess.run([os.path.join(ROOT, "run_all.sh"), *args], capture_output=True, text=True,
                                  timeout=30)
            self.assertEqual(proc.returncode, 2, (args, proc.stderr))
        proc = subprocess.run([os.path.join(ROOT, "run_all.sh"), "--help"], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0)
        self.assertIn("--profile", proc.stdout)


if __name__ == "__main__":
    unittest.main()
