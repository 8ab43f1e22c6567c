"""Is a point steady? Its per-interval throughput and p99 (the result's `timeseries`) over the run.

A point is flagged when either moves over the measured window by more than a stated bound:
* throughput drift: the Theil-Sen slope of the per-interval throughput times the window, over the
  median throughput; flagged beyond DRIFT_BOUND (10%) in either direction (a warm-up still under
  way, a stall, a leak, a neighbour starting). Its 95% interval must exclude 0 too, so one slow
  interval in a short run is not a trend.
* a stall: an interval whose throughput is below STALL_SHARE (10%) of the median interval's, a
  server that stopped answering for a while (a trend test can miss it: the median of pairwise
  slopes of 5 full and 4 empty intervals is 0);
* p99 slope: the Theil-Sen slope of the per-interval p99 times the window, over the median p99;
  flagged beyond P99_BOUND (a rise of 100% over the window) with the slope's 95% interval above 0.
  A queue that grows without bound (an open loop past saturation) shows here first.

Theil-Sen (the median of pairwise slopes) is used because one interval's p99 can be ten times its
neighbours' on this machine: a least-squares line would follow it.
The last interval is left out (it includes the drain after the window: fewer requests, the
slowest ones), so a point needs MIN_INTERVALS + 1 entries to be judged at all.
"""
import statistics

from scipy import stats as sps

DRIFT_BOUND = 0.10
STALL_SHARE = 0.10
P99_BOUND = 1.0
MIN_INTERVALS = 4
CONFIDENCE = 0.95


def _series(doc):
    """(t_s, throughput per s, p99_us) per interval, the drain interval dropped."""
    ts = doc.get("timeseries") or []
    interval_s = ((doc.get("config") or {}).get("interval_ms") or 1000) / 1000
    rows = [(e["t_s"], e.get("requests", 0) / interval_s, e.get("p99_us")) for e in ts[:-1]
            if e.get("t_s") is not None]
    return rows, interval_s


def _relative_trend(t, y, window):
    """(slope x window / median, same for the interval's low end, high end)."""
    level = statistics.median(y)
    if level <= 0 or len(set(t)) < 2:
        return 0.0, 0.0, 0.0
    slope, _, low, high = sps.theilslopes(y, t, alpha=CONFIDENCE)
    return slope * window / level, low * window / level, high * window / level


def steady_state(result_json):
    """{"steady": bool or None, "throughput_drift": fraction, "p99_slope": fraction, "reason": str}.

    throughput_drift and p99_slope are the changes over the window relative to the median
    (0.15 = up 15%). steady is None when the timeseries is too short to say."""
    rows, interval_s = _series(result_json or {})
    if len(rows) < MIN_INTERVALS:
        return {"steady": None, "throughput_drift": None, "p99_slope": None, "intervals": len(rows),
                "reason": f"{len(rows)} interval(s) before the drain: too few to judge (need {MIN_INTERVALS})"}
    if statistics.median(r[1] for r in rows) <= 0:
        return {"steady": None, "throughput_drift": None, "p99_slope": None, "intervals": len(rows),
                "reason": "no requests answered in most intervals: nothing to judge"}
    t = [r[0] for r in rows]
    window = len(rows) * interval_s
    drift, d_low, d_high = _relative_trend(t, [r[1] for r in rows], window)
    p99 = [(r[0], r[2]) for r in rows if r[2] is not None and r[1] > 0]  # an empty interval has no p99
    slope, s_low, _ = _relative_trend([x[0] for x in p99], [x[1] for x in p99], window) if len(p99) >= 2 else (0, 0, 0)
    reasons = []
    level = statistics.median(r[1] for r in rows)
    stalls = sum(1 for r in rows if r[1] < STALL_SHARE * level)
    if stalls:
        reasons.append(f"throughput stalls: {stalls} interval(s) under {STALL_SHARE:.0%} of the median")
    if abs(drift) > DRIFT_BOUND and (d_low > 0 or d_high < 0):
        reasons.append(f"throughput drifts {drift:+.0%} over the run (bound {DRIFT_BOUND:.0%})")
    if slope > P99_BOUND and s_low > 0:
        reasons.append(f"p99 trends {slope:+.0%} over the run (bound +{P99_BOUND:.0%})")
    return {"steady": not reasons, "throughput_drift": round(drift, 4), "p99_slope": round(slope, 4),
            "stalled_intervals": stalls, "intervals": len(rows), "reason": "; ".join(reasons) or "steady"}
