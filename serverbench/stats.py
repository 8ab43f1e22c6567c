"""Statistics for comparing repeated benchmark trials: one small module, SciPy underneath.

Written to SciPy 1.10's API (Debian 12): `scipy.stats.bootstrap` takes `random_state`;
SciPy 1.10 has no multiple-comparison correction, so Holm's few lines are written here.

* `compare(a, b)`: medians of A (baseline) and B (current), the ratio B/A, a seeded percentile
  bootstrap interval of that ratio, and the two-sided Mann-Whitney U p-value.
* `holm(p_values)`: Holm's step-down adjusted p-values over the rows of a run.
* `verdict(...)`: `slower`, `faster` or `no change`, called only when the interval excludes 1,
  the ratio is at least the minimum effect away from 1 and the adjusted p-value is below alpha.
* `median(values)`: the median of the known values (None when there are none).
* `spread(sample)`: median, a distribution-free interval of the median, IQR and CV.
* `threshold_verdict(...)`: `holds`, `fails` or `inconclusive` for "X is at least k" claims.
* `min_detectable_effect(...)`: the smallest multiplicative effect detected with the wanted
  power at N trials per side, by resampling recorded A/A trials.

Everything random is seeded, so the same input gives the same output.
"""
import math
import statistics
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

DEFAULT_SEED = 12
ALPHA = 0.05
CONFIDENCE = 0.95
MIN_EFFECT = 0.05
N_RESAMPLES = 9999
# Exact Mann-Whitney null distributions are cheap up to this many trials per side; the
# normal approximation takes over beyond it (and whenever there are ties).
EXACT_RANK_TEST_MAX_N = 30
# Floating-point slack for "at least the minimum effect" (1.05 / 1.0 - 1 is not exactly 0.05).
_EFFECT_SLACK = 1e-9

SLOWER, FASTER, NO_CHANGE = "slower", "faster", "no change"
HOLDS, FAILS, INCONCLUSIVE = "holds", "fails", "inconclusive"


def median(values):
    """The median of the values that are not None; None when there are none."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _sample(values):
    arr = np.asarray(list(values), dtype=float)
    if arr.ndim != 1 or not np.all(np.isfinite(arr)):
        raise ValueError("a sample is a flat list of finite numbers")
    return arr


def _ratio_of_medians(x, y, axis=-1):
    """Bootstrap statistic: median(y) / median(x), vectorised over resamples."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.median(y, axis=axis) / np.median(x, axis=axis)


def _is_pair_of_samples(x):
    """(list, list), as opposed to one sample that happens to be a tuple of two numbers."""
    return isinstance(x, tuple) and len(x) == 2 and all(np.ndim(side) == 1 for side in x)


def ratio_interval(a, b, *, confidence=CONFIDENCE, seed=DEFAULT_SEED, n_resamples=N_RESAMPLES):
    """Percentile bootstrap interval of median(b) / median(a), or (None, None).

    Percentile, not BCa: BCa's acceleration comes from a jackknife, which is inconsistent for
    the median, and SciPy returns NaN for BCa on degenerate samples (all values equal).
    With identical values on each side the percentile interval collapses onto the ratio
    itself. It is None when a side has fewer than two trials (nothing to resample) or when
    median(a) is 0 (no ratio)."""
    a, b = _sample(a), _sample(b)
    if len(a) < 2 or len(b) < 2 or np.median(a) == 0:
        return None, None
    if np.all(a == a[0]) and np.all(b == b[0]):
        r = float(b[0] / a[0])
        return r, r
    res = sps.bootstrap((a, b), _ratio_of_medians, vectorized=True, paired=False,
                        n_resamples=n_resamples, confidence_level=confidence,
                        method="percentile", random_state=seed)
    low, high = res.confidence_interval
    if not (math.isfinite(low) and math.isfinite(high)):
        return None, None  # a resample with median(a) == 0: the ratio is unbounded
    return float(low), float(high)


def rank_test_p(a, b):
    """Two-sided Mann-Whitney U p-value (exact without ties up to 30 trials per side,
    else the normal approximation with tie and continuity corrections). All values equal:
    1.0, since nothing separates the samples."""
    a, b = _sample(a), _sample(b)
    if len(a) == 0 or len(b) == 0:
        return None
    both = np.concatenate([a, b])
    if np.all(both == both[0]):
        return 1.0
    exact = len(np.unique(both)) == len(both) and max(len(a), len(b)) <= EXACT_RANK_TEST_MAX_N
    p = sps.mannwhitneyu(a, b, alternative="two-sided", method="exact" if exact else "asymptotic").pvalue
    return float(p) if math.isfinite(p) else 1.0


@dataclass
class Comparison:
    """Two samples compared. ratio is b_median / a_median (None when a_median is 0, unless
    both medians are 0: then 1.0). ci_low/ci_high bound that ratio at `confidence`."""
    a_median: float
    b_median: float
    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    n_a: int
    n_b: int
    min_effect: float
    confidence: float

    def verdict(self, higher_is_better, p_adjusted=None, alpha=ALPHA):
        """The verdict of this comparison alone (p_adjusted defaults to the raw p-value)."""
        return verdict(self.ratio, self.ci_low, self.ci_high,
                       self.p_value if p_adjusted is None else p_adjusted,
                       higher_is_better=higher_is_better, min_effect=self.min_effect, alpha=alpha)


def compare(a, b, *, min_effect=MIN_EFFECT, confidence=CONFIDENCE, seed=DEFAULT_SEED,
            n_resamples=N_RESAMPLES):
    """Compare baseline sample `a` with current sample `b` (lists of floats).

    Degenerate input does not raise: identical values give ratio 1, interval [1, 1] and
    p = 1 (so `no change`); a side with one trial gives no interval (None) and so never a
    called change; a baseline median of 0 gives no ratio (None), and no called change."""
    a, b = _sample(a), _sample(b)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("each side needs at least one trial")
    ma, mb = float(np.median(a)), float(np.median(b))
    if ma == 0:
        ratio = 1.0 if mb == 0 else None
    else:
        ratio = mb / ma
    low, high = ratio_interval(a, b, confidence=confidence, seed=seed, n_resamples=n_resamples)
    return Comparison(a_median=ma, b_median=mb, ratio=ratio, ci_low=low, ci_high=high,
                      p_value=rank_test_p(a, b), n_a=len(a), n_b=len(b),
                      min_effect=min_effect, confidence=confidence)


def verdict(ratio, ci_low, ci_high, p_adjusted, *, higher_is_better, min_effect=MIN_EFFECT,
            alpha=ALPHA):
    """`slower`, `faster` or `no change`.

    A change is called only when all three hold: the interval lies wholly on one side of 1
    (the side of the ratio), |ratio - 1| >= min_effect, and the (corrected) p-value < alpha.
    Direction: a ratio above 1 is `faster` for a higher-is-better metric (throughput) and
    `slower` for a lower-is-better one (CPU per request, latency, counts)."""
    if ratio is None or ci_low is None or ci_high is None or p_adjusted is None:
        return NO_CHANGE
    up = ratio > 1 and ci_low > 1
    down = ratio < 1 and ci_high < 1
    big_enough = abs(ratio - 1) >= min_effect - _EFFECT_SLACK
    if not ((up or down) and big_enough and p_adjusted < alpha):
        return NO_CHANGE
    return FASTER if up == higher_is_better else SLOWER


def holm(p_values):
    """Holm's step-down adjusted p-values, in input order; None entries stay None and are not
    counted in the family. Adjusted p_(i) = max over j <= i of min(1, (m - j + 1) p_(j)),
    p sorted ascending: a row is called when its adjusted p-value is below alpha, which
    keeps the chance of any false call in the family at most alpha."""
    present = [(p, i) for i, p in enumerate(p_values) if p is not None]
    m = len(present)
    adjusted = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


# ------------------------------------------------------------------------- spread


@dataclass
class Spread:
    """Median with a distribution-free interval of the median.

    ci_low/ci_high are order statistics x_(k) and x_(n+1-k), with k the largest index whose
    binomial coverage 1 - 2 P(Bin(n, 1/2) < k) is at least `confidence`. With fewer than six
    trials no pair of order statistics reaches 95%, so the interval is [min, max] and
    `coverage` says what it really covers (n=2: 50%, n=3: 75%, n=5: 93.75%). n=1: no interval.
    iqr is the interquartile range (linear interpolation); cv the sample standard deviation
    over the mean (None below two trials)."""
    n: int
    median: float
    ci_low: float
    ci_high: float
    coverage: float
    iqr: float
    cv: float


def _order_statistic_rank(n, confidence):
    """Largest 1-based k with 1 - 2 P(Bin(n, 0.5) <= k - 1) >= confidence, or 1 (min/max)."""
    best = 1
    for k in range(1, n // 2 + 1):
        if 1 - 2 * sps.binom.cdf(k - 1, n, 0.5) >= confidence:
            best = k
    return best


def spread(sample, *, confidence=CONFIDENCE):
    x = np.sort(_sample(sample))
    n = len(x)
    if n == 0:
        raise ValueError("spread of an empty sample")
    median = float(np.median(x))
    q1, q3 = np.percentile(x, [25, 75])
    cv = float(np.std(x, ddof=1) / np.mean(x)) if n >= 2 and np.mean(x) != 0 else None
    if n == 1:
        return Spread(1, median, None, None, None, 0.0, None)
    k = _order_statistic_rank(n, confidence)
    coverage = float(1 - 2 * sps.binom.cdf(k - 1, n, 0.5))
    return Spread(n, median, float(x[k - 1]), float(x[n - k]), coverage, float(q3 - q1), cv)


# ------------------------------------------------------------------------- claims


@dataclass
class ThresholdVerdict:
    """`holds` when the whole interval is on the claim's side of the threshold, `fails` when
    the whole interval is on the other side, `inconclusive` when it straddles the threshold
    (or there is no interval). margin = estimate - threshold for `at_least` claims and
    threshold - estimate for `at_most` ones: positive means the estimate satisfies the claim.
    worst_margin is the same distance from the interval's end nearest the threshold side that
    would break the claim (None without an interval). coverage is the interval's confidence:
    `confidence` for a ratio; for one sample the order-statistic interval's own coverage,
    below 95% with fewer than six values (see `Spread`), which a report should print."""
    verdict: str
    estimate: float
    ci_low: float
    ci_high: float
    threshold: float
    direction: str
    margin: float
    worst_margin: float
    coverage: float = None


def threshold_verdict(sample, threshold, direction="at_least", *, confidence=CONFIDENCE,
                      seed=DEFAULT_SEED, n_resamples=N_RESAMPLES):
    """Decide a claim "estimate >= threshold" (direction `at_least`) or "<=" (`at_most`).

    `sample` is either one list of values (the estimate is its median and the interval the
    order-statistic interval of `spread`) or a pair (numerator, denominator) of lists, as in
    "X is at least 1.5x Y": the estimate is median(X) / median(Y) and the interval the
    percentile bootstrap of that ratio (as in `compare`)."""
    if direction not in ("at_least", "at_most"):
        raise ValueError("direction is 'at_least' or 'at_most'")
    if _is_pair_of_samples(sample):
        num, den = _sample(sample[0]), _sample(sample[1])
        if np.median(den) == 0:
            raise ValueError("the denominator's median is 0: no ratio")
        estimate = float(np.median(num) / np.median(den))
        low, high = ratio_interval(den, num, confidence=confidence, seed=seed, n_resamples=n_resamples)
        coverage = confidence if low is not None else None
    else:
        s = spread(sample, confidence=confidence)
        estimate, low, high, coverage = s.median, s.ci_low, s.ci_high, s.coverage
    sign = 1 if direction == "at_least" else -1
    margin = sign * (estimate - threshold)
    if low is None:
        return ThresholdVerdict(INCONCLUSIVE, estimate, None, None, threshold, direction, margin, None)
    worst = sign * ((low if sign > 0 else high) - threshold)
    best = sign * ((high if sign > 0 else low) - threshold)
    outcome = HOLDS if worst >= 0 else FAILS if best < 0 else INCONCLUSIVE
    return ThresholdVerdict(outcome, estimate, low, high, threshold, direction, margin, worst, coverage)


# ------------------------------------------------------------------------- power


def min_trials_for_rank_test(alpha=ALPHA, rows=1):
    """Smallest N per side at which the exact two-sided Mann-Whitney test can reach
    p < alpha / rows at all (complete separation gives p = 2 / C(2N, N)); alpha / rows is
    what Holm asks of the smallest p-value in a family of `rows` rows."""
    n = 1
    while 2 / math.comb(2 * n, n) >= alpha / rows:
        n += 1
    return n


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


def _draws(pool, n, replications, rng):
    """Index pairs (A, B) of each replication, drawn once and reused for every effect, so
    the detection rate is compared across effects on the same draws (monotone search)."""
    size = len(pool)
    if size >= 2 * n:
        perms = np.array([rng.permutation(size)[: 2 * n] for _ in range(replications)])
        return pool[perms[:, :n]], pool[perms[:, n:]], "disjoint"
    return (pool[rng.integers(0, size, (replications, n))],
            pool[rng.integers(0, size, (replications, n))], "with replacement")


def _rank_test_p_rows(a_rows, b_rows):
    """`rank_test_p` of each row pair, vectorised (the same choice of exact or asymptotic)."""
    both = np.concatenate([a_rows, b_rows], axis=1)
    srt = np.sort(both, axis=1)
    tied = np.any(srt[:, 1:] == srt[:, :-1], axis=1)
    exact = ~tied & (max(a_rows.shape[1], b_rows.shape[1]) <= EXACT_RANK_TEST_MAX_N)
    p = np.ones(len(a_rows))
    for mask, method in ((exact, "exact"), (~exact, "asymptotic")):
        if np.any(mask):
            with np.errstate(invalid="ignore", divide="ignore"):
                p[mask] = sps.mannwhitneyu(a_rows[mask], b_rows[mask], axis=1, alternative="two-sided",
                                           method=method).pvalue
    p[~np.isfinite(p) | np.all(srt == srt[:, :1], axis=1)] = 1.0
    return p


def _ratio_intervals_rows(a_rows, b_rows, *, confidence, n_resamples, rng, chunk=50):
    """`ratio_interval` of each row pair at once: the same percentile bootstrap of the ratio
    of medians, in NumPy, because one scipy.stats.bootstrap call per simulated comparison
    made an A/A run's noise floor take minutes. Rows without a finite interval are NaN."""
    if a_rows.shape[1] < 2 or b_rows.shape[1] < 2:  # as ratio_interval: nothing to resample
        return np.full(len(a_rows), np.nan), np.full(len(a_rows), np.nan)
    lows, highs = [], []
    tail = 50 * (1 - confidence)
    for start in range(0, len(a_rows), chunk):
        a, b = a_rows[start:start + chunk], b_rows[start:start + chunk]
        rows = np.arange(len(a))[:, None, None]
        ma = np.median(a[rows, rng.integers(0, a.shape[1], (len(a), n_resamples, a.shape[1]))], axis=2)
        mb = np.median(b[rows, rng.integers(0, b.shape[1], (len(b), n_resamples, b.shape[1]))], axis=2)
        with np.errstate(divide="ignore", invalid="ignore"):
            low, high = np.percentile(mb / ma, [tail, 100 - tail], axis=1)
        lows.append(low)
        highs.append(high)
    low, high = np.concatenate(lows), np.concatenate(highs)
    bad = ~(np.isfinite(low) & np.isfinite(high))
    low[bad], high[bad] = np.nan, np.nan
    return low, high


def _detection_rate(a_draws, b_draws, intervals, effect, rule):
    """Share of the draws whose B, multiplied by 1 + effect, the verdict rule calls a change.
    The ratio of medians and its bootstrap interval scale exactly with B, so the intervals
    of the unscaled draws (same resamples) serve every effect."""
    scale = 1 + effect
    p = _rank_test_p_rows(a_draws, b_draws * scale)
    ratio = scale * np.median(b_draws, axis=1) / np.median(a_draws, axis=1)
    low, high = scale * intervals[0], scale * intervals[1]
    excludes_one = ((ratio > 1) & (low > 1)) | ((ratio < 1) & (high < 1))
    big_enough = np.abs(ratio - 1) >= rule["min_effect"] - _EFFECT_SLACK
    called = excludes_one & big_enough & (p < rule["alpha"] / rule["rows"])
    return float(np.mean(called))


def min_detectable_effect(samples, n, *, power=0.8, alpha=ALPHA, rows=1, min_effect=0.0,
                          confidence=CONFIDENCE, replications=200, n_resamples=999,
                          seed=DEFAULT_SEED, max_effect=1.0, resolution=0.0025):
    """Smallest effect e such that B = A * (1 + e) is called a change in at least `power` of
    `replications` resampled comparisons of n trials per side.

    `samples`: the trials of one point from an A/A run (a list, or a pair of lists that are
    pooled, since under A/A both sides measure the same thing), or a float: a coefficient of
    variation, for normal noise around 1. Each replication draws A and B from that pool,
    multiplies B by 1 + e and applies the verdict rule: p < alpha / rows (Holm's bar for the
    smallest p of `rows` rows), |ratio - 1| >= min_effect, and the bootstrap interval
    excludes 1. The search is a bisection on e down to `resolution`, on the same draws for
    every e. Deterministic for a given seed."""
    rng = np.random.default_rng(seed)
    if isinstance(samples, (int, float)):
        a_draws = 1 + samples * rng.standard_normal((replications, n))
        b_draws = 1 + samples * rng.standard_normal((replications, n))
        resampling = "normal"
    else:
        if _is_pair_of_samples(samples):
            samples = list(samples[0]) + list(samples[1])
        pool = _sample(samples)
        if len(pool) < 2:
            raise ValueError("need at least two recorded trials to resample")
        a_draws, b_draws, resampling = _draws(pool, n, replications, rng)
    rule = dict(alpha=alpha, rows=rows, min_effect=min_effect)
    intervals = _ratio_intervals_rows(a_draws, b_draws, confidence=confidence,
                                      n_resamples=n_resamples, rng=rng)
    if _detection_rate(a_draws, b_draws, intervals, max_effect, rule) < power:
        return Detectable(None, n, power, replications, resampling)
    low, high = 0.0, max_effect
    while high - low > resolution:
        mid = (low + high) / 2
        if _detection_rate(a_draws, b_draws, intervals, mid, rule) >= power:
            high = mid
        else:
            low = mid
    return Detectable(high, n, power, replications, resampling)
