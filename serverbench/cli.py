"""./run_all.sh: build, run every model x scenario x point, write the run folder, draw the charts.

Exit code: 0 when every point is ok (or not-applicable/unsupported), 1 when a point failed,
2 on a usage error, 130 when interrupted (the run can then be finished with --resume).
"""
import argparse
import os
import signal
import subprocess
import sys
import time

from . import ab, capacity_run, comparison, network, pairs, resolution, server_file, soak, units
from . import scenarios as sc
from .hosts_file import HostsFileError, parse_hosts_file
from .log import log
from .matrix import Matrix
from .processes import Supervisor
from .rundir import RunDir, new_run_id, utc_now
from .settings import HostsSettings, NetworkSettings, Settings
from .trial import Binaries

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPILOG = """\
Exit code: 0 all points ok (or not-applicable/unsupported), 1 some point failed,
2 usage error, 130 interrupted (finish it with --resume RUN_DIR)."""


class UsageError(Exception):
    pass


class OneLineParser(argparse.ArgumentParser):
    """A bad flag gets one line and exit code 2, not the whole usage."""

    def error(self, message):
        raise UsageError(message)


def build_parser():
    profiles = ", ".join(f"{p.name} ({p.duration} points, {p.repeat} repeat(s))"
                         for p in sc.PROFILES.values() if not p.hidden)
    ap = OneLineParser(prog="run_all.sh", description=__doc__.splitlines()[0], epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="standard", help=f"how long and how wide: {profiles}; "
                    "quick under 4 min (CI); standard and full: docs/measurements.md (default standard)")
    ap.add_argument("--models", help="only these models, comma-separated: names after server-, of bundled "
                    f"server files ({', '.join(server_file.bundled())}) or of --server-file files (default: "
                    "every server-* binary built, the profile's bundled servers and every --server-file)")
    ap.add_argument("--server-file", action="append", default=[], metavar="FILE",
                    help="run the server FILE describes beside the models (docs/contract.md#server-files); "
                    "repeatable")
    ap.add_argument("--no-references", action="store_true",
                    help="without --models: leave out the profile's bundled production servers")
    ap.add_argument("--scenarios", help=f"only these scenarios, comma-separated: {', '.join(sc.SCENARIO_NAMES)}")
    ap.add_argument("--repeat", type=positive_int, help="repetitions per point (default: the profile's)")
    ap.add_argument("--out", help="the run folder (default results/<UTC timestamp>/; results/latest "
                    "then points to it)")
    ap.add_argument("--resume", metavar="RUN_DIR", help="finish an interrupted run: its own settings, "
                    "skipping the points it already wrote")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build"),
                    help="build tree (default build/); binaries in DIR/bin")
    ap.add_argument("--no-build", action="store_true", help="use the binaries in DIR/bin as they are")
    ap.add_argument("--hosts", metavar="FILE", help="load from other hosts over ssh: FILE has a 'server "
                    "HOST' line (local: this machine) and 'client HOST' lines (docs/hosts.md)")
    ap.add_argument("--no-microbench", action="store_true", help="skip build/bin/microbench")
    ap.add_argument("--no-plots", action="store_true", help="skip charts and summary.md")
    ap.add_argument("--soak-minutes", type=positive_float, default=sc.SOAK_PLAN.minutes,
                    help=f"the soak's length per model (default {sc.SOAK_PLAN.minutes:g}; docs/soak.md)")
    ap.add_argument("--slo-p99-ms", type=positive_float, help="latency objective of the capacity sweeps "
                    "(default: each capacity scenario's own, docs/capacity.md)")
    net = ap.add_argument_group("network (docs/networks.md)")
    net.add_argument("--net", default="loopback", choices=network.KINDS, metavar="KIND",
                     help="loopback (default): TCP on 127.0.0.1; unix: Unix stream sockets; veth: server and "
                     "clients in two network namespaces joined by a veth link (MTU 1500); wan: that link with "
                     "emulated distance (root needed for veth and wan)")
    net.add_argument("--rtt-ms", type=float, help="wan: round-trip time, split over both directions (default 20)")
    net.add_argument("--loss-pct", type=float, default=0.0, help="wan: frames lost, per direction (default 0)")
    net.add_argument("--jitter-ms", type=float, default=0.0,
                     help="wan: uniform jitter of each frame's delay; frame order is kept (default 0)")
    net.add_argument("--emulator", default="auto", choices=("auto", "netem", "linkemu"),
                     help="wan: the kernel's netem where it exists (auto), or the project's linkemu")
    ab = ap.add_argument_group("A/B comparison (the baseline is A, the current tree B)")
    ab.add_argument("--baseline", metavar="REV", help="compare with this git revision, built once in "
                    "build-baseline/<commit>/ (HEAD gives an A/A run: the noise floor)")
    ab.add_argument("--baseline-bin", metavar="DIR", help="compare with the server binaries in DIR")
    ab.add_argument("--baseline-loadgen", action="store_true",
                    help="measure A with the baseline's own loadgen (default: the current tree's, for both)")
    ab.add_argument("--trials", type=positive_int, help="trials per side and point (default: the profile's)")
    ab.add_argument("--seed", type=int, default=1, help="seed of the trial order and the bootstrap (default 1)")
    ab.add_argument("--min-effect", action="append", default=[], metavar="METRIC=FRACTION",
                    help="smallest change called a change, per metric (default 0.05), e.g. "
                    "cpu_us_per_request=0.1; repeatable")
    ab.add_argument("--gate", action="store_true", help="exit 1 when a row is slower and a rerun of "
                    "just those points confirms it (the CI gate)")
    return ap


def positive_int(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not '{text}'")
    return int(text)


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not '{text}'")
    return value


def split_list(text):
    return [x for x in (text or "").split(",") if x]


def check_args(args):
    if args.profile not in sc.PROFILES:
        known = ", ".join(p.name for p in sc.PROFILES.values() if not p.hidden)
        raise UsageError(f"unknown profile '{args.profile}' ({known})")
    for s in split_list(args.scenarios):
        if s not in sc.SCENARIO_NAMES:
            raise UsageError(f"unknown scenario '{s}' (known: {' '.join(sc.SCENARIO_NAMES)})")
    if args.resume and not os.path.isfile(os.path.join(args.resume, "manifest.json")):
        raise UsageError(f"--resume {args.resume}: no manifest.json there (not a run folder)")
    if args.resume and args.out:
        raise UsageError("--resume RUN_DIR is the run folder; drop --out")
    if args.out and os.path.exists(os.path.join(args.out, "manifest.json")):
        raise UsageError(f"--out {args.out} holds a run already; finish it with --resume {args.out}, "
                         "or name a new folder")
    if args.baseline and args.baseline_bin:
        raise UsageError("--baseline and --baseline-bin name the same side; give one")
    ab = args.baseline or args.baseline_bin
    for flag in ("trials", "baseline_loadgen", "gate"):
        if getattr(args, flag) and not ab:
            raise UsageError(f"--{flag.replace('_', '-')} needs --baseline or --baseline-bin")
    args.min_effects = parse_min_effects(args.min_effect)
    wan_only = args.rtt_ms is not None or args.loss_pct or args.jitter_ms or args.emulator != "auto"
    if wan_only and args.net != "wan":
        raise UsageError("--rtt-ms, --loss-pct, --jitter-ms and --emulator shape a --net wan link")
    if args.hosts and (args.profile == "soak" or "soak" in split_list(args.scenarios)):
        raise UsageError("--hosts: the soak samples the server's processes on this machine; run it without --hosts")
    if args.hosts and args.net != "loopback":
        raise UsageError("--hosts drives clients on other machines over their own network; drop --net")
    try:
        args.hosts_plan = parse_hosts_file(args.hosts) if args.hosts and not args.resume else None
    except HostsFileError as e:
        raise UsageError(str(e))


def parse_min_effects(items):
    out = {}
    for item in items:
        metric, _, value = item.partition("=")
        try:
            out[metric] = float(value)
        except ValueError:
            raise UsageError(f"--min-effect {item}: expected METRIC=FRACTION, e.g. cpu_us_per_request=0.1")
        if not metric or not 0 <= out[metric] < 1:
            raise UsageError(f"--min-effect {item}: expected METRIC=FRACTION with 0 <= FRACTION < 1")
    return out


def build_if_needed(args):
    if args.no_build:
        return
    build_dir = args.build_dir
    if not os.path.exists(os.path.join(build_dir, "CMakeCache.txt")):
        log(f"== configuring {build_dir} (Release)")
        run_or_exit(["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release"])
    log(f"== building in {build_dir}")
    run_or_exit(["cmake", "--build", build_dir, "-j", str(os.cpu_count() or 1)])


def run_or_exit(argv):
    code = subprocess.call(argv, stdout=sys.stderr)
    if code != 0:
        log(f"run_all.sh: {' '.join(argv)} failed ({code})")
        sys.exit(2)


def discover_models(bin_dir, wanted, files=()):
    """Models are discovered, never listed: a new server-* binary joins the matrix by existing.
    files: the names of the run's server files, which join it too."""
    found = []
    if os.path.isdir(bin_dir):
        for name in os.listdir(bin_dir):
            path = os.path.join(bin_dir, name)
            if name.startswith("server-") and os.path.isfile(path) and os.access(path, os.X_OK):
                found.append(name[len("server-"):])
    for name in files:
        if name in found:
            raise UsageError(f"server file '{name}' has the name of the model {bin_dir}/server-{name}; rename it")
    found += files
    for want in wanted:
        if want not in found:
            raise UsageError(f"model '{want}' not found as {bin_dir}/server-{want}, a bundled server file "
                             "or a --server-file")
    models = [m for m in found if not wanted or m in wanted]
    if not models:
        raise UsageError(f"no server binaries in {bin_dir} (build first, or pass --build-dir)")
    return sc.ordered_models(models)


def server_file_paths(args, wanted):
    """{name: path} of the run's server files: each --server-file, and the bundled files that
    --models names, or without --models the profile's references (unless --no-references)."""
    paths = {}
    for path in args.server_file:
        name = load_server_file(path, installed=False).name
        if name in paths or name in server_file.bundled():
            raise UsageError(f"{path}: name: '{name}' is the name of another server file; rename it")
        paths[name] = os.path.abspath(path)
    bundled = server_file.bundled()
    references = () if args.no_references else sc.PROFILES[args.profile].references
    for name in [m for m in wanted if m in bundled] if wanted else references:
        paths[name] = bundled[name]
    return paths


def load_server_file(path, installed=True):
    try:
        return server_file.load(path, installed)
    except server_file.ServerFileError as e:
        raise UsageError(str(e))


def install_references(paths):
    """Installs the Debian packages of the server files whose program is missing (as root, without
    starting their services); then checks every file, whose error names a package still missing."""
    missing = {}
    for path in paths.values():
        described = load_server_file(path, installed=False)
        if described.binary() is None and described.package:
            missing[described.package] = path
    if missing and os.geteuid() == 0:
        log(f"== installing the production servers' packages: {' '.join(missing)}")
        done = subprocess.run([os.path.join(ROOT, "tools", "ensure_deps.sh"), *missing], capture_output=True, text=True)
        if done.returncode != 0:
            said = ((done.stderr + done.stdout).strip().splitlines() or ["?"])[-1]
            package = next(iter(missing))
            raise UsageError(f"{missing[package]}: package: installing {' '.join(missing)} failed: {said}")
    try:
        return tuple(server_file.load(path) for path in paths.values())
    except server_file.ServerFileError as e:
        bundled = any(os.path.dirname(path) == server_file.BUNDLED_DIR for path in paths.values())
        raise UsageError(f"{e}; install it{', or run with --no-references' if bundled else ''}")


def git_rev():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    dirty = subprocess.call(["git", "-C", ROOT, "diff", "--quiet", "HEAD"], stderr=subprocess.DEVNULL)
    return rev + ("-dirty" if dirty else "")



def raise_fd_limit():
    """10 000 idle connections need 10 000 descriptors in the server and in the holder."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Interrupted(Exception):
    pass


def on_signal(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


def settings_for(args, models, server_files):
    """The run's settings, from the command line."""
    profile = sc.PROFILES[args.profile]
    wanted = split_list(args.scenarios) or sc.default_scenarios(profile, args.net)
    ab_run = bool(args.baseline or args.baseline_bin)
    return Settings(
        profile=profile.name, repeat=args.repeat or profile.repeat, warmup=profile.warmup,
        duration=profile.duration, models=tuple(models),
        scenarios=tuple(s for s in sc.SCENARIO_NAMES if (not wanted or s in wanted) and s not in sc.OWN_RUNNERS),
        started_at=utc_now(), git_rev=git_rev(), build_dir=os.path.abspath(args.build_dir), seed=args.seed,
        min_effects=args.min_effects,
        network=NetworkSettings(args.net, args.rtt_ms, args.loss_pct, args.jitter_ms, args.emulator),
        hosts=HostsSettings.of(args.hosts, args.hosts_plan) if args.hosts_plan else None,
        capacity=capacity_run.selection(profile, split_list(args.scenarios), split_list(args.models), models,
                                        args.slo_p99_ms),
        soak_minutes=args.soak_minutes if "soak" in wanted else None,
        trials=(args.trials or profile.ab_trials) if ab_run else None, baseline=args.baseline,
        baseline_bin=args.baseline_bin and os.path.abspath(args.baseline_bin),
        baseline_loadgen=args.baseline_loadgen, server_files=dict(server_files))


def prepare(argv):
    args = build_parser().parse_args(argv)
    check_args(args)
    build_if_needed(args)
    bin_dir = os.path.join(os.path.abspath(args.build_dir), "bin")
    resumed = Settings.from_json(RunDir(args.resume).read_manifest()) if args.resume else None
    paths = resumed.server_files if resumed else server_file_paths(args, split_list(args.models))
    files = install_references(paths)
    models = discover_models(bin_dir, split_list(args.models), [f.name for f in files])
    loadgen = os.path.join(bin_dir, "loadgen")
    if not os.access(loadgen, os.X_OK):
        raise UsageError(f"no load generator at {loadgen} (build first)")
    settings = resumed or settings_for(args, models, paths)
    run_dir = RunDir(args.resume or args.out or os.path.join(ROOT, "results", new_run_id()))
    current = Binaries(bin_dir, loadgen, files)
    if not settings.ab:
        return args, settings, run_dir, {None: current}
    try:
        resolution.check(settings, args.gate)
        commit, baseline = ab.baseline_binaries(settings, current)
    except ab.BaselineError as e:
        raise UsageError(str(e))
    return args, settings.replace(baseline_commit=commit), run_dir, {"A": baseline, "B": current}


def main(argv=None):
    try:
        args, settings, run_dir, sides = prepare(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        log(f"run_all.sh: {e}")
        return 2
    raise_fd_limit()
    os.environ["SERVERBENCH_GIT_REV"] = settings.git_rev
    run_dir.create()
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sup = Supervisor()
    state = {"finished_at": None, "interrupted": True}
    started = time.monotonic()
    net = network.make(settings.network)
    try:
        net.open()
        run_dir.write_manifest(settings, state)
        matrix = Matrix(sup, run_dir, settings, sides, net, resumed=bool(args.resume))
        failed = matrix.run()
        if "A" not in sides:
            print_text(pairs.write_pairs(run_dir, settings.models, sides[None].server_files, settings.seed))
        gate_ok = compare_sides(sup, run_dir, settings, sides, args.gate, net) if "A" in sides else True
        failed += capacity_run.run_selected(sup, run_dir, settings, sides, net)  # the capacity scenarios' sweeps
        failed += soak.run_selected(sup, run_dir, settings, sides, net)
        if not args.no_microbench:
            matrix.run_microbench(args.build_dir)
        state = {"finished_at": utc_now(), "interrupted": False}
    except network.NetworkError as e:
        log(f"run_all.sh: {e}")
        return 2
    except Interrupted as e:
        log(f"run_all.sh: interrupted ({e}), stopping what it started; finish with "
            f"./run_all.sh --resume {run_dir.path}")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sup.close()
        net.close()
        run_dir.write_manifest(settings, state)
    run_dir.link_latest(os.path.join(ROOT, "results"))
    report(args, run_dir)
    log(f"== done in {time.monotonic() - started:.0f} s: {run_dir.path} ({failed} failed point(s))")
    return 1 if failed or not gate_ok else 0


def compare_sides(sup, run_dir, settings, sides, gate, net):
    """The A/B comparison of the run; with gate, the rows called slower are measured again (their
    points only, fresh trials, in confirm/), and the gate fails only on a row slower both times."""
    rows = ab.compare_run(run_dir, settings)
    print_file(os.path.join(run_dir.path, "comparison.md"))
    failures = comparison.gate_failures(rows)
    if not gate or not failures:
        return True
    keys = comparison.rows_to_rerun(rows)
    log(f"== gate: {len(failures)} row(s) slower; measuring their {len(keys)} point(s) again to confirm")
    confirm = RunDir(os.path.join(run_dir.path, "confirm"))
    confirm.create()
    Matrix(sup, confirm, settings.replace(seed=settings.seed + 1), sides, net, only=set(keys)).run()
    confirmed = comparison.confirmed_failures(rows, ab.compare_run(confirm, settings, set(keys)))
    for r in confirmed:
        log(f"== gate: {r['model']} {r['scenario']} {r['point']} {r['metric']} slower: "
            f"B/A {units.ratio(r['ratio'])}, family interval [{units.ratio(r['family_ci_low'])}, "
            f"{units.ratio(r['family_ci_high'])}], "
            "confirmed by a rerun")
    if not confirmed:
        log("== gate: the rerun did not confirm them: no change detected")
    return not confirmed


def print_text(text):
    if text:
        sys.stderr.write(text)


def print_file(path):
    try:
        with open(path) as f:
            sys.stderr.write(f.read())
    except OSError:
        pass


def run_plots(module, *args, **kwargs):
    """python3 -P -m <module> of this checkout's plots package (ROOT on the path, as run_all.sh sets it)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    return subprocess.call([sys.executable, "-P", "-m", module, *args], env=env, **kwargs)


def report(args, run_dir):
    if run_plots("plots.print_table", run_dir.path) != 0:
        log("== could not print the table")
    if args.no_plots:
        return
    log("== plots")
    if run_plots("plots", run_dir.path, stdout=sys.stderr) != 0:
        log(f"== plotting failed; results are intact in {run_dir.path}")
