"""Counted work: system calls, context switches, CPU migrations and page faults per request,
for the server (every thread and child process) and for the load generator.

Counted with Debian's `perf stat` rather than perf_event_open in the suite: perf knows every
system call's tracepoint by name, counts a cgroup or a task with its threads and children, and
takes its on/off switch from a FIFO (--control), which is what makes the measured window exact.

Each side (the server, loadgen) runs in a cgroup of its own (cgroups.py) under its own
`perf stat -a -G GROUP -D -1` (counting disabled at start): switching the counters on costs the
same whatever the side's threads. Where cgroups cannot be used (not root, no cgroup v2, perf
refuses), each side runs under a per-task `perf stat -D -1` instead, as the counts record
(`method`). loadgen announces its measured window on --window-fifo, and the driver relays each
`enable` / `disable` to both perfs and acknowledges it back to loadgen only once both have
acknowledged, so start-up and warm-up are never counted. A server on another host is counted
there (remote_counting.py), switched at the driver's window edges.

Counting costs time (a tracepoint per system call), so it runs in counting trials of its own,
never in the timed trials that comparisons and capacity sweeps use.
"""
import dataclasses
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time

from .cgroups import Cgroup, CgroupUnavailable, cleanup_leftovers
from .hosts_file import is_remote
from .jsonfile import read_json, write_json
from .log import log
from .perf_counts import BASE_EVENTS, CHRT, SWITCH_PRIORITY, cgroup_args, counts_document, event_args, parse_perf_csv
from .point import run_trial
from .remote_counting import RemoteCounted
from .trial import seconds_of

ACK_TIMEOUT_S = 2.0
_availability = {}


def perf_unavailable():
    """None when `perf stat` counts here, else the one-line reason (recorded in the point)."""
    if "reason" not in _availability:
        try:
            proc = subprocess.run(["perf", "stat", "-x,", "-e", ",".join(BASE_EVENTS), "--", "true"],
                                  capture_output=True, text=True, timeout=20)
            bad = [line for line in proc.stderr.splitlines() if "<not" in line]
            _availability["reason"] = (None if proc.returncode == 0 and not bad else
                                       f"perf stat failed: {(bad or proc.stderr.splitlines() or ['?'])[-1]}")
        except (OSError, subprocess.TimeoutExpired) as e:
            _availability["reason"] = f"perf is not available: {e}"
    return _availability["reason"]


def perf_priority():
    """CHRT when perf may run at a real-time priority here, else () (perf then waits its turn)."""
    if "priority" not in _availability:
        try:
            ok = subprocess.run([*CHRT, "true"], capture_output=True, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        _availability["priority"] = CHRT if ok else ()
    return _availability["priority"]


def raise_own_priority():
    """The calling thread (the relay) at SWITCH_PRIORITY when allowed; nothing otherwise."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(SWITCH_PRIORITY))
    except OSError:
        pass


# per-task forces per-task counting (docs/counts.md compares both methods with it).
METHOD_ENV = "SERVERBENCH_COUNT_METHOD"


def counting_method(sup):
    """("cgroup", None) when perf counts a cgroup of ours here, else ("per-task", why not). Found
    once per run, at its first counting trial, which first removes what dead drivers left."""
    if "method" not in _availability:
        removed = cleanup_leftovers()
        if removed:
            log(f"== removed counting cgroups of earlier runs: {', '.join(removed)}")
        _availability["method"] = choose_method(sup)
    return _availability["method"]


def choose_method(sup):
    if os.environ.get(METHOD_ENV) == "per-task":
        return "per-task", f"{METHOD_ENV}=per-task"
    try:
        group = Cgroup(sup, "probe")
    except CgroupUnavailable as e:
        return "per-task", str(e)
    try:
        problem = cgroup_probe(group)
    finally:
        group.remove()
    return ("per-task", problem) if problem else ("cgroup", None)


def cgroup_probe(group):
    """None when `perf stat -a -G` counts every event of ours in group (the filtered tracepoints
    too) for a process that joined it, else why not."""
    args, names = event_args()
    fd, out = tempfile.mkstemp(prefix="serverbench-perf-probe-", suffix=".csv")
    os.close(fd)
    argv = ["perf", "stat", "-a", "-x,", "-o", out, *args, *cgroup_args(group.rel, names), "--",
            *group.join_argv(["true"])]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        counts = parse_perf_csv(out, names, group.rel)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"perf stat -a -G: {e}"
    finally:
        os.remove(out)
    if proc.returncode != 0 or counts.get("_missing"):
        said = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return f"perf stat -a -G did not count a cgroup (exit {proc.returncode}, {counts.get('_missing')}): {said}"
    return None


class Fifo:
    """A FIFO opened read-write: opening never blocks, whoever opens the other end."""

    def __init__(self, path):
        self.path = path
        os.mkfifo(path)
        self.fd = os.open(path, os.O_RDWR)
        self.pending = b""

    def write_line(self, text):
        os.write(self.fd, (text + "\n").encode())

    def read_line(self, timeout_s):
        """One line, or None after timeout_s. Waits in select(), not in a polling loop (the
        switch's latency is the counting window's error); what arrives after a line, or a line's
        start when the time runs out, stays for the next call."""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            self.pending += os.read(self.fd, 4096)
        line, _, self.pending = self.pending.partition(b"\n")
        # perf writes its "ack\n" with the string's terminating NUL: drop it.
        return line.replace(b"\0", b"").decode().strip()

    def close(self):
        os.close(self.fd)


class CountedTrial:
    """The FIFOs, perf output files and cgroups of one counting trial, and the relay between them."""

    def __init__(self, work_dir, sup=None, method=("per-task", None), duration_s=None):
        self.dir = work_dir
        self.duration_s = duration_s or float("inf")  # the measured window's length
        os.makedirs(work_dir, exist_ok=True)
        self.fifos = {name: Fifo(os.path.join(work_dir, name)) for name in
                      ("server.ctl", "server.ack", "loadgen.ctl", "loadgen.ack", "window", "window.ack")}
        self.outputs = {side: os.path.join(work_dir, f"{side}.perf.csv") for side in ("server", "loadgen")}
        self.relayed = []
        self.events, self.event_names = event_args()
        self.method, self.method_note = method[0], per_task_note(method[1])
        self.groups = self._make_groups(sup) if self.method == "cgroup" else {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._relay, daemon=True)

    def _make_groups(self, sup):
        """{side: Cgroup}; on failure none, and the trial counts per task, saying why."""
        groups = {}
        try:
            for side in ("server", "loadgen"):
                groups[side] = Cgroup(sup, side)
        except CgroupUnavailable as e:
            for group in groups.values():
                group.remove()
            self.method, self.method_note = "per-task", per_task_note(str(e))
            return {}
        return groups

    def wrap(self, side, argv):
        """argv under `perf stat`, counting off until the window opens: its cgroup counted on every
        CPU (-a -G), or per task where there is none."""
        f = self.fifos
        group = self.groups.get(side)
        perf = [*perf_priority(), "perf", "stat", *(["-a"] if group else []), "-D", "-1", "--control",
                f"fifo:{f[side + '.ctl'].path},{f[side + '.ack'].path}", "-x,", "-o", self.outputs[side], *self.events]
        if group is None:
            return [*perf, "--", *argv]
        return [*perf, *cgroup_args(group.rel, self.event_names), "--", *group.join_argv(argv)]

    def loadgen_flags(self):
        return ("--window-fifo", f"{self.fifos['window'].path},{self.fifos['window.ack'].path}")

    def start_relay(self):
        self._thread.start()

    def _relay(self):
        """loadgen's window lines to both perfs; relayed gets (command, acknowledged by both,
        CLOCK_MONOTONIC ns when it was sent to them and when both acknowledged), the clock
        loadgen stamps its lines with. The counters go off at the window's end by the relay's
        own clock when loadgen's `disable` comes later: loadgen sends it after its /proc sample
        of the window's start, which outlasted the 250 ms window at 1000 forked processes."""
        raise_own_priority()
        window, ack = self.fifos["window"], self.fifos["window.ack"]
        disable_at = None  # while the counters are on: when the window ends, by the relay's clock
        while not self._stop.is_set():
            wait = 0.2 if disable_at is None else min(0.2, max(0.0, disable_at - time.monotonic()))
            command = window.read_line(wait)
            read_at = time.monotonic()
            if command is None and disable_at is not None and read_at >= disable_at:
                self._switch("disable")
                disable_at = None
            if command not in ("enable", "disable"):
                continue
            if command == "enable" or disable_at is not None:  # else the relay's clock was first
                self._switch(command)
            disable_at = read_at + self.duration_s if command == "enable" else None
            ack.write_line("ack")

    def _switch(self, command):
        sent_at = time.monotonic_ns()
        acked = self._tell_perfs(command)
        self.relayed.append((command, acked, sent_at, time.monotonic_ns()))

    def _tell_perfs(self, command):
        """True when both perfs acknowledged command. Both are told before either is waited for:
        each perf needs a turn on CPUs the server and loadgen keep busy, and the window's error
        is the time until the later one has switched."""
        sides = ("server", "loadgen")
        for side in sides:
            self.fifos[f"{side}.ctl"].write_line(command)
        deadline = time.monotonic() + ACK_TIMEOUT_S
        answers = [self.fifos[f"{side}.ack"].read_line(max(0.0, deadline - time.monotonic())) for side in sides]
        return answers == ["ack", "ack"]

    def close(self):
        """Ends the relay, closes the FIFOs and removes the cgroups with anything left in them
        (a point that failed or was interrupted leaves its server there)."""
        self._stop.set()
        if self._thread.is_alive():
            self.fifos["window"].write_line("stop")  # wakes the relay from its wait at once
            self._thread.join()
        for fifo in self.fifos.values():
            fifo.close()
        for group in self.groups.values():
            group.remove()

    # ----------------------------------------------- what perf_counts.counts_document asks

    window_text = "loadgen's measured window (--window-fifo)"

    def window_problem(self):
        """None when the window opened and closed with both perfs acknowledging, else why not."""
        commands = [(c, ok) for c, ok, *_ in self.relayed]
        if commands != [("enable", True), ("disable", True)]:
            return f"the measured window was not relayed to perf as enable, disable: {commands}"
        return None

    @staticmethod
    def window_length_us(result):
        return ((result.get("window") or {}).get("length_s") or 0) * 1e6

    def edge_times(self, result):
        """{edge: (µs, µs)}: the span after loadgen's window edge (its start or end, which its
        line follows once loadgen's thread wakes) in which both perfs switched: from the relay's
        command to both acknowledgements (loadgen's clock and the relay's are both
        CLOCK_MONOTONIC). Not loadgen's own enable_ack_us, which also holds its sampling of the
        server's /proc at that edge (100-470 ms for 1000 threads or processes here): that delays
        loadgen's reading of the ack, not perf. loadgen's figure (0 to it) where the relay has no
        time for an edge."""
        window = result.get("window") or {}
        control = window.get("counter_control") or {}
        relayed = {command: (read, acked) for command, ok, read, acked in self.relayed if ok}
        edges = {}
        for edge, bound in (("enable", "start"), ("disable", "end")):
            at = window.get(f"{bound}_monotonic_ns") or control.get(f"{edge}_monotonic_ns")
            if at and edge in relayed:
                edges[edge] = tuple(max(0, t - at) / 1000 for t in relayed[edge])
            elif control.get(f"{edge}_ack_us") is not None:
                edges[edge] = (0.0, control[f"{edge}_ack_us"])
        return edges

    def side_counts(self, side):
        group = self.groups.get(side)
        return parse_perf_csv(self.outputs[side], self.event_names, group.rel if group else None)


def run_counting_trial(sup, trial):
    """Runs trial under perf (see the module's docstring) and adds `counts` to its result JSON:
    per request, for the server and for loadgen, or the reason there are none. Returns the
    trial's Outcome."""
    if is_remote(trial.server_host):
        return run_remote_counting_trial(sup, trial)
    reason = perf_unavailable()
    if reason:
        outcome = run_trial(sup, trial)
        _add_counts(trial.out, {"tool": None, "not_counted": reason})
        return outcome
    work = tempfile.mkdtemp(prefix="serverbench-perf-")
    counted = CountedTrial(work, sup, counting_method(sup), seconds_of(trial.duration))
    try:
        trial = dataclasses.replace(trial, counted=counted,
                                    extra_loadgen_flags=(*trial.extra_loadgen_flags, *counted.loadgen_flags()))
        outcome = run_trial(sup, trial)
    finally:
        counted.close()
    _add_counts(trial.out, counts_document(counted, read_json(trial.out)))
    shutil.rmtree(work, ignore_errors=True)
    return outcome


def run_remote_counting_trial(sup, trial):
    """run_counting_trial with the server on another host: perf counts it there
    (remote_counting.py); loadgen runs on the clients, uncounted."""
    counted = RemoteCounted(seconds_of(trial.duration))
    trial = dataclasses.replace(trial, counted=counted)
    outcome = run_trial(sup, trial)
    _add_counts(trial.out, counts_document(counted, read_json(trial.out)))
    return outcome


def per_task_note(reason):
    return reason and f"per-task counting, as cgroups cannot be used here: {reason}"


def _add_counts(path, counts):
    doc = read_json(path)
    if doc is not None:
        doc["counts"] = counts
        write_json(path, doc)
