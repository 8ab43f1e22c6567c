#!/usr/bin/env python3
"""Server files (docs/contract.md#server-files): every bundled file parses and its server starts,
answers and stops; a master with its workers is sampled whole; and a user's server, added by the
contract's worked example alone, runs through a timed point, a counting trial, a capacity sweep
and an A/B comparison. Bad server files are test_server_file_input.py's.

usage: test_server_files.py BUILD_DIR (the build tree whose bin/ the test uses)."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.path.abspath(sys.argv.pop(1) if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
sys.path.insert(0, ROOT)
from serverbench import scenarios as sc, server_file  # noqa: E402
from serverbench.launch_server import STOP_S  # noqa: E402
from serverbench.processes import tree_of  # noqa: E402
from serverbench.trial import LAUNCHER  # noqa: E402

RUN_ALL = os.path.join(ROOT, "run_all.sh")
COMMON = ["--no-build", "--build-dir", BUILD, "--no-microbench", "--no-plots"]


def run_all(*args, timeout=600):
    return subprocess.run([RUN_ALL, *COMMON, *args], capture_output=True, text=True, timeout=timeout)


def points(run_dir):
    with open(os.path.join(run_dir, "points.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def result(run_dir, point):
    with open(os.path.join(run_dir, point["file"])) as f:
        return json.load(f)


class Launched:
    """A bundled server started by the launcher as the driver starts it; stopped on exit."""

    def __init__(self, path):
        self.proc = subprocess.Popen([*LAUNCHER, path, "--port", "0"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)

    def __enter__(self):
        line = self.proc.stdout.readline()
        match = re.match(r"port=(\d+) pid=(\d+) model=(\S+)", line)
        if not match:
            self.stop()
            raise AssertionError(f"no readiness line: {line!r} {self.said}")
        self.port, self.pid, self.name = int(match.group(1)), int(match.group(2)), match.group(3)
        return self

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_S + 5)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.said = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.proc.returncode

    def __exit__(self, *_):
        if not self.proc.stdout.closed:
            self.stop()


class BundledFiles(unittest.TestCase):
    def test_each_file_parses_and_is_a_known_reference(self):
        files = server_file.bundled()
        self.assertEqual(sorted(files), sorted(sc.REFERENCE_ORDER))
        for name, path in files.items():
            with self.subTest(name):
                described = server_file.load(path)
                self.assertEqual(described.name, name)
                self.assertIn(described.counterpart, sc.MODEL_ORDER)
                self.assertTrue(described.package)

    def test_each_server_starts_answers_the_body_and_stops_whole(self):
        for name, path in server_file.bundled().items():
            with self.subTest(name), Launched(path) as server:
                with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=5) as answer:
                    self.assertEqual((answer.status, answer.read()), (200, b"Hello, World!"))
                tree = tree_of(server.pid)
                self.assertEqual(server.stop(), 0, server.said)
                self.assertEqual([p for p in tree if alive(p)], [], f"{name} left processes")

    def test_a_master_with_its_workers_is_sampled_whole(self):
        with Launched(server_file.bundled()["apache-prefork"]) as server:
            sample = subprocess.run([os.path.join(BUILD, "bin", "loadgen"), "sample-server", "--pid",
                                     str(server.pid)], input="\n", capture_output=True, text=True, timeout=10)
            snap = json.loads(sample.stdout.splitlines()[0])
            self.assertEqual(snap["processes"], 65, snap)   # the master and its 64 workers


class MasterWithWorkersCounted(unittest.TestCase):
    def test_a_counting_trial_counts_apache_prefork_s_65_processes(self):
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = os.path.join(tmp, "run")
            proc = run_all("--profile", "smoke", "--models", "apache-prefork", "--scenarios", "http-close",
                           "--out", run_dir)
            self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
            counted = [p for p in points(run_dir) if p.get("kind") == "count"]
            self.assertEqual([p["status"] for p in counted], ["ok"], counted)
            doc = result(run_dir, counted[0])
            self.assertEqual(doc["server"]["peak_processes"], 65)
            # The workers answer, the master only waits: counted whole, a request costs Apache
            # several system calls (accept, read, stat, open, write, close...).
            self.assertGreater(doc["counts"]["server"]["syscalls_per_request"], 4, doc["counts"])


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def worked_example():
    """The TOML of docs/contract.md's worked example."""
    with open(os.path.join(ROOT, "docs", "contract.md")) as f:
        text = f.read()
    section = text[text.index("**Worked example.**"):]
    return re.search(r"```toml\n(.*?)```", section, re.S).group(1)


class UsersOwnServer(unittest.TestCase):
    """The worked example, next to its server, as a user would set it up."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="serverbench-user-server-")
        shutil.copy(os.path.join(HERE, "user_server", "hello_server.py"), cls.tmp)
        cls.file = os.path.join(cls.tmp, "hello.toml")
        with open(cls.file, "w") as f:
            f.write(worked_example())

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_timed_point_counting_trial_and_capacity_sweep(self):
        run_dir = os.path.join(self.tmp, "run")
        proc = run_all("--profile", "smoke", "--server-file", self.file, "--models", "hello",
                       "--scenarios", "http-keepalive,echo,capacity", "--out", run_dir)
        self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
        records = points(run_dir)
        timed = [p for p in records if p["scenario"] == "http-keepalive" and p.get("kind") != "count"]
        counted = [p for p in records if p["scenario"] == "http-keepalive" and p.get("kind") == "count"]
        self.assertTrue(timed and all(p["status"] == "ok" for p in timed), timed)
        for p in timed:
            doc = result(run_dir, p)
            self.assertGreater(doc["totals"]["requests"], 0)
            self.assertGreater(doc["server"]["cpu_us_per_request"], 0)
        self.assertTrue(counted and all(p["status"] == "ok" for p in counted), counted)
        for p in counted:
            counts = result(run_dir, p)["counts"]
            self.assertGreater(counts["server"]["syscalls_per_request"], 0, counts)
        echo = [p for p in records if p["scenario"] == "echo"]
        self.assertTrue(echo and all(p["status"] == "not-applicable" and "suite's own" in p["reason"] for p in echo))
        with open(os.path.join(run_dir, "capacity.json")) as f:
            sweep = json.load(f)["records"][0]
        self.assertEqual((sweep["model"], sweep["status"]), ("hello", "ok"), sweep)
        self.assertTrue(sweep["steps"])

    def test_ab_comparison(self):
        run_dir = os.path.join(self.tmp, "ab")
        proc = run_all("--profile", "smoke", "--server-file", self.file, "--models", "hello",
                       "--scenarios", "http-close", "--baseline-bin", os.path.join(BUILD, "bin"),
                       "--trials", "3", "--out", run_dir)
        self.assertIn(proc.returncode, (0, 1), proc.stderr[-3000:])
        with open(os.path.join(run_dir, "comparison.json")) as f:
            rows = [r for r in json.load(f)["rows"] if r["model"] == "hello"]
        self.assertTrue(rows)
        cpu = [r for r in rows if r["metric"] == "cpu_us_per_request"]
        self.assertTrue(cpu and all((r["n_a"], r["n_b"]) == (3, 3) for r in cpu), cpu)


class NeverReady(unittest.TestCase):
    def test_a_server_that_never_gets_ready_is_a_failed_point_and_the_run_goes_on(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "mute.toml")
            with open(path, "w") as f:
                f.write('name = "mute"\ncommand = ["sleep", "60"]\nscenarios = ["http-close"]\nready_timeout_s = 1\n')
            run_dir = os.path.join(tmp, "run")
            proc = run_all("--profile", "smoke", "--server-file", path, "--models", "mute,epoll",
                           "--scenarios", "http-close", "--out", run_dir)
            self.assertEqual(proc.returncode, 1, proc.stderr[-3000:])
            records = points(run_dir)
            mute = [p for p in records if p["model"] == "mute" and p.get("kind") != "count"]
            self.assertTrue(mute and all(p["status"] == "failed" and "not ready" in p["reason"] for p in mute), mute)
            self.assertTrue(all(p["status"] == "ok" for p in records if p["model"] == "epoll"))
            self.assertFalse(subprocess.run(["pgrep", "-f", "sleep 60"], capture_output=True).stdout.strip())


if __name__ == "__main__":
    unittest.main(verbosity=2)
