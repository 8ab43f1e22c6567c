"""What a run can tell about one point: which models won and lost, and whether each difference
is beyond the run's noise.

At each point the models are ranked on the scenario's deciding figure (throughput; p99
latency for the open loop, whose throughput is fixed by design). Every model is compared with
the best one by the ratio of their medians and a seeded bootstrap interval of that ratio
(serverbench.stats.compare): a difference is beyond the noise when the interval excludes 1
and the ratio is at least the minimum practical effect away from 1. Models tied with the best
(within the noise) share the win. Points with errors or an invalid rate are not ranked: their
figures describe only the requests that were answered. With fewer than MIN_REPEATS repeats per
model the run cannot tell, and says so instead of ranking noise.
"""
from dataclasses import dataclass, field

from serverbench import stats

from . import marks

# Three repeats per side is the fewest at which a bootstrap of medians is more than a guess:
# with two, a median is the midpoint of two values and any outlier moves it.
MIN_REPEATS = 3
N_RESAMPLES = 2000


@dataclass
class Standing:
    model: str
    median: float
    ratio: float = 1.0          # median / the best's median
    ci_low: float = None
    ci_high: float = None
    beyond_noise: bool = False  # the difference from the best is beyond the run's noise


@dataclass
class PointStandings:
    scenario: str
    label: str
    metric: str                 # "rps" or "p99"
    higher_is_better: bool
    repeats: int                # the fewest repeats among the ranked models
    ranked: list = field(default_factory=list)       # [Standing], best first
    unranked: list = field(default_factory=list)     # [(model, why)]
    too_few: list = field(default_factory=list)      # [(model, median, repeats)] below MIN_REPEATS

    @property
    def can_tell(self):
        return self.repeats >= MIN_REPEATS and len(self.ranked) >= 2

    @property
    def winners(self):
        return [s.model for s in self.ranked if not s.beyond_noise]

    @property
    def losers(self):
        return [s for s in self.ranked if s.beyond_noise]


def deciding_metric(scenario):
    return ("p99", False) if scenario == "open-loop" else ("rps", True)


def point_standings(run, scenario, label):
    """Models with at least MIN_REPEATS repeats are ranked against the best of them; one with
    fewer is listed unranked with its median, since its figure cannot be told from noise."""
    metric, higher = deciding_metric(scenario)
    out = PointStandings(scenario, label, metric, higher, repeats=0)
    candidates, few = [], []
    for model in run.models:
        p = run.get(model, scenario, label)
        if p is None or p.status != "ok":
            continue
        samples = p.samples.get(metric) or []
        if marks.severity(p) == marks.BAD:
            out.unranked.append((model, marks.flag_text(p)))
        elif not samples:
            out.unranked.append((model, "no value"))
        else:
            (candidates if len(samples) >= MIN_REPEATS else few).append((model, samples))
    if len(candidates) < 2:
        candidates, few = candidates + few, []     # nothing to rank: the run cannot tell at all
    if not candidates:
        return out
    out.repeats = min(len(s) for _, s in candidates)
    candidates.sort(key=lambda c: stats.spread(c[1]).median, reverse=higher)
    best = candidates[0][1]
    for model, samples in candidates:
        out.ranked.append(_against_best(model, samples, best, out.repeats >= MIN_REPEATS))
    out.too_few = [(model, stats.spread(samples).median, len(samples)) for model, samples in few]
    return out


def _against_best(model, samples, best, enough):
    median = stats.spread(samples).median
    if not enough:
        return Standing(model, median)
    c = stats.compare(best, samples, n_resamples=N_RESAMPLES)
    beyond = (c.ratio is not None and c.ci_low is not None and (c.ci_low > 1 or c.ci_high < 1)
              and abs(c.ratio - 1) >= stats.MIN_EFFECT)
    return Standing(model, median, c.ratio, c.ci_low, c.ci_high, beyond)


def describe(ps, fmt_value):
    """One sentence list (plain text) of what the point shows."""
    what = "p99 latency, lower is better" if ps.metric == "p99" else "throughput"
    lines = []
    if not ps.ranked:
        lines.append(f"{ps.label}: no model has a clean result to rank.")
    elif not ps.can_tell:
        order = ", ".join(f"{s.model} {fmt_value(s.median)}" for s in ps.ranked)
        lines.append(f"{ps.label}: the run cannot tell — {ps.repeats} repeat(s) per model, {MIN_REPEATS} needed to "
                     f"separate a difference from noise. Medians ({what}), for the record only: {order}.")
    else:
        win = ", ".join(ps.winners)
        lead = ps.ranked[0]
        lines.append(f"{ps.label}: {'won by' if len(ps.winners) == 1 else 'a tie within the noise between'} {win} "
                     f"({what}, best median {fmt_value(lead.median)}, {ps.repeats} repeats).")
        for s in ps.ranked[1:]:
            pct = (s.ratio - 1) * 100
            band = f"{(s.ci_low - 1) * 100:+.0f}% to {(s.ci_high - 1) * 100:+.0f}%" if s.ci_low is not None else "?"
            verdict = "beyond the noise" if s.beyond_noise else "within the noise"
            lines.append(f"{s.model}: {fmt_value(s.median)}, {pct:+.1f}% vs the best (95% CI {band}), {verdict}.")
    for model, median, n in ps.too_few:
        lines.append(f"{model}: {fmt_value(median)}, not ranked ({n} repeat(s), {MIN_REPEATS} needed to tell it "
                     f"from noise).")
    for model, why in ps.unranked:
        lines.append(f"{model}: not ranked ({why}).")
    return lines
