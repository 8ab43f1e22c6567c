"""Counted work per request (issue: counted, not timed): a table and a chart of the system calls
and context switches each model's server makes per request, from the counting trials of a run.

Counts hardly move between repeats or days, unlike timings, but they do move with load (a
readiness loop batches more ready sockets per epoll_wait as load grows), so they are compared
at the same point: the same scenario, connections and offered load.
"""
import os
import sys

from serverbench.units import per_request

from .marks import model_style
from .run_results import print_run_table

COLUMNS = [("syscalls_per_request", "system calls"), ("context_switches_per_request", "switches"),
           ("voluntary_switches_per_request", "voluntary"), ("involuntary_switches_per_request", "involuntary"),
           ("cpu_migrations_per_request", "migrations"), ("page_faults_per_request", "page faults"),
           ("task_clock_us_per_request", "CPU µs")]


def counted_points(run):
    """Points whose counting trial has the server's counts, in the run's model and scenario order."""
    order = {m: i for i, m in enumerate(run.models)}
    pts = [p for p in run.points.values() if p.counts and p.counts.get("server")]
    scenarios = run.scenarios()
    return sorted(pts, key=lambda p: (scenarios.index(p.scenario), p.idle, p.connections, p.label,
                                      order.get(p.model, len(order))))


def top_calls(server):
    top = server.get("top_syscalls_per_request") or {}
    return ", ".join(f"{name} {v:.2f}" for name, v in top.items() if v >= 0.01) or "—"


def counts_table_md(run):
    """The summary's section on counted work: every counted point, the server's counts per
    request and its top system calls; loadgen's own system calls per request for reference."""
    pts = counted_points(run)
    lines = ["## Counted work: the server's system calls and context switches per request", ""]
    if not pts:
        return lines + ["Not measured in this run (no counting trial carried perf counts).", ""]
    lines += ["Counted with `perf stat` over loadgen's measured window only, in counting trials of their "
              "own (see docs/counts.md). Switches are all of them; voluntary ones (the thread slept) are "
              "counted by perf too, threads that ended during the window included.", "",
              "![counts](counts_per_request.png)", "",
              "| scenario | point | model | " + " | ".join(t for _, t in COLUMNS) +
              " | top system calls per request | loadgen syscalls/req |",
              "|---|---|---|" + "---:|" * len(COLUMNS) + "---|---:|"]
    for p in pts:
        s, lg = p.counts["server"], p.counts.get("loadgen") or {}
        lines.append(f"| {p.scenario} | {p.label} | {p.model} | " + " | ".join(per_request(s.get(k)) for k, _ in COLUMNS)
                     + f" | {top_calls(s)} | {per_request(lg.get('syscalls_per_request'))} |")
    return lines + [""]


def counts_chart(run, out_dir, save):
    """System calls and context switches per request at each counted point, one bar per model.
    save(fig, name, title) writes PNG and SVG (Charts.save)."""
    import matplotlib.pyplot as plt
    pts = counted_points(run)
    if not pts:
        return
    keys = []
    for p in pts:
        if (p.scenario, p.label) not in keys:
            keys.append((p.scenario, p.label))
    models = [m for m in run.models if any(p.model == m for p in pts)]
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 1.2 * len(keys) * max(1, len(models)) / 4), 7), sharex=True)
    width = 0.8 / max(len(models), 1)
    for ax, (metric, title) in zip(axes, COLUMNS[:2]):
        for i, model in enumerate(models):
            by_key = {(p.scenario, p.label): p.counts["server"].get(metric) for p in pts if p.model == model}
            xs = [k + i * width for k, key in enumerate(keys) if by_key.get(key) is not None]
            ys = [by_key[key] for key in keys if by_key.get(key) is not None]
            style = model_style(model)
            ax.bar(xs, ys, width, label=model, color=style["color"], edgecolor="black", linewidth=0.4)
        ax.set_ylabel(f"{title} per request")
        ax.grid(axis="y", alpha=0.3)
    axes[1].set_xticks([k + 0.4 - width / 2 for k in range(len(keys))])
    axes[1].set_xticklabels([f"{s}\n{label}" for s, label in keys], fontsize=8)
    axes[0].legend(ncol=min(len(models), 6), fontsize=7)
    save(fig, "counts_per_request", "Counted work per request (server, perf stat over the measured window)")
    return os.path.join(out_dir, "counts_per_request.png")


def main(argv=None):
    """python3 -m plots.counts RUN_DIR: print the counted-work table of a run (markdown)."""
    return print_run_table("plots.counts", counts_table_md, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
