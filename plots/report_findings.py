"""The report's sections beyond the matrix, each from its own file or computation and each saying
"not measured in this run" when the run lacks it: capacity curves and latency over time, the
A/B comparison, the models beside their production forms, the claim verdicts, the
microbenchmarks and the counted work."""
import glob
import os

from serverbench import power
from serverbench.jsonfile import read_json
from serverbench.units import per_request

from . import capacity_plots, claims, counts
from .report_html import E, NOT_MEASURED, fmt, inline_svg, model_td, table, td
from .run_results import dispatch_costs, microbench_times_us, readiness_series


def over_time_section(run, out_dir):
    parts = ["<h3>Capacity curves</h3>"]
    records = capacity_plots.load_capacity(run.path)
    if records:
        parts.append('<p class="note">Open-loop sweeps of the offered rate (docs/capacity.md): p99 and p50 '
                     'against the achieved rate with the latency objective as a line, then each model\'s '
                     'saturation and capacity at the objective with their intervals.</p>')
        for scenario in dict.fromkeys(r["scenario"] for r in records):
            parts.append(inline_svg(out_dir, f"capacity_{scenario}_latency",
                                    f"Latency against offered load, {scenario}") or "")
            parts.append(inline_svg(out_dir, f"capacity_{scenario}_bars",
                                    f"Saturation and capacity per model, {scenario}") or "")
        for block in capacity_plots.capacity_table_md(run.path).split("### ")[1:]:
            title, _, rest = block.partition("\n")
            parts.append(f"<h4>{E(title)}</h4>" + markdown_table(rest))
    else:
        parts.append(f"<p>Capacity curves: {NOT_MEASURED} (no capacity.json; the capacity scenarios were not run).</p>")
    parts.append("<h3>Latency over time</h3>")
    charts = [inline_svg(out_dir, os.path.basename(path)[:-4], "Throughput and p99 per interval, "
                         + os.path.basename(path)[len("timeseries_"):-4])
              for path in sorted(glob.glob(os.path.join(out_dir, "timeseries_*.svg")))]
    if any(charts):
        parts.append('<p class="note">Per-interval figures from the load generator at the points where they tell a '
                     'story: a drift, a stall or a warm-up that lasts shows here, not in a median. A dashed line '
                     'failed the steady-state check.</p>' + "".join(c for c in charts if c))
    else:
        parts.append(f"<p>Latency over time: {NOT_MEASURED} (no result carries a per-interval series of two "
                     f"intervals or more).</p>")
    return "\n".join(parts)


def markdown_table(text):
    """A pipe table of markdown (capacity_table_md's) as a sortable HTML table; other lines as notes."""
    rows = [line.strip().strip("|").split("|") for line in text.splitlines() if line.startswith("|")]
    notes = [line for line in text.splitlines() if line.strip() and not line.startswith("|")]
    if len(rows) < 2:
        return "".join(f"<p>{E(n)}</p>" for n in notes)
    body = [[td(cell.strip().replace("**", "")) for cell in row] for row in rows[2:]]
    return table([h.strip() for h in rows[0]], body) + "".join(f'<p class="note">{E(n)}</p>' for n in notes)


def _ab_row(r):
    def band(low, high):
        return f"{fmt(r.get(low))}–{fmt(r.get(high))}" if r.get(low) is not None else "—"
    detectable = r.get("min_detectable_effect")
    return [model_td(r.get("model", "?")), td(r.get("scenario")), td(r.get("point")), td(r.get("metric")),
            td(fmt(r.get("a_median")), r.get("a_median")), td(fmt(r.get("b_median")), r.get("b_median")),
            td(fmt(r.get("ratio")), r.get("ratio")), td(band("ci_low", "ci_high"), r.get("ci_low")),
            td(band("family_ci_low", "family_ci_high"), r.get("family_ci_low")),
            td(fmt(r.get("p_value")), r.get("p_value")), td(fmt(r.get("p_adjusted")), r.get("p_adjusted")),
            td(r.get("verdict")), td("—" if detectable is None else power.effect_text(detectable), detectable),
            td(power.bound_text(r) or "—"), td(f"{r.get('n_a')}/{r.get('n_b')}")]


def _ab_visibility(rows):
    """The gated rows that cannot detect 10%, and the bimodal points, named (schema 2 and later)."""
    if rows and "min_detectable_effect" not in rows[0]:
        return ('<p class="note">What each row could detect and which points were bimodal: not in this '
                'comparison.json (schema 1, written before rows said so).</p>')
    blind = [power.undetectable_line(r) for r in power.undetectable_rows(rows)]
    bimodal = [power.bimodal_line(key, point) for key, point in power.bimodal_points(rows)]
    parts = [f"<h4>Gated rows that cannot detect a {power.VISIBLE_EFFECT:.0%} change</h4>",
             "<ul>" + "".join(f"<li>{E(line)}</li>" for line in blind) + "</ul>" if blind else
             f"<p>None: every gated row detects a change of {power.VISIBLE_EFFECT:.0%} or less.</p>",
             "<h4>Bimodal points</h4>",
             '<p class="note">Server-bound in some trials and not in others: throughput is gated only where most '
             'trials were server-bound, CPU per request and counts as everywhere; the two regimes widen the '
             'spread, so these rows detect less.</p>',
             "<ul>" + "".join(f"<li>{E(line)}</li>" for line in bimodal) + "</ul>" if bimodal else
             "<p>None: every point's trials were all server-bound or all not.</p>"]
    return "".join(parts)


def comparison_section(run):
    doc = read_json(os.path.join(run.path, "comparison.json"))
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        return f"<p>A/B comparison: {NOT_MEASURED} (no baseline was given: <code>--baseline REV</code>).</p>"
    method = doc.get("method") or {}
    rows = [_ab_row(r) for r in doc["rows"]]
    summary = doc.get("summary") or {}
    test = method.get("test") or method.get("rank_test", "rank test")  # schema 1: the rank test decided
    text = (f'<p>{summary.get("rows", len(rows))} rows; {summary.get("slower", 0)} slower, {summary.get("faster", 0)} '
            f'faster; gate failures: {summary.get("gate_failures", 0)}. Ratio = B/A (current over baseline), '
            f'{E(str(method.get("bootstrap", "bootstrap")))} interval at {method.get("confidence", 0.95):.0%}; '
            f'the verdict: {E(str(test))}, {E(str(method.get("correction", "")))} correction over the gated rows; '
            f'the family interval is Welch\'s at the family\'s level, and "detectable" the smallest change a row '
            f'calls with {method.get("power", 0.8):.0%} power. The whole table is in comparison.md.</p>')
    fig = inline_svg(run.path, "comparison", "Ratios B/A with their confidence intervals, per model and point")
    return text + (fig or "") + table(["model", "scenario", "point", "metric", "A median", "B median", "B/A",
                                       "95% CI", "family CI", "p", "p (Holm)", "verdict", "detectable",
                                       "server-bound A · B", "n A/B"], rows) + _ab_visibility(doc["rows"])


def pairs_section(run):
    """Each model beside its production forms (serverbench/pairs.py's pairs.json)."""
    doc = read_json(os.path.join(run.path, "pairs.json"))
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        return (f"<p>Production counterparts: {NOT_MEASURED} (the run has no model together with a server "
                "file that names it as its counterpart, such as epoll and nginx: docs/references.md).</p>")
    rows = []
    for r in doc["rows"]:
        band = f"{fmt(r['ci_low'])}–{fmt(r['ci_high'])}" if r.get("ci_low") is not None else "—"
        verdict = r["verdict"] + (f" ({r['why']})" if r.get("why") else "")
        rows.append([model_td(r["model"]), model_td(r["reference"]), td(r["scenario"]), td(r["point"]),
                     td(r["title"]), td(fmt(r.get("ratio")), r.get("ratio")), td(band, r.get("ci_low")),
                     td(verdict), td(f"{r['n_model']}/{r['n_reference']}")])
    return (f'<p>Ratio production server / model of the medians of their trials, which alternate through the '
            f'run (its repeats), with the 95% bootstrap interval; at least {doc.get("min_trials")} trials a side, '
            f'else "cannot tell". What each production server does per request that the models do not: '
            f'docs/references.md.</p>'
            + table(["model", "production server", "scenario", "point", "metric", "ratio", "95% CI", "verdict",
                     "n model/production"], rows))


def claims_section(run):
    rows = []
    for claim, scenario, what, verdict in claims.verdicts(run):
        cls = "verdict-" + verdict.replace(" ", "-")
        rows.append([td(claim), td(scenario), td(what), f'<td class="{cls}">{E(verdict)}</td>'])
    rules = "".join(f"<li>{E(line)}</li>" for line in claims.RULE_LINES)
    return (table(["claim", "scenario", "measured, with the margin to each rule's threshold", "verdict"], rows)
            + f'<p class="note">{E(claims.RULES_INTRO)}</p><ul class="note">{rules}</ul>')


def microbench_section(run, out_dir):
    times = microbench_times_us(run.microbench)
    if not times:
        return f"<p>Microbenchmarks: {NOT_MEASURED} (build/bin/microbench absent or skipped).</p>"
    parts = []
    costs = dispatch_costs(times)
    if costs:
        parts.append(inline_svg(out_dir, "microbench_dispatch", "Per-connection dispatch costs") or "")
        parts.append(table(["per-connection mechanism", "µs"], [[td(label), td(fmt(us), us)] for label, us in costs]))
    series = readiness_series(times)
    if series:
        ns = sorted({n for pts in series.values() for n, _ in pts})
        parts.append(inline_svg(out_dir, "microbench_readiness", "Readiness: one call's cost against descriptors "
                                                                 "watched") or "")
        rows = [[td(mech)] + [td(fmt(dict(pts).get(n)), dict(pts).get(n)) for n in ns]
                for mech, pts in sorted(series.items())]
        parts.append(table(["one call, µs, with N descriptors"] + [f"N={n}" for n in ns], rows))
    return "\n".join(parts) or "<p>Microbenchmarks ran, but none of the families this report explains.</p>"


def counts_section(run, out_dir):
    pts = counts.counted_points(run)
    if not pts:
        return (f"<p>Counted work: {NOT_MEASURED} (no counting trial carried perf counts of system calls, context "
                f"switches or page faults per request).</p>")
    body = [[model_td(p.model), td(p.scenario), td(p.label)]
            + [td(per_request(p.counts["server"].get(k)), p.counts["server"].get(k)) for k, _ in counts.COLUMNS]
            + [td(counts.top_calls(p.counts["server"]))] for p in pts]
    return ('<p class="note">The server\'s work per request, counted with perf stat over loadgen\'s measured '
            'window in a counting trial of its own (docs/counts.md). Unlike timings, counts hardly move with the '
            'machine; they do move with load, so compare them at the same point.</p>'
            + (inline_svg(out_dir, "counts_per_request", "System calls and context switches per request") or "")
            + table(["model", "scenario", "point"] + [t for _, t in counts.COLUMNS] + ["top system calls"], body))
