"""Counting with the server on a host of its own (`server HOST` in the hosts file): perf runs on
the server's host, started by the ssh session that runs the server there (remote_server.py's
wrapper, with the start, forward, stop and report steps below), and switched on and off at the
driver's window edges (server_handle.ServerWindow: first go + warm-up, + duration) by an
`enable` or `disable` line on that session's stdin, which the wrapper writes to perf's control
FIFO; perf's `ack` comes back on the session's stdout. loadgen runs on the clients, so only the
server is counted.

The method is chosen on that host as here (counting.py): the server in a cgroup v2 of its own
under `perf stat -a -G`, else per task, else not counted (no perf there); a probe, once per host
and run, shows which works. The cgroup is removed by the wrapper when the server ends, which it
does when the session ends however the driver ends; one left by a wrapper killed outright is
removed by the next counting trial on that host.
"""
import os
import re
import shlex
import subprocess
import time

from .perf_counts import CHRT, event_args, parse_perf_lines
from .processes import wait_ready
from .ssh_session import sh_command

ACK_TIMEOUT_S = 2.0
PROBE_BOUND_S = 30.0
ACK_LINE = re.compile(r"^\W*ack$")

# Shell functions of the probe and of the server's wrapper: find the cgroup v2 that perf -G names
# are relative to (perf 6.1: a v1 perf_event hierarchy first, else the last cgroup2 mount), make
# ours under the wrapper's own cgroup, remove one with whatever is left in it, and sweep those of
# owners that are gone. A name is serverbench-<pid namespace>-<owner pid>-<driver pid>-<side>, in
# cgroups.py's pattern: the owner is the wrapper (its pid on that host), the driver's pid (on its
# own machine) says which run made it; only names of the wrapper's pid namespace are swept.
CGROUP_SH = r"""
find_cgroup() {
    cgroot=; v1=; own=
    while read -r _ mnt type opts _; do
        case $type in cgroup2) cgroot=$mnt ;; cgroup) case ,$opts, in *,perf_event,*) v1=$mnt ;; esac ;; esac
    done </proc/mounts
    [ -z "$v1" ] || { why="perf would use the cgroup v1 perf_event hierarchy at $v1"; return 1; }
    [ -n "$cgroot" ] || { why="no cgroup v2 is mounted"; return 1; }
    while IFS= read -r line; do case $line in 0::*) own=${line#0::} ;; esac; done </proc/self/cgroup
    own=${own#/}; own=${own%/}
    [ -z "$own" ] || [ -d "$cgroot/$own" ] || own=
    ns=$(readlink /proc/self/ns/pid); ns=${ns#pid:?}; ns=${ns%?}    # pid:[N] -> N
    for old in "$cgroot/${own:+$own/}"serverbench-"$ns"-*; do
        p=${old##*/serverbench-"$ns"-}; p=${p%%-*}
        case $p in ''|*[!0-9]*) continue ;; esac
        [ ! -d "$old" ] || [ -d "/proc/$p" ] || remove_cgroup "$old"
    done
}
make_cgroup() {
    rel=${own:+$own/}serverbench-$ns-$$-$driver-$1; cg=$cgroot/$rel
    mkdir "$cg" 2>/dev/null || { why="cannot make a cgroup at $cg"; rel=; cg=; return 1; }
}
remove_cgroup() {
    echo 1 >"$1/cgroup.kill" 2>/dev/null
    i=0
    while ! rmdir "$1" 2>/dev/null && [ -d "$1" ] && [ $i -lt 100 ]; do sleep 0.02; i=$((i+1)); done
}
perf_args() {
    G=; [ -z "$rel" ] && return
    names=; i=0
    while [ $i -lt $count ]; do names=$names${names:+,}$rel; i=$((i+1)); done
    G="-a -G '$names'"
}
JOIN='exec 3>&-; echo $$ >"$0" && { [ -z "$1" ] || echo $$ >"$1/cgroup.procs"; } && shift && exec "$@"'
"""

# The probe: `method cgroup|per-task|none WHY` for this host, by counting `true` with our events.
# Arguments: DRIVER_PID COUNT EVENTS.
PROBE_SCRIPT = CGROUP_SH + r"""
driver=$1; count=$2; events=$3; why=
d=$(mktemp -d "${TMPDIR:-/tmp}/serverbench-count.XXXXXX") || { echo "method none no temporary folder"; exit 0; }
counts_all() {
    perf_args
    eval "perf stat -x, -o \"\$d/probe.csv\" $events $G -- sh -c \"\$JOIN\" \"\$d/pid\" \"\$cg\" true" \
        >/dev/null 2>&1 || return 1
    n=0
    while IFS= read -r l; do case $l in ''|'#'*) ;; *'<not'*) return 1 ;; *) n=$((n+1)) ;; esac; done <"$d/probe.csv"
    [ $n -eq $count ]
}
if ! command -v perf >/dev/null 2>&1; then
    echo "method none perf is not installed on $(uname -n)"
elif find_cgroup && make_cgroup probe && counts_all; then
    remove_cgroup "$cg"; echo "method cgroup"
else
    [ -z "$cg" ] || { remove_cgroup "$cg"; why="perf stat -a -G did not count every event in a cgroup"; }
    rel=; cg=
    if counts_all; then echo "method per-task $why"; else echo "method none perf stat failed on $(uname -n)"; fi
fi
rm -rf "$d"
"""

# The wrapper's steps when it counts (remote_server.SERVER_SCRIPT runs start, forward, stop and
# report). Arguments: DRIVER_PID METHOD COUNT EVENTS SERVER_ARGV...; EVENTS is perf's event
# options, quoted for the shell. perf takes its switch on fd 3 (a FIFO the forward step writes to) and writes its
# acks on fd 1, the session's stdout.
COUNTED_STEPS = CGROUP_SH + r"""
start() {
    driver=$1; method=$2; count=$3; events=$4; shift 4; rel=; cg=; why=
    d=$(mktemp -d "${TMPDIR:-/tmp}/serverbench-count.XXXXXX") || exit 97
    if [ "$method" = cgroup ] && ! { find_cgroup && make_cgroup server; }; then method=per-task; fi
    perf_args
    prio=; @CHRT@ true 2>/dev/null && prio="@CHRT@"
    mkfifo "$d/ctl" && exec 3<>"$d/ctl" || exit 97
    eval "setsid $prio perf stat -D -1 --control fd:3,1 -x, -o \"\$d/perf.csv\" $events $G -- \
        sh -c \"\$JOIN\" \"\$d/pid\" \"\$cg\" \"\$@\" &"
    srv=$!
}
forward() { case $1 in enable|disable) printf '%s\n' "$1" >&3 ;; esac; }
stop() { p=$srv; [ -s "$d/pid" ] && read -r p <"$d/pid"; kill -TERM $p; }
report() {
    echo "count-method $method ${rel:--} $why"
    [ ! -f "$d/perf.csv" ] || while IFS= read -r l; do echo "perf: $l"; done <"$d/perf.csv"
    [ -z "$cg" ] || remove_cgroup "$cg"
    rm -rf "$d"
}
""".replace("@CHRT@", " ".join(CHRT))

_methods = {}


def probe_method(sup, server, event_count, events):
    """(method, why) on the server's host, asked once per host and run."""
    key = server.host
    if key not in _methods:
        argv = server.session.ssh(sh_command(PROBE_SCRIPT, str(os.getpid()), str(event_count), events))
        with open(server.sampler_log, "ab") as err:
            proc = sup.start(argv, subprocess.PIPE, err, f"count probe on {server.host}")
            try:
                out, _ = proc.communicate(timeout=PROBE_BOUND_S)
            except subprocess.TimeoutExpired:
                out = b""
            sup.stop(proc, 0.5)
        said = re.search(r"^method (\S+) ?(.*)$", out.decode(errors="replace"), re.M)
        _methods[key] = (said.group(1), said.group(2).strip() or None) if said else \
            ("none", f"the count probe on {server.host} said nothing (ssh exited {proc.returncode})")
    return _methods[key]


class RemoteCounted:
    """One counting trial whose server is on another host: the wrapper's counting steps and their
    arguments, the window's switches through the session, and what the wrapper reported at the
    end. Answers perf_counts.counts_document as counting.CountedTrial does."""
    window_text = ("the driver's window edges (first go + warm-up, + duration), switched through the "
                   "server's ssh session; perf ran on the server's host")
    loadgen_note = "loadgen ran on the hosts file's clients, where perf does not count"

    def __init__(self, duration_s):
        self.events, self.event_names = event_args()
        self.duration_us = duration_s * 1e6
        self.method, self.method_note, self.rel = None, None, None
        self.relayed = []            # (command, acked, sent ns, ack ns, the edge's ns)
        self.perf_lines = None

    def wrapper(self, sup, server):
        """(the wrapper's counting steps, their arguments before the server's argv); without perf
        on that host, None: the server runs uncounted and the counts say why."""
        quoted = shlex.join(self.events)
        self.method, why = probe_method(sup, server, len(self.event_names), quoted)
        self.method_note = why and f"{self.method} on {server.host}: {why}"
        if self.method == "none":
            return None
        return COUNTED_STEPS, [str(os.getpid()), self.method, str(len(self.event_names)), quoted]

    def switch(self, proc, command, edge_at):
        """command to perf through the session's stdin, its ack awaited on the session's stdout;
        edge_at: the window edge it stands for (time.monotonic)."""
        sent = time.monotonic_ns()
        acked = False
        if self.method in ("cgroup", "per-task"):
            try:
                proc.stdin.write(f"{command}\n".encode())
                proc.stdin.flush()
                acked = wait_ready(proc, ACK_LINE, ACK_TIMEOUT_S)[0] is not None
            except (OSError, ValueError):
                pass
        self.relayed.append((command, acked, sent, time.monotonic_ns(), int(edge_at * 1e9)))

    def take_report(self, said):
        """What the wrapper printed after the server's exit: the method it used, perf's CSV."""
        text = said.replace(b"\0", b"").decode(errors="replace")
        used = re.search(r"^count-method (\S+) (\S+) ?(.*)$", text, re.M)
        if used:
            self.method, self.rel = used.group(1), None if used.group(2) == "-" else used.group(2)
            if used.group(3).strip():
                self.method_note = used.group(3).strip()
        self.perf_lines = re.findall(r"^perf: (.*)$", text, re.M) if used else None

    # ----------------------------------------------- what perf_counts.counts_document asks

    def window_problem(self):
        if self.method == "none":
            return self.method_note or "perf does not count on the server's host"
        if self.perf_lines is None:
            return "the server's host reported no counts (its wrapper ended without them)"
        commands = [(c, ok) for c, ok, *_ in self.relayed]
        if commands != [("enable", True), ("disable", True)]:
            return f"the window was not switched through the server's session as enable, disable: {commands}"
        return None

    def window_length_us(self, _result):
        return self.duration_us

    def edge_times(self, _result):
        """{edge: (µs, µs)} after the driver's window edge: perf switched between the line's
        sending and its ack's arrival (an ssh round trip)."""
        return {command: ((sent - edge) / 1000, (acked - edge) / 1000)
                for command, ok, sent, acked, edge in self.relayed if ok}

    def side_counts(self, side):
        if side != "server":
            return None
        return parse_perf_lines(self.perf_lines or [], self.event_names, self.rel)
