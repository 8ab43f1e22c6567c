"""A cgroup v2 of its own for each side of a counting trial (the server, loadgen), so that
`perf stat -a -G GROUP` counts the side as one group (counting.py).

Why: perf counting per task switches its counters on task by task, in time proportional to
threads x events (52 threads and 25 events: tens of milliseconds, over 15% of a 250 ms window).
Counting a cgroup opens the events once per CPU instead, whatever the threads; membership is
inherited, so every thread and child the side makes, even one forked in the window, is counted.

A side joins its cgroup before it starts (join_argv: a shell that writes its own pid to
cgroup.procs, then execs the side). The cgroup is a child of the driver's own cgroup, with no
controller enabled for it, so the side stays under the same resource controls as in a timed trial.

Every name is serverbench-<pid namespace>-<owner pid>-<n>-<side>. A cgroup is removed, with
anything still in it, at the end of its trial (a normal end, a failed point, Ctrl-C or SIGTERM of
the driver); the Supervisor's watchdog removes it when the driver is killed outright; and
cleanup_leftovers() removes those of owners that are gone (a watchdog killed too), at the first
counting trial of the next run. An owner's pid means something only in its pid namespace (a
container may share the cgroup tree and not the pids), so only cgroups named with ours are swept.
"""
import itertools
import os
import re
import signal
import time

from .processes import alive

PREFIX = "serverbench-"
_NAME = re.compile(r"^serverbench-(\d+)-(\d+)-\d+-\w+$")
_counter = itertools.count()
# The side's first step: join the cgroup ($0), then become the side. Its pid is the side's pid.
JOIN = 'echo $$ >"$0/cgroup.procs" && exec "$@"'
REMOVE_BOUND_S = 2.0


class CgroupUnavailable(Exception):
    """No cgroup for counting here; the message is the one-line reason."""


def perf_cgroup_mount(mounts_path="/proc/mounts"):
    """Where `perf -G NAME` looks for NAME: perf 6.1 takes a cgroup v1 hierarchy with perf_event,
    else the last cgroup2 mount of /proc/mounts. Only the cgroup2 case is used; raises
    CgroupUnavailable otherwise."""
    v2 = None
    try:
        with open(mounts_path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise CgroupUnavailable(f"cannot read {mounts_path}: {e}")
    for line in lines:
        fields = line.split()
        if len(fields) < 4:
            continue
        if fields[2] == "cgroup" and "perf_event" in fields[3].split(","):
            raise CgroupUnavailable(f"perf would use the cgroup v1 perf_event hierarchy at {fields[1]}")
        if fields[2] == "cgroup2":
            v2 = fields[1]
    if v2 is None:
        raise CgroupUnavailable("no cgroup v2 is mounted")
    return v2


def own_cgroup(mount):
    """The driver's own cgroup v2, relative to mount ("" for the root); the root when the path
    /proc/self/cgroup gives is not under this mount (a mount from another cgroup namespace)."""
    try:
        with open("/proc/self/cgroup") as f:
            own = next((line[3:].strip() for line in f if line.startswith("0::")), "/")
    except OSError:
        own = "/"
    own = own.strip("/")
    return own if own and os.path.isdir(os.path.join(mount, own)) else ""


def pid_namespace():
    """Our pid namespace's inode: the pids of names made here mean something only there."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def owner_gone(name):
    """True for a name of ours (our pid namespace) whose owner pid is gone."""
    match = _NAME.match(name)
    return bool(match) and int(match.group(1)) == pid_namespace() and not alive(int(match.group(2)))


class Cgroup:
    """One cgroup made for one side of one trial; the Supervisor's watchdog is told of it."""

    def __init__(self, sup, side):
        mount = perf_cgroup_mount()
        name = f"{PREFIX}{pid_namespace()}-{os.getpid()}-{next(_counter)}-{side}"
        self.rel = "/".join(part for part in (own_cgroup(mount), name) if part)  # what perf -G takes
        self.path = os.path.join(mount, self.rel)
        self.sup = sup
        try:
            os.mkdir(self.path)
        except OSError as e:
            raise CgroupUnavailable(f"cannot make a cgroup at {self.path}: {e.strerror}")
        sup.watch_cgroup(self.path)

    def join_argv(self, argv):
        """argv, run as a member of this cgroup from its first instruction."""
        return ["sh", "-c", JOIN, self.path, *argv]

    def remove(self):
        """Kills what is left in the cgroup and removes it; False when it could not be removed."""
        removed = remove_cgroup(self.path)
        if removed:
            self.sup.forget_cgroup(self.path)
        return removed


def kill_members(path):
    """SIGKILL to every process of the cgroup at path (cgroup.kill, or one by one before Linux 5.14)."""
    try:
        with open(os.path.join(path, "cgroup.kill"), "w") as f:
            f.write("1")
        return
    except OSError:
        pass
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            pids = [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def remove_cgroup(path, bound_s=REMOVE_BOUND_S):
    """Empties and removes the cgroup at path. True once it is gone. Its processes take a moment
    to leave after SIGKILL, and rmdir refuses a cgroup that has any (EBUSY): retried."""
    kill_members(path)
    deadline = time.monotonic() + bound_s
    while True:
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def leftovers(mount):
    """The cgroups under mount named by a serverbench owner of our pid namespace that is gone."""
    found = []
    for folder, subdirs, _ in os.walk(mount):
        found += [os.path.join(folder, name) for name in subdirs if owner_gone(name)]
        subdirs[:] = [d for d in subdirs if not _NAME.match(d)]
    return found


def cleanup_leftovers():
    """Removes the counting cgroups of earlier drivers that are gone; returns their paths."""
    try:
        mount = perf_cgroup_mount()
    except CgroupUnavailable:
        return []
    return [path for path in leftovers(mount) if remove_cgroup(path)]
