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
FAKES = os.path.join(HERE, "fakes")


def write_exe(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)


def processes_mentioning(marker):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


class RunAllWithFakesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="serverbench-fakes-")
        bin_dir = os.path.join(cls.tmp.name, "build", "bin")
        os.makedirs(bin_dir)
        behaviours = {"epoll": "ok", "blocking": "ok", "crashy": "crash", "io-uring": "unsupported",
                      "dying": "die-mid-point"}
        for model, behaviour in behaviours.items():
            write_exe(os.path.join(bin_dir, f"server-{model}"),
                      f'#!/bin/sh\nexec "{sys.executable}" "{FAKES}/fake_server.py" '
                      f'--behaviour {behaviour} --model {model} "$@"\n')
        write_exe(os.path.join(bin_dir, "loadgen"),
                  f'#!/bin/sh\nexec "{sys.executable}" "{FAKES}/fake_loadgen.py" "$@"\n')
        cls.out = os.path.join(cls.tmp.name, "results")
        started = time.monotonic()
        cls.proc = subprocess.run(
            [os.path.join(ROOT, "run_all.sh"), "--profile", "smoke", "--no-build", "--no-plots",
             "--build-dir", os.path.join(cls.tmp.name, "build"), "--out", cls.out,
             "--scenarios", "http-keepalive,idle-conns"],
            capture_output=True, text=True, timeout=240)
        cls.wall = time.monotonic() - started
        run_dir = os.path.join(cls.out, "latest")
        cls.run_dir = run_dir
        with open(os.path.join(run_dir, "manifest.json")) as f:
            cls.manifest = json.load(f)
        cls.points = {(p["model"], p["scenario"], p["point"]): p for p in cls.manifest["points"]}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_exit_code_says_a_point_failed(self):
        self.assertEqual(self.proc.returncode, 1, self.proc.stderr)
        self.assertIn("failed point", self.proc.stderr)

    def test_manifest(self):
        m = self.manifest
        self.assertEqual(m["schema"], "serverbench.manifest/1")
        self.assertEqual(m["profile"], "smoke")
        for key in ("git_rev", "started_at", "finished_at"):
            self.assertTrue(m[key], key)
        for key in ("uname", "cpu_model", "cpus"):
            self.assertTrue(m["machine"][key], key)
        self.assertEqual(sorted(m["models"]), ["blocking", "crashy", "dying", "epoll", "io-uring"])
        # 5 models x (2 keep-alive points + 1 idle point)
        self.assertEqual(len(m["points"]), 15)

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
                self.assertTrue(path.endswith(f"points/{point['model']}/{point['scenario']}/{point['point']}-r1.json"))
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
        self.assertRegex(self.proc.stderr, r"\[\s*1/15\].*ETA")

    def test_nothing_left_running(self):
        self.assertEqual(processes_mentioning(self.tmp.name), [])

    def test_usage_errors_exit_2(self):
        for args in (["--profile", "nope"], ["--bogus"], ["--scenarios", "nope"],
                     ["--no-build", "--build-dir", self.tmp.name + "/nothing"]):
            proc = subprocess.run([os.path.join(ROOT, "run_all.sh"), *args], capture_output=True, text=True,
                                  timeout=30)
            self.assertEqual(proc.returncode, 2, (args, proc.stderr))
        proc = subprocess.run([os.path.join(ROOT, "run_all.sh"), "--help"], capture_output=True, text=True)
        self.assertEqual(proc.returncode, 0)
        self.assertIn("--profile", proc.stdout)


if __name__ == "__main__":
    unittest.main()
