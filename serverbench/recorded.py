"""Recorded trials and what they can tell: the A/A recordings of tests/scripts/fixtures/aa-trials
and a run folder's repeats loaded as trial records, the noise floor of an A/A run, the smallest
effect stored A/A trials let the verdict rule detect, the spread of a run's repeats, and the
command line over them (docs/statistics.md):

    python3 -m serverbench.recorded detect DIR      the smallest detectable effect of stored A/A trials
    python3 -m serverbench.recorded compare DIR     the comparison table of stored A/B trials
    python3 -m serverbench.recorded spread RUN_DIR  the spread of a run folder's repeats per scenario
"""
import argparse
import json
import math
import os
import sys

from serverbench import comparison, stats
from serverbench.power import POWER, min_detectable_effect

# The detectable-effect search stops here: a point that cannot see a doubling sees nothing.
MAX_EFFECT = 1.0

def _gated_family_size(trials, min_effects):
    size = 0
    for group in comparison.points_of(trials).values():
        for metric in comparison.metric_names(group):
            has_both = comparison.side_values(group, "A", metric) and comparison.side_values(group, "B", metric)
            size += bool(has_both) and comparison.is_gated(comparison.metric_policy(metric, min_effects), group)
    return size


def _noise_summary(points):
    """Per scenario x metric: median and max CV and detectable effect over its points (a
    point that detects nothing up to the search's limit counts as infinitely large)."""
    summary = {}
    for p in points:
        summary.setdefault((p["scenario"], p["metric"]), []).append(p)
    out = []
    for (scenario, metric), ps in summary.items():
        cvs = [p["cv"] for p in ps if p["cv"] is not None]
        mdes = [math.inf if p["min_detectable_effect"] is None else p["min_detectable_effect"] for p in ps]
        finite = lambda x: None if x is None or math.isinf(x) else x  # noqa: E731
        out.append({"scenario": scenario, "metric": metric, "points": len(ps),
                    "median_cv": stats.median(cvs), "max_cv": max(cvs) if cvs else None,
                    "median_min_detectable_effect": finite(stats.median(mdes)),
                    "max_min_detectable_effect": finite(max(mdes))})
    return out


def noise_floor(trials, *, method=comparison.Method(), min_effects=None, rows=None, power=POWER,
                replications=100):
    """The noise floor of an A/A run (both sides the same code), from its trial records.

    Per model x scenario x point x metric: n (trials per side, the smaller side), the
    coefficient of variation of all the point's trials, and the smallest effect the verdict
    rule calls with `power` at that n (`power.min_detectable_effect` on the pooled trials,
    with the metric's minimum effect and Holm's bar for a family of `rows` rows: by default
    the number of gated rows of this run). Plus a summary per scenario x metric."""
    family = rows if rows is not None else max(1, _gated_family_size(trials, min_effects))
    points = []
    for key, group in comparison.points_of(trials).items():
        for metric in comparison.metric_names(group):
            a, b = comparison.side_values(group, "A", metric), comparison.side_values(group, "B", metric)
            if len(a) < 2 or len(b) < 2:
                continue
            n = min(len(a), len(b))
            policy = comparison.metric_policy(metric, min_effects)
            mde = min_detectable_effect(
                a + b, n, power=power, alpha=method.alpha, rows=family, min_effect=policy.min_effect,
                replications=replications, seed=comparison.row_seed(method.seed, key + (metric,)),
                max_effect=MAX_EFFECT)
            points.append(dict(zip(("model", "scenario", "point"), key), metric=metric, n=n,
                               cv=stats.spread(a + b).cv, min_detectable_effect=mde.effect))
    return {"power": power, "family_rows": family, "replications": replications,
            "max_effect": MAX_EFFECT, "points": points, "summary": _noise_summary(points)}


def load_trial_dir(path):
    """Trial records from every *.json under path: each a serverbench.result/1 document (or
    a subset of it, as in tests/scripts/fixtures/aa-trials/) with an "ab" object
    {"side": "A"|"B", "point": label, "order": its place in the recorded sequence}."""
    trials = []
    for root, _, files in sorted(os.walk(path)):
        for name in sorted(files):
            if name.endswith(".json"):
                with open(os.path.join(root, name)) as f:
                    result = json.load(f)
                trial = comparison.trial_record(result, result["ab"]["side"], result["ab"]["point"])
                trials.append(dict(trial, order=result["ab"].get("order")))
    return trials


def detectable_table(trials, ns, *, metrics=("throughput_rps", "cpu_us_per_request"), rows=1,
                     min_effect=0.0, replications=200, seed=stats.DEFAULT_SEED):
    """Lines "model/scenario/point metric n cv N=4: mde ..." for the A/A trials."""
    lines = []
    for key, group in comparison.points_of(trials).items():
        for metric in metrics:
            pool = comparison.side_values(group, "A", metric) + comparison.side_values(group, "B", metric)
            if len(pool) < 2:
                continue
            effects = [min_detectable_effect(pool, n, rows=rows, min_effect=min_effect,
                                             replications=replications, seed=seed).effect
                       for n in ns]
            cells = ["  >100%" if e is None else f"{e:7.1%}" for e in effects]
            lines.append(f"{'/'.join(key):32} {metric:20} n={len(pool):2} cv={stats.spread(pool).cv:6.1%} "
                         + " ".join(f"N={n}:{c}" for n, c in zip(ns, cells)))
    return lines


def load_repeat_dir(run_dir):
    """Trial records (all side "A") of a run folder's points/<model>/<scenario>/<label>-rN.json."""
    trials = []
    for root, _, files in sorted(os.walk(os.path.join(run_dir, "points"))):
        for name in sorted(files):
            label, _, rep = name[: -len(".json")].rpartition("-r")
            if name.endswith(".json") and rep.isdigit():
                with open(os.path.join(root, name)) as f:
                    trials.append(comparison.trial_record(json.load(f), "A", label))
    return trials


def repeat_spread_table(trials, metrics=("throughput_rps", "cpu_us_per_request")):
    """Lines per scenario: points with repeats, the median CV of each metric over them, and
    at how many points each metric was the steadier one."""
    per_scenario = {}
    for (_, scenario, _), group in comparison.points_of(trials).items():
        samples = [comparison.side_values(group, "A", m) for m in metrics]
        cvs = [stats.spread(values).cv if len(values) > 1 else None for values in samples]
        if None not in cvs:
            per_scenario.setdefault(scenario, []).append(cvs)
    lines = []
    for scenario, cvs in per_scenario.items():
        medians = "  ".join(f"{m} median cv {stats.median([c[i] for c in cvs]):6.1%}" for i, m in enumerate(metrics))
        steadier = sum(c[1] < c[0] for c in cvs)
        lines.append(f"{scenario:15} points {len(cvs):2}  {medians}  {metrics[1]} steadier at {steadier}/{len(cvs)}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    detect = sub.add_parser("detect", help="smallest detectable effect of stored A/A trials")
    detect.add_argument("dir")
    detect.add_argument("--n", type=int, nargs="+", default=[4, 6, 8, 10])
    detect.add_argument("--rows", type=int, default=1, help="Holm family size (default 1)")
    detect.add_argument("--min-effect", type=float, default=0.0)
    detect.add_argument("--replications", type=int, default=200)
    spread_cmd = sub.add_parser("spread", help="spread of the repeats of a run folder, per scenario")
    spread_cmd.add_argument("run_dir")
    compare_cmd = sub.add_parser("compare", help="the comparison table of stored A/B trials")
    compare_cmd.add_argument("dir")
    compare_cmd.add_argument("--out", help="also write comparison.json/.md/.png/.svg here")
    args = parser.parse_args(argv)
    if args.command == "spread":
        for line in repeat_spread_table(load_repeat_dir(args.run_dir)):
            print(line)
        return 0
    trials = load_trial_dir(args.dir)
    if args.command == "compare" and trials:
        rows = comparison.compare_trials(trials)
        print(comparison.comparison_markdown(rows), end="")
        if args.out:
            comparison.write_comparison(args.out, rows)
        return 0
    if not trials:
        print(f"no trials under {args.dir}", file=sys.stderr)
        return 2
    for line in detectable_table(trials, args.n, rows=args.rows, min_effect=args.min_effect,
                                 replications=args.replications):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
