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

The p-values of the gated rows are Holm-corrected as one family; the reported rows (p99...)
are Holm-corrected as a family of their own, so they cannot weaken the gate.
"""
import json
import math
import os
import zlib
from dataclasses import asdict, dataclass

from plots.comparison_chart import draw_comparison_chart
from serverbench import stats, units

SCHEMA = "serverbench.comparison/1"
NOT_GATED = "not gated"
ROW_FIELDS = ["model", "scenario", "point", "metric", "a_median", "b_median", "ratio", "ci_low",
              "ci_high", "p_value", "p_adjusted", "verdict", "gated", "min_effect", "n_a", "n_b"]
CHANGES = (stats.SLOWER, stats.FASTER)


@dataclass(frozen=True)
class Method:
    """How every row of a run is decided; written into comparison.json."""
    correction: str = "holm"
    alpha: float = stats.ALPHA
    confidence: float = stats.CONFIDENCE
    bootstrap: str = "percentile"
    n_resamples: int = stats.N_RESAMPLES
    seed: int = stats.DEFAULT_SEED
    rank_test: str = "Mann-Whitney U, two-sided"


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


def trial_record(result, side, point, counts=None):
    """The trial record of one serverbench.result/1 document. `counts` adds metrics such as
    {"syscalls_per_request": 2.05}. server_bound is saturation.bound == "server": at a
    "neither" point the server was not the limit either, so its throughput is not gated."""
    if side not in ("A", "B"):
        raise ValueError("side is 'A' or 'B'")
    metrics = {"throughput_rps": result["totals"]["throughput_rps"],
               "cpu_us_per_request": result.get("server", {}).get("cpu_us_per_request"),
               "p99_us": result.get("latency_us", {}).get("p99")}
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
            row = dict(zip(("model", "scenario", "point"), key), metric=metric,
                       a_median=c.a_median, b_median=c.b_median, ratio=c.ratio, ci_low=c.ci_low,
                       ci_high=c.ci_high, p_value=c.p_value, p_adjusted=None, verdict=None,
                       gated=is_gated(policy, group), min_effect=policy.min_effect,
                       n_a=c.n_a, n_b=c.n_b)
            rows.append((row, policy))
    return rows


def compare_trials(trials, *, method=Method(), min_effects=None):
    """Rows (dicts with ROW_FIELDS) for every model x scenario x point x metric that both
    sides measured. Gated rows are one Holm family; reported rows (never gated) another;
    throughput at a point that is not server-bound gets verdict `not gated`, no p_adjusted."""
    if method.correction != "holm":
        raise ValueError("the only correction is holm")
    rows = _raw_rows(trials, method, min_effects)
    families = {"gated": [], "reported": []}
    for row, policy in rows:
        if row["gated"]:
            families["gated"].append((row, policy))
        elif policy.gate == "server-bound":
            row["verdict"] = NOT_GATED
        else:
            families["reported"].append((row, policy))
    for family in families.values():
        adjusted = stats.holm([row["p_value"] for row, _ in family])
        for (row, policy), p_adj in zip(family, adjusted):
            row["p_adjusted"] = p_adj
            row["verdict"] = stats.verdict(row["ratio"], row["ci_low"], row["ci_high"], p_adj,
                                           higher_is_better=policy.higher_is_better,
                                           min_effect=policy.min_effect, alpha=method.alpha)
    return [row for row, _ in rows]


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
            f"{failing} gate failures. Holm correction over the {gated} gated rows "
            f"(the {len(rows) - gated} others: a family of their own, or not gated), "
            f"alpha {method.alpha}; {method.confidence:.0%} {method.bootstrap} bootstrap "
            f"intervals of the ratio of medians ({method.n_resamples} resamples, seed "
            f"{method.seed}); {method.rank_test}.")


def _row_line(r):
    ci = units.NONE if r["ci_low"] is None else f"{units.ratio(r['ci_low'])}–{units.ratio(r['ci_high'])}"
    verdict = f"**{r['verdict']}**" if r["verdict"] in CHANGES else r["verdict"]
    return (f"| {r['model']} | {r['scenario']} | {r['point']} | {r['metric']} | {units.number(r['a_median'])} "
            f"| {units.number(r['b_median'])} | {units.ratio(r['ratio'])} | {ci} | {units.p_value(r['p_value'])} "
            f"| {units.p_value(r['p_adjusted'])} | {verdict} | {'yes' if r['gated'] else 'no'} "
            f"| {r['n_a']}/{r['n_b']} |")


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
             "Ratio is B/A (current over baseline). A change is called only when the interval "
             "excludes 1, the ratio is at least the metric's minimum effect away from 1 and the "
             "corrected p-value is below alpha. Significant rows first, then by effect size.", "",
             "| model | scenario | point | metric | A median | B median | B/A | CI | p | p (Holm) "
             "| verdict | gated | n A/B |",
             "|---|---|---|---|---:|---:|---:|---|---:|---:|---|---|---|"]
    lines += [_row_line(r) for r in sorted(rows, key=_effect_order)]
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
                       "gate_failures": len(gate_failures(rows))},
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
