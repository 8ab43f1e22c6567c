#!/usr/bin/env python3
"""serverbench/stats.py: its decisions on data with a known answer (identical samples, a
clear shift, a shift below the minimum effect, many rows under Holm's correction), the
spread and claim helpers, and reproducibility; serverbench/power.py: the detectable-effect
search, the detectable effect of a row, the pre-run resolution check and the family-wise
false-call rate of A/A families."""
import math
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)

try:
    import numpy as np
    from serverbench import power, stats
except ImportError as e:  # numpy/scipy are Debian's python3-numpy, python3-scipy
    print(f"skipped: {e}")
    sys.exit(77)


def noisy(n, centre, cv, seed):
    """n values around centre with the given coefficient of variation."""
    rng = np.random.default_rng(seed)
    return list(centre * (1 + cv * rng.standard_normal(n)))


class CompareTest(unittest.TestCase):
    def test_identical_samples_are_no_change(self):
        a = [7.0] * 6
        c = stats.compare(a, list(a))
        self.assertEqual((c.ratio, c.ci_low, c.ci_high, c.p_value), (1.0, 1.0, 1.0, 1.0))
        self.assertEqual(c.verdict(higher_is_better=True), stats.NO_CHANGE)
        same = noisy(8, 100, 0.05, 1)
        c = stats.compare(same, list(same))
        self.assertAlmostEqual(c.ratio, 1.0)
        self.assertLessEqual(c.ci_low, 1.0)
        self.assertGreaterEqual(c.ci_high, 1.0)
        self.assertEqual(c.verdict(higher_is_better=False), stats.NO_CHANGE)

    def test_one_trial_per_side_gives_no_interval_and_no_call(self):
        c = stats.compare([1.0], [2.0])
        self.assertEqual((c.n_a, c.n_b, c.ratio), (1, 1, 2.0))
        self.assertIsNone(c.ci_low)
        self.assertEqual(c.verdict(higher_is_better=False), stats.NO_CHANGE)

    def test_zero_baseline_median_has_no_ratio(self):
        c = stats.compare([0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
        self.assertIsNone(c.ratio)
        self.assertEqual(c.verdict(higher_is_better=False), stats.NO_CHANGE)
        self.assertEqual(stats.compare([0.0, 0.0], [0.0, 0.0]).ratio, 1.0)

    def test_clear_shift_is_called_in_the_metric_direction(self):
        a = noisy(8, 100, 0.01, 2)
        b = [x * 1.3 for x in noisy(8, 100, 0.01, 3)]
        c = stats.compare(a, b)
        self.assertAlmostEqual(c.ratio, 1.3, delta=0.02)
        self.assertGreater(c.ci_low, 1.0)
        self.assertLess(c.p_value, 0.001)
        self.assertEqual(c.verdict(higher_is_better=False), stats.SLOWER)   # e.g. CPU per request
        self.assertEqual(c.verdict(higher_is_better=True), stats.FASTER)    # e.g. throughput
        down = stats.compare(b, a)
        self.assertLess(down.ci_high, 1.0)
        self.assertEqual(down.verdict(higher_is_better=False), stats.FASTER)
        self.assertEqual(down.verdict(higher_is_better=True), stats.SLOWER)

    def test_shift_below_minimum_effect_is_no_change_despite_small_p(self):
        a = noisy(8, 100, 0.001, 4)
        b = [x * 1.02 for x in noisy(8, 100, 0.001, 5)]
        c = stats.compare(a, b)
        self.assertLess(c.p_value, 0.001)
        self.assertGreater(c.ci_low, 1.0)
        self.assertEqual(c.verdict(higher_is_better=False), stats.NO_CHANGE)
        # The same data with a per-metric minimum effect of 1% is a change.
        c = stats.compare(a, b, min_effect=0.01)
        self.assertEqual(c.verdict(higher_is_better=False), stats.SLOWER)

    def test_same_seed_same_interval(self):
        a, b = noisy(7, 50, 0.08, 6), noisy(7, 55, 0.08, 7)
        first, again = stats.compare(a, b, seed=99), stats.compare(a, b, seed=99)
        self.assertEqual((first.ci_low, first.ci_high), (again.ci_low, again.ci_high))
        other = stats.compare(a, b, seed=100)
        self.assertNotEqual((first.ci_low, first.ci_high), (other.ci_low, other.ci_high))

    def test_rank_test_cannot_reach_5_percent_with_3_per_side(self):
        self.assertAlmostEqual(stats.rank_test_p([1, 2, 3], [4, 5, 6]), 0.1)
        self.assertAlmostEqual(stats.rank_test_p([1, 2, 3, 4], [5, 6, 7, 8]), 2 / 70)
        self.assertEqual(stats.min_trials_for_rank_test(), 4)
        # Holm's bar for the smallest of 10 p-values is 0.005: 2/C(10,5) = 0.0079 misses it.
        self.assertEqual(stats.min_trials_for_rank_test(rows=10), 6)

    def test_bad_input_raises_value_error(self):
        with self.assertRaises(ValueError):
            stats.compare([], [1.0])
        with self.assertRaises(ValueError):
            stats.compare([1.0, float("nan")], [1.0, 2.0])


class HolmTest(unittest.TestCase):
    def test_known_adjustment(self):
        # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, max(0.06, 0.04*1) = 0.06
        adjusted = stats.holm([0.01, 0.04, 0.03, 0.005, None])
        for got, want in zip(adjusted, [0.03, 0.06, 0.06, 0.02, None]):
            if want is None:
                self.assertIsNone(got)
            else:
                self.assertAlmostEqual(got, want)
        self.assertEqual(stats.holm([0.9, 0.8]), [1.0, 1.0])  # 2 * 0.8 capped at 1, then monotone
        self.assertEqual(stats.holm([0.04, 0.3]), [0.08, 0.3])

    def test_many_noise_rows_and_one_true_shift(self):
        """40 rows of pure noise (5% CV) and one row shifted by 30%, N=8 per side. Without
        a correction some noise rows are called; with Holm only the true shift is."""
        comparisons = [stats.compare(noisy(8, 100, 0.05, 100 + i), noisy(8, 100, 0.05, 200 + i),
                                     min_effect=0.0, seed=i) for i in range(40)]
        shifted = stats.compare(noisy(8, 100, 0.05, 300), [1.3 * x for x in noisy(8, 100, 0.05, 301)],
                                min_effect=0.0)
        comparisons.append(shifted)
        raw = [c.verdict(higher_is_better=False) for c in comparisons[:40]]
        self.assertGreater(raw.count(stats.SLOWER) + raw.count(stats.FASTER), 0,
                           "premise: uncorrected, noise alone produces a call")
        adjusted = stats.holm([c.p_value for c in comparisons])
        verdicts = [c.verdict(higher_is_better=False, p_adjusted=p) for c, p in zip(comparisons, adjusted)]
        self.assertEqual(verdicts[:40], [stats.NO_CHANGE] * 40)
        self.assertEqual(verdicts[40], stats.SLOWER)


class SpreadTest(unittest.TestCase):
    def test_one_trial_has_no_interval(self):
        s = stats.spread([4.0])
        self.assertEqual((s.n, s.median, s.ci_low, s.ci_high, s.iqr, s.cv), (1, 4.0, None, None, 0.0, None))

    def test_two_trials_span_min_to_max_at_50_percent(self):
        s = stats.spread([3.0, 1.0])
        self.assertEqual((s.median, s.ci_low, s.ci_high, s.coverage), (2.0, 1.0, 3.0, 0.5))

    def test_order_statistic_interval_of_ten(self):
        # k=2 covers 1 - 2 * (1 + 10) / 1024 = 97.85%; k=3 only 1 - 2 * 56 / 1024 = 89.1%.
        s = stats.spread([10, 1, 9, 2, 8, 3, 7, 4, 6, 5])
        self.assertEqual((s.median, s.ci_low, s.ci_high), (5.5, 2.0, 9.0))
        self.assertAlmostEqual(s.coverage, 1 - 22 / 1024)
        self.assertAlmostEqual(s.iqr, 4.5)

    def test_five_trials_cannot_reach_95_percent(self):
        s = stats.spread([5, 4, 3, 2, 1])
        self.assertEqual((s.ci_low, s.ci_high), (1.0, 5.0))
        self.assertAlmostEqual(s.coverage, 1 - 2 / 32)


class ThresholdTest(unittest.TestCase):
    def test_ratio_claims(self):
        y = noisy(8, 100, 0.02, 10)
        twice = [2 * v for v in noisy(8, 100, 0.02, 11)]
        same = noisy(8, 100, 0.02, 12)
        holds = stats.threshold_verdict((twice, y), 1.5)
        self.assertEqual((holds.verdict, holds.coverage), (stats.HOLDS, 0.95))
        self.assertAlmostEqual(holds.margin, holds.estimate - 1.5)
        self.assertGreater(holds.worst_margin, 0)
        fails = stats.threshold_verdict((same, y), 1.5)
        self.assertEqual(fails.verdict, stats.FAILS)
        self.assertLess(fails.margin, 0)
        at_most = stats.threshold_verdict((same, y), 1.5, "at_most")
        self.assertEqual(at_most.verdict, stats.HOLDS)
        self.assertGreater(at_most.margin, 0)

    def test_straddling_interval_is_inconclusive(self):
        y = noisy(6, 100, 0.2, 13)
        x = [1.5 * v for v in noisy(6, 100, 0.2, 14)]
        v = stats.threshold_verdict((x, y), 1.5)
        self.assertLess(v.ci_low, 1.5)
        self.assertGreater(v.ci_high, 1.5)
        self.assertEqual(v.verdict, stats.INCONCLUSIVE)

    def test_single_sample_claims(self):
        self.assertEqual(stats.threshold_verdict([10, 11, 12, 13, 14, 15], 9).verdict, stats.HOLDS)
        self.assertEqual(stats.threshold_verdict([10, 11, 12, 13, 14, 15], 12.5).verdict, stats.INCONCLUSIVE)
        self.assertEqual(stats.threshold_verdict([10, 11, 12, 13, 14, 15], 9, "at_most").verdict, stats.FAILS)
        two = stats.threshold_verdict((10.0, 12.0), 9)  # one sample of two values, not a ratio
        self.assertEqual((two.estimate, two.ci_low, two.ci_high, two.verdict, two.coverage),
                         (11.0, 10.0, 12.0, stats.HOLDS, 0.5))
        one = stats.threshold_verdict([10.0], 9)
        self.assertEqual((one.verdict, one.margin, one.worst_margin), (stats.INCONCLUSIVE, 1.0, None))
        with self.assertRaises(ValueError):
            stats.threshold_verdict([1.0, 2.0], 1, "more")


class DetectableEffectTest(unittest.TestCase):
    def test_quiet_trials_detect_down_to_the_minimum_effect(self):
        pool = noisy(20, 100, 0.002, 20)
        d = power.min_detectable_effect(pool, 8, min_effect=0.05, replications=50)
        self.assertEqual(d.resampling, "disjoint")
        self.assertGreaterEqual(d.effect, 0.05)
        self.assertLess(d.effect, 0.05 + 0.005)

    def test_noisier_trials_need_a_larger_effect_and_more_trials_help(self):
        quiet = power.min_detectable_effect(noisy(20, 100, 0.02, 21), 8, replications=100)
        loud = power.min_detectable_effect(noisy(20, 100, 0.10, 21), 8, replications=100)
        self.assertLess(quiet.effect, loud.effect)
        few = power.min_detectable_effect(0.05, 4, replications=100)
        many = power.min_detectable_effect(0.05, 10, replications=100)
        self.assertEqual(few.resampling, "normal")
        self.assertLess(many.effect, few.effect)

    def test_three_per_side_detect_with_welch(self):
        """The rank test could not reach 5% with 3 per side (p >= 0.1); Welch's t on logs can."""
        d = power.min_detectable_effect(noisy(10, 100, 0.01, 22), 3, replications=50)
        self.assertIsNotNone(d.effect)
        self.assertLess(d.effect, 0.10)

    def test_small_pool_draws_with_replacement(self):
        d = power.min_detectable_effect(noisy(10, 100, 0.01, 23), 8, replications=50)
        self.assertEqual(d.resampling, "with replacement")

    def test_deterministic_with_a_seed(self):
        pool = noisy(20, 100, 0.05, 24)
        first = power.min_detectable_effect(pool, 6, replications=60, seed=5)
        again = power.min_detectable_effect(pool, 6, replications=60, seed=5)
        self.assertEqual(first, again)
        self.assertFalse(math.isnan(first.effect))


def lognormal(n, centre, cv, seed):
    """n log-normal values around centre whose coefficient of variation is cv."""
    rng = np.random.default_rng(seed)
    return list(centre * np.exp(math.sqrt(math.log1p(cv * cv)) * rng.standard_normal(n)))


class WelchTest(unittest.TestCase):
    def test_terms_are_scipys(self):
        """welch_terms' difference, standard error and Welch-Satterthwaite df give back
        scipy.stats.ttest_ind's t and p (SciPy 1.10 returns neither df nor an interval)."""
        from scipy import stats as sps
        a, b = np.log(lognormal(6, 100, 0.05, 1)), np.log(lognormal(8, 110, 0.12, 2))
        diff, se, df = stats.welch_terms(a, b)
        ref = sps.ttest_ind(b, a, equal_var=False)
        self.assertAlmostEqual(diff / se, ref.statistic)
        self.assertAlmostEqual(2 * sps.t.sf(abs(diff / se), df), ref.pvalue)
        self.assertAlmostEqual(stats.welch_p(a, b)[0], ref.pvalue)

    def test_the_issues_regression_is_called_where_the_rank_test_could_not(self):
        """epoll c1 CPU per request 1.497x, interval 1.48-1.52, 6 trials a side, 30 gated rows:
        the rank test's floor 2/924 times 30 is 0.065, so it said `no change`; Welch's is not
        bounded below."""
        a = lognormal(6, 20.0, 0.01, 3)
        c = stats.compare(a, [1.497 * x for x in lognormal(6, 20.0, 0.01, 4)])
        self.assertGreater(30 * c.rank_p_value, 0.05)
        adjusted = stats.holm([c.p_value] + [1.0] * 29)[0]
        self.assertLess(adjusted, 0.05)
        self.assertEqual(c.verdict(higher_is_better=False, p_adjusted=adjusted), stats.SLOWER)
        low, high = c.welch_interval(1 - 0.05 / 30)
        self.assertTrue(1.4 < low < 1.497 < high < 1.6, (low, high))

    def test_family_interval_excludes_one_exactly_when_p_is_below_its_level(self):
        for seed in range(12):
            c = stats.compare(lognormal(6, 100, 0.05, 10 + seed), lognormal(6, 104, 0.05, 30 + seed))
            for level in (0.05, 0.005):
                low, high = c.welch_interval(1 - level)
                self.assertEqual(not low <= 1 <= high, c.p_value < level, (seed, level, low, high, c.p_value))

    def test_the_test_needs_two_trials_a_side_and_positive_values_for_logs(self):
        one = stats.compare([1.0], [2.0, 2.1])
        self.assertEqual((one.p_value, one.estimate, one.welch_interval(0.95)), (None, None, (None, None)))
        raw = stats.compare([0.0, 1.0, 2.0], [3.0, 4.0, 5.0])
        self.assertFalse(raw.on_logs)
        self.assertAlmostEqual(raw.estimate, 4.0)  # the ratio of means off logs
        self.assertEqual(raw.welch_interval(0.95), (None, None))
        self.assertLess(raw.p_value, 0.05)
        constant = stats.compare([2.0, 2.0, 2.0], [2.5, 2.5, 2.5])
        self.assertEqual((constant.p_value, constant.welch_interval(0.99)), (0.0, (1.25, 1.25)))

    def test_medians_and_welchs_estimate_must_agree_on_the_side(self):
        self.assertEqual(stats.verdict(1.2, 0.9, 1e-6, higher_is_better=False), stats.NO_CHANGE)
        self.assertEqual(stats.verdict(1.2, 1.1, 1e-6, higher_is_better=False), stats.SLOWER)
        self.assertEqual(stats.verdict(0.8, 0.9, 1e-6, higher_is_better=True), stats.SLOWER)
        called = stats.called(np.array([1.2, 1.2, 1.02, 0.8]), np.array([1.1, 0.9, 1.02, 0.8]),
                              np.array([1e-6, 1e-6, 1e-6, 0.2]))
        self.assertEqual(called.tolist(), [True, False, False, False])


class PowerTest(unittest.TestCase):
    def test_detectable_effect_has_the_power_it_claims(self):
        """At the effect detectable_effect names, log-normal trials are called in 80% of
        4000 simulated comparisons (Welch at alpha / rows)."""
        n, rows, cv = 6, 30, 0.05
        effect = power.effect_at_cv(n, rows, cv)
        rng = np.random.default_rng(7)
        sd = math.sqrt(math.log1p(cv * cv))
        a = sd * rng.standard_normal((4000, n))
        b = sd * rng.standard_normal((4000, n)) + math.log1p(effect)
        self.assertAlmostEqual(float(np.mean(stats.welch_p(a, b) < 0.05 / rows)), 0.8, delta=0.025)

    def test_analytic_and_resampled_effects_agree(self):
        """The resampled search also asks the medians' side; it lands a point or two above."""
        for n, rows, cv in ((6, 30, 0.05), (8, 60, 0.10)):
            analytic = power.effect_at_cv(n, rows, cv)
            resampled = power.min_detectable_effect(cv, n, rows=rows, replications=1000).effect
            self.assertGreaterEqual(resampled, analytic - 0.01)
            self.assertLess(resampled, analytic + 0.03)

    def test_detectable_effect_edges(self):
        self.assertEqual(power.detectable_effect(0.0, 10, min_effect=0.05), 0.05)
        self.assertIsNone(power.detectable_effect(None, 10))
        self.assertIsNone(power.detectable_effect(0.1, 0))
        self.assertIsNone(power.detectable_effect(0.1, 1, alpha=1e-12))  # a t beyond MAX_T
        self.assertEqual(power.detectable_effect(0.001, 20, min_effect=0.05), 0.05)

    def test_resolution_check(self):
        ok = power.resolution_check(6, 30)
        self.assertTrue(ok.can_call)
        self.assertIn("within reach", ok.text())
        blind = power.resolution_check(2, 404)
        self.assertFalse(blind.can_call)
        self.assertEqual(blind.trials_needed, 5)
        self.assertIn("blind", blind.text())
        self.assertIn("--trials 5", blind.text())
        self.assertFalse(power.resolution_check(1, 1).can_call)

    def test_largest_family_far_beyond_the_rank_tests(self):
        """The rank test at 6 a side can call nothing in a family of 24 or more, at 8 a side of
        322 or more; Welch's t calls 1.5x at 5% CV in families far larger."""
        self.assertEqual(stats.min_trials_for_rank_test(rows=24), 7)
        self.assertEqual(stats.min_trials_for_rank_test(rows=322), 9)
        self.assertGreater(power.largest_family(6, cv=0.05), 10000)
        self.assertGreater(power.largest_family(8, cv=0.10), 1000)
        self.assertEqual(power.largest_family(2, cv=0.10), 0)


class DrawsTest(unittest.TestCase):
    def test_abba_replay_cancels_a_linear_drift(self):
        """Blocks of four consecutive trials read ABBA or BAAB: a linear drift adds the same
        to both sides of every block, as in a run (ab.abba_order)."""
        sequence = np.arange(20.0)
        for n in (4, 6, 10):
            a, b = power.abba_draws(sequence, n, 200, np.random.default_rng(n))
            self.assertEqual(a.shape, (200, n))
            self.assertTrue(np.all(a.sum(axis=1) == b.sum(axis=1)))
            both = np.sort(np.concatenate([a, b], axis=1), axis=1)
            self.assertTrue(np.all(both[:, 1:] > both[:, :-1]))  # no trial twice
        a, b = power.abba_draws(sequence, 5, 50, np.random.default_rng(1))
        self.assertTrue(np.all(np.abs(a.sum(axis=1) - b.sum(axis=1)) == 1))  # the odd pair
        with self.assertRaises(ValueError):
            power.abba_draws(sequence, 11, 1, np.random.default_rng(1))

    def test_exchangeable_draws_ignore_the_order(self):
        a, b, how = power.exchangeable_draws(np.arange(20.0), 6, 200, np.random.default_rng(2))
        self.assertEqual(how, "disjoint")
        self.assertFalse(np.all(a.sum(axis=1) == b.sum(axis=1)))

    def test_false_call_rate_of_lognormal_families(self):
        """40-row A/A families of log-normal trials: Holm keeps the rate of any call under 5%;
        the same seed gives the same figure."""
        pools = [(lognormal(20, 100, 0.05 + 0.01 * i, 60 + i), 0.0) for i in range(4)]
        first = power.family_false_call_rate(pools, 6, 40, replications=300, resampling="exchangeable")
        self.assertLessEqual(first.rate, 0.05)
        self.assertEqual(first, power.family_false_call_rate(pools, 6, 40, replications=300,
                                                             resampling="exchangeable"))
        flat = power.family_false_call_rate([([5.0] * 20, 0.0)], 8, 10, replications=50)
        self.assertEqual(flat.rate, 0.0)


if __name__ == "__main__":
    unittest.main()
