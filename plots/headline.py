"""The README's headline table, printed from a run folder: requests/s of every model at the
busiest point of five scenarios, the median of the repeats with their range, and what flags a
figure. `python3 -m plots.headline results/baseline` prints the table the README shows, and
tests/scripts/test_docs_headline.py checks that the two agree."""
import sys

from serverbench.units import compact

from . import marks
from .run_results import print_run_table

COLUMNS = [("http-keepalive", "c50", "keep-alive, 50"), ("http-close", "c50", "close, 50"),
           ("cpu-bound", "c50", "cpu-bound, 50"), ("io-wait", "c50", "io-wait, 50"),
           ("idle-conns", "idle1000-c50", "1000 idle + 50 active")]


def cell(p):
    """The median and the range of the repeats, then what flags the point (⚠ and its flags)."""
    if p is None:
        return "–"
    if p.status != "ok":
        return marks.STATUS_MARK.get(p.status, p.status)
    values = [v for v in p.samples.get("rps", []) if v is not None]
    text = compact(p.rps)
    if len(values) > 1:
        text += f" ({compact(min(values))}-{compact(max(values))})"
    flags = marks.flag_text(p)
    return text + (f" ⚠ {flags}" if flags else "")


def headline_table(run):
    """The table as Markdown lines."""
    lines = ["| model | " + " | ".join(title for _, _, title in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    for model in run.models:
        cells = [cell(run.get(model, scenario, label)) for scenario, label, _ in COLUMNS]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None):
    return print_run_table("plots.headline", headline_table, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
