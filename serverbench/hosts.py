"""Load from several hosts over ssh, and the server on a host of its own: `./run_all.sh --hosts FILE`.

The hosts file names the server and one or more clients, each an ssh destination or `local`
(this machine, where the driver runs):

    ssh-config /path/to/ssh_config      # optional: ssh -F FILE (default: the user's own config)
    server bench@srv1 address=10.0.0.1 cpus=0   # address= is what the clients connect to
    client bench@client1.example.net cpus=0-7
    client client2 address=10.0.1.1 threads=4

Only OpenSSH is used, always with BatchMode=yes (keys and the user's ssh config, never a
password). Per host, one ssh connection is the run's master (ControlMaster): its remote command
makes a temporary folder and removes it when its stdin ends, which happens when the driver ends
in any way (the master is a Supervisor child). The binaries are copied into that folder (through
ssh's stdin) and checked by their SHA-256; `loadgen=PATH` (and `bin=DIR` for the server) use
binaries already there.

A point: the server starts (here, or on its host under a wrapper that ends it when its ssh
session ends), pinned to its CPUs; the connections and the open-loop rate are split over the
clients (remainders spread, every client at least one connection; a point with fewer
connections than clients uses the first ones), each client's loadgen starts with
--start-on-stdin, the driver waits (bounded) for every `connected N`, then writes `go` to all: a
start barrier held by the controller, so no clock needs to be synchronised. The server's CPU is
read by `loadgen sample-server` on the server's host, asked by the driver at the window's edges.
The results come back on each ssh session's stdout and are merged exactly by `loadgen merge`;
any client failing, or not connected in time, fails the point, and nothing is averaged.
"""
import atexit
import dataclasses
import hashlib
import ipaddress
import itertools
import json
import os
import re
import select
import selectors
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from .processes import wait_ready

CONNECT_BOUND_S = 15.0      # every client's `connected N` must come within this, after its start
SESSION_BOUND_S = 20.0      # ssh connection, login and the remote folder
COPY_BOUND_S = 60.0
MERGE_BOUND_S = 30.0
HOST_RE = re.compile(r"^[A-Za-z0-9_.@:%\[\]-]+$")
CPUS_RE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
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


class HostsFileError(Exception):
    """A hosts file that cannot be used; the message is one line."""


def failure_code(*codes):
    """The exit code a failed client stands for: the first above 1 (loadgen's, or ssh's 255)."""
    return next((c for c in codes if c is not None and c > 1), 2)


class ClientFailure(Exception):
    """A host (a client, or the server's) made the point fail; code is what run_loadgen returns as
    loadgen's exit code."""

    def __init__(self, reason, code=2):
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True)
class Server:
    host: str = "local"              # ssh destination, or "local"
    address: str = None              # what the clients connect to (default: see plan_clients)
    cpus: str = None                 # taskset list on the server's host (default: CpuLayout's)
    bin: str = None                  # a folder on the host with server-<model>: no copy
    loadgen: str = None              # a loadgen on the host, for sample-server: no copy
    ssh_config: str = None           # ssh -F

    @property
    def local(self):
        return self.host == "local"


@dataclass(frozen=True)
class Hosts:
    """A parsed hosts file."""
    server: Server
    clients: tuple                   # of Client


@dataclass(frozen=True)
class Client:
    host: str                        # ssh destination, or "local"
    address: str = None              # the server address it connects to (default: see target)
    cpus: str = None                 # taskset list on the client
    threads: int = None
    loadgen: str = None              # a loadgen already on the client: no copy
    ssh_config: str = None           # ssh -F

    @property
    def local(self):
        return self.host == "local"


# ---------------------------------------------------------------------------------- the file

def parse_hosts_file(path):
    """The server and clients of a hosts file (Hosts), or HostsFileError."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise HostsFileError(f"--hosts {path}: cannot read it ({e.__class__.__name__})")
    server, clients, ssh_config = None, [], None
    for number, raw in enumerate(lines, 1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        where = f"--hosts {path}:{number}"
        keyword, args = words[0], words[1:]
        if keyword == "ssh-config":
            if len(args) != 1:
                raise HostsFileError(f"{where}: expected 'ssh-config FILE'")
            ssh_config = os.path.join(os.path.dirname(os.path.abspath(path)), args[0])
        elif keyword in ("server", "client"):
            host, options = parse_host_line(where, keyword, args)
            if keyword == "client":
                clients.append((host, options))
            elif server is not None:
                raise HostsFileError(f"{where}: a second 'server' line (one server per run)")
            else:
                server = (host, options)
        else:
            raise HostsFileError(f"{where}: unknown line '{keyword}' (server, client, ssh-config)")
    return assemble(path, server, clients, ssh_config)


def parse_host_line(where, keyword, args):
    allowed = {"server": ("address", "cpus", "bin", "loadgen"),
               "client": ("address", "cpus", "threads", "loadgen")}[keyword]
    if not args:
        raise HostsFileError(f"{where}: expected '{keyword} HOST' (an ssh destination or local)")
    host, options = args[0], {}
    if not HOST_RE.match(host) or host.startswith("-"):
        raise HostsFileError(f"{where}: '{host}' is not an ssh destination (user@host, host or alias)")
    for arg in args[1:]:
        key, eq, value = arg.partition("=")
        if not eq or key not in allowed or not value:
            raise HostsFileError(f"{where}: unknown option '{arg}' ({'=, '.join(allowed)}=)")
        options[key] = check_option(where, key, value)
    return host, options


def check_option(where, key, value):
    if key == "address":
        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            raise HostsFileError(f"{where}: address={value} is not an IPv4 address")
    if key == "cpus" and not CPUS_RE.match(value):
        raise HostsFileError(f"{where}: cpus={value} is not a CPU list such as 0-3 or 1,3")
    if key == "threads":
        if not value.isdigit() or int(value) < 1:
            raise HostsFileError(f"{where}: threads={value} is not a positive integer")
        return int(value)
    if key in ("loadgen", "bin") and not value.startswith("/"):
        raise HostsFileError(f"{where}: {key}={value} must be an absolute path on its host")
    return value


def assemble(path, server, clients, ssh_config):
    if server is None:
        raise HostsFileError(f"--hosts {path}: no 'server HOST' line")
    if not clients:
        raise HostsFileError(f"--hosts {path}: no 'client HOST' line")
    if ssh_config is not None and not os.path.isfile(ssh_config):
        raise HostsFileError(f"--hosts {path}: ssh-config {ssh_config}: no such file")
    server_host, server_options = server
    if server_host == "local" and server_options.keys() - {"address"}:
        raise HostsFileError(f"--hosts {path}: cpus=, bin= and loadgen= are for a server on another host "
                             "(a local server is pinned like any other run's)")
    default_address = server_options.get("address")
    return Hosts(Server(server_host, ssh_config=ssh_config, **server_options),
                 tuple(Client(host, address=options.get("address", default_address), cpus=options.get("cpus"),
                              threads=options.get("threads"), loadgen=options.get("loadgen"),
                              ssh_config=ssh_config) for host, options in clients))


def to_settings(path, plan):
    """The run's settings entry (JSON): kept in the manifest, so --resume uses the same hosts."""
    return {"file": os.path.abspath(path), "server": vars(plan.server),
            "clients": [vars(c) for c in plan.clients]}


def clients_of(settings):
    """The clients of a run's settings, () without --hosts."""
    hosts = settings.get("hosts") or {}
    return tuple(Client(**c) for c in hosts.get("clients", ()))


def server_of(settings):
    """The server of a run's settings: Server() (local) without --hosts."""
    server = (settings.get("hosts") or {}).get("server")
    return Server(**server) if isinstance(server, dict) else Server()


def listening_everywhere(spec):
    """The point with the server bound to every address, so each client's link reaches it."""
    return dataclasses.replace(spec, server_flags=(*spec.server_flags, "--host", "0.0.0.0"))


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


# ------------------------------------------------------------------------- one host, one run

# The master session's remote command: a folder for this run's loadgen, removed when the ssh
# session's stdin ends (the driver closed it, or the driver and its ssh are gone).
KEEPER_SCRIPT = r"""d=$(mktemp -d "${TMPDIR:-/tmp}/serverbench-loadgen.XXXXXX") || exit 1
echo "ready dir=$d cpus=$(nproc 2>/dev/null || echo 0) ssh=$SSH_CONNECTION"
cat >/dev/null
rm -rf "$d"
"""
KEEPER_READY = re.compile(r"^ready dir=(\S+) cpus=(\d+) ssh=(.*)$")
COPY_SCRIPT = r"""set -e
cat >"$1.part"
chmod 755 "$1.part"
mv "$1.part" "$1"
sha256sum "$1"
"""
# One loadgen: it reads its stdin from a FIFO, fed line by line from the session's stdin, and is
# ended (SIGTERM) when the session's stdin ends, so a driver that is gone leaves no loadgen
# running. Then its exit code and its result JSON go to stdout.
RUN_SCRIPT = r"""fifo=$1; out=$2; shift 2
rm -f "$fifo" "$out"
mkfifo "$fifo" || exit 97
exec 4<&0
"$@" <"$fifo" & lg=$!
exec 3>"$fifo"
rm -f "$fifo"
{ while IFS= read -r line; do printf '%s\n' "$line" >&3; done; kill -TERM $lg 2>/dev/null; } <&4 &
reader=$!
exec 3>&- 4<&-
wait $lg; code=$?
kill $reader 2>/dev/null
echo "exit $code"
[ -s "$out" ] && cat "$out"
rm -f "$out"
exit $code
"""


def sh_command(script, *args):
    """A remote command line that runs script with sh whatever the login shell is."""
    return " ".join(shlex.quote(a) for a in ("sh", "-c", script, "sh", *args))


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def last_line(path):
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


class HostSession:
    """A host for the whole run (a Client's or the Server's): its ssh master, its folder, the
    binaries copied there."""

    def __init__(self, sup, entry, log_dir, control_dir):
        self.sup, self.entry = sup, entry
        self.control = os.path.join(control_dir, f"m{next(_masters)}")
        self.log = os.path.join(log_dir, re.sub(r"[^A-Za-z0-9_.@-]", "_", entry.host) + ".ssh.log")
        self.copies = {}
        self.master = None
        self.dir, self.cpus, self.ssh_connection = None, 0, None

    def ssh(self, *command, master=False):
        c = self.entry
        argv = ["ssh", "-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
                "-o", f"ControlMaster={'yes' if master else 'no'}", "-o", f"ControlPath={self.control}",
                # A persisting master would outlive the run, outside the Supervisor's reach.
                "-o", "ControlPersist=no"]
        if c.ssh_config:
            argv += ["-F", c.ssh_config]
        return argv + ["--", c.host, *command]

    def alive(self):
        return self.master is not None and self.master.poll() is None

    def open(self):
        with open(self.log, "ab") as err:
            self.master = self.sup.start(self.ssh(sh_command(KEEPER_SCRIPT), master=True), subprocess.PIPE,
                                         err, f"ssh master {self.entry.host}", stdin=subprocess.PIPE)
        match, failure = wait_ready(self.master, KEEPER_READY, SESSION_BOUND_S)
        if match is None:
            self.sup.stop(self.master, 0.5)
            raise ClientFailure(f"ssh {self.entry.host}: {failure}: {last_line(self.log)}",
                                failure_code(self.master.returncode))
        self.master.stdout.close()
        self.dir, self.cpus, self.ssh_connection = match.group(1), int(match.group(2)), match.group(3).strip()

    def binary_path(self, local_binary, name, preset=None):
        """Where this host's copy of a binary is: preset (a path already there, such as
        loadgen=PATH), or a copy of ours, made once per binary and checked by its SHA-256.
        Returns (path, digest or None)."""
        if preset:
            return preset, None
        digest = sha256_of(local_binary)
        if digest not in self.copies:
            self.copies[digest] = self.copy(local_binary, f"{name}-{digest[:16]}", digest)
        return self.copies[digest], digest

    def copy(self, local_binary, name, digest):
        remote = f"{self.dir}/{name}"
        with open(local_binary, "rb") as src, open(self.log, "ab") as err:
            proc = self.sup.start(self.ssh(sh_command(COPY_SCRIPT, remote)), subprocess.PIPE, err,
                                  f"copy {name} to {self.entry.host}", stdin=src)
            try:
                out, _ = proc.communicate(timeout=COPY_BOUND_S)
            except subprocess.TimeoutExpired:
                out = b""
            self.sup.stop(proc, 0.5)
        got = out.decode(errors="replace").split()
        if proc.returncode != 0 or not got or got[0] != digest:
            raise ClientFailure(f"copying {os.path.basename(local_binary)} to {self.entry.host} failed (exit "
                                f"{proc.returncode}, sha256 {got[0][:16] if got else 'none'} for {digest[:16]}): "
                                f"{last_line(self.log)}")
        return remote

    def run_argv(self, tag, loadgen_argv):
        fifo, out = f"{self.dir}/{tag}.go", f"{self.dir}/{tag}.json"
        argv = [a.replace("@OUT@", out) for a in loadgen_argv]
        return self.ssh(sh_command(RUN_SCRIPT, fifo, out, *argv))


class LocalSession(HostSession):
    """`client local`: the same wrapper, run here without ssh."""

    def open(self):
        self.dir = tempfile.mkdtemp(prefix="serverbench-loadgen.")
        self.cpus = os.cpu_count() or 1
        self.ssh_connection = None

    def alive(self):
        return self.dir is not None and os.path.isdir(self.dir)

    def binary_path(self, local_binary, _name, _preset=None):
        return local_binary, None

    def run_argv(self, tag, loadgen_argv):
        fifo, out = f"{self.dir}/{tag}.go", f"{self.dir}/{tag}.json"
        return ["sh", "-c", RUN_SCRIPT, "sh", fifo, out, *[a.replace("@OUT@", out) for a in loadgen_argv]]

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# Sessions live as long as the run's Supervisor: closing it ends every master (and with them the
# remote folders); a local session's folder is removed at exit.
_sessions = {}
_control_dir = None
_masters = itertools.count()


def session_for(sup, entry, log_dir):
    global _control_dir
    key = (id(sup), entry.host, entry.ssh_config)
    session = _sessions.get(key)
    if session is not None and session.alive():
        return session
    if _control_dir is None:
        remove_leftover_control_dirs()
        # Short: a ControlPath is a Unix socket path (at most 107 bytes).
        _control_dir = tempfile.mkdtemp(prefix=f"sbh-{os.getpid()}-", dir="/tmp")
        atexit_cleanup()
    os.makedirs(log_dir, exist_ok=True)
    session = (LocalSession if entry.local else HostSession)(sup, entry, log_dir, _control_dir)
    _sessions[key] = session
    session.open()
    return session


def remove_leftover_control_dirs():
    """The control folders of drivers killed outright (no atexit ran), once their owner is gone."""
    for path in os.listdir("/tmp"):
        match = re.match(r"^sbh-(\d+)-", path)
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            shutil.rmtree(os.path.join("/tmp", path), ignore_errors=True)


def atexit_cleanup():
    def cleanup():
        for session in _sessions.values():
            if isinstance(session, LocalSession):
                session.close()
        if _control_dir:
            shutil.rmtree(_control_dir, ignore_errors=True)
    atexit.register(cleanup)


# ------------------------------------------------------------------- the server on its host

# The server on a remote host: started in a session (process group) of its own, pinned; when the
# ssh session's stdin ends (the driver stops the point, or is gone) it gets SIGTERM, then SIGKILL
# after 5 s, and what it left in its group (a fork model's children) is killed when it exits.
# Its readiness line goes to stdout as it comes, then its exit code.
SERVER_SCRIPT = r"""exec 4<&0 </dev/null
setsid "$@" & srv=$!
{ cat >/dev/null; kill -TERM $srv; sleep 5; kill -KILL -$srv; } <&4 >/dev/null 2>&1 &
reader=$!
exec 4<&-
wait $srv; code=$?
kill -KILL -$srv 2>/dev/null
kill $reader 2>/dev/null
echo "exit $code"
exit $code
"""
SAMPLE_BOUND_S = 5.0
SAMPLE_LINE = re.compile(r"^\{.*\}$")
SERVER_STOP_EXTRA_S = 3.0    # the stop's round trip over ssh, on top of the local grace


def is_remote(server):
    return server is not None and not server.local


class ServerHandle:
    """What point.LocalServer and RemoteServer share: `loadgen sample-server` of the server, run
    where the server runs (through command()) from its first use until the server stops. A
    handle has sup, pid, loadgen (the path where the server runs), host and sampler_log."""
    _sampler = None

    def sampler(self):
        if self._sampler is None:
            argv = self.command([self.loadgen, "sample-server", "--pid", str(self.pid)])
            self._sampler = Sampler(self.sup, argv, self.sampler_log, self.host)
        return self._sampler

    def close_sampler(self):
        if self._sampler is not None:
            self._sampler.close()


class RemoteServer(ServerHandle):
    """A server started on its own host through ssh (point.start_server's handle for it): the
    same questions as point.LocalServer, answered on that host."""

    def __init__(self, sup, trial, session):
        from .point import CpuLayout  # point imports this module: imported when used
        self.sup, self.session, self.entry = sup, session, trial.server_host
        self.host, self.sampler_log = self.entry.host, session.log
        self.address = self.entry.address or session.ssh_connection.split()[2]
        self.proc = self.pid = None
        name = f"server {self.entry.host}"
        local_server = trial.binaries.server(trial.model)
        preset = self.entry.bin and f"{self.entry.bin}/{os.path.basename(local_server)}"
        self.binary, self.digest = on_behalf_of(name, session.binary_path, local_server,
                                                os.path.basename(local_server), preset)
        self.loadgen, _ = on_behalf_of(name, session.binary_path, trial.binaries.loadgen, "loadgen",
                                       self.entry.loadgen)
        self.cpus = self.entry.cpus or CpuLayout.for_point(max(session.cpus, 1), trial.spec.all_cpus).server

    def argv(self, server_argv):
        """The ssh command that runs server_argv (taskset, the binary, its flags) there."""
        return self.session.ssh(sh_command(SERVER_SCRIPT, *server_argv))

    def started(self, proc, pid):
        self.proc, self.pid = proc, pid
        return self

    def alive(self):
        snap = self.sampler().sample()
        return snap is not None and not snap.get("gone")

    def command(self, argv):
        """argv run on the server's host."""
        return self.session.ssh(shlex.join(argv))

    def target_flags(self, _trial, port):
        return ["--host", self.address, "--port", str(port)]

    def stop(self, _sup, grace_s):
        """Ends the session's stdin (its wrapper then stops the server) and waits for the server's
        exit code: (exit code, note), as Supervisor.stop."""
        self.close_sampler()
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        said = read_until_eof(self.proc.stdout, time.monotonic() + grace_s + SERVER_STOP_EXTRA_S)
        code, note = self.sup.stop(self.proc, 0.5)
        exits = re.findall(rb"^exit (\d+)$", said, re.M)
        if exits:
            return int(exits[-1]), ""
        return code, note or f"on {self.host}: no exit code came back through ssh (ssh exited {code})"

    def record(self):
        return {"host": self.entry.host, "address": self.address, "cpus": self.cpus, "binary": self.binary,
                "binary_sha256": self.digest, "copied": self.digest is not None,
                "ssh_connection": self.session.ssh_connection, "pid": self.pid, "sampler": self.loadgen}


def remote_server(sup, trial):
    """The RemoteServer of a trial whose server is on another host (its binaries copied there,
    once per run); trial.cpus.server becomes the CPUs it is pinned to there."""
    log_dir = hosts_log_dir(trial)
    session = on_behalf_of(f"server {trial.server_host.host}", session_for, sup, trial.server_host, log_dir)
    server = RemoteServer(sup, trial, session)
    trial.cpus = dataclasses.replace(trial.cpus, server=server.cpus)
    return server


def hosts_log_dir(trial):
    """logs/hosts of the run folder: the ssh masters' logs."""
    logs = trial.log_base.rfind(os.sep + "logs" + os.sep)
    return os.path.join(trial.log_base[:logs], "logs", "hosts") if logs >= 0 else os.path.dirname(trial.log_base)


def read_until_eof(stream, deadline):
    """What stream still says until it ends or the deadline passes."""
    said = b""
    while (left := deadline - time.monotonic()) > 0 and select.select([stream], [], [], left)[0]:
        chunk = os.read(stream.fileno(), 65536)
        if not chunk:
            break
        said += chunk
    return said


# ----------------------------------------------------------------------- the server, measured

class Sampler:
    """`loadgen sample-server --pid P` where the server runs (here, or through ssh): one snapshot
    of the server's process tree per line asked, by loadgen's own rule (loadgen/proc_sampler.cpp,
    the one --server-pid uses)."""

    def __init__(self, sup, argv, log, where):
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

    def tick(self, now):
        """Takes what is due; returns the seconds until the next thing to take."""
        if self.start is None and now >= self.opens_at:
            self.start = self.sample()
        if self.end is None and now >= self.closes_at:
            self.end = self.sample()
        if now >= self.next_peak and self.end is None:
            self.sample()
            self.next_peak = now + 1.0
        due = [t for t, done in ((self.opens_at, self.start), (self.closes_at, self.end)) if done is None]
        return max(0.0, min(due + ([self.next_peak] if self.end is None else [])) - now) if due else 3600.0

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


# --------------------------------------------------------------------------------- one point

@dataclass
class ClientRun:
    """One client's loadgen in one point, and what it said on stdout."""
    index: int                       # 1-based, in the hosts file's order
    client: Client
    session: HostSession
    connections: int
    rate: object
    threads: int
    cpus: str
    address: str
    loadgen: str = None
    loadgen_sha256: str = None
    log: str = None
    proc: object = None
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


def on_behalf_of(name, action, *args):
    """action(*args), its failure named after the client it was for."""
    try:
        return action(*args)
    except ClientFailure as failure:
        raise ClientFailure(f"{name}: {failure}", failure.code)


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
    spec = trial.spec
    flags = without_flag(spec.loadgen_flags, "--rate")
    if run.rate is not None:
        flags += ["--rate", str(run.rate)]
    argv = [run.loadgen, "--host", run.address, "--port", str(port), *flags,
            "--connections", str(run.connections), "--threads", str(run.threads),
            "--duration", trial.duration, "--warmup", trial.warmup, "--model", trial.model,
            "--scenario", spec.scenario, "--server-flags", " ".join(spec.server_flags),
            *trial.extra_loadgen_flags, "--start-on-stdin", "--out", "@OUT@", "--quiet"]
    if run.cpus:
        argv = ["taskset", "-c", run.cpus, *argv, "--cpus", run.cpus]
    return argv


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
    from .point import seconds_of  # point imports this module: imported when used
    limit = seconds_of(trial.warmup) + seconds_of(trial.duration) + 20
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
    None); the merged result is at trial.out when the point has one. server is point.LocalServer
    or RemoteServer."""
    from .point import seconds_of, write_json
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
