#!/usr/bin/env python3
"""python3 -m plots on a run folder holding only a manifest without points and a soak.json (what
`run_all.sh --profile soak` leaves): the soak's charts in PNG and SVG, soak.md with each model's
verdict and what grew, summary.md and report.html with the soak section, the terminal table's
soak lines, and nothing of the matrix. The soak.json is synthetic but has the schema soak.py
writes (serverbench-soak/1): epoll flat, thread-pool leaking descriptors, blocking not
applicable. Exit 77 (skip) without matplotlib or SciPy."""
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PLOT = [sys.executable, "-m", "plots"]
CHARTS = ["soak_memory", "soak_descriptors", "soak_p99", "soak_loadgen_memory"]
TREE_KEYS = ("pss_kib", "rss_kib", "fds", "threads", "processes", "cpu_s")
PLAN = {"keepalive_conns": 8, "keepalive_rps": 1000, "churn_conns": 2, "churn_rps": 200, "idle_wave": 32,
        "wave_every_s": 10, "wave_hold_s": 4, "bad_every_s": 0.5, "max_bad": 4, "sample_s": 2.0, "interval": "1s",
        "settle_s": 3.0, "drain_s": 10.0, "reload_share": 0.25, "reload_min_s": 10.0, "minutes": 1.0}
THRESHOLDS = {"up_to_minutes": 2.0, "memory_kib_per_min": 512, "descriptors": 2, "threads": 0, "processes": 0,
              "p99_rise_ms": 5, "p99_rise_share": 1.0, "loadgen_kib_per_min": 512}
SOAK_S, RELOAD_S, RELOAD_START = 60.0, 15.0, 62.0


def phase_at(t):
    if t < 0:
        return "settle"
    if t <= SOAK_S:
        return "soak"
    return "drain" if t < RELOAD_START else "reload"


def tree(t, base_pss, base_fds, leak_fds_per_s):
    """The server's tree at t: idle waves open 32 descriptors for 4 s in every 10 during the loads,
    and a leak adds descriptors that never close."""
    wave = 32 if phase_at(t) in ("soak", "reload") and t % 10 < 4 else 0
    leaked = int(leak_fds_per_s * min(max(t, 0), SOAK_S)) + int(leak_fds_per_s * max(t - RELOAD_START, 0))
    return {"pss_kib": base_pss + int(40 * math.sin(t)), "rss_kib": 2 * base_pss, "fds": base_fds + wave + leaked,
            "threads": 5, "processes": 1, "cpu_s": round(0.01 * (t + 3), 2)}


def samples(base_pss, base_fds, leak):
    out, t = [], -3.0
    while t <= SOAK_S + RELOAD_S + 2:
        s = {"t_s": t, "unix_s": 1.7e9 + t, "phase": phase_at(t), **tree(t, base_pss, base_fds, leak),
             "loadgen_pss_kib": 3000 + int(10 * math.cos(t))}
        if out:
            s["requests"] = 2400
            s["cpu_us_per_request"] = 8.3 if s["phase"] == out[-1]["phase"] else None
        out.append(s)
        t += 2.0
    return out


def intervals(p99_ms):
    times = [(t, "soak") for t in range(1, int(SOAK_S) + 1)]
    times += [(t, "reload") for t in range(int(RELOAD_START) + 1, int(RELOAD_START + RELOAD_S) + 1)]
    return [{"t_s": float(t), "unix_s": 1.7e9 + t, "phase": phase, "requests": 1200, "errors": 0,
             "p99_us": None if t == 30 else round(1000 * p99_ms * (1 + 0.1 * math.sin(t))),
             "churn_p99_us": 900} for t, phase in times]


def count_part(name, before, after, limit):
    grows = after - before > limit
    return {"verdict": "grows" if grows else "flat", "before": before, "after_drain": after, "threshold": limit,
            "why": f"{after} after the drain against {before} before the load"
                   + (f", more than {limit} up" if grows else "")}


def verdict(before, after, memory_slope, p99_ms):
    parts = {"memory": {"verdict": "flat", "why": f"{memory_slope:.0f} KiB/min over the soak, within 512 KiB/min",
                        "slope_kib_per_min": memory_slope, "slope_low": memory_slope - 6.5,
                        "slope_high": memory_slope + 7.0, "reload_kib_per_min": 1.5, "threshold_kib_per_min": 512},
             "descriptors": count_part("descriptors", before["fds"], after["fds"], 2),
             "threads": count_part("threads", before["threads"], after["threads"], 0),
             "processes": count_part("processes", before["processes"], after["processes"], 0),
             "p99": {"verdict": "flat", "why": f"p99 fitted to rise 0.01 ms from {p99_ms:.2f} ms over the steady part "
                                               "(bound 5.00 ms)", "slope_ms_per_min": 0.012, "start_ms": p99_ms,
                     "rise_ms": 0.01, "median_p99_ms": p99_ms, "bound_ms": 5.0}}
    grew = [name for name, part in parts.items() if part["verdict"] == "grows"]
    return {"verdict": "grows" if grew else "flat", "grew": grew, "cannot_tell": [], **parts,
            "loadgen": {"verdict": "flat", "slope_kib_per_min": 2.0, "threshold_kib_per_min": 512},
            "thresholds": THRESHOLDS}


def ok_record(model, base_pss, base_fds, leak, p99_ms, memory_slope):
    before = tree(-0.5, base_pss, base_fds, leak)
    after = tree(SOAK_S + 1, base_pss, base_fds, leak)
    load = {"offered_rps": 1000.0, "throughput_rps": 999.0, "requests": 60000, "errors": 0, "p99_us": 1000 * p99_ms,
            "loadgen_max_rss_kib": 4000}
    clients = {"waves": {"waves": 6, "held": 192}, "bad": {"started": 100, "closed_by_server": 100}}
    return {"model": model, "status": "ok", "reason": None, "minutes": 1.0, "soak_s": SOAK_S, "reload_s": RELOAD_S,
            "plan": PLAN, "wall_s": 84.2, "before": before, "after_drain": after, "drain_s": 1.0,
            "samples": samples(base_pss, base_fds, leak), "intervals": intervals(p99_ms),
            "load": {"soak": {"keepalive": load, "churn": dict(load, offered_rps=200.0, throughput_rps=200.0),
                              "clients": clients},
                     "reload": {"keepalive": load, "churn": dict(load, offered_rps=200.0, throughput_rps=200.0),
                                "clients": clients}},
            "load_held": True, "verdict": verdict(before, after, memory_slope, p99_ms)}


def soak_doc():
    """soak.json of three models: epoll flat, thread-pool leaking descriptors, blocking n/a."""
    return {"schema": "serverbench-soak/1", "minutes": 1.0, "plan": PLAN, "records": [
        {"model": "blocking", "status": "not-applicable", "minutes": 1.0,
         "reason": "the blocking model serves one client at a time"},
        ok_record("epoll", 6000, 6, 0, 0.3, 3.2),
        ok_record("thread-pool", 21000, 70, 0.5, 0.8, -1.4)]}


def manifest(models):
    return {"schema": "serverbench.manifest/1", "run_id": "soak-fixture", "git_rev": "fixture", "profile": "soak",
            "repeat": 1, "warmup": "0s", "duration": "1s", "started_at": "2026-01-01T00:00:00Z",
            "finished_at": "2026-01-01T00:05:00Z", "interrupted": False,
            "machine": {"uname": "Linux fixture", "kernel": "6.1.0", "cpu_model": "Fixture CPU", "cpus": 2},
            "models": models, "scenarios": ["soak"], "points": []}


def write_soak_run(run_dir, models=("blocking", "epoll", "thread-pool")):
    """A run folder as `run_all.sh --profile soak` leaves it: the manifest without points, soak.json."""
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "manifest.json"), "w") as f:
        json.dump(manifest(list(models)), f)
    add_soak(run_dir)
    return run_dir


def add_soak(run_dir):
    with open(os.path.join(run_dir, "soak.json"), "w") as f:
        json.dump(soak_doc(), f)


class SoakOnlyRunTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.run_dir = write_soak_run(os.path.join(cls.tmp.name, "run"))
        cls.proc = subprocess.run(PLOT + [cls.run_dir], cwd=ROOT, capture_output=True, text=True, timeout=120)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def read(self, name):
        with open(os.path.join(self.run_dir, name), encoding="utf-8") as f:
            return f.read()

    def test_exits_zero(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr)
        self.assertEqual(self.proc.stderr, "")

    def test_soak_charts_in_png_and_svg(self):
        for chart in CHARTS:
            for ext in ("png", "svg"):
                path = os.path.join(self.run_dir, f"{chart}.{ext}")
                self.assertTrue(os.path.isfile(path), f"missing {chart}.{ext}")
                self.assertGreater(os.path.getsize(path), 5000, f"{chart}.{ext} is nearly empty")
        with open(os.path.join(self.run_dir, "soak_memory.svg")) as f:
            svg = f.read()
        # Each panel is titled with its model's verdict.
        for title in ("epoll: flat", "thread-pool: grows (descriptors)"):
            self.assertIn(title, svg)

    def test_no_chart_of_the_matrix(self):
        drawn = sorted(n[:-4] for n in os.listdir(self.run_dir) if n.endswith(".png"))
        self.assertEqual(drawn, sorted(CHARTS))

    def test_soak_md(self):
        text = self.read("soak.md")
        rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
        self.assertIn("| flat | - |", rows["epoll"])
        self.assertIn("| grows | descriptors |", rows["thread-pool"])
        self.assertIn("70 → 100", rows["thread-pool"])
        self.assertIn("+3.2 [-3.3, +10.2]", rows["epoll"])
        self.assertIn("not-applicable", rows["blocking"])
        self.assertIn("serves one client at a time", rows["blocking"])
        self.assertEqual(text.count("Thresholds (for a soak of 1 min)"), 1)
        self.assertIn("thread-pool, descriptors: 100 after the drain against 70 before the load", text)

    def test_summary_has_the_soak_and_no_empty_matrix(self):
        text = self.read("summary.md")
        self.assertIn("## Soak", text)
        self.assertIn("![soak_memory](soak_memory.png)", text)
        self.assertIn("| grows | descriptors |", text)
        self.assertIn("No matrix points in this run", text)
        self.assertNotIn("| model |  |", text)

    def test_report_soak_section(self):
        text = self.read("report.html")
        soak = text.split('<section id="soak">')[1].split("</section>")[0]
        for chart in CHARTS:
            self.assertIn('<svg role="img" aria-label="Soak: ', soak)
            self.assertIn(f'id="{chart}-', soak)
        for needle in ("flat", "grows", "descriptors", "not-applicable", "Thresholds"):
            self.assertIn(needle, soak)
        self.assertRegex(soak, r"thread-pool.*?</td><td[^>]*>grows</td><td[^>]*>descriptors</td>")
        headline = text.split('<section id="headline">')[1].split("</section>")[0]
        self.assertIn("No matrix points in this run", headline)

    def test_terminal_table(self):
        proc = subprocess.run([sys.executable, "-m", "plots.print_table", self.run_dir], cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        lines = proc.stdout.splitlines()
        self.assertTrue(lines[0].startswith("soak"), proc.stdout)
        row = next(line for line in lines if line.startswith("thread-pool"))
        self.assertRegex(row, r"grows\s+descriptors\s+-1\.4 \[-7\.9, \+5\.6\]\s+70 → 100")
        self.assertNotIn("requests/s", proc.stdout)

    def test_soak_plots_alone(self):
        with tempfile.TemporaryDirectory() as out:
            proc = subprocess.run([sys.executable, "-m", "plots.soak_plots", self.run_dir, "--out", out], cwd=ROOT,
                                  capture_output=True, text=True, timeout=120)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertIn(f"plots.soak_plots: 9 file(s) in {out}", proc.stdout)
            self.assertEqual(sorted(os.listdir(out)),
                             sorted(["soak.md"] + [f"{c}.{ext}" for c in CHARTS for ext in ("png", "svg")]))


class NoSoakTest(unittest.TestCase):
    def test_without_soak_json(self):
        sys.path.insert(0, ROOT)
        from plots import soak_plots, soak_table
        with tempfile.TemporaryDirectory() as tmp:
            self.assertEqual(soak_plots.load_soak(tmp), [])
            self.assertEqual(soak_plots.soak_charts(tmp), [])
            self.assertEqual(soak_table.write_soak_md(tmp, tmp), [])
            self.assertEqual(soak_table.soak_table_md(tmp), "")


if __name__ == "__main__":
    try:
        import matplotlib  # noqa: F401
        import scipy  # noqa: F401
    except ImportError:
        print("SKIP: no matplotlib or SciPy in this python (apt-get install -y python3-matplotlib python3-scipy)")
        sys.exit(77)
    unittest.main()
