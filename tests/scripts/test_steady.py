#!/usr/bin/env python3
"""The steady-state check (serverbench/steady.py) on scripted timeseries with known answers."""
import os
import random
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
try:
    from serverbench.steady import DRIFT_BOUND, P99_BOUND, steady_state  # noqa: E402
except ImportError as e:
    print(f"skipped: {e}")
    sys.exit(77)


def result(requests, p99s, interval_ms=100):
    """A result whose timeseries has these per-interval counts and p99s, plus a drain entry."""
    ts = [{"t_s": (i + 1) * interval_ms / 1000, "requests": r, "errors": 0, "p99_us": p}
          for i, (r, p) in enumerate(zip(requests, p99s))]
    ts.append({"t_s": (len(ts) + 1) * interval_ms / 1000, "requests": 3, "errors": 0, "p99_us": 10 * max(p99s)})
    return {"config": {"interval_ms": interval_ms}, "timeseries": ts}


class SteadyTest(unittest.TestCase):
    def test_flat_is_steady(self):
        rng = random.Random(3)
        doc = result([1000 + rng.randint(-20, 20) for _ in range(10)], [500 + rng.randint(-50, 50) for _ in range(10)])
        out = steady_state(doc)
        self.assertTrue(out["steady"], out)
        self.assertLess(abs(out["throughput_drift"]), DRIFT_BOUND)
        self.assertEqual(out["intervals"], 10)
        self.assertEqual(out["reason"], "steady")

    def test_drain_interval_is_left_out(self):
        # The drain entry (3 requests, a huge p99) would otherwise look like a collapse at the end.
        doc = result([1000] * 8, [500] * 8)
        self.assertTrue(steady_state(doc)["steady"])

    def test_throughput_drift_is_flagged(self):
        doc = result([1000 - 30 * i for i in range(10)], [500] * 10)  # -30% over the window
        out = steady_state(doc)
        self.assertFalse(out["steady"])
        self.assertLess(out["throughput_drift"], -DRIFT_BOUND)
        self.assertIn("throughput drifts", out["reason"])

    def test_p99_trend_is_flagged(self):
        # A queue that grows: p99 up fourfold over the window (an open loop past saturation).
        doc = result([1000] * 10, [500 * (1 + 0.4 * i) for i in range(10)])
        out = steady_state(doc)
        self.assertFalse(out["steady"])
        self.assertGreater(out["p99_slope"], P99_BOUND)
        self.assertIn("p99 trends", out["reason"])

    def test_a_stall_is_flagged(self):
        # Five full intervals, then nothing: the server stopped answering (no trend test sees it).
        out = steady_state(result([47_000] * 5 + [0] * 4, [5000] * 5 + [0] * 4))
        self.assertFalse(out["steady"])
        self.assertEqual(out["stalled_intervals"], 4)
        self.assertIn("stalls", out["reason"])

    def test_one_spike_is_not_a_trend(self):
        p99 = [500] * 10
        p99[6] = 20_000
        out = steady_state(result([1000] * 10, p99))
        self.assertTrue(out["steady"], out)

    def test_falling_p99_is_not_flagged(self):
        out = steady_state(result([1000] * 10, [5000 - 400 * i for i in range(10)]))
        self.assertTrue(out["steady"], out)

    def test_too_short_to_judge(self):
        out = steady_state(result([1000, 1000], [500, 500]))
        self.assertIsNone(out["steady"])
        self.assertIn("too few", out["reason"])
        self.assertIsNone(steady_state({})["steady"])

    def test_no_requests_is_not_steady_either(self):
        # Clients never served (a pool whose workers idle clients hold): nothing to judge.
        out = steady_state(result([0] * 10, [0] * 10))
        self.assertIsNone(out["steady"])
        self.assertIn("no requests", out["reason"])

    def test_interval_length_is_read(self):
        # Whole-second entries (no interval_ms): throughput per second is the count itself.
        doc = result([1000, 980, 1010, 990, 1000], [500] * 5, interval_ms=1000)
        del doc["config"]["interval_ms"]
        self.assertTrue(steady_state(doc)["steady"])


if __name__ == "__main__":
    unittest.main()
