"""report.html: one self-contained file per run, the charts inline.

`write_report(run, out_dir)` reads the SVG charts that `python3 -m plots` has just drawn into
out_dir, and the run's other files (comparison.json, capacity.json), and writes
out_dir/report.html: the CSS inline (report.css, beside this file), charts inline as SVG (their
text drawn as paths, so no font is fetched), a few lines of plain JavaScript inline that make
the tables sortable (report.js), nothing loaded from the network. With JavaScript off every
table is already in a sensible order.

Sections: the run; the headline table; one section per scenario (what it tests, what this run
shows, chart, table); capacity and latency over time; the A/B comparison; the claim verdicts;
the microbenchmarks; counted work. A section whose data the run lacks says so.
"""
import glob
import html
import os
import re
from importlib import resources

from serverbench.jsonfile import read_json
from serverbench.scenarios import SCENARIO_ABOUT, SCENARIO_TITLES

from . import capacity_plots, claims, counts, marks, standings
from .run_results import dispatch_costs, microbench_times_us, readiness_series


E = html.escape
NOT_MEASURED = "not measured in this run"


def page_asset(name):
    """The text of a file of this package that the page inlines: report.css, its style (screen
    and print), and report.js, which sorts a table by the clicked column (numbers by data-v, a
    cell's raw value, text otherwise; a second click reverses; without JavaScript the tables
    keep their printed order)."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


# ---------------------------------------------------------------------------- small pieces

def fmt(v, unit=""):
    if v is None:
        return "—"
    if unit == "µs":
        return f"{v / 1000:,.2f} ms" if v >= 1000 else f"{v:,.0f} µs"
    if abs(v) >= 100:
        return f"{v:,.0f}{unit}"
    return f"{v:,.3g}{unit}"


def value_cell(p, value, metric, unit=""):
    """A table cell: the median, its spread in brackets, and the point's flags."""
    if p is None:
        return '<td class="num">—</td>'
    if p.status != "ok":
        return f'<td class="num" title="{E(p.reason or "")}">{E(p.status)}</td>'
    v = value(p)
    span = marks.interval(p.samples.get(metric)) if metric else None
    text = E(fmt(v, unit))
    if span:
        text += f' <span class="spread">[{E(fmt(span[0], unit))}–{E(fmt(span[1], unit))}]</span>'
    kind = marks.severity(p)
    if kind:
        cls = "flag-bad" if kind == marks.BAD else "flag-bound"
        text += f' <span class="{cls}" title="{E(marks.flag_text(p))}">{"⚠" if kind == marks.BAD else "▨"}</span>'
    return f'<td class="num" data-v="{"" if v is None else v}">{text}</td>'


def flags_td(p, notes):
    kind = marks.severity(p)
    cls = {marks.BAD: "notes flag-bad", marks.BOUND: "notes flag-bound"}.get(kind, "notes")
    return f'<td class="{cls}">{E(notes)}</td>'


def table(headers, rows, cls="sortable"):
    """rows: lists of ready-made <td> strings."""
    head = "".join(f"<th>{E(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    return (f'<div class="wrap"><table class="{cls}"><thead><tr>{head}</tr></thead>'
            f'<tbody>\n{body}\n</tbody></table></div>')


def td(text, v=None):
    return f'<td data-v="{v}">{E(str(text))}</td>' if v is not None else f"<td>{E(str(text))}</td>"


def model_td(model):
    st = marks.model_style(model)
    return (f'<td class="model" data-v="{E(model)}">{legend_svg(model)}'
            f'{E(model)} <span class="note">({E(marker_name(st["marker"]))})</span></td>')


DASHES = {"-": "", "--": "5,2", "-.": "5,2,1.5,2", ":": "1.5,2"}


def legend_svg(model):
    """The model's line style and marker as the charts draw them, a few pixels wide."""
    from matplotlib.markers import MarkerStyle
    st = marks.model_style(model)
    style = MarkerStyle(st["marker"])
    path = style.get_path().transformed(style.get_transform())
    d = []
    letters = {1: "M", 2: "L", 3: "Q", 4: "C"}
    for vertices, code in path.iter_segments():
        if code == 79:
            d.append("Z")
            continue
        points = [(14 + 9 * x, 7 - 9 * y) for x, y in zip(vertices[::2], vertices[1::2])]
        d.append(letters[code] + " ".join(f"{x:.2f},{y:.2f}" for x, y in points))
    dash = DASHES.get(st["linestyle"], "")
    return (f'<svg class="legend" width="28" height="14" viewBox="0 0 28 14" aria-hidden="true">'
            f'<line x1="0" y1="7" x2="28" y2="7" stroke="{st["color"]}" stroke-width="1.6"'
            + (f' stroke-dasharray="{dash}"' if dash else "") + "/>"
            f'<path d="{" ".join(d)}" fill="{st["color"]}" stroke="#222" stroke-width="0.4"/></svg>')


MARKER_NAMES = {"o": "circle", "s": "square", "^": "triangle up", "v": "triangle down", "D": "diamond",
                "P": "plus", "X": "cross", "*": "star", "h": "hexagon", "<": "triangle left",
                ">": "triangle right", "p": "pentagon"}


def marker_name(marker):
    return MARKER_NAMES.get(marker, marker)


_ID = re.compile(r'\bid="([^"]+)"')


def inline_svg(folder, name, caption):
    """The chart's SVG, without its XML prolog and metadata, ids prefixed so that several charts
    in one page cannot collide. None when the chart was not drawn."""
    path = os.path.join(folder, f"{name}.svg")
    try:
        with open(path) as f:
            svg = f.read()
    except OSError:
        return None
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    prefix = re.sub(r"[^A-Za-z0-9_-]", "_", name) + "-"
    for ident in set(_ID.findall(svg)):
        svg = (svg.replace(f'id="{ident}"', f'id="{prefix}{ident}"')
               .replace(f'href="#{ident}"', f'href="#{prefix}{ident}"')
               .replace(f"url(#{ident})", f"url(#{prefix}{ident})"))
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{E(caption)}" ', 1)
    return f"<figure>{svg}<figcaption>{E(caption)}</figcaption></figure>"


def section(ident, title, body):
    return f'<section id="{ident}">\n<h2>{E(title)}</h2>\n{body}\n</section>'


# ---------------------------------------------------------------------------- the run

def run_section(run):
    m, machine = run.manifest, run.manifest.get("machine") or {}
    rows = [
        ("run", f"{run.run_id}, git {m.get('git_rev', '?')}, {m.get('started_at', '?')} → {m.get('finished_at', '?')}"
                + (" (interrupted)" if m.get("interrupted") else "")),
        ("profile", f"{m.get('profile', '?')}: {m.get('repeat', 1)} repeat(s) per point, "
                    f"{m.get('duration', '?')} after {m.get('warmup', '?')} warm-up"),
        ("models", ", ".join(run.models)),
        ("machine", f"{machine.get('cpus', '?')} CPUs, {machine.get('cpu_model', '?')}"),
        ("kernel", machine.get("uname") or machine.get("kernel") or "?"),
        ("pinning", pinning_text(m.get("points") or [])),
        ("network", network_text(m)),
        ("hosts", hosts_text(m)),
        ("baseline", baseline_text(m)),
    ]
    body = table(["what", "value"], [[f"<th>{E(k)}</th>", td(v)] for k, v in rows], cls="facts")
    return body + "<h3>Noise signals</h3>" + noise_html(m)


def pinning_text(entries):
    layouts = {}
    for e in entries:
        if isinstance(e, dict) and e.get("server_cpus") is not None:
            key = (e["server_cpus"], e.get("loadgen_cpus"))
            layouts.setdefault(key, set()).add(e.get("scenario"))
    if not layouts:
        return "not recorded"
    return "; ".join(f"server on CPU {s}, load generator on CPU {lg} ({', '.join(sorted(x for x in sc if x))})"
                     for (s, lg), sc in sorted(layouts.items(), key=lambda kv: -len(kv[1])))


def network_text(m):
    net = m.get("net") or m.get("network")
    if isinstance(net, dict):
        return ", ".join(f"{k} {v}" for k, v in net.items() if v is not None)
    if net:
        return str(net)
    return "loopback (127.0.0.1), no link emulation"


def hosts_text(m):
    """Where the server and the load generators ran (--hosts), from the run's settings."""
    hosts = m.get("hosts")
    if not isinstance(hosts, dict):
        return "this machine only"
    server = hosts.get("server")
    server_host = server.get("host", "local") if isinstance(server, dict) else (server or "local")
    clients = [c.get("host", "?") for c in hosts.get("clients") or []]
    where = "this machine" if server_host == "local" else server_host
    return (f"server on {where}; {len(clients)} load generator(s) over ssh: {', '.join(clients)} "
            f"(each point's hosts section has the details)")


def baseline_text(m):
    if m.get("baseline") or m.get("baseline_bin"):
        return (f"A/B run: A = {m.get('baseline') or m.get('baseline_bin')}, B = this tree; "
                f"{m.get('trials', '?')} trials per side, interleaved")
    return "none (not an A/B run)"


def noise_html(m):
    """Steal, other load, clock and load average over every trial, and the drift reference."""
    noises = [e["noise"] for e in m.get("points") or [] if isinstance(e, dict) and isinstance(e.get("noise"), dict)]
    rows = []
    for key, label, unit in (("steal_pct", "CPU steal", "%"), ("other_cpu_pct", "other processes' CPU", "%"),
                             ("cpu_mhz", "CPU clock", " MHz"), ("loadavg_1m", "load average (1 min)", "")):
        vals = sorted(n[key] for n in noises if isinstance(n.get(key), (int, float)))
        if vals:
            rows.append([td(label), td(f"{fmt(vals[len(vals) // 2], unit)} median, {fmt(vals[0], unit)} to "
                                       f"{fmt(vals[-1], unit)} over {len(vals)} trials")])
    heavy = [e for e in m.get("points") or [] if isinstance(e, dict) and (e.get("noise") or {}).get("heavy_steal")]
    if noises:
        rows.append([td("trials under heavy steal"),
                     td(", ".join(f"{e['model']} {e['scenario']} {e['point']} r{e.get('repeat')}" for e in heavy)
                        or "none")])
    rows.append([td("drift (reference point, start → end)"), td(drift_text(m.get("drift")))])
    if not noises:
        rows.insert(0, [td("per-trial signals"), td(NOT_MEASURED)])
    return table(["signal", "value"], rows, cls="facts")


def drift_text(drift):
    if not isinstance(drift, dict) or not drift.get("start"):
        return NOT_MEASURED
    s, e = drift.get("start") or {}, drift.get("end") or {}
    text = (f"{s.get('model', '?')} {s.get('point', '?')}: {fmt(s.get('throughput_rps'))} → "
            f"{fmt(e.get('throughput_rps'))} req/s")
    ratio = drift.get("throughput_rps_end_over_start")
    if ratio:
        text += f" (end/start x{ratio:.3f}); CPU/req x{drift.get('cpu_us_per_request_end_over_start') or 0:.3f}"
    return text


# ---------------------------------------------------------------------------- headline and scenarios

def deciding(scenario):
    metric, _ = standings.deciding_metric(scenario)
    if metric == "p99":
        return (lambda p: p.latency.get("p99")), "p99", "µs", "p99 latency"
    return (lambda p: p.rps), "rps", "", "req/s"


def headline_section(run, out_dir):
    cols = [(s, run.busiest_label(s)) for s in run.scenarios()]
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


# ---------------------------------------------------------------------------- over time, A/B

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


def comparison_section(run):
    doc = read_json(os.path.join(run.path, "comparison.json"))
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        return f"<p>A/B comparison: {NOT_MEASURED} (no baseline was given: <code>--baseline REV</code>).</p>"
    method = doc.get("method") or {}
    rows = []
    for r in doc["rows"]:
        band = (f"{fmt(r.get('ci_low'))}–{fmt(r.get('ci_high'))}" if r.get("ci_low") is not None else "—")
        rows.append([model_td(r.get("model", "?")), td(r.get("scenario")), td(r.get("point")), td(r.get("metric")),
                     td(fmt(r.get("a_median")), r.get("a_median")), td(fmt(r.get("b_median")), r.get("b_median")),
                     td(fmt(r.get("ratio")), r.get("ratio")), td(band, r.get("ci_low")),
                     td(fmt(r.get("p_value")), r.get("p_value")), td(r.get("verdict")),
                     td(f"{r.get('n_a')}/{r.get('n_b')}")])
    summary = doc.get("summary") or {}
    text = (f'<p>{summary.get("rows", len(rows))} rows; {summary.get("slower", 0)} slower, {summary.get("faster", 0)} '
            f'faster; gate failures: {summary.get("gate_failures", 0)}. Ratio = B/A (current over baseline), '
            f'{E(str(method.get("bootstrap", "bootstrap")))} interval at {method.get("confidence", 0.95):.0%}, '
            f'{E(str(method.get("rank_test", "rank test")))}, {E(str(method.get("correction", "")))} correction. '
            f'The whole table is in comparison.md.</p>')
    fig = inline_svg(run.path, "comparison", "Ratios B/A with their confidence intervals, per model and point")
    return text + (fig or "") + table(["model", "scenario", "point", "metric", "A median", "B median", "B/A",
                                       "95% CI", "p", "verdict", "n A/B"], rows)


# ---------------------------------------------------------------------------- claims, microbench, counts

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
            + [td(counts.fmt(p.counts["server"].get(k)), p.counts["server"].get(k)) for k, _ in counts.COLUMNS]
            + [td(counts.top_calls(p.counts["server"]))] for p in pts]
    return ('<p class="note">The server\'s work per request, counted with perf stat over loadgen\'s measured '
            'window in a counting trial of its own (docs/counts.md). Unlike timings, counts hardly move with the '
            'machine; they do move with load, so compare them at the same point.</p>'
            + (inline_svg(out_dir, "counts_per_request", "System calls and context switches per request") or "")
            + table(["model", "scenario", "point"] + [t for _, t in counts.COLUMNS] + ["top system calls"], body))


# ---------------------------------------------------------------------------- the page

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


def sections(run, out_dir):
    """[(id, heading, html)] in the report's order."""
    out = [("run", "The run", run_section(run)),
           ("headline", "Headline: medians with their spread", headline_section(run, out_dir)),
           ("reading", "How to read the charts", reading_section(run))]
    for s in run.scenarios():
        out.append((f"scenario-{s}", f"Scenario {s}: {SCENARIO_TITLES.get(s, s)}", scenario_section(run, s, out_dir)))
    out += [("over-time", "Capacity and latency over time", over_time_section(run, out_dir)),
            ("comparison", "A/B comparison", comparison_section(run)),
            ("claims", "Claim verdicts", claims_section(run)),
            ("microbench", "Microbenchmarks", microbench_section(run, out_dir)),
            ("counts", "Counted work", counts_section(run, out_dir))]
    return out


def render(run, out_dir):
    parts = sections(run, out_dir)
    toc = "".join(f'<li><a href="#{ident}">{E(title)}</a></li>' for ident, title, _ in parts)
    body = "\n".join(section(ident, title, text) for ident, title, text in parts)
    m = run.manifest
    css, js = page_asset("report.css"), page_asset("report.js")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>serverbench run {E(run.run_id)}</title>\n<style>\n{css}</style></head>\n<body>\n"
            f"<h1>serverbench run {E(run.run_id)}</h1>\n"
            f'<p class="note">Profile {E(str(m.get("profile")))}, {E(str(m.get("repeat", 1)))} repeat(s) per point, '
            f'{len(run.models)} models, {len(run.scenarios())} scenarios. This one file holds the whole report: '
            f"it needs no network and prints with one section per page.</p>\n"
            f"<nav><ol>{toc}</ol></nav>\n{body}\n<script>\n{js}</script>\n</body></html>\n")


def write_report(run, out_dir):
    """Writes out_dir/report.html from the run and the charts already in out_dir; returns its path."""
    path = os.path.join(out_dir, "report.html")
    text = render(run, out_dir)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return path
