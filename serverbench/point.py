"""One point: start the server pinned to its CPUs, wait for its readiness line, hold idle
connections if the point asks for them, run loadgen on the other CPUs with --server-pid, stop
everything, and decide the point's status.

A server that fails to start or dies is a failed point; loadgen errors with a live server are
data (refused, reset, timed out), noted in the reason.
"""
import json
import os
import re
import subprocess
import sys

from . import processes
from .client_runs import run_loadgens
from .hosts_file import is_remote
from .jsonfile import write_json
from .processes import last_line
from .remote_server import remote_server
from .server_handle import LocalServer
from .ssh_session import ClientFailure
from .trial import Outcome, loadgen_command, seconds_of

READY_TIMEOUT_S = 10
# The idle holder opens its connections within HOLD_CONNECT_S, then waits up to the trial's
# timeout for the server to accept them all, and only then says it is ready.
HOLD_CONNECT_S = 8
STOP_GRACE_S = 2.0
# A server file's launcher adds stop_pid=, its own pid: the one to signal (serverbench/launch_server.py).
SERVER_READY = re.compile(r"port=(\d+)(?:.*?\bpid=(\d+))?(?:.*?\bstop_pid=(\d+))?")
HOLDER_READY = re.compile(r"^ready ")
IDLE_HOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "idle_holder.py")


def run_trial(sup, trial):
    """Runs one trial and returns its Outcome; the result JSON is at trial.out when it has one."""
    os.makedirs(os.path.dirname(trial.out), exist_ok=True)
    os.makedirs(os.path.dirname(trial.log_base), exist_ok=True)
    outcome = Outcome()
    server, port = start_server(sup, trial, outcome)
    if server is None:
        return outcome
    holder = start_holder(sup, trial, port, server, outcome) if trial.spec.idle else None
    emulator_before = trial.net.begin_point()
    lg_code, lg_timeout = run_loadgen(sup, trial, port, server)
    record_network(trial, outcome, trial.net.end_point(emulator_before))
    server_was_alive = server.alive()
    if holder is not None:
        sup.stop(holder)
        merge_idle_result(trial)
    # perf, when it wraps the server, still has to read and write its counters after the server exits.
    grace = STOP_GRACE_S + (3.0 if trial.counted else 0.0)
    server_code, stop_note = server.stop(sup, grace)
    judge(trial, outcome, server_was_alive, server_code, stop_note, lg_code, lg_timeout)
    return outcome


def server_command(sup, trial):
    """(argv, remote_server.RemoteServer or None): the server pinned to its CPUs, here or on its host."""
    flags = ["--port", "0", *trial.spec.server_flags]
    if is_remote(trial.server_host):
        remote = remote_server(sup, trial)  # its binary is there, trial.cpus.server its CPUs
        return remote.argv(["taskset", "-c", trial.cpus.server, *remote.program, *flags]), remote
    argv = trial.net.server_argv(["taskset", "-c", trial.cpus.server, *trial.binaries.server_argv(trial.model), *flags],
                                 trial.name)
    return (trial.counted.wrap("server", argv) if trial.counted else argv), None


def start_server(sup, trial, outcome):
    """(LocalServer or remote_server.RemoteServer, port), or (None, None) with outcome saying why."""
    log = trial.log_base + ".server.log"
    try:
        argv, remote = server_command(sup, trial)
    except ClientFailure as failure:
        outcome.fail(str(failure))
        return None, None
    with open(log, "wb") as err:
        proc = sup.start(argv, subprocess.PIPE, err, "server", stdin=subprocess.PIPE if remote else subprocess.DEVNULL)
    match, failure = processes.wait_ready(proc, SERVER_READY, READY_TIMEOUT_S)
    if match is None:
        sup.stop(proc, 0.5)
        if proc.returncode == 2 and "unsupported" in open(log, errors="replace").read().lower():
            outcome.status = "unsupported"
            outcome.reasons.append(last_line(log))
        else:
            where = f" on {trial.server_host.host}" if remote else ""
            outcome.fail(f"server{where} {failure}: {last_line(log)}")
        return None, None
    server_pid = int(match.group(2)) if match.group(2) else proc.pid
    if remote:
        return remote.started(proc, server_pid), int(match.group(1))
    # Nothing more is read from a local server's stdout: the readiness line was all of it.
    proc.stdout.close()
    stop_pid = int(match.group(3)) if match.group(3) else server_pid
    return LocalServer(sup, trial, proc, server_pid, stop_pid), int(match.group(1))


def start_holder(sup, trial, port, server, outcome):
    settle_s = seconds_of(trial.timeout)
    argv = trial.net.client_argv([sys.executable, IDLE_HOLDER, *server.target_flags(trial, port),
                                  "--count", str(trial.spec.idle), "--connect-timeout", str(HOLD_CONNECT_S),
                                  "--settle-timeout", str(settle_s), "--out", trial.log_base + ".idle.json"])
    with open(trial.log_base + ".idle.log", "wb") as err:
        proc = sup.start(argv, subprocess.PIPE, err, "idle holder")
    match, failure = processes.wait_ready(proc, HOLDER_READY, HOLD_CONNECT_S + settle_s + 5)
    if match is None:
        sup.stop(proc, 0.5)
        outcome.reasons.append(f"idle holder {failure}")
        return None
    proc.stdout.close()
    return proc


def loadgen_argv(trial, port, server_pid):
    """loadgen here, on the CPUs the server does not have, sampling the server by its pid."""
    return trial.net.client_argv(loadgen_command(
        trial, trial.binaries.loadgen, trial.net.target_flags(port, trial.name),
        connections=trial.spec.connections, threads=trial.cpus.loadgen_threads, cpus=trial.cpus.loadgen,
        out=trial.out, extra=("--server-pid", str(server_pid))))


def run_loadgen(sup, trial, port, server):
    """Returns (exit code, time limit in s if it was hit)."""
    if trial.clients:
        return run_loadgens(sup, trial, port, server)
    limit = trial.window_s + 20
    argv = loadgen_argv(trial, port, server.pid)
    if trial.counted:
        argv = trial.counted.wrap("loadgen", argv)
        trial.counted.start_relay()
    with open(trial.log_base + ".loadgen.log", "wb") as log:
        proc = sup.start(argv, log, subprocess.STDOUT, "loadgen")
    try:
        processes.wait_exit(proc, limit)
    except subprocess.TimeoutExpired:
        sup.stop(proc, 2.0)
        return proc.returncode, limit
    sup.kill_group(proc)
    return proc.returncode, None


def record_network(trial, outcome, emulator):
    """The network setup in the result's env, and what the link emulator did during the point: a
    point where the emulator was the limit is marked, like a loadgen-bound one."""
    def change(doc):
        doc.setdefault("env", {})["network"] = trial.net.env()
        if emulator is not None:
            doc["env"]["network"]["emulator_window"] = emulator
    if os.path.exists(trial.out) and os.path.getsize(trial.out) > 0:
        update_json(trial.out, change)
    if emulator and emulator.get("bound"):
        outcome.reasons.append("emulator-bound: the link emulator was the limit (late or dropped frames, "
                               "or its CPU)")


def merge_idle_result(trial):
    held = trial.log_base + ".idle.json"
    if not (os.path.getsize(trial.out) if os.path.exists(trial.out) else 0) or not os.path.exists(held):
        return
    try:
        with open(held) as f:
            idle = json.load(f)
        update_json(trial.out, lambda doc: doc.__setitem__("idle_connections", idle))
    except (OSError, ValueError):
        pass


def update_json(path, change):
    with open(path) as f:
        doc = json.load(f)
    change(doc)
    write_json(path, doc)


def judge(trial, outcome, server_was_alive, server_code, stop_note, lg_code, lg_timeout):
    has_result = os.path.exists(trial.out) and os.path.getsize(trial.out) > 0
    lg_log = trial.log_base + ".loadgen.log"
    if not server_was_alive:
        outcome.fail(f"server died mid-point (exit code {server_code}): "
                     f"{last_line(trial.log_base + '.server.log')}")
    elif not has_result:
        outcome.fail(f"loadgen timed out after {lg_timeout:g} s" if lg_timeout
                     else f"loadgen exited {lg_code} without a result: {last_line(lg_log)}")
    elif lg_code > 1:
        outcome.fail(f"loadgen exited {lg_code}: {last_line(lg_log)}")
    elif lg_code == 1:
        outcome.reasons.append(f"loadgen reported errors: {last_line(lg_log)}")
    if outcome.status == "ok":
        if not stop_note and server_code != 0:
            stop_note = f"exited with code {server_code} on SIGTERM (expected 0)"
        if stop_note:
            outcome.reasons.append(f"server {stop_note}")


def brief(path):
    """One line for the progress log: throughput, p99, server CPU per request, errors."""
    with open(path) as f:
        r = json.load(f)
    text = f"{r['totals']['throughput_rps']:>10,.0f} req/s  p99 {r['latency_us'].get('p99', 0) / 1000:7.2f} ms"
    cpu = (r.get("server") or {}).get("cpu_us_per_request")
    if cpu is not None:
        text += f"  srv {cpu:6.1f} us/req"
    errors = sum((r["totals"].get("errors") or {}).values())
    return text + (f"  errors {errors}" if errors else "")
