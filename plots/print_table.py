"""Print a run's comparison table on the terminal (standard library, plus SciPy for the spread).

usage: python3 -m plots.print_table RUN_DIR     (from the repository root)

Two tables, model x point: requests/s and server CPU µs per request (medians of
the repeats, ±half the spread of the repeats), and a third of the datagrams lost when the run
has UDP points, with n/a, failed, unsupported shown as such and `!` after a value whose point counted load-generator errors, missed
connections or missed its open-loop rate. When the run has a soak (soak.json), a short table of
its verdicts follows: per model the verdict, what grew, the memory's slope and the open
descriptors before the load and after the drain. A run without matrix points prints only that.
run_all.sh prints it at the end of a run; the charts and summary.md say the same at length.
"""
import sys

from serverbench.scenarios import SCENARIO_SHORT
from serverbench.units import compact, number

from . import marks, soak_table
from .run_results import RunError, load_run

SHORT = {"not-applicable": "n/a", "failed": "FAILED", "unsupported": "unsupp."}


def column_title(scenario, label):
    return f"{SCENARIO_SHORT.get(scenario, scenario)} {label.replace('idle', 'i').replace('KiB', 'K')}"


def spread_pct(p, metric):
    """"±N%": half the width of the repeats' spread, relative to the median ("" with one repeat)."""
    span = marks.interval(p.samples.get(metric))
    median = marks.spread_of(p.samples.get(metric)).median if span else None
    if not span or not median:
        return ""
    return f"±{50 * (span[1] - span[0]) / abs(median):.0f}%"


def cell_text(p, value, metric):
    if p is None:
        return "-"
    if p.status != "ok":
        return SHORT.get(p.status, p.status)
    return compact(value(p)) + spread_pct(p, metric) + ("!" if marks.severity(p) == marks.BAD else "")


def table(run, value, metric, title, out, scenarios=None):
    columns = [(s, label) for s in scenarios or run.scenarios() for label in run.labels(s)]
    rows = {model: [cell_text(run.get(model, s, label), value, metric) for s, label in columns]
            for model in run.models}
    width = max([8] + [len(column_title(s, label)) for s, label in columns]
                + [len(text) for cells in rows.values() for text in cells])
    name_w = max([5] + [len(m) for m in run.models])
    print(title, file=out)
    print(f"{'model':<{name_w}} " + " ".join(f"{column_title(s, label):>{width}}" for s, label in columns), file=out)
    for model, cells in rows.items():
        print(f"{model:<{name_w}} " + " ".join(f"{text:>{width}}" for text in cells), file=out)
    print("", file=out)


SOAK_COLUMNS = (("model", "model"), ("verdict", "verdict"), ("grew", "grew"),
                ("memory", "memory KiB/min [95%]"), ("descriptors", "fds before → after"))


def print_soak(run_dir, out):
    """The soak's verdicts, one line per model (nothing without soak.json)."""
    doc, records = soak_table.soak_doc(run_dir), soak_table.load_soak(run_dir)
    if not records:
        return
    rows = [[row[key][0] for key, _ in SOAK_COLUMNS] for row in soak_table.soak_rows(records)]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, (_, h) in enumerate(SOAK_COLUMNS)]
    print(f"soak, {number(doc.get('minutes'))} min per model: does memory, descriptors, threads, "
          "processes or p99 grow? (soak.md has the rest)", file=out)
    for cells in [[h for _, h in SOAK_COLUMNS]] + rows:
        print("  ".join(f"{c:<{w}}" for c, w in zip(cells, widths)).rstrip(), file=out)
    print("", file=out)


def main(argv):
    if len(argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    try:
        run = load_run(argv[1])
    except RunError as e:
        sys.stderr.write(f"plots.print_table: {e}\n")
        return 2
    if run.points:   # a soak or capacity run alone has no matrix to tabulate
        print_matrix(run)
    print_soak(run.path, sys.stdout)
    return 0


def print_matrix(run):
    """The model x point tables: requests/s, server CPU per request, UDP losses."""
    table(run, lambda p: p.rps, "rps", "requests/s (median ±half its spread over the repeats; ! = errors, missing "
          "connections or a missed rate)", sys.stdout)
    table(run, lambda p: p.server_cpu_us_per_req, "cpu", "server CPU µs per request (lower is cheaper)", sys.stdout)
    udp = [s for s in run.scenarios() if any(p.loss_ratio is not None for p in run.points.values() if p.scenario == s)]
    if udp:
        table(run, lambda p: 100 * p.loss_ratio if p.loss_ratio is not None else None, "loss",
              "datagrams lost, % of those sent (UDP)", sys.stdout, udp)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
