"""Statistics for comparing repeated benchmark trials: one small module, SciPy underneath.

Written to SciPy 1.10's API (Debian 12): `scipy.stats.bootstrap` takes `random_state`,
`scipy.stats.ttest_ind` returns neither its degrees of freedom nor an interval (1.11 does), and
there is no multiple-comparison correction, so Holm's few lines are written here.

* `compare(a, b)`: medians of A (baseline) and B (current), the ratio B/A, a seeded percentile
  bootstrap interval of that ratio, Welch's t-test on the log values (the decisive p-value, its
  estimate of B/A and what an interval at any confidence needs) and the two-sided Mann-Whitney
  U p-value (reported only: its floor, 2 / C(2N, N), blinds it in large families).
* `holm(p_values)`: Holm's step-down adjusted p-values over the rows of a run.
* `verdict(...)`, `called(...)`: `slower`, `faster` or `no change`, called only when the
  adjusted p-value is below alpha, the ratio is at least the minimum effect away from 1 and
  Welch's estimate lies on the same side of 1.
* `median(values)`: the median of the known values (None when there are none).
* `spread(sample)`: median, a distribution-free interval of the median, IQR and CV.
* `threshold_verdict(...)`: `holds`, `fails` or `inconclusive` for "X is at least k" claims.

What a rule can detect (per row, before a run, from recorded trials) is in serverbench/power.py.
Everything random is seeded, so the same input gives the same output.
"""
import math
import statistics
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

DEFAULT_SEED = 12
ALPHA = 0.05
CONFIDENCE = 0.95
MIN_EFFECT = 0.05
N_RESAMPLES = 9999
TEST = "Welch's t on log values, two-sided"
RANK_TEST = "Mann-Whitney U, two-sided (reported, not decisive)"
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


def sample_array(values):
    arr = np.asarray(list(values), dtype=float)
    if arr.ndim != 1 or not np.all(np.isfinite(arr)):
        raise ValueError("a sample is a flat list of finite numbers")
    return arr


def _ratio_of_medians(x, y, axis=-1):
    """Bootstrap statistic: median(y) / median(x), vectorised over resamples."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.median(y, axis=axis) / np.median(x, axis=axis)


def is_pair_of_samples(x):
    """(list, list), as opposed to one sample that happens to be a tuple of two numbers."""
    return isinstance(x, tuple) and len(x) == 2 and all(np.ndim(side) == 1 for side in x)


def ratio_interval(a, b, *, confidence=CONFIDENCE, seed=DEFAULT_SEED, n_resamples=N_RESAMPLES):
    """Percentile bootstrap interval of median(b) / median(a), or (None, None).

    Percentile, not BCa: BCa's acceleration comes from a jackknife, which is inconsistent for
    the median, and SciPy returns NaN for BCa on degenerate samples (all values equal).
    With identical values on each side the percentile interval collapses onto the ratio
    itself. It is None when a side has fewer than two trials (nothing to resample) or when
    median(a) is 0 (no ratio)."""
    a, b = sample_array(a), sample_array(b)
    if len(a) < 2 or len(b) < 2 or np.median(a) == 0:
        return None, None
    if np.all(a == a[0]) and np.all(b == b[0]):
        r = float(b[0] / a[0])
        return r, r
    with np.errstate(divide="ignore", invalid="ignore"):  # resamples of A whose median is 0
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
    a, b = sample_array(a), sample_array(b)
    if len(a) == 0 or len(b) == 0:
        return None
    both = np.concatenate([a, b])
    if np.all(both == both[0]):
        return 1.0
    exact = len(np.unique(both)) == len(both) and max(len(a), len(b)) <= EXACT_RANK_TEST_MAX_N
    p = sps.mannwhitneyu(a, b, alternative="two-sided", method="exact" if exact else "asymptotic").pvalue
    return float(p) if math.isfinite(p) else 1.0


def min_trials_for_rank_test(alpha=ALPHA, rows=1):
    """Smallest N per side at which the exact two-sided Mann-Whitney test can reach
    p < alpha / rows at all (complete separation gives p = 2 / C(2N, N)); alpha / rows is
    what Holm asks of the smallest p-value in a family of `rows` rows."""
    n = 1
    while 2 / math.comb(2 * n, n) >= alpha / rows:
        n += 1
    return n


def welch_p(a_rows, b_rows):
    """Two-sided p-values of Welch's t-test (`scipy.stats.ttest_ind`, equal_var=False), one per
    row of a_rows and b_rows (trials along the last axis; one row may be a flat list). Both
    sides constant: 1 when equal, 0 when not (the limit of an unbounded t). NaN when a side
    has fewer than two trials."""
    a_rows, b_rows = np.atleast_2d(a_rows), np.atleast_2d(b_rows)
    if a_rows.shape[1] < 2 or b_rows.shape[1] < 2:
        return np.full(len(a_rows), np.nan)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # "catastrophic cancellation" on near-constant rows
        p = sps.ttest_ind(b_rows, a_rows, axis=1, equal_var=False).pvalue
    flat = (np.ptp(a_rows, axis=1) == 0) & (np.ptp(b_rows, axis=1) == 0)
    return np.where(flat, np.where(a_rows[:, 0] == b_rows[:, 0], 1.0, 0.0), p)


def welch_terms(a, b):
    """Welch's mean(b) - mean(a), its standard error and its Welch-Satterthwaite degrees of
    freedom (along the last axis), which SciPy 1.10's ttest_ind does not return. Both sides
    constant: se 0 and df n_a + n_b - 2."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    na, nb = a.shape[-1], b.shape[-1]
    va, vb = np.var(a, axis=-1, ddof=1) / na, np.var(b, axis=-1, ddof=1) / nb
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    df = np.where(va + vb == 0, na + nb - 2.0, df)
    return np.mean(b, axis=-1) - np.mean(a, axis=-1), np.sqrt(va + vb), df


@dataclass
class Comparison:
    """Two samples compared. ratio is b_median / a_median (None when a_median is 0, unless
    both medians are 0: then 1.0). ci_low/ci_high bound that ratio at `confidence` (percentile
    bootstrap). p_value is Welch's two-sided t-test on the log values (on the values themselves
    when one is 0 or below: `on_logs` False), estimate its estimate of B/A (the ratio of
    geometric means; of means off logs), diff/se/df its difference, standard error and degrees
    of freedom on that scale. rank_p_value: Mann-Whitney U, reported only."""
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
    rank_p_value: float = None
    estimate: float = None
    on_logs: bool = True
    diff: float = None
    se: float = None
    df: float = None

    def verdict(self, higher_is_better, p_adjusted=None, alpha=ALPHA):
        """The verdict of this comparison alone (p_adjusted defaults to the raw p-value)."""
        return verdict(self.ratio, self.estimate, self.p_value if p_adjusted is None else p_adjusted,
                       higher_is_better=higher_is_better, min_effect=self.min_effect, alpha=alpha)

    def welch_interval(self, confidence):
        """Welch's interval of B/A (the ratio of geometric means) at `confidence`:
        exp(diff +- t(df) se) on the log values; (None, None) off logs or without a test."""
        if not self.on_logs or self.se is None:
            return None, None
        half = float(sps.t.isf((1 - confidence) / 2, self.df)) * self.se if self.se > 0 else 0.0
        return math.exp(self.diff - half), math.exp(self.diff + half)


def _finite_or_none(x):
    x = float(x)
    return x if math.isfinite(x) else None


def compare(a, b, *, min_effect=MIN_EFFECT, confidence=CONFIDENCE, seed=DEFAULT_SEED,
            n_resamples=N_RESAMPLES):
    """Compare baseline sample `a` with current sample `b` (lists of floats).

    Degenerate input does not raise: identical values give ratio 1, interval [1, 1] and
    p = 1 (so `no change`); a side with one trial gives no interval and no p-value (None), so
    never a called change; a baseline median of 0 gives no ratio (None), and no called change."""
    a, b = sample_array(a), sample_array(b)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("each side needs at least one trial")
    ma, mb = float(np.median(a)), float(np.median(b))
    if ma == 0:
        ratio = 1.0 if mb == 0 else None
    else:
        ratio = mb / ma
    low, high = ratio_interval(a, b, confidence=confidence, seed=seed, n_resamples=n_resamples)
    on_logs = bool(np.all(a > 0) and np.all(b > 0))
    xa, xb = (np.log(a), np.log(b)) if on_logs else (a, b)
    testable = len(a) > 1 and len(b) > 1
    diff, se, df = (_finite_or_none(x) for x in welch_terms(xa, xb)) if testable else (None, None, None)
    if not testable:
        estimate = None
    elif on_logs:
        estimate = math.exp(diff)
    else:
        estimate = float(np.mean(b) / np.mean(a)) if np.mean(a) > 0 else None
    return Comparison(a_median=ma, b_median=mb, ratio=ratio, ci_low=low, ci_high=high,
                      p_value=_finite_or_none(welch_p(xa, xb)[0]) if testable else None, n_a=len(a),
                      n_b=len(b), min_effect=min_effect, confidence=confidence,
                      rank_p_value=rank_test_p(a, b), estimate=estimate, on_logs=on_logs,
                      diff=diff, se=se, df=df)


def called(ratio, estimate, p_adjusted, *, min_effect=MIN_EFFECT, alpha=ALPHA):
    """Whether the verdict rule calls a change (NumPy arrays or floats, elementwise): the
    (corrected) p-value is below alpha, |ratio - 1| >= min_effect, and Welch's estimate lies
    on the same side of 1 as the ratio of medians."""
    ratio, estimate, p_adjusted = (np.asarray(x, dtype=float) for x in (ratio, estimate, p_adjusted))
    same_side = ((ratio > 1) & (estimate > 1)) | ((ratio < 1) & (estimate < 1))
    return same_side & (np.abs(ratio - 1) >= min_effect - _EFFECT_SLACK) & (p_adjusted < alpha)


def verdict(ratio, estimate, p_adjusted, *, higher_is_better, min_effect=MIN_EFFECT, alpha=ALPHA):
    """`slower`, `faster` or `no change`: a change only when `called` (estimate None: the
    ratio alone gives the side). Direction: a ratio above 1 is `faster` for a higher-is-better
    metric (throughput) and `slower` for a lower-is-better one (CPU per request, latency, counts)."""
    if ratio is None or p_adjusted is None:
        return NO_CHANGE
    estimate = ratio if estimate is None else estimate
    if not called(ratio, estimate, p_adjusted, min_effect=min_effect, alpha=alpha):
        return NO_CHANGE
    return FASTER if (ratio > 1) == higher_is_better else SLOWER


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
    x = np.sort(sample_array(sample))
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
    if is_pair_of_samples(sample):
        num, den = sample_array(sample[0]), sample_array(sample[1])
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
