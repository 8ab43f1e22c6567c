"""The report's sections on the matrix: the headline (each scenario at its busiest point), how to
read the charts, and one section per scenario: what it tests, what this run shows (who won and
lost beyond the noise, standings.py), its chart and its table."""
from serverbench.scenarios import SCENARIO_ABOUT, SCENARIO_TITLES

from . import marks, standings
from .report_html import E, NOT_MEASURED, flags_td, fmt, inline_svg, marker_name, model_td, table, td, value_cell


def deciding(scenario):
    metric, _ = standings.deciding_metric(scenario)
    if metric == "p99":
        return (lambda p: p.latency.get("p99")), "p99", "µs", "p99 latency"
    return (lambda p: p.rps), "rps", "", "req/s"


def headline_section(run, out_dir):
    cols = [(s, run.busiest_label(s)) for s in run.scenarios()]
    if not cols:
        return "<p>No matrix points in this run: its results are the sections below.</p>"
    headers = ["model"] + [f"{s} {label} ({deciding(s)[3]})" for s, label in cols]
    rows = []
    for model in run.models:
        cells = [model_td(model)]
        for s, label in cols:
            value, metric, unit, _ = deciding(s)
            cells.append(value_cell(run.get(model, s, label), value, metric, unit))
        rows.append(cells)
    fig = inline_svg(out_dir, "throughput_vs_connections",
                     "HTTP keep-alive: throughput and p99 latency as clients grow")
    return (f'<p class="note">Each scenario at its busiest point: throughput (higher is better), and p99 latency '
            f'for the open loop (lower is better). {E(marks.spread_note())} ⚠: errors, missing connections or a '
            f'missed rate; ▨: the load generator was the bottleneck (hover for details; the scenario tables say it '
            f'in full; see <a href="#reading">how to read</a>).</p>' + table(headers, rows) + (fig or ""))


def scenario_section(run, scenario, out_dir):
    about = SCENARIO_ABOUT.get(scenario) or SCENARIO_TITLES.get(scenario, "")
    parts = [f"<h3>What it tests</h3><p>{E(about)}</p>",
             "<h3>What this run shows</h3>"]
    value, _, unit, _ = deciding(scenario)
    for label in run.labels(scenario):
        ps = standings.point_standings(run, scenario, label)
        lines = standings.describe(ps, lambda v: fmt(v, unit if ps.metric == "p99" else " req/s"))
        cls = "tell can-tell" if ps.can_tell else "tell cannot-tell"
        parts.append(f'<ul class="{cls}" data-point="{E(label)}">'
                     + "".join(f"<li>{E(line)}</li>" for line in lines) + "</ul>")
    parts.append(inline_svg(out_dir, f"scenario_{scenario}", SCENARIO_TITLES.get(scenario, scenario))
                 or f"<p>{NOT_MEASURED}: no chart.</p>")
    parts.append(scenario_table(run, scenario))
    return "\n".join(parts)


def scenario_table(run, scenario):
    headers = ["model", "point", "req/s", "p50", "p99", "server CPU µs/req", "peak RSS MiB", "threads / processes",
               "bound", "notes"]
    rows = []
    for p in sorted(run.scenario_points(scenario), key=lambda p: (run.models.index(p.model), p.idle, p.connections)):
        notes = "; ".join(x for x in (marks.flag_text(p), p.reason) if x)
        rows.append([model_td(p.model), td(p.label, p.connections + p.idle),
                     value_cell(p, lambda q: q.rps, "rps"),
                     value_cell(p, lambda q: q.latency.get("p50"), "p50", "µs"),
                     value_cell(p, lambda q: q.latency.get("p99"), "p99", "µs"),
                     value_cell(p, lambda q: q.server_cpu_us_per_req, "cpu"),
                     td(fmt((p.peak_rss_kib or 0) / 1024) if p.status == "ok" else "—", (p.peak_rss_kib or 0) / 1024),
                     td(f"{int(p.peak_threads or 0)} / {int(p.peak_processes or 0)}" if p.status == "ok" else "—",
                        max(p.peak_threads or 0, p.peak_processes or 0)),
                     td(p.bound or "—"), flags_td(p, notes)])
    return table(headers, rows)


def reading_section(run):
    rows = [[model_td(m), td(marks.model_style(m)["color"]), td(marker_name(marks.model_style(m)["marker"])),
             td({"-": "solid", "--": "dashed", "-.": "dash-dot", ":": "dotted"}[marks.model_style(m)["linestyle"]])]
            for m in run.models]
    return (table(["model", "colour", "marker", "line"], rows) +
            "<ul>"
            "<li>Every model keeps its colour, marker and line style in every chart; colours are Okabe-Ito and Tol "
            "(told apart with colour-blindness), and the markers tell them apart in grayscale print.</li>"
            "<li><b>Hollow</b> (white fill, dashed outline) with a red label: the load generator counted errors, "
            "fewer connections were established than asked, or an open-loop run missed its rate. Its latency covers "
            "only the answered requests, so it is never ranked as a win.</li>"
            "<li><b>Hatched</b>: the load generator was the bottleneck; the figure is a floor of the server's "
            "capacity, not its limit.</li>"
            "<li><b>Whiskers</b> and [brackets]: the spread of the median over the repeats. "
            + E(marks.spread_note()) + "</li>"
            "<li>n/a: not applicable to the model; failed: the server failed to start or died; unsupported: the "
            "kernel refused the mechanism; —: not run.</li></ul>")
