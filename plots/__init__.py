"""plots: the charts, summary.md and report.html of a run folder written by run_all.sh.

A package run from the repository root (or with it on PYTHONPATH, as run_all.sh sets it):

    python3 -m plots RUN_DIR [--out DIR]         charts, summary.md and report.html (__main__.py)
    python3 -m plots.print_table RUN_DIR         the terminal tables the driver prints after a run
    python3 -m plots.counts RUN_DIR              the counted-work table (markdown)
    python3 -m plots.capacity_plots RUN_DIR      the capacity and over-time charts alone

It reads the driver's definitions (serverbench.scenarios, .stats, .power, .jsonfile, .steady);
those never import plots. Importing the package itself loads nothing: serverbench.comparison imports
one module of it (comparison_chart) without needing matplotlib until a chart is drawn.
"""
