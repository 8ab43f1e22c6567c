"""python3 -m plots RUN_DIR [--out DIR]: charts, summary.md and report.html for one run of run_all.sh.

Writes PNG and SVG charts, summary.md and report.html (report.py: the whole report in one
self-contained file, docs/report.md) into DIR (default: RUN_DIR itself, so a run folder holds
everything of its run and is redrawn in place). Run it from the repository root, or with the
root on PYTHONPATH. Needs matplotlib and SciPy: on Debian,
`apt-get install -y python3-matplotlib python3-scipy` and run it with /usr/bin/python3.
Exit 2 when RUN_DIR is not a run, 3 when matplotlib or SciPy is missing.
"""
import argparse
import importlib.util
import os
import sys

from .run_results import RunError, load_run


def missing_module():
    """The first of matplotlib (the charts) and SciPy (the spread and the verdicts:
    serverbench.stats) this Python lacks, or None."""
    return next((name for name in ("matplotlib", "scipy") if importlib.util.find_spec(name) is None), None)


def redraw(run, out_dir):
    """Every chart, capacity.md, soak.md, summary.md and report.html of the run into out_dir."""
    from . import capacity_plots, charts, report, soak_table, summary   # matplotlib and SciPy: after missing_module()
    os.makedirs(out_dir, exist_ok=True)
    drawn = charts.Charts(run, out_dir)
    drawn.draw_all()
    capacity_plots.write_capacity_md(run.path, out_dir)
    soak_table.write_soak_md(run.path, out_dir)
    with open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write(summary.summary_md(run, drawn.written))
    report.write_report(run, out_dir)
    print(f"plots: {len(drawn.written)} chart files, summary.md and report.html in {out_dir}")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m plots", description="Charts and summary.md for a run_all.sh run.")
    ap.add_argument("run_dir")
    ap.add_argument("--out", help="output folder (default: the run folder itself)")
    args = ap.parse_args(argv)
    missing = missing_module()
    if missing:
        sys.stderr.write(f"plots: {missing} is missing; install it with:\n"
                         "apt-get install -y python3-matplotlib python3-scipy\n(and run with /usr/bin/python3)\n")
        return 3
    try:
        run = load_run(args.run_dir)
    except RunError as e:
        sys.stderr.write(f"plots: {e}\n")
        return 2
    redraw(run, args.out or args.run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
