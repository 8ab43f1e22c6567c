"""plots: the charts, summary.md and report.html of a run folder written by run_all.sh.

A package run from the repository root (or with it on PYTHONPATH, as run_all.sh sets it):

    python3 -m plots RUN_DIR [--out DIR]         charts, summary.md and report.html (__main__.py)
    python3 -m plots.print_table RUN_DIR         the terminal tables the driver prints after a run
    python3 -m plots.counts RUN_DIR              the counted-work table (markdown)
    python3 -m plots.capacity_plots RUN_DIR      the capacity and over-time charts alone
    python3 -m plots.soak_plots RUN_DIR          the soak's charts and soak.md alone

It reads the driver's definitions (serverbench.scenarios, .stats, .power, .jsonfile, .steady);
those never import plots. Importing the package itself loads nothing: serverbench.comparison imports
one module of it (comparison_chart) without needing matplotlib until a chart is drawn.
"""


def redraw_part(module, description, draw, argv=None):
    """The main of a module that redraws its own part of a run folder (RUN_DIR [--out DIR]);
    draw(run_dir, out_dir) returns the paths it wrote."""
    import argparse
    import os
    ap = argparse.ArgumentParser(prog=f"python3 -m {module}", description=description)
    ap.add_argument("run_dir")
    ap.add_argument("--out", help="where the files go (default: the run folder)")
    args = ap.parse_args(argv)
    out = args.out or args.run_dir
    os.makedirs(out, exist_ok=True)
    written = draw(args.run_dir, out)
    print(f"{module}: {len(written)} file(s) in {out}")
    return 0
