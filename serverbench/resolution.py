"""Before an A/B run: how many gated rows it can have, and whether its verdict rule can call a
change at its trials per side in a family that large (power.resolution_check). The driver
logs one line; with --gate, a run that could not call a 1.5x change is a usage error.

    python3 -m serverbench.resolution    every profile's trials, gated rows and what they can call,
                                         and the false-call rate of the recorded A/A trials there
"""
import os
import sys

from serverbench import ab, comparison, power, recorded
from serverbench import scenarios as sc
from serverbench.log import log
from serverbench.matrix import plan_entries

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AA_RECORDINGS = [os.path.join(ROOT, "tests", "scripts", "fixtures", "aa-trials", name)
                 for name in ("shared", "contended")]


class BlindGate(ab.BaselineError):
    """--gate on a run whose verdict rule cannot call a large change: a usage error, like a
    baseline that cannot be built (the driver exits 2 on either)."""


def planned_gated_rows(models, scenarios, profile, trials, seed=1):
    """The most gated rows an A/B run of these settings can have: per planned point, every
    metric its timed trials (comparison.TIMED_METRICS) and its counting trials (ab.GATED_COUNTS)
    record that comparison's policy may gate. Throughput counts at every point, as if every
    point were server-bound, since that is known only after the run."""
    metrics = {}
    for entry in plan_entries(models, scenarios, profile, 1, trials, seed):
        metrics.setdefault(entry.key[:3], set()).update(ab.GATED_COUNTS if entry.count else comparison.TIMED_METRICS)
    return sum(comparison.can_be_gated(m) for names in metrics.values() for m in names)


def check(settings, gate):
    """Logs what the run's verdict rule can resolve; with gate, a blind run raises BlindGate."""
    profile = sc.PROFILES[settings.profile]
    rows = planned_gated_rows(settings.models, settings.scenarios, profile, settings.trials, settings.seed)
    found = power.resolution_check(settings.trials, rows)
    log(f"== resolution: {found.text()}")
    if gate and not found.can_call:
        raise BlindGate(f"--gate: {found.text()}")
    return found


def profile_families(models=tuple(sc.MODEL_ORDER)):
    """[(profile name, its ab_trials, its most gated rows)] for these models and each profile's
    default scenarios on this machine and over a link (the larger of the two); a profile with no
    matrix points (soak) has no rows to compare and is left out."""
    out = []
    for name, profile in sc.PROFILES.items():
        rows = max(planned_gated_rows(models, sc.default_scenarios(profile, net), profile, profile.ab_trials)
                   for net in ("loopback", "veth"))
        if rows:
            out.append((name, profile.ab_trials, rows))
    return out


def recorded_pools(trials, min_effects=None):
    """The recorded A/A trials as resampling pools: per point and gated metric, its values in the
    order they ran and the metric's minimum effect (power.family_false_call_rate's pools)."""
    pools = []
    for group in comparison.points_of(trials).values():
        ordered = sorted(group, key=lambda t: t.get("order") or 0)
        for metric in comparison.metric_names(group):
            policy = comparison.metric_policy(metric, min_effects)
            if comparison.is_gated(policy, group):
                pools.append(([t["metrics"][metric] for t in ordered if metric in t["metrics"]], policy.min_effect))
    return pools


def aa_pools():
    """The pools of the committed A/A recordings, each recording on its own (the same point
    recorded under two loads is two pools)."""
    return [pool for path in AA_RECORDINGS for pool in recorded_pools(recorded.load_trial_dir(path))]


def main():
    pools = aa_pools()
    print("profile   N  gated rows  detectable at 5% / 10% CV  false-call rate, ABBA replay / exchangeable")
    for name, n, rows in profile_families():
        found = power.resolution_check(n, rows)
        rates = [power.family_false_call_rate(pools, n, rows, replications=2000, resampling=how)
                 for how in ("abba", "exchangeable")]
        print(f"{name:9} {n:2} {rows:11}  {found.detectable:7.1%} / {found.detectable_noisy:6.1%}        "
              + " / ".join(f"{r.rate:.2%} [{r.low:.2%}, {r.high:.2%}]" for r in rates))
    return 0


if __name__ == "__main__":
    sys.exit(main())
