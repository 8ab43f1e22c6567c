#!/usr/bin/env python3
"""The capacity sweep's search and stopping logic (serverbench/capacity.py), on scripted step
results: a fake measure function plays a model with a known capacity, so every decision has a
known right answer. No server, no sleeping, no timing."""
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(HERE, "fakes"))
from fake_build import make_fake_build, processes_mentioning  # noqa: E402
from fake_loadgen_curve import capacity_of  # noqa: E402
try:
    from serverbench import capacity as cap  # noqa: E402 (needs numpy and scipy through stats)
except ImportError as e:
    print(f"skipped: {e}")
    sys.exit(77)

CFG = cap.SweepSettings(repeats=3, resolution=1.1, max_steps=40)
SLO_MS = 5.0


class Model:
    """A scripted server: serves up to `capacity` req/s; p50 stays near `base_us` until close to
    it; p99 is p50 x `tail` below capacity and explodes past it (an open-loop queue). Optional:
    errors from `errors_from` req/s on, a load generator that tops out at `loadgen_max`, and a
    list of (rate, repeat) whose step is played as a one-off failure (noise)."""

    def __init__(self, capacity, base_us=100.0, tail=4.0, errors_from=None, loadgen_max=None, glitches=()):
        self.capacity, self.base_us, self.tail = capacity, base_us, tail
        self.errors_from, self.loadgen_max, self.glitches = errors_from, loadgen_max, set(glitches)
        self.calls = []

    def measure(self, rate, rep):
        self.calls.append((rate, rep))
        limit = min(self.capacity, self.loadgen_max or math.inf)
        rho = rate / self.capacity
        if rate < limit:
            achieved, p50 = float(rate), self.base_us * (1 + 0.05 * rho / (1 - rho))
            p99 = p50 * self.tail * (1 + 2 * rho / (1 - rho))
        else:
            achieved, p50 = float(limit), 50_000.0 * rho
            p99 = 4 * p50
        if (rate, rep) in self.glitches:
            achieved, p50, p99 = 0.9 * rate, 10 * self.base_us, 100_000.0
        errors = 10 if self.errors_from and rate >= self.errors_from else 0
        lg = self.loadgen_max is not None and rate >= self.loadgen_max
        return cap.Step(offered_rps=rate, achieved_rps=achieved, p50_us=p50, p99_us=p99, p99_9_us=2 * p99,
                        errors=errors, loadgen_bound=lg, duration_s=1.0,
                        connection_bound=cap.connection_bound(rate, p50, cap.CONNECTIONS))


def sweep(model, closed=None, slo_ms=SLO_MS, cfg=CFG):
    closed = model.capacity if closed is None else closed
    steps = cap.run_sweep(cfg, closed, slo_ms * 1000, model.measure)
    return steps, cap.summarize(steps, slo_ms)


def rates(steps):
    return sorted({s.offered_rps for s in steps})


def climbs_after(steps, seen):
    """True when a step after the first one for which seen(step) holds is above every rate
    measured before it: the sweep went on upwards."""
    first = next((i for i, s in enumerate(steps) if seen(s)), None)
    if first is None:
        return False
    top = max(s.offered_rps for s in steps[:first + 1])
    return any(s.offered_rps > top for s in steps[first + 1:])


class SearchTest(unittest.TestCase):
    def test_starts_low_with_four_served_steps_below_the_knee(self):
        model = Model(10_000)
        steps, rec = sweep(model)
        self.assertLessEqual(model.calls[0][0], 10_000 / 4)
        below = [r for r in rates(steps) if r < rec["saturation_offered_rps"]]
        self.assertGreaterEqual(len(below), 4)

    def test_geometric_ramp_then_refines_near_the_knee(self):
        model = Model(10_000)
        steps, rec = sweep(model)
        first = [r for r, _ in model.calls[:4]]
        ratios = [b / a for a, b in zip(first, first[1:])]
        for ratio in ratios:
            self.assertAlmostEqual(ratio, CFG.factor, delta=0.05)
        sat, bad = rec["saturation_offered_rps"], rec["saturation_interval_rps"][1]
        self.assertLessEqual(bad / sat, CFG.resolution + 0.01)
        self.assertGreater(sat, 8_000)
        self.assertLess(sat, 10_000)

    def test_knee_steps_are_repeated(self):
        steps, rec = sweep(Model(10_000))
        rows = {r["offered_rps"]: r for r in rec["steps"]}
        self.assertEqual(rows[rec["saturation_offered_rps"]]["repeats"], CFG.repeats)
        self.assertEqual(rows[rec["saturation_interval_rps"][1]]["repeats"], CFG.repeats)
        self.assertEqual(rows[rec["capacity_offered_rps"]]["repeats"], CFG.repeats)
        far = min(rows)
        self.assertEqual(rows[far]["repeats"], 1)

    def test_goes_past_the_knee_to_about_1_3x_saturation(self):
        steps, rec = sweep(Model(10_000))
        self.assertGreaterEqual(max(rates(steps)), 0.97 * CFG.past * rec["saturation_offered_rps"])
        self.assertLessEqual(max(rates(steps)), 2 * CFG.factor * rec["saturation_offered_rps"])

    def test_stops_at_errors(self):
        # Errors from just past the knee: the ramp's first failing step has them, and the past
        # step (1.3x saturation) that a clean model gets is not measured.
        model = Model(10_000, errors_from=9_500)
        steps, rec = sweep(model, cfg=cap.SweepSettings(factor=1.1, start_fraction=0.6, max_steps=40))
        self.assertTrue(any(s.errors for s in steps))
        self.assertFalse(climbs_after(steps, lambda s: s.errors))
        self.assertLess(max(rates(steps)), 0.97 * CFG.past * rec["saturation_offered_rps"])
        clean, _ = sweep(Model(10_000), cfg=cap.SweepSettings(factor=1.1, start_fraction=0.6, max_steps=40))
        self.assertGreaterEqual(max(rates(clean)), 0.97 * CFG.past * rec["saturation_offered_rps"])

    def test_stops_at_max_steps(self):
        cfg = cap.SweepSettings(max_steps=5)
        steps, _ = sweep(Model(10_000), cfg=cfg)
        self.assertEqual(len(steps), 5)

    def test_last_steps_go_to_the_capacity_repeats(self):
        # Too few steps for the whole search: the capacity still rests on repeated steps.
        for max_steps in (10, 12, 14):
            cfg = cap.SweepSettings(max_steps=max_steps)
            steps, rec = sweep(Model(10_000), cfg=cfg)
            self.assertEqual(len(steps), max_steps)
            self.assertEqual(rec["capacity_repeats"], cfg.repeats, max_steps)
            self.assertIsNotNone(rec["capacity_p99_interval_us"])

    def test_pure_same_steps_same_next_rate(self):
        steps, _ = sweep(Model(10_000))
        for k in range(len(steps)):
            self.assertEqual(cap.next_rate(CFG, 10_000, steps[:k], SLO_MS * 1000),
                             cap.next_rate(CFG, 10_000, list(steps[:k]), SLO_MS * 1000))
        self.assertIsNone(cap.next_rate(CFG, 10_000, steps, SLO_MS * 1000))

    def test_goes_lower_when_the_start_was_above_the_knee(self):
        # A closed-loop probe far above the open-loop knee: the first steps already fail.
        model = Model(1_000)
        steps, rec = sweep(model, closed=40_000)
        self.assertGreater(model.calls[0][0], 1_000)
        below = [r for r in rates(steps) if r < rec["saturation_offered_rps"]]
        self.assertGreaterEqual(len(below), 4)
        self.assertGreater(rec["saturation_rps"], 850)
        self.assertLessEqual(rec["saturation_rps"], 1_000)

    def test_no_closed_loop_rate_starts_at_the_fallback(self):
        model = Model(1_000)
        steps, rec = sweep(model, closed=None or 0)
        self.assertEqual(model.calls[0][0], CFG.fallback_start_rps)
        self.assertGreater(rec["saturation_rps"], 850)

    def test_one_glitch_at_a_low_rate_does_not_decide_saturation(self):
        clean_steps, clean = sweep(Model(10_000))
        glitch_rate = [r for r in rates(clean_steps) if r < clean["saturation_offered_rps"]][-2]
        noisy_model = Model(10_000, glitches=[(glitch_rate, 1)])
        steps, noisy = sweep(noisy_model)
        # The glitched rate was measured again, and the majority of its repeats served it.
        self.assertGreaterEqual(sum(1 for s in steps if s.offered_rps == glitch_rate), 2)
        self.assertEqual(noisy["saturation_offered_rps"], clean["saturation_offered_rps"])


class FiguresTest(unittest.TestCase):
    def test_saturation_and_capacity(self):
        steps, rec = sweep(Model(10_000))
        rows = {r["offered_rps"]: r for r in rec["steps"]}
        sat = rec["saturation_offered_rps"]
        # Saturation: the highest rate served as offered, and the next one measured is not.
        self.assertTrue(rows[sat]["served"])
        self.assertTrue(all(rows[r]["served"] for r in rows if r <= sat))
        self.assertFalse(rows[rec["saturation_interval_rps"][1]]["served"])
        self.assertEqual(rec["saturation_rps"], rows[sat]["achieved_rps"])
        self.assertEqual(rec["saturation_text"], f"{rec['saturation_rps']:,.0f} req/s")
        # Capacity: every repeat's p99 within the objective there, not at the next rate above.
        c = rec["capacity_offered_rps"]
        self.assertTrue(all(t["p99_us"] <= SLO_MS * 1000 for t in rows[c]["trials"]))
        self.assertEqual(rows[c]["p99_verdict"], "holds")
        self.assertNotEqual(rows[rec["capacity_interval_rps"][1]]["p99_verdict"], "holds")
        self.assertLessEqual(rec["capacity_p99_interval_us"][1], SLO_MS * 1000)
        self.assertLessEqual(rec["capacity_interval_rps"][1] / c, CFG.resolution + 0.01)
        self.assertLess(rec["capacity_rps"], rec["saturation_rps"])
        self.assertEqual(rec["bound"], "server")
        self.assertFalse(rec["capacity_loadgen_bound"])

    def test_capacity_matches_the_scripted_curve(self):
        # p99 = 400 us x (1 + 2 rho/(1 - rho)) x (1 + ...) crosses 5 ms at rho of about 0.85.
        model = Model(10_000)
        steps, rec = sweep(model, slo_ms=5.0)
        crossing = next(r for r in range(100, 10_000, 10) if model.measure(r, 9).p99_us > 5000)
        self.assertLessEqual(rec["capacity_offered_rps"], crossing)
        self.assertGreaterEqual(rec["capacity_offered_rps"] * CFG.resolution, crossing - 10)

    def test_none_at_this_objective(self):
        steps, rec = sweep(Model(10_000, base_us=2000), slo_ms=1.0)
        self.assertIsNone(rec["capacity_rps"])
        self.assertTrue(rec["capacity_text"].startswith("none at this objective"))
        self.assertEqual(rec["lowest_step"]["offered_rps"], min(rates(steps)))
        self.assertIn(f"{min(rates(steps)):,} req/s offered", rec["capacity_text"])
        self.assertIsNotNone(rec["saturation_rps"])

    def test_loadgen_bound_figures_are_lower_bounds(self):
        steps, rec = sweep(Model(50_000, loadgen_max=20_000), closed=20_000)
        self.assertEqual(rec["bound"], "loadgen")
        self.assertTrue(rec["saturation_loadgen_bound"])
        self.assertTrue(rec["saturation_text"].startswith(">= "))
        self.assertTrue(rec["saturation_text"].endswith("load-generator bound"))
        self.assertLess(rec["saturation_rps"], 20_000)
        # Nothing higher is measured once the load generator is the limit: it would measure it alone.
        self.assertFalse(climbs_after(steps, lambda s: s.loadgen_bound))

    def test_a_loadgen_bound_saturation_step_is_a_lower_bound(self):
        # Served at 4000 req/s, but only as fast as the load generator could send.
        def step(rate, p50, lg=False):
            return cap.Step(offered_rps=rate, achieved_rps=float(rate), p50_us=p50, p99_us=4 * p50,
                            duration_s=1.0, loadgen_bound=lg)
        steps = [step(1000, 100), step(2000, 100), step(4000, 100, lg=True), step(8000, 5000)]
        rec = cap.summarize(steps, 20.0)
        self.assertEqual(rec["saturation_offered_rps"], 4000)
        self.assertEqual(rec["saturation_text"], ">= 4,000 req/s, load-generator bound")
        self.assertEqual(rec["bound"], "loadgen")

    def test_connection_bound_marking(self):
        # 50 connections at a p50 of 1 ms carry at most 50 000 req/s.
        self.assertTrue(cap.connection_bound(50_000, 1000, 50))
        self.assertTrue(cap.connection_bound(60_000, 1000, 50))
        self.assertFalse(cap.connection_bound(40_000, 1000, 50))
        self.assertFalse(cap.connection_bound(40_000, 0, 50))

    def test_connection_bound_knee(self):
        # A pool whose p50 stays at 1.1 ms: 50 connections carry 45 000 req/s, the server more.
        model = Model(1e9, base_us=1100)

        def measure(rate, rep):
            carried = cap.CONNECTIONS / 1100e-6
            s = model.measure(rate, rep)
            if rate >= carried:
                s = cap.Step(offered_rps=rate, achieved_rps=carried, p50_us=1100, p99_us=3000, duration_s=1.0,
                             connection_bound=True)
            return s
        steps = cap.run_sweep(CFG, 40_000, 10_000, measure)
        rec = cap.summarize(steps, 10.0)
        self.assertEqual(rec["bound"], "connections")
        self.assertTrue(any(r["connection_bound"] for r in rec["steps"]))

    def test_step_from_result(self):
        doc = {"totals": {"requests": 10_000, "throughput_rps": 9_000.0, "duration_s": 1.0,
                          "errors": {"connect": 0, "timeout": 3}},
               "latency_us": {"p50": 200, "p99": 900, "p99_9": 2000},
               "server": {"cpu_us_per_request": 40.0},
               "saturation": {"bound": "neither", "server_cpu_util": 0.3},
               "open_loop": {"late_sends": 500}}
        s = cap.step_from_result(10_000, doc, 50, "points/x.json")
        self.assertEqual((s.achieved_rps, s.p50_us, s.p99_us, s.p99_9_us, s.errors), (9000.0, 200, 900, 2000, 3))
        self.assertEqual(s.server_cpu_us_per_req, 40.0)
        # Short of the rate, late sends, an idle server and free clients: the load generator's limit.
        self.assertTrue(s.loadgen_bound)
        self.assertFalse(s.connection_bound)
        # The same late sends with the rate achieved are timer slack, not a limit.
        doc["totals"]["throughput_rps"] = 10_000.0
        self.assertFalse(cap.step_from_result(10_000, doc, 50).loadgen_bound)
        # Its own CPU: loadgen says so.
        doc["saturation"]["bound"] = "loadgen"
        self.assertTrue(cap.step_from_result(10_000, doc, 50).loadgen_bound)

    def test_one_request_of_slack_in_the_validity_rule(self):
        base = 100
        ok = cap.Step(offered_rps=100, achieved_rps=98.0, p50_us=100, p99_us=400, duration_s=1.0)
        short = cap.Step(offered_rps=100, achieved_rps=97.0, p50_us=100, p99_us=400, duration_s=1.0)
        slow = cap.Step(offered_rps=100, achieved_rps=100.0, p50_us=base + 1001, p99_us=4000, duration_s=1.0)
        self.assertTrue(cap.step_served(ok, base))
        self.assertFalse(cap.step_served(short, base))
        self.assertFalse(cap.step_served(slow, base))

    def test_a_scheduling_delay_does_not_trip_the_p50_rule(self):
        """Twice a 50 µs p50 is 100 µs, one scheduling delay: the rule asks for 1 ms more too."""
        delayed = cap.Step(offered_rps=1000, achieved_rps=1000.0, p50_us=160, p99_us=900, duration_s=1.0)
        queued = cap.Step(offered_rps=1000, achieved_rps=1000.0, p50_us=2500, p99_us=9000, duration_s=1.0)
        self.assertTrue(cap.step_served(delayed, 50))
        self.assertFalse(cap.step_served(queued, 50))
        self.assertEqual(cap.p50_limit(50), 1050)
        self.assertEqual(cap.p50_limit(5000), 10000)

    def test_one_delayed_repeat_does_not_decide_a_rate(self):
        def step(p50):
            return cap.Step(offered_rps=1000, achieved_rps=1000.0, p50_us=p50, p99_us=3 * p50, duration_s=1.0)
        self.assertTrue(cap.rate_served([step(100), step(2500), step(110)], 100))
        self.assertFalse(cap.rate_served([step(2500), step(2600), step(2400)], 100))
        short = cap.Step(offered_rps=1000, achieved_rps=900.0, p50_us=100, p99_us=300, duration_s=1.0)
        self.assertFalse(cap.rate_served([short, short, step(100)], 100))

    def test_datagrams_lost_past_the_limit_are_neither_served_nor_within_the_objective(self):
        """Over UDP overload is loss: a p99 of the datagrams that came back hides it."""
        def step(loss):
            return cap.Step(offered_rps=1000, achieved_rps=1000.0 * (1 - loss), p50_us=100, p99_us=300,
                            duration_s=10.0, loss_ratio=loss)
        slo_us = 20_000
        self.assertTrue(cap.step_served(step(0.0005), 100))
        self.assertFalse(cap.step_served(step(0.005), 100))
        self.assertEqual(cap.p99_verdict([step(0.0)], slo_us), "holds")
        self.assertEqual(cap.p99_verdict([step(0.002)], slo_us), "fails")
        self.assertEqual(cap.p99_verdict([step(0.0), step(0.002), step(0.0)], slo_us), "inconclusive")
        self.assertEqual(cap.p99_verdict([step(0.002), step(0.003), step(0.0)], slo_us), "fails")
        doc = {"totals": {"requests": 9_990, "throughput_rps": 9_990.0, "duration_s": 1.0, "errors": {}},
               "latency_us": {"p50": 200, "p99": 900}, "saturation": {"bound": "neither"},
               "datagrams": {"sent": 10_000, "lost": 10, "loss_ratio": 0.001}}
        self.assertEqual(cap.step_from_result(10_000, doc, 50).loss_ratio, 0.001)
        self.assertIsNone(cap.step_from_result(10_000, {"totals": {}}, 50).loss_ratio)

    def test_a_datagram_sweep_has_steps_long_enough_for_its_loss_figure(self):
        from serverbench import capacity_run, scenarios as sc
        quick = capacity_run.sweep_settings(sc.CAPACITY_PLANS["quick"])
        udp = capacity_run.scenario_settings(quick, "udp-capacity")
        self.assertEqual(udp.min_samples, 10_000)
        self.assertEqual(cap.step_seconds(udp, 10_000), 1.0)
        self.assertIs(capacity_run.scenario_settings(quick, "capacity"), quick)
        self.assertTrue(sc.capacity_spec("udp-capacity", "rate100", 50, 100).datagrams)

    def test_round_rate(self):
        self.assertEqual([cap.round_rate(x) for x in (0.2, 12.4, 999.6, 2947, 123456)], [1, 12, 1000, 2950, 123000])


class DriverTest(unittest.TestCase):
    """./run_all.sh --scenarios capacity end to end, with the fake binaries: the fake loadgen plays
    a scripted capacity curve per model (fakes/fake_loadgen_curve.py)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="serverbench-capacity-")
        make_fake_build(cls.tmp.name, {"epoll": "ok", "thread-pool": "ok", "blocking": "ok"})
        cls.out = os.path.join(cls.tmp.name, "run")
        env = dict(os.environ, SERVERBENCH_FAKE_POINT_S="0.02")
        cls.proc = subprocess.run(
            [os.path.join(ROOT, "run_all.sh"), "--profile", "smoke", "--no-build", "--no-microbench",
             "--build-dir", os.path.join(cls.tmp.name, "build"), "--out", cls.out, "--scenarios", "capacity"],
            capture_output=True, text=True, timeout=240, env=env)
        with open(os.path.join(cls.out, "capacity.json")) as f:
            cls.doc = json.load(f)
        cls.records = {r["model"]: r for r in cls.doc["records"]}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_run_succeeds_and_leaves_nothing_running(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr[-3000:])
        self.assertEqual(processes_mentioning(self.tmp.name), [])

    def test_one_record_per_model(self):
        self.assertEqual(self.doc["schema"], "serverbench.capacity/1")
        self.assertEqual(sorted(self.records), ["blocking", "epoll", "thread-pool"])
        self.assertEqual(self.records["blocking"]["status"], "not-applicable")
        with open(os.path.join(self.out, "manifest.json")) as f:
            manifest = json.load(f)
        self.assertEqual(manifest["capacity"]["scenarios"], ["capacity"])
        self.assertEqual(manifest["scenarios"], [])  # capacity sweeps are not matrix points

    def test_curves_find_the_scripted_capacity(self):
        for model in ("epoll", "thread-pool"):
            r = self.records[model]
            cap_rps = capacity_of(model)
            self.assertEqual(r["status"], "ok", r.get("reason"))
            self.assertEqual(r["slo_p99_ms"], 20.0)
            self.assertEqual(r["connections"], 50)
            self.assertAlmostEqual(r["closed_loop_max_rps"], 0.95 * cap_rps, delta=1)
            self.assertGreaterEqual(r["saturation_rps"], 0.7 * cap_rps, model)
            self.assertLessEqual(r["saturation_rps"], cap_rps, model)
            offered = [s["offered_rps"] for s in r["steps"]]
            self.assertGreaterEqual(sum(1 for x in offered if x < r["saturation_offered_rps"]), 4)
            self.assertGreaterEqual(sum(1 for x in offered if x > r["saturation_offered_rps"]), 1)
            self.assertIsNotNone(r["capacity_rps"])
            self.assertLessEqual(r["capacity_rps"], cap_rps)
            self.assertEqual(r["bound"], "server")
            self.assertGreater(r["sweep_s"], 0)

    def test_steps_carry_the_fields_and_files(self):
        fields = ("offered_rps", "achieved_rps", "p50_us", "p99_us", "p99_9_us", "server_cpu_us_per_req",
                  "errors", "loadgen_bound", "connection_bound", "repeats")
        for model in ("epoll", "thread-pool"):
            for step in self.records[model]["steps"]:
                for key in fields:
                    self.assertIn(key, step)
                for trial in step["trials"]:
                    self.assertTrue(os.path.exists(os.path.join(self.out, trial["file"])), trial["file"])
                    self.assertTrue(trial["steady"]["steady"], trial["steady"])

    def test_charts_and_table(self):
        for name in ("capacity_capacity_latency", "capacity_capacity_bars", "timeseries_capacity_knee"):
            for ext in ("png", "svg"):
                self.assertTrue(os.path.exists(os.path.join(self.out, f"{name}.{ext}")), name)
        with open(os.path.join(self.out, "capacity.md")) as f:
            table = f.read()
        self.assertIn("| 1 |", table)
        self.assertNotIn("| blocking |", table)


class ChartsWithoutCapacityTest(unittest.TestCase):
    """A run folder without capacity.json (the committed fixture): no capacity charts, an empty
    table, and no latency-over-time charts: its series are one interval long, the point's total
    again rather than a course over time."""

    def test_fixture_run(self):
        from plots import capacity_plots
        fixture = os.path.join(HERE, "fixtures", "run-a")
        with tempfile.TemporaryDirectory() as out:
            self.assertEqual(capacity_plots.capacity_charts(fixture, out), [])
            self.assertEqual(capacity_plots.capacity_table_md(fixture), "")
            self.assertEqual(capacity_plots.timeseries_charts(fixture, out), [])


if __name__ == "__main__":
    unittest.main()
