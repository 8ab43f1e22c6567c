#!/usr/bin/env python3
"""The driver interrupted mid-point by Ctrl-C (SIGINT), SIGTERM, or killed outright (SIGKILL):
no process of the run survives (servers, the child a forking server left in its group, the idle
holder, loadgen), and --resume finishes the run with every point exactly once.

Uses the stand-ins of fakes/, with points long enough (1 s) that the signal lands mid-point."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "fakes"))
from fake_build import make_fake_build, processes_mentioning  # noqa: E402

# 2 models x (c1, c10, idle100-c10): 6 points, each timed and counted.
POINTS = 12


def wait_for(predicate, timeout_s, step_s=0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return predicate()


class InterruptedRunTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="serverbench-lifecycle-")
        self.root = self.tmp.name
        self.build = make_fake_build(self.root, {"epoll": "forking", "thread-pool": "forking"})
        self.run_dir = os.path.join(self.root, "run")
        self.env = dict(os.environ, SERVERBENCH_FAKE_POINT_S="0.3")

    def tearDown(self):
        for pid in processes_mentioning(self.root):
            os.kill(pid, signal.SIGKILL)
        self.tmp.cleanup()

    def driver(self, *args):
        return [os.path.join(ROOT, "run_all.sh"), "--no-build", "--no-plots", "--no-microbench",
                "--build-dir", self.build, *args]

    def finished_points(self):
        try:
            with open(os.path.join(self.run_dir, "points.jsonl")) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def interrupt(self, sig):
        """Starts a run, signals the driver while its second point is being measured (a server,
        the child it forked and loadgen alive), and returns the driver's exit code and stderr."""
        proc = subprocess.Popen(self.driver("--profile", "smoke", "--out", self.run_dir,
                                            "--scenarios", "http-keepalive,idle-conns"),
                                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            self.assertTrue(wait_for(lambda: self.finished_points() and self.measuring(), 30),
                            "the run never got to its second point")
            proc.send_signal(sig)
            _, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertTrue(wait_for(lambda: not processes_mentioning(self.root), 5),
                        f"left running after {sig.name}: {self.describe(processes_mentioning(self.root))}")
        return proc.returncode, stderr

    def measuring(self):
        """A server, the child it forked, and loadgen are all running."""
        cmdlines = self.describe(processes_mentioning(self.root))
        return (sum("fake_server.py" in c for c in cmdlines) >= 2
                and any("fake_loadgen.py" in c for c in cmdlines))

    @staticmethod
    def describe(pids):
        out = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode()
                out.append(f"{pid}: {cmdline[:120]}")
            except OSError:
                pass
        return out

    def resume_and_check(self):
        done_before = len(self.finished_points())
        self.assertLess(done_before, POINTS)
        proc = subprocess.run(self.driver("--resume", self.run_dir), env=self.env, capture_output=True,
                              text=True, timeout=120)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn(f"{done_before} point(s) already written, skipped", proc.stderr)
        with open(os.path.join(self.run_dir, "manifest.json")) as f:
            manifest = json.load(f)
        self.assertFalse(manifest["interrupted"])
        self.assertEqual(manifest["profile"], "smoke")
        keys = [(p["model"], p["scenario"], p["point"], p["repeat"], p.get("kind")) for p in manifest["points"]]
        self.assertEqual(len(keys), POINTS)
        self.assertEqual(len(set(keys)), POINTS)
        self.assertTrue(all(p["status"] == "ok" for p in manifest["points"]), manifest["points"])
        self.assertEqual(processes_mentioning(self.root), [])

    def test_ctrl_c(self):
        code, stderr = self.interrupt(signal.SIGINT)
        self.assertEqual(code, 130, stderr)
        self.assertIn("--resume", stderr)
        with open(os.path.join(self.run_dir, "manifest.json")) as f:
            self.assertTrue(json.load(f)["interrupted"])
        self.resume_and_check()

    def test_sigterm(self):
        code, stderr = self.interrupt(signal.SIGTERM)
        self.assertEqual(code, 130, stderr)
        self.resume_and_check()

    def test_a_run_folder_of_the_first_schema_resumes(self):
        """A run interrupted by a driver that wrote serverbench.manifest/1 (its network was "net")."""
        code, stderr = self.interrupt(signal.SIGINT)
        self.assertEqual(code, 130, stderr)
        path = os.path.join(self.run_dir, "manifest.json")
        with open(path) as f:
            manifest = json.load(f)
        manifest["schema"] = "serverbench.manifest/1"
        manifest["net"] = manifest.pop("network")
        with open(path, "w") as f:
            json.dump(manifest, f)
        self.resume_and_check()
        with open(path) as f:
            resumed = json.load(f)
        self.assertEqual(resumed["schema"], "serverbench.manifest/2")
        self.assertEqual(resumed["network"], manifest["net"])

    def test_sigkill(self):
        code, _ = self.interrupt(signal.SIGKILL)
        self.assertEqual(code, -signal.SIGKILL)
        self.resume_and_check()


if __name__ == "__main__":
    unittest.main()
