"""A running server as the driver measures it, wherever it runs: its process tree sampled by
`loadgen sample-server` at the window's edges (ServerWindow), and its peers as its host's kernel
sees them. LocalServer is a server started here; remote_server.RemoteServer answers the same
questions for a server on a host of its own.
"""
import json
import re
import subprocess
import time

from . import processes
from .processes import wait_ready
from .ssh_session import SESSION_BOUND_S

SAMPLE_BOUND_S = 5.0
SAMPLE_LINE = re.compile(r"^\{.*\}$")


class ServerHandle:
    """What LocalServer and remote_server.RemoteServer share: `loadgen sample-server` of the server, run
    where the server runs (through command()) from its first use until the server stops. A
    handle has sup, pid, loadgen (the path where the server runs), host and sampler_log; and
    at_edge, what a counting trial does at each window edge (remote_server.RemoteServer's)."""
    _sampler = None
    at_edge = None

    def sampler(self):
        if self._sampler is None:
            argv = self.command([self.loadgen, "sample-server", "--pid", str(self.pid)])
            self._sampler = Sampler(self.sup, argv, self.sampler_log, self.host, self.at_edge)
        return self._sampler

    def close_sampler(self):
        if self._sampler is not None:
            self._sampler.close()


class LocalServer(ServerHandle):
    """A server started here: what point.run_trial and client_runs.run_loadgens ask of it."""
    address = None  # clients on other hosts reach it at their hosts-file address
    host = "local"

    def __init__(self, sup, trial, proc, pid, stop_pid=None):
        """pid: the server's, sampled; stop_pid: the process a stop signals (a server file's
        launcher, which stops its server by the file's rule), pid by default."""
        self.sup, self.trial, self.proc, self.pid, self.stop_pid = sup, trial, proc, pid, stop_pid or pid
        self.loadgen, self.sampler_log = trial.binaries.loadgen, trial.log_base + ".sampler.log"

    def alive(self):
        return processes.alive(self.pid)

    def command(self, argv):
        return list(argv)

    def target_flags(self, trial, port):
        return trial.net.target_flags(port, trial.name)

    def stop(self, sup, grace_s):
        self.close_sampler()
        return sup.stop(self.proc, grace_s, signal_pid=self.stop_pid)

    def record(self):
        return {"host": "local", "cpus": self.trial.cpus.server, "pid": self.pid}


# ----------------------------------------------------------------------- the server, measured

class Sampler:
    """`loadgen sample-server --pid P` where the server runs (here, or through ssh): one snapshot
    of the server's process tree per line asked, by loadgen's own rule (loadgen/proc_sampler.cpp,
    the one --server-pid uses)."""

    def __init__(self, sup, argv, log, where, at_edge=None):
        self.at_edge = at_edge  # at_edge(command, edge time): "enable" or "disable" a count there
        with open(log, "ab") as err:
            self.proc = sup.start(argv, subprocess.PIPE, err, f"server sampler on {where}", stdin=subprocess.PIPE)
        self.sup, self.where = sup, where
        # A first answer before any edge is asked: the ssh session and the sampler are then up, so
        # both edges wait for the same round trip and the window keeps its length.
        self.sample()

    def sample(self):
        """The snapshot (a dict; {"gone": true, ...} once the server is gone), or None when the
        sampler did not answer within SAMPLE_BOUND_S."""
        try:
            self.proc.stdin.write(b"\n")
            self.proc.stdin.flush()
        except (OSError, ValueError):
            return None
        # One answer per line asked, so nothing after the answer's line is lost.
        line, _ = wait_ready(self.proc, SAMPLE_LINE, SAMPLE_BOUND_S)
        try:
            return json.loads(line.group(0)) if line else None
        except ValueError:
            return None

    def close(self):
        try:
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass
        self.sup.stop(self.proc, 1.0)


class ServerWindow:
    """Snapshots of the server at the window's edges on the driver's clock (the first `go` plus
    the warm-up, plus the duration), and its peaks once a second in between."""

    def __init__(self, sampler, opens_at, closes_at):
        self.sampler, self.opens_at, self.closes_at = sampler, opens_at, closes_at
        self.start = self.end = None
        self.peaks = {"rss_kib": 0, "threads": 0, "processes": 0}
        self.next_peak = opens_at

    def tick(self, now, clock=time.monotonic):
        """Takes what is due; returns the seconds until the next thing to take, from the clock's
        time after taking it: each sample is a round trip (an ssh one for a remote server), and a
        wait counted from `now` would reach the window's end that much late (12-22 ms here)."""
        if self.start is None and now >= self.opens_at:
            self.switch("enable", self.opens_at)
            self.start = self.sample()
        if self.end is None and now >= self.closes_at:
            self.switch("disable", self.closes_at)
            self.end = self.sample()
        if now >= self.next_peak and self.end is None:
            self.sample()
            self.next_peak = now + 1.0
        due = [t for t, done in ((self.opens_at, self.start), (self.closes_at, self.end)) if done is None]
        return max(0.0, min(due + ([self.next_peak] if self.end is None else [])) - clock()) if due else 3600.0

    def switch(self, command, edge_at):
        """A counting trial's counters switched at the edge, before the sample: both edges then
        wait for the same two round trips, and the window keeps its length."""
        if self.sampler.at_edge:
            self.sampler.at_edge(command, edge_at)

    def sample(self):
        snap = self.sampler.sample()
        if not snap or snap.get("gone"):
            return {}
        for key in self.peaks:
            self.peaks[key] = max(self.peaks[key], snap[key])
        return snap

    def seconds(self):
        """The window's length between the two snapshots, on the server host's own clock."""
        return (self.end["monotonic_ns"] - self.start["monotonic_ns"]) / 1e9

    def figures(self, requests, where):
        if not self.start or not self.end:
            return None
        user = self.end["cpu_user_s"] - self.start["cpu_user_s"]
        system = self.end["cpu_sys_s"] - self.start["cpu_sys_s"]
        return {"pid": self.end["pid"], "cpu_user_s": user, "cpu_sys_s": system,
                "cpu_us_per_request": (user + system) * 1e6 / requests if requests else None,
                "ctx_switches_voluntary": self.end["ctx_switches_voluntary"] - self.start["ctx_switches_voluntary"],
                "ctx_switches_involuntary":
                    self.end["ctx_switches_involuntary"] - self.start["ctx_switches_involuntary"],
                "peak_rss_kib": self.peaks["rss_kib"], "peak_threads": self.peaks["threads"],
                "peak_processes": self.peaks["processes"], "window_s": round(self.seconds(), 6),
                "measured_by": f"loadgen sample-server on {where}, asked by the driver at the window's edges "
                               "on its own clock; window_s is the time between the two samples on the "
                               "server host's clock"}

    def utilisation(self, figures):
        allowed = self.end.get("cpus_allowed_count") if figures else None
        if not figures or not allowed or self.seconds() <= 0:
            return None
        return (figures["cpu_user_s"] + figures["cpu_sys_s"]) / (self.seconds() * allowed)


def server_peers(sup, server, port):
    """{peer address: established connections} to the server's port, as the server host's kernel
    sees them (`ss`, run there): the proof that each client's connections came from its own
    address."""
    argv = server.command(["ss", "-Htn", "state", "established", f"( sport = :{port} )"])
    proc = sup.start(argv, subprocess.PIPE, subprocess.DEVNULL, "ss on the server's host")
    try:
        out, _ = proc.communicate(timeout=SESSION_BOUND_S)
    except subprocess.TimeoutExpired:
        out = None
    sup.stop(proc, 0.5)
    if out is None:
        return None
    peers = {}
    for line in out.decode(errors="replace").splitlines():
        fields = line.split()
        if len(fields) >= 4:
            address = fields[3].rsplit(":", 1)[0].strip("[]")
            peers[address] = peers.get(address, 0) + 1
    return peers
