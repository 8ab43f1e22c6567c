"""Each textbook model beside its production forms: for every server file whose `counterpart` is a
model of the run (prefork and apache-prefork, epoll and nginx, ...), at every point both served,
the ratio production / model of throughput and of server CPU per request, with its interval
from the statistics module (stats.compare: bootstrap of the ratio of medians).

The trials are the run's repeats, which are whole passes over the matrix: a model's trial and its
counterpart's alternate through the run, so drift lands on both as in an A/B run's interleaved
trials. Fewer than MIN_TRIALS a side cannot give an interval worth reading: such a pair says
"cannot tell" and how many repeats it needs. Writes pairs.json and pairs.md into the run folder.
"""
import os

from . import stats
from .jsonfile import read_json, write_json

MIN_TRIALS = 6
METRICS = (("throughput_rps", "throughput"), ("cpu_us_per_request", "server CPU per request"))
SCHEMA = "serverbench.pairs/1"


def pairs_of(models, server_files):
    """[(model, production server)] of the run, in the run's model order."""
    counterpart = {f.name: f.counterpart for f in server_files}
    return [(model, ref) for model in models for ref in models if counterpart.get(ref) == model]


def trial_values(run_path, points):
    """{(model, scenario, point): {metric: [values]}} of the run's ok timed trials."""
    out = {}
    for p in points:
        if p.get("kind") == "count" or p.get("side") or p["status"] != "ok" or not p.get("file"):
            continue
        doc = read_json(os.path.join(run_path, p["file"])) or {}
        values = {"throughput_rps": (doc.get("totals") or {}).get("throughput_rps"),
                  "cpu_us_per_request": (doc.get("server") or {}).get("cpu_us_per_request")}
        slot = out.setdefault((p["model"], p["scenario"], p["point"]), {})
        for metric, value in values.items():
            if value:
                slot.setdefault(metric, []).append(value)
    return out


def pair_rows(run_dir, models, server_files, seed=1):
    """One row per pair, point and metric both sides measured."""
    values = trial_values(run_dir.path, run_dir.points())
    rows = []
    for model, ref in pairs_of(models, server_files):
        for (m, scenario, point), mine in values.items():
            theirs = values.get((ref, scenario, point)) if m == model else None
            for metric, title in METRICS if theirs else ():
                a, b = mine.get(metric, []), theirs.get(metric, [])
                if a and b:
                    rows.append(row(model, ref, scenario, point, metric, title, a, b, seed))
    return rows


def row(model, ref, scenario, point, metric, title, a, b, seed):
    base = {"model": model, "reference": ref, "scenario": scenario, "point": point, "metric": metric,
            "title": title, "n_model": len(a), "n_reference": len(b), "ratio": None, "ci_low": None,
            "ci_high": None}
    if min(len(a), len(b)) < MIN_TRIALS:
        return {**base, "verdict": "cannot tell",
                "why": f"{min(len(a), len(b))} trial(s) a side; pairs need {MIN_TRIALS} (--repeat {MIN_TRIALS})"}
    c = stats.compare(a, b, min_effect=0.0, seed=seed)
    if c.ci_low is None or c.ci_high is None:
        return {**base, "ratio": c.ratio, "verdict": "cannot tell", "why": "no interval"}
    verdict = ("no difference detected" if c.ci_low <= 1 <= c.ci_high else
               f"{ref} {'higher' if c.ci_low > 1 else 'lower'}")
    return {**base, "ratio": c.ratio, "ci_low": c.ci_low, "ci_high": c.ci_high, "verdict": verdict, "why": None}


def markdown(rows):
    lines = ["# The models beside their production forms", "",
             "Ratio production server / model, median of each side's trials, with the 95% bootstrap interval.",
             "", "| model | production server | scenario | point | metric | ratio | interval | verdict |",
             "|---|---|---|---|---|---:|---|---|"]
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "–"
        interval = f"{r['ci_low']:.2f}–{r['ci_high']:.2f}" if r["ci_low"] is not None else "–"
        verdict = r["verdict"] + (f" ({r['why']})" if r["why"] else "")
        lines.append(f"| {r['model']} | {r['reference']} | {r['scenario']} | {r['point']} | {r['title']} | "
                     f"{ratio} | {interval} | {verdict} |")
    return "\n".join(lines) + "\n"


def write_pairs(run_dir, models, server_files, seed=1):
    """pairs.json and pairs.md of the run (nothing when it has no pair); returns the markdown."""
    rows = pair_rows(run_dir, models, server_files, seed)
    if not rows:
        return None
    write_json(os.path.join(run_dir.path, "pairs.json"), {"schema": SCHEMA, "min_trials": MIN_TRIALS, "rows": rows})
    text = markdown(rows)
    with open(os.path.join(run_dir.path, "pairs.md"), "w") as f:
        f.write(text)
    return text
