"""Charts of the soak (soak.json, schema serverbench-soak/1: docs/soak.md); its tables are
soak_table.py's.

    /usr/bin/python3 -m plots.soak_plots RUN_DIR [--out DIR]     (from the repository root)

* load_soak(run_dir) -> [records] ([] without soak.json), from soak_table.py.
* soak_charts(run_dir, out_dir) -> [paths]: one figure per metric, one small panel per model with
  an ok record, every panel on the same axes so that the models compare at a glance:
  soak_memory (the server's PSS), soak_descriptors (its open descriptors), soak_p99 (the
  keep-alive clients' p99 per interval) and soak_loadgen_memory (loadgen's own PSS, a figure of
  its own: its scale is not the servers', and it must stay flat for theirs to mean anything).
  x: minutes from the soak's start; the settle, the drain and the reload are shaded.
* main: the charts and soak.md (soak_table.write_soak_md).
"""
import math
import os
import statistics
import sys
import textwrap

from serverbench.units import number

from . import redraw_part
from .marks import model_color
from .soak_table import interval_text, kib, load_soak, soak_doc, soaked, verdict_of, verdict_title, write_soak_md

CHARTS = ("soak_memory", "soak_descriptors", "soak_p99", "soak_loadgen_memory")
# The phases around the soak itself, shaded in every panel (the soak is left white).
# Neutral and pale, so that every model's colour reads on each of them.
SHADES = {"settle": "#ececec", "drain": "#cfcfcf", "reload": "#e9e3f3"}
VERDICT_COLORS = {"grows": "#b00000", "cannot tell": "#6a4c00"}


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


# ------------------------------------------------------------------ the series and the phases


def minutes(t_s):
    return t_s / 60


def sample_series(record, key, scale=1.0):
    """[(minutes, value)] of the tree's samples that carry key."""
    return [(minutes(s["t_s"]), s[key] * scale) for s in record["samples"] if s.get(key) is not None]


def p99_series(record):
    """{phase: [(minutes, p99 ms)]}: one line per phase, so that none is drawn across the drain.
    An interval without a reply has no p99 (null or 0) and no place on a log axis."""
    out = {}
    for i in record.get("intervals") or []:
        if i.get("p99_us"):
            out.setdefault(i["phase"], []).append((minutes(i["t_s"]), i["p99_us"] / 1000))
    return out


def _times(record, phase):
    rows = (record.get("samples") or []) + (record.get("intervals") or [])
    return [r["t_s"] for r in rows if r.get("phase") == phase]


def phase_spans(record):
    """[(phase, start, end)] in minutes, from what the samples and intervals are labelled. An
    interval is stamped at its end, so the reload began one interval before its first."""
    spans, settle, reload = [], _times(record, "settle"), _times(record, "reload")
    if settle:
        spans.append(("settle", minutes(min(settle)), 0.0))
    soak_end = max(_times(record, "soak") + [record.get("soak_s") or 0])
    if reload:
        first_sample = min((s["t_s"] for s in record["samples"] if s.get("phase") == "reload"), default=math.inf)
        first_interval = min((i["t_s"] for i in record.get("intervals") or [] if i.get("phase") == "reload"),
                             default=math.inf)
        reload_start = max(soak_end, min(first_sample, first_interval - interval_s(record)))
        spans += [("drain", minutes(soak_end), minutes(reload_start)),
                  ("reload", minutes(reload_start), minutes(max(reload)))]
    elif _times(record, "drain"):
        spans.append(("drain", minutes(soak_end), minutes(max(_times(record, "drain")))))
    return spans


def interval_s(record):
    """The length of loadgen's intervals: the usual gap between two of the soak's."""
    t = sorted(i["t_s"] for i in record.get("intervals") or [] if i.get("phase") == "soak")
    gaps = [b - a for a, b in zip(t, t[1:]) if b > a]
    return statistics.median(gaps) if gaps else 1.0


# ------------------------------------------------------------------ the charts


def _grid(n):
    cols = min(n, 3)
    return math.ceil(n / cols), cols


def panels(n, ylabel):
    """A figure of n small panels sharing both axes; returns (fig, the n axes)."""
    plt = _plt()
    rows, cols = _grid(n)
    fig, axes = plt.subplots(rows, cols, figsize=(max(9.0, 4.3 * cols + 0.8), 2.7 * rows + 1.6), sharex=True,
                             sharey=True, squeeze=False)
    flat = list(axes.flat)
    for k, ax in enumerate(flat[n:]):
        ax.set_visible(False)
        flat[n - cols + k].xaxis.set_tick_params(labelbottom=True)   # the panel above an empty one
    for ax in flat[max(n - cols, 0):n]:
        ax.set_xlabel("minutes from the soak's start", fontsize=8)
    fig.supylabel(ylabel, fontsize=9)
    return fig, flat[:n]


def shade_phases(ax, record):
    """The phases around the soak shaded; the drain's start dashed too, since a drain of a
    second or two is a hairline on a soak of minutes."""
    for phase, start, end in phase_spans(record):
        ax.axvspan(start, end, color=SHADES[phase], lw=0, zorder=0)
        if phase == "drain":
            ax.axvline(start, color="#808080", lw=0.9, ls="--", zorder=0.5)


def panel_title(ax, record, metric):
    """The model and its verdict (on loadgen's chart, loadgen's own); the frame red when this
    panel's metric is what grew."""
    v = verdict_of(record)
    verdict, title = v.get("verdict"), verdict_title(record)
    if metric == "loadgen":
        verdict = (v.get("loadgen") or {}).get("verdict")
        title = f"{record['model']}'s loadgen: {verdict or '?'}"
    ax.set_title(title, fontsize=9, color=VERDICT_COLORS.get(verdict, "black"))
    if metric in (v.get("grew") or []) or (metric == "loadgen" and verdict == "grows"):
        for spine in ax.spines.values():
            spine.set_edgecolor("#b00000")
            spine.set_linewidth(1.6)


def corner_note(ax, text):
    ax.text(0.02, 0.96, text, transform=ax.transAxes, va="top", fontsize=7, color="#333333",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.75, "pad": 1.5})


def unjudged(part):
    """A verdict part without figures, in a few words."""
    return ": ".join(x for x in (part.get("verdict"), part.get("why")) if x) or "no verdict"


def kib_note(part, reload=False):
    if part.get("slope_kib_per_min") is None:
        return unjudged(part)
    text = f"{kib(part['slope_kib_per_min'])} KiB/min {interval_text(part)}"
    return text + (f"\nreload {kib(part.get('reload_kib_per_min'))} KiB/min" if reload else "")


def draw_memory(ax, record):
    xy = sample_series(record, "pss_kib", 1 / 1024)
    if xy:
        ax.plot(*zip(*xy), color=model_color(record["model"]), lw=1.3)
    corner_note(ax, kib_note(verdict_of(record).get("memory") or {}, reload=True))


def draw_loadgen(ax, record):
    xy = sample_series(record, "loadgen_pss_kib", 1 / 1024)
    if xy:
        ax.plot(*zip(*xy), ".", color=model_color(record["model"]), ms=2.5)
    corner_note(ax, kib_note(verdict_of(record).get("loadgen") or {}))


def draw_descriptors(ax, record):
    """The open descriptors, the count before the load dotted, and the count after the drain
    marked where the drain ended: the verdict compares those two."""
    color = model_color(record["model"])
    xy = sample_series(record, "fds")
    if xy:
        ax.plot(*zip(*xy), color=color, lw=1.1)
    before, after = (record.get("before") or {}).get("fds"), (record.get("after_drain") or {}).get("fds")
    if before is not None:
        ax.axhline(before, color="#333333", ls=":", lw=1)
    drain = [end for phase, _, end in phase_spans(record) if phase == "drain"]
    if after is not None and drain:
        ax.plot(drain[0], after, "x", color="#b00000" if after != before else "#333333", ms=7, mew=1.8)
    corner_note(ax, f"{before if before is not None else '?'} before → {after if after is not None else '?'} "
                    f"after the drain")


def draw_p99(ax, record):
    color = model_color(record["model"])
    for xy in p99_series(record).values():
        ax.plot(*zip(*xy), color=color, lw=0.9)
    p99 = verdict_of(record).get("p99") or {}
    if p99.get("start_ms") is not None:
        corner_note(ax, f"fit from {p99['start_ms']:.2f} ms, {p99.get('rise_ms', 0):+.2f} ms "
                        f"(bound {p99.get('bound_ms', '?')} ms)")
    else:
        corner_note(ax, unjudged(p99))


# name: (drawing, metric judged, y label, title, what the marks mean, log scale)
FIGURES = {
    "soak_memory": (draw_memory, "memory", "server PSS, all its processes (MiB)",
                    "the server's memory (PSS) over time", "note: the slope over the soak's steady part", False),
    "soak_descriptors": (draw_descriptors, "descriptors", "open descriptors, all server processes",
                         "the server's open descriptors over time",
                         "dotted: the count before the load; x: after the drain, red when it differs", False),
    "soak_p99": (draw_p99, "p99", "keep-alive clients' p99 per interval (ms, log)",
                 "the keep-alive clients' p99 latency over time", "note: the fitted line's start and rise", True),
    "soak_loadgen_memory": (draw_loadgen, "loadgen", "loadgen's own PSS (MiB)",
                            "the load generator's own memory (PSS)",
                            "it must stay flat for the server's figures to count; note: the slope over the soak's "
                            "steady part", False),
}


def soak_figure(name, records, others, minutes_each, out_dir, written):
    draw, metric, ylabel, title, key, log = FIGURES[name]
    fig, axes = panels(len(records), ylabel)
    for ax, record in zip(axes, records):
        shade_phases(ax, record)
        draw(ax, record)
        panel_title(ax, record, metric)
        ax.grid(True, which="both", alpha=0.3)
    headroom(axes[0], log)
    fig.suptitle(f"Soak, {number(minutes_each)} min per model: {title}", fontsize=11, fontweight="bold")
    # About 17 characters of 7.5 pt text to the inch: the footnote wraps within the figure.
    note = textwrap.wrap(footnote(key, others), int(17 * fig.get_figwidth()))
    fig.text(0.5, 0.005, "\n".join(note), ha="center", va="bottom", fontsize=7.5, color="#444444")
    phase_legend(fig)
    fig.tight_layout(rect=(0.0, 0.16 * len(note) / fig.get_figheight(), 1.0, 0.92))
    save(fig, out_dir, name, written)


def headroom(ax, log):
    """Room above the highest line for each panel's note (the axes are shared: one call sets all)."""
    if log:
        ax.set_yscale("log")
        low, high = ax.get_ylim()
        ax.set_ylim(low, high * (high / low) ** 0.3)
        plain_log_labels(ax)
    else:
        ax.set_ylim(0, ax.get_ylim()[1] * 1.3)


def plain_log_labels(ax):
    """0.3, 1, 20 rather than 3x10^-1; minor ticks labelled too when the axis spans less than a
    decade, else it could show one label or none."""
    from matplotlib.ticker import FuncFormatter

    def minor(v, _pos):
        low, high = ax.get_ylim()
        return f"{v:g}" if high / low < 10 else ""
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def footnote(key, others):
    """What the marks and the shading mean, and the models that were not soaked."""
    text = key + "; shaded: the settle (light grey), the drain (grey, from the dashed line), the reload (pale lavender)"
    if others:
        text += "; not soaked: " + ", ".join(f"{r['model']} ({r.get('status')})" for r in others)
    return text


def phase_legend(fig):
    from matplotlib.patches import Patch
    fig.legend([Patch(facecolor=c, edgecolor="#999999") for c in SHADES.values()], list(SHADES), loc="upper center",
               bbox_to_anchor=(0.5, 0.95), fontsize=8, ncol=3, frameon=False)


def save(fig, out_dir, name, written):
    for ext in ("png", "svg"):
        path = os.path.join(out_dir, f"{name}.{ext}")
        fig.savefig(path, dpi=110)
        written.append(path)
    _plt().close(fig)


def soak_charts(run_dir, out_dir=None):
    """Draws the soak's charts; returns the paths written ([] without an ok soak record)."""
    out_dir = out_dir or run_dir
    records = load_soak(run_dir)
    ok = soaked(records)
    if not ok:
        return []
    minutes_each = (soak_doc(run_dir) or {}).get("minutes") or ok[0].get("minutes")
    others = [r for r in records if r not in ok]
    written = []
    for name in CHARTS:
        soak_figure(name, ok, others, minutes_each, out_dir, written)
    return written


def main(argv=None):
    return redraw_part("plots.soak_plots", __doc__.splitlines()[0],
                       lambda run_dir, out: soak_charts(run_dir, out) + write_soak_md(run_dir, out), argv)


if __name__ == "__main__":
    sys.exit(main())
