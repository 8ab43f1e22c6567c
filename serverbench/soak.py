"""The soak (docs/soak.md): one model at a time under a steady mixed load for --soak-minutes,
its process tree sampled every few seconds, then a drain and a second, shorter load. The record
of each model, with its samples, its per-interval throughput and p99, and its verdict
(soak_verdict.py), goes to soak.json, which --resume reads to skip the models already soaked.

The load (scenarios.SoakPlan) is three processes on loadgen's CPUs: loadgen's keep-alive
clients, loadgen's churning clients (a new connection per request), both open loop and
streaming their timeseries to a file (--series-file), and soak_clients.py's idle waves and
misbehaving clients.
"""
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict

from . import processes
from . import scenarios as sc
from . import soak_verdict
from .jsonfile import read_json, write_json
from .log import log
from .point import start_server
from .trial import Outcome, flag_value, loadgen_command, trial_at

SCHEMA = "serverbench-soak/1"
SOAK_CLIENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "soak_clients.py")
CLK_TCK = os.sysconf("SC_CLK_TCK")
STOP_GRACE_S = 5.0


# ------------------------------------------------------------------ a process tree, from /proc


def smaps_kib(pid):
    """(Pss, Rss) in KiB: PSS shares each page among the processes that map it, so a tree's sum
    counts a prefork server's shared pages once, where summed RSS counts them per process."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("Pss", "Rss"):
                fields[name] = int(rest.split()[0])
    if len(fields) < 2:  # a zombie: its memory is gone, and so is the file's content
        raise ProcessLookupError(pid)
    return fields["Pss"], fields["Rss"]


def process_usage(pid, with_children_cpu):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if with_children_cpu else 0)
    pss, rss = smaps_kib(pid)
    return {"pss_kib": pss, "rss_kib": rss, "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "threads": int(fields[17]), "processes": 1, "cpu_s": ticks / CLK_TCK}


def tree_usage(root):
    """The server's processes summed: memory, descriptors, threads, processes and CPU time (the
    root's reaped children's too, so a fork per connection's work is counted once it exits)."""
    total = {"pss_kib": 0, "rss_kib": 0, "fds": 0, "threads": 0, "processes": 0, "cpu_s": 0.0}
    for pid in processes.tree_of(root):
        try:
            usage = process_usage(pid, with_children_cpu=pid == root)
        except (OSError, IndexError, ValueError):  # it exited while read
            continue
        for key, value in usage.items():
            total[key] += value
    total["cpu_s"] = round(total["cpu_s"], 2)
    return total


def loadgen_pss(pid):
    """A loadgen's PSS in KiB, or None once it has exited (a zombie has no smaps_rollup)."""
    try:
        return smaps_kib(pid)[0]
    except OSError:
        return None


class TreeSampler(threading.Thread):
    """Samples the server's tree, and loadgen's own memory, every `every_s` until stopped."""

    def __init__(self, server_pid, every_s):
        super().__init__(daemon=True)
        self.server_pid, self.every_s = server_pid, every_s
        self.phase, self.loadgen_pids, self.samples = "settle", [], []
        self.started = time.time()
        self.done = threading.Event()

    def run(self):
        while not self.done.wait(self.every_s):
            self.samples.append(self.take())

    def take(self):
        now = time.time()
        sample = {"t_s": None, "unix_s": round(now, 3), "phase": self.phase, **tree_usage(self.server_pid)}
        pss = [loadgen_pss(p) for p in self.loadgen_pids]
        sample["loadgen_pss_kib"] = sum(pss) if pss and None not in pss else None
        return sample

    def stop(self):
        self.done.set()
        self.join()


# ------------------------------------------------------------------ one model's soak


class Soak:
    """One model under the soak's load: settle, soak, drain, reload."""

    def __init__(self, sup, run_dir, binaries, model, minutes, net, plan=sc.SOAK_PLAN):
        self.sup, self.run_dir, self.binaries, self.model = sup, run_dir, binaries, model
        self.minutes, self.net, self.plan = minutes, net, plan
        self.soak_s = round(minutes * 60, 1)
        self.reload_s = plan.reload_seconds(self.soak_s)

    def spec(self, kind):
        p = self.plan
        conns, rate, mode = ((p.keepalive_conns, p.keepalive_rps, "keepalive") if kind == "keepalive"
                             else (p.churn_conns, p.churn_rps, "close"))
        return sc.PointSpec("soak", kind, conns, ("--protocol", "http"),
                            ("--protocol", "http", "--mode", mode, "--rate", str(rate), "--interval", p.interval))

    def trial(self, phase, kind, seconds):
        rel = self.run_dir.result_rel(self.model, "soak", f"{phase}-{kind}", 1)
        return trial_at(self.run_dir.path, rel, self.model, self.spec(kind), self.binaries, warmup="0s",
                        duration=f"{seconds:g}s", net=self.net)

    def run(self):
        started = time.monotonic()
        outcome = Outcome()
        head = self.trial("soak", "keepalive", self.soak_s)
        os.makedirs(os.path.dirname(head.log_base), exist_ok=True)
        server, port = start_server(self.sup, head, outcome)
        if server is None:
            return self.record(outcome, started)
        sampler = TreeSampler(server.pid, self.plan.sample_s)
        sampler.start()
        try:
            loads = self.phases(server, port, sampler, outcome)
        finally:
            sampler.stop()
            alive = server.alive()
            code, note = server.stop(self.sup, STOP_GRACE_S)
        if not alive:
            outcome.fail(f"server died during the soak (exit code {code}): "
                         f"{processes.last_line(head.log_base + '.server.log')}")
        elif note:
            outcome.reasons.append(f"server {note}")
        return self.record(outcome, started, sampler, loads)

    def phases(self, server, port, sampler, outcome):
        """settle (a short load, so what a server makes on its first requests is not growth), soak,
        drain, reload; returns {phase: what its load did}. Sets self.before and self.after_drain."""
        loads = {"settle": self.load("settle", self.plan.settle_s, server, port, sampler, outcome)}
        self.before, _ = self.drain(server.pid, None)
        self.soak_started = time.time()
        loads["soak"] = self.load("soak", self.soak_s, server, port, sampler, outcome)
        sampler.phase = "drain"
        self.after_drain, self.drain_s = self.drain(server.pid, self.before)
        loads["reload"] = self.load("reload", self.reload_s, server, port, sampler, outcome)
        return loads

    def drain(self, pid, before):
        """Waits until the server holds no more descriptors, threads and processes than before
        (before None: until they hold still for half a second), at most the plan's drain_s;
        returns (its counts then, seconds waited)."""
        started, last = time.monotonic(), None
        while True:
            time.sleep(0.5)
            now = tree_usage(pid)
            counts = [now[k] for k in ("fds", "threads", "processes")]
            waited = time.monotonic() - started
            settled = counts == last if before is None else all(
                c <= before[k] for c, k in zip(counts, ("fds", "threads", "processes")))
            if (settled and waited >= 1.0) or waited >= self.plan.drain_s:
                return now, round(waited, 1)
            last = counts

    def load(self, phase, seconds, server, port, sampler, outcome):
        """Both loadgens and the awkward clients for `seconds`; returns their results' figures."""
        trials = {kind: self.trial(phase, kind, seconds) for kind in ("keepalive", "churn")}
        procs = {kind: self.start_loadgen(t, port, server.pid) for kind, t in trials.items()}
        mixer = self.start_clients(trials["keepalive"], port, server)
        sampler.loadgen_pids = [p.pid for p in procs.values()]
        sampler.phase = phase
        for kind, proc in procs.items():
            try:
                processes.wait_exit(proc, seconds + 30)
            except subprocess.TimeoutExpired:
                outcome.fail(f"{phase}: the {kind} loadgen did not end within {seconds + 30:g} s")
            self.sup.stop(proc, 2.0)
            if proc.returncode not in (0, 1):
                outcome.fail(f"{phase}: the {kind} loadgen exited {proc.returncode}: "
                             f"{processes.last_line(trials[kind].log_base + '.loadgen.log')}")
        sampler.loadgen_pids = []
        self.sup.stop(mixer, 15.0)
        return {kind: self.load_figures(t) for kind, t in trials.items()} | {
            "clients": read_json(trials["keepalive"].log_base + ".clients.json")}

    def start_loadgen(self, trial, port, server_pid):
        argv = trial.net.client_argv(loadgen_command(
            trial, trial.binaries.loadgen, trial.net.target_flags(port, trial.name),
            connections=trial.spec.connections, threads=1, cpus=trial.cpus.loadgen, out=trial.out,
            extra=("--server-pid", str(server_pid), "--series-file", series_path(trial))))
        os.makedirs(os.path.dirname(trial.out), exist_ok=True)
        with open(trial.log_base + ".loadgen.log", "wb") as log_file:
            return self.sup.start(argv, log_file, subprocess.STDOUT, "loadgen")

    def start_clients(self, trial, port, server):
        p = self.plan
        argv = trial.net.client_argv(["taskset", "-c", trial.cpus.loadgen, sys.executable, SOAK_CLIENTS,
                                      *server.target_flags(trial, port), "--wave", str(p.idle_wave),
                                      "--wave-every", str(p.wave_every_s), "--wave-hold", str(p.wave_hold_s),
                                      "--bad-every", str(p.bad_every_s), "--max-bad", str(p.max_bad),
                                      "--out", trial.log_base + ".clients.json"])
        with open(trial.log_base + ".clients.log", "wb") as err:
            return self.sup.start(argv, subprocess.DEVNULL, err, "soak clients")

    def load_figures(self, trial):
        doc = read_json(trial.out) or {}
        totals = doc.get("totals") or {}
        return {"file": os.path.relpath(trial.out, self.run_dir.path),
                "offered_rps": float(flag_value(trial.spec.loadgen_flags, "--rate")),
                "throughput_rps": totals.get("throughput_rps"), "requests": totals.get("requests"),
                "errors": sum((totals.get("errors") or {}).values()),
                "p99_us": (doc.get("latency_us") or {}).get("p99")}

    def record(self, outcome, started, sampler=None, loads=None):
        record = {"model": self.model, "status": outcome.status, "reason": outcome.reason or None,
                  "minutes": self.minutes, "soak_s": self.soak_s, "reload_s": self.reload_s,
                  "plan": asdict(self.plan), "wall_s": round(time.monotonic() - started, 1)}
        if sampler is None or outcome.status != "ok":
            return record
        origin = self.soak_started
        samples = [dict(s, t_s=round(s["unix_s"] - origin, 2)) for s in sampler.samples]
        intervals = self.intervals(origin)
        add_cpu_per_request(samples, intervals)
        load = {phase: loads[phase] for phase in ("soak", "reload")}
        record.update(before=self.before, after_drain=self.after_drain, drain_s=self.drain_s, samples=samples,
                      intervals=intervals, load=load, load_held=load_held(load))
        record["verdict"] = soak_verdict.judge(record, self.minutes)
        return record

    def intervals(self, origin):
        """Per interval of the soak and the reload: the keep-alive clients' p99 and both loads' requests."""
        rows = []
        for phase in ("soak", "reload"):
            churn = {round(e["t_s"], 3): e for e in read_series(series_path(self.trial(phase, "churn", 1)))}
            for e in read_series(series_path(self.trial(phase, "keepalive", 1))):
                c = churn.get(round(e["t_s"], 3), {})
                rows.append({"t_s": round(e["unix_s"] - origin, 2), "unix_s": e["unix_s"], "phase": phase,
                             "requests": e.get("requests", 0) + c.get("requests", 0),
                             "errors": e.get("errors", 0) + c.get("errors", 0),
                             "p99_us": e.get("p99_us"), "churn_p99_us": c.get("p99_us")})
        return rows


def series_path(trial):
    return trial.out[:-len(".json")] + ".series.jsonl"


def read_series(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return []


def add_cpu_per_request(samples, intervals):
    """Each sample's server CPU per request since the sample before, from the requests of the
    intervals that ended between them."""
    for prev, cur in zip(samples, samples[1:]):
        served = sum(i["requests"] for i in intervals if prev["unix_s"] < i["unix_s"] <= cur["unix_s"])
        cpu = cur["cpu_s"] - prev["cpu_s"]
        cur["requests"] = served
        cur["cpu_us_per_request"] = round(cpu * 1e6 / served, 1) if served and cur["phase"] == prev["phase"] else None


def load_held(load):
    """Whether the offered rates were served (within 10%): a soak that overloads the server
    measures overload, not time."""
    return all((f.get("throughput_rps") or 0) >= 0.9 * f["offered_rps"]
               for phase in load.values() for kind, f in phase.items() if kind != "clients")


# ------------------------------------------------------------------ the run's soaks


def soak_path(run_dir):
    return os.path.join(run_dir.path, "soak.json")


def run_selected(sup, run_dir, settings, sides, net):
    """Soaks each model of the run for settings.soak_minutes when the run has the soak scenario,
    skipping those soak.json already holds (--resume); returns the number of failed soaks."""
    if not settings.soak_minutes:
        return 0
    if "A" in sides:
        log("== soak skipped: an A/B run compares points")
        return 0
    minutes = settings.soak_minutes
    path = soak_path(run_dir)
    doc = read_json(path) or {"schema": SCHEMA, "minutes": minutes, "plan": asdict(sc.SOAK_PLAN), "records": []}
    done = {r["model"] for r in doc["records"]}
    todo = [m for m in settings.models if m not in done]
    log(f"== soak: {len(todo)} model(s), {minutes:g} min each, then a drain and a "
        f"{sc.SOAK_PLAN.reload_seconds(minutes * 60):g} s reload")
    failed = 0
    for model in todo:
        record = soak_one(sup, run_dir, sides[None], model, minutes, net)
        failed += record["status"] == "failed"
        doc["records"].append(record)
        write_json(path, doc)
    return failed


def soak_one(sup, run_dir, binaries, model, minutes, net):
    refusal = refusal_of(model, binaries, net)
    if refusal:
        log(f"== soak {model}: not-applicable ({refusal})")
        return {"model": model, "status": "not-applicable", "reason": refusal, "minutes": minutes}
    record = Soak(sup, run_dir, binaries, model, minutes, net).run()
    v = record.get("verdict") or {}
    log(f"== soak {model}: {record['status']}"
        + (f", {v['verdict']}" + (f" ({', '.join(v['grew'])})" if v.get("grew") else "") if v else "")
        + (f" - {record['reason']}" if record.get("reason") else "") + f" ({record['wall_s']:.0f} s)")
    return record


def refusal_of(model, binaries, net):
    server_file = binaries.server_file(model)
    if server_file is not None:
        return server_file.refusal("soak", net.kind)
    return sc.SOAK_NOT_APPLICABLE if model == "blocking" else None
