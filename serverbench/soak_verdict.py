"""A soak's verdict (docs/soak.md): flat, grows or cannot tell, with the figures that decide it.

Each resource is judged on its own and the verdict names the ones that grew:

* memory (the server's PSS, summed over its processes): the Theil-Sen slope over the soak's
  steady part (its first WARMUP_SHARE dropped), in KiB per minute. Memory that grows in steps (an
  arena, a hash table doubling) breaks the independence the slope's interval assumes, and an
  allocator keeps what it once took, so a slope alone does not say "leak". The reload decides:
  after the drain, a second load of the same mix runs, and memory that leaks grows again at its
  rate while memory an allocator kept is reused. Memory grows when the soak's slope is above the
  threshold and the reload grew by at least half the threshold per minute of load;
* descriptors, threads and processes: counted after the drain against before the load;
* p99: the Theil-Sen line through the keep-alive clients' per-interval p99 over the steady part:
  it grows when the line rises by more than an absolute floor and by more than a share of where
  it started (1.0: the p99 doubled), and its slope's 95% interval lies above zero, so that a
  neighbour's load arriving late in a short soak is not taken for a trend.

The thresholds depend on the soak's length (a short soak's slope is noisier): THRESHOLDS holds
them per length, measured from A/A soaks of the suite's models (docs/soak.md gives the noise).
"""
import statistics
from dataclasses import asdict, dataclass

from scipy import stats as sps

WARMUP_SHARE = 0.2           # of the soak, left out of the slopes: the allocator's and caches' growth
MIN_STEADY_SAMPLES = 8
MIN_RELOAD_SAMPLES = 3
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Thresholds:
    up_to_minutes: float          # the longest soak they hold for
    memory_kib_per_min: float     # the server's PSS slope above which memory may grow
    descriptors: int              # more open after the drain than before
    threads: int
    processes: int
    p99_rise_ms: float            # the fitted p99 rise over the steady part, at least this,
    p99_rise_share: float         # and at least this share of its fitted start
    loadgen_kib_per_min: float    # loadgen's own PSS slope


# Measured at 0.6 and 5 minutes (docs/soak.md): a longer soak's slope is less noisy, so the
# 5-minute thresholds hold, with more margin, for any longer one.
THRESHOLDS = (
    Thresholds(2.0, memory_kib_per_min=512, descriptors=2, threads=0, processes=0, p99_rise_ms=20,
               p99_rise_share=1.0, loadgen_kib_per_min=512),
    Thresholds(float("inf"), memory_kib_per_min=128, descriptors=2, threads=0, processes=0, p99_rise_ms=5,
               p99_rise_share=1.0, loadgen_kib_per_min=128),
)


def thresholds_for(minutes):
    return next(t for t in THRESHOLDS if minutes <= t.up_to_minutes)


def theil_sen(points):
    """(slope, intercept, low, high) of the Theil-Sen line through (t_s, y) points, per second."""
    t, y = zip(*points)
    return sps.theilslopes(y, t, alpha=CONFIDENCE)


def slope_per_min(points):
    """(slope, low, high) per minute of the Theil-Sen line through (t_s, y) points."""
    slope, _, low, high = theil_sen(points)
    return slope * 60, low * 60, high * 60


def steady(points, soak_s):
    return [(t, y) for t, y in points if t >= WARMUP_SHARE * soak_s]


def phase_points(samples, phase, key):
    return [(s["t_s"], s[key]) for s in samples if s["phase"] == phase and s.get(key) is not None]


def level_at_end(points, window_s):
    """(t, y) at the end of a phase: the median of its points in the last window_s (at least 3),
    one idle wave's period, so that a wave open in some samples and closed in others is no step."""
    last = [p for p in points if p[0] > points[-1][0] - window_s]
    if len(last) < 3:
        last = points[-3:]
    return points[-1][0], statistics.median(y for _, y in last)


def growth_between(earlier, later, window_s):
    """Per minute, from the end level of one phase to the end level of a later one."""
    (t0, y0), (t1, y1) = level_at_end(earlier, window_s), level_at_end(later, window_s)
    return (y1 - y0) * 60 / (t1 - t0)


def judge_memory(samples, soak_s, limit, window_s):
    soak = steady(phase_points(samples, "soak", "pss_kib"), soak_s)
    reload = phase_points(samples, "reload", "pss_kib")
    if len(soak) < MIN_STEADY_SAMPLES or len(reload) < MIN_RELOAD_SAMPLES:
        return {"verdict": "cannot tell", "why": f"{len(soak)} steady and {len(reload)} reload samples: too few"}
    slope, low, high = slope_per_min(soak)
    reload_rate = growth_between(soak, reload, window_s)
    figures = {"slope_kib_per_min": round(slope, 1), "slope_low": round(low, 1), "slope_high": round(high, 1),
               "reload_kib_per_min": round(reload_rate, 1), "threshold_kib_per_min": limit}
    if slope > limit and reload_rate >= limit / 2:
        why = (f"{slope:.0f} KiB/min over the soak and {reload_rate:.0f} KiB/min more in the reload, "
               f"both above the threshold ({limit:g} KiB/min, half of it for the reload)")
        return {"verdict": "grows", "why": why, **figures}
    if slope > limit:
        why = (f"{slope:.0f} KiB/min over the soak, but the reload grew {reload_rate:.0f} KiB/min: the memory "
               f"was kept and reused, not leaked")
    else:
        why = f"{slope:.0f} KiB/min over the soak, within {limit:g} KiB/min"
    return {"verdict": "flat", "why": why, **figures}


def judge_count(name, before, after, limit):
    if before is None or after is None:
        return {"verdict": "cannot tell", "why": f"{name} not counted"}
    grew = after - before
    verdict = "grows" if grew > limit else "flat"
    return {"verdict": verdict, "before": before, "after_drain": after, "threshold": limit,
            "why": f"{after} after the drain against {before} before the load" +
                   (f", more than {limit} up" if verdict == "grows" else "")}


def judge_p99(intervals, soak_s, th):
    points = steady([(i["t_s"], i["p99_us"] / 1000) for i in intervals
                     if i["phase"] == "soak" and i.get("p99_us")], soak_s)
    if len(points) < MIN_STEADY_SAMPLES:
        return {"verdict": "cannot tell", "why": f"{len(points)} steady intervals with a p99: too few"}
    slope, intercept, low, high = theil_sen(points)
    start = intercept + slope * points[0][0]
    rise = slope * (points[-1][0] - points[0][0])
    bound = max(th.p99_rise_ms, th.p99_rise_share * start)
    verdict = "grows" if rise > bound and low > 0 else "flat"
    return {"verdict": verdict, "slope_ms_per_min": round(slope * 60, 3), "slope_low": round(low * 60, 3),
            "slope_high": round(high * 60, 3), "start_ms": round(start, 2), "rise_ms": round(rise, 2),
            "median_p99_ms": round(statistics.median(y for _, y in points), 2), "bound_ms": round(bound, 2),
            "why": f"p99 fitted to rise {rise:.2f} ms from {start:.2f} ms over the steady part (bound {bound:.2f} ms"
                   f"{'' if low > 0 else '; its slope interval holds zero'})"}


def judge_loadgen(samples, soak_s, limit):
    points = steady(phase_points(samples, "soak", "loadgen_pss_kib"), soak_s)
    if len(points) < MIN_STEADY_SAMPLES:
        return {"verdict": "cannot tell", "why": "too few samples"}
    slope, low, high = slope_per_min(points)
    return {"verdict": "grows" if slope > limit else "flat", "slope_kib_per_min": round(slope, 1),
            "slope_low": round(low, 1), "slope_high": round(high, 1), "threshold_kib_per_min": limit}


def judge(record, minutes):
    """The verdict of one soak record (soak.py's), with its figures and thresholds."""
    th = thresholds_for(minutes)
    before, after = record.get("before") or {}, record.get("after_drain") or {}
    window_s = (record.get("plan") or {}).get("wave_every_s", 10)
    parts = {"memory": judge_memory(record["samples"], record["soak_s"], th.memory_kib_per_min, window_s),
             "descriptors": judge_count("descriptors", before.get("fds"), after.get("fds"), th.descriptors),
             "threads": judge_count("threads", before.get("threads"), after.get("threads"), th.threads),
             "processes": judge_count("processes", before.get("processes"), after.get("processes"), th.processes),
             "p99": judge_p99(record["intervals"], record["soak_s"], th)}
    grew = [name for name, part in parts.items() if part["verdict"] == "grows"]
    unsure = [name for name, part in parts.items() if part["verdict"] == "cannot tell"]
    if not record.get("load_held", True):
        unsure.append("load")
    verdict = "grows" if grew else "cannot tell" if unsure else "flat"
    return {"verdict": verdict, "grew": grew, "cannot_tell": unsure, **parts,
            "loadgen": judge_loadgen(record["samples"], record["soak_s"], th.loadgen_kib_per_min),
            "thresholds": asdict(th)}
