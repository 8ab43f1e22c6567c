"""The A/B comparison chart, comparison.png and comparison.svg: per gated metric, each row's
ratio B/A with its 95% interval and, wide and pale behind it, Welch's interval at the family's
level (the one the verdict answers to), coloured by verdict.

serverbench.comparison computes the rows and calls draw_comparison_chart from write_comparison;
so this module imports serverbench.stats only, never serverbench.comparison, and matplotlib
only when it draws (the driver imports it at start-up).
"""
from serverbench import stats


def verdict_colours(not_gated):
    """{verdict: colour} in the legend's order (Okabe-Ito: told apart by colour-blind readers
    too). not_gated: the verdict of a row whose metric is not gated at its point
    (serverbench.comparison.NOT_GATED), drawn hollow."""
    return {stats.SLOWER: "#d55e00", stats.FASTER: "#0072b2", stats.NO_CHANGE: "#555555", not_gated: "#999999"}


def _chart_panel(ax, metric, rows, not_gated):
    """Ratios with interval whiskers, one line per model x scenario x point, a block per model
    in the order the rows came (the driver's matrix order), drawn top-down."""
    colours = verdict_colours(not_gated)
    first = {}
    for i, r in enumerate(rows):
        first.setdefault(r["model"], i)
    rows = [r for _, r in sorted(enumerate(rows), key=lambda ir: (first[ir[1]["model"]], ir[0]), reverse=True)]
    band = rows[0]["min_effect"] if rows else stats.MIN_EFFECT
    ax.axvspan(1 - band, 1 + band, color="#dddddd", zorder=0)
    ax.axvline(1.0, color="black", linewidth=0.8, zorder=1)
    for y, r in enumerate(rows):
        if r["ratio"] is None:
            continue
        colour = colours.get(r["verdict"], "#555555")
        if r.get("family_ci_low") is not None:
            ax.plot([r["family_ci_low"], r["family_ci_high"]], [y, y], color=colour, alpha=0.25, linewidth=6,
                    solid_capstyle="butt", zorder=1.5)
        if r["ci_low"] is not None:
            ax.plot([r["ci_low"], r["ci_high"]], [y, y], color=colour, linewidth=1.2, zorder=2)
        hollow = r["verdict"] == not_gated
        ax.plot(r["ratio"], y, marker="o", markersize=4, zorder=3, color=colour,
                markerfacecolor="white" if hollow else colour)
    for y in range(1, len(rows)):
        if rows[y]["model"] != rows[y - 1]["model"]:
            ax.axhline(y - 0.5, color="#bbbbbb", linewidth=0.6, zorder=0)  # a block per model
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['model']} · {r['scenario']} · {r['point']}" for r in rows], fontsize=7)
    ax.set_ylim(-0.8, len(rows) - 0.2)
    ax.set_title(f"{metric} (band: ±{band:.0%})", fontsize=9)
    ax.set_xlabel("B / A (current / baseline)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)


def draw_comparison_chart(rows, png_path, svg_path, *, not_gated):
    """One panel per gated metric (a metric gated in at least one row); verdicts by colour,
    rows whose verdict is not_gated hollow. A run with no gated metric gets a single empty panel."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    metrics = [m for m in dict.fromkeys(r["metric"] for r in rows)
               if any(r["gated"] for r in rows if r["metric"] == m)]
    per_panel = max([sum(r["metric"] == m for r in rows) for m in metrics] or [1])
    legend_columns = 6 if len(metrics) > 1 else 3   # the six entries fit one line from two panels up
    legend_lines = 6 // legend_columns
    fig, axes = plt.subplots(1, max(1, len(metrics)), squeeze=False,
                             figsize=(4.2 * max(1, len(metrics)) + 2, 1.2 + 0.2 * per_panel + 0.25 * legend_lines))
    for ax, metric in zip(axes[0], metrics):
        _chart_panel(ax, metric, [r for r in rows if r["metric"] == metric], not_gated)
    if not metrics:
        axes[0][0].set_title("no gated metric")
    handles = [Line2D([], [], color=c, marker="o", linestyle="-", label=v,
                      markerfacecolor="white" if v == not_gated else c)
               for v, c in verdict_colours(not_gated).items()]
    handles.append(Line2D([], [], color="#555555", alpha=0.25, linewidth=6, label="family interval"))
    handles.append(Patch(color="#dddddd", label="within the minimum effect"))
    fig.legend(handles=handles, loc="upper center", ncol=legend_columns, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 * (legend_lines + 0.2) / fig.get_figheight()))
    fig.savefig(png_path, dpi=110)
    fig.savefig(svg_path)
    plt.close(fig)
