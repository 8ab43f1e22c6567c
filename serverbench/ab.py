"""A/B runs: the baseline (A) and the current tree (B) measured point by point, their trials
interleaved in randomised ABBA blocks, so that drift on a shared machine (a neighbour's build,
a slower day) lands on both sides alike instead of on one.
"""
import os
import random
import shutil
import subprocess
import sys

from . import comparison, recorded
from .jsonfile import read_json
from .log import log
from .trial import Binaries

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, "build-baseline")   # ignored by git (/build*/)


class BaselineError(Exception):
    pass


def abba_order(trials_per_side, rng):
    """A balanced, randomised order of trials_per_side A's and B's: blocks of ABBA or BAAB
    (chosen at random), and one AB or BA pair when the count is odd. Returns [(side, number)]."""
    order = []
    for _ in range(trials_per_side // 2):
        order += list(rng.choice(("ABBA", "BAAB")))
    if trials_per_side % 2:
        order += list(rng.choice(("AB", "BA")))
    counts = {"A": 0, "B": 0}
    numbered = []
    for side in order:
        counts[side] += 1
        numbered.append((side, counts[side]))
    return numbered


def resolve_commit(rev):
    try:
        return subprocess.run(["git", "-C", ROOT, "rev-parse", "--verify", f"{rev}^{{commit}}"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except subprocess.CalledProcessError:
        raise BaselineError(f"--baseline {rev}: not a commit of this repository")


def build_baseline(rev):
    """The bin folder of `rev`, built once in its own source tree and build folder, cached by
    commit under build-baseline/<commit>/."""
    commit = resolve_commit(rev)
    home = os.path.join(CACHE, commit)
    bin_dir = os.path.join(home, "build", "bin")
    if os.path.exists(os.path.join(home, "built")):
        log(f"== baseline {rev} ({commit[:12]}): cached in {home}")
        return commit, bin_dir
    log(f"== baseline {rev} ({commit[:12]}): building in {home}")
    src = os.path.join(home, "src")
    shutil.rmtree(home, ignore_errors=True)
    os.makedirs(src)
    archive = subprocess.Popen(["git", "-C", ROOT, "archive", commit], stdout=subprocess.PIPE)
    untar = subprocess.run(["tar", "-x", "-C", src], stdin=archive.stdout)
    archive.stdout.close()
    if archive.wait() != 0 or untar.returncode != 0:
        raise BaselineError(f"could not check out {commit} into {src}")
    build = os.path.join(home, "build")
    for argv in (["cmake", "-S", src, "-B", build, "-DCMAKE_BUILD_TYPE=Release"],
                 ["cmake", "--build", build, "-j", str(os.cpu_count() or 1)]):
        if subprocess.call(argv, stdout=sys.stderr) != 0:
            raise BaselineError(f"building the baseline {commit[:12]} failed: {' '.join(argv)}")
    open(os.path.join(home, "built"), "w").close()
    return commit, bin_dir


def baseline_binaries(settings, current):
    """(commit or None, Binaries of side A). Both sides measure with the current tree's loadgen,
    so the measuring tool is the same, unless baseline_loadgen asks for the baseline's own."""
    if settings.baseline_bin:
        label, bin_dir = None, settings.baseline_bin
    else:
        label, bin_dir = build_baseline(settings.baseline)
    if not os.path.isdir(bin_dir):
        raise BaselineError(f"baseline binaries: no folder {bin_dir}")
    loadgen = os.path.join(bin_dir, "loadgen") if settings.baseline_loadgen else current.loadgen
    if not os.access(loadgen, os.X_OK):
        raise BaselineError(f"baseline loadgen: {loadgen} is not an executable")
    return label, Binaries(bin_dir, loadgen, current.server_files)


def seeded_rng(seed):
    return random.Random(seed)



def trial_records(run_dir, keys=None):
    """The comparison's trial records from an A/B run folder's ok trials (of `keys` only, if given:
    (model, scenario, point) tuples)."""
    records = []
    for e in run_dir.points():
        if e.get("side") not in ("A", "B") or e["status"] != "ok" or not e.get("file"):
            continue
        if keys is not None and (e["model"], e["scenario"], e["point"]) not in keys:
            continue
        result = read_json(os.path.join(run_dir.path, e["file"]))
        if result and e.get("kind") == "count":
            records += count_record(result, e)
        elif result:
            records.append(comparison.trial_record(result, e["side"], e["point"]))
    return records


# The counts that join the comparison and the gate: the server's work per request. Page faults
# and migrations per request are near zero in a steady server, so their ratios are noise.
GATED_COUNTS = ("syscalls_per_request", "context_switches_per_request")


def count_record(result, entry):
    """The trial record of a counting trial (its counts only: its timings are not timings), or
    none when the trial was not counted."""
    server = (result.get("counts") or {}).get("server") or {}
    metrics = {k: server[k] for k in GATED_COUNTS if server.get(k) is not None}
    if not metrics:
        return []
    return [{"model": entry["model"], "scenario": entry["scenario"], "point": entry["point"],
             "side": entry["side"], "metrics": metrics, "server_bound": None}]


def is_a_a(settings):
    """Both sides are the same code (one commit, or one bin folder): the run measures the noise floor."""
    rev = settings.git_rev or ""
    commit = settings.baseline_commit or ""
    if settings.baseline_bin:
        current = os.path.join(settings.build_dir, "bin")
        return os.path.realpath(settings.baseline_bin) == os.path.realpath(current)
    return bool(commit) and not rev.endswith("-dirty") and commit.startswith(rev)


def compare_run(run_dir, settings, keys=None):
    """Writes comparison.json/.md/.png/.svg into the run folder; returns the rows."""
    method = comparison.Method(seed=settings.seed)
    trials = trial_records(run_dir, keys)
    rows = comparison.compare_trials(trials, method=method, min_effects=settings.min_effects)
    noise = None
    if is_a_a(settings):
        noise = recorded.noise_floor(trials, method=method, min_effects=settings.min_effects)
    comparison.write_comparison(run_dir.path, rows, method=method, noise=noise)
    return rows
