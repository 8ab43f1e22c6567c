"""One trial's data: what runs (the model, the point, the binaries), where (CPUs, network,
hosts), for how long, and where its result and logs go. Built in one place (trial_at), run by
point.run_trial or counting.run_counting_trial.
"""
import os
import sys
from dataclasses import dataclass, field
from typing import Protocol

from .hosts_file import Client, Server, listening_everywhere
from .network import Loopback
from .scenarios import REQUEST_TIMEOUT, PointSpec


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A server file's server is started by serverbench.launch_server, of this checkout (env execs: the
# pid stays the launcher's).
LAUNCHER = ["env", f"PYTHONPATH={ROOT}", sys.executable, "-P", "-m", "serverbench.launch_server"]


@dataclass(frozen=True)
class Binaries:
    """Where a side's executables are: server-<model> in bin_dir, and the loadgen that measures;
    and the run's server files (server_file.ServerFile), each run like a model by launch_server.py."""
    bin_dir: str
    loadgen: str
    server_files: tuple = ()

    def server(self, model):
        return os.path.join(self.bin_dir, f"server-{model}")

    def server_file(self, model):
        """The model's server_file.ServerFile, or None for one of the suite's binaries."""
        return next((f for f in self.server_files if f.name == model), None)

    def server_argv(self, model):
        """The command that starts the model, before its flags."""
        server_file = self.server_file(model)
        return [*LAUNCHER, server_file.path] if server_file else [self.server(model)]


@dataclass(frozen=True)
class CpuLayout:
    server: str
    loadgen: str
    loadgen_threads: int

    @staticmethod
    def for_point(ncpu, all_cpus):
        """The server gets CPU 0, the load generator the rest; a scenario about using cores gives
        the server every CPU, sharing the last with loadgen."""
        if ncpu < 2:
            return CpuLayout("0", "0", 1)
        rest = "1" if ncpu == 2 else f"1-{ncpu - 1}"
        return CpuLayout(f"0-{ncpu - 1}" if all_cpus else "0", rest, ncpu - 1)


class Counting(Protocol):
    """What point.run_trial asks of a counting trial (counting.CountedTrial): each side's command
    wrapped for counting, and the relay of loadgen's window started."""
    def wrap(self, side: str, argv: list) -> list: ...

    def start_relay(self) -> None: ...


class RemoteCounting(Protocol):
    """What remote_server.RemoteServer asks of a counting trial whose server is on another host
    (remote_counting.RemoteCounted): its wrapper's counting steps, the switch at each window edge
    through the server's session, and the wrapper's report at the end."""
    def wrapper(self, sup, server) -> tuple | None: ...

    def switch(self, proc, command: str, edge_at: float) -> None: ...

    def take_report(self, said: bytes) -> None: ...


@dataclass
class Trial:
    """Everything one run of one point needs."""
    model: str
    spec: PointSpec
    binaries: Binaries
    out: str                         # result JSON path
    log_base: str                    # logs/<...>/<label>-rN: .server.log, .loadgen.log, ...
    warmup: str
    duration: str
    cpus: CpuLayout
    net: Loopback                    # network.py (Loopback or a subclass): where the traffic goes
    timeout: str                     # loadgen's --timeout, and the idle holder's settle bound
    extra_loadgen_flags: tuple = ()
    counted: Counting | RemoteCounting = None  # a counting trial (counting.py, remote_counting.py)
    clients: tuple[Client, ...] = () # loadgen runs on these (--hosts), not here
    server_host: Server = None       # where the server runs (--hosts); None: here

    @property
    def name(self):
        """Unique within the run (a Unix socket's file name)."""
        return os.path.relpath(self.log_base, os.path.dirname(os.path.dirname(os.path.dirname(self.log_base)))
                               ).replace("/", "-")

    @property
    def window_s(self):
        """Warm-up and measured window, in seconds."""
        return seconds_of(self.warmup) + seconds_of(self.duration)


def trial_at(run_path, rel, model, spec, binaries, *, warmup, duration, net, timeout=REQUEST_TIMEOUT, hosts=None,
             extra=()):
    """The Trial whose result is rel (points/...json) in the run folder run_path, its logs at the
    same name under logs/. hosts: the run's settings.HostsSettings, whose clients then make the
    load (and the server listens on every address so that their links reach it)."""
    assert rel.startswith("points/") and rel.endswith(".json"), rel
    clients = hosts.clients if hosts else ()
    return Trial(model=model, spec=listening_everywhere(spec) if clients else spec, binaries=binaries,
                 out=os.path.join(run_path, rel),
                 log_base=os.path.join(run_path, "logs", rel[len("points/"):-len(".json")]),
                 warmup=warmup, duration=duration, net=net, timeout=timeout, extra_loadgen_flags=tuple(extra),
                 cpus=CpuLayout.for_point(os.cpu_count() or 1, spec.all_cpus),
                 clients=clients, server_host=hosts.server if clients else None)


@dataclass
class Outcome:
    status: str = "ok"               # ok | failed | unsupported
    reasons: list = field(default_factory=list)

    @property
    def reason(self):
        return "; ".join(self.reasons)

    def fail(self, reason):
        self.status = "failed"
        self.reasons.append(reason)


def seconds_of(duration):
    d = str(duration)
    if d.endswith("ms"):
        return float(d[:-2]) / 1000
    return float(d[:-1]) if d.endswith("s") else float(d)


def flag_value(flags, name):
    flags = list(flags)
    return flags[flags.index(name) + 1] if name in flags[:-1] else None


def without_flag(flags, name):
    flags, out, i = list(flags), [], 0
    while i < len(flags):
        if flags[i] == name:
            i += 2
            continue
        out.append(flags[i])
        i += 1
    return out


def loadgen_command(trial, loadgen, target, *, connections, threads, cpus, out, rate=None, extra=()):
    """The one loadgen command line of a trial, here or on a client: target is its --host/--port
    (or --unix) flags; rate replaces the point's --rate (a client's share of it); extra are the
    flags of where it runs (--server-pid here, --start-on-stdin on a client)."""
    spec = trial.spec
    flags = list(spec.loadgen_flags) if rate is None else [*without_flag(spec.loadgen_flags, "--rate"),
                                                           "--rate", str(rate)]
    # Over UDP, loadgen's own reply timeout: a profile's request timeout (seconds, for a server's
    # queued clients) would stall a closed-loop flow that long on every lost datagram.
    timeout = () if spec.datagrams else ("--timeout", trial.timeout)
    argv = [loadgen, *target, *flags, "--connections", str(connections), "--threads", str(threads),
            "--duration", trial.duration, "--warmup", trial.warmup, *timeout, "--model", trial.model,
            "--scenario", spec.scenario, "--server-flags", " ".join(spec.server_flags),
            *trial.extra_loadgen_flags, *extra, "--out", out, "--quiet"]
    return ["taskset", "-c", cpus, *argv, "--cpus", cpus] if cpus else argv
