#!/usr/bin/env python3
"""Print a run's comparison table on the terminal (standard library only).

usage: print_table.py RUN_DIR

Two tables, model x point: requests/s and server CPU µs per request (medians of
the repeats), with n/a, failed, unsupported shown as such and `!` after a value
whose point counted load-generator errors. run_all.sh prints it at the end of a
run; the charts and summary.md say the same at length.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_results import RunError, load_run  # noqa: E402
from serverbench.scenarios import SCENARIO_SHORT  # noqa: E402

SHORT = {"not-applicable": "n/a", "failed": "FAILED", "unsupported": "unsupp."}


def compact(v):
    if v is None:
        return "?"
    if v >= 1e6:
        return f"{v / 1e6:.1f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}" if v >= 10 else f"{v:.1f}"


def column_title(scenario, label):
    return f"{SCENARIO_SHORT.get(scenario, scenario)} {label.replace('idle', 'i').replace('KiB', 'K')}"


def table(run, value, title, out):
    columns = [(s, label) for s in run.scenarios() for label in run.labels(s)]
    width = max([8] + [len(column_title(s, label)) for s, label in columns])
    name_w = max([5] + [len(m) for m in run.models])
    print(title, file=out)
    print(f"{'model':<{name_w}} " + " ".join(f"{column_title(s, label):>{width}}" for s, label in columns), file=out)
    for model in run.models:
        cells = []
        for s, label in columns:
            p = run.get(model, s, label)
            if p is None:
                text = "-"
            elif p.status != "ok":
                text = SHORT.get(p.status, p.status)
            else:
                text = compact(value(p)) + ("!" if p.errors else "")
            cells.append(f"{text:>{width}}")
        print(f"{model:<{name_w}} " + " ".join(cells), file=out)
    print("", file=out)


def main(argv):
    if len(argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    try:
        run = load_run(argv[1])
    except RunError as e:
        sys.stderr.write(f"print_table.py: {e}\n")
        return 2
    table(run, lambda p: p.rps, "requests/s (median; ! = the load generator counted errors)", sys.stdout)
    table(run, lambda p: p.server_cpu_us_per_req, "server CPU µs per request (lower is cheaper)", sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
