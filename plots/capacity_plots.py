"""Charts and tables of the capacity sweeps (capacity.json) and of latency over time.

    /usr/bin/python3 -m plots.capacity_plots RUN_DIR [--out DIR]     (from the repository root)

Functions for the report and summary (each reads the run folder; charts are PNG + SVG):
* capacity_charts(run_dir, out_dir) -> [paths]: per capacity scenario, p99 and p50 against achieved
  throughput for every model on one log-log chart with the objective drawn, and saturation and
  capacity per model as bars with their intervals.
* capacity_table_md(run_dir) -> str: the capacity table per scenario, ranked by capacity;
  write_capacity_md(run_dir, out_dir) writes it as capacity.md.
* timeseries_charts(run_dir, out_dir) -> [paths]: throughput and p99 per interval of the points
  where time tells something (open-loop, io-wait, idle-conns, and the capacity steps at the knee).
Points that fail the steady-state check (serverbench/steady.py) are drawn dashed or crossed and
labelled "not steady".
"""
import os
import sys

from serverbench.jsonfile import read_json
from serverbench.scenarios import CAPACITY_SCENARIOS, SCENARIO_TITLES, ordered_models
from serverbench.steady import steady_state
from serverbench.units import number

from . import redraw_part
from .marks import model_color

TIME_SCENARIOS = ("open-loop", "io-wait", "idle-conns")


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def load_capacity(run_dir):
    """The records of capacity.json (measured sweeps only), or []."""
    doc = read_json(os.path.join(run_dir, "capacity.json")) or {}
    return [r for r in doc.get("records", []) if r.get("steps")]


def _by_scenario(records):
    out = {}
    for r in records:
        out.setdefault(r["scenario"], []).append(r)
    order = [s for s in CAPACITY_SCENARIOS if s in out] + sorted(set(out) - set(CAPACITY_SCENARIOS))
    return {s: sorted(out[s], key=lambda r: ordered_models([x["model"] for x in out[s]]).index(r["model"]))
            for s in order}


def _colors(models):
    """Each model's one colour, the same as in every other chart (marks.py)."""
    return {m: model_color(m) for m in ordered_models(models)}


def _save(fig, out_dir, name, written):
    for ext in ("png", "svg"):
        path = os.path.join(out_dir, f"{name}.{ext}")
        fig.savefig(path, dpi=110)
        written.append(path)
    _plt().close(fig)


# ------------------------------------------------------------------ capacity curves


def _curve(ax, record, color):
    steps = sorted(record["steps"], key=lambda s: s["offered_rps"])
    x = [s["achieved_rps"] for s in steps]
    for key, style, label in (("p99_us", "-", "p99"), ("p50_us", "--", "p50")):
        y = [s[key] / 1000 for s in steps]
        ax.plot(x, y, style, color=color, lw=1.4 if key == "p99_us" else 1.0,
                label=f"{record['model']} {label}" if key == "p99_us" else None)
        lg = [(a, b) for a, b, s in zip(x, y, steps) if s["loadgen_bound"]]
        ok = [(a, b) for a, b, s in zip(x, y, steps) if not s["loadgen_bound"]]
        if ok:
            ax.plot(*zip(*ok), "o", color=color, ms=3.5)
        if lg:
            ax.plot(*zip(*lg), "o", mfc="white", color=color, ms=4.5)
        unsteady = [(a, b) for a, b, s in zip(x, y, steps) if s.get("steady") is False]
        if unsteady and key == "p99_us":
            ax.plot(*zip(*unsteady), "x", color="black", ms=5)


def latency_chart(scenario, records, out_dir, written):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 6.5))
    colors = _colors([r["model"] for r in records])
    for r in records:
        _curve(ax, r, colors[r["model"]])
    slo = records[0]["slo_p99_ms"]
    ax.axhline(slo, color="red", ls=":", lw=1.5, label=f"objective: p99 <= {slo:g} ms")
    ax.plot([], [], "o", mfc="white", color="grey", label="load-generator bound step")
    ax.plot([], [], "x", color="black", label="not steady (steady-state check)")
    ax.plot([], [], "--", color="grey", label="p50 (dashed)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("achieved throughput (req/s)")
    ax.set_ylabel("latency from the intended send time (ms)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"{SCENARIO_TITLES.get(scenario, scenario)}\np99 (solid) and p50 (dashed) against "
                 f"throughput, {records[0]['connections']} connections, open loop", fontsize=11)
    fig.tight_layout()
    _save(fig, out_dir, f"capacity_{scenario}_latency", written)


def _whisker(value, interval):
    """(below, above) for an error bar; an open upper end draws none."""
    if value is None or not interval:
        return 0, 0
    low, high = interval
    return max(0, value - (low if low is not None else value)), max(0, (high or value) - value)


def bars_chart(scenario, records, out_dir, written):
    plt = _plt()
    ranked = sorted(records, key=lambda r: -(r.get("capacity_rps") or 0))
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(ranked) + 3), 5.5))
    width = 0.38
    for k, (key, label, color) in enumerate((("saturation", "saturation (served as offered)", "#4c72b0"),
                                             ("capacity", "capacity at the objective", "#dd8452"))):
        xs = [i + (k - 0.5) * width for i in range(len(ranked))]
        vals = [r.get(f"{key}_rps") or 0 for r in ranked]
        errs = list(zip(*[_whisker(r.get(f"{key}_rps"), r.get(f"{key}_interval_rps")) for r in ranked]))
        hatches = ["//" if r.get(f"{key}_loadgen_bound") else "" for r in ranked]
        bars = ax.bar(xs, vals, width, color=color, label=label, yerr=errs, capsize=3)
        for bar, hatch, r in zip(bars, hatches, ranked):
            bar.set_hatch(hatch)
            if r.get(f"{key}_rps") is None:
                ax.text(bar.get_x() + width / 2, 0, "none", ha="center", va="bottom", fontsize=7, rotation=90)
    from matplotlib.patches import Patch
    handles = ax.get_legend_handles_labels()[0] + [Patch(facecolor="white", edgecolor="black", hatch="//",
                                                         label=">= X: load-generator bound")]
    ax.set_xticks(range(len(ranked)))
    ax.set_xticklabels([r["model"] for r in ranked], rotation=30, ha="right")
    ax.set_ylabel("req/s")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(handles=handles, fontsize=8)
    ax.set_title(f"{SCENARIO_TITLES.get(scenario, scenario)}\nsaturation and capacity at p99 <= "
                 f"{ranked[0]['slo_p99_ms']:g} ms (whiskers: repeats' low end to the first rate not held)",
                 fontsize=10)
    fig.tight_layout()
    _save(fig, out_dir, f"capacity_{scenario}_bars", written)


def capacity_charts(run_dir, out_dir=None):
    """Draws the capacity charts of the run; returns the paths written ([] without capacity.json)."""
    out_dir = out_dir or run_dir
    written = []
    for scenario, records in _by_scenario(load_capacity(run_dir)).items():
        latency_chart(scenario, records, out_dir, written)
        bars_chart(scenario, records, out_dir, written)
    return written


# ------------------------------------------------------------------ the table


def _ms(us):
    return f"{us / 1000:.2f}" if us is not None else "-"


def _p99_cell(r):
    if r.get("capacity_p99_us") is None:
        return "-"
    iv = r.get("capacity_p99_interval_us")
    value = _ms(r["capacity_p99_us"])
    return f"{value} [{_ms(iv[0])}, {_ms(iv[1])}]" if iv else f"{value} (1 trial)"


def _rates_cell(r):
    """Rates measured (trials), and how many rates failed the steady-state check."""
    unsteady = sum(1 for s in r["steps"] if s.get("steady") is False)
    return f"{len(r['steps'])} ({r.get('trials', '-')})" + (f", {unsteady} not steady" if unsteady else "")


def capacity_table_md(run_dir):
    """Markdown: per capacity scenario, the models ranked by capacity at the objective."""
    lines = []
    for scenario, records in _by_scenario(load_capacity(run_dir)).items():
        ranked = sorted(records, key=lambda r: -(r.get("capacity_rps") or 0))
        lines += [f"### {SCENARIO_TITLES.get(scenario, scenario)}", "",
                  f"Objective p99 <= {ranked[0]['slo_p99_ms']:g} ms, {ranked[0]['connections']} connections, "
                  "open loop. Capacity: the highest rate whose repeats' p99 all held the objective; "
                  "saturation: the highest rate served as offered (>= 99%, no errors, p50 within 2x).", "",
                  "| rank | model | capacity (req/s) | p99 there (ms) [interval] | saturation (req/s) "
                  "| closed loop (req/s) | bound | rates (trials) | sweep (s) |",
                  "|---:|---|---|---|---|---:|---|---|---:|"]
        for i, r in enumerate(ranked, 1):
            lines.append(f"| {i} | {r['model']} | {r['capacity_text']} | {_p99_cell(r)} | {r['saturation_text']} "
                         f"| {number(r.get('closed_loop_max_rps'))} | {r.get('bound') or '-'} "
                         f"| {_rates_cell(r)} | {r.get('sweep_s', '-')} |")
        lines.append("")
    return "\n".join(lines)


def write_capacity_md(run_dir, out_dir):
    """out_dir/capacity.md: the capacity table under its heading; returns [its path], or []
    when the run has no capacity sweep."""
    table = capacity_table_md(run_dir)
    if not table:
        return []
    path = os.path.join(out_dir, "capacity.md")
    with open(path, "w") as f:
        f.write("## Capacity at a latency objective\n\n" + table)
    return [path]


# ------------------------------------------------------------------ latency over time


def _read(run_dir, rel):
    """A point's result (rel: its file in the run folder, None for a point that has none)."""
    return read_json(os.path.join(run_dir, rel)) if rel else None


def _matrix_series(run_dir):
    """{scenario: [(label, result)]}: the first repeat of each model's points in TIME_SCENARIOS."""
    points = (read_json(os.path.join(run_dir, "manifest.json")) or {}).get("points", [])
    out, seen = {}, set()
    for p in points:
        key = (p["model"], p["scenario"], p["point"])
        if (p["scenario"] in TIME_SCENARIOS and p.get("file") and key not in seen and not p.get("side")
                and p.get("kind") != "count"):
            doc = _read(run_dir, p["file"])
            # A series of one interval is the point's total again, not a course over time.
            if doc and len(doc.get("timeseries") or []) >= 2:
                seen.add(key)
                out.setdefault(p["scenario"], []).append((f"{p['model']} {p['point']}", doc))
    return out


def _knee_series(run_dir):
    """{capacity scenario: [(label, result)]}: each model's step at its saturation rate."""
    out = {}
    for r in load_capacity(run_dir):
        rows = {s["offered_rps"]: s for s in r["steps"]}
        for rate in (r.get("saturation_offered_rps"), (r.get("saturation_interval_rps") or [None, None])[1]):
            doc = _read(run_dir, rows[rate]["trials"][0]["file"]) if rate in rows else None
            if doc and doc.get("timeseries"):
                out.setdefault(r["scenario"], []).append((f"{r['model']} @ {rate:,} req/s", doc))
    return out


def _time_chart(title, series, out_dir, name, written):
    plt = _plt()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    cycle = plt.get_cmap("tab20").colors
    for i, (label, doc) in enumerate(series):
        ts = doc["timeseries"]
        seconds = ((doc.get("config") or {}).get("interval_ms") or 1000) / 1000
        check = steady_state(doc)
        style = "--" if check["steady"] is False else "-"
        label = label + (" (not steady)" if check["steady"] is False else "")
        t = [e["t_s"] for e in ts]
        top.plot(t, [e.get("requests", 0) / seconds for e in ts], style, color=cycle[i % 20], lw=1.2, label=label)
        bottom.plot(t, [(e.get("p99_us") or 0) / 1000 for e in ts], style, color=cycle[i % 20], lw=1.2)
    top.set_ylabel("throughput per interval (req/s)")
    bottom.set_ylabel("p99 per interval (ms)")
    bottom.set_yscale("log")
    bottom.set_xlabel("time in the measured window (s; the last interval includes the drain)")
    for ax in (top, bottom):
        ax.grid(True, which="both", alpha=0.3)
    top.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    top.set_title(title, fontsize=11)
    fig.tight_layout()
    _save(fig, out_dir, name, written)


def timeseries_charts(run_dir, out_dir=None):
    """Throughput and p99 per interval, one chart per scenario; returns the paths written."""
    out_dir = out_dir or run_dir
    written = []
    for scenario, series in _matrix_series(run_dir).items():
        _time_chart(f"{SCENARIO_TITLES.get(scenario, scenario)}: over time", series, out_dir,
                    f"timeseries_{scenario}", written)
    for scenario, series in _knee_series(run_dir).items():
        _time_chart(f"{SCENARIO_TITLES.get(scenario, scenario)}: the steps at saturation and just past it",
                    series, out_dir, f"timeseries_{scenario}_knee", written)
    return written


def _draw_all(run_dir, out_dir):
    return capacity_charts(run_dir, out_dir) + timeseries_charts(run_dir, out_dir) + write_capacity_md(run_dir, out_dir)


def main(argv=None):
    return redraw_part("plots.capacity_plots", __doc__.splitlines()[0], _draw_all, argv)


if __name__ == "__main__":
    sys.exit(main())
