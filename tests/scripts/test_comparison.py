#!/usr/bin/env python3
"""serverbench/comparison.py: rows and verdicts from trial records (which metric is gated
where), the gate and its reruns, and the writers (valid JSON, Markdown, PNG and SVG);
serverbench/recorded.py: the A/A noise floor on real recorded trials (fixtures/aa-trials) and
the command line over stored trials."""
import json
import os
import random
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
AA_TRIALS = os.path.join(HERE, "fixtures", "aa-trials")
BASELINE_POINT = os.path.join(ROOT, "results", "baseline", "points", "epoll", "http-keepalive", "c50-r1.json")
sys.path.insert(0, ROOT)

try:
    import numpy as np
    import matplotlib  # noqa: F401  (the chart)
    from serverbench import ab, cli, comparison, matrix, power, recorded, resolution, stats
    from serverbench import scenarios as sc
    from serverbench.settings import Settings
except ImportError as e:  # Debian's python3-numpy, python3-scipy, python3-matplotlib
    print(f"skipped: {e}")
    sys.exit(77)

FAST = comparison.Method(n_resamples=1999)


def trials_of(model, point, n, metrics, b_factors=None, server_bound=True, seed=0, cv=0.02):
    """n A and n B trial records in ABBA order; B's metrics multiplied by b_factors."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(2 * n):
        side = "A" if i % 4 in (0, 3) else "B"
        factor = lambda m: (b_factors or {}).get(m, 1.0) if side == "B" else 1.0  # noqa: E731
        values = {m: v * factor(m) * (1 + cv * rng.standard_normal()) for m, v in metrics.items()}
        out.append({"model": model, "scenario": "http-keepalive", "point": point, "side": side,
                    "metrics": values, "server_bound": server_bound})
    return out


BASE = {"throughput_rps": 80000.0, "cpu_us_per_request": 8.0, "p99_us": 900.0}


def row(rows, model, metric, point="c50"):
    [r] = [r for r in rows if (r["model"], r["metric"], r["point"]) == (model, metric, point)]
    return r


class CompareTrialsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # "slowed" pays 1.3x the CPU per request on B and loses throughput; "steady" does not.
        cls.trials = (trials_of("slowed", "c50", 8, BASE, {"cpu_us_per_request": 1.3, "throughput_rps": 0.77}, seed=1)
                      + trials_of("steady", "c50", 8, BASE, seed=2))
        cls.rows = comparison.compare_trials(cls.trials, method=FAST)

    def test_rows_have_the_contract_fields(self):
        required = {"model", "scenario", "point", "metric", "a_median", "b_median", "ratio", "ci_low",
                    "ci_high", "p_value", "verdict", "n_a", "n_b"}
        self.assertEqual(len(self.rows), 6)
        for r in self.rows:
            self.assertTrue(required <= set(r), r)
            self.assertEqual((r["n_a"], r["n_b"]), (8, 8))

    def test_regressed_model_is_slower_and_the_other_is_not(self):
        cpu = row(self.rows, "slowed", "cpu_us_per_request")
        self.assertEqual(cpu["verdict"], stats.SLOWER)
        self.assertGreater(cpu["ci_low"], 1.0)
        self.assertAlmostEqual(cpu["ratio"], 1.3, delta=0.05)
        self.assertEqual(row(self.rows, "slowed", "throughput_rps")["verdict"], stats.SLOWER)
        for metric in ("cpu_us_per_request", "throughput_rps", "p99_us"):
            self.assertEqual(row(self.rows, "steady", metric)["verdict"], stats.NO_CHANGE)

    def test_gate_and_reruns(self):
        failures = comparison.gate_failures(self.rows)
        self.assertEqual({(r["model"], r["metric"]) for r in failures},
                         {("slowed", "cpu_us_per_request"), ("slowed", "throughput_rps")})
        self.assertEqual(comparison.rows_to_rerun(self.rows), [("slowed", "http-keepalive", "c50")])

    def test_only_a_failure_the_rerun_repeats_is_confirmed(self):
        # The rerun of the flagged point: CPU still 1.3x, throughput back to normal.
        rerun = comparison.compare_trials(
            trials_of("slowed", "c50", 8, BASE, {"cpu_us_per_request": 1.3}, seed=11), method=FAST)
        confirmed = comparison.confirmed_failures(self.rows, rerun)
        self.assertEqual([(r["model"], r["metric"]) for r in confirmed], [("slowed", "cpu_us_per_request")])
        quiet = comparison.compare_trials(trials_of("slowed", "c50", 8, BASE, seed=12), method=FAST)
        self.assertEqual(comparison.confirmed_failures(self.rows, quiet), [])

    def test_holm_family_is_the_gated_rows(self):
        gated = [r for r in self.rows if r["gated"]]
        self.assertEqual(len(gated), 4)  # CPU and throughput of two models; p99 is not gated
        smallest = min(gated, key=lambda r: r["p_value"])
        self.assertAlmostEqual(smallest["p_adjusted"], min(1.0, 4 * smallest["p_value"]))
        p99 = [r for r in self.rows if r["metric"] == "p99_us"]
        self.assertFalse(any(r["gated"] for r in p99))
        self.assertAlmostEqual(min(r["p_adjusted"] for r in p99), min(1.0, 2 * min(r["p_value"] for r in p99)))

    def test_same_rows_whatever_the_order_of_the_trials(self):
        shuffled = list(self.trials)
        random.Random(3).shuffle(shuffled)
        again = comparison.compare_trials(shuffled, method=FAST)
        key = lambda r: (r["model"], r["metric"])  # noqa: E731
        self.assertEqual(sorted(self.rows, key=key), sorted(again, key=key))


class ManyRowsTest(unittest.TestCase):
    def test_forty_noise_rows_and_one_regression(self):
        """20 unchanged models x (CPU, throughput) = 40 gated noise rows at 5% CV, plus one
        model whose CPU per request is 1.3x: only that row fails the gate."""
        trials = [t for i in range(20) for t in trials_of(f"m{i:02}", "c50", 8, BASE, seed=100 + i, cv=0.05)]
        trials += trials_of("regressed", "c50", 8, BASE, {"cpu_us_per_request": 1.3}, seed=200, cv=0.05)
        rows = comparison.compare_trials(trials, method=FAST)
        self.assertEqual(sum(r["gated"] for r in rows), 42)
        called = [(r["model"], r["metric"]) for r in rows if r["verdict"] in (stats.SLOWER, stats.FASTER)]
        self.assertEqual(called, [("regressed", "cpu_us_per_request")])
        self.assertEqual(comparison.rows_to_rerun(rows), [("regressed", "http-keepalive", "c50")])


class WhatIsGatedTest(unittest.TestCase):
    def test_throughput_at_a_loadgen_bound_point_is_not_gated(self):
        trials = trials_of("m", "c50", 6, BASE, {"throughput_rps": 0.6}, server_bound=False, seed=4)
        rows = comparison.compare_trials(trials, method=FAST)
        tput = row(rows, "m", "throughput_rps")
        self.assertEqual((tput["verdict"], tput["gated"], tput["p_adjusted"]), (comparison.NOT_GATED, False, None))
        self.assertLess(tput["ci_high"], 1.0)  # the change is there, and reported
        self.assertEqual(comparison.gate_failures(rows), [])
        self.assertTrue(row(rows, "m", "cpu_us_per_request")["gated"])

    def test_server_bound_needs_more_than_half_of_the_trials(self):
        trials = trials_of("m", "c50", 4, BASE, seed=5)
        for t in trials[:4]:
            t["server_bound"] = False
        self.assertFalse(row(comparison.compare_trials(trials, method=FAST), "m", "throughput_rps")["gated"])
        trials[0]["server_bound"] = True
        self.assertTrue(row(comparison.compare_trials(trials, method=FAST), "m", "throughput_rps")["gated"])

    def test_counts_are_gated_and_p99_never(self):
        metrics = dict(BASE, syscalls_per_request=2.05, loadgen_cpu_us_per_request=11.0)
        trials = trials_of("m", "c50", 8, metrics, {"syscalls_per_request": 1.5, "p99_us": 3.0}, seed=6)
        rows = comparison.compare_trials(trials, method=FAST)
        sys_row = row(rows, "m", "syscalls_per_request")
        self.assertEqual((sys_row["gated"], sys_row["verdict"]), (True, stats.SLOWER))
        p99 = row(rows, "m", "p99_us")
        self.assertEqual((p99["gated"], p99["verdict"]), (False, stats.SLOWER))
        self.assertFalse(row(rows, "m", "loadgen_cpu_us_per_request")["gated"])
        self.assertEqual([r["metric"] for r in comparison.gate_failures(rows)], ["syscalls_per_request"])

    def test_min_effect_per_metric(self):
        trials = trials_of("m", "c50", 8, BASE, {"cpu_us_per_request": 1.04}, seed=7, cv=0.002)
        default = row(comparison.compare_trials(trials, method=FAST), "m", "cpu_us_per_request")
        self.assertEqual(default["verdict"], stats.NO_CHANGE)
        tight = row(comparison.compare_trials(trials, method=FAST, min_effects={"cpu_us_per_request": 0.02}),
                    "m", "cpu_us_per_request")
        self.assertEqual((tight["verdict"], tight["min_effect"]), (stats.SLOWER, 0.02))

    def test_a_trial_without_side_is_an_error(self):
        with self.assertRaises(ValueError):
            comparison.compare_trials([{"model": "m", "scenario": "s", "point": "p", "metrics": {}}])

    def test_trial_record_from_a_result_document(self):
        with open(BASELINE_POINT) as f:
            result = json.load(f)
        t = comparison.trial_record(result, "A", "c50", counts={"syscalls_per_request": 2.0})
        self.assertEqual(t["metrics"]["throughput_rps"], result["totals"]["throughput_rps"])
        self.assertEqual(t["metrics"]["cpu_us_per_request"], result["server"]["cpu_us_per_request"])
        self.assertEqual(t["metrics"]["p99_us"], result["latency_us"]["p99"])
        self.assertEqual(t["server_bound"], result["saturation"]["bound"] == "server")
        self.assertEqual(t["metrics"]["syscalls_per_request"], 2.0)


class AARunTest(unittest.TestCase):
    """Real A/A trials: the same binaries on both sides, recorded on the shared 2-CPU machine,
    once while other jobs left the server 30-99% of its CPU (shared), once 5-22% (contended)."""

    @classmethod
    def setUpClass(cls):
        cls.runs = {name: recorded.load_trial_dir(os.path.join(AA_TRIALS, name))
                    for name in ("shared", "contended")}

    def test_an_aa_run_flags_at_most_one_row(self):
        for name, trials in self.runs.items():
            self.assertEqual(len(trials), 40, name)
            rows = comparison.compare_trials(trials)
            self.assertEqual(len(rows), 6, name)
            self.assertLessEqual(sum(r["verdict"] in (stats.SLOWER, stats.FASTER) for r in rows), 1, name)

    def test_a_real_injected_cpu_cost_is_slower_on_cpu_per_request(self):
        """known-effect: B's server ran with --cpu-us 1 (1 µs of busy CPU per request)."""
        rows = comparison.compare_trials(recorded.load_trial_dir(os.path.join(AA_TRIALS, "known-effect")))
        for model in ("epoll", "thread-pool"):
            cpu = row(rows, model, "cpu_us_per_request")
            self.assertEqual((cpu["verdict"], cpu["n_a"], cpu["n_b"]), (stats.SLOWER, 8, 8), model)
            self.assertGreater(cpu["ci_low"], 1.0)
            # No trial was server-bound: throughput cannot tell, and is not gated.
            self.assertEqual(row(rows, model, "throughput_rps")["verdict"], comparison.NOT_GATED)
        self.assertEqual(len(comparison.gate_failures(rows)), 2)

    def test_noise_floor(self):
        trials = self.runs["shared"]
        noise = recorded.noise_floor(trials, replications=40)
        self.assertEqual(len(noise["points"]), 6)  # 2 models x 3 metrics
        for p in noise["points"]:
            self.assertEqual(p["n"], 10)
            pool = [t["metrics"][p["metric"]] for t in trials if t["model"] == p["model"]]
            self.assertAlmostEqual(p["cv"], float(np.std(pool, ddof=1) / np.mean(pool)))
            mde = p["min_detectable_effect"]
            self.assertTrue(mde is None or mde >= 0.05)  # the minimum effect is part of the rule
        self.assertEqual({(s["scenario"], s["metric"]) for s in noise["summary"]},
                         {("http-keepalive", m) for m in ("throughput_rps", "cpu_us_per_request", "p99_us")})

    def test_detect_command(self):
        out = subprocess.run([sys.executable, "-m", "serverbench.recorded", "detect",
                              os.path.join(AA_TRIALS, "shared"), "--n", "4", "8", "--replications", "20"],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(len(out.stdout.splitlines()), 4)
        self.assertIn("N=8:", out.stdout)

    def test_compare_command(self):
        with tempfile.TemporaryDirectory() as d:
            out = subprocess.run([sys.executable, "-m", "serverbench.recorded", "compare",
                                  os.path.join(AA_TRIALS, "known-effect"), "--out", d],
                                 cwd=ROOT, capture_output=True, text=True, timeout=120)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("6 rows; 2 changes (2 slower, 0 faster)", out.stdout)
            self.assertTrue(os.path.exists(os.path.join(d, "comparison.svg")))
        empty = subprocess.run([sys.executable, "-m", "serverbench.recorded", "compare", HERE + "/no-such-dir"],
                               cwd=ROOT, capture_output=True, text=True, timeout=60)
        self.assertEqual(empty.returncode, 2)


def lognormal_trials(model, n, factor, cv, seed, metric="cpu_us_per_request"):
    """n A and n B trials of one metric, log-normal with coefficient of variation cv; B x factor."""
    rng = np.random.default_rng(seed)
    sd = np.sqrt(np.log1p(cv * cv))
    return [{"model": model, "scenario": "http-keepalive", "point": "c50", "side": side, "server_bound": True,
             "metrics": {metric: 8.0 * (factor if side == "B" else 1.0) * float(np.exp(sd * rng.standard_normal()))}}
            for side in "AB" for _ in range(n)]


class RowsSayWhatTheyCanSeeTest(unittest.TestCase):
    def test_detectable_effect_is_from_each_sides_own_spread(self):
        """A real 1.5x change with 2% noise per side: pooling A and B would count the change
        as noise (CV about 20%); each side's own spread detects under 10%."""
        rows = comparison.compare_trials(lognormal_trials("m", 8, 1.5, 0.02, 1), method=FAST)
        r = row(rows, "m", "cpu_us_per_request")
        self.assertEqual(r["verdict"], stats.SLOWER)
        self.assertLess(r["min_detectable_effect"], 0.10)
        self.assertAlmostEqual(r["cv_a"], 0.02, delta=0.01)
        self.assertEqual((r["family"], r["family_confidence"]), ("gated", 1 - 0.05 / 1))
        self.assertGreater(r["family_ci_low"], 1.0)

    def test_bimodal_points_are_named_with_what_the_gate_did(self):
        trials = trials_of("mixed", "c50", 6, BASE, seed=13) + trials_of("steady", "c50", 6, BASE, seed=14)
        for t in trials[:12]:
            t["server_bound"] = t["side"] == "B"  # mixed: every B trial server-bound, no A trial
        trials += [{"model": "steady", "scenario": "http-keepalive", "point": "c50", "side": side,
                    "metrics": {"syscalls_per_request": 2.0 + 0.01 * i}, "server_bound": None}
                   for i, side in enumerate("AAAAAABBBBBB")]
        rows = comparison.compare_trials(trials, method=FAST)
        mixed = row(rows, "mixed", "throughput_rps")
        self.assertEqual((mixed["server_bound_a"], mixed["server_bound_b"], mixed["bimodal"]), (0, 6, True))
        self.assertFalse(mixed["gated"])  # half the trials server-bound: not most
        self.assertFalse(row(rows, "steady", "cpu_us_per_request")["bimodal"])
        self.assertIsNone(row(rows, "steady", "syscalls_per_request")["bimodal"])  # counting trials
        [(key, point_rows)] = power.bimodal_points(rows)
        self.assertEqual(key, ("mixed", "http-keepalive", "c50"))
        line = power.bimodal_line(key, point_rows)
        self.assertIn("server-bound in 0 of 6 A trials and 6 of 6 B trials", line)
        self.assertIn("throughput_rps not gated (not gated)", line)
        md = comparison.comparison_markdown(rows, FAST)
        self.assertIn("## Bimodal points", md)
        self.assertIn("* mixed http-keepalive c50: server-bound in 0 of 6", md)

    def test_rows_that_cannot_detect_ten_percent_are_named(self):
        trials = lognormal_trials("quiet", 8, 1.0, 0.01, 2) + lognormal_trials("loud", 8, 1.0, 0.30, 3)
        rows = comparison.compare_trials(trials, method=FAST)
        self.assertEqual([r["model"] for r in power.undetectable_rows(rows)], ["loud"])
        md = comparison.comparison_markdown(rows, FAST)
        section = md.split("## Gated rows that cannot detect a 10% change")[1].split("##")[0]
        self.assertIn("* loud http-keepalive c50 cpu_us_per_request: detects", section)
        self.assertNotIn("quiet", section)


class ResolutionTest(unittest.TestCase):
    def test_planned_gated_rows(self):
        """The gate profile: keep-alive c1 and c50 for all twelve models, close c50 for three; per
        point CPU, throughput (as if server-bound) and the two gated counts."""
        gate = sc.PROFILES["gate"]
        self.assertEqual(resolution.planned_gated_rows(sc.MODEL_ORDER, gate.scenarios, gate, 8), 108)
        self.assertEqual(resolution.planned_gated_rows(["epoll"], ["http-keepalive"], gate, 8), 8)

    def test_the_gate_runs_fewer_counting_trials(self):
        """Per point of an A/B run: the timed trials, then the profile's counting trials, each
        balanced in ABBA blocks; never more counting trials than timed ones."""
        gate = sc.PROFILES["gate"]
        for trials, counted in ((8, gate.ab_count_trials), (4, 4)):
            entries = matrix.plan_entries(["epoll"], ["http-keepalive"], gate, 1, trials)
            for label in ("c1", "c50"):
                point = [e for e in entries if e.spec.label == label]
                for count, n in ((False, trials), (True, counted)):
                    sides = [e.side for e in point if e.count == count]
                    self.assertEqual((sides.count("A"), sides.count("B")), (n, n), (label, count))

    def settings(self, trials):
        return Settings(profile="quick", repeat=1, warmup="200ms", duration="500ms", models=("epoll", "poll"),
                        scenarios=("http-keepalive",), started_at="", git_rev="x", build_dir="/tmp",
                        trials=trials, baseline_bin="/tmp")

    def test_check_logs_and_a_blind_gate_is_a_usage_error(self):
        found = resolution.check(self.settings(6), gate=True)
        self.assertTrue(found.can_call)
        self.assertEqual(found.rows, 2 * 2 * 4)
        with self.assertRaises(ab.BaselineError) as raised:  # the driver's usage error: exit 2
            resolution.check(self.settings(2), gate=True)
        self.assertIn("blind", str(raised.exception))
        self.assertFalse(resolution.check(self.settings(2), gate=False).can_call)

    def test_the_driver_exits_2_before_measuring(self):
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "bin"))
            for name in ("server-epoll", "loadgen"):
                path = os.path.join(d, "bin", name)
                with open(path, "w") as f:
                    f.write("#!/bin/sh\nexit 3\n")
                os.chmod(path, 0o755)
            code = cli.main(["--no-build", "--build-dir", d, "--baseline-bin", os.path.join(d, "bin"),
                             "--trials", "2", "--gate", "--out", os.path.join(d, "run")])
            self.assertEqual(code, 2)
            self.assertFalse(os.path.exists(os.path.join(d, "run")))


class EveryProfileCanCallTest(unittest.TestCase):
    """The arithmetic pinned: at every profile's trials per side and its largest family (all
    twelve models, its default scenarios), a 1.5x change with 3% trial CV is called `slower`
    and none of the family's A/A rows is called."""

    def test_a_large_change_is_called_and_noise_is_not(self):
        for name, n, rows in resolution.profile_families():
            with self.subTest(profile=name, trials=n, rows=rows):
                self.assertTrue(power.resolution_check(n, rows).can_call)
                trials = lognormal_trials("regressed", n, 1.5, 0.03, 1)
                for i in range(rows - 1):
                    trials += lognormal_trials(f"m{i:03}", n, 1.0, 0.03, 100 + i)
                family = comparison.compare_trials(trials, method=comparison.Method(n_resamples=199))
                self.assertEqual(sum(r["gated"] for r in family), rows)
                called = [(r["model"], r["verdict"]) for r in family if r["verdict"] != stats.NO_CHANGE]
                self.assertEqual(called, [("regressed", stats.SLOWER)])


class FalseCallRateTest(unittest.TestCase):
    """The chance that an A/A run calls any gated row, by resampling the recorded A/A trials
    (fixtures/aa-trials, shared and contended: six gated pools of 20 trials)."""

    @classmethod
    def setUpClass(cls):
        cls.pools = resolution.aa_pools()

    def test_pools(self):
        self.assertEqual([len(values) for values, _ in self.pools], [20] * 6)

    def test_at_most_five_percent_at_every_profile(self):
        """Replayed in the run's own ABBA blocks, 400 families per profile."""
        for name, n, rows in resolution.profile_families():
            with self.subTest(profile=name):
                found = power.family_false_call_rate(self.pools, n, rows, replications=400)
                self.assertLessEqual(found.rate, 0.05, found)

    def test_the_gate_even_as_if_trials_were_exchangeable(self):
        """The stress case: trials drawn with no regard to their order, so a drift between
        machine states can land on one side; the gate profile (8 a side, 108 rows) still holds."""
        gate = dict((name, (n, rows)) for name, n, rows in resolution.profile_families())["gate"]
        found = power.family_false_call_rate(self.pools, *gate, replications=400, resampling="exchangeable")
        self.assertLessEqual(found.rate, 0.05, found)


class ReportSectionTest(unittest.TestCase):
    """The report's A/B section (plots/report_findings.py) reads schema 2 and still schema 1."""

    def section(self, doc):
        from types import SimpleNamespace
        from plots.report_findings import comparison_section
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "comparison.json"), "w") as f:
                json.dump(doc, f)
            return comparison_section(SimpleNamespace(path=d))

    def test_schema_2_names_what_the_rows_cannot_see(self):
        rows = comparison.compare_trials(lognormal_trials("loud", 6, 1.0, 0.3, 4), method=FAST)
        html = self.section(comparison.comparison_document(rows, FAST))
        self.assertIn("family CI", html)
        self.assertIn("Welch&#x27;s t on log values", html)
        self.assertIn("<li>loud http-keepalive c50 cpu_us_per_request: detects", html)

    def test_schema_1_is_still_read(self):
        row_v1 = {"model": "epoll", "scenario": "http-keepalive", "point": "c50", "metric": "cpu_us_per_request",
                  "a_median": 6.9, "b_median": 9.6, "ratio": 1.386, "ci_low": 1.17, "ci_high": 1.54,
                  "p_value": 0.00016, "p_adjusted": 0.00031, "verdict": "slower", "gated": True,
                  "min_effect": 0.05, "n_a": 8, "n_b": 8}
        html = self.section({"schema": "serverbench.comparison/1", "rows": [row_v1],
                             "method": {"correction": "holm", "rank_test": "Mann-Whitney U, two-sided"},
                             "summary": {"rows": 1, "slower": 1, "faster": 0, "gate_failures": 1}})
        self.assertIn("Mann-Whitney U, two-sided", html)
        self.assertIn("1.386", html)
        self.assertIn("schema 1", html)
        self.assertNotIn("<li>epoll", html)  # no detectable effect recorded: nothing named blind


class RepeatSpreadTest(unittest.TestCase):
    def test_spread_of_a_run_folders_repeats(self):
        trials = recorded.load_repeat_dir(os.path.join(ROOT, "results", "baseline"))
        epoll = [t for t in trials if (t["model"], t["scenario"], t["point"]) == ("epoll", "http-keepalive", "c50")]
        self.assertEqual(len(epoll), 3)  # c50-r1, -r2, -r3
        lines = recorded.repeat_spread_table(trials)
        self.assertTrue(any(line.startswith("http-keepalive") for line in lines))
        self.assertTrue(all("cpu_us_per_request median cv" in line for line in lines))


class WritersTest(unittest.TestCase):
    def test_files_are_valid(self):
        trials = (trials_of("slowed", "c50", 6, BASE, {"cpu_us_per_request": 1.3}, seed=8)
                  + trials_of("steady", "c50", 6, BASE, seed=9)
                  + trials_of("steady", "c1", 6, BASE, server_bound=False, seed=10))
        rows = comparison.compare_trials(trials, method=FAST)
        noise = recorded.noise_floor(trials_of("steady", "c50", 6, BASE, seed=11), replications=20)
        with tempfile.TemporaryDirectory() as d:
            paths = comparison.write_comparison(d, rows, method=FAST, noise=noise)
            with open(paths["json"]) as f:
                doc = json.load(f)
            self.assertEqual(doc["schema"], "serverbench.comparison/2")
            self.assertEqual((doc["method"]["correction"], doc["method"]["n_resamples"]), ("holm", 1999))
            self.assertEqual(len(doc["rows"]), len(rows))
            self.assertEqual(doc["summary"]["gate_failures"], 1)
            with open(paths["md"]) as f:
                md = f.read()
            self.assertIn(f"{len(rows)} rows; 1 changes (1 slower, 0 faster); 1 gate failures", md)
            table = [line for line in md.splitlines() if line.startswith("| slowed") or line.startswith("| steady")]
            self.assertIn("**slower**", table[0])  # significant rows first
            self.assertIn("## Noise floor (A/A run)", md)
            with open(paths["png"], "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
            self.assertTrue(ET.parse(paths["svg"]).getroot().tag.endswith("svg"))

    def test_no_nan_in_json(self):
        rows = comparison.compare_trials(
            [{"model": "m", "scenario": "s", "point": "p", "side": s, "metrics": {"cpu_us_per_request": v},
              "server_bound": True} for s, v in (("A", 0.0), ("A", 0.0), ("B", 1.0), ("B", 1.0))], method=FAST)
        self.assertIsNone(rows[0]["ratio"])
        with tempfile.TemporaryDirectory() as d:
            paths = comparison.write_comparison(d, rows, method=FAST)
            with open(paths["json"]) as f:
                self.assertIsNone(json.load(f)["rows"][0]["ratio"])


if __name__ == "__main__":
    unittest.main()
