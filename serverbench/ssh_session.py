"""One host for the whole run, reached through ssh (or `local`): its master session, its temporary
folder, the binaries copied there.

Only OpenSSH is used, always with BatchMode=yes (keys and the user's ssh config, never a
password). Per host, one ssh connection is the run's master (ControlMaster): its remote command
makes a temporary folder and removes it when its stdin ends, which happens when the driver ends
in any way (the master is a Supervisor child). The binaries are copied into that folder (through
ssh's stdin) and checked by their SHA-256; `loadgen=PATH` (and `bin=DIR` for the server) use
binaries already there.
"""
import atexit
import hashlib
import itertools
import os
import re
import select
import shlex
import shutil
import subprocess
import tempfile
import time

from .processes import last_line, wait_ready

SESSION_BOUND_S = 20.0      # ssh connection, login and the remote folder
COPY_BOUND_S = 60.0


def failure_code(*codes):
    """The exit code a failed client stands for: the first above 1 (loadgen's, or ssh's 255)."""
    return next((c for c in codes if c is not None and c > 1), 2)


class ClientFailure(Exception):
    """A host (a client, or the server's) made the point fail; code is what run_loadgen returns as
    loadgen's exit code."""

    def __init__(self, reason, code=2):
        super().__init__(reason)
        self.code = code



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


def on_behalf_of(name, action, *args):
    """action(*args), its failure named after the client it was for."""
    try:
        return action(*args)
    except ClientFailure as failure:
        raise ClientFailure(f"{name}: {failure}", failure.code)


def read_until_eof(stream, deadline):
    """What stream still says until it ends or the deadline passes."""
    said = b""
    while (left := deadline - time.monotonic()) > 0 and select.select([stream], [], [], left)[0]:
        chunk = os.read(stream.fileno(), 65536)
        if not chunk:
            break
        said += chunk
    return said
