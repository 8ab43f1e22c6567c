"""The server on a host of its own (`server HOST` in the hosts file): its binary copied there and
checked, started pinned through the host's ssh session under a wrapper that ends it when the
session ends, and measured there.
"""
import atexit
import dataclasses
import os
import re
import shlex
import shutil
import tempfile
import time
import zipapp

from .server_handle import ServerHandle
from .ssh_session import on_behalf_of, read_until_eof, session_for, sh_command
from .trial import CpuLayout

# ------------------------------------------------------------------- the server on its host

# The server on a remote host: started in a session (process group) of its own, pinned; when the
# ssh session's stdin ends (the driver stops the point, or is gone) it gets SIGTERM, then SIGKILL
# after 5 s, and what it left in its group (a fork model's children) is killed when it exits.
# Its readiness line goes to stdout as it comes, then its exit code. Each line on the session's
# stdin before its end goes to the forward step: a counting trial's switch of perf
# (remote_counting.COUNTED_STEPS, whose start, stop and report steps replace PLAIN_STEPS').
# Once the server has exited, SIGPIPE is ignored: the session may be gone (a driver killed
# outright), and the report step must still clean up after its writes to it fail.
SERVER_SCRIPT = r"""exec 4<&0 </dev/null
start "$@"
{ while IFS= read -r line; do forward "$line"; done; stop; sleep 5; kill -KILL -$srv; } <&4 >/dev/null 2>&1 &
reader=$!
exec 4<&- 3>&-
wait $srv; code=$?
kill -KILL -$srv 2>/dev/null
kill $reader 2>/dev/null
trap '' PIPE
echo "exit $code"
report
exit $code
"""
PLAIN_STEPS = r"""
start() { setsid "$@" & srv=$!; }
forward() { :; }
stop() { kill -TERM $srv; }
report() { :; }
"""
SERVER_STOP_EXTRA_S = 3.0    # the stop's round trip over ssh, on top of the local grace


class RemoteServer(ServerHandle):
    """A server started on its own host through ssh (point.start_server's handle for it): the
    same questions as server_handle.LocalServer, answered on that host."""

    def __init__(self, sup, trial, session):
        self.sup, self.session, self.entry = sup, session, trial.server_host
        self.host, self.sampler_log = self.entry.host, session.log
        self.address = self.entry.address or session.ssh_connection.split()[2]
        self.proc = self.pid = None
        name = f"server {self.entry.host}"
        server_file = trial.binaries.server_file(trial.model)
        if server_file:
            # A server file's server: the launcher (one zip of the driver's modules it needs, run
            # by the host's python3) and the file, copied there; its program is the host's own.
            launcher, _ = on_behalf_of(name, session.binary_path, launcher_zipapp(), "launch_server.pyz")
            self.binary, self.digest = on_behalf_of(name, session.binary_path, server_file.path,
                                                    f"{trial.model}.toml")
            self.program = ["python3", launcher, self.binary]
        else:
            local_server = trial.binaries.server(trial.model)
            preset = self.entry.bin and f"{self.entry.bin}/{os.path.basename(local_server)}"
            self.binary, self.digest = on_behalf_of(name, session.binary_path, local_server,
                                                    os.path.basename(local_server), preset)
            self.program = [self.binary]
        self.loadgen, _ = on_behalf_of(name, session.binary_path, trial.binaries.loadgen, "loadgen",
                                       self.entry.loadgen)
        self.cpus = self.entry.cpus or CpuLayout.for_point(max(session.cpus, 1), trial.spec.all_cpus).server
        self.counted = trial.counted  # remote_counting.RemoteCounted in a counting trial
        if self.counted:
            self.at_edge = lambda command, edge_at: self.counted.switch(self.proc, command, edge_at)

    def argv(self, server_argv):
        """The ssh command that runs server_argv (taskset, the binary, its flags) there, under
        perf in a counting trial where perf counts there."""
        wrapper = self.counted and self.counted.wrapper(self.sup, self)
        steps, args = wrapper or (PLAIN_STEPS, [])
        return self.session.ssh(sh_command(steps + SERVER_SCRIPT, *args, *server_argv))

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
        if self.counted:
            self.counted.take_report(said)
        # perf's acks end in a NUL, which can land before the exit line.
        exits = re.findall(rb"^exit (\d+)$", said.replace(b"\0", b""), re.M)
        if exits:
            return int(exits[-1]), ""
        return code, note or f"on {self.host}: no exit code came back through ssh (ssh exited {code})"

    def record(self):
        return {"host": self.entry.host, "address": self.address, "cpus": self.cpus, "binary": self.binary,
                "binary_sha256": self.digest, "copied": self.digest is not None,
                "ssh_connection": self.session.ssh_connection, "pid": self.pid, "sampler": self.loadgen}


_launcher = {}


def launcher_zipapp():
    """serverbench.launch_server and the modules it imports as one file that any python3 (3.11 or
    later: tomllib) runs: made once per driver, in a folder removed at exit."""
    if "path" not in _launcher:
        work = tempfile.mkdtemp(prefix="serverbench-launcher-")
        atexit.register(shutil.rmtree, work, True)
        package = os.path.join(work, "src", "serverbench")
        os.makedirs(package)
        here = os.path.dirname(os.path.abspath(__file__))
        for module in ("__init__.py", "launch_server.py", "server_file.py", "scenarios.py"):
            shutil.copy(os.path.join(here, module), package)
        with open(os.path.join(work, "src", "__main__.py"), "w") as f:
            f.write("import sys\nfrom serverbench.launch_server import main\nsys.exit(main())\n")
        _launcher["path"] = os.path.join(work, "launch_server.pyz")
        zipapp.create_archive(os.path.join(work, "src"), _launcher["path"])
    return _launcher["path"]


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
