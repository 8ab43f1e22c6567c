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
import re
import select
import shutil
import subprocess
import tempfile
import threading
import time

from .cgroups import Cgroup, CgroupUnavailable, cleanup_leftovers
from .jsonfile import read_json, write_json
from .log import log
from .point import run_trial

# The system calls counted by name: what a server, its threads and loadgen make. Each is the one
# raw_syscalls:sys_enter tracepoint with an in-kernel filter on the call's number: perf sets that
# up in milliseconds, where it takes about 35 ms per syscalls:sys_enter_<name> tracepoint (1.4 s
# for these, per perf, per trial). raw_syscalls unfiltered counts all of them.
# Per-task counting (the fallback) switches every counter on task by task (a prefork server has
# 65), so the list is kept to the calls the models make per request or per connection.
NAMED_SYSCALLS = ("read", "write", "readv", "writev", "recvfrom", "sendto", "accept4", "close", "epoll_wait",
                  "epoll_ctl", "poll", "pselect6", "io_uring_enter", "futex", "clone", "clone3", "wait4",
                  "setsockopt", "rt_sigprocmask", "madvise")
BASE_EVENTS = ("task-clock", "context-switches", "cpu-migrations", "page-faults", "raw_syscalls:sys_enter")
# The voluntary switches: sched_switch away from a task that sleeps (prev_state holds a task state,
# mask 0xff; a preempted task shows 0 or TASK_REPORT_MAX, 0x100), the kernel's own rule for nvcsw.
# Counted by perf over the window itself, with the threads and children that ended in it, which
# /proc (loadgen's sampler, at edges it reaches late when it reads 1000 threads) cannot.
VOLUNTARY = ("voluntary-switches", ("-e", "sched:sched_switch", "--filter", "prev_state & 255"))
UNISTD_HEADERS = ("/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm-generic/unistd.h")


def syscall_numbers():
    """{name: number} of NAMED_SYSCALLS on this machine, from the kernel's headers (linux-libc-dev,
    which the compiler brings); empty when none is readable: then only totals are counted."""
    for header in UNISTD_HEADERS:
        try:
            with open(header) as f:
                text = f.read()
        except OSError:
            continue
        numbers = dict(re.findall(r"#define __NR_(\w+)\s+(\d+)\b", text))
        return {name: int(numbers[name]) for name in NAMED_SYSCALLS if name in numbers}
    return {}


def event_args():
    """perf stat's -e/--filter arguments, and the name of each counter line in output order."""
    args, names = ["-e", ",".join(BASE_EVENTS), *VOLUNTARY[1]], [*BASE_EVENTS, VOLUNTARY[0]]
    for name, number in syscall_numbers().items():
        args += ["-e", "raw_syscalls:sys_enter", "--filter", f"id == {number}"]
        names.append(f"syscall:{name}")
    return args, names


def cgroup_args(cgroup_rel, names):
    """perf's -G after every event: perf 6.1 gives the Nth name of the list to the Nth event (one
    name alone would go to the events defined so far only), so the name is given once per event."""
    return ["-G", ",".join([cgroup_rel] * len(names))]


ACK_TIMEOUT_S = 2.0
# Fewer requests than this in a counting window (a starved server on a loaded machine) make
# per-request figures of start-up noise: the point says so instead.
MIN_REQUESTS = 100
# perf counts from the moment it handles `enable` to the moment it handles `disable`, each somewhere
# between loadgen's write and both perfs' acknowledgements reaching the relay (edge_times); loadgen
# counts requests from its write. The counts are scaled to loadgen's window by the midpoints of
# both switches (window_scale), which leaves an error of at most half the switches' time; a switch
# slower than this share of the window (a starved perf on a loaded machine) says so instead of a
# skewed figure.
MAX_SWITCH_SHARE = 0.15
# perf and the relay run at this real-time priority where the driver may set one (root): each
# needs a turn on CPUs that the server and loadgen keep busy (perf -a visits every CPU to switch
# its counters there), which took up to 130 ms at SCHED_OTHER on the 2-CPU VM, under 1 ms at
# SCHED_FIFO. They sleep outside the window's edges and the end's read-out, and with
# SCHED_RESET_ON_FORK the server and loadgen perf starts run at the ordinary policy.
SWITCH_PRIORITY = 10
CHRT = ("chrt", "--fifo", "--reset-on-fork", str(SWITCH_PRIORITY))
TOP_SYSCALLS = 8
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
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"perf stat -a -G: {e}"
    counts = parse_perf_csv(out, names, group.rel)
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

    def __init__(self, work_dir, sup=None, method=("per-task", None)):
        self.dir = work_dir
        os.makedirs(work_dir, exist_ok=True)
        self.fifos = {name: Fifo(os.path.join(work_dir, name)) for name in
                      ("server.ctl", "server.ack", "loadgen.ctl", "loadgen.ack", "window", "window.ack")}
        self.outputs = {side: os.path.join(work_dir, f"{side}.perf.csv") for side in ("server", "loadgen")}
        self.relayed = []
        self.events, self.event_names = event_args()
        self.method, self.method_note = method
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
            self.method, self.method_note = "per-task", str(e)
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

    def cgroup_of(self, side):
        group = self.groups.get(side)
        return group.rel if group else None

    def loadgen_flags(self):
        return ("--window-fifo", f"{self.fifos['window'].path},{self.fifos['window.ack'].path}")

    def start_relay(self):
        self._thread.start()

    def _relay(self):
        """loadgen's window lines to both perfs; relayed gets (command, acknowledged by both,
        CLOCK_MONOTONIC ns when both acknowledged), the clock loadgen stamps its lines with."""
        raise_own_priority()
        window, ack = self.fifos["window"], self.fifos["window.ack"]
        while not self._stop.is_set():
            command = window.read_line(0.2)
            if command not in ("enable", "disable"):
                continue
            acked = self._tell_perfs(command)
            self.relayed.append((command, acked, time.monotonic_ns()))
            ack.write_line("ack")

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
            self._thread.join()
        for fifo in self.fifos.values():
            fifo.close()
        for group in self.groups.values():
            group.remove()

    def window_problem(self):
        """None when the window opened and closed with both perfs acknowledging, else why not."""
        commands = [(c, ok) for c, ok, _ in self.relayed]
        if commands != [("enable", True), ("disable", True)]:
            return f"the measured window was not relayed to perf as enable, disable: {commands}"
        return None


def parse_perf_csv(path, names, cgroup=None):
    """{name: count} from `perf stat -x,` output, whose counter lines come in the order of the
    events given (names); a counter perf could not count, or counted outside cgroup (the fourth
    field names the cgroup when perf counted one), is left out and listed under "_missing"."""
    counts, missing = {}, []
    try:
        with open(path) as f:
            lines = [line for line in f.read().splitlines() if line and not line.startswith("#")]
    except OSError:
        return {"_missing": ["no perf output"]}
    rows = [line.split(",") for line in lines if len(line.split(",")) >= 3]
    if len(rows) != len(names):
        return {"_missing": [f"perf printed {len(rows)} counters for {len(names)} events"]}
    for name, fields in zip(names, rows):
        try:
            if cgroup is not None and (len(fields) < 4 or fields[3] != cgroup):
                raise ValueError(f"counted outside {cgroup}")
            counts[name] = float(fields[0])
        except ValueError:
            missing.append(name)
    if missing:
        counts["_missing"] = missing
    return counts


def per_request(counts, requests, ctx_split=None):
    """The counts of one side, per request. The voluntary/involuntary split of the switches is
    perf's (VOLUNTARY); without it, ctx_split's: what /proc gave for about the same window."""
    if not requests:
        return None
    syscalls = {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("syscall:")}
    top = sorted(((name, v / requests) for name, v in syscalls.items() if v), key=lambda kv: -kv[1])[:TOP_SYSCALLS]
    if counts.get("raw_syscalls:sys_enter") is not None:
        other = counts["raw_syscalls:sys_enter"] - sum(v for _, v in top) * requests
        top.append(("(others)", max(0.0, other) / requests))
    out = {"syscalls_per_request": _div(counts.get("raw_syscalls:sys_enter"), requests),
           "context_switches_per_request": _div(counts.get("context-switches"), requests),
           "cpu_migrations_per_request": _div(counts.get("cpu-migrations"), requests),
           "page_faults_per_request": _div(counts.get("page-faults"), requests),
           "task_clock_us_per_request": _div(counts.get("task-clock"), requests / 1000.0),
           "top_syscalls_per_request": {name: round(v, 4) for name, v in top}}
    voluntary, total = counts.get(VOLUNTARY[0]), counts.get("context-switches")
    if voluntary is not None and total is not None:
        ctx_split = (voluntary, max(0.0, total - voluntary))
    if ctx_split:
        out["voluntary_switches_per_request"] = _div(ctx_split[0], requests)
        out["involuntary_switches_per_request"] = _div(ctx_split[1], requests)
    if counts.get("_missing"):
        out["not_counted"] = counts["_missing"]
    return out


def _div(value, requests):
    return None if value is None else round(value / requests, 4)


def run_counting_trial(sup, trial):
    """Runs trial under perf (see the module's docstring) and adds `counts` to its result JSON:
    per request, for the server and for loadgen, or the reason there are none. Returns the
    trial's Outcome."""
    reason = perf_unavailable()
    if reason:
        outcome = run_trial(sup, trial)
        _add_counts(trial.out, {"tool": None, "not_counted": reason})
        return outcome
    work = tempfile.mkdtemp(prefix="serverbench-perf-")
    counted = CountedTrial(work, sup, counting_method(sup))
    try:
        trial = dataclasses.replace(trial, counted=counted,
                                    extra_loadgen_flags=(*trial.extra_loadgen_flags, *counted.loadgen_flags()))
        outcome = run_trial(sup, trial)
    finally:
        counted.close()
    _add_counts(trial.out, counts_of(counted, read_json(trial.out)))
    shutil.rmtree(work, ignore_errors=True)
    return outcome


def counts_of(counted, result):
    tool = {"tool": "perf stat", "method": counted.method}
    if counted.method_note:
        tool["method_note"] = f"per-task counting, as cgroups cannot be used here: {counted.method_note}"
    problem = counted.window_problem()
    if problem or not result:
        return {**tool, "not_counted": problem or "no result"}
    length_us = ((result.get("window") or {}).get("length_s") or 0) * 1e6
    edges = edge_times(counted, result)
    late = switch_too_slow(length_us, edges)
    if late:
        return {**tool, "requests": result["totals"]["requests"], "not_counted": late}
    requests = result["totals"]["requests"]
    if requests < MIN_REQUESTS:
        return {**tool, "requests": requests,
                "not_counted": f"only {requests} requests in the counting window (fewer than {MIN_REQUESTS})"}
    server = result.get("server") or {}
    split = (server.get("ctx_switches_voluntary"), server.get("ctx_switches_involuntary"))
    scale = window_scale(length_us, edges)
    # perf's counts scaled to loadgen's window: the same as dividing by the requests of perf's.
    perf_requests = requests / scale

    def side(name):
        return parse_perf_csv(counted.outputs[name], counted.event_names, counted.cgroup_of(name))
    return {**tool, "window": "loadgen's measured window (--window-fifo)", "requests": requests,
            "window_scale": round(scale, 4), "switch_ms": {edge: round(us / 1000, 2) for edge, us in edges.items()},
            "server": per_request(side("server"), perf_requests, [v * scale for v in split] if None not in split else None),
            "loadgen": per_request(side("loadgen"), perf_requests)}


def edge_times(counted, result):
    """{edge: µs from loadgen's line to both perfs' acknowledgement at the relay}. Not loadgen's
    own enable_ack_us, which also holds its sampling of the server's /proc at that edge (100-300
    ms for 1000 threads or processes here): that sampling delays loadgen's reading of the ack, not
    perf. Falls back to loadgen's figure when the relay has no time for an edge."""
    control = (result.get("window") or {}).get("counter_control") or {}
    acked = {command: at for command, ok, at in counted.relayed if ok}
    edges = {}
    for edge in ("enable", "disable"):
        sent = control.get(f"{edge}_monotonic_ns")
        if sent and edge in acked:
            edges[edge] = max(0, acked[edge] - sent) / 1000
        elif control.get(f"{edge}_ack_us") is not None:
            edges[edge] = control[f"{edge}_ack_us"]
    return edges


def window_scale(length_us, edges):
    """loadgen's window over perf's, perf's taken from the midpoints of its switches (1 when an
    edge's time is unknown)."""
    on, off = edges.get("enable"), edges.get("disable")
    if not length_us or on is None or off is None:
        return 1.0
    return length_us / (length_us - on / 2 + off / 2)


def switch_too_slow(length_us, edges):
    """Why the counters' window does not match loadgen's, or None."""
    for edge, took in edges.items():
        if length_us and took > MAX_SWITCH_SHARE * length_us:
            return (f"perf took {took / 1000:.1f} ms to {edge} its counters, over "
                    f"{MAX_SWITCH_SHARE:.0%} of the {length_us / 1000:.0f} ms window")
    return None


def _add_counts(path, counts):
    doc = read_json(path)
    if doc is not None:
        doc["counts"] = counts
        write_json(path, doc)
