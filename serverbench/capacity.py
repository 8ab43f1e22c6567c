"""Capacity sweeps: tail latency against offered load for one model and scenario, the saturation
rate and the capacity at a latency objective: the rules, pure functions of the steps measured.
capacity_run.py measures the sweeps and writes capacity.json in the run folder.

A sweep is a closed-loop probe (closed_loop_max_rps, and where the open loop starts), then open-loop
steps chosen one at a time by `next_rate`, a pure function of the steps measured so far:

1. geometric steps (x1.6) from a fraction of the closed-loop rate, until a rate is not served;
2. a geometric bisection between the highest served rate and the lowest unserved one above it,
   down to `resolution` (the ratio of the two);
3. repeats of those two rates, so a single noisy step decides nothing (a repeat that turns the
   verdict moves the bracket, and 1-3 start again from there);
4. lower steps when fewer than `min_below` served rates lie below the saturation rate;
5. one step at about `past` x the saturation rate (the right end of the hockey stick), unless the
   top step already had errors or was the load generator's limit;
6. the same bisection and repeats around the objective's crossing (the capacity).

"Served" (the saturation rule): achieved >= 99% of offered (loadgen's own validity rule), no
errors, over UDP at most 0.1% of the datagrams lost (LOSS_LIMIT), and p50 within 2x the low-load p50 (base_p50) and not over 1 ms above it; a rate with
repeats is served when most of its repeats delivered it without errors and the interval of their
p50s does not lie wholly above that limit (one delayed repeat does not decide). The capacity rule: the p99 of a rate's repeats lies wholly at or below the
objective (stats.threshold_verdict, which for fewer than six repeats is [min, max] of them), and
over UDP most repeats lost at most 0.1% (a repeat that lost more makes it inconclusive at best).
"""
import math
from dataclasses import dataclass

from . import stats
from . import steady as steady_mod
from .stats import median
from .units import rate
from .trial import seconds_of

SCHEMA = "serverbench.capacity/1"
CONNECTIONS = 50                 # below the pools' 64 workers: every client is served at once
VALID_SHARE = 0.99               # loadgen's open-loop validity rule (docs/contract.md)
P50_GROWTH = 2.0                 # p50 within 2x its low-load value,
P50_FLOOR_US = 1000              # and at least 1 ms above it: a 100 µs scheduling delay doubles a 50 µs p50
# Saturation repeats within a step only where the steps are this fine or finer; a coarser sweep
# (quick's) says its figures are indicative.
REPEATABLE_RESOLUTION = 1.1
LATE_SHARE = 0.01                # late sends above 1% of the requests are the load generator's limit
BUSY_UTIL = 0.9                  # the server's CPU share above which it is its own limit
# Over UDP overload shows as loss, not as queueing: a rate is served, and within the objective,
# only while at most 0.1% of its datagrams are lost (the limit resperf and dnsperf use by default).
LOSS_LIMIT = 0.001


@dataclass(frozen=True)
class SweepSettings:
    """How one sweep is measured; the profiles choose these (scenarios.Profile.capacity)."""
    warmup: str = "250ms"
    duration: str = "1s"
    interval: str = "100ms"      # loadgen --interval: the steady-state check needs several
    closed_duration: str = "500ms"
    # A step lasts `duration`, longer at low rates so its p99 rests on min_samples requests, up to
    # max_duration (at 100 req/s a 1 s step has 100 samples: its p99 is its second-largest).
    min_samples: int = 1000
    max_duration: str = "3s"
    start_fraction: float = 1 / 8    # first open-loop rate, of the closed-loop rate
    factor: float = 1.6          # 1/8, 1/5, 1/3, 1/2, 4/5, 1.3 of it: five steps below a knee near it
    resolution: float = 1.1      # bisect until highest served x resolution >= lowest unserved
    repeats: int = 3             # measurements of each rate next to a knee
    past: float = 1.3
    min_below: int = 4
    max_steps: int = 24
    min_rps: int = 10
    fallback_start_rps: int = 100    # when the closed-loop probe measured nothing


@dataclass(frozen=True)
class Step:
    """One measured open-loop step (one trial)."""
    offered_rps: float
    achieved_rps: float
    p50_us: float
    p99_us: float
    p99_9_us: float = None
    duration_s: float = None      # the measured window (achieved x duration_s = requests)
    server_cpu_us_per_req: float = None
    errors: int = 0
    loadgen_bound: bool = False
    connection_bound: bool = False
    server_cpu_util: float = None
    file: str = None
    steady: dict = None
    loss_ratio: float = None      # over UDP: lost / sent (None over TCP)

    @property
    def lossy(self):
        return self.loss_ratio is not None and self.loss_ratio > LOSS_LIMIT


# ------------------------------------------------------------------ what each step says


def round_rate(x):
    """Three significant digits, so labels read as rates (2950, not 2947)."""
    if x < 1:
        return 1
    digits = int(math.floor(math.log10(x))) - 2
    return int(round(x / 10 ** digits) * 10 ** digits) if digits > 0 else int(round(x))


def connection_bound(offered, p50_us, connections):
    """connections / p50 does not exceed the offered rate: the clients, not the server, cap it."""
    return p50_us > 0 and connections / (p50_us / 1e6) <= offered


def step_seconds(cfg, rate):
    """How long a step at `rate` is measured (see SweepSettings.min_samples)."""
    return min(max(seconds_of(cfg.duration), cfg.min_samples / rate), max(seconds_of(cfg.max_duration),
                                                                          seconds_of(cfg.duration)))


def step_from_result(offered, doc, connections, file=None):
    """A Step from a loadgen result JSON (serverbench.result/1)."""
    totals, lat = doc.get("totals") or {}, doc.get("latency_us") or {}
    sat, server = doc.get("saturation") or {}, doc.get("server") or {}
    requests = totals.get("requests") or 0
    p50 = lat.get("p50") or 0
    conn_bound = connection_bound(offered, p50, connections)
    late = (doc.get("open_loop") or {}).get("late_sends") or 0
    util = sat.get("server_cpu_util")
    achieved = totals.get("throughput_rps") or 0.0
    # Late sends also come from a saturated server (every connection busy) and, a few, from timer
    # slack on a loaded machine; they make the step the load generator's limit only when the rate
    # fell short while the server had CPU to spare and the clients were free.
    late_is_loadgen = (late > LATE_SHARE * max(requests, 1) and achieved < VALID_SHARE * offered
                       and (util or 0) < BUSY_UTIL and not conn_bound)
    return Step(offered_rps=offered, achieved_rps=achieved, p50_us=p50,
                p99_us=lat.get("p99") or 0, p99_9_us=lat.get("p99_9"),
                server_cpu_us_per_req=server.get("cpu_us_per_request"),
                errors=sum((totals.get("errors") or {}).values()),
                loadgen_bound=sat.get("bound") == "loadgen" or late_is_loadgen,
                connection_bound=conn_bound, server_cpu_util=util, file=file,
                duration_s=totals.get("duration_s"),
                steady=steady_mod.steady_state(doc),
                loss_ratio=(doc.get("datagrams") or {}).get("loss_ratio"))


def by_rate(steps):
    out = {}
    for s in steps:
        out.setdefault(s.offered_rps, []).append(s)
    return dict(sorted(out.items()))


def base_p50(rates):
    """The low-load p50: the lowest of the median p50s of the three lowest rates. Noise on a shared
    machine only ever adds latency, so the lowest is the least disturbed."""
    return min(median(s.p50_us for s in group) for group in list(rates.values())[:3])


def p50_limit(base):
    """The p50 above which a rate is not served: twice the low-load p50, and at least 1 ms above it."""
    return max(P50_GROWTH * base, base + P50_FLOOR_US)


def step_delivered(s):
    """The step got its offered rate (loadgen's validity rule) without errors; one request of
    slack, since at 100 req/s for 1 s a single request straddling the window's end is 1%."""
    slack = 1 / s.duration_s if s.duration_s else 0
    return s.achieved_rps + slack >= VALID_SHARE * s.offered_rps and s.errors == 0 and not s.lossy


def step_served(s, base):
    """The saturation rule for one step."""
    return step_delivered(s) and s.p50_us <= p50_limit(base)


def rate_served(group, base):
    """A rate's repeats together: most delivered it, and their p50s are not wholly above the limit
    (stats.threshold_verdict's interval; a single step is judged on its own p50)."""
    if len(group) == 1:
        return step_served(group[0], base)
    p50 = stats.threshold_verdict([s.p50_us for s in group], p50_limit(base), "at_most").verdict
    return 2 * sum(step_delivered(s) for s in group) > len(group) and p50 != stats.FAILS


def p99_verdict(group, slo_us):
    """holds / fails / inconclusive from the interval over the repeats; a single step is judged
    on its own p99 (the planner repeats the rates that decide the capacity)."""
    p99s = [s.p99_us for s in group]
    lossy = sum(s.lossy for s in group)
    if 2 * lossy > len(group):
        return stats.FAILS          # the datagrams a p99 leaves out are the answer
    if len(p99s) == 1:
        return stats.HOLDS if p99s[0] <= slo_us else stats.FAILS
    verdict = stats.threshold_verdict(p99s, slo_us, "at_most").verdict
    return stats.INCONCLUSIVE if lossy and verdict == stats.HOLDS else verdict


# ------------------------------------------------------------------ what to measure next


@dataclass
class View:
    """The measured steps as the planner sees them."""
    rates: dict                  # offered -> [Step]
    served: dict                 # offered -> bool
    verdicts: dict               # offered -> holds|fails|inconclusive

    @staticmethod
    def of(steps, slo_us):
        rates = by_rate(steps)
        base = base_p50(rates) if rates else 0
        return View(rates, {r: rate_served(g, base) for r, g in rates.items()},
                    {r: p99_verdict(g, slo_us) for r, g in rates.items()})

    def bracket(self, ok):
        """(highest rate ok below the lowest rate not ok, that lowest rate); either may be None."""
        bad = next((r for r in self.rates if not ok(r)), None)
        good = [r for r in self.rates if ok(r) and (bad is None or r < bad)]
        return (good[-1] if good else None), bad

    def saturation_bracket(self):
        return self.bracket(lambda r: self.served[r])

    def capacity_bracket(self):
        """(highest rate that holds below the lowest that fails, the lowest rate above it that does
        not hold): an inconclusive rate is an upper end to bisect towards, never a capacity."""
        fail = next((r for r in self.rates if self.verdicts[r] == stats.FAILS), None)
        holds = [r for r in self.rates if self.verdicts[r] == stats.HOLDS and (fail is None or r < fail)]
        if not holds:
            return None, fail
        high = next((r for r in self.rates if r > holds[-1] and self.verdicts[r] != stats.HOLDS), None)
        return holds[-1], high


def first_rate(cfg, closed_rps):
    if closed_rps and closed_rps > 0:
        return max(cfg.min_rps, round_rate(closed_rps * cfg.start_fraction))
    return cfg.fallback_start_rps


def next_rate(cfg, closed_rps, steps, slo_us):
    """The next offered rate to measure, or None when the sweep is done (pure: steps in, rate out)."""
    if len(steps) >= cfg.max_steps:
        return None
    if not steps:
        return first_rate(cfg, closed_rps)
    view = View.of(steps, slo_us)
    owed = sum(max(0, cfg.repeats - len(view.rates[r])) for r in view.capacity_bracket() if r is not None)
    if cfg.max_steps - len(steps) <= owed:
        # The last steps go to the repeats that decide the capacity, so it never rests on one p99.
        return _repeat_capacity(cfg, view)
    for choose in (_ramp, _refine_saturation, _repeat_saturation, _lower, _past, _refine_capacity,
                   _repeat_capacity):
        rate = choose(cfg, view)
        if rate is not None:
            return rate
    return None


def _new(view, rate):
    """rate, unless it is already measured (then the search has converged there: None)."""
    return None if rate in view.rates else rate


def _ramp(cfg, view):
    if view.saturation_bracket()[1] is not None:
        return None
    return _new(view, round_rate(max(view.rates) * cfg.factor))


def _lower(cfg, view):
    low, bad = view.saturation_bracket()
    below = sum(1 for r in view.rates if low is not None and r < low and view.served[r])
    if below >= cfg.min_below:
        return None
    lowest = min(view.rates)
    rate = round_rate(lowest / cfg.factor)
    return _new(view, rate) if rate >= cfg.min_rps and rate < lowest else None


def _bisect(cfg, view, low, high):
    if low is None or high is None or high <= low * cfg.resolution:
        return None
    return _new(view, round_rate(math.sqrt(low * high)))


def _repeat(cfg, view, rates):
    for r in rates:
        if r is not None and len(view.rates[r]) < cfg.repeats:
            return r
    return None


def _refine_saturation(cfg, view):
    return _bisect(cfg, view, *view.saturation_bracket())


def _repeat_saturation(cfg, view):
    return _repeat(cfg, view, view.saturation_bracket())


def _past(cfg, view):
    """One step at about past x the saturation rate, unless a rate beyond the knee already reaches
    it, had errors, or was the load generator's limit (higher would measure loadgen only)."""
    low, bad = view.saturation_bracket()
    if low is None or bad is None:
        return None
    beyond = [s for r, g in view.rates.items() if r >= bad for s in g]
    if max(view.rates) >= 0.97 * cfg.past * low or any(s.errors or s.loadgen_bound for s in beyond):
        return None
    return _new(view, round_rate(cfg.past * low))


def _refine_capacity(cfg, view):
    return _bisect(cfg, view, *view.capacity_bracket())


def _repeat_capacity(cfg, view):
    return _repeat(cfg, view, view.capacity_bracket())


def run_sweep(cfg, closed_rps, slo_us, measure):
    """Measures what next_rate asks for until it says stop; measure(rate, repeat) -> Step, or None
    when the trial failed (the sweep stops there)."""
    steps = []
    while (rate := next_rate(cfg, closed_rps, steps, slo_us)) is not None:
        step = measure(rate, 1 + sum(1 for s in steps if s.offered_rps == rate))
        if step is None:
            break
        steps.append(step)
    return steps


# ------------------------------------------------------------------ what the sweep found


def _interval(values):
    """Distribution-free interval of the median (stats.spread): [min, max] below six values."""
    s = stats.spread(values)
    return [s.ci_low, s.ci_high] if s.ci_low is not None else None


def rate_record(group, base, slo_us):
    """One row of `steps`: the medians over a rate's repeats, and each repeat as a trial. A rate is
    loadgen- or connection-bound when most of its repeats are (each trial keeps its own marks)."""
    p99s = [s.p99_us for s in group]
    verdict = stats.threshold_verdict(p99s, slo_us, "at_most") if len(group) > 1 else None
    steadies = [s.steady.get("steady") for s in group if s.steady]
    return {
        "offered_rps": group[0].offered_rps, "achieved_rps": median(s.achieved_rps for s in group),
        "p50_us": median(s.p50_us for s in group), "p99_us": median(p99s),
        "p99_9_us": median(s.p99_9_us for s in group),
        "server_cpu_us_per_req": median(s.server_cpu_us_per_req for s in group),
        "errors": sum(s.errors for s in group), "loadgen_bound": 2 * sum(s.loadgen_bound for s in group) > len(group),
        "connection_bound": 2 * sum(s.connection_bound for s in group) > len(group),
        "repeats": len(group), "served": rate_served(group, base),
        "p99_verdict": p99_verdict(group, slo_us),
        "loss_ratio": median(s.loss_ratio for s in group) if group[0].loss_ratio is not None else None,
        "p99_interval_us": [verdict.ci_low, verdict.ci_high] if verdict and verdict.ci_low is not None else None,
        "achieved_interval_rps": _interval([s.achieved_rps for s in group]) if len(group) > 1 else None,
        "steady": all(steadies) if steadies and None not in steadies else None,
        "trials": [{"achieved_rps": s.achieved_rps, "p50_us": s.p50_us, "p99_us": s.p99_us,
                    "errors": s.errors, "loss_ratio": s.loss_ratio, "loadgen_bound": s.loadgen_bound,
                    "connection_bound": s.connection_bound, "file": s.file, "steady": s.steady}
                   for s in group],
    }


def _p99_text(row):
    """A rate's p99: the median, and the range of its repeats (why it did not hold) when repeated."""
    text = f"{row['p99_us'] / 1000:.2f} ms"
    iv = row["p99_interval_us"]
    return text + (f" (repeats {iv[0] / 1000:.2f} to {iv[1] / 1000:.2f} ms)" if iv else "")


def saturation_of(view, rows):
    low, bad = view.saturation_bracket()
    if low is None:
        lowest = rows[min(rows)]
        return {"saturation_rps": None, "saturation_interval_rps": None, "saturation_loadgen_bound": False,
                "saturation_text": f"none: the lowest step ({rate(lowest['offered_rps'])} offered) was not served"}
    row = rows[low]
    lg = row["loadgen_bound"] or (bad is not None and rows[bad]["loadgen_bound"])
    interval = [(row["achieved_interval_rps"] or [row["achieved_rps"]])[0], bad]
    sat = row["achieved_rps"]
    text = (f">= {rate(sat)}, load-generator bound" if lg
            else f">= {rate(sat)}, not reached in the sweep" if bad is None else rate(sat))
    return {"saturation_rps": sat, "saturation_offered_rps": low, "saturation_interval_rps": interval,
            "saturation_loadgen_bound": lg, "saturation_text": text}


def capacity_of(view, rows, slo_ms):
    low, high = view.capacity_bracket()
    if low is None:
        lowest = rows[min(rows)]
        return {"capacity_rps": None, "capacity_interval_rps": None, "capacity_p99_us": None,
                "capacity_p99_interval_us": None, "capacity_loadgen_bound": False, "capacity_repeats": 0,
                "lowest_step": {k: lowest[k] for k in ("offered_rps", "achieved_rps", "p50_us", "p99_us")},
                "capacity_text": f"none at this objective (p99 <= {slo_ms:g} ms): the lowest step, "
                                 f"{rate(lowest['offered_rps'])} offered, had p99 {_p99_text(lowest)}"}
    row = rows[low]
    lg = row["loadgen_bound"] or (high is not None and rows[high]["loadgen_bound"])
    cap = row["achieved_rps"]
    text = (f">= {rate(cap)}, load-generator bound" if lg
            else f">= {rate(cap)}, the objective held at every step" if high is None else rate(cap))
    return {"capacity_rps": cap, "capacity_offered_rps": low,
            "capacity_interval_rps": [(row["achieved_interval_rps"] or [cap])[0], high],
            "capacity_p99_us": row["p99_us"], "capacity_p99_interval_us": row["p99_interval_us"],
            "capacity_loadgen_bound": lg, "capacity_repeats": row["repeats"], "capacity_text": text}


def bound_of(view, rows):
    """What stopped the model at its knee: the load generator (at the saturation rate or the first
    unserved one), the connections (the rate was not
    served although p50 stayed near its low-load value and connections / p50 <= offered), or the
    server itself."""
    low, bad = view.saturation_bracket()
    if bad is None:
        return None
    row = rows[bad]
    if row["loadgen_bound"] or rows[low]["loadgen_bound"]:
        return "loadgen"
    if row["connection_bound"] and row["p50_us"] <= p50_limit(base_p50(view.rates)):
        return "connections"
    return "server"


def summarize(steps, slo_ms):
    """The record's figures from the measured steps (pure)."""
    if not steps:
        return {"steps": [], "saturation_rps": None, "capacity_rps": None, "bound": None,
                "saturation_text": "no step measured", "capacity_text": "no step measured"}
    slo_us = slo_ms * 1000
    view = View.of(steps, slo_us)
    base = base_p50(view.rates)
    rows = {r: rate_record(g, base, slo_us) for r, g in view.rates.items()}
    return {"steps": list(rows.values()), **saturation_of(view, rows), **capacity_of(view, rows, slo_ms),
            "bound": bound_of(view, rows)}
