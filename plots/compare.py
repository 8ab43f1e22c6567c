#!/usr/bin/env python3
"""Compare two runs of run_all.sh the way CI does: by ratios to epoll, not absolute numbers.

usage: compare.py BASE_RUN NEW_RUN [--threshold 0.35]

For every point present in both runs it prints base and new req/s, each model's
throughput as a ratio to epoll at the same point *in the same run*, and the change
of that ratio. Ratios cancel the machine, so a baseline from a laptop can judge a
CI runner.

Failing rule (exit 1): a model whose median change over its compared points is a
drop of more than --threshold. The median (not the mean, not any single point)
keeps one noisy short point from failing CI, while a model that really got slower
drops at most of its points. epoll itself is judged the other way round: its change
at a point is the inverse of the median change of the other models there.

Not judged, only printed: open-loop points (their throughput is the target rate),
points with load-generator errors or under 50 req/s in the base run, and points
missing or not ok in either run. Exit 2 on bad input (not a run, nothing in common,
no epoll to compare against). Standard library only.
"""
import argparse
import math
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_results import RunError, load_run  # noqa: E402

REFERENCE = "epoll"
MIN_BASE_RPS = 50.0
UNJUDGED_SCENARIOS = {"open-loop"}


def ratio_to_reference(run, point):
    ref = run.get(REFERENCE, point.scenario, point.label)
    if ref is None or ref.status != "ok" or not ref.rps or point.rps is None:
        return None
    return point.rps / ref.rps


def compare(base, new, threshold, out=sys.stdout):
    """Prints the comparison; returns (exit code, failing models)."""
    keys = sorted(set(base.points) | set(new.points),
                  key=lambda k: (k[1], k[0], base.points.get(k, new.points.get(k)).connections, k[2]))
    rows, notes = [], []
    changes = {}            # model -> [(key, change)]
    for key in keys:
        b, n = base.points.get(key), new.points.get(key)
        model, scenario, label = key
        if b is None or n is None:
            notes.append(f"{model} {scenario} {label}: only in the {'new' if b is None else 'base'} run")
            continue
        if b.status != "ok" or n.status != "ok":
            if b.status != n.status:
                notes.append(f"{model} {scenario} {label}: {b.status} in base, {n.status} in new")
            continue
        rb, rn = ratio_to_reference(base, b), ratio_to_reference(new, n)
        change = None
        judged = (scenario not in UNJUDGED_SCENARIOS and not b.errors and (b.rps or 0) >= MIN_BASE_RPS
                  and rb and rn is not None)
        if rb and rn is not None:
            change = rn / rb - 1.0
        rows.append((model, scenario, label, b.rps, n.rps, rb, rn, change, judged))
        if judged and model != REFERENCE:
            changes.setdefault(model, []).append((key, change))

    # epoll against the rest: at each point, the inverse of the others' median change.
    per_point = {}
    for model, items in changes.items():
        for (m, s, label), change in items:
            per_point.setdefault((s, label), []).append(1.0 + change)
    for (s, label), factors in per_point.items():
        if (REFERENCE, s, label) in base.points and (REFERENCE, s, label) in new.points:
            changes.setdefault(REFERENCE, []).append(((REFERENCE, s, label), 1.0 / statistics.median(factors) - 1.0))

    def fmt(v, spec):
        return format(v, spec) if v is not None else "—"

    header = f"{'model':<16} {'scenario':<15} {'point':<14} {'base req/s':>11} {'new req/s':>11} " \
             f"{'base /epoll':>11} {'new /epoll':>11} {'change':>8}"
    print(f"base: {base.path} ({base.run_id}, {base.manifest.get('profile')}, "
          f"git {base.manifest.get('git_rev')})", file=out)
    print(f"new:  {new.path} ({new.run_id}, {new.manifest.get('profile')}, "
          f"git {new.manifest.get('git_rev')})", file=out)
    print("", file=out)
    print(header, file=out)
    print("-" * len(header), file=out)
    for model, scenario, label, rb_rps, rn_rps, rb, rn, change, judged in rows:
        flag = "" if judged else "  (not judged)"
        if judged and change is not None and change < -threshold:
            flag = "  <-- drop"
        print(f"{model:<16} {scenario:<15} {label:<14} {fmt(rb_rps, '11,.0f')} {fmt(rn_rps, '11,.0f')} "
              f"{fmt(rb, '11.3f')} {fmt(rn, '11.3f')} {fmt(change * 100 if change is not None else None, '+7.1f')}"
              f"{'%' if change is not None else ' '}{flag}", file=out)
    if notes:
        print("\nnot compared:", file=out)
        for note in notes:
            print(f"  {note}", file=out)

    print(f"\nper model (median change of its ratio to {REFERENCE}; fails below -{threshold:.0%}):", file=out)
    failing = []
    for model in sorted(changes):
        med = statistics.median(c for _, c in changes[model])
        bad = med < -threshold or math.isnan(med)
        if bad:
            failing.append(model)
        print(f"  {model:<16} {len(changes[model]):3d} points  median {med * 100:+6.1f}%  "
              f"{'REGRESSION' if bad else 'ok'}", file=out)
    if not changes:
        print("  nothing judged", file=out)
    print("", file=out)
    if failing:
        print(f"FAIL: throughput relative to {REFERENCE} dropped by more than {threshold:.0%} for: "
              f"{', '.join(failing)}", file=out)
        return 1, failing
    print(f"OK: no model's throughput relative to {REFERENCE} dropped by more than {threshold:.0%}", file=out)
    return 0, failing


def main(argv=None):
    ap = argparse.ArgumentParser(description="Compare two serverbench runs by throughput ratio to epoll.")
    ap.add_argument("base_run")
    ap.add_argument("new_run")
    ap.add_argument("--threshold", type=float, default=0.35,
                    help="fail when a model's median ratio to epoll drops by more than this fraction (default 0.35)")
    args = ap.parse_args(argv)
    if not 0 < args.threshold < 1:
        print("compare.py: --threshold must be between 0 and 1", file=sys.stderr)
        return 2
    try:
        base, new = load_run(args.base_run), load_run(args.new_run)
    except RunError as e:
        print(f"compare.py: {e}", file=sys.stderr)
        return 2
    common = [k for k in base.points if k in new.points]
    if not common:
        print("compare.py: the two runs have no point in common", file=sys.stderr)
        return 2
    if not any(k[0] == REFERENCE for k in common):
        print(f"compare.py: no {REFERENCE} points in both runs; ratios need them", file=sys.stderr)
        return 2
    code, _ = compare(base, new, args.threshold)
    return code


if __name__ == "__main__":
    sys.exit(main())
