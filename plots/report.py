"""report.html: one self-contained file per run, the charts inline.

`write_report(run, out_dir)` reads the SVG charts that `python3 -m plots` has just drawn into
out_dir, and the run's other files (comparison.json, capacity.json, soak.json), and writes
out_dir/report.html: the CSS inline (report.css, beside this file), charts inline as SVG (their
text drawn as paths, so no font is fetched), a few lines of plain JavaScript inline that make
the tables sortable (report.js), nothing loaded from the network. With JavaScript off every
table is already in a sensible order.

Sections: the run (report_run.py); the headline table, how to read the charts, one section per
scenario: what it tests, what this run shows, chart, table (report_scenarios.py); capacity and
latency over time (report_findings.py); the soak (report_soak.py); the A/B comparison, the claim
verdicts, the microbenchmarks, counted work (report_findings.py). A section whose data the run
lacks says so. Their HTML pieces are report_html.py's; this module puts the page together.
"""
import os
from importlib import resources

from serverbench.scenarios import SCENARIO_TITLES

from .report_findings import (claims_section, comparison_section, counts_section, microbench_section,
                              over_time_section, pairs_section)
from .report_html import E, section
from .report_run import run_section
from .report_soak import soak_section
from .report_scenarios import headline_section, reading_section, scenario_section


def page_asset(name):
    """The text of a file of this package that the page inlines: report.css, its style (screen
    and print), and report.js, which sorts a table by the clicked column (numbers by data-v, a
    cell's raw value, text otherwise; a second click reverses; without JavaScript the tables
    keep their printed order)."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def sections(run, out_dir):
    """[(id, heading, html)] in the report's order."""
    out = [("run", "The run", run_section(run)),
           ("headline", "Headline: medians with their spread", headline_section(run, out_dir)),
           ("reading", "How to read the charts", reading_section(run))]
    for s in run.scenarios():
        out.append((f"scenario-{s}", f"Scenario {s}: {SCENARIO_TITLES.get(s, s)}", scenario_section(run, s, out_dir)))
    out += [("over-time", "Capacity and latency over time", over_time_section(run, out_dir)),
            ("soak", "Soak: memory, descriptors and p99 over time", soak_section(run, out_dir)),
            ("comparison", "A/B comparison", comparison_section(run)),
            ("pairs", "The models beside their production forms", pairs_section(run)),
            ("claims", "Claim verdicts", claims_section(run)),
            ("microbench", "Microbenchmarks", microbench_section(run, out_dir)),
            ("counts", "Counted work", counts_section(run, out_dir))]
    return out


def render(run, out_dir):
    parts = sections(run, out_dir)
    toc = "".join(f'<li><a href="#{ident}">{E(title)}</a></li>' for ident, title, _ in parts)
    body = "\n".join(section(ident, title, text) for ident, title, text in parts)
    m = run.manifest
    css, js = page_asset("report.css"), page_asset("report.js")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>serverbench run {E(run.run_id)}</title>\n<style>\n{css}</style></head>\n<body>\n"
            f"<h1>serverbench run {E(run.run_id)}</h1>\n"
            f'<p class="note">Profile {E(str(m.get("profile")))}, {E(str(m.get("repeat", 1)))} repeat(s) per point, '
            f'{len(run.models)} models, {len(run.scenarios())} scenarios. This one file holds the whole report: '
            f"it needs no network and prints with one section per page.</p>\n"
            f"<nav><ol>{toc}</ol></nav>\n{body}\n<script>\n{js}</script>\n</body></html>\n")


def write_report(run, out_dir):
    """Writes out_dir/report.html from the run and the charts already in out_dir; returns its path."""
    path = os.path.join(out_dir, "report.html")
    text = render(run, out_dir)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return path
