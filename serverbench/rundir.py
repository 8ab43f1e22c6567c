"""One run, one folder: point JSON, logs, microbenchmarks, charts, summary, manifest.

points.jsonl is the append-only log of finished points (one JSON line each, written as each
point ends), so an interrupted run keeps every point it finished and `--resume` knows what to
skip. manifest.json (serverbench.manifest/2) is written at the start, on every exit path and
at the end, from the run's settings and that log. The first schema named the network "net";
a run folder written with it still redraws and resumes (settings.Settings.from_json).
"""
import datetime
import json
import os
import platform

from .jsonfile import read_json, write_json

MANIFEST_SCHEMA = "serverbench.manifest/2"
MANIFEST_SCHEMAS = ("serverbench.manifest/1", MANIFEST_SCHEMA)   # what a run folder may hold


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info():
    u = platform.uname()
    return {"uname": " ".join([u.system, u.node, u.release, u.version, u.machine]), "kernel": u.release,
            "cpu_model": cpu_model(), "cpus": os.cpu_count()}


class RunDir:
    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.points_log = os.path.join(self.path, "points.jsonl")
        self.manifest_path = os.path.join(self.path, "manifest.json")

    @property
    def run_id(self):
        return os.path.basename(self.path)

    def create(self):
        os.makedirs(os.path.join(self.path, "points"), exist_ok=True)
        os.makedirs(os.path.join(self.path, "logs"), exist_ok=True)
        if not os.path.exists(self.points_log):
            open(self.points_log, "w").close()

    def read_manifest(self):
        with open(self.manifest_path) as f:
            return json.load(f)

    def points(self):
        """Finished points in the order they finished; a torn last line (killed mid-write) is
        dropped, and that point runs again on resume."""
        try:
            with open(self.points_log) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def append_point(self, entry):
        with open(self.points_log, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def result_path(self, model, scenario, label, rep, side=None):
        return os.path.join(self.path, self.result_rel(model, scenario, label, rep, side))

    @staticmethod
    def result_rel(model, scenario, label, rep, side=None):
        sub = f"{side}/" if side else ""
        return f"points/{sub}{model}/{scenario}/{label}-r{rep}.json"

    def log_base(self, model, scenario, label, rep, side=None):
        sub = f"{side}/" if side else ""
        return os.path.join(self.path, "logs", f"{sub}{model}/{scenario}/{label}-r{rep}")

    def write_manifest(self, settings, state):
        """settings: the run's settings.Settings; state: whether and when it finished."""
        microbench = "microbench.json" if os.path.exists(os.path.join(self.path, "microbench.json")) else None
        doc = {"schema": MANIFEST_SCHEMA, "run_id": self.run_id, **settings.to_json(), **state,
               "machine": machine_info(), "microbench": microbench, "drift": self.drift(),
               "points": self.points()}
        write_json(self.manifest_path, doc)

    def drift(self):
        """The reference point at the start and the end of the run, and how far it moved."""
        drift = read_json(os.path.join(self.path, "drift.json"))
        if drift is None:
            return None
        for metric in ("throughput_rps", "cpu_us_per_request"):
            a, b = (drift.get("start") or {}).get(metric), (drift.get("end") or {}).get(metric)
            if a and b:
                drift[f"{metric}_end_over_start"] = round(b / a, 4)
        return drift

    def link_latest(self, results_root):
        """results/latest -> this run, when the run lives in results/ (the link is ignored by git)."""
        if os.path.dirname(self.path) != os.path.abspath(results_root):
            return
        link = os.path.join(results_root, "latest")
        tmp = link + ".tmp"
        if os.path.lexists(tmp):
            os.remove(tmp)
        os.symlink(self.run_id, tmp)
        os.replace(tmp, link)
