"""Child processes that never outlive the run.

Three layers, because each alone leaves a gap:
* every child runs in its own session (process group), so a stop reaches the processes it
  forked (fork-per-conn's children, prefork's workers, the server under a `perf stat` wrapper);
* every direct child gets PR_SET_PDEATHSIG(SIGKILL), so it dies with the driver even when the
  driver is killed outright (SIGKILL runs no handler);
* a watchdog process, told each group as it starts, kills the groups that are still alive when
  the driver's pipe to it closes: that reaches the grandchildren PDEATHSIG cannot. It is told the
  cgroups of counting trials too (cgroups.py), and removes them, with whatever is left in them.
"""
import ctypes
import os
import select
import selectors
import signal
import subprocess
import sys
import time

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def children_of():
    """{ppid: [pid, ...]} of every process now."""
    kids = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(name))
    return kids


def tree_of(root):
    """root and every process below it that is there now (a master's workers, their children)."""
    kids, tree = children_of(), [root]
    for pid in tree:
        tree.extend(kids.get(pid, ()))
    return tree


class Watchdog:
    """A detached process that SIGKILLs the registered process groups when the driver is gone."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG_SOURCE], stdin=subprocess.PIPE, start_new_session=True,
            text=True, bufsize=1)

    def watch(self, pgid):
        self._say(f"+{pgid}")

    def forget(self, pgid):
        self._say(f"-{pgid}")

    def watch_cgroup(self, path):
        self._say(f"+{path}")

    def forget_cgroup(self, path):
        self._say(f"-{path}")

    def _say(self, line):
        try:
            self.proc.stdin.write(line + "\n")
        except (BrokenPipeError, ValueError):
            pass

    def close(self):
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self.proc.wait()


# The watchdog reads +PGID / -PGID lines, and +PATH / -PATH for cgroups; at end of input (the
# driver exited, or was killed) it kills every group still registered, then empties and removes
# every cgroup (a cgroup can only be removed once no process is left in it, and its processes
# take a moment to be gone after SIGKILL). Ignoring SIGINT keeps a Ctrl-C at the terminal, which
# reaches the whole foreground group, from stopping it before it has done its job.
_WATCHDOG_SOURCE = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
groups, cgroups = set(), set()
for line in sys.stdin:
    line = line.strip()
    kind = cgroups if line[1:2] == '/' else groups
    item = line[1:] if kind is cgroups else int(line[1:] or 0)
    if line.startswith('+'):
        kind.add(item)
    elif line.startswith('-'):
        kind.discard(item)
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
for path in cgroups:
    try:
        with open(path + '/cgroup.kill', 'w') as f:
            f.write('1')
    except OSError:  # before Linux 5.14: no cgroup.kill
        try:
            for pid in open(path + '/cgroup.procs').read().split():
                os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    for _ in range(100):
        try:
            os.rmdir(path)
            break
        except FileNotFoundError:
            break
        except OSError:
            time.sleep(0.02)
"""


class Supervisor:
    """Starts children and stops them all, whatever way the run ends."""

    def __init__(self):
        self.watchdog = Watchdog()
        self.children = {}

    def start(self, argv, stdout, stderr, what, stdin=subprocess.DEVNULL):
        proc = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=stderr,
                                start_new_session=True, preexec_fn=_die_with_parent)
        self.watchdog.watch(proc.pid)
        self.children[proc.pid] = (proc, what)
        return proc

    def stop(self, proc, grace_s=2.0, signal_pid=None):
        """SIGTERM to signal_pid (the real server when a wrapper started it, so the wrapper sees
        its child exit on its own), SIGKILL to the group after grace_s. Returns (exit code,
        note) where note says if it had to be killed."""
        note = ""
        target = signal_pid or proc.pid
        if proc.poll() is None:
            _signal(target, signal.SIGTERM)
            try:
                wait_exit(proc, grace_s)
            except subprocess.TimeoutExpired:
                note = f"did not stop within {grace_s:g} s of SIGTERM, killed"
        self.kill_group(proc)
        return proc.returncode, note

    def kill_group(self, proc):
        """Kills what the child left behind in its group (a fork model's children), and reaps it."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
        self.watchdog.forget(proc.pid)
        self.children.pop(proc.pid, None)

    def watch_cgroup(self, path):
        """path (a cgroup) is removed by the watchdog if the driver ends before forget_cgroup."""
        self.watchdog.watch_cgroup(path)

    def forget_cgroup(self, path):
        self.watchdog.forget_cgroup(path)

    def stop_all(self):
        for proc, _ in list(self.children.values()):
            self.stop(proc, grace_s=1.0)

    def close(self):
        self.stop_all()
        self.watchdog.close()


def wait_exit(proc, timeout_s):
    """proc.wait(timeout_s), woken by the child's exit itself (a pidfd) rather than by
    subprocess's polls, which sleep up to 50 ms between looks: every trial waits for a loadgen
    and a server this way. Raises subprocess.TimeoutExpired as proc.wait does."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except OSError:  # already reaped, or a kernel without pidfds
        return proc.wait(timeout_s)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(max(0, int(timeout_s * 1000))):
            raise subprocess.TimeoutExpired(proc.args, timeout_s)
    finally:
        os.close(pidfd)
    return proc.wait()


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def wait_ready(proc, pattern, timeout_s):
    """Reads proc's stdout (a pipe) until a line matches pattern (a compiled regex). Returns
    (match, None), or (None, reason) when the child exits first or the time runs out."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    buffered = b""
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None, f"no readiness line within {timeout_s:g} s"
            if not sel.select(min(left, 0.1)):
                if proc.poll() is not None:
                    return None, f"exited with code {proc.returncode} before its readiness line"
                continue
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                proc.wait()
                return None, f"exited with code {proc.returncode} before its readiness line"
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                match = pattern.search(line.decode(errors="replace"))
                if match:
                    return match, None
    finally:
        sel.close()


# What perf says on stderr when its counters are switched on and off, mixed into the server's log.
PERF_NOTES = ("Events enabled", "Events disabled")


def last_line(path):
    """The last line a child wrote to its log (perf's notes aside), for a failure's reason."""
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip() and line.strip() not in PERF_NOTES]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""
