"""The matrix, defined once: models' display order, profiles, scenarios and their points.

The driver runs what is defined here, and the charts, tables and claims read their titles
and order from here too, so a scenario or a profile is added in this one file.
"""
from dataclasses import dataclass, field

# Display order of the models the suite knows, by family (blocking, threads, processes,
# readiness loops, completion, coroutines); any other model follows, alphabetically.
MODEL_ORDER = ["blocking", "thread-per-conn", "thread-pool", "fork-per-conn", "prefork", "select",
               "poll", "epoll", "epoll-reuseport", "epoll-pool", "io-uring", "coroutine"]
# The production servers of the bundled server files (servers/references/), after the models:
# Apache's three MPMs (prefork, worker, event), then the event loops.
REFERENCE_ORDER = ["apache-prefork", "apache-worker", "apache-event", "nginx", "nginx-reuseport", "lighttpd", "h2o"]
DISPLAY_ORDER = MODEL_ORDER + REFERENCE_ORDER


def ordered_models(models):
    return sorted(models, key=lambda m: (DISPLAY_ORDER.index(m) if m in DISPLAY_ORDER else len(DISPLAY_ORDER), m))


REQUEST_TIMEOUT = "5s"   # a profile's by default, and a capacity step's (its plan sets none)


@dataclass(frozen=True)
class Profile:
    """How long each point runs, how often it repeats, and which points exist."""
    name: str
    warmup: str
    duration: str
    repeat: int
    microbench_min_time: float
    keepalive_conns: tuple
    close_conns: tuple
    echo_sizes: tuple = (64, 16384)
    # Datagrams (udp-echo): their sizes (a small request, and one that fills an Ethernet frame)
    # and their flows (one: a round trip at a time; fifty: a loop that finds many ready).
    udp_sizes: tuple = (64, 1400)
    udp_flows: tuple = (1, 50)
    # A loop under load, with and without recvmmsg/sendmmsg batches of this many datagrams
    # (--udp-batch; () for neither point): small datagrams at the most flows and a 20 µs handler,
    # so that they arrive faster than a loop answers them one by one and a wake-up finds many.
    # Without the handler one load-generator CPU cannot outrun a loop's recvfrom and sendto.
    udp_batch: tuple = (32,)
    idle_counts: tuple = (1000,)
    active_conns: int = 50
    # One offered rate for every model, so latencies are compared at equal load (as wrk2 is
    # used): below every model's keep-alive capacity at 50 connections on a 2-CPU machine and
    # within one loadgen thread's reach.
    open_loop_rps: int = 20000
    hidden: bool = False
    scenarios: tuple = ()        # the scenarios it runs when --scenarios is not given; () is all
    left_out: tuple = ()         # of those, the ones it runs only when --scenarios names them
    # ((scenario, models or None), ...): of those scenarios, only these models (None: every one).
    focus: tuple = ()
    # Counting trials (counting.py) are short: counts per request hardly move, and the time under
    # perf is not a timing.
    # Over a link with distance (--net veth/wan): a closed loop from one connection to thousands,
    # and an open loop at one rate over many connections.
    distance_conns: tuple = (1, 10, 100, 1000)
    distance_rate: int = 5000
    # How long a request may go unanswered (loadgen's --timeout), and so how long a trial waits
    # after its window for the answers still due (a blocking server's queued clients, a pool whose
    # workers idle connections hold never answer); the idle holder waits as long for the server
    # to accept its connections.
    timeout: str = REQUEST_TIMEOUT
    count_warmup: str = "100ms"
    count_duration: str = "500ms"
    # Trials per side in an A/B run: Welch's t-test has no floor at small N, but the smallest
    # change a row can call shrinks with the trials (docs/statistics.md, serverbench/power.py).
    ab_trials: int = 8
    # Counting trials per side in an A/B run (None: as many as the timed trials). Counts per
    # request hardly move from trial to trial, so fewer of them still resolve a few percent.
    ab_count_trials: int = None
    capacity: object = None      # CapacityPlan: which capacity sweeps run, and how long their steps are
    # The bundled production servers it runs beside the models when --models does not name them
    # (--no-references drops them); the driver installs their packages first.
    references: tuple = ()

    def count_trials(self, trials):
        """Counting trials per side of an A/B run with `trials` timed trials per side."""
        return min(trials, self.ab_count_trials or trials)


# ---------------------------------------------------------------- capacity sweeps (serverbench/capacity.py)


@dataclass(frozen=True)
class CapacityPlan:
    """The capacity sweeps a profile runs when --scenarios does not name them (models: () is every
    model; --models names them instead), and the length of their steps (capacity.SweepSettings)."""
    models: tuple = ()
    scenarios: tuple = ()
    warmup: str = "250ms"
    duration: str = "1s"
    interval: str = "100ms"
    closed_duration: str = "500ms"
    min_samples: int = 1000
    max_duration: str = "3s"
    repeats: int = 3
    resolution: float = 1.1
    max_steps: int = 24


# Budgets (docs/capacity.md has the measured times): quick's whole run stays under 4 min, so its
# sweep is coarse (its figures say they are indicative) and covers two telling models on io-wait
# (one loop against a 64-worker pool); standard sweeps every model on the plain and io-wait
# handlers, full on all three, both refined to 1.05x steps so that saturation repeats.
CAPACITY_PLANS = {
    "smoke": CapacityPlan(warmup="100ms", duration="300ms", closed_duration="300ms", min_samples=0,
                          max_duration="300ms", repeats=2, resolution=1.25, max_steps=16),
    "quick": CapacityPlan(models=("epoll", "thread-pool"), scenarios=("capacity-io-wait",), warmup="200ms",
                          duration="500ms", closed_duration="300ms", min_samples=300, max_duration="700ms",
                          repeats=3, resolution=1.25, max_steps=12),
    "standard": CapacityPlan(scenarios=("capacity", "capacity-io-wait"), warmup="250ms", duration="500ms",
                             min_samples=400, max_duration="1s", repeats=3, resolution=1.05, max_steps=20),
    "full": CapacityPlan(scenarios=("capacity", "capacity-io-wait", "capacity-cpu-bound"), warmup="250ms",
                         duration="500ms", min_samples=400, max_duration="1s", repeats=3, resolution=1.05,
                         max_steps=20),
}


# quick must stay under 4 minutes for all twelve models on a 2-core machine (CI); smoke is a
# hidden few-point profile for the driver's own tests.
PROFILES = {p.name: p for p in [
    Profile("smoke", "200ms", "500ms", 1, 0.01, (1, 10), (10,), echo_sizes=(64,), idle_counts=(100,),
            udp_sizes=(64,), udp_flows=(10,), udp_batch=(), left_out=("udp-echo", "udp-cpu-bound"), active_conns=10,
            open_loop_rps=500, hidden=True, ab_trials=6, distance_conns=(1, 10), distance_rate=500, timeout="1s",
            capacity=CAPACITY_PLANS["smoke"]),
    # Of the datagrams, quick runs one point (64 B at 50 flows) unless --scenarios asks for more.
    Profile("quick", "100ms", "500ms", 1, 0.01, (1, 50), (50,), udp_sizes=(64,), udp_flows=(50,), udp_batch=(),
            left_out=("udp-cpu-bound",), ab_trials=6, distance_conns=(1, 100),
            timeout="1s", count_duration="250ms", capacity=CAPACITY_PLANS["quick"], references=("nginx",)),
    # Three repeats: the fewest from which the report ranks models (a median with an interval).
    Profile("standard", "400ms", "1500ms", 3, 0.05, (1, 10, 50, 200), (1, 10, 50),
            capacity=CAPACITY_PLANS["standard"], references=tuple(REFERENCE_ORDER)),
    Profile("full", "1s", "4s", 3, 0.2, (1, 10, 50, 200, 1000), (1, 10, 50), idle_counts=(1000, 10000),
            ab_trials=10, distance_conns=(1, 10, 100, 1000, 4000), capacity=CAPACITY_PLANS["full"],
            references=tuple(REFERENCE_ORDER)),
    # The CI gate: every model at 1 and 50 keep-alive clients, and a connection per request for
    # the models whose price is per connection (a thread, a fork) and for epoll as their reference;
    # short trials, 8 per side, since the power comes from the number of trials (docs/statistics.md).
    # Two keep-alive points give each model two CPU rows of different kinds (one client: a wake-up
    # per request; 50: as many requests per wake-up as are ready): a shift of a shared machine's
    # state within a point widens that point's rows, and the other may escape it (docs/statistics.md).
    Profile("gate", "200ms", "500ms", 1, 0.01, (1, 50), (50,), scenarios=("http-keepalive", "http-close"),
            focus=(("http-keepalive", None), ("http-close", ("thread-per-conn", "fork-per-conn", "epoll"))),
            ab_trials=8, ab_count_trials=6, timeout="1s", count_duration="300ms"),
    # Every model, one at a time, for --soak-minutes each (serverbench/soak.py); the production
    # servers when --models names them.
    Profile("soak", "0s", "1s", 1, 0.01, (), (), scenarios=("soak",)),
]}


@dataclass(frozen=True)
class PointSpec:
    """One point of a scenario, the same for every model."""
    scenario: str
    label: str
    connections: int
    server_flags: tuple
    loadgen_flags: tuple
    idle: int = 0
    all_cpus: bool = False       # the server gets every CPU (the scenario is about using cores)

    @property
    def datagrams(self):
        """Served over UDP: loadgen and the server both run with --transport udp."""
        flags = list(self.loadgen_flags)
        return "--transport" in flags[:-1] and flags[flags.index("--transport") + 1] == "udp"


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    short: str                   # column label in the terminal table
    points: object = field(compare=False)   # Profile -> [PointSpec]
    distance: bool = False       # run by default over a link (--net veth/wan), not on loopback
    on_demand: bool = False      # run only by a profile that names it, or by --scenarios
    about: str = ""              # what it tests, in the report (which shows the title when empty)


def _size_label(size):
    return f"{size // 1024}KiB" if size % 1024 == 0 else f"{size}B"


def _keepalive(p):
    return [PointSpec("http-keepalive", f"c{c}", c, ("--protocol", "http"),
                      ("--protocol", "http", "--mode", "keepalive")) for c in p.keepalive_conns]


def _close(p):
    return [PointSpec("http-close", f"c{c}", c, ("--protocol", "http"),
                      ("--protocol", "http", "--mode", "close")) for c in p.close_conns]


def _echo(p):
    c = p.active_conns
    return [PointSpec("echo", f"{_size_label(s)}-c{c}", c, ("--protocol", "echo"),
                      ("--protocol", "echo", "--message-bytes", str(s))) for s in p.echo_sizes]


def _cpu_bound(p):
    c = p.active_conns
    return [PointSpec("cpu-bound", f"c{c}", c, ("--protocol", "http", "--cpu-us", "100"),
                      ("--protocol", "http"), all_cpus=True)]


# Points whose story is in time (a stall, a queue that grows, idle clients that cost the loop):
# timeseries entries of 100 ms, so the steady-state check (serverbench/steady.py) has enough of them.
TIMESERIES_FLAGS = ("--interval", "100ms")


def _io_wait(p):
    # Every model that has workers gets 64 of them (the blocking-pool default), so hand-off
    # pools and blocking pools face the 1 ms wait with the same headcount.
    c = p.active_conns
    return [PointSpec("io-wait", f"c{c}", c, ("--protocol", "http", "--io-us", "1000", "--workers", "64"),
                      ("--protocol", "http", *TIMESERIES_FLAGS))]


def _idle(p):
    c = p.active_conns
    return [PointSpec("idle-conns", f"idle{n}-c{c}", c, ("--protocol", "http"),
                      ("--protocol", "http", *TIMESERIES_FLAGS), idle=n) for n in p.idle_counts]


def _open_loop(p):
    c = p.active_conns
    return [PointSpec("open-loop", f"c{c}", c, ("--protocol", "http"),
                      ("--protocol", "http", "--rate", str(p.open_loop_rps), *TIMESERIES_FLAGS))]


# ---------------------------------------------------------------- datagrams (docs/udp.md)
UDP = ("--transport", "udp")


def _udp_echo(p):
    plain = [PointSpec("udp-echo", f"{_size_label(s)}-c{c}", c, UDP, (*UDP, "--message-bytes", str(s)))
             for s in p.udp_sizes for c in p.udp_flows]
    flows, size = max(p.udp_flows), min(p.udp_sizes)
    loaded = [PointSpec("udp-echo", f"{_size_label(size)}-c{flows}-cpu20-batch{b}", flows,
                        (*UDP, "--cpu-us", "20", "--udp-batch", str(b)), (*UDP, "--message-bytes", str(size)))
              for b in ((1, *p.udp_batch) if p.udp_batch else ())]
    return plain + loaded


def _udp_cpu_bound(p):
    c = p.active_conns
    return [PointSpec("udp-cpu-bound", f"c{c}", c, (*UDP, "--cpu-us", "100"), UDP, all_cpus=True)]


def _distance(p):
    return [PointSpec("distance", f"c{c}", c, ("--protocol", "http"), ("--protocol", "http", "--mode", "keepalive"))
            for c in p.distance_conns]


def _distance_open_loop(p):
    c = max(p.distance_conns)
    return [PointSpec("distance-open-loop", f"r{p.distance_rate}-c{c}", c, ("--protocol", "http"),
                      ("--protocol", "http", "--rate", str(p.distance_rate)))]


def _nagle(p):
    # TCP_NODELAY off on both ends: what Nagle's algorithm and delayed ACKs cost a request-response
    # protocol whose messages each fit one write.
    off = ("--tcp-nodelay", "off")
    return [PointSpec("nagle", f"c{c}", c, ("--protocol", "http", *off), ("--protocol", "http", *off))
            for c in (1, p.active_conns)]


SCENARIOS = [
    Scenario("http-keepalive", "HTTP keep-alive", "keep", _keepalive,
             about="Closed-loop HTTP/1.1 clients that keep their connection open and send the next request as "
                   "soon as the answer arrives. It tests how each model serves many concurrent busy connections, "
                   "and the claim that a blocking server serves one client at a time."),
    Scenario("http-close", "HTTP, a new connection per request", "close", _close,
             about="A new TCP connection for every request, so accepting, dispatching and tearing down a "
                   "connection dominate. It tests what a thread, a fork or a pool hand-off per connection costs."),
    Scenario("echo", "Echo (raw byte stream)", "echo", _echo,
             about="A raw byte stream echoed back, in small and large messages: buffering, partial reads and "
                   "writes, without HTTP parsing."),
    Scenario("cpu-bound", "CPU-bound handler (100 µs of CPU per request)", "cpu", _cpu_bound,
             about="Every request burns 100 µs of CPU and the server may use every CPU. It tests whether a model "
                   "puts all cores to work."),
    Scenario("io-wait", "Blocking handler (1 ms wait per request)", "io", _io_wait,
             about="Every request waits 1 ms (a simulated database call). It tests whether one blocked handler "
                   "stalls the other clients (a single event loop) or not (threads, processes, pools)."),
    Scenario("idle-conns", "Active clients while idle connections are held open", "idle", _idle,
             about="Active clients measured while many idle connections are held open: what connections that do "
                   "nothing cost in memory, threads and readiness calls (the C10K question)."),
    Scenario("open-loop", "Open loop at one fixed rate for every model (latency without coordinated "
             "omission)", "open", _open_loop,
             about="Requests arrive at one fixed rate for every model and latency counts from the moment a "
                   "request should have been sent (no coordinated omission). Throughput is fixed by design, so "
                   "the models are compared on latency at equal load."),
    Scenario("udp-echo", "UDP echo: a datagram per request, closed loop", "udp", _udp_echo,
             about="Each flow sends a datagram and waits for the same bytes back (or for its 200 ms reply "
                   "timeout). No connection to accept or hold: it tests what each model pays per datagram, in "
                   "system calls and CPU, and counts every datagram lost."),
    Scenario("udp-cpu-bound", "UDP, CPU-bound handler (100 µs of CPU per datagram)", "udp-cpu", _udp_cpu_bound,
             about="Every datagram burns 100 µs of CPU and the server may use every CPU: where a thread per "
                   "datagram, a pool and a single loop part ways."),
    Scenario("distance", "Closed loop over the link, from one connection to thousands", "dist", _distance,
             distance=True),
    Scenario("distance-open-loop", "Open loop at one rate over many connections across the link", "dopen",
             _distance_open_loop, distance=True),
    Scenario("nagle", "HTTP keep-alive with TCP_NODELAY off on both ends (Nagle and delayed ACKs)", "nagle",
             _nagle, distance=True),
]


@dataclass(frozen=True)
class CapacityScenario:
    """An open-loop sweep (serverbench/capacity.py) instead of matrix points. slo_p99_ms is the
    default objective: 10x the handler's low-load latency, and never below 20 ms, the floor of this
    shared machine's own jitter: a 0.5 s step's p99 far below saturation reached 10-16 ms in one
    step in ten, while past saturation it is 20-200 ms (docs/capacity.md)."""
    name: str
    title: str
    short: str
    server_flags: tuple
    slo_p99_ms: float
    all_cpus: bool = False
    # Datagrams: loss joins the rules (capacity.LOSS_LIMIT), and a step carries at least
    # min_samples datagrams, the fewest over which a loss of 0.1% is more than a few datagrams.
    datagrams: bool = False
    min_samples: int = 0
    max_duration: str = None


CAPACITY_SCENARIOS = {c.name: c for c in [
    CapacityScenario("capacity", "Capacity: tail latency against offered load, plain HTTP handler", "cap",
                     ("--protocol", "http"), 20.0),
    CapacityScenario("capacity-io-wait", "Capacity with a 1 ms wait per request (64 workers)", "cap-io",
                     ("--protocol", "http", "--io-us", "1000", "--workers", "64"), 20.0),
    CapacityScenario("capacity-cpu-bound", "Capacity with 100 µs of CPU per request (every CPU)", "cap-cpu",
                     ("--protocol", "http", "--cpu-us", "100"), 20.0, all_cpus=True),
    CapacityScenario("udp-capacity", "UDP capacity: loss and tail latency against offered datagrams", "udp-cap",
                     UDP, 20.0, datagrams=True, min_samples=10000, max_duration="2s"),
]}
# The matrix has no points for them: the sweep chooses its own rates.
SCENARIOS += [Scenario(c.name, c.title, c.short, lambda p: []) for c in CAPACITY_SCENARIOS.values()]


def capacity_spec(scenario, label, connections, rate=None):
    """One step of a capacity sweep: the open loop at `rate`, or the closed loop when rate is None."""
    c = CAPACITY_SCENARIOS[scenario]
    rate_flags = ("--rate", str(rate)) if rate is not None else ()
    request_flags = UDP if c.datagrams else ("--protocol", "http")
    return PointSpec(scenario, label, connections, c.server_flags, (*request_flags, *rate_flags),
                     all_cpus=c.all_cpus)




# ---------------------------------------------------------------- the soak (serverbench/soak.py)


@dataclass(frozen=True)
class SoakPlan:
    """The soak's steady, mixed load, the same for every model (docs/soak.md). Far below every
    model's saturation on two CPUs, so that the soak measures time, not overload: the slowest
    model's keep-alive capacity is tens of thousands of requests/s, fork-per-conn's a few
    thousand new connections/s. The connections open at once stay below the pools' 64 workers:
    8 keep-alive, 2 churning, a wave of 32 idle, up to 4 misbehaving clients."""
    minutes: float = 10              # --soak-minutes
    keepalive_conns: int = 8
    keepalive_rps: int = 1000        # open loop, so every model is offered the same
    churn_conns: int = 2
    churn_rps: int = 200             # a new connection per request
    idle_wave: int = 32              # idle connections held per wave
    wave_every_s: float = 10
    wave_hold_s: float = 4
    bad_every_s: float = 0.5         # a misbehaving client (soak_clients.py) this often
    max_bad: int = 4
    sample_s: float = 2.0            # the server's memory, descriptors and threads this often
    interval: str = "1s"             # loadgen's timeseries entries (throughput, p99)
    settle_s: float = 10.0           # the whole mix before "before" is counted: one idle wave, and a
                                     # pool's workers each touched
    drain_s: float = 10.0            # at most this long for the server to close what it should
    reload_share: float = 0.25       # the reload runs this share of the soak's length,
    reload_min_s: float = 10.0       # and at least this long

    def reload_seconds(self, soak_s):
        return round(max(self.reload_min_s, self.reload_share * soak_s), 1)


SOAK_PLAN = SoakPlan()
SOAK_NOT_APPLICABLE = ("the blocking model serves one client at a time: the soak's idle and keep-alive "
                       "clients would hold it")
SCENARIOS.append(Scenario("soak", "Soak: minutes of mixed load, memory, descriptors and p99 over time", "soak",
                          lambda p: [], on_demand=True,
                          about="A steady mixed load well below saturation for minutes (keep-alive clients, "
                                "a new connection per request, idle waves, misbehaving clients), then a drain and "
                                "a second load: does the server's memory, descriptor or thread count grow?"))

SCENARIO_NAMES = [s.name for s in SCENARIOS]
# Scenarios with no matrix points: each has a runner of its own (capacity_run.py, soak.py).
OWN_RUNNERS = set(CAPACITY_SCENARIOS) | {"soak"}
SCENARIO_TITLES = {s.name: s.title for s in SCENARIOS}
SCENARIO_SHORT = {s.name: s.short for s in SCENARIOS}
SCENARIO_ABOUT = {s.name: s.about for s in SCENARIOS}
_BY_NAME = {s.name: s for s in SCENARIOS}

NOT_APPLICABLE_REASON = "the blocking model serves one client at a time"


def scenario_points(scenario, profile):
    return _BY_NAME[scenario].points(profile)


def blocking_probe_connections(profile):
    """The one keep-alive point above one connection where the blocking model is measured."""
    return next((c for c in profile.keepalive_conns if c > 1), None)


def in_focus(model, scenario, profile):
    """Whether the profile measures this model at this scenario at all (see Profile.focus)."""
    if not profile.focus:
        return True
    models = dict(profile.focus).get(scenario, ())
    return models is None or model in models


def applicable(model, spec, profile):
    """The blocking model serves one client at a time (the rest wait in the backlog): it runs the
    one-connection points, plus one probe of http-keepalive above one connection, where that
    claim is measured. Elsewhere it is not-applicable. Over UDP there is no connection to hold:
    its loop serves every flow, a datagram at a time."""
    if model != "blocking" or spec.connections == 1 or spec.datagrams:
        return True
    return spec.scenario == "http-keepalive" and spec.connections == blocking_probe_connections(profile)


def not_applicable(model, spec, profile, server_file=None, net_kind="loopback"):
    """Why model does not run this point (its record says not-applicable), or None. server_file:
    the model's server_file.ServerFile when it is a server of a server file."""
    if server_file is not None:
        return server_file.refusal(spec.scenario, net_kind)
    return None if applicable(model, spec, profile) else NOT_APPLICABLE_REASON


def default_scenarios(profile, net_kind):
    """The scenarios a run has when --scenarios does not say: the profile's own, else those of
    its network: the distance ones over a link, the others on this machine."""
    if profile.scenarios:
        return list(profile.scenarios)
    over_link = net_kind in ("veth", "wan")
    return [s.name for s in SCENARIOS if s.name not in profile.left_out and not s.on_demand
            and (s.distance == over_link or (over_link and s.name == "http-keepalive"))]


def scenario_order(names):
    """Known scenarios in matrix order, then any other, alphabetically."""
    present = set(names)
    return [s for s in SCENARIO_NAMES if s in present] + sorted(present - set(SCENARIO_NAMES))
