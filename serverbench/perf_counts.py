"""What perf is asked to count, and what its answers mean per request: the events (every
system call, the calls the models make by name, switches with their voluntary share, migrations,
page faults, CPU time), perf's CSV read back, and a trial's `counts` document, for a counting
trial here (counting.py) or with its server on another host (remote_counting.py).
"""
import re

# The system calls counted by name: what a server, its threads and loadgen make. Each is the one
# raw_syscalls:sys_enter tracepoint with an in-kernel filter on the call's number: perf sets that
# up in milliseconds, where it takes about 35 ms per syscalls:sys_enter_<name> tracepoint (1.4 s
# for these, per perf, per trial). raw_syscalls unfiltered counts all of them.
# Per-task counting (the fallback) switches every counter on task by task (a prefork server has
# 65), so the list is kept to the calls the models make per request or per connection.
# Datagrams add the message calls a UDP server loops on: one datagram each, or a batch.
NAMED_SYSCALLS = ("read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg", "recvmmsg",
                  "sendmmsg", "accept4", "close", "epoll_wait", "epoll_ctl", "poll", "pselect6", "io_uring_enter",
                  "futex", "clone", "clone3", "wait4", "setsockopt", "rt_sigprocmask", "madvise")
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


# Fewer requests than this in a counting window (a starved server on a loaded machine) make
# per-request figures of start-up noise: the point says so instead.
MIN_REQUESTS = 100
# perf counts from the moment it handles `enable` to the moment it handles `disable`, each within a
# span known after loadgen's write (edge_times: from the relay's reading of the line to both perfs'
# acknowledgements); loadgen counts requests from its write. The counts are scaled to loadgen's window by the midpoints of
# both switches (window_scale), which leaves an error of at most half the switches' time; a switch
# slower than this share of the window (a starved perf on a loaded machine) says so instead of a
# skewed figure.
MAX_SWITCH_SHARE = 0.15
TOP_SYSCALLS = 8
# perf and the relay run at this real-time priority where the driver may set one (root): each
# needs a turn on CPUs that the server and loadgen keep busy (perf -a visits every CPU to switch
# its counters there), which took up to 130 ms at SCHED_OTHER on the 2-CPU VM, under 1 ms at
# SCHED_FIFO. They sleep outside the window's edges and the end's read-out, and with
# SCHED_RESET_ON_FORK the server and loadgen perf starts run at the ordinary policy.
SWITCH_PRIORITY = 10
CHRT = ("chrt", "--fifo", "--reset-on-fork", str(SWITCH_PRIORITY))

def parse_perf_csv(path, names, cgroup=None):
    """parse_perf_lines of the file perf wrote with -o (an empty document says why when there is none)."""
    try:
        with open(path) as f:
            return parse_perf_lines(f.read().splitlines(), names, cgroup)
    except OSError:
        return {"_missing": ["no perf output"]}


def parse_perf_lines(lines, names, cgroup=None):
    """{name: count} from `perf stat -x,` output, whose counter lines come in the order of the
    events given (names); a counter perf could not count, or counted outside cgroup (the fourth
    field names the cgroup when perf counted one), is left out and listed under "_missing"."""
    counts, missing = {}, []
    rows = [line.split(",") for line in lines if line and not line.startswith("#") and len(line.split(",")) >= 3]
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


def counts_document(counted, result):
    """A counting trial's `counts`: per request, for each side perf counted, or why there are
    none. counted is the trial's counting.CountedTrial or remote_counting.RemoteCounted: its
    method, window (window_problem, window_length_us, edge_times) and each side's perf counts."""
    tool = {"tool": "perf stat", "method": counted.method}
    if counted.method_note:
        tool["method_note"] = counted.method_note
    problem = counted.window_problem()
    if problem or not result:
        return {**tool, "not_counted": problem or "no result"}
    length_us, edges = counted.window_length_us(result), counted.edge_times(result)
    late = switch_too_slow(length_us, edges)
    requests = result["totals"]["requests"]
    if late:
        return {**tool, "requests": requests, "not_counted": late}
    if requests < MIN_REQUESTS:
        return {**tool, "requests": requests,
                "not_counted": f"only {requests} requests in the counting window (fewer than {MIN_REQUESTS})"}
    scale = window_scale(length_us, edges)
    # perf's counts scaled to loadgen's window: the same as dividing by the requests of perf's.
    perf_requests = requests / scale
    server = result.get("server") or {}
    split = (server.get("ctx_switches_voluntary"), server.get("ctx_switches_involuntary"))
    loadgen = counted.side_counts("loadgen")
    return {**tool, "window": counted.window_text, "requests": requests, "window_scale": round(scale, 4),
            "switch_ms": {edge: [round(us / 1000, 2) for us in span] for edge, span in edges.items()},
            "server": per_request(counted.side_counts("server"), perf_requests,
                                  [v * scale for v in split] if None not in split else None),
            "loadgen": per_request(loadgen, perf_requests) if loadgen is not None else None,
            **({} if loadgen is not None else {"loadgen_not_counted": counted.loadgen_note})}


def window_scale(length_us, edges):
    """loadgen's window over perf's, perf's switches taken at the middle of the span each is known
    to lie in (1 when an edge is unknown)."""
    on, off = edges.get("enable"), edges.get("disable")
    if not length_us or on is None or off is None:
        return 1.0
    return length_us / (length_us - sum(on) / 2 + sum(off) / 2)


def switch_too_slow(length_us, edges):
    """Why the counters' window does not match loadgen's, or None."""
    for edge, (_, took) in edges.items():
        if length_us and took > MAX_SWITCH_SHARE * length_us:
            return (f"perf took {took / 1000:.1f} ms to {edge} its counters, over "
                    f"{MAX_SWITCH_SHARE:.0%} of the {length_us / 1000:.0f} ms window")
    return None
