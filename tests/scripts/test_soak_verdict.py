#!/usr/bin/env python3
"""The soak's verdict (serverbench/soak_verdict.py) on scripted soaks with known answers: memory
that leaks, memory an allocator keeps, descriptors and threads left after the drain, a p99 that
creeps up, and too few samples to say."""
import os
import random
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
try:
    from serverbench.soak_verdict import judge, judge_p99, thresholds_for  # noqa: E402
except ImportError as e:
    print(f"skipped: {e}")
    sys.exit(77)

MINUTES = 5
SOAK_S, RELOAD_S, EVERY_S = MINUTES * 60, 75, 2


def soak(memory_per_min=0.0, reload_per_min=None, fds=(40, 40), threads=(3, 3), p99_per_min=0.0, seed=1):
    """A record as soak.py writes it: PSS samples every 2 s with 64 KiB of noise, rising by
    memory_per_min over the soak and by reload_per_min (default the same) over the reload."""
    rng = random.Random(seed)
    reload_per_min = memory_per_min if reload_per_min is None else reload_per_min
    samples, level = [], 20000.0
    for t in range(EVERY_S, SOAK_S + 1, EVERY_S):
        level += memory_per_min * EVERY_S / 60
        samples.append({"t_s": t, "phase": "soak", "pss_kib": level + rng.uniform(-64, 64),
                        "loadgen_pss_kib": 9000 + rng.uniform(-32, 32)})
    for t in range(SOAK_S + 12, SOAK_S + 12 + RELOAD_S, EVERY_S):
        level += reload_per_min * EVERY_S / 60
        samples.append({"t_s": t, "phase": "reload", "pss_kib": level + rng.uniform(-64, 64),
                        "loadgen_pss_kib": 9000.0})
    intervals = [{"t_s": t, "phase": "soak", "p99_us": 1000 * (2 + p99_per_min * t / 60 + rng.uniform(0, 1))}
                 for t in range(1, SOAK_S + 1)]
    return {"soak_s": SOAK_S, "reload_s": RELOAD_S, "samples": samples, "intervals": intervals,
            "before": {"fds": fds[0], "threads": threads[0], "processes": 1},
            "after_drain": {"fds": fds[1], "threads": threads[1], "processes": 1}, "load_held": True}


class SoakVerdictTest(unittest.TestCase):
    limit = thresholds_for(MINUTES).memory_kib_per_min

    def test_a_steady_server_is_flat(self):
        v = judge(soak(), MINUTES)
        self.assertEqual(v["verdict"], "flat", v)
        self.assertEqual(v["grew"], [])
        self.assertEqual(v["loadgen"]["verdict"], "flat")
        self.assertLess(abs(v["memory"]["slope_kib_per_min"]), self.limit / 4)

    def test_memory_leaking_at_twice_the_threshold_grows(self):
        v = judge(soak(memory_per_min=2 * self.limit), MINUTES)
        self.assertEqual(v["verdict"], "grows", v)
        self.assertEqual(v["grew"], ["memory"])
        self.assertAlmostEqual(v["memory"]["slope_kib_per_min"], 2 * self.limit, delta=0.2 * self.limit)

    def test_memory_the_allocator_kept_is_reused_by_the_reload(self):
        # Growth over the soak, none in the reload: an arena that stopped growing, not a leak.
        v = judge(soak(memory_per_min=2 * self.limit, reload_per_min=0), MINUTES)
        self.assertEqual(v["memory"]["verdict"], "flat", v["memory"])
        self.assertIn("reused", v["memory"]["why"])

    def test_a_descriptor_left_per_thousand_connections_grows(self):
        v = judge(soak(fds=(40, 70)), MINUTES)
        self.assertEqual(v["verdict"], "grows")
        self.assertEqual(v["grew"], ["descriptors"])
        self.assertIn("70 after the drain against 40", v["descriptors"]["why"])

    def test_a_thread_left_behind_grows(self):
        self.assertEqual(judge(soak(threads=(3, 4)), MINUTES)["grew"], ["threads"])

    def test_fewer_after_the_drain_is_flat(self):
        self.assertEqual(judge(soak(fds=(40, 38)), MINUTES)["verdict"], "flat")

    def test_a_creeping_p99_grows(self):
        v = judge(soak(p99_per_min=2.0), MINUTES)
        self.assertEqual(v["grew"], ["p99"], v["p99"])

    def test_a_rise_whose_slope_interval_holds_zero_is_flat(self):
        # A 30 s soak, quiet for its first 18 s, then another test's load on the machine: the
        # fitted line rises more than the bound, but its slope's interval holds zero.
        rng = random.Random(136)
        intervals = [{"t_s": t, "phase": "soak",
                      "p99_us": 1000 * (0.3 + rng.random() * 0.5 if t < 18 else rng.choice([0.5, 40, 60]))}
                     for t in range(6, 30)]
        v = judge_p99(intervals, 30, thresholds_for(0.5))
        self.assertGreater(v["rise_ms"], v["bound_ms"], v)
        self.assertLessEqual(v["slope_low"], 0, v)
        self.assertEqual(v["verdict"], "flat", v)

    def test_one_slow_interval_is_not_a_trend(self):
        record = soak()
        record["intervals"][200]["p99_us"] = 100_000
        self.assertEqual(judge(record, MINUTES)["p99"]["verdict"], "flat")

    def test_too_few_samples_cannot_tell(self):
        record = soak()
        record["samples"] = record["samples"][:5]
        v = judge(record, MINUTES)
        self.assertEqual(v["verdict"], "cannot tell")
        self.assertIn("memory", v["cannot_tell"])

    def test_a_load_not_held_cannot_tell(self):
        record = dict(soak(), load_held=False)
        self.assertEqual(judge(record, MINUTES)["verdict"], "cannot tell")

    def test_shorter_soaks_have_wider_thresholds(self):
        self.assertGreater(thresholds_for(1).memory_kib_per_min, thresholds_for(10).memory_kib_per_min)


if __name__ == "__main__":
    unittest.main()
