"""Runs the server of a server file (server_file.py) as if it were one of the suite's models:

    python3 -m serverbench.launch_server FILE [--port N] [--host ADDR] [--unix PATH] [--workers N]

It takes a model's flags (docs/contract.md), fills the file's placeholders, writes its config
into a private folder, starts the server in the foreground, waits until it is ready (its port
accepts, or its output shows the file's log line), prints the models' readiness line
`port=N pid=P model=NAME stop_pid=L` with the server's own pid (the sampler and perf follow its
process tree from there) and its own (the driver stops the server through it), and forwards
SIGTERM or SIGINT as the file's stop signal. It exits with 0 when
the server stopped on that signal, and copies the server's output to stderr (the point's server
log). A flag a server file cannot honour is refused as the models refuse one: `unsupported` on
stderr and exit code 2.
"""
import argparse
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from serverbench.server_file import BODY, DEFAULT_WORKERS, ServerFileError, load, render

STOP_S = 5.0
_PR_SET_PDEATHSIG = 1


class Refused(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise Refused(message)


def parse_args(argv):
    ap = Parser(prog="serverbench.launch_server", add_help=False)
    ap.add_argument("file")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--unix")
    ap.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    ap.add_argument("--protocol", default="http", choices=("http",))
    return ap.parse_args(argv)


def free_port(host):
    """A port nothing listens on at host: the kernel's choice for a socket bound and closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def values_for(server, args, tmpdir):
    cpus = sorted(os.sched_getaffinity(0))
    values = {"address": args.host, "port": args.port if args.unix is None else 0, "unix": args.unix or "",
              "cpus": ",".join(map(str, cpus)), "cpu_count": len(cpus), "workers": args.workers,
              "tmpdir": tmpdir, "body": BODY, "body_file": os.path.join(tmpdir, "body.txt"),
              "config": os.path.join(tmpdir, server.config_name), "dir": server.dir}
    if args.unix is None and args.port == 0:
        values["port"] = free_port(args.host)
    values["listen"] = render(server.listen_unix if args.unix else server.listen_tcp, values)
    return values


def write_files(server, values):
    """The body file and the rendered config in the private folder, readable by a server that
    drops root for its workers (nginx's, Apache's)."""
    os.chmod(values["tmpdir"], 0o755)
    with open(values["body_file"], "w") as f:
        f.write(BODY)
    if server.config is not None:
        with open(values["config"], "w") as f:
            f.write(render(server.config, values))
    for path in (values["body_file"], values["config"]):
        if os.path.exists(path):
            os.chmod(path, 0o644)


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def in_child():
    """The server gets SIGTERM if the launcher dies first (the driver's watchdog still kills the
    process group for anything left), and none of the signals the launcher waits for blocked."""
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS | {signal.SIGCHLD})


def ready(server, values, output, unix, pid):
    """True once the server is ready, by the file's rule."""
    if server.ready_workers and tree_threads(pid) < int(values["workers"]) + 1:
        return False
    if server.ready == "log":
        with open(output, errors="replace") as f:
            return re.search(server.ready_log, f.read(), re.MULTILINE) is not None
    family, where = (socket.AF_UNIX, unix) if unix else (socket.AF_INET, (values["address"], int(values["port"])))
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(where) == 0


def tree_threads(pid):
    """The threads of pid and of every process below it."""
    parents, threads = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
                parents.setdefault(int(fields[1]), []).append(int(entry))
                threads[int(entry)] = int(fields[17])
            except (OSError, IndexError, ValueError):
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += threads.get(p, 0)
        todo += parents.get(p, [])
    return total


def wait_ready(server, proc, values, output, unix):
    """None once ready, else why not."""
    deadline = time.monotonic() + server.ready_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"exited with code {proc.returncode} before it was ready"
        try:
            if ready(server, values, output, unix, proc.pid):
                return None
        except OSError:
            pass
        time.sleep(0.02)
    awaited = "its port never accepted" if server.ready == "port" else f"no line matching {server.ready_log!r}"
    return f"not ready within {server.ready_timeout_s:g} s ({awaited})"


def serve(server, args):
    tmpdir = tempfile.mkdtemp(prefix=f"serverbench-{server.name}-")
    output = os.path.join(tmpdir, "output.log")
    proc = None
    try:
        values = values_for(server, args, tmpdir)
        write_files(server, values)
        argv = [render(a, values) for a in server.command]
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS | {signal.SIGCHLD})
        with open(output, "wb") as out:
            # A process group of its own: Apache ends its children with kill(0, SIGTERM), which
            # must not reach the launcher and a counting trial's perf.
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    preexec_fn=in_child, process_group=0)
        problem = wait_ready(server, proc, values, output, args.unix)
        if problem:
            stop(server, proc)
            copy_output(output)
            print(f"serverbench.launch_server: {server.name} {problem} ({server.path})", file=sys.stderr)
            return 1
        unix = f" unix={args.unix}" if args.unix else ""
        print(f"port={values['port']} pid={proc.pid} model={server.name}{unix} stop_pid={os.getpid()}", flush=True)
        os.close(sys.stdout.fileno())
        return wait_and_stop(server, proc, output)
    finally:
        kill_leftovers(proc)
        shutil.rmtree(tmpdir, ignore_errors=True)


def kill_leftovers(proc):
    """Whatever the server left in its process group (a worker its master did not wait for)."""
    if proc is not None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass


def wait_and_stop(server, proc, output):
    """Waits for SIGTERM or SIGINT (then stops the server) or for the server's own exit; 0 when
    it stopped cleanly, else its code."""
    stopped = False
    while proc.poll() is None:
        got = signal.sigtimedwait(STOP_SIGNALS | {signal.SIGCHLD}, 1.0)
        if got and got.si_signo != signal.SIGCHLD:
            stop(server, proc)
            stopped = True
    copy_output(output)
    code = proc.returncode
    if code == 0 or (stopped and code == -getattr(signal, "SIG" + server.stop_signal)):
        return 0
    print(f"serverbench.launch_server: {server.name} exited with code {code}", file=sys.stderr)
    return code if code > 0 else 1


def stop(server, proc):
    if proc.poll() is None:
        proc.send_signal(getattr(signal, "SIG" + server.stop_signal))
    try:
        proc.wait(STOP_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def copy_output(path):
    try:
        with open(path, "rb") as f:
            shutil.copyfileobj(f, sys.stderr.buffer)
        sys.stderr.flush()
    except OSError:
        pass


def main(argv=None):
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        server = load(args.file)
        if args.unix and not server.listen_unix:
            raise Refused(f"{server.name} cannot listen on a Unix socket")
    except Refused as e:
        print(f"serverbench.launch_server: unsupported: {e}", file=sys.stderr)
        return 2
    except ServerFileError as e:
        print(f"serverbench.launch_server: {e}", file=sys.stderr)
        return 2
    return serve(server, args)


if __name__ == "__main__":
    sys.exit(main())
