"""Reading a run folder written by run_all.sh (standard library only).

A run is `manifest.json` (schema serverbench.manifest/1) plus one
serverbench.result/1 JSON per point and repeat. `load_run` folds the repeats of
each point into one `Point` holding medians, which is what the charts, the
summary and the claims use.
"""
import json
import os
import sys
from dataclasses import dataclass, field

from serverbench.jsonfile import read_json
from serverbench.rundir import MANIFEST_SCHEMAS
# Scenarios and their order, and the models' order, are defined once, in the driver.
from serverbench.scenarios import ordered_models, scenario_order
from serverbench.stats import median

RESULT_SCHEMA = "serverbench.result/1"

PERCENTILES = [("p50", 50), ("p90", 90), ("p99", 99), ("p99_9", 99.9)]


class RunError(Exception):
    """The folder is not a readable run (missing or malformed manifest)."""


@dataclass
class Point:
    model: str
    scenario: str
    label: str
    connections: int
    idle: int = 0
    order: int = 0                  # position of its first entry in the manifest (matrix order)
    status: str = "failed"          # ok | failed | not-applicable | unsupported
    reason: str = ""
    repeats: int = 0                # repeats that produced a result
    rps: float = None
    latency: dict = field(default_factory=dict)           # p50.. in µs (medians)
    latency_uncorrected: dict = field(default_factory=dict)
    server_cpu_us_per_req: float = None
    loadgen_cpu_us_per_req: float = None
    peak_rss_kib: float = None
    peak_threads: float = None
    peak_processes: float = None
    ctx_switches: float = None
    bound: str = None
    counts: dict = None             # counted work per request: {"server": {...}, "loadgen": {...}}
    errors: int = 0
    established: int = None
    idle_established: int = None
    idle_closed_by_server: int = None
    rate: float = None
    open_loop_valid: bool = None
    loss_ratio: float = None        # over UDP: the share of the datagrams sent that never came back
    # Per repeat, for spread: {"rps" | "cpu" | "p50" | "p99": [value of each repeat]}.
    samples: dict = field(default_factory=dict)
    timeseries: list = field(default_factory=list)      # each repeat's "timeseries" list
    noise: list = field(default_factory=list)           # the manifest's "noise" of each repeat

    @property
    def key(self):
        return (self.model, self.scenario, self.label)

    @property
    def idle_open(self):
        """Idle connections still open at the end of the point."""
        if self.idle_established is None:
            return None
        return self.idle_established - (self.idle_closed_by_server or 0)


@dataclass
class Run:
    path: str
    manifest: dict
    points: dict                     # (model, scenario, label) -> Point
    models: list
    microbench: dict = None

    @property
    def run_id(self):
        return self.manifest.get("run_id") or os.path.basename(os.path.normpath(self.path))

    def get(self, model, scenario, label):
        return self.points.get((model, scenario, label))

    def scenario_points(self, scenario, model=None):
        """Points of a scenario in matrix order (idle count, connections, then as run)."""
        pts = [p for p in self.points.values()
               if p.scenario == scenario and (model is None or p.model == model)]
        return sorted(pts, key=lambda p: (p.idle, p.connections, p.order))

    def labels(self, scenario):
        seen = []
        for p in self.scenario_points(scenario):
            if p.label not in seen:
                seen.append(p.label)
        return seen

    def busiest_label(self, scenario):
        """The busiest point that most models completed (ties: the later, heavier one); None
        without points."""
        labels = self.labels(scenario)
        ok = {label: sum(1 for p in self.scenario_points(scenario) if p.label == label and p.status == "ok")
              for label in labels}
        return max(reversed(labels), key=lambda label: ok[label]) if labels else None

    def scenarios(self):
        return scenario_order({p.scenario for p in self.points.values()})


def _fold(point, results):
    """Medians of the repeats that produced a result."""
    point.repeats = len(results)

    def med(getter):
        vals = []
        for r in results:
            try:
                vals.append(getter(r))
            except (KeyError, TypeError):
                pass
        return median(vals)

    point.rps = med(lambda r: r["totals"]["throughput_rps"])
    for name, _ in PERCENTILES:
        point.latency[name] = med(lambda r: r["latency_us"][name])
        point.latency_uncorrected[name] = med(lambda r: r["latency_uncorrected_us"][name])
    point.latency["max"] = med(lambda r: r["latency_us"]["max"])
    if not point.rps:
        # No request completed: the histogram is empty, its percentiles mean nothing.
        point.latency = {k: None for k in point.latency}
        point.latency_uncorrected = {k: None for k in point.latency_uncorrected}
    point.server_cpu_us_per_req = med(lambda r: r["server"]["cpu_us_per_request"])
    if point.server_cpu_us_per_req is None:
        point.server_cpu_us_per_req = med(
            lambda r: (r["server"]["cpu_user_s"] + r["server"]["cpu_sys_s"]) * 1e6 / r["totals"]["requests"]
            if r["totals"]["requests"] else None)
    point.loadgen_cpu_us_per_req = med(lambda r: r["loadgen"]["cpu_us_per_request"])
    point.peak_rss_kib = med(lambda r: r["server"]["peak_rss_kib"])
    point.peak_threads = med(lambda r: r["server"]["peak_threads"])
    point.peak_processes = med(lambda r: r["server"]["peak_processes"])
    point.ctx_switches = med(lambda r: r["server"]["ctx_switches_voluntary"] + r["server"]["ctx_switches_involuntary"])
    errs = med(lambda r: sum(r["totals"]["errors"].values()))
    point.errors = int(errs) if errs is not None else 0
    est = med(lambda r: r["connections"]["established"])
    point.established = int(est) if est is not None else None
    idle_est = med(lambda r: r["idle_connections"]["established"])
    point.idle_established = int(idle_est) if idle_est is not None else None
    idle_closed = med(lambda r: r["idle_connections"]["closed_by_server"])
    point.idle_closed_by_server = int(idle_closed) if idle_closed is not None else None
    point.rate = med(lambda r: r["config"]["rate"])
    point.loss_ratio = med(lambda r: r["datagrams"]["loss_ratio"])
    bounds = [((r.get("saturation") or {}).get("bound")) for r in results]
    bounds = [b for b in bounds if b]
    if bounds:
        point.bound = max(set(bounds), key=bounds.count)
    _keep_samples(point, results)
    valids = [(r.get("open_loop") or {}).get("valid") for r in results]
    valids = [v for v in valids if v is not None]
    if valids:
        point.open_loop_valid = all(valids)


SAMPLE_GETTERS = {
    "rps": lambda r: r["totals"]["throughput_rps"],
    "cpu": lambda r: r["server"].get("cpu_us_per_request")
    or (r["server"]["cpu_user_s"] + r["server"]["cpu_sys_s"]) * 1e6 / r["totals"]["requests"],
    "p50": lambda r: r["latency_us"]["p50"],
    "p99": lambda r: r["latency_us"]["p99"],
    "rss": lambda r: r["server"]["peak_rss_kib"],
    "loss": lambda r: r["datagrams"]["loss_ratio"],
}


def _keep_samples(point, results):
    """Each repeat's value of the metrics whose spread is shown, and its per-interval series."""
    for name, getter in SAMPLE_GETTERS.items():
        values = []
        for r in results:
            try:
                v = getter(r)
            except (KeyError, TypeError, ZeroDivisionError):
                continue
            if isinstance(v, (int, float)) and v == v:
                values.append(float(v))
        point.samples[name] = values
    point.timeseries = [r["timeseries"] for r in results if isinstance(r.get("timeseries"), list) and r["timeseries"]]


def load_run(path):
    """Reads a run folder. Raises RunError when it is not one."""
    manifest = read_manifest(path)
    grouped = {}
    # An A/B run's charts and tables show the current tree (B); A is in its comparison.
    for e in (e for e in manifest["points"] if not isinstance(e, dict) or e.get("side") != "A"):
        try:
            key = (e["model"], e["scenario"], e["point"])
        except (KeyError, TypeError):
            raise RunError(f"{path}/manifest.json: point without model/scenario/point: {e!r}")
        grouped.setdefault(key, []).append(e)
    points = {}
    for key, group in grouped.items():
        points[key] = fold_point(path, key, group, order=len(points))
    models = list(manifest.get("models") or [])
    models += [p.model for p in points.values() if p.model not in models]
    return Run(path=path, manifest=manifest, points=points, models=ordered_models(set(models)),
               microbench=read_json(os.path.join(path, manifest.get("microbench") or "microbench.json")))


def print_run_table(prog, table, argv):
    """The command line of a module that prints one Markdown table of a run folder: `prog RUN_DIR`,
    exit 2 on bad usage or a folder that is not a run."""
    if len(argv) != 1:
        print(f"usage: python3 -m {prog} RUN_DIR", file=sys.stderr)
        return 2
    try:
        run = load_run(argv[0])
    except RunError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    print("\n".join(table(run)))
    return 0


def read_manifest(path):
    manifest_path = os.path.join(path, "manifest.json")
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise RunError(f"{path}: no manifest.json (not a run folder)")
    except (OSError, ValueError) as e:
        raise RunError(f"{manifest_path}: {e}")
    if not isinstance(manifest, dict) or manifest.get("schema") not in MANIFEST_SCHEMAS:
        raise RunError(f"{manifest_path}: schema is not one of {', '.join(MANIFEST_SCHEMAS)}")
    if not isinstance(manifest.get("points"), list):
        raise RunError(f"{manifest_path}: no list of points")
    return manifest


def read_results(path, group):
    """The result documents of a point's repeats that produced one."""
    results = []
    for e in group:
        if e.get("status") == "ok" and e.get("file"):
            r = read_json(os.path.join(path, e["file"]))
            if isinstance(r, dict) and r.get("schema") == RESULT_SCHEMA:
                results.append(r)
    return results


def fold_point(path, key, group, order):
    """One Point from the manifest entries of its repeats (and of its counting trial)."""
    counting = [e for e in group if e.get("kind") == "count"]
    group = [e for e in group if e.get("kind") != "count"] or group
    first = group[0]
    p = Point(model=key[0], scenario=key[1], label=key[2], connections=int(first.get("connections") or 0),
              idle=int(first.get("idle_connections") or 0), order=order)
    results = read_results(path, group)
    reasons = [e.get("reason") for e in group if e.get("reason")]
    if results:
        p.status = "ok"
        _fold(p, results)
        p.reason = reasons[0] if reasons else ""
        p.noise = [e["noise"] for e in group if isinstance(e.get("noise"), dict)]
    else:
        statuses = [e.get("status") for e in group]
        p.status = next((s for s in ("unsupported", "not-applicable", "failed") if s in statuses), "failed")
        p.reason = reasons[0] if reasons else ""
    p.counts = fold_counts(read_results(path, counting))
    return p


def fold_counts(results):
    """Counted work per request of a point: the median over its counting trials, per side and
    count; the top system calls of the first trial. None when no trial was counted."""
    counted = [r["counts"] for r in results if (r.get("counts") or {}).get("server")]
    if not counted:
        return None
    out = {}
    for side in ("server", "loadgen"):
        sides = [c[side] for c in counted if c.get(side)]
        if not sides:
            continue
        out[side] = {k: median([s.get(k) for s in sides]) for k, v in sides[0].items() if isinstance(v, (int, float))}
        out[side]["top_syscalls_per_request"] = sides[0].get("top_syscalls_per_request") or {}
    return out


# ---------------------------------------------------------------------------- microbench

TIME_UNIT_US = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}


def microbench_times_us(doc):
    """{benchmark name: real time per iteration in µs} from Google Benchmark JSON.
    With repetitions, the median aggregate wins; plain iterations otherwise."""
    out = {}
    if not doc:
        return out
    for b in doc.get("benchmarks", []):
        name = b.get("run_name") or b.get("name", "")
        if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
            continue
        if b.get("error_occurred"):
            continue
        scale = TIME_UNIT_US.get(b.get("time_unit", "ns"), 1e-3)
        t = b.get("real_time")
        if t is None:
            continue
        if b.get("run_type") == "aggregate" or name not in out:
            out[name] = t * scale
    return out


def readiness_series(times):
    """{mechanism: [(N, µs per call)]} for BM_SelectReady/N, BM_PollReady/N, BM_EpollWaitReady/N."""
    series = {}
    for name, us in times.items():
        base, _, arg = name.partition("/")
        for family, label in (("BM_SelectReady", "select"), ("BM_PollReady", "poll"),
                              ("BM_EpollWaitReady", "epoll_wait")):
            if base == family:
                try:
                    n = int(arg.split("/")[0])
                except ValueError:
                    continue
                series.setdefault(label, []).append((n, us))
    return {k: sorted(v) for k, v in series.items()}


DISPATCH_FAMILIES = [
    ("BM_ThreadSpawnJoin", "thread spawn + join"),
    ("BM_ThreadPoolHandoff", "thread-pool hand-off"),
    ("BM_ForkWaitpid", "fork + waitpid"),
    ("BM_AcceptClose", "accept + close"),
    ("BM_ContextSwitchThreads", "context switch (threads)"),
    ("BM_ContextSwitchProcesses", "context switch (processes)"),
]


def dispatch_costs(times):
    """[(label, µs)] for the per-connection dispatch families present."""
    out = []
    for family, label in DISPATCH_FAMILIES:
        matches = [us for name, us in times.items() if name == family or name.startswith(family + "/")]
        if matches:
            out.append((label, min(matches)))
    return out
