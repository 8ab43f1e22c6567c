"""The matrix of a run: every model x scenario x point, one trial per repeat, or per side and
trial number in an A/B run.

Repeats are whole passes over the matrix: drift on a shared machine (a neighbour's build,
thermal limits) then spreads over every model instead of landing on one model's repeats. An
A/B run instead measures a point's trials back to back, A and B interleaved (ab.abba_order).
"""
import os
import subprocess
import time
from dataclasses import dataclass

from . import scenarios as sc
from .ab import abba_order, seeded_rng
from .counting import run_counting_trial
from .hosts_file import is_remote
from .jsonfile import read_json, write_json
from .log import log
from .noise import NoiseProbe
from .point import brief, run_trial
from .trial import seconds_of, trial_at


@dataclass(frozen=True)
class Entry:
    model: str
    spec: sc.PointSpec
    rep: int
    side: str = None                 # "A" (baseline) or "B" (current) in an A/B run
    count: bool = False              # a counting trial (counting.py), not a timed one

    @property
    def key(self):
        return (self.model, self.spec.scenario, self.spec.label, self.rep, self.side, self.count)



def plan_entries(models, scenarios, profile, repeat, trials=None, seed=1, refusal=None):
    """Every Entry of a run, in the order they run. Plain (trials None): the repeats as whole
    passes, then one pass of counting trials. A/B: per point, the timed trials in ABBA order, then
    the profile's counting trials (Profile.count_trials), in ABBA order too.
    refusal(model, spec): why a point does not run (default: scenarios.not_applicable of the
    suite's models); such a point gets one record."""
    refusal = refusal or (lambda model, spec: sc.not_applicable(model, spec, profile))
    specs = [(model, spec) for model in models for scenario in scenarios if sc.in_focus(model, scenario, profile)
             for spec in sc.scenario_points(scenario, profile)]
    runs = [(model, spec) for model, spec in specs if refusal(model, spec) is None]
    if not trials:
        return ([Entry(model, spec, rep) for rep in range(1, repeat + 1) for model, spec in specs]
                + [Entry(model, spec, 1, count=True) for model, spec in runs])
    rng = seeded_rng(seed)
    sizes = ((False, trials), (True, profile.count_trials(trials)))
    return [Entry(model, spec, k, side, count) for model, spec in runs
            for count, n in sizes for side, k in abba_order(n, rng)]


class Matrix:
    """sides: {None: Binaries} for a plain run, {"A": ..., "B": ...} for an A/B run."""

    def __init__(self, sup, run_dir, settings, sides, net, resumed=False, only=None):
        """settings: the run's settings.Settings; net: its network.py setup; only: measure just
        these (model, scenario, point) keys (a gate's confirmation)."""
        self.sup, self.run_dir, self.settings, self.sides, self.net = sup, run_dir, settings, sides, net
        self.profile = sc.PROFILES[settings.profile]
        self.entries = [e for e in self.all_entries() if only is None or e.key[:3] in only]
        written = run_dir.points()
        done = {(p["model"], p["scenario"], p["point"], p["repeat"], p.get("side"), p.get("kind") == "count")
                for p in written}
        self.todo = [e for e in self.entries if e.key not in done]
        self.measured_total = sum(1 for e in self.todo if self.skip_reason(e) is None)
        self.measured = 0
        self.number = len(self.entries) - len(self.todo)
        self.failed = sum(1 for p in written if p["status"] == "failed")
        self.started = time.monotonic()
        if resumed:
            log(f"== resume {run_dir.path}: {self.number} point(s) already written, skipped; "
                f"{len(self.todo)} to run")

    def skip_reason(self, entry):
        """Why entry is not measured (its record says not-applicable), or None."""
        return self.refusal(entry.model, entry.spec)

    def refusal(self, model, spec):
        server_file = next(iter(self.sides.values())).server_file(model)  # both sides have the same files
        return sc.not_applicable(model, spec, self.profile, server_file, self.settings.network.kind)

    def nothing_to_count(self, entry):
        """Why a counting trial is not run when its point's timed trials all ran and served no
        request (a pool whose workers the idle clients hold): counts per request need requests,
        and such a trial waits out the same time-outs again. None otherwise."""
        if not entry.count:
            return None
        timed = [p for p in self.run_dir.points() if p.get("kind") != "count" and p.get("side") == entry.side
                 and (p["model"], p["scenario"], p["point"]) == entry.key[:3]]
        if not timed or any(p["status"] != "ok" or not p.get("file") for p in timed):
            return None
        served = [(read_json(os.path.join(self.run_dir.path, p["file"])) or {}).get("totals", {}).get("requests")
                  for p in timed]
        if any(s is None or s > 0 for s in served):
            return None
        return "not counted: its timed trials served no request, so there is nothing to count per request"

    @property
    def ab(self):
        return "A" in self.sides

    def all_entries(self):
        s = self.settings
        return plan_entries(s.models, s.scenarios, self.profile, s.repeat, s.trials if self.ab else None, s.seed,
                            self.refusal)

    def run(self):
        """Runs what is left to run; returns the number of failed points in the whole run."""
        s = self.settings
        how = f"{s.trials} trials per side, A/B interleaved" if self.ab else f"repeat {s.repeat}"
        log(f"== run {self.run_dir.path}: profile {s.profile}, {how}, "
            f"{len(s.models)} models ({' '.join(s.models)}),")
        log(f"   scenarios: {' '.join(s.scenarios)}; {len(self.entries)} trials; "
            f"server on CPU 0, loadgen on the rest")
        self.measure_drift("start")
        for entry in self.todo:
            self.run_entry(entry)
        self.measure_drift("end")
        return self.failed

    def run_entry(self, entry):
        spec = entry.spec
        record = {"model": entry.model, "scenario": spec.scenario, "point": spec.label,
                  "connections": spec.connections, "repeat": entry.rep, "idle_connections": spec.idle,
                  "status": "not-applicable", "file": None, "reason": sc.NOT_APPLICABLE_REASON,
                  "server_cpus": None, "loadgen_cpus": None}
        if entry.side:
            record["side"] = entry.side
        if entry.count:
            record["kind"] = "count"
        skip = self.skip_reason(entry) or self.nothing_to_count(entry)
        if skip is None:
            started = time.monotonic()
            record.update(self.measure(entry))
            record["wall_s"] = round(time.monotonic() - started, 3)
            self.measured += 1
        else:
            record["reason"] = skip
        self.run_dir.append_point(record)
        self.number += 1
        self.failed += record["status"] == "failed"
        self.progress(record)

    def trial_for(self, entry, rel):
        # Counting trials keep loadgen here, so that perf counts its side of the window too; with
        # the server on a host of its own, they run as its timed trials do (perf counts it there).
        warmup, duration = ((self.profile.count_warmup, self.profile.count_duration) if entry.count
                            else (self.settings.warmup, self.settings.duration))
        local_count = entry.count and not is_remote(self.settings.server)
        return trial_at(self.run_dir.path, rel, entry.model, entry.spec, self.sides[entry.side], warmup=warmup,
                        duration=duration, net=self.net, timeout=self.profile.timeout,
                        hosts=None if local_count else self.settings.hosts)

    def measure(self, entry):
        label = entry.spec.label + ("-count" if entry.count else "")
        rel = self.run_dir.result_rel(entry.model, entry.spec.scenario, label, entry.rep, entry.side)
        trial = self.trial_for(entry, rel)
        probe = NoiseProbe().start()
        outcome = (run_counting_trial if entry.count else run_trial)(self.sup, trial)
        has_file = outcome.status == "ok" and os.path.exists(trial.out)
        share = (seconds_of(trial.warmup) + seconds_of(trial.duration)) / seconds_of(trial.duration)
        noise = probe.finish(read_json(trial.out) if has_file else None, share)
        if noise.get("heavy_steal"):
            outcome.reasons.append(f"measured under heavy steal ({noise['steal_pct']}% of CPU time)")
        return {"status": outcome.status, "file": rel if has_file else None, "reason": outcome.reason or None,
                "server_cpus": trial.cpus.server, "loadgen_cpus": trial.cpus.loadgen, "noise": noise}

    def measure_drift(self, when):
        """One reference point measured at the start and at the end of the run: how far the machine
        itself moved meanwhile. Recorded in drift.json, and in the manifest. A run without matrix
        points (only capacity sweeps, or a soak) has no span for it to measure."""
        path = os.path.join(self.run_dir.path, "drift.json")
        drift = read_json(path) or {}
        if when in drift or not self.entries:
            return
        model = "epoll" if "epoll" in self.settings.models else self.settings.models[0]
        c = self.profile.active_conns
        spec = sc.PointSpec("http-keepalive", f"c{c}", c, ("--protocol", "http"),
                            ("--protocol", "http", "--mode", "keepalive"))
        side = "B" if self.ab else None
        trial = self.trial_for(Entry(model, spec, 1, side), f"points/drift/{when}.json")
        outcome = run_trial(self.sup, trial)
        result = read_json(trial.out) if outcome.status == "ok" else None
        drift[when] = {"model": model, "point": spec.label, "status": outcome.status,
                       "throughput_rps": (result or {}).get("totals", {}).get("throughput_rps"),
                       "cpu_us_per_request": ((result or {}).get("server") or {}).get("cpu_us_per_request")}
        write_json(path, drift)

    def progress(self, record):
        per_point = (time.monotonic() - self.started) / max(self.measured, 1)
        left = max(0, (self.measured_total - self.measured) * per_point)
        summary = ""
        if record["status"] == "ok" and record["file"]:
            try:
                summary = brief(os.path.join(self.run_dir.path, record["file"]))
            except (OSError, ValueError, KeyError):
                pass
        reason = f"  - {record['reason']}" if record["reason"] else ""
        side = (f" {record['side']}" if record.get("side") else "") + (" count" if record.get("kind") else "")
        log(f"[{self.number:3d}/{len(self.entries)}] {record['model']:<16} {record['scenario']:<15} "
            f"{record['point']:<14} r{record['repeat']}{side}  {record['status']:<14} {summary}{reason}  "
            f"(ETA {int(left) // 60}m{int(left) % 60:02d}s)")

    def run_microbench(self, build_dir):
        binary = os.path.join(build_dir, "bin", "microbench")
        if not os.access(binary, os.X_OK):
            log(f"== microbench: {binary} not built, skipped")
            return
        min_time = self.profile.microbench_min_time
        log(f"== microbench (min time {min_time} s per benchmark)")
        out = os.path.join(self.run_dir.path, "microbench.json")
        with open(os.path.join(self.run_dir.path, "logs", "microbench.log"), "wb") as f:
            proc = self.sup.start(["taskset", "-c", "0", binary, f"--benchmark_min_time={min_time}",
                                   f"--benchmark_out={out}", "--benchmark_out_format=json"],
                                  f, subprocess.STDOUT, "microbench")
            code = proc.wait()
            self.sup.kill_group(proc)
        if code != 0:
            log(f"== microbench exited {code} (see logs/microbench.log); run goes on")
