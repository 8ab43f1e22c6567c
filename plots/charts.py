"""The charts of one run, PNG and SVG: throughput and latency against clients, percentiles, server
CPU per request, memory and threads, idle-connection capacity, one chart per scenario, the
microbenchmarks; then the capacity, over-time (capacity_plots.py), soak (soak_plots.py) and
counted-work (counts.py) charts. `python3 -m plots` draws them all (Charts.draw_all)."""
import concurrent.futures
import multiprocessing
import os

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from serverbench.scenarios import SCENARIO_TITLES

from . import capacity_plots, counts, marks, soak_plots
from .marks import model_color, model_style
from .run_results import PERCENTILES, dispatch_costs, microbench_times_us, readiness_series
from serverbench.units import compact, latency_us

matplotlib.use("Agg")   # files only, never a display

# Drawn behind a point whose figures are not face value (marks.BAD: hollow; marks.BOUND: hatched).
HATCH = "////"


def latency_axis(ax):
    """A log latency axis in µs/ms/s; minor ticks labelled too when the axis spans less than a
    decade (else it could show no label at all, or matplotlib's 2x10^2 notation)."""
    def minor(v, _pos):
        low, high = ax.get_ylim()
        return latency_us(v) if low > 0 and high / low < 10 else ""
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: latency_us(v)))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


class Charts:
    """The run's charts, each a PNG and an SVG in out_dir (the paths in .written), every model
    in its own colour, marker and line style (marks.py)."""

    def __init__(self, run, out_dir):
        self.run, self.out_dir, self.written = run, out_dir, []
        self.subtitle = (f"run {run.run_id} · profile {run.manifest.get('profile')} · "
                         f"{(run.manifest.get('machine') or {}).get('cpus', '?')} CPUs "
                         f"({(run.manifest.get('machine') or {}).get('cpu_model', '?')}) · "
                         f"median of {run.manifest.get('repeat', 1)} repeat(s)")

    def save(self, fig, name, title, model_legend=True):
        fig.suptitle(title, fontsize=13, fontweight="bold")
        fig.text(0.5, 0.005, self.subtitle, ha="center", va="bottom", fontsize=8, color="#555555")
        right = 1.0
        if model_legend:
            self.model_legend(fig)
            right = 1.0 - 1.9 / fig.get_figwidth()
        fig.tight_layout(rect=(0, 0.03, right, 0.95))
        for ext in ("png", "svg"):
            path = os.path.join(self.out_dir, f"{name}.{ext}")
            fig.savefig(path, dpi=110)
            self.written.append(path)
        plt.close(fig)

    # ------------------------------------------------------------------ helpers

    def model_legend(self, fig):
        """One legend per figure, outside the axes, every model in the same order, colour and marker
        (a model with no successful point anywhere in the run says why), then how flagged points
        and spread are drawn."""
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
        handles, labels = [], []
        for model in self.run.models:
            mine = [p for p in self.run.points.values() if p.model == model]
            st = model_style(model)
            handles.append(Line2D([], [], color=st["color"], marker=st["marker"], linestyle=st["linestyle"],
                                  markersize=7))
            labels.append(self.legend_label(model, mine))
        handles += [Patch(facecolor="white", edgecolor="#444444", linestyle="--"),
                    Patch(facecolor="#bbbbbb", edgecolor="#444444", hatch=HATCH),
                    Line2D([], [], color="#444444", marker="|", linestyle="-", markersize=8)]
        labels += ["hollow: errors or invalid", "hatched: loadgen-bound", "whisker: spread of repeats"]
        fig.legend(handles, labels, loc="center right", fontsize=8, title="model", frameon=False)

    def legend_label(self, model, points):
        statuses = {p.status for p in points}
        if "ok" in statuses or not statuses:
            return model
        return f"{model} ({'/'.join(marks.STATUS_MARK.get(s, s) for s in sorted(statuses))})"

    def grouped_bars(self, ax, scenario, value, ylabel, log=False, labels=None, metric=None):
        """One group per point label, one bar per model, topped by the model's marker; whiskers
        show the spread of `metric` (a key of Point.samples) over the repeats. Points without a
        value are labelled in place (n/a, failed, unsupported, — for not run) instead of a bar."""
        labels = labels or self.run.labels(scenario)
        models = self.run.models
        width = 0.8 / max(len(models), 1)
        values = []
        for i, label in enumerate(labels):
            for j, model in enumerate(models):
                p = self.run.get(model, scenario, label)
                x = i - 0.4 + width * (j + 0.5)
                v = value(p) if p is not None and p.status == "ok" else None
                if v is not None and (v > 0 or not log):
                    values += self.bar(ax, x, v, width, p, metric)
                if v is None or v == 0:
                    self.missing_mark(ax, x, p, v)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels)
        ax.set_xlim(-0.5, len(labels) - 0.5)
        ax.set_ylabel(ylabel)
        self.value_axis(ax, values, log)

    def bar(self, ax, x, v, width, p, metric):
        """One bar: filled for a clean point, hollow (errors, invalid) or hatched (loadgen-bound)
        and labelled for a flagged one. Returns the values the axis must show."""
        st, kind = model_style(p.model), marks.severity(p)
        if kind == marks.BAD:
            ax.bar(x, v, width, facecolor="white", edgecolor=st["color"], linestyle="--", linewidth=1.2)
        elif kind == marks.BOUND:
            ax.bar(x, v, width, color=st["color"], alpha=0.55, hatch=HATCH, edgecolor="#333333", linewidth=0.5)
        else:
            ax.bar(x, v, width, color=st["color"])
        ax.plot(x, v, marker=st["marker"], color=st["color"], markersize=5, **marks.marker_edge(st, 0.4),
                markerfacecolor="white" if kind == marks.BAD else st["color"], linestyle="")
        shown = [v]
        samples = metric(p) if callable(metric) else p.samples.get(metric) if metric else None
        span = marks.interval(samples)
        if span and span[0] is not None:
            ax.errorbar(x, v, yerr=[[max(v - span[0], 0)], [max(span[1] - v, 0)]], fmt="none", ecolor="#222222",
                        elinewidth=0.9, capsize=2)
            shown.append(span[1])
        note = (" " + marks.flag_text(p)) if kind else ""
        if v > 0:
            ax.text(x, max(shown), " " + compact(v) + note, rotation=90, ha="center", va="bottom", fontsize=6,
                    color="#b00000" if kind == marks.BAD else "#333333")
        return shown

    def missing_mark(self, ax, x, p, v):
        from matplotlib.transforms import blended_transform_factory
        if p is None:
            mark = "—"
        elif p.status != "ok":
            mark = marks.STATUS_MARK.get(p.status, p.status)
        else:
            mark = "0" if v == 0 else "no data"
        ax.text(x, 0.02, mark, rotation=90, ha="center", va="bottom", fontsize=7, color="#444444",
                transform=blended_transform_factory(ax.transData, ax.transAxes))

    def value_axis(self, ax, values, log):
        positive = [v for v in values if v > 0]
        if log and positive:
            ax.set_yscale("log")
            ax.set_ylim(min(positive) / 4, max(positive) * 12)
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_minor_formatter(NullFormatter())
        elif values:
            ax.set_ylim(0, max(max(values), 1e-9) * 1.45)
        ax.yaxis.set_major_formatter(FuncFormatter(compact))
        ax.grid(axis="y", alpha=0.3, which="major")

    def percentile_curves(self, ax, scenario, label, uncorrected=False):
        """One curve per model; a point with errors or an invalid rate is dashed with hollow
        markers (its percentiles cover only the answered requests); whiskers at p50 and p99 show
        their spread over the repeats."""
        xs = list(range(len(PERCENTILES)))
        notes = []
        for model in self.run.models:
            p = self.run.get(model, scenario, label)
            if p is None:
                continue
            if p.status != "ok":
                notes.append(f"{model}: {marks.STATUS_MARK.get(p.status, p.status)}")
                continue
            ys = [p.latency.get(name) for name, _ in PERCENTILES]
            if any(y is None or y <= 0 for y in ys):
                notes.append(f"{model}: no latency samples")
                continue
            st, bad = model_style(model), marks.severity(p) == marks.BAD
            ax.plot(xs, ys, marker=st["marker"], color=st["color"], label=model, markersize=7,
                    linestyle="--" if bad else "-", linewidth=0.9 if bad else 1.5,
                    markerfacecolor="white" if bad else st["color"])
            if bad:
                notes.append(f"{model} (hollow): {marks.flag_text(p)}; answered requests only")
            self.percentile_whiskers(ax, p, ys)
            if uncorrected:
                yu = [p.latency_uncorrected.get(name) for name, _ in PERCENTILES]
                if all(y is not None and y > 0 for y in yu):
                    ax.plot(xs, yu, linestyle=":", color=st["color"], alpha=0.7)
        ax.set_xticks(xs)
        ax.set_xticklabels([f"p{q:g}" for _, q in PERCENTILES])
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency (µs, log scale)")
        ax.set_yscale("log")
        latency_axis(ax)
        ax.grid(alpha=0.3, which="both")
        title = f"latency percentiles at {label}"
        if uncorrected:
            title += "\n(solid: from intended send time; dotted: uncorrected)"
        ax.set_title(title, fontsize=10)
        if notes:
            ax.text(0.01, 0.99, "\n".join(notes), transform=ax.transAxes, va="top", fontsize=7, color="#444444")

    def percentile_whiskers(self, ax, p, ys):
        names = [name for name, _ in PERCENTILES]
        for metric in ("p50", "p99"):
            span = marks.interval(p.samples.get(metric))
            if span and metric in names:
                i = names.index(metric)
                ax.errorbar(i, ys[i], yerr=[[max(ys[i] - span[0], 0)], [max(span[1] - ys[i], 0)]], fmt="none",
                            ecolor=model_color(p.model), elinewidth=0.9, capsize=3)

    def model_line(self, ax, points, x, y, metric):
        """A model's line over points; flagged points hollow and labelled, whiskers for spread."""
        st = model_style(points[0].model)
        clean = [p for p in points if marks.severity(p) != marks.BAD]
        # The line joins only figures that can be taken at face value; a faint one reaches the rest.
        ax.plot([x(p) for p in points], [y(p) for p in points], color=st["color"], linestyle=":", linewidth=0.8,
                alpha=0.6)
        ax.plot([x(p) for p in clean], [y(p) for p in clean], color=st["color"], marker=st["marker"],
                linestyle=st["linestyle"], markersize=8, **marks.marker_edge(st))
        for p in points:
            span = marks.interval(p.samples.get(metric)) if metric else None
            if span and y(p) == y(p):
                ax.errorbar(x(p), y(p), yerr=[[max(y(p) - span[0], 0)], [max(span[1] - y(p), 0)]], fmt="none",
                            ecolor=st["color"], elinewidth=0.9, capsize=3)
            kind = marks.severity(p)
            if kind:
                ax.plot(x(p), y(p), marker=st["marker"], markersize=10, markerfacecolor="white",
                        markeredgecolor=st["color"], linestyle="", zorder=5)
                ax.annotate(marks.flag_text(p), (x(p), y(p)), fontsize=7, textcoords="offset points", xytext=(6, -10),
                            color="#b00000" if kind == marks.BAD else "#444444")

    # ------------------------------------------------------------------ charts

    def throughput_vs_connections(self):
        pts = self.run.scenario_points("http-keepalive")
        if not pts:
            return
        fig, (ax, ax_lat) = plt.subplots(1, 2, figsize=(14, 5.5))
        for model in self.run.models:
            mine = [p for p in pts if p.model == model]
            ok = [p for p in mine if p.status == "ok" and p.rps is not None]
            if not mine:
                continue
            if ok:
                self.model_line(ax, ok, lambda p: p.connections, lambda p: p.rps, "rps")
                self.model_line(ax_lat, ok, lambda p: p.connections,
                                lambda p: p.latency.get("p99") or float("nan"), "p99")
        conns = sorted({p.connections for p in pts})
        for a in (ax, ax_lat):
            a.set_xscale("log")
            a.set_xticks(conns)
            a.set_xticklabels([str(c) for c in conns])
            a.minorticks_off()
        ax.set_xlabel("concurrent keep-alive connections (log scale)")
        ax.set_ylabel("throughput (requests/s)")
        ax.yaxis.set_major_formatter(FuncFormatter(compact))
        ax.set_title("throughput vs connections", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax_lat.set_yscale("log")
        ax_lat.set_xlabel("concurrent keep-alive connections (log scale)")
        ax_lat.set_ylabel("p99 latency (log scale)")
        latency_axis(ax_lat)
        ax_lat.set_title("p99 latency vs connections", fontsize=10)
        ax_lat.grid(alpha=0.3, which="both")
        self.save(fig, "throughput_vs_connections", "HTTP keep-alive: throughput and p99 latency as clients grow")

    def latency_percentiles(self):
        labels = self.run.labels("http-keepalive")
        if not labels:
            return
        fig, axes = plt.subplots(1, len(labels), figsize=(5.5 * len(labels), 5), squeeze=False)
        for ax, label in zip(axes[0], labels):
            self.percentile_curves(ax, "http-keepalive", label)
        self.save(fig, "latency_percentiles", "HTTP keep-alive: latency percentiles per model (p50 to p99.9)")

    def server_cpu(self):
        scenarios = self.run.scenarios()
        if not scenarios:
            return
        fig, axes = plt.subplots(len(scenarios), 1, figsize=(14, 2.8 * len(scenarios)), squeeze=False)
        for ax, scenario in zip(axes[:, 0], scenarios):
            self.grouped_bars(ax, scenario, lambda p: p.server_cpu_us_per_req, "server CPU (µs/request)", log=True,
                              metric="cpu")
            ax.set_title(scenario, fontsize=10, loc="left")
        self.save(fig, "server_cpu_per_request",
                  "Server CPU time per request (user + system, µs; lower is cheaper)")

    def memory_and_threads(self):
        pts = [p for p in self.run.points.values()
               if p.scenario in ("http-keepalive", "idle-conns") and p.status == "ok"]
        if not pts:
            return
        fig, (ax_rss, ax_thr) = plt.subplots(1, 2, figsize=(14, 5.5))
        for model in self.run.models:
            mine = sorted((p for p in pts if p.model == model), key=lambda p: p.connections + p.idle)
            if not mine:
                continue
            x = [p.connections + (p.idle_open if p.idle_open is not None else p.idle) for p in mine]
            rss = [(p.peak_rss_kib or 0) / 1024 for p in mine]
            # Whichever is larger: a thread count over a process tree already includes each
            # process's main thread, so adding the two would count fork children twice.
            tasks = [max(p.peak_threads or 0, p.peak_processes or 0) for p in mine]
            st = model_style(model)
            ax_rss.plot(x, rss, marker=st["marker"], linestyle=st["linestyle"], color=st["color"], label=model)
            ax_thr.plot(x, tasks, marker=st["marker"], linestyle=st["linestyle"], color=st["color"], label=model)
        for ax in (ax_rss, ax_thr):
            ax.set_xscale("log")
            ax.set_xlabel("connections held by the server (active + idle still open, log scale)")
            ax.grid(alpha=0.3, which="both")
        ax_rss.set_ylabel("peak resident memory (MiB, all server processes)")
        ax_rss.set_yscale("log")
        ax_rss.set_title("peak RSS", fontsize=10)
        ax_thr.set_ylabel("peak threads or processes, the larger (log scale)")
        ax_thr.set_yscale("log")
        ax_thr.set_title("threads and processes", fontsize=10)
        self.save(fig, "server_memory_threads",
                  "What connections cost the server: memory, threads and processes (keep-alive and idle-conns)")

    def idle_capacity(self):
        labels = self.run.labels("idle-conns")
        if not labels:
            return
        fig, axes = plt.subplots(1, 3, figsize=(16, 5.5))
        self.grouped_bars(axes[0], "idle-conns", lambda p: p.idle_open, "idle connections still open at the end")
        axes[0].set_title("idle connections the server kept\n(asked: the number in the label)", fontsize=10)
        for i, label in enumerate(labels):
            idle = next((p.idle for p in self.run.scenario_points("idle-conns") if p.label == label), None)
            if idle:
                axes[0].hlines(idle, i - 0.45, i + 0.45, colors="black", linestyles="--", linewidth=1)
        self.grouped_bars(axes[1], "idle-conns", lambda p: p.rps, "active clients' throughput (requests/s)",
                          metric="rps")
        axes[1].set_title("throughput of the active clients", fontsize=10)
        self.grouped_bars(axes[2], "idle-conns", lambda p: (p.peak_rss_kib or 0) / 1024,
                          "server peak RSS (MiB)", log=True, metric=lambda p: [v / 1024 for v in p.samples["rss"]])
        axes[2].set_title("server memory with the idle connections held", fontsize=10)
        self.save(fig, "idle_capacity", "Idle-connection capacity (the C10K question)")

    def scenario_chart(self, scenario):
        labels = self.run.labels(scenario)
        if not labels:
            return
        fig = plt.figure(figsize=(16, 5.5))
        ax_rps = fig.add_subplot(1, 3, 1)
        ax_lat = fig.add_subplot(1, 3, 2)
        ax_cpu = fig.add_subplot(1, 3, 3)
        self.grouped_bars(ax_rps, scenario, lambda p: p.rps, "throughput (requests/s)", metric="rps")
        ax_rps.set_title("throughput" + (" (achieved rate)" if scenario == "open-loop" else ""), fontsize=10)
        ax_rps.set_xlabel("point (cN = N concurrent connections)")
        busiest = self.run.busiest_label(scenario)
        self.percentile_curves(ax_lat, scenario, busiest, uncorrected=scenario == "open-loop")
        self.grouped_bars(ax_cpu, scenario, lambda p: p.server_cpu_us_per_req, "server CPU (µs/request)",
                         metric="cpu")
        ax_cpu.set_title("server CPU per request", fontsize=10)
        ax_cpu.set_xlabel("point")
        self.save(fig, f"scenario_{scenario}", SCENARIO_TITLES.get(scenario, scenario))

    def microbench_readiness(self):
        series = readiness_series(microbench_times_us(self.run.microbench))
        if not series:
            return
        fig, ax = plt.subplots(figsize=(8, 5.5))
        # Each mechanism drawn as the model that uses it.
        users = {"select": "select", "poll": "poll", "epoll_wait": "epoll"}
        for mech, pts in sorted(series.items()):
            st = model_style(users.get(mech, mech))
            ax.plot([n for n, _ in pts], [us for _, us in pts], label=mech, color=st["color"],
                    marker=st["marker"], linestyle=st["linestyle"])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("registered descriptors N, one of them ready (log scale)")
        ax.set_ylabel("time per call (µs, log scale)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(title="mechanism")
        self.save(fig, "microbench_readiness", "Readiness scaling: cost of one call vs descriptors watched",
                  model_legend=False)

    def microbench_dispatch(self):
        costs = dispatch_costs(microbench_times_us(self.run.microbench))
        if not costs:
            return
        fig, ax = plt.subplots(figsize=(9, 5))
        ax.barh([label for label, _ in costs], [us for _, us in costs], color="#1f77b4")
        for i, (_, us) in enumerate(costs):
            ax.text(us, i, f" {us:,.2f} µs", va="center", fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel("time per operation (µs, log scale)")
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3, which="both")
        self.save(fig, "microbench_dispatch", "Per-connection dispatch costs (microbenchmarks)", model_legend=False)

    def capacity_charts(self):
        self.written += capacity_plots.capacity_charts(self.run.path, self.out_dir)

    def timeseries_charts(self):
        self.written += capacity_plots.timeseries_charts(self.run.path, self.out_dir)

    def soak_charts(self):
        self.written += soak_plots.soak_charts(self.run.path, self.out_dir)

    def counts_chart(self):
        counts.counts_chart(self.run, self.out_dir, self.save_plain)

    def chart_jobs(self):
        """Every chart of the run, as (method, arguments): each draws one or a few files."""
        return [("throughput_vs_connections", ()), ("latency_percentiles", ()), ("server_cpu", ()),
                ("memory_and_threads", ()), ("idle_capacity", ()),
                *(("scenario_chart", (scenario,)) for scenario in self.run.scenarios()),
                ("microbench_readiness", ()), ("microbench_dispatch", ()), ("capacity_charts", ()),
                ("timeseries_charts", ()), ("soak_charts", ()), ("counts_chart", ())]

    def draw_all(self):
        """Every chart, in order. Rendering is most of a redraw's time and each chart stands alone,
        so processes forked from this one draw them, one per CPU."""
        processes = min(len(os.sched_getaffinity(0)), 4)
        with concurrent.futures.ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork"),
                                                    initializer=_start_drawing, initargs=(self,)) as pool:
            for written in pool.map(_draw, self.chart_jobs()):
                self.written += written

    def save_plain(self, fig, name, title):
        """save() with the model legend the chart draws itself."""
        self.save(fig, name, title, model_legend=False)


_charts = None   # in a drawing process: its copy of the Charts, inherited through fork


def _start_drawing(charts):
    global _charts
    _charts = charts


def _draw(job):
    """One of Charts.chart_jobs, in a drawing process: the paths it wrote."""
    method, args = job
    before = len(_charts.written)
    getattr(_charts, method)(*args)
    return _charts.written[before:]
