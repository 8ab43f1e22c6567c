"""One point's load from the hosts file's clients.

The connections and the open-loop rate are split over the clients (remainders spread, every
client at least one connection; a point with fewer connections than clients uses the first
ones), each client's loadgen starts with --start-on-stdin, the driver waits (bounded) for every
`connected N`, then writes `go` to all: a start barrier held by the controller, so no clock needs
to be synchronised. The server's CPU is read by `loadgen sample-server` on the server's host,
asked by the driver at the window's edges. The results come back on each ssh session's stdout and
are merged exactly by `loadgen merge`; any client failing, or not connected in time, fails the
point, and nothing is averaged.
"""
import json
import os
import re
import selectors
import subprocess
import time
from dataclasses import dataclass, field

from .hosts_file import Client
from .jsonfile import write_json
from .remote_server import hosts_log_dir
from .server_handle import ServerWindow, server_peers
from .processes import last_line
from .ssh_session import ClientFailure, HostSession, failure_code, on_behalf_of, session_for
from .trial import flag_value, loadgen_command, seconds_of

CONNECT_BOUND_S = 15.0      # every client's `connected N` must come within this, after its start
MERGE_BOUND_S = 30.0
CLOCKS = {
    "barrier": "controller: each client connects, says `connected N`, and starts its warm-up and "
               "window when the driver's `go` line arrives; no clock is compared across hosts",
    "latency": "each client measures its latencies on its own host's CLOCK_MONOTONIC",
    "synchronised_clocks_needed": False,
    "timeline": "timeseries intervals are lined up by the go barrier (clients start within "
                "barrier.go_spread_ms plus the ssh path's one-way delay); only wall-clock fields "
                "(window.*_unix_s) compare hosts' clocks, and they are meaningful only with "
                "synchronised clocks (NTP/PTP)",
}



# ------------------------------------------------------------------------------ the splits

def split_connections(total, clients):
    """Connections per client: equal shares, the remainder one each to the first clients; with
    fewer connections than clients, only the first `total` clients get one."""
    assert total >= 1 and clients >= 1
    used = min(total, clients)
    return [total // used + (1 if i < total % used else 0) for i in range(used)]


def split_rate(rate, shares):
    """An open-loop rate split in proportion to each client's connections (every connection then
    carries the same rate); whole rates stay whole, the remainder spread by largest remainder."""
    total = sum(shares)
    exact = [rate * s / total for s in shares]
    if float(rate) != int(rate):
        return exact
    parts = [int(x) for x in exact]
    by_remainder = sorted(range(len(shares)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in by_remainder[:int(rate) - sum(parts)]:
        parts[i] += 1
    return parts


@dataclass
class ClientRun:
    """One client's loadgen in one point, and what it said on stdout."""
    index: int                       # 1-based, in the hosts file's order
    client: Client
    session: HostSession
    connections: int
    rate: float                      # its share of the open-loop rate; None in a closed loop
    threads: int
    cpus: str
    address: str
    loadgen: str = None
    loadgen_sha256: str = None
    log: str = None
    proc: subprocess.Popen = None
    connected: int = None
    exit_code: int = None
    eof: bool = False
    started: float = 0.0
    connected_after_s: float = None
    go_at: float = None
    _buffer: bytes = b""
    _body: list = field(default_factory=list)

    @property
    def name(self):
        return f"client {self.index} ({self.client.host})"

    def feed(self, chunk):
        if self.exit_code is not None:
            self._body.append(chunk)
            return
        self._buffer += chunk
        while b"\n" in self._buffer and self.exit_code is None:
            line, self._buffer = self._buffer.split(b"\n", 1)
            text = line.decode(errors="replace").strip()
            if text.startswith("connected ") and text[10:].isdigit():
                self.connected = int(text[10:])
                self.connected_after_s = time.monotonic() - self.started
            elif text.startswith("exit ") and text[5:].isdigit():
                self.exit_code = int(text[5:])
        if self.exit_code is not None:
            self._body.append(self._buffer)
            self._buffer = b""

    def result(self):
        try:
            return json.loads(b"".join(self._body).decode())
        except ValueError:
            return None

    def why_failed(self):
        """The reason of a client that ended without a usable result."""
        code = self.proc.returncode if self.proc else None
        said = last_line(self.log) or "no message"
        if self.exit_code is None:
            return f"{self.name}: ssh exited {code}: {said}" if not self.client.local else \
                f"{self.name}: exited {code}: {said}"
        return f"{self.name}: loadgen exited {self.exit_code} without a result: {said}"

    def stop(self, sup):
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()  # the wrapper then ends its loadgen
        except OSError:
            pass
        sup.stop(self.proc, 2.0)
        if not self.proc.stdout.closed:
            self.proc.stdout.close()


def plan_clients(sup, trial, log_dir, server):
    """A ClientRun per client the point uses: its share of the connections and of the rate."""
    clients = trial.clients
    shares = split_connections(trial.spec.connections, len(clients))
    rate = flag_value(trial.spec.loadgen_flags, "--rate")
    rates = split_rate(number(rate), shares) if rate else [None] * len(shares)
    runs = []
    for i, (client, conns, share) in enumerate(zip(clients, shares, rates), 1):
        session = on_behalf_of(f"client {i} ({client.host})", session_for, sup, client, log_dir)
        cpus = client.cpus or (trial.cpus.loadgen if client.local else None)
        threads = client.threads or (count_cpus(cpus) if cpus else max(session.cpus, 1))
        # Without address=: a remote server's own address, else this host as the client sees it.
        address = client.address or server.address or \
            ("127.0.0.1" if client.local else session.ssh_connection.split()[0])
        runs.append(ClientRun(i, client, session, conns, share, min(threads, conns), cpus, address))
    for run in runs:
        run.loadgen, run.loadgen_sha256 = on_behalf_of(run.name, run.session.binary_path, trial.binaries.loadgen,
                                                        "loadgen", run.client.loadgen)
    return runs


def number(text):
    value = float(text)
    return int(value) if value.is_integer() else value


def count_cpus(cpus):
    total = 0
    for part in cpus.split(","):
        low, _, high = part.partition("-")
        total += int(high or low) - int(low) + 1
    return max(total, 1)


def loadgen_argv(trial, run, port):
    """The client's loadgen: its share of the connections and of the rate, started by go."""
    return loadgen_command(trial, run.loadgen, ["--host", run.address, "--port", str(port)],
                           connections=run.connections, threads=run.threads, cpus=run.cpus, out="@OUT@",
                           rate=run.rate, extra=("--start-on-stdin",))


def start_clients(sup, trial, port, runs):
    tag = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(trial.log_base))
    for run in runs:
        run.log = f"{trial.log_base}.client{run.index}.log"
        argv = run.session.run_argv(f"{tag}-{os.getpid()}-{run.index}", loadgen_argv(trial, run, port))
        with open(run.log, "wb") as err:
            run.started = time.monotonic()
            run.proc = sup.start(argv, subprocess.PIPE, err, f"loadgen on {run.client.host}",
                                 stdin=subprocess.PIPE)


def pump(runs, done, deadline, tick=None):
    """Reads every client's stdout until done() or the deadline (False then)."""
    with selectors.DefaultSelector() as selector:
        for run in runs:
            if not run.eof:
                selector.register(run.proc.stdout, selectors.EVENT_READ, run)
        while not done():
            now = time.monotonic()
            if now >= deadline:
                return False
            wait = min(deadline - now, tick(now) if tick else 3600.0)
            for key, _ in selector.select(max(wait, 0.0)):
                chunk = os.read(key.fileobj.fileno(), 65536)
                if chunk:
                    key.data.feed(chunk)
                else:
                    key.data.eof = True
                    try:
                        key.data.proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        pass
                    selector.unregister(key.fileobj)
        if tick:
            tick(time.monotonic())
        return True


def await_barrier(runs):
    """Every client has connected all its connections, within CONNECT_BOUND_S: or the point fails."""
    def settled():
        return all(r.connected is not None or r.eof for r in runs)

    in_time = pump(runs, settled, time.monotonic() + CONNECT_BOUND_S)
    for run in runs:
        if run.eof and run.connected is None:
            raise ClientFailure(run.why_failed(), failure_code(run.exit_code, run.proc.returncode))
    late = [r.name for r in runs if r.connected is None]
    if not in_time or late:
        raise ClientFailure(f"{', '.join(late)} not connected within {CONNECT_BOUND_S:g} s", 3)
    short = [f"{r.name} connected {r.connected} of {r.connections}" for r in runs if r.connected != r.connections]
    if short:
        raise ClientFailure("; ".join(short), 3)


def send_go(runs):
    for run in runs:
        try:
            run.proc.stdin.write(b"go\n")
            run.proc.stdin.flush()
        except OSError:
            raise ClientFailure(f"{run.name}: its session ended before go", 3)
        run.go_at = time.monotonic()


def collect(runs, trial, window):
    """Reads until every client has ended (its result is then in), within the point's bound."""
    limit = trial.window_s + 20
    if not pump(runs, lambda: all(r.eof for r in runs), runs[0].go_at + limit, window.tick):
        late = [r.name for r in runs if not r.eof]
        raise ClientFailure(f"{', '.join(late)}: no result within {limit:g} s of go", 124)
    for run in runs:
        if run.exit_code is None or run.exit_code > 1 or run.result() is None:
            raise ClientFailure(run.why_failed(), failure_code(run.exit_code, run.proc.returncode))


def merge_results(sup, trial, runs):
    """`loadgen merge` of the clients' results: (exit code, merged document)."""
    files = []
    for run in runs:
        path = f"{trial.log_base}.client{run.index}.json"
        with open(path, "w") as f:
            json.dump(run.result(), f)
        files.append(path)
    merged = trial.out + ".merged"
    with open(trial.log_base + ".merge.log", "wb") as err:
        proc = sup.start([trial.binaries.loadgen, "merge", *files, "--out", merged], subprocess.DEVNULL,
                         err, "loadgen merge")
        try:
            proc.wait(timeout=MERGE_BOUND_S)
        except subprocess.TimeoutExpired:
            pass
        code, _ = sup.stop(proc, 0.5)
    try:
        with open(merged) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        raise ClientFailure(f"loadgen merge exited {code}: {last_line(trial.log_base + '.merge.log')}",
                            code if code and code > 1 else 2)
    finally:
        if os.path.exists(merged):
            os.remove(merged)
    return code, doc


def client_record(run, go_unix):
    """What the point keeps of one client: its share, its session, its own totals and window."""
    r = run.result()
    latency = {k: v for k, v in r.get("latency_us", {}).items() if k != "histogram"}
    window = r.get("window") or {}
    offset = window.get("start_unix_s") - go_unix if window.get("start_unix_s") is not None else None
    return {"index": run.index, "host": run.client.host, "address": run.address,
            "connections": run.connections, "rate": run.rate, "threads": run.threads, "cpus": run.cpus,
            "loadgen": run.loadgen, "loadgen_sha256": run.loadgen_sha256,
            "copied": run.loadgen_sha256 is not None, "ssh_connection": run.session.ssh_connection,
            "connected": run.connected, "connected_after_s": round(run.connected_after_s, 4),
            "exit_code": run.exit_code, "totals": r.get("totals"), "latency_us": latency,
            "errors_by_errno": r.get("errors_by_errno"), "loadgen_cpu": r.get("loadgen"),
            "saturation": r.get("saturation"), "window": window,
            # The client's wall clock at its window's start minus the driver's at go + warm-up:
            # the clock offset plus go's one-way delay. Informative only: nothing depends on it.
            "apparent_clock_offset_s": round(offset, 6) if offset is not None else None}


def point_document(doc, trial, runs, window, server, peers, go_unix):
    requests = doc["totals"]["requests"]
    figures = window.figures(requests, server.record()["host"])
    doc["server"] = figures or dict(doc.get("server") or {}, measured_by="not measured: the server exited")
    util = window.utilisation(figures)
    sat = doc.setdefault("saturation", {})
    sat["server_cpu_util"] = util
    lg_util = max((r.result().get("saturation") or {}).get("loadgen_cpu_util") or 0 for r in runs)
    sat["bound"] = "server" if (util or 0) >= 0.9 else "loadgen" if lg_util >= 0.9 else "neither"
    env = doc.setdefault("env", {})
    env.update(server_cpus=trial.cpus.server, git_rev=os.environ.get("SERVERBENCH_GIT_REV", env.get("git_rev")))
    if "window" in doc and (len({r.client.host for r in runs}) > 1 or not runs[0].client.local):
        # min/max over several hosts' monotonic clocks mean nothing; each client's own window is
        # in hosts.clients[].window.
        doc["window"].update(start_monotonic_ns=None, end_monotonic_ns=None)
    gos = [r.go_at for r in runs]
    doc["hosts"] = {
        "server": server.record(), "clients": [client_record(r, go_unix) for r in runs],
        "unused_clients": [c.host for c in trial.clients[len(runs):]],
        "barrier": {"kind": "controller (--start-on-stdin, then go)", "connect_bound_s": CONNECT_BOUND_S,
                    "connected_after_s": round(max(r.connected_after_s for r in runs), 4),
                    "go_spread_ms": round((max(gos) - min(gos)) * 1e3, 3)},
        "server_peers": peers, "server_peers_by": "ss on the server's host (its network namespace), before go",
        "server_window_driver_s": round(window.closes_at - window.opens_at, 6),
        "clocks": CLOCKS}
    return doc


def run_loadgens(sup, trial, port, server):
    """run_loadgen for a point with clients (point.run_loadgen's contract): returns (exit code,
    None); the merged result is at trial.out when the point has one. server is server_handle.LocalServer
    or remote_server.RemoteServer."""
    runs = []
    with open(trial.log_base + ".loadgen.log", "a") as log:
        try:
            runs = plan_clients(sup, trial, hosts_log_dir(trial), server)
            start_clients(sup, trial, port, runs)
            await_barrier(runs)
            peers = server_peers(sup, server, port)
            sampler = server.sampler()
            go_unix = time.time() + seconds_of(trial.warmup)
            send_go(runs)
            opens = runs[0].go_at + seconds_of(trial.warmup)
            window = ServerWindow(sampler, opens, opens + seconds_of(trial.duration))
            collect(runs, trial, window)
            code, doc = merge_results(sup, trial, runs)
            write_json(trial.out, point_document(doc, trial, runs, window, server, peers, go_unix))
            for run in runs:
                log.write(f"{run.name}: {run.connections} connections, exit {run.exit_code}, "
                          f"{run.result()['totals']['requests']} requests\n")
            log.write(f"merged {len(runs)} client(s): {doc['totals']['requests']} requests, "
                      f"errors {doc['totals']['errors']}\n")
            return code, None
        except ClientFailure as failure:
            log.write(f"hosts: {failure}; nothing merged\n")
            return failure.code, None
        finally:
            for run in runs:
                run.stop(sup)
