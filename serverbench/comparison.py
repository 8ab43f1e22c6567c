"""A/B comparison of a run's trials: one row per model x scenario x point x metric, a
verdict per row, the gate, and the files of a run folder (serverbench/recorded.py: the noise
floor of an A/A run and the command line over stored trials).

Input: trial records, one per trial (`trial_record` builds one from a result JSON):

    {"model": "epoll", "scenario": "http-keepalive", "point": "c50", "side": "A" | "B",
     "metrics": {"throughput_rps": 71000.0, "cpu_us_per_request": 6.1, "p99_us": 2100.0,
                 "syscalls_per_request": 2.05, ...},
     "server_bound": True}

Which metrics decide (`metric_policy`):
* cpu_us_per_request: lower is better, gated at every point;
* throughput_rps: higher is better, gated only at a server-bound point (more than half of the
  point's trials, A and B together, server-bound); elsewhere its row says `not gated` and
  stays out of the correction, since a loadgen-bound throughput cannot show a server change;
* any other `*_per_request` metric without `cpu` in its name is a count (system calls,
  context switches): lower is better, gated;
* p99_us and anything else: lower is better, reported with a verdict, never gated.

Each row's p-value is Welch's t-test on the log values (stats.compare). The p-values of the
gated rows are Holm-corrected as one family; the reported rows (p99...) are Holm-corrected as a
family of their own, so they cannot weaken the gate. Each row of a family also gets Welch's
interval of B/A at the family's level (1 - alpha / rows: Bonferroni, Holm's first step) and the
smallest change it could call (power.detectable_effect, from each side's own spread), and each
timed row says how many of its trials were server-bound, and whether it mixes the two (bimodal).
"""
import json
import math
import os
import zlib
from dataclasses import asdict, dataclass

from plots.comparison_chart import draw_comparison_chart
from serverbench import power, stats, units

# 2: Welch's t on log values decides (p_value); the rank test is reported (rank_p_value); the
# family interval, the detectable effect and the server-bound trials per side are new.
SCHEMA = "serverbench.comparison/2"
NOT_GATED = "not gated"
ROW_FIELDS = ["model", "scenario", "point", "metric", "a_median", "b_median", "ratio", "ci_low",
              "ci_high", "estimate", "family_ci_low", "family_ci_high", "family_confidence", "p_value",
              "rank_p_value", "p_adjusted", "verdict", "gated", "family", "min_effect", "min_detectable_effect",
              "n_a", "n_b", "cv_a", "cv_b", "server_bound_a", "server_bound_b", "bimodal"]
CHANGES = (stats.SLOWER, stats.FASTER)
# The metrics of a timed trial (trial_record); counting trials add counts (ab.GATED_COUNTS).
TIMED_METRICS = ("throughput_rps", "cpu_us_per_request", "p99_us")


@dataclass(frozen=True)
class Method:
    """How every row of a run is decided; written into comparison.json."""
    correction: str = "holm"
    alpha: float = stats.ALPHA
    confidence: float = stats.CONFIDENCE
    bootstrap: str = "percentile"
    n_resamples: int = stats.N_RESAMPLES
    seed: int = stats.DEFAULT_SEED
    rank_test: str = stats.RANK_TEST
    test: str = stats.TEST
    power: float = power.POWER


@dataclass(frozen=True)
class MetricPolicy:
    higher_is_better: bool
    gate: str            # "always", "server-bound" or "never"
    min_effect: float = stats.MIN_EFFECT


def metric_policy(metric, min_effects=None):
    """The policy of a metric name; min_effects maps metric names to their minimum effect."""
    min_effect = (min_effects or {}).get(metric, stats.MIN_EFFECT)
    if metric == "throughput_rps":
        return MetricPolicy(True, "server-bound", min_effect)
    if metric == "cpu_us_per_request":
        return MetricPolicy(False, "always", min_effect)
    if metric.endswith("_per_request") and "cpu" not in metric:
        return MetricPolicy(False, "always", min_effect)
    return MetricPolicy(False, "never", min_effect)


def can_be_gated(metric):
    """Whether a row of this metric may be gated (at some point: throughput at server-bound ones)."""
    return metric_policy(metric).gate != "never"


def trial_record(result, side, point, counts=None):
    """The trial record of one serverbench.result/1 document. `counts` adds metrics such as
    {"syscalls_per_request": 2.05}. server_bound is saturation.bound == "server": at a
    "neither" point the server was not the limit either, so its throughput is not gated."""
    if side not in ("A", "B"):
        raise ValueError("side is 'A' or 'B'")
    metrics = dict(zip(TIMED_METRICS, (result["totals"]["throughput_rps"],
                                        result.get("server", {}).get("cpu_us_per_request"),
                                        result.get("latency_us", {}).get("p99"))))
    metrics.update(counts or {})
    return {"model": result["model"], "scenario": result["scenario"], "point": point, "side": side,
            "metrics": {k: v for k, v in metrics.items() if v is not None},
            "server_bound": result.get("saturation", {}).get("bound") == "server"}


def points_of(trials):
    """(model, scenario, point) -> trials, in order of first appearance."""
    groups = {}
    for t in trials:
        if t.get("side") not in ("A", "B"):
            raise ValueError(f"trial of {t.get('model')}/{t.get('point')} has no side A or B")
        groups.setdefault((t["model"], t["scenario"], t["point"]), []).append(t)
    return groups


def metric_names(group):
    names = []
    for t in group:
        names += [m for m in t["metrics"] if m not in names]
    return names


def side_values(group, side, metric):
    """Sorted, so that the bootstrap (seeded per row) does not depend on the trials' order."""
    return sorted(float(t["metrics"][metric]) for t in group
                  if t["side"] == side and t["metrics"].get(metric) is not None)


def row_seed(seed, key):
    """A seed per row from the row's name: reproducible whatever the order of the rows."""
    return (seed + zlib.crc32("/".join(key).encode())) % 2**32


def is_gated(policy, group):
    if policy.gate == "server-bound":
        timed = [t for t in group if "throughput_rps" in t["metrics"]]
        return 2 * sum(bool(t.get("server_bound")) for t in timed) > len(timed)
    return policy.gate == "always"


def _server_bound(group, side, metric):
    """How many of a side's trials of this metric were server-bound; None when their records do
    not say (counting trials)."""
    flags = [t.get("server_bound") for t in group if t["side"] == side and t["metrics"].get(metric) is not None]
    return None if not flags or None in flags else sum(map(bool, flags))


def _bound_fields(group, metric, n_a, n_b):
    """server_bound_a/_b and bimodal: some of the row's trials server-bound, others not."""
    a, b = _server_bound(group, "A", metric), _server_bound(group, "B", metric)
    bimodal = None if a is None or b is None else 0 < a + b < n_a + n_b
    return {"server_bound_a": a, "server_bound_b": b, "bimodal": bimodal}


def _cv(values):
    return stats.spread(values).cv if len(values) > 1 else None


def _raw_rows(trials, method, min_effects):
    rows = []
    for key, group in points_of(trials).items():
        for metric in metric_names(group):
            a, b = side_values(group, "A", metric), side_values(group, "B", metric)
            if not a or not b:
                continue  # a metric only one side measured has nothing to compare
            policy = metric_policy(metric, min_effects)
            c = stats.compare(a, b, min_effect=policy.min_effect, confidence=method.confidence,
                              seed=row_seed(method.seed, key + (metric,)),
                              n_resamples=method.n_resamples)
            row = dict(dict.fromkeys(ROW_FIELDS), **dict(zip(("model", "scenario", "point"), key)),
                       metric=metric, a_median=c.a_median, b_median=c.b_median, ratio=c.ratio,
                       ci_low=c.ci_low, ci_high=c.ci_high, estimate=c.estimate, p_value=c.p_value,
                       rank_p_value=c.rank_p_value, gated=is_gated(policy, group),
                       min_effect=policy.min_effect, n_a=c.n_a, n_b=c.n_b, cv_a=_cv(a), cv_b=_cv(b),
                       **_bound_fields(group, metric, c.n_a, c.n_b))
            rows.append((row, policy, c))
    return rows


def _decide(family, name, method):
    """Holm over one family's rows, then each row's verdict, its interval at the family's level
    (1 - alpha / m, m the rows with a p-value) and the smallest change it could call."""
    adjusted = stats.holm([row["p_value"] for row, _, _ in family])
    bar = method.alpha / max(1, sum(p is not None for p in adjusted))
    for (row, policy, c), p_adj in zip(family, adjusted):
        low, high = c.welch_interval(1 - bar)
        row.update(family=name, p_adjusted=p_adj, family_ci_low=low, family_ci_high=high,
                   family_confidence=1 - bar,
                   verdict=stats.verdict(row["ratio"], c.estimate, p_adj, higher_is_better=policy.higher_is_better,
                                         min_effect=policy.min_effect, alpha=method.alpha),
                   min_detectable_effect=power.detectable_effect(
                       c.se, c.df, alpha=bar, power=method.power, min_effect=policy.min_effect) if c.on_logs else None)


def compare_trials(trials, *, method=Method(), min_effects=None):
    """Rows (dicts with ROW_FIELDS) for every model x scenario x point x metric that both
    sides measured. Gated rows are one Holm family; reported rows (never gated) another;
    throughput at a point that is not server-bound gets verdict `not gated`, no p_adjusted, no
    family interval and no detectable effect."""
    if method.correction != "holm":
        raise ValueError("the only correction is holm")
    rows = _raw_rows(trials, method, min_effects)
    families = {"gated": [], "reported": []}
    for row, policy, c in rows:
        if row["gated"]:
            families["gated"].append((row, policy, c))
        elif policy.gate == "server-bound":
            row["verdict"] = NOT_GATED
        else:
            families["reported"].append((row, policy, c))
    for name, family in families.items():
        _decide(family, name, method)
    return [row for row, _, _ in rows]


def gate_failures(rows):
    """The rows that fail a CI gate: verdict `slower` on a gated metric."""
    return [r for r in rows if r["gated"] and r["verdict"] == stats.SLOWER]


def rows_to_rerun(rows):
    """(model, scenario, point) keys of the gate failures, once each, to confirm by a rerun."""
    keys = []
    for r in gate_failures(rows):
        key = (r["model"], r["scenario"], r["point"])
        if key not in keys:
            keys.append(key)
    return keys


def confirmed_failures(rows, rerun_rows):
    """The rows of the targeted rerun that confirm a gate failure of the first comparison:
    `slower` again on the same model, scenario, point and metric. The gate fails on these."""
    first = {(r["model"], r["scenario"], r["point"], r["metric"]) for r in gate_failures(rows)}
    return [r for r in gate_failures(rerun_rows) if (r["model"], r["scenario"], r["point"], r["metric"]) in first]


# ------------------------------------------------------------------------- writers


def _effect_order(row):
    significant = row["verdict"] in CHANGES
    size = abs(math.log(row["ratio"])) if row["ratio"] else -1.0
    return (not significant, -size, row["model"], row["scenario"], row["point"], row["metric"])


def _header(rows, method):
    slower = sum(r["verdict"] == stats.SLOWER for r in rows)
    faster = sum(r["verdict"] == stats.FASTER for r in rows)
    gated = sum(r["gated"] for r in rows)
    failing = len(gate_failures(rows))
    return (f"{len(rows)} rows; {slower + faster} changes ({slower} slower, {faster} faster); "
            f"{failing} gate failures. {method.test}, Holm correction over the {gated} gated rows "
            f"(the {len(rows) - gated} others: a family of their own, or not gated), alpha {method.alpha}; "
            f"family intervals: Welch's, of B/A on log values, at 1 - alpha / the family's rows; "
            f"{method.confidence:.0%} {method.bootstrap} bootstrap intervals of the ratio of medians "
            f"({method.n_resamples} resamples, seed {method.seed}); {method.rank_test}; detectable: the "
            f"smallest change a row calls with {method.power:.0%} power at its family's bar, from each "
            f"side's own spread.")


def _interval(low, high):
    return units.NONE if low is None else f"{units.ratio(low)}–{units.ratio(high)}"


def _row_line(r):
    verdict = f"**{r['verdict']}**" if r["verdict"] in CHANGES else r["verdict"]
    detectable = r["min_detectable_effect"]
    cells = [r["model"], r["scenario"], r["point"], r["metric"], units.number(r["a_median"]),
             units.number(r["b_median"]), units.ratio(r["ratio"]), _interval(r["ci_low"], r["ci_high"]),
             _interval(r["family_ci_low"], r["family_ci_high"]), units.p_value(r["p_value"]),
             units.p_value(r["p_adjusted"]), units.p_value(r["rank_p_value"]), verdict,
             "yes" if r["gated"] else "no", units.NONE if detectable is None else power.effect_text(detectable),
             power.bound_text(r) or units.NONE, f"{r['n_a']}/{r['n_b']}"]
    return "| " + " | ".join(cells) + " |"


def _visibility_lines(rows):
    """The gated rows that cannot see a 10% change, and the bimodal points, each named."""
    blind = power.undetectable_rows(rows)
    lines = ["", f"## Gated rows that cannot detect a {power.VISIBLE_EFFECT:.0%} change", ""]
    lines += ([f"* {power.undetectable_line(r)}" for r in blind]
              or [f"None: every gated row detects a change of {power.VISIBLE_EFFECT:.0%} or less."])
    lines += ["", "## Bimodal points", "",
              "Points server-bound in some trials and not in others. Their throughput is gated only when "
              "most of their trials were server-bound, CPU per request and counts as everywhere; the two "
              "regimes widen the spread, so their rows detect less (below, and the column `detectable`).", ""]
    return lines + ([f"* {power.bimodal_line(key, point)}" for key, point in power.bimodal_points(rows)]
                    or ["None: every point's trials were all server-bound or all not."])


def _noise_lines(noise):
    lines = ["", "## Noise floor (A/A run)", "",
             f"Spread of the same code on both sides, and the smallest effect each point's verdict "
             f"rule calls with {noise['power']:.0%} power at its N (resampled trials, "
             f"{noise['replications']} replications, Holm bar for {noise['family_rows']} gated rows).",
             "", "| scenario | metric | points | median CV | max CV | median detectable | max detectable |",
             "|---|---|---:|---:|---:|---:|---:|"]
    pct = units.percent
    beyond = f"> {noise['max_effect']:.0%}"

    def mde(x):
        return beyond if x is None else units.percent(x)

    for s in noise["summary"]:
        lines.append(f"| {s['scenario']} | {s['metric']} | {s['points']} | {pct(s['median_cv'])} "
                     f"| {pct(s['max_cv'])} | {mde(s['median_min_detectable_effect'])} "
                     f"| {mde(s['max_min_detectable_effect'])} |")
    lines += ["", "| model | scenario | point | metric | n | CV | detectable |", "|---|---|---|---|---:|---:|---:|"]
    for p in noise["points"]:
        lines.append(f"| {p['model']} | {p['scenario']} | {p['point']} | {p['metric']} | {p['n']} "
                     f"| {pct(p['cv'])} | {mde(p['min_detectable_effect'])} |")
    return lines


def comparison_markdown(rows, method=Method(), noise=None):
    lines = ["# A/B comparison", "", _header(rows, method), "",
             "Ratio is B/A (current over baseline). A change is called only when the Holm-corrected "
             "p-value (Welch's t on log values) is below alpha, the ratio of medians is at least the "
             "metric's minimum effect away from 1 and Welch's estimate is on the same side. Every row "
             "whose family interval excludes 1 is called (given the minimum effect). Bound: trials "
             "server-bound, A · B. Significant rows first, then by effect size.", "",
             "| model | scenario | point | metric | A median | B median | B/A | 95% CI | family CI | p "
             "| p (Holm) | p (rank) | verdict | gated | detectable | bound | n A/B |",
             "|---|---|---|---|---:|---:|---:|---|---|---:|---:|---:|---|---|---:|---|---|"]
    lines += [_row_line(r) for r in sorted(rows, key=_effect_order)]
    lines += _visibility_lines(rows)
    if noise is not None:
        lines += _noise_lines(noise)
    return "\n".join(lines) + "\n"


def _json_safe(x):
    """Strict JSON: no NaN or infinity (they become null)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def comparison_document(rows, method=Method(), noise=None):
    doc = {"schema": SCHEMA, "method": asdict(method),
           "summary": {"rows": len(rows), "gated_rows": sum(r["gated"] for r in rows),
                       "slower": sum(r["verdict"] == stats.SLOWER for r in rows),
                       "faster": sum(r["verdict"] == stats.FASTER for r in rows),
                       "gate_failures": len(gate_failures(rows)),
                       "families": {name: sum(r.get("family") == name for r in rows) for name in ("gated", "reported")},
                       "undetectable_rows": len(power.undetectable_rows(rows)),
                       "bimodal_points": len(power.bimodal_points(rows))},
           "rows": [{k: r.get(k) for k in ROW_FIELDS} for r in rows]}
    if noise is not None:
        doc["noise_floor"] = noise
    return _json_safe(doc)


def write_comparison(run_dir, rows, *, method=Method(), noise=None):
    """Writes comparison.json, comparison.md, comparison.png and comparison.svg into run_dir
    (noise: the `noise_floor` of an A/A run, added as its own section; the chart is
    plots/comparison_chart.py's). Returns the paths."""
    os.makedirs(run_dir, exist_ok=True)
    paths = {ext: os.path.join(run_dir, f"comparison.{ext}") for ext in ("json", "md", "png", "svg")}
    with open(paths["json"], "w") as f:
        json.dump(comparison_document(rows, method, noise), f, indent=1, allow_nan=False)
        f.write("\n")
    with open(paths["md"], "w") as f:
        f.write(comparison_markdown(rows, method, noise))
    draw_comparison_chart(rows, paths["png"], paths["svg"], not_gated=NOT_GATED)
    return paths
