"""The run's capacity sweeps: one model on one capacity scenario at a time, each step a trial
run by point.run_trial, the next step chosen by capacity.next_rate, the record written to
capacity.json (which --resume reads to skip the sweeps already made).
"""
import os
import time
from dataclasses import dataclass, field, replace

from . import scenarios as sc
from .capacity import CONNECTIONS, REPEATABLE_RESOLUTION, SCHEMA, SweepSettings, run_sweep, step_from_result, step_seconds, summarize
from .jsonfile import read_json, write_json
from .log import log
from .point import run_trial
from .network import Loopback
from .processes import Supervisor
from .rundir import RunDir
from .settings import CapacitySelection, HostsSettings, Settings
from .trial import Binaries, seconds_of, trial_at



def sweep_settings(plan):
    """SweepSettings from a profile's scenarios.CapacityPlan."""
    return SweepSettings(warmup=plan.warmup, duration=plan.duration, interval=plan.interval,
                         closed_duration=plan.closed_duration, min_samples=plan.min_samples,
                         max_duration=plan.max_duration, repeats=plan.repeats,
                         resolution=plan.resolution, max_steps=plan.max_steps)


def scenario_settings(cfg, scenario):
    """The profile's settings, with the longer steps a datagram sweep needs for its loss figure."""
    c = sc.CAPACITY_SCENARIOS[scenario]
    if not c.min_samples:
        return cfg
    longest = max(seconds_of(cfg.max_duration), seconds_of(c.max_duration or cfg.max_duration))
    return replace(cfg, min_samples=max(cfg.min_samples, c.min_samples), max_duration=f"{longest:g}s")


@dataclass
class Sweep:
    """One model on one capacity scenario, measured through point.run_trial."""
    sup: Supervisor
    run_dir: RunDir
    binaries: Binaries
    model: str
    scenario: str
    cfg: SweepSettings
    slo_ms: float
    net: Loopback                 # network.py (Loopback or a subclass): where the traffic goes
    hosts: HostsSettings = None   # --hosts: the load comes from its clients
    failure: str = None
    status: str = "ok"
    trials: int = field(default=0)

    def trial(self, spec, rep, duration, extra=()):
        rel = self.run_dir.result_rel(self.model, self.scenario, spec.label, rep)
        return rel, trial_at(self.run_dir.path, rel, self.model, spec, self.binaries, warmup=self.cfg.warmup,
                             duration=duration, net=self.net, hosts=self.hosts, extra=extra)

    def run_one(self, spec, rep, duration, extra=()):
        """The result JSON of one trial, or None (and the sweep's status says why)."""
        rel, trial = self.trial(spec, rep, duration, extra)
        outcome = run_trial(self.sup, trial)
        self.trials += 1
        doc = read_json(trial.out) if outcome.status == "ok" else None
        if doc is None:
            self.status, self.failure = outcome.status, outcome.reason or "no result"
        return doc, rel

    def closed_probe(self):
        spec = sc.capacity_spec(self.scenario, f"closed-c{CONNECTIONS}", CONNECTIONS)
        doc, _ = self.run_one(spec, 1, self.cfg.closed_duration)
        return (doc or {}).get("totals", {}).get("throughput_rps")

    def measure(self, rate, rep):
        spec = sc.capacity_spec(self.scenario, f"rate{rate}", CONNECTIONS, rate)
        seconds = step_seconds(self.cfg, rate)
        doc, rel = self.run_one(spec, rep, f"{seconds:.3g}s", ("--interval", self.cfg.interval))
        if doc is None:
            return None
        step = step_from_result(rate, doc, CONNECTIONS, rel)
        log(f"   {self.model:<16} {self.scenario:<18} {rate:>9,} req/s offered r{rep}: "
            f"{step.achieved_rps:>9,.0f} achieved  p50 {step.p50_us / 1000:7.2f} ms  p99 {step.p99_us / 1000:7.2f} ms"
            + ("  loadgen-bound" if step.loadgen_bound else "") + ("  conn-bound" if step.connection_bound else "")
            + (f"  errors {step.errors}" if step.errors else "")
            + (f"  lost {step.loss_ratio:.3%}" if step.loss_ratio else ""))
        return step

    def run(self):
        started = time.monotonic()
        closed = self.closed_probe()
        steps = run_sweep(self.cfg, closed, self.slo_ms * 1000, self.measure) if self.status == "ok" else []
        record = {"model": self.model, "scenario": self.scenario, "connections": CONNECTIONS,
                  "slo_p99_ms": self.slo_ms, "closed_loop_max_rps": closed, "status": self.status,
                  "reason": self.failure, **summarize(steps, self.slo_ms),
                  "trials": self.trials, "sweep_s": round(time.monotonic() - started, 1),
                  "settings": {k: getattr(self.cfg, k) for k in (
                      "warmup", "duration", "min_samples", "max_duration", "interval", "repeats", "resolution",
                      "max_steps", "start_fraction", "factor", "past")}}
        if steps and self.status != "ok":
            record["status"] = "partial"
        if self.cfg.resolution > REPEATABLE_RESOLUTION:
            record["indicative"] = (f"steps of {self.cfg.resolution:g}x: saturation and capacity repeat only "
                                    f"within one such step")
            for key in ("saturation_text", "capacity_text"):
                record[key] += " (indicative: coarse steps)"
        return record


# ------------------------------------------------------------------ the run's sweeps


def selection(profile, scenarios_arg, models_arg, models, slo_p99_ms):
    """The CapacitySelection the run sweeps: the named ones, else the profile's plan."""
    plan = profile.capacity
    if scenarios_arg:
        wanted = [s for s in scenarios_arg if s in sc.CAPACITY_SCENARIOS]
    else:
        wanted = list(plan.scenarios) if plan else []
    chosen = list(models) if models_arg or not (plan and plan.models) else [m for m in models if m in plan.models]
    return CapacitySelection(tuple(chosen), tuple(wanted), slo_p99_ms)


def capacity_path(run_dir):
    return os.path.join(run_dir.path, "capacity.json")


def run_selected(sup, run_dir, settings: Settings, sides, net):
    """Runs the run's capacity sweeps (settings.capacity) after the matrix, skipping those that
    capacity.json already holds (--resume); returns the number of failed sweeps."""
    chosen = settings.capacity
    pairs = [(m, s) for s in chosen.scenarios for m in chosen.models]
    if not pairs:
        return 0
    if "A" in sides:
        log("== capacity sweeps skipped: an A/B run compares points, not curves")
        return 0
    profile = sc.PROFILES[settings.profile]
    cfg = sweep_settings(profile.capacity or sc.CapacityPlan())
    path = capacity_path(run_dir)
    doc = read_json(path) or {"schema": SCHEMA, "records": []}
    done = {(r["model"], r["scenario"]) for r in doc["records"]}
    log(f"== capacity sweeps: {len(pairs)} (model x scenario), {CONNECTIONS} connections, steps of "
        f"{cfg.duration} (+{cfg.warmup} warm-up), up to {cfg.max_steps} steps each")
    failed = 0
    for model, scenario in pairs:
        if (model, scenario) in done:
            continue
        record = sweep_one(sup, run_dir, sides[None], model, scenario, cfg, chosen.slo_p99_ms, net, settings.hosts)
        failed += record["status"] in ("failed", "partial")
        doc["records"].append(record)
        write_json(path, doc)
    return failed


def sweep_one(sup, run_dir, binaries, model, scenario, cfg, slo_override, net, hosts=None):
    slo = slo_override or sc.CAPACITY_SCENARIOS[scenario].slo_p99_ms
    refusal = sc.not_applicable(model, sc.capacity_spec(scenario, "sweep", CONNECTIONS), None,
                                binaries.server_file(model), net.kind)
    if refusal:
        return {"model": model, "scenario": scenario, "connections": CONNECTIONS, "slo_p99_ms": slo,
                "status": "not-applicable", "reason": refusal, "steps": [],
                "saturation_rps": None, "capacity_rps": None, "bound": None, "closed_loop_max_rps": None}
    record = Sweep(sup, run_dir, binaries, model, scenario, scenario_settings(cfg, scenario), slo, net, hosts).run()
    log(f"== capacity {model} {scenario}: saturation {record['saturation_text']}; capacity at p99 <= {slo:g} ms: "
        f"{record['capacity_text']} ({len(record['steps'])} rates, {record['trials']} trials, {record['sweep_s']} s)")
    return record
