#!/usr/bin/env python3
"""Counting trials (serverbench/counting.py, cgroups.py, perf_counts.py, remote_counting.py).

Without root: perf's CSV read back per cgroup, the window's edges and scale, the voluntary
share, the remote wrapper's report, where perf looks for cgroups. As root with cgroup v2 and
perf (else skipped): a side runs in its cgroup at the ordinary scheduling policy while perf has
a real-time one; a counting trial of fork-per-conn counts the children it forks in the window
(argv[1]: the build folder, as the real binaries run); and no cgroup is left after a run
interrupted by SIGINT, nor after one killed by SIGKILL and the run that follows it, nor of a
driver gone before this run started.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# argv[1], when it is a folder: the build tree whose binaries run; the rest: unittest's.
BUILD_GIVEN = len(sys.argv) > 1 and os.path.isdir(sys.argv[1])
BUILD = os.path.abspath(sys.argv[1]) if BUILD_GIVEN else os.path.join(ROOT, "build")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(HERE, "fakes"))
from fake_build import make_fake_build  # noqa: E402
from serverbench import cgroups, counting, perf_counts  # noqa: E402
from serverbench.processes import Supervisor  # noqa: E402
from serverbench.remote_counting import RemoteCounted  # noqa: E402


def cgroup_counting_unavailable():
    """Why counting per cgroup cannot be tried here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    try:
        cgroups.perf_cgroup_mount()
    except cgroups.CgroupUnavailable as e:
        return str(e)
    if counting.perf_unavailable():
        return counting.perf_unavailable()
    return None


SKIP = cgroup_counting_unavailable()


def cgroups_of(owners, field=2):
    """The serverbench cgroups on the machine whose name's owner pid (field 2: serverbench-<pid
    namespace>-<owner pid>-...) is one of owners: other runs on the machine have their own."""
    owners = {str(pid) for pid in owners}
    found = set()
    for folder, subdirs, _ in os.walk(cgroups.perf_cgroup_mount()):
        fields = [d.split("-") for d in subdirs if d.startswith(cgroups.PREFIX)]
        found |= {os.path.join(folder, "-".join(f)) for f in fields if len(f) > field and f[field] in owners}
    return found


def wait_for(predicate, timeout_s, step_s=0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step_s)
    return predicate()


class PerfOutput(unittest.TestCase):
    NAMES = ["task-clock", "context-switches", "voluntary-switches"]

    def test_counts_of_the_cgroup_asked(self):
        lines = ["# started on", "", "12.5,msec,task-clock,g/x,1,100.00,,", "40,,context-switches,g/x,1,100.00,,",
                 "30,,sched:sched_switch,g/x,1,100.00,,"]
        self.assertEqual(perf_counts.parse_perf_lines(lines, self.NAMES, "g/x"),
                         {"task-clock": 12.5, "context-switches": 40.0, "voluntary-switches": 30.0})
        # A counter given to another cgroup (or none) is not ours.
        elsewhere = perf_counts.parse_perf_lines([*lines[:3], "40,,context-switches,,1,100.00,,", lines[4]],
                                                 self.NAMES, "g/x")
        self.assertEqual(elsewhere["_missing"], ["context-switches"])
        self.assertEqual(perf_counts.parse_perf_lines(lines[2:4], self.NAMES)["_missing"],
                         ["perf printed 2 counters for 3 events"])

    def test_not_counted_is_missing(self):
        lines = ["<not counted>,,task-clock,,0,0.00,,", "4,,context-switches,,1,100.00,,", "3,,x,,1,100.00,,"]
        self.assertEqual(perf_counts.parse_perf_lines(lines, self.NAMES)["_missing"], ["task-clock"])

    def test_voluntary_share_is_perfs_where_it_counted_it(self):
        counts = {"context-switches": 300.0, "voluntary-switches": 200.0, "raw_syscalls:sys_enter": 600.0}
        out = perf_counts.per_request(counts, 200, ctx_split=(1.0, 1.0))
        self.assertEqual((out["context_switches_per_request"], out["voluntary_switches_per_request"],
                          out["involuntary_switches_per_request"]), (1.5, 1.0, 0.5))
        # /proc's split where perf has none.
        out = perf_counts.per_request({"context-switches": 300.0}, 200, ctx_split=(100.0, 200.0))
        self.assertEqual(out["voluntary_switches_per_request"], 0.5)

    def test_every_event_gets_the_cgroup(self):
        args, names = perf_counts.event_args()
        self.assertEqual(perf_counts.cgroup_args("a/b", names), ["-G", ",".join(["a/b"] * len(names))])
        self.assertIn("voluntary-switches", names)
        self.assertEqual(args[args.index("sched:sched_switch") + 1:][:2], ["--filter", "prev_state & 255"])


class Window(unittest.TestCase):
    def result(self, start_ns=1_000_000_000, length_s=0.25):
        return {"window": {"length_s": length_s, "start_monotonic_ns": start_ns,
                           "end_monotonic_ns": start_ns + int(length_s * 1e9),
                           "counter_control": {"enable_ack_us": 300000.0, "disable_ack_us": 1000.0}}}

    def counted(self, relayed):
        trial = counting.CountedTrial.__new__(counting.CountedTrial)
        trial.relayed = relayed
        return trial

    def test_edges_come_from_the_relay_not_from_loadgens_ack(self):
        """loadgen's own enable_ack_us (300 ms here) holds its /proc sampling: not perf's switch."""
        start = 1_000_000_000
        trial = self.counted([("enable", True, start + 1_000_000, start + 3_000_000),
                              ("disable", True, start + 250_500_000, start + 251_500_000)])
        edges = trial.edge_times(self.result(start))
        self.assertEqual(edges, {"enable": (1000.0, 3000.0), "disable": (500.0, 1500.0)})
        self.assertIsNone(perf_counts.switch_too_slow(250000.0, edges))
        # perf counted from 2 ms to 251 ms: 249 ms of loadgen's 250.
        self.assertAlmostEqual(perf_counts.window_scale(250000.0, edges), 250 / 249)

    def test_a_slow_switch_is_not_counted(self):
        edges = {"enable": (0.0, 40000.0), "disable": (0.0, 1000.0)}
        self.assertIn("to enable its counters, over 15% of the 250 ms window",
                      perf_counts.switch_too_slow(250000.0, edges))

    def test_without_relay_times_loadgens_figure(self):
        trial = self.counted([("enable", True, 0, 0)][:0])
        self.assertEqual(trial.edge_times(self.result()), {"enable": (0.0, 300000.0), "disable": (0.0, 1000.0)})


def other_end(path):
    """A counting.Fifo on a FIFO that exists: the end loadgen or perf opens."""
    fifo = counting.Fifo.__new__(counting.Fifo)
    fifo.path, fifo.fd, fifo.pending = path, os.open(path, os.O_RDWR), b""
    return fifo


class Relay(unittest.TestCase):
    """The relay between loadgen's window FIFO and both perfs' control FIFOs, with stand-in perfs."""

    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="serverbench-relay-test-")
        self.trial = counting.CountedTrial(self.work, duration_s=0.1)
        self.told = []
        self.perfs = [threading.Thread(target=self.perf, args=(side,), daemon=True) for side in ("server", "loadgen")]
        for perf in self.perfs:
            perf.start()
        self.trial.start_relay()
        self.window = other_end(os.path.join(self.work, "window"))  # loadgen's
        self.ack = other_end(os.path.join(self.work, "window.ack"))

    def tearDown(self):
        self.trial.close()
        for fifo in (self.window, self.ack):
            fifo.close()
        subprocess.run(["rm", "-rf", self.work])

    def perf(self, side):
        """A stand-in perf: acknowledges two commands as perf does (with a NUL)."""
        ctl, ack = other_end(self.trial.fifos[f"{side}.ctl"].path), other_end(self.trial.fifos[f"{side}.ack"].path)
        for _ in range(2):
            command = ctl.read_line(5)
            if command is None:
                return
            self.told.append((side, command, time.monotonic()))
            os.write(ack.fd, b"ack\n\0")

    def test_the_counters_go_off_at_the_windows_end_when_loadgens_line_is_late(self):
        self.window.write_line("enable")
        self.assertEqual(self.ack.read_line(5), "ack")
        enabled = time.monotonic()
        time.sleep(0.3)  # loadgen still sampling /proc when its window ended
        self.window.write_line("disable")
        self.assertEqual(self.ack.read_line(5), "ack")
        self.assertEqual([(c, ok) for c, ok, *_ in self.trial.relayed], [("enable", True), ("disable", True)])
        self.assertIsNone(self.trial.window_problem())
        off = [at for side, command, at in self.told if command == "disable"]
        self.assertEqual(len(off), 2)
        self.assertLess(max(off) - enabled, 0.2, "the counters waited for loadgen's late line")

    def test_an_early_disable_goes_through_at_once(self):
        self.window.write_line("enable")
        self.assertEqual(self.ack.read_line(5), "ack")
        self.window.write_line("disable")
        self.assertEqual(self.ack.read_line(5), "ack")
        self.assertEqual(sorted(command for _, command, _ in self.told), ["disable", "disable", "enable", "enable"])
        self.assertIsNone(self.trial.window_problem())


class RemoteReport(unittest.TestCase):
    def test_the_wrappers_report_after_the_exit_line(self):
        counted = RemoteCounted(0.5)
        counted.method = "cgroup"
        lines = "".join(f"perf: {i},,e{i},serverbench-7-0-server,1,100.00,,\n" for i in range(len(counted.event_names)))
        counted.take_report(b"\0exit 0\ncount-method cgroup serverbench-7-0-server \n" + lines.encode())
        self.assertEqual((counted.method, counted.rel), ("cgroup", "serverbench-7-0-server"))
        counts = counted.side_counts("server")
        self.assertEqual(counts["task-clock"], 0.0)
        self.assertNotIn("_missing", counts)
        self.assertIsNone(counted.side_counts("loadgen"))
        counted.relayed = [("enable", True, 10_000_000, 12_000_000, 9_000_000),
                           ("disable", True, 510_000_000, 512_000_000, 509_000_000)]
        self.assertIsNone(counted.window_problem())
        self.assertEqual(counted.edge_times(None), {"enable": (1000.0, 3000.0), "disable": (1000.0, 3000.0)})

    def test_a_host_without_perf_says_so(self):
        counted = RemoteCounted(0.5)
        counted.method, counted.method_note = "none", "none on srv: perf is not installed on srv"
        self.assertEqual(counted.window_problem(), "none on srv: perf is not installed on srv")


class CgroupMount(unittest.TestCase):
    def mounts(self, text):
        f = tempfile.NamedTemporaryFile("w", delete=False)
        f.write(text)
        f.close()
        self.addCleanup(os.remove, f.name)
        return f.name

    def test_the_last_cgroup2_mount_as_perf_finds_it(self):
        path = self.mounts("cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\ncgroup /x cgroup rw,cpu 0 0\n"
                           "cgroup2 /other cgroup2 rw 0 0\n")
        self.assertEqual(cgroups.perf_cgroup_mount(path), "/other")

    def test_a_v1_perf_event_hierarchy_or_none_is_refused(self):
        with self.assertRaisesRegex(cgroups.CgroupUnavailable, "v1 perf_event"):
            cgroups.perf_cgroup_mount(self.mounts("cgroup2 /u cgroup2 rw 0 0\ncgroup /p cgroup rw,perf_event 0 0\n"))
        with self.assertRaisesRegex(cgroups.CgroupUnavailable, "no cgroup v2"):
            cgroups.perf_cgroup_mount(self.mounts("proc /proc proc rw 0 0\n"))


@unittest.skipIf(SKIP, f"counting per cgroup: {SKIP}")
class CgroupSide(unittest.TestCase):
    def test_a_side_runs_in_its_cgroup_at_the_ordinary_policy(self):
        sup = Supervisor()
        work = tempfile.mkdtemp(prefix="serverbench-count-test-")
        trial = counting.CountedTrial(work, sup, counting.counting_method(sup))
        try:
            self.assertEqual(trial.method, "cgroup", trial.method_note)
            argv = trial.wrap("server", ["sh", "-c", "cat /proc/self/cgroup; chrt -p $$"])
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
            path = trial.groups["server"].path
        finally:
            trial.close()
            sup.close()
        self.assertIn(f"0::/{trial.groups['server'].rel}\n", out)
        self.assertIn("policy: SCHED_OTHER", out)
        self.assertFalse(os.path.exists(path))


@unittest.skipIf(SKIP, f"counting per cgroup: {SKIP}")
class ForkedInTheWindow(unittest.TestCase):
    def test_children_forked_in_the_window_are_counted(self):
        """fork-per-conn at http-close forks a child per request, inside the window: the child
        reads and writes, the server only accepts, forks, closes and reaps."""
        server = os.path.join(BUILD, "bin", "server-fork-per-conn")
        if not os.access(server, os.X_OK):
            self.skipTest(f"{server} is not built")
        with tempfile.TemporaryDirectory(prefix="serverbench-count-test-") as tmp:
            out = os.path.join(tmp, "run")
            proc = subprocess.run([os.path.join(ROOT, "run_all.sh"), "--profile", "smoke", "--no-build",
                                   "--build-dir", BUILD, "--models", "fork-per-conn", "--scenarios", "http-close",
                                   "--no-microbench", "--no-plots", "--out", out],
                                  capture_output=True, text=True, timeout=300)
            self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
            [path] = [os.path.join(out, "points", "fork-per-conn", "http-close", f) for f in
                      os.listdir(os.path.join(out, "points", "fork-per-conn", "http-close")) if "-count-" in f]
            with open(path) as f:
                counts = json.load(f)["counts"]
        self.assertEqual(counts["method"], "cgroup", counts)
        server = counts["server"]
        calls = server["top_syscalls_per_request"]
        for call in ("read", "write"):  # the children's alone
            self.assertGreater(calls.get(call, 0), 0.9, counts)
        # A child per accepted connection (the window's edges cut a few requests from their fork).
        self.assertGreater(calls.get("accept4", 0), 0.5, counts)
        self.assertGreaterEqual(calls.get("clone", 0) + calls.get("clone3", 0), 0.9 * calls["accept4"], counts)
        self.assertGreater(server["page_faults_per_request"], 1, counts)  # the copied address space


@unittest.skipIf(SKIP, f"counting per cgroup: {SKIP}")
class NoCgroupLeft(unittest.TestCase):
    """Runs of stand-in binaries (fakes/) whose counting trials last 1 s, signalled in one."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="serverbench-count-life-")
        self.build = make_fake_build(self.tmp.name, {"epoll": "forking"})
        self.run_dir = os.path.join(self.tmp.name, "run")
        self.env = dict(os.environ, SERVERBENCH_FAKE_POINT_S="1.0")

    def tearDown(self):
        self.tmp.cleanup()

    def driver(self, *args, env=None):
        """The driver (run_all.sh execs it: its pid is the Popen's, the owner in its cgroups' names)."""
        return subprocess.Popen([os.path.join(ROOT, "run_all.sh"), "--no-build", "--no-plots", "--no-microbench",
                                 "--build-dir", self.build, *args], env=env or self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def finish(self, proc, timeout_s=120):
        try:
            _, stderr = proc.communicate(timeout=timeout_s)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return proc.returncode, stderr

    def signal_in_a_counting_trial(self, sig):
        """A run, signalled while a counting trial's server runs in its cgroup: (its pid, exit code)."""
        proc = self.driver("--profile", "smoke", "--scenarios", "http-keepalive", "--out", self.run_dir)

        def counting_server():
            return [g for g in cgroups_of({proc.pid}) if g.endswith("-server") and _procs(g)]
        try:
            self.assertTrue(wait_for(lambda: proc.poll() is not None or counting_server(), 60) and counting_server(),
                            "no counting trial ran in a cgroup")
            proc.send_signal(sig)
        finally:
            code, _ = self.finish(proc, 30)
        return proc.pid, code

    def test_sigint(self):
        pid, code = self.signal_in_a_counting_trial(signal.SIGINT)
        self.assertEqual(code, 130)
        self.assertEqual(cgroups_of({pid}), set())

    def test_sigkill_then_another_run(self):
        pid, code = self.signal_in_a_counting_trial(signal.SIGKILL)
        self.assertEqual(code, -signal.SIGKILL)
        # The driver's watchdog removes them once the driver is gone.
        self.assertTrue(wait_for(lambda: not cgroups_of({pid}), 5), cgroups_of({pid}))
        resumed = self.driver("--resume", self.run_dir)
        code, stderr = self.finish(resumed)
        self.assertEqual(code, 0, stderr[-3000:])
        self.assertEqual(cgroups_of({pid, resumed.pid}), set())

    def test_a_dead_drivers_cgroup_is_removed_by_the_next_run(self):
        """What a driver left when its watchdog died with it: its cgroup, a process still in it."""
        gone = subprocess.Popen(["true"])
        gone.wait()
        left = os.path.join(cgroups.perf_cgroup_mount(), f"{cgroups.PREFIX}{cgroups.pid_namespace()}-{gone.pid}-0-server")
        os.mkdir(left)
        sleeper = subprocess.Popen(["sh", "-c", f'echo $$ >"{left}/cgroup.procs"; exec sleep 60'])
        try:
            self.assertTrue(wait_for(lambda: _procs(left), 5))
            run = self.driver("--profile", "smoke", "--scenarios", "http-keepalive", "--out", self.run_dir,
                              env=dict(self.env, SERVERBENCH_FAKE_POINT_S="0.2"))
            code, stderr = self.finish(run)
            self.assertEqual(code, 0, stderr[-3000:])
            # Every driver sweeps what gone drivers left, so a driver of another test running
            # beside this one may sweep it first (and this run's log then does not mention it):
            # what must hold is that it is gone, its process killed, once this run has counted.
            self.assertFalse(os.path.exists(left))
            self.assertEqual(sleeper.wait(timeout=5), -signal.SIGKILL)
        finally:
            if sleeper.poll() is None:
                sleeper.kill()
            if os.path.exists(left):
                cgroups.remove_cgroup(left)
        self.assertEqual(cgroups_of({run.pid}), set())

    def test_another_pid_namespaces_cgroup_is_left_alone(self):
        """A name of another pid namespace: its owner's pid means nothing here, so it is not swept."""
        other = os.path.join(cgroups.perf_cgroup_mount(), f"{cgroups.PREFIX}{cgroups.pid_namespace() + 1}-999999-0-server")
        os.mkdir(other)
        try:
            self.assertNotIn(other, cgroups.cleanup_leftovers())
            self.assertTrue(os.path.isdir(other))
        finally:
            os.rmdir(other)


def _procs(path):
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            return f.read().split()
    except OSError:
        return []


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1] + sys.argv[1 + BUILD_GIVEN:])
