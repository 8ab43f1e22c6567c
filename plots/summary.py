"""summary.md: a run's tables in Markdown (the overview, one table per scenario, capacity, the
soak, counted work, microbenchmarks) and the verdict per claim, with the charts listed last. A run
without matrix points (a soak or capacity run alone) has no overview and no claims to judge."""
import os

from serverbench.scenarios import SCENARIO_TITLES

from . import capacity_plots, claims, counts, marks, soak_plots, soak_table
from .run_results import dispatch_costs, microbench_times_us, readiness_series
from serverbench.units import latency_us, number


def cell(p, what):
    if p is None:
        return "—"
    if p.status != "ok":
        return marks.STATUS_MARK.get(p.status, p.status)
    if what == "rps":
        return number(p.rps) + with_spread(p, "rps", number) + (" ⚠" if marks.severity(p) == marks.BAD else "")
    if what == "p99":
        return latency_us(p.latency.get("p99")) + with_spread(p, "p99", latency_us)
    if what == "cpu":
        return number(p.server_cpu_us_per_req) + with_spread(p, "cpu", number)
    raise ValueError(what)


def with_spread(p, metric, fmt):
    """" [low–high]" of the repeats' spread, or "" with a single repeat."""
    span = marks.interval(p.samples.get(metric))
    return f" [{fmt(span[0])}–{fmt(span[1])}]" if span else ""


def summary_md(run, charts):
    lines = summary_header(run) + overview_table(run)
    for scenario in run.scenarios():
        lines += scenario_table(run, scenario)
    capacity = capacity_plots.capacity_table_md(run.path)
    if capacity:
        lines += ["## Capacity at a latency objective", "", capacity, ""]
    lines += soak_section(run)
    lines += counts.counts_table_md(run)
    times = microbench_times_us(run.microbench)
    lines += microbench_section(times)
    if run.points or times:   # the claims are judged on the matrix and the microbenchmarks
        lines += verdicts_section(run)
    lines += ["## Charts", ""]
    lines += [f"- [{os.path.basename(c)}]({os.path.basename(c)})" for c in charts if c.endswith(".png")]
    return "\n".join(lines) + "\n"


def summary_header(run):
    m = run.manifest
    machine = m.get("machine") or {}
    return [
        f"# serverbench run {run.run_id}",
        "",
        f"Profile `{m.get('profile')}`, {m.get('repeat', 1)} repeat(s) per point (medians shown), "
        f"points of {m.get('duration', '?')} after {m.get('warmup', '?')} warm-up; git `{m.get('git_rev')}`; "
        f"{machine.get('cpus', '?')} CPUs ({machine.get('cpu_model', '?')}), kernel {machine.get('kernel', '?')}; "
        f"{m.get('started_at')} → {m.get('finished_at')}.",
        "Server pinned to CPU 0 (all CPUs in cpu-bound), load generator on the others.",
        "",
        "Cells: `n/a` = not applicable to the model, `failed` = the server failed to start or died, "
        "`unsupported` = the kernel refused the mechanism, `—` = not run, ⚠ = the load generator "
        "counted errors (refused, reset or timed-out requests) at that point, or fewer connections were "
        "established than asked, or an open-loop run missed its rate.",
        "",
        marks.spread_note() + " report.html holds the same with the charts inline.",
        "",
    ]


def overview_table(run):
    columns = [(s, label) for s in run.scenarios() for label in run.labels(s)]
    if not columns:
        return ["## Overview", "", "No matrix points in this run: its results are the sections below.", ""]
    lines = ["## Overview: requests/s per model and scenario", "",
             "| model | " + " | ".join(f"{s} {label}" for s, label in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for model in run.models:
        lines.append(f"| {model} | " + " | ".join(cell(run.get(model, s, label), "rps") for s, label in columns) + " |")
    return lines + [""]


def scenario_table(run, scenario):
    lines = [f"## {scenario}: {SCENARIO_TITLES.get(scenario, '')}", "",
             f"![{scenario}](scenario_{scenario}.png)", "",
             "| model | point | req/s | p50 | p99 | p99.9 | server CPU µs/req | peak RSS MiB | "
             "threads / processes | bound | notes |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for p in sorted(run.scenario_points(scenario), key=lambda p: (run.models.index(p.model), p.idle,
                                                                  p.connections, p.label)):
        lines.append(point_row(p))
    return lines + [""]


def point_row(p):
    if p.status != "ok":
        return (f"| {p.model} | {p.label} | {marks.STATUS_MARK.get(p.status, p.status)} | | | | | | | | "
                f"{(p.reason or '').replace('|', '/')} |")
    notes = []
    if p.errors:
        notes.append(f"{p.errors} errors")
    if p.idle_established is not None:
        notes.append(f"idle: {p.idle_open} of {p.idle} kept open")
    if p.rate:
        notes.append(f"target {p.rate:,.0f} req/s" + ("" if p.open_loop_valid in (None, True) else " (missed)"))
    return (f"| {p.model} | {p.label} | {cell(p, 'rps')} | {latency_us(p.latency.get('p50'))} | "
            f"{latency_us(p.latency.get('p99'))} | {latency_us(p.latency.get('p99_9'))} | "
            f"{cell(p, 'cpu')} | {(p.peak_rss_kib or 0) / 1024:,.1f} | "
            f"{int(p.peak_threads or 0)} / {int(p.peak_processes or 0)} | {p.bound or '?'} | {'; '.join(notes)} |")


def soak_section(run):
    """The soak's verdicts and its charts (soak_plots.py); nothing when the run has no soak.json."""
    table = soak_table.soak_table_md(run.path)
    if not table:
        return []
    lines = ["## Soak: memory, descriptors and p99 over time", "", table]
    if soak_table.soaked(soak_table.load_soak(run.path)):
        for name in soak_plots.CHARTS:
            lines += [f"![{name}]({name}.png)", ""]
    return lines


def microbench_section(times):
    lines = ["## Microbenchmarks: why the models differ", ""]
    if not times:
        return lines + ["Not run (build/bin/microbench absent or skipped).", ""]
    costs = dispatch_costs(times)
    if costs:
        lines += ["![dispatch](microbench_dispatch.png)", "", "| per-connection mechanism | µs |", "|---|---:|"]
        lines += [f"| {label} | {us:,.2f} |" for label, us in costs]
        lines.append("")
    series = readiness_series(times)
    if series:
        ns = sorted({n for pts in series.values() for n, _ in pts})
        lines += ["![readiness](microbench_readiness.png)", "",
                  "| one call, µs, with N descriptors | " + " | ".join(f"N={n}" for n in ns) + " |",
                  "|---|" + "---:|" * len(ns)]
        for mech, pts in sorted(series.items()):
            d = dict(pts)
            lines.append(f"| {mech} | " + " | ".join(f"{d[n]:,.2f}" if n in d else "—" for n in ns) + " |")
        lines.append("")
    return lines


def verdicts_section(run):
    lines = ["## Verdicts: the claims of docs/contract.md, measured here", "",
             "| claim | scenario | measured | verdict |", "|---|---|---|---|"]
    for claim, scenario, what, verdict in claims.verdicts(run):
        mark = {"holds": "**holds**", "does not hold": "**does not hold**"}.get(verdict, verdict)
        lines.append(f"| {claim} | {scenario} | {what.replace('|', '/')} | {mark} |")
    return lines + ["", claims.RULES.replace("\n", "  \n")]
