#!/usr/bin/env python3
"""python3 -m plots (the redraw command) on the fixture run: every chart in PNG and SVG, a
summary.md that shows statuses as such and ends with the verdict table, and report.html:
self-contained, every section, flagged points never ranked, and what the run can tell (nothing
below three repeats; winners, ties and losses beyond the noise with enough). Exit 77 (skip)
without matplotlib or SciPy."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURE = os.path.join(HERE, "fixtures", "run-a")
# The redraw command, run from the repository root (the plots package needs it on the path).
PLOT = [sys.executable, "-m", "plots"]
CHARTS = ["throughput_vs_connections", "latency_percentiles", "server_cpu_per_request",
          "server_memory_threads", "idle_capacity", "microbench_readiness", "microbench_dispatch",
          "scenario_http-keepalive", "scenario_http-close", "scenario_cpu-bound", "scenario_io-wait",
          "scenario_idle-conns", "scenario_open-loop"]


class PlotResultsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = os.path.join(cls.tmp.name, "charts")
        cls.proc = subprocess.run(PLOT + [FIXTURE, "--out", cls.out], cwd=ROOT,
                                  capture_output=True, text=True, timeout=120)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_exits_zero(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)

    def test_every_chart_in_png_and_svg(self):
        for chart in CHARTS:
            for ext in ("png", "svg"):
                path = os.path.join(self.out, f"{chart}.{ext}")
                self.assertTrue(os.path.isfile(path), f"missing {chart}.{ext}")
                self.assertGreater(os.path.getsize(path), 1000, f"{chart}.{ext} is nearly empty")
        with open(os.path.join(self.out, "throughput_vs_connections.png"), "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_no_soak_without_soak_json(self):
        self.assertFalse(os.path.exists(os.path.join(self.out, "soak.md")))
        self.assertFalse([n for n in os.listdir(self.out) if n.startswith("soak")])

    def test_summary_tables(self):
        with open(os.path.join(self.out, "summary.md")) as f:
            text = f.read()
        self.assertNotIn("## Soak", text)
        for needle in ("| model |", "n/a", "unsupported", "failed", "61,200", "## Verdicts",
                       "thread spawn + join", "epoll_wait", "**holds**"):
            self.assertIn(needle, text)
        # every model of the manifest has a row in the overview
        overview = text.split("## Overview")[1].split("\n## ")[0]
        for model in ("blocking", "thread-per-conn", "thread-pool", "fork-per-conn", "select", "epoll", "io-uring"):
            self.assertIn(f"| {model} |", overview)
        verdict_rows = [l for l in text.split("## Verdicts")[1].splitlines() if l.startswith("| ") and "claim" not in l]
        sys.path.insert(0, ROOT)
        from plots.claims import CLAIMS
        self.assertEqual(len(verdict_rows), len(CLAIMS))
        # Claims state their margin, and with one or two repeats most are inconclusive, not "holds".
        self.assertIn("margin", text)
        self.assertIn("inconclusive", text)
        # Medians carry their spread where the point has repeats (epoll c50: 60,000 and 62,400).
        self.assertIn("61,200 [60,000–62,400]", text)

    def report(self):
        with open(os.path.join(self.out, "report.html"), encoding="utf-8") as f:
            return f.read()

    def test_report_is_self_contained(self):
        text = self.report()
        self.assertTrue(text.startswith("<!DOCTYPE html>"))
        self.assertNotRegex(text, r"<(link|img|iframe|object|embed)\b")
        self.assertNotRegex(text, r"<script[^>]+src=")
        self.assertNotRegex(text, r"url\((?!#)|@import|@font-face")
        # The only http(s) strings left are XML namespace names, which are never fetched.
        for url in re.findall(r"https?://[^\s\"')<]+", text):
            self.assertRegex(url, r"^http://www\.w3\.org/")
        self.assertGreaterEqual(text.count("<svg "), 8)
        self.assertIn("@media print", text)

    def test_report_sections(self):
        text = self.report()
        for ident in ("run", "headline", "reading", "over-time", "soak", "comparison", "claims", "microbench",
                      "counts", "scenario-http-keepalive", "scenario-idle-conns", "scenario-open-loop"):
            self.assertIn(f'<section id="{ident}">', text)
        self.assertIn("Counted work: not measured in this run", text)
        self.assertIn("Soak: not measured in this run", text)
        self.assertIn("A/B comparison: not measured in this run", text)
        self.assertIn("Capacity curves: not measured in this run", text)
        # the fixture's series are one interval long: nothing to draw over time
        self.assertIn("Latency over time: not measured in this run", text)

    def test_report_never_ranks_a_point_with_errors(self):
        text = self.report()
        keepalive = text.split('<section id="scenario-http-keepalive">')[1].split("</section>")[0]
        self.assertIn("blocking: not ranked (4,900 errors, 1 of 50 connected)", keepalive)
        self.assertIn("the run cannot tell", keepalive)
        self.assertNotIn("won by", keepalive)

    def test_bad_input_exits_2(self):
        with tempfile.TemporaryDirectory() as empty:
            proc = subprocess.run(PLOT + [empty, "--out", os.path.join(empty, "o")], cwd=ROOT,
                                  capture_output=True, text=True, timeout=60)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("manifest.json", proc.stderr)


def write_json(path, doc):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f)


def repeated_run(root):
    """The fixture with four repeats of http-keepalive c50 for three models (epoll and select tied
    within their spread, thread-pool clearly slower), a capacity.json and counts in one result."""
    run = os.path.join(root, "run")
    shutil.copytree(FIXTURE, run)
    with open(os.path.join(run, "manifest.json")) as f:
        manifest = json.load(f)
    with open(os.path.join(run, "points/epoll/http-keepalive/c50-r1.json")) as f:
        template = json.load(f)
    figures = {"epoll": [60000, 61000, 62000, 60500], "select": [59500, 61500, 62500, 60000],
               "thread-pool": [40000, 41000, 40500, 40800]}
    keep = [e for e in manifest["points"] if not (e["scenario"] == "http-keepalive" and e["point"] == "c50"
                                                 and e["model"] in figures)]
    for model, values in figures.items():
        for rep, rps in enumerate(values, 1):
            rel = f"points/{model}/http-keepalive/c50-r{rep}.json"
            doc = dict(template, model=model, totals=dict(template["totals"], throughput_rps=rps))
            doc["timeseries"] = [{"t_s": t, "requests": rps + 100 * t, "errors": 0, "p99_us": 2000 + 10 * t}
                                 for t in (1, 2, 3)]
            write_json(os.path.join(run, rel), doc)
            keep.append({"model": model, "scenario": "http-keepalive", "point": "c50", "connections": 50,
                         "repeat": rep, "file": rel, "reason": None, "idle_connections": 0, "status": "ok"})
    # epoll's counting trial, as counting.py writes it.
    rel = "points/epoll/http-keepalive/c50-count-r1.json"
    write_json(os.path.join(run, rel), dict(template, counts={
        "tool": "perf stat", "requests": 30000,
        "server": {"syscalls_per_request": 2.05, "context_switches_per_request": 0.01,
                   "top_syscalls_per_request": {"read": 1.0, "write": 1.0, "epoll_wait": 0.05}}}))
    keep.append({"model": "epoll", "scenario": "http-keepalive", "point": "c50", "connections": 50, "repeat": 1,
                 "file": rel, "reason": None, "idle_connections": 0, "status": "ok", "kind": "count"})
    manifest["points"] = keep
    write_json(os.path.join(run, "manifest.json"), manifest)
    # The open loop is one of the points whose course over time is drawn.
    path = os.path.join(run, "points/epoll/open-loop/c50-r1.json")
    with open(path) as f:
        doc = json.load(f)
    doc["timeseries"] = [{"t_s": t, "requests": 2000, "errors": 0, "p99_us": 300 + t} for t in (0.1, 0.2, 0.3)]
    doc["config"]["interval_ms"] = 100
    write_json(path, doc)
    steps = [{"offered_rps": r, "achieved_rps": r, "p50_us": 100, "p99_us": 200 + r / 100, "p99_9_us": 900,
              "server_cpu_us_per_req": 10, "errors": 0, "loadgen_bound": False} for r in (1000, 5000, 9000)]
    write_json(os.path.join(run, "capacity.json"), {"schema": "serverbench.capacity/1", "records": [{
        "model": "epoll", "scenario": "capacity", "connections": 50, "slo_p99_ms": 20, "status": "ok",
        "capacity_rps": 9000, "capacity_text": "9,000", "saturation_rps": 9000, "saturation_text": "9,000",
        "closed_loop_max_rps": 12000, "bound": "server", "trials": 3, "sweep_s": 4.2, "steps": steps}]})
    write_comparison(run, template)
    return run


def write_comparison(run, template):
    """comparison.json/.md/.svg as the A/B module writes them, for one model and point."""
    sys.path.insert(0, ROOT)
    from serverbench import comparison
    trials = []
    for side, values in (("A", [100, 101, 99, 100, 102, 98]), ("B", [120, 121, 119, 122, 118, 120])):
        for rps in values:
            doc = dict(template, totals=dict(template["totals"], throughput_rps=rps * 600))
            trials.append(comparison.trial_record(doc, side, "c50"))
    comparison.write_comparison(run, comparison.compare_trials(trials))


class ReportWithRepeatsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        run = repeated_run(cls.tmp.name)
        cls.proc = subprocess.run(PLOT + [run], cwd=ROOT, capture_output=True, text=True, timeout=120)
        with open(os.path.join(run, "report.html"), encoding="utf-8") as f:
            cls.text = f.read()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_exits_zero(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)

    def test_winners_and_losers_beyond_the_noise(self):
        keepalive = self.text.split('<section id="scenario-http-keepalive">')[1].split("</section>")[0]
        c50 = keepalive.split('data-point="c50"')[1].split("</ul>")[0]
        self.assertRegex(c50, r"a tie within the noise between (epoll, select|select, epoll) ")
        self.assertRegex(c50, r"thread-pool: 40,650 req/s, -33\.\d% vs the best \(95% CI [^)]*\), beyond the noise")
        self.assertRegex(c50, r"(select|epoll): [\d,]+ req/s, [-+]\d\.\d% vs the best \(95% CI [^)]*\), "
                              r"within the noise")
        self.assertIn("thread-per-conn: 45,900 req/s, not ranked (2 repeat(s)", c50)
        self.assertIn("blocking: not ranked (4,900 errors", c50)

    def test_comparison_section(self):
        ab = self.text.split('<section id="comparison">')[1].split("</section>")[0]
        self.assertIn('aria-label="Ratios B/A', ab)
        self.assertIn("throughput_rps", ab)
        self.assertNotIn("not measured", ab)

    def test_capacity_and_counts_sections(self):
        over_time = self.text.split('<section id="over-time">')[1].split("</section>")[0]
        self.assertIn('aria-label="Latency against offered load', over_time)
        self.assertIn("9,000", over_time)
        self.assertIn('aria-label="Throughput and p99 per interval', over_time)
        counts = self.text.split('<section id="counts">')[1].split("</section>")[0]
        self.assertIn("system calls", counts)
        self.assertIn("2.050", counts)
        self.assertIn("epoll_wait 0.05", counts)


class MarksTest(unittest.TestCase):
    def test_every_model_has_its_own_colour_and_marker(self):
        sys.path.insert(0, ROOT)
        from plots import marks
        from serverbench.scenarios import MODEL_ORDER
        styles = [marks.model_style(m) for m in MODEL_ORDER]
        self.assertEqual(len({s["color"] for s in styles}), 12)
        self.assertEqual(len({s["marker"] for s in styles}), 12)
        self.assertEqual(marks.model_style("epoll"), marks.model_style("epoll"))


class RunFactsTest(unittest.TestCase):
    def test_the_report_says_where_the_server_and_the_load_ran(self):
        sys.path.insert(0, ROOT)
        from plots import report_run
        self.assertEqual(report_run.hosts_text({}), "this machine only")
        clients = [{"host": "h1"}, {"host": "bench@h2"}]
        remote = report_run.hosts_text({"hosts": {"server": {"host": "srv1"}, "clients": clients}})
        self.assertTrue(remote.startswith("server on srv1; 2 load generator(s) over ssh: h1, bench@h2"), remote)
        # Run folders written when the server could only be local say "server": "local".
        for server in ("local", {"host": "local"}):
            self.assertTrue(report_run.hosts_text({"hosts": {"server": server, "clients": clients[:1]}})
                            .startswith("server on this machine; 1 load generator(s) over ssh: h1"))


if __name__ == "__main__":
    try:
        import matplotlib  # noqa: F401
        import scipy  # noqa: F401
    except ImportError:
        print("SKIP: no matplotlib or SciPy in this python (apt-get install -y python3-matplotlib python3-scipy)")
        sys.exit(77)
    unittest.main()
