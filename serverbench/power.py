"""What a comparison can detect, and how often it calls a change that is not there.

The verdict rule is stats.called: Welch's t-test on log values, Holm over the family, the
minimum effect and Welch's estimate on the side of the ratio of medians. This module asks
what that rule can see:

* `detectable_effect(se, df, ...)`: the smallest change one row calls with the wanted power,
  from its own standard error and degrees of freedom (each side's own spread and trial count),
  at Holm's first bar alpha / rows: the bar a lone changed row must clear.
* `resolution_check(n, rows)`: before a run, whether the rule can call a large change
  (1.5x) at a typical trial CV with n trials per side in a family of `rows` gated rows, and if
  not, how many trials per side would; `largest_family` the same question turned around.
* `min_detectable_effect(samples, n, ...)`: the same smallest effect found by resampling
  recorded A/A trials instead of assuming log-normal trials.
* `family_false_call_rate(pools, n, rows, ...)`: the chance that an A/A family of `rows` rows
  calls any of them, by resampling recorded A/A trials: replayed in the run's ABBA blocks, or
  drawn as if the trials were exchangeable.

Everything random is seeded, so the same input gives the same output.
"""
import math
from dataclasses import dataclass

import numpy as np
from scipy import integrate, optimize
from scipy import stats as sps

from serverbench import stats

POWER = 0.8
# The pre-run check's reference: can the rule call a 1.5x change in a row whose trials vary by 5%
# (CPU per request at the keep-alive and cpu-bound points of results/baseline), and what does it
# detect at 10% (the noisier scenarios and recordings of docs/statistics.md)?
REFERENCE_CV = 0.05
NOISY_CV = 0.10
LARGE_EFFECT = 0.5
MAX_TRIALS = 200


# Beyond this t no effect of interest is within reach, and SciPy's noncentral t (Boost) fails.
MAX_T = 1000.0


def _power_at(noncentrality, critical, df):
    """Power of the two-sided t-test at this noncentrality (noncentral t)."""
    with np.errstate(all="ignore"):
        return sps.nct.sf(critical, df, noncentrality) + sps.nct.cdf(-critical, df, noncentrality)


def detectable_effect(se, df, *, alpha=stats.ALPHA, power=POWER, min_effect=0.0):
    """Smallest relative change exp(d) - 1 that Welch's two-sided test at level alpha calls with
    `power`, for a standard error se of the difference of mean logs and df degrees of freedom
    (noncentral t); never below min_effect, which the rule also asks. None without a test
    (se or df missing, df not positive) or when it would take a t beyond MAX_T; min_effect
    when both sides are constant (se 0)."""
    if se is None or df is None or not (math.isfinite(se) and df > 0):
        return None
    if se == 0:
        return min_effect
    critical = float(sps.t.isf(alpha / 2, df))
    if not critical < MAX_T:
        return None
    low = critical if _power_at(critical, critical, df) < power else 0.0
    high = critical + 4.0
    while _power_at(high, critical, df) < power:
        low, high = high, critical + 2 * (high - critical)
        if high > 2 * MAX_T:
            return None
    noncentrality = optimize.brentq(lambda x: _power_at(x, critical, df) - power, low, high, xtol=1e-6)
    return max(min_effect, math.expm1(noncentrality * se))


def expected_welch_df(n):
    """The mean of Welch-Satterthwaite's degrees of freedom for n trials per side of equal
    variance: (n - 1)(1 + R)^2 / (1 + R^2), R the ratio of the two sample variances, F(n-1, n-1)
    distributed. Below the 2n - 2 of a known equal variance; with 2n - 2 the power is overstated
    (74% where 80% was asked, at 6 trials per side and 30 rows)."""
    k = n - 1
    mean, _ = integrate.quad(lambda r: k * (1 + r) ** 2 / (1 + r * r) * sps.f.pdf(r, k, k), 0, np.inf)
    return mean


def effect_at_cv(n, rows, cv, *, alpha=stats.ALPHA, power=POWER):
    """detectable_effect for log-normal trials of coefficient of variation cv, n per side, in a
    family of `rows` rows (Holm's first bar alpha / rows), at Welch's expected degrees of
    freedom. None below two trials per side."""
    if n < 2:
        return None
    sd = math.sqrt(math.log1p(cv * cv))
    return detectable_effect(sd * math.sqrt(2 / n), expected_welch_df(n), alpha=alpha / max(1, rows), power=power)


def _reaches(n, rows, cv, effect, alpha, power):
    found = effect_at_cv(n, rows, cv, alpha=alpha, power=power)
    return found is not None and found <= effect


def largest_family(n, *, effect=LARGE_EFFECT, cv=REFERENCE_CV, alpha=stats.ALPHA, power=POWER, limit=10**9):
    """The largest family (gated rows) in which n trials per side call `effect` with `power` at
    trial CV cv; 0 when not even one row does, `limit` when it is larger still."""
    if not _reaches(n, 1, cv, effect, alpha, power):
        return 0
    low, high = 1, limit
    if _reaches(n, high, cv, effect, alpha, power):
        return limit
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if _reaches(n, mid, cv, effect, alpha, power) else (low, mid)
    return low


@dataclass(frozen=True)
class Resolution:
    """Whether the rule can call `effect` at trial CV `cv` with n trials per side among `rows`
    gated rows (can_call), what it calls at that CV and at NOISY_CV (detectable, detectable_noisy;
    None below two trials), and the fewest trials per side that would call `effect`."""
    n: int
    rows: int
    alpha: float
    power: float
    cv: float
    effect: float
    detectable: float
    detectable_noisy: float
    trials_needed: int

    @property
    def can_call(self):
        return self.detectable is not None and self.detectable <= self.effect

    def text(self):
        head = (f"{self.n} trials per side, at most {self.rows} gated rows (Holm's first bar "
                f"{self.alpha / max(1, self.rows):.2g})")
        big = f"a {1 + self.effect:g}x change"
        if not self.can_call:
            return (f"{head}: blind: the verdict rule cannot call {big} with {self.power:.0%} power even at a "
                    f"trial CV of {self.cv:.0%}; {self.trials_needed} trials per side would (--trials "
                    f"{self.trials_needed})")
        return (f"{head}: the verdict rule calls, with {self.power:.0%} power, {self.detectable:.0%} or more at a "
                f"trial CV of {self.cv:.0%} and {self.detectable_noisy:.0%} at {NOISY_CV:.0%}: {big} is within reach")


def resolution_check(n_per_side, gated_rows, alpha=stats.ALPHA, *, cv=REFERENCE_CV, effect=LARGE_EFFECT,
                     power=POWER):
    """Whether the verdict rule can call `effect` at all for a run's trials and gated rows (a
    Resolution; its text() is the driver's line before an A/B run)."""
    needed = next((n for n in range(max(2, n_per_side), MAX_TRIALS + 1)
                   if _reaches(n, gated_rows, cv, effect, alpha, power)), None)
    return Resolution(n_per_side, gated_rows, alpha, power, cv, effect,
                      effect_at_cv(n_per_side, gated_rows, cv, alpha=alpha, power=power),
                      effect_at_cv(n_per_side, gated_rows, NOISY_CV, alpha=alpha, power=power), needed)


# ------------------------------------------------------------------------- resampled trials


def exchangeable_draws(pool, n, count, rng):
    """`count` pairs of samples (A, B) of n trials from one pool, as if its trials were
    exchangeable: without replacement when it holds 2n trials (A and B never share a trial;
    `disjoint`), with replacement otherwise."""
    size = len(pool)
    if size >= 2 * n:
        picks = rng.random((count, size)).argsort(axis=1)[:, :2 * n]
        return pool[picks[:, :n]], pool[picks[:, n:]], "disjoint"
    return (pool[rng.integers(0, size, (count, n))], pool[rng.integers(0, size, (count, n))],
            "with replacement")


def abba_draws(sequence, n, count, rng):
    """`count` A/A runs of n trials per side replayed on a recorded sequence (trials in the
    order they ran) as the driver orders a point's trials (ab.abba_order): n // 2 blocks of four
    consecutive trials, placed at random without overlap, each read ABBA or BAAB at random, and
    for odd n one pair read AB or BA. Drift the sequence holds lands on both sides of a block,
    as it does in a run. The sequence needs 2n trials."""
    blocks = [4] * (n // 2) + [2] * (n % 2)
    if len(sequence) < 2 * n:
        raise ValueError(f"an ABBA replay of {n} trials per side needs {2 * n} recorded trials")
    slots = rng.random((count, len(sequence) - 2 * n + len(blocks))).argsort(axis=1)[:, :len(blocks)]
    starts = np.sort(slots, axis=1) + np.concatenate([[0], np.cumsum(np.array(blocks[:-1]) - 1)])
    flip = rng.random((count, len(blocks))) < 0.5
    a_parts, b_parts = [], []
    for j, length in enumerate(blocks):
        first, second = ((0, 3), (1, 2)) if length == 4 else ((0,), (1,))
        at_a, at_b = starts[:, j:j + 1] + np.array(first), starts[:, j:j + 1] + np.array(second)
        a_parts.append(np.where(flip[:, j:j + 1], at_b, at_a))
        b_parts.append(np.where(flip[:, j:j + 1], at_a, at_b))
    return sequence[np.concatenate(a_parts, axis=1)], sequence[np.concatenate(b_parts, axis=1)]


def _rule_terms(a_rows, b_rows):
    """Per row: Welch's p on the log values, the ratio of medians and Welch's estimate of B/A."""
    with np.errstate(divide="ignore", invalid="ignore"):
        la, lb = np.log(a_rows), np.log(b_rows)
        p = stats.welch_p(la, lb)
        ratio = np.median(b_rows, axis=1) / np.median(a_rows, axis=1)
        return np.where(np.isfinite(p), p, 1.0), ratio, np.exp(lb.mean(axis=1) - la.mean(axis=1))


@dataclass
class Detectable:
    """Smallest multiplicative effect (0.10 = B is 10% above A) detected with at least
    `power` at n trials per side, or None if not even max_effect is. `resampling` says how
    the trials were drawn: `disjoint` (without replacement, A and B never share a trial)
    when the pool holds at least 2n trials, `with replacement` otherwise, `normal` when
    the spread was given as a coefficient of variation."""
    effect: float
    n: int
    power: float
    replications: int
    resampling: str


def _call_rate(a_draws, b_draws, effect, bar, min_effect):
    """Share of the draws whose B, multiplied by 1 + effect, the verdict rule calls at `bar`."""
    p, ratio, estimate = _rule_terms(a_draws, b_draws * (1 + effect))
    return float(np.mean(stats.called(ratio, estimate, p, min_effect=min_effect, alpha=bar)))


def min_detectable_effect(samples, n, *, power=POWER, alpha=stats.ALPHA, rows=1, min_effect=0.0,
                          replications=200, seed=stats.DEFAULT_SEED, max_effect=1.0, resolution=0.0025):
    """Smallest effect e such that B = A * (1 + e) is called a change in at least `power` of
    `replications` resampled comparisons of n trials per side.

    `samples`: the trials of one point from an A/A run (a list, or a pair of lists that are
    pooled, since under A/A both sides measure the same thing), or a float: a coefficient of
    variation, for normal noise around 1. Each replication draws A and B from that pool,
    multiplies B by 1 + e and applies the verdict rule at Holm's bar for the smallest p of
    `rows` rows (alpha / rows) with the minimum effect. The search is a bisection on e down to
    `resolution`, on the same draws for every e. Deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    if isinstance(samples, (int, float)):
        a_draws = 1 + samples * rng.standard_normal((replications, n))
        b_draws = 1 + samples * rng.standard_normal((replications, n))
        resampling = "normal"
    else:
        if stats.is_pair_of_samples(samples):
            samples = list(samples[0]) + list(samples[1])
        pool = stats.sample_array(samples)
        if len(pool) < 2:
            raise ValueError("need at least two recorded trials to resample")
        a_draws, b_draws, resampling = exchangeable_draws(pool, n, replications, rng)
    bar = alpha / rows
    if _call_rate(a_draws, b_draws, max_effect, bar, min_effect) < power:
        return Detectable(None, n, power, replications, resampling)
    low, high = 0.0, max_effect
    while high - low > resolution:
        mid = (low + high) / 2
        low, high = (low, mid) if _call_rate(a_draws, b_draws, mid, bar, min_effect) >= power else (mid, high)
    return Detectable(high, n, power, replications, resampling)


@dataclass(frozen=True)
class FalseCalls:
    """Of `replications` A/A families of `rows` gated rows and n trials per side, the share
    that called at least one row (rate), with its 95% Clopper-Pearson interval."""
    rate: float
    low: float
    high: float
    calls: int
    replications: int
    n: int
    rows: int
    resampling: str


def family_false_call_rate(pools, n, rows, *, alpha=stats.ALPHA, replications=400, seed=stats.DEFAULT_SEED,
                           resampling="abba"):
    """The chance that an A/A run calls any of its `rows` gated rows, by resampling recorded
    A/A trials. pools: [(values in the order they were recorded, min_effect)], one per recorded
    point and gated metric; row j of a family draws its A and B from pools[j % len(pools)], by
    `abba_draws` (resampling "abba": the run's design replayed) or `exchangeable_draws`
    ("exchangeable": as if the trials had no order). Each family gets the verdict rule whole:
    Welch's p-values, Holm over the `rows` rows, the minimum effects, the direction check."""
    rng = np.random.default_rng(seed)
    p, ratio, estimate, min_effects = (np.ones((replications, rows)) for _ in range(4))
    for j, (values, min_effect) in enumerate(pools):
        columns = np.arange(j, rows, len(pools))
        values, count = np.asarray(values, dtype=float), replications * len(columns)
        if resampling == "abba":
            a, b = abba_draws(values, n, count, rng)
        else:
            a, b, _ = exchangeable_draws(values, n, count, rng)
        for out, terms in zip((p, ratio, estimate), _rule_terms(a, b)):
            out[:, columns] = terms.reshape(replications, len(columns))
        min_effects[:, columns] = min_effect
    calls = sum(bool(np.any(stats.called(ratio[r], estimate[r], stats.holm(list(p[r])),
                                         min_effect=min_effects[r], alpha=alpha)))
                for r in range(replications))
    interval = sps.binomtest(calls, replications).proportion_ci()
    return FalseCalls(calls / replications, interval.low, interval.high, calls, replications, n, rows, resampling)


# ------------------------------------------------------------------------- what a run's rows can see
# On comparison.json's rows (dicts), for comparison.md and the report alike.

# The change every gated row should be able to see; those that cannot are named.
VISIBLE_EFFECT = 0.10


def effect_text(x):
    """A detectable effect: "12.3%", "> 100%", or "nothing (no test)" when the row has none."""
    if x is None:
        return "nothing (no test)"
    return "> 100%" if x > 1 else f"{x:.1%}"


def undetectable_rows(rows, effect=VISIBLE_EFFECT):
    """The gated rows whose smallest detectable change is above `effect` (or unknown)."""
    return [r for r in rows if r.get("gated") and (r.get("min_detectable_effect") is None
                                                  or r["min_detectable_effect"] > effect)]


def undetectable_line(row):
    """'model scenario point metric: detects 23.4% (trial CV A 12.0%, B 14.1%, 8/8 trials)'."""
    cvs = ", ".join(f"{side} {row[key]:.1%}" for side, key in (("A", "cv_a"), ("B", "cv_b"))
                    if row.get(key) is not None)
    return (f"{row['model']} {row['scenario']} {row['point']} {row['metric']}: detects "
            f"{effect_text(row.get('min_detectable_effect'))} (trial CV {cvs or 'unknown'}, "
            f"{row.get('n_a')}/{row.get('n_b')} trials)")


def bound_text(row):
    """'3/8 · 8/8 mixed': a row's server-bound trials, A · B; None when its records do not say."""
    if row.get("server_bound_a") is None:
        return None
    return (f"{row['server_bound_a']}/{row.get('n_a')} · {row['server_bound_b']}/{row.get('n_b')}"
            + (" mixed" if row.get("bimodal") else ""))


def bimodal_points(rows):
    """[(model, scenario, point), [its rows]] of the points some of whose trials were
    server-bound and others not (a row's `bimodal`), in the rows' order."""
    points = {}
    for r in rows:
        if r.get("bimodal"):
            points.setdefault((r["model"], r["scenario"], r["point"]), []).append(r)
    return list(points.items())


def bimodal_line(key, point_rows):
    """What the gate did at a bimodal point, per row: gated or not, and what it detects."""
    first = point_rows[0]
    bound = (f"server-bound in {first['server_bound_a']} of {first['n_a']} A trials and "
             f"{first['server_bound_b']} of {first['n_b']} B trials")
    return f"{' '.join(key)}: {bound}; " + "; ".join(f"{r['metric']} {_gate_fate(r)}" for r in point_rows)


def _gate_fate(row):
    gated = f"gated, detects {effect_text(row.get('min_detectable_effect'))}" if row["gated"] else "not gated"
    return f"{gated} ({row['verdict']})"
