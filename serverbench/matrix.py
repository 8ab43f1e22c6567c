"""The matrix of a run: every model x scenario x point x repeat, one trial each.

Repeats are whole passes over the matrix: drift on a shared machine (a neighbour's build,
thermal limits) then spreads over every model instead of landing on one model's repeats.
"""
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from . import scenarios as sc
from .point import CpuLayout, Trial, brief, run_trial


@dataclass(frozen=True)
class Entry:
    model: str
    spec: sc.PointSpec
    rep: int

    @property
    def key(self):
        return (self.model, self.spec.scenario, self.spec.label, self.rep)


def log(text):
    print(text, file=sys.stderr, flush=True)


class Matrix:
    def __init__(self, sup, run_dir, settings, binaries, resumed=False):
        self.sup, self.run_dir, self.settings, self.binaries = sup, run_dir, settings, binaries
        self.profile = sc.PROFILES[settings["profile"]]
        self.entries = self.all_entries()
        done = {(p["model"], p["scenario"], p["point"], p["repeat"]) for p in run_dir.points()}
        self.todo = [e for e in self.entries if e.key not in done]
        self.measured_total = sum(1 for e in self.todo if sc.applicable(e.model, e.spec, self.profile))
        self.measured = self.failed = 0
        self.number = len(self.entries) - len(self.todo)
        self.started = time.monotonic()
        self.failed = sum(1 for p in run_dir.points() if p["status"] == "failed")
        if resumed:
            log(f"== resume {run_dir.path}: {self.number} point(s) already written, skipped; "
                f"{len(self.todo)} to run")

    def all_entries(self):
        return [Entry(model, spec, rep)
                for rep in range(1, self.settings["repeat"] + 1)
                for model in self.settings["models"]
                for scenario in self.settings["scenarios"]
                for spec in sc.scenario_points(scenario, self.profile)]

    def run(self):
        """Runs what is left to run; returns the number of failed points in the whole run."""
        s = self.settings
        log(f"== run {self.run_dir.path}: profile {s['profile']}, repeat {s['repeat']}, "
            f"{len(s['models'])} models ({' '.join(s['models'])}),")
        log(f"   scenarios: {' '.join(s['scenarios'])}; {len(self.entries)} points; "
            f"server on CPU 0, loadgen on the rest")
        for entry in self.todo:
            self.run_entry(entry)
        return self.failed

    def run_entry(self, entry):
        spec, model, rep = entry.spec, entry.model, entry.rep
        record = {"model": model, "scenario": spec.scenario, "point": spec.label,
                  "connections": spec.connections, "repeat": rep, "idle_connections": spec.idle,
                  "status": "not-applicable", "file": None, "reason": sc.NOT_APPLICABLE_REASON,
                  "server_cpus": None, "loadgen_cpus": None}
        if sc.applicable(model, spec, self.profile):
            record.update(self.measure(entry))
            self.measured += 1
        self.run_dir.append_point(record)
        self.number += 1
        self.failed += record["status"] == "failed"
        self.progress(record)

    def measure(self, entry):
        spec, model, rep = entry.spec, entry.model, entry.rep
        cpus = CpuLayout.for_point(os.cpu_count() or 1, spec.all_cpus)
        rel = self.run_dir.result_rel(model, spec.scenario, spec.label, rep)
        trial = Trial(model=model, spec=spec, binaries=self.binaries, out=os.path.join(self.run_dir.path, rel),
                      log_base=self.run_dir.log_base(model, spec.scenario, spec.label, rep),
                      warmup=self.settings["warmup"], duration=self.settings["duration"], cpus=cpus)
        outcome = run_trial(self.sup, trial)
        has_file = outcome.status == "ok" and os.path.exists(trial.out)
        return {"status": outcome.status, "file": rel if has_file else None, "reason": outcome.reason or None,
                "server_cpus": cpus.server, "loadgen_cpus": cpus.loadgen}

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
        log(f"[{self.number:3d}/{len(self.entries)}] {record['model']:<16} {record['scenario']:<15} "
            f"{record['point']:<14} r{record['repeat']}  {record['status']:<14} {summary}{reason}  "
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
