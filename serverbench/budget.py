"""The time a profile takes, planned from the scenario definitions, and the quick profile's budget.

A timed trial costs its window (warm-up and duration) and the start and stop of its server and
loadgen; a counting trial its shorter window and perf's start and switches; an idle-connections
trial also the holder's connects and the server's accepts (a fork or a thread per connection for
some models). A capacity sweep is planned at its bound: the closed-loop probe and max_steps steps
at their longest. The costs below are measured: `python3 -m serverbench.budget RUN_DIR` prints,
per scenario, the plan beside what a run took (each point's wall_s, each sweep's sweep_s), and
docs/running.md#time-budget has the table and the run it comes from.
"""
import argparse
import collections
import os
import sys

from . import scenarios as sc
from . import server_file
from .jsonfile import read_json
from .matrix import plan_entries
from .rundir import RunDir
from .trial import seconds_of

TRIAL_START_STOP_S = 0.11        # a timed trial beyond its window: processes started, ready, stopped
COUNT_START_STOP_S = 0.27        # a counting trial beyond its window: perf and the cgroups too
IDLE_HOLD_S_PER_1000 = 0.55      # the holder's 1000 connects and their accepts, averaged over the models
RUN_FIXED_S = 14.0               # the two drift points, microbenchmarks, table, charts, report
SOAK_FIXED_S = 5.0               # a soak beyond its loads: start, stop, the drains (3 s measured at 5 min)

QUICK_LIMIT_S = 240              # the quick profile, all twelve models, on a 2-CPU machine (CI)
# What the scenarios planned to join the quick profile may take of it.
ALLOWANCES_S = {"production servers": 20}
# What each of the quick profile's scenarios may take: the plan must fit (tests/scripts/test_budget.py).
QUICK_BUDGETS_S = {
    "http-keepalive": 32, "http-close": 15, "echo": 30, "cpu-bound": 15, "io-wait": 15, "idle-conns": 27,
    "open-loop": 15, "capacity-io-wait": 26, "udp-echo": 20,
}


def trial_seconds(entry, profile):
    """The planned wall time of one trial of the matrix."""
    if entry.count:
        seconds = seconds_of(profile.count_warmup) + seconds_of(profile.count_duration) + COUNT_START_STOP_S
    else:
        seconds = seconds_of(profile.warmup) + seconds_of(profile.duration) + TRIAL_START_STOP_S
    return seconds + IDLE_HOLD_S_PER_1000 * entry.spec.idle / 1000


def sweep_seconds(plan):
    """The bound of one capacity sweep: its probe, then max_steps steps at their longest."""
    step = seconds_of(plan.warmup) + max(seconds_of(plan.duration), seconds_of(plan.max_duration))
    probe = seconds_of(plan.warmup) + seconds_of(plan.closed_duration)
    return probe + plan.max_steps * step + (plan.max_steps + 1) * TRIAL_START_STOP_S


def soak_seconds(plan, minutes):
    """One model's soak: the settling load, the soak, the reload, and the rest."""
    soak = minutes * 60
    return plan.settle_s + soak + plan.reload_seconds(soak) + SOAK_FIXED_S


def refusal_of(profile):
    """refusal(model, spec) of a run of the models and the bundled server files (read without
    checking that their programs are installed)."""
    bundled = {name: server_file.load(path, installed=False) for name, path in server_file.bundled().items()}
    return lambda model, spec: sc.not_applicable(model, spec, profile, bundled.get(model))


def planned(profile, models=tuple(sc.MODEL_ORDER), scenarios=None, soak_minutes=sc.SOAK_PLAN.minutes):
    """{scenario: seconds} of a run of these models (default: all twelve; bundled server files
    too) and scenarios (default: the profile's), its capacity sweeps at their bound."""
    scenarios = scenarios or sc.default_scenarios(profile, "loopback")
    matrix = [s for s in scenarios if s not in sc.OWN_RUNNERS]
    out = collections.Counter()
    refusal = refusal_of(profile)
    for entry in plan_entries(models, matrix, profile, profile.repeat, refusal=refusal):
        if refusal(entry.model, entry.spec) is None:
            out[entry.spec.scenario] += trial_seconds(entry, profile)
    plan = profile.capacity
    for scenario in (s for s in scenarios if s in sc.CAPACITY_SCENARIOS and plan and s in plan.scenarios):
        spec = sc.capacity_spec(scenario, "sweep", 50)
        swept = [m for m in models if refusal(m, spec) is None and (not plan.models or m in plan.models)]
        out[scenario] += len(swept) * sweep_seconds(plan)
    if "soak" in scenarios:
        soaked = [m for m in models if m != "blocking"]
        out["soak"] = len(soaked) * soak_seconds(sc.SOAK_PLAN, soak_minutes)
    return dict(out)


def measured(run_path):
    """{scenario: seconds} a run folder took: its points' wall_s and its sweeps' sweep_s."""
    out = collections.Counter()
    for point in RunDir(run_path).points():
        out[point["scenario"]] += point.get("wall_s") or 0.0
    for record in (read_json(os.path.join(run_path, "capacity.json")) or {}).get("records", []):
        out[record["scenario"]] += record.get("sweep_s") or 0.0
    for record in (read_json(os.path.join(run_path, "soak.json")) or {}).get("records", []):
        out["soak"] += record.get("wall_s") or 0.0
    return dict(out)


def overheads(run_path, windows):
    """What a run's trials took beyond their windows ({counting: seconds}), on average, as the
    constants above name them: (timed trial, counting trial, idle holder per 1000 connections)."""
    beyond = {False: [], True: []}
    idle = []
    for point in RunDir(run_path).points():
        if not point.get("wall_s"):
            continue
        count = point.get("kind") == "count"
        (idle if point.get("idle_connections") else beyond[count]).append((point, point["wall_s"] - windows[count]))
    mean = {count: sum(s for _, s in pairs) / max(len(pairs), 1) for count, pairs in beyond.items()}
    held = [(s - mean[p.get("kind") == "count"]) * 1000 / p["idle_connections"] for p, s in idle]
    return mean[False], mean[True], sum(held) / max(len(held), 1)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m serverbench.budget", description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", help="a finished run folder of the quick profile")
    args = ap.parse_args(argv)
    manifest = RunDir(args.run_dir).read_manifest()
    profile = sc.PROFILES[manifest["profile"]]
    plan = planned(profile, tuple(manifest["models"]), tuple(manifest["scenarios"]) +
                   tuple((manifest.get("capacity") or {}).get("scenarios") or ()))
    took = measured(args.run_dir)
    print("| scenario | planned s | measured s | budget s |\n|---|---:|---:|---:|")
    for scenario in plan:
        budget = QUICK_BUDGETS_S.get(scenario, "–")
        print(f"| `{scenario}` | {plan[scenario]:.0f} | {took.get(scenario, 0):.0f} | {budget} |")
    print(f"| total | {sum(plan.values()):.0f} | {sum(took.values()):.0f} | {sum(QUICK_BUDGETS_S.values())} |")
    references = [m for m in manifest["models"] if m not in sc.MODEL_ORDER]
    if references:
        print(f"\nOf these, the production servers ({', '.join(references)}): planned "
              f"{sum(planned(profile, tuple(references), tuple(manifest['scenarios'])).values()):.0f} s, measured "
              f"{sum(p.get('wall_s') or 0 for p in RunDir(args.run_dir).points() if p['model'] in references):.0f} s "
              f"(allowance {ALLOWANCES_S['production servers']} s).")
    windows = {False: seconds_of(manifest["warmup"]) + seconds_of(manifest["duration"]),
               True: seconds_of(profile.count_warmup) + seconds_of(profile.count_duration)}
    timed, counting, held = overheads(args.run_dir, windows)
    print(f"\nBeyond their windows, on average: a timed trial {timed:.2f} s (TRIAL_START_STOP_S "
          f"{TRIAL_START_STOP_S}), a counting trial {counting:.2f} s (COUNT_START_STOP_S {COUNT_START_STOP_S}), "
          f"the idle holder {held:.2f} s per 1000 connections (IDLE_HOLD_S_PER_1000 {IDLE_HOLD_S_PER_1000}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
