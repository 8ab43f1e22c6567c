"""The verdict table: the claims of docs/contract.md judged from a run's numbers, with their margins.

Each rule is explicit and written next to its claim, as one or more checks of the form
"this ratio (or value) is at least / at most a threshold". A check measured over repeats is
judged on its 95% interval (serverbench.stats.threshold_verdict): `holds` when the whole
interval is on the claim's side of the threshold, `does not hold` when it is wholly on the
other side, `inconclusive` when it straddles the threshold or the run has too few repeats for
an interval. Microbenchmark figures are means over thousands of iterations, and facts such as
"connections were refused" are counts; those are judged on their value alone. A claim holds
when all its checks hold, fails when one fails, and is otherwise inconclusive. A claim whose
data is missing is "not measured", never guessed. Thresholds are factors, chosen to separate
mechanisms, not noise.
"""
from dataclasses import dataclass

from serverbench import stats
from serverbench.units import number

from .run_results import dispatch_costs, microbench_times_us, readiness_series

HOLDS, FAILS, INCONCLUSIVE, UNMEASURED = "holds", "does not hold", "inconclusive", "not measured"


@dataclass
class Check:
    """One measured comparison against a rule's threshold."""
    text: str                 # what is compared, e.g. "thread-per-conn ÷ thread-pool CPU/req"
    num: list                 # repeats of the numerator (or of the value itself)
    den: list = None          # repeats of the denominator; None: the value is judged alone
    threshold: float = 1.0
    direction: str = "at_least"
    exact: bool = False       # a figure without repeats to judge (microbenchmark mean, a count)
    unit: str = "x"           # "x": a ratio; otherwise the value's unit

    def judge(self):
        """(verdict, estimate, low, high, margin)."""
        num, den = [v for v in self.num if v is not None], [v for v in (self.den or []) if v is not None]
        if self.den is not None and (not den or sorted(den)[len(den) // 2] == 0):
            return UNMEASURED, None, None, None, None
        if self.exact or len(num) < 2 or (self.den is not None and len(den) < 2):
            estimate = stats.median(num) / stats.median(den) if self.den is not None else stats.median(num)
            sign = 1 if self.direction == "at_least" else -1
            margin = sign * (estimate - self.threshold)
            verdict = (HOLDS if margin >= 0 else FAILS) if self.exact else INCONCLUSIVE
            return verdict, estimate, None, None, margin
        v = stats.threshold_verdict((num, den) if self.den is not None else num, self.threshold, self.direction)
        name = {stats.HOLDS: HOLDS, stats.FAILS: FAILS}.get(v.verdict, INCONCLUSIVE)
        return name, v.estimate, v.ci_low, v.ci_high, v.margin

    def describe(self):
        verdict, est, low, high, margin = self.judge()
        if est is None:
            return verdict, f"{self.text}: no value"
        if self.unit == "fact":
            return verdict, self.text + ("" if verdict == HOLDS else " (not observed)")
        rule = f"{'≥' if self.direction == 'at_least' else '≤'} {_num(self.threshold, self.unit)}"
        interval = (f", 95% CI {_num(low, self.unit)}–{_num(high, self.unit)}" if low is not None
                    else (" (one figure)" if self.exact else " (too few repeats for an interval)"))
        shown = f"{margin:+.3g}" if self.unit == "x" or abs(margin) < 1000 else f"{margin:+,.0f}"
        return verdict, (f"{self.text}: {_num(est, self.unit)}{interval}; rule {rule}, "
                         f"margin {shown}{'' if self.unit == 'x' else ' ' + self.unit}")


def _num(v, unit):
    """A claim's figure: a multiple (unit x) as x1.23, anything else a number with its unit."""
    return f"x{number(v)}" if unit == "x" else number(v, f" {unit}")


def fact(text, observed):
    """A yes/no observation (refused connections, errors): holds when observed."""
    return Check(text, [1.0 if observed else 0.0], threshold=1.0, exact=True, unit="fact")


def combine(checks):
    """(verdict, what was measured) of a claim made of checks, each described with its margin."""
    if not checks:
        return None
    described = [c.describe() for c in checks]
    verdicts = [v for v, _ in described]
    if FAILS in verdicts:
        verdict = FAILS
    elif all(v == HOLDS for v in verdicts):
        verdict = HOLDS
    elif all(v == UNMEASURED for v in verdicts):
        verdict = UNMEASURED
    else:
        verdict = INCONCLUSIVE
    return verdict, "; ".join(text for _, text in described)


def _ok(point):
    return point is not None and point.status == "ok" and point.rps is not None


def _s(point, metric):
    return list(point.samples.get(metric) or [])


def _best_label(run, scenario, *models):
    """The label of `scenario` at the most connections where every model has an ok point."""
    for label in reversed(run.labels(scenario)):
        if all(_ok(run.get(m, scenario, label)) for m in models):
            return label
    return None


def _cpu_ratio(run, scenario, num_model, den_model, threshold, direction):
    label = _best_label(run, scenario, num_model, den_model)
    if not label:
        return []
    num, den = run.get(num_model, scenario, label), run.get(den_model, scenario, label)
    return [Check(f"{scenario} {label} server CPU/req {num_model} ÷ {den_model}", _s(num, "cpu"), _s(den, "cpu"),
                  threshold, direction)]


def _micro_ratio(costs, num, den, threshold, direction="at_least"):
    if num in costs and den in costs:
        return [Check(f"{num} ÷ {den}", [costs[num]], [costs[den]], threshold, direction, exact=True)]
    return []


def claim_blocking_one_client(run, _times):
    ok1 = [p for p in run.scenario_points("http-keepalive", "blocking") if p.connections == 1 and _ok(p)]
    more = [p for p in run.scenario_points("http-keepalive", "blocking") if p.connections > 1 and p.status == "ok"]
    if not ok1 or not more:
        return UNMEASURED, "needs the blocking model at 1 and >1 keep-alive connections"
    one, probe = ok1[0], more[0]
    served = probe.established if probe.established is not None else probe.connections
    refused = probe.errors > 0 or served < probe.connections
    if refused:
        return combine([fact(f"blocking with {probe.connections} clients: {probe.errors:,} errors, "
                             f"{served} of {probe.connections} connections established", True)])
    return combine([Check(f"blocking req/s with {probe.connections} clients ÷ with 1", _s(probe, "rps"),
                          _s(one, "rps"), 1.25, "at_most")])


def claim_thread_spawn_cost(run, times):
    costs = dict(dispatch_costs(times))
    checks = (_cpu_ratio(run, "http-close", "thread-per-conn", "thread-pool", 1.1, "at_least")
              + _micro_ratio(costs, "thread spawn + join", "thread-pool hand-off", 2.0))
    return combine(checks) or (UNMEASURED, "needs http-close for thread-per-conn and thread-pool, "
                                           "or the dispatch microbenchmarks")


def claim_pool_limits(run, _times):
    """Part 1: the pool is cheaper per short connection than thread-per-conn.
    Part 2: with more idle keep-alive clients than workers, the active ones starve."""
    checks = _cpu_ratio(run, "http-close", "thread-pool", "thread-per-conn", 1.0, "at_most")
    idle = [p for p in run.scenario_points("idle-conns", "thread-pool") if p.status == "ok"]
    keep = {p.connections: p for p in run.scenario_points("http-keepalive", "thread-pool") if _ok(p)}
    if idle:
        p = idle[-1]
        ref = keep.get(p.connections)
        if p.errors:
            checks.append(fact(f"{p.idle} idle + {p.connections} active clients: {p.errors:,} errors", True))
        elif ref:
            checks.append(Check(f"active req/s with {p.idle} idle clients ÷ without", _s(p, "rps"),
                                _s(ref, "rps"), 0.1, "at_most"))
        else:
            checks.append(fact(f"{p.idle} idle + {p.connections} active clients served nothing", not p.rps))
    return combine(checks) or (UNMEASURED, "needs http-close and idle-conns for thread-pool")


def claim_fork_cost(run, times):
    costs = dict(dispatch_costs(times))
    checks = (_cpu_ratio(run, "http-close", "fork-per-conn", "thread-per-conn", 1.0, "at_least")
              + _micro_ratio(costs, "fork + waitpid", "thread spawn + join", 1.0))
    return combine(checks) or (UNMEASURED, "needs http-close for fork-per-conn and thread-per-conn, "
                                           "or the fork microbenchmark")


def claim_threads_cost_memory(run, _times):
    for label in reversed(run.labels("idle-conns")):
        epoll = run.get("epoll", "idle-conns", label)
        if not (epoll and epoll.status == "ok" and epoll.peak_rss_kib):
            continue
        checks = [Check(f"{model} ÷ epoll peak RSS with {epoll.idle} idle clients ({int(p.peak_threads or 0)} "
                        f"threads, {int(p.peak_processes or 0)} processes, {int(p.ctx_switches or 0):,} switches)",
                        _s(p, "rss"), _s(epoll, "rss"), 2.0)
                  for model in ("thread-per-conn", "fork-per-conn")
                  for p in [run.get(model, "idle-conns", label)] if p and p.status == "ok" and p.peak_rss_kib]
        if checks:
            return combine(checks)
    return UNMEASURED, "needs idle-conns for epoll and thread-per-conn or fork-per-conn"


def _growth(series, name, threshold, direction):
    """Cost at the largest N over cost at the smallest N, judged as one figure."""
    if len(series) < 2 or series[0][1] <= 0:
        return []
    return [Check(f"{name} per call at N={series[-1][0]} ÷ at N={series[0][0]}", [series[-1][1]], [series[0][1]],
                  threshold, direction, exact=True)]


def claim_select(run, times):
    checks = _growth(readiness_series(times).get("select", []), "select()", 5.0, "at_least")
    for p in reversed(run.scenario_points("idle-conns", "select")):
        if p.status == "ok" and p.idle + p.connections >= 1024 and p.idle_established is not None:
            refused = (p.idle_open < p.idle or p.errors > 0
                       or (p.established is not None and p.established < p.connections))
            checks.append(fact(f"{p.idle} idle + {p.connections} active asked: {p.idle_open} idle kept open, "
                               f"{p.errors} active-client errors", refused))
            break
    return combine(checks) or (UNMEASURED, "needs the select readiness microbenchmark or idle-conns >= 1024 "
                                           "for select")


def claim_epoll(run, times):
    checks = _growth(readiness_series(times).get("epoll_wait", []), "epoll_wait", 2.0, "at_most")
    keep = {p.connections: p for p in run.scenario_points("http-keepalive", "epoll") if _ok(p)}
    for p in reversed(run.scenario_points("idle-conns", "epoll")):
        ref = keep.get(p.connections)
        if _ok(p) and ref:
            checks.append(Check(f"{p.connections} active clients' req/s with {p.idle} idle ÷ without",
                                _s(p, "rps"), _s(ref, "rps"), 0.7))
            checks.append(fact(f"no errors with {p.idle} idle ({p.errors})", p.errors == 0))
            checks += _same_syscalls(p, ref)
            break
    return combine(checks) or (UNMEASURED, "needs the epoll readiness microbenchmark or idle-conns and "
                                           "http-keepalive for epoll")


def _count(point, name):
    """The server's counted `name` per request at a point (its counting trial), or None."""
    return ((point.counts or {}).get("server") or {}).get(name) if point else None


def _same_syscalls(idle, ref):
    """Counts decide where they can: epoll makes as many system calls per request with idle
    connections held as without (within 15%): the idle ones cost it nothing per call."""
    a, b = _count(idle, "syscalls_per_request"), _count(ref, "syscalls_per_request")
    if a is None or b is None:
        return []
    return [Check(f"system calls per request with {idle.idle} idle ÷ without (counted)", [a], [b], 1.15,
                  "at_most", exact=True)]


def claim_thread_switches(run, _times):
    """A blocking thread sleeps in read() between requests: about one context switch per request
    (counted), where an event loop makes almost none."""
    checks = []
    for model in ("thread-per-conn", "thread-pool"):
        for p in run.scenario_points("http-keepalive", model):
            v = _count(p, "context_switches_per_request")
            if v is not None:
                checks.append(Check(f"{model} switches per request at {p.label} (counted)", [v], threshold=0.8,
                                    exact=True, unit="per request"))
    loop = [p for p in run.scenario_points("http-keepalive", "epoll")
            if _count(p, "context_switches_per_request") is not None and p.connections > 1]
    if loop:
        p = loop[-1]
        checks.append(Check(f"epoll switches per request at {p.label} (counted)",
                            [_count(p, "context_switches_per_request")], threshold=0.2, direction="at_most",
                            exact=True, unit="per request"))
    return combine(checks) or (UNMEASURED, "needs counted http-keepalive points of the thread models")


def claim_io_wait(run, _times):
    ev = run.get("epoll", "io-wait", (run.labels("io-wait") or [None])[-1])
    threaded = [run.get(m, "io-wait", ev.label) for m in ("thread-pool", "thread-per-conn")] if ev else []
    threaded = [p for p in threaded if _ok(p)]
    if not _ok(ev) or not threaded:
        return UNMEASURED, "needs io-wait for epoll and thread-pool or thread-per-conn"
    best = max(threaded, key=lambda p: p.rps)
    # A single loop that sleeps 1 ms per request cannot exceed ~1000 req/s.
    return combine([Check(f"epoll with a 1 ms wait per request, {ev.connections} clients", _s(ev, "rps"),
                          threshold=1500, direction="at_most", unit="req/s"),
                    Check(f"{best.model} ÷ epoll req/s", _s(best, "rps"), _s(ev, "rps"), 5.0)])


def claim_cpu_cores(run, _times):
    """Models are told apart by what the server actually ran (peak threads/processes),
    not by name: 'one worker' = 1 thread and 1 process during the point."""
    pts = [p for p in run.scenario_points("cpu-bound") if _ok(p)]
    ncpu = (run.manifest.get("machine") or {}).get("cpus") or 2
    single = [p for p in pts if (p.peak_threads or 1) <= 1 and (p.peak_processes or 1) <= 1]
    multi = [p for p in pts if (p.peak_threads or 1) >= ncpu or (p.peak_processes or 1) >= ncpu]
    if not single or not multi:
        return UNMEASURED, "needs cpu-bound for a one-worker model and a model with >= one worker per core"
    s, m = max(single, key=lambda p: p.rps), max(multi, key=lambda p: p.rps)
    return combine([Check(f"100 µs CPU per request on {ncpu} CPUs: best multi-worker {m.model} ÷ best one-worker "
                          f"{s.model} req/s", _s(m, "rps"), _s(s, "rps"), 1.3)])


def claim_keepalive(run, _times):
    checks = []
    for model in run.models:
        keep = {p.connections: p for p in run.scenario_points("http-keepalive", model) if _ok(p)}
        for close in run.scenario_points("http-close", model):
            ref = keep.get(close.connections)
            if _ok(close) and ref:
                checks.append(Check(f"{model} keep-alive ÷ close req/s at c{close.connections}", _s(ref, "rps"),
                                    _s(close, "rps"), 1.0))
                break
    if not checks:
        return UNMEASURED, "needs http-keepalive and http-close at the same connection count"
    verdicts = [c.judge()[0] for c in checks]
    holds, fails = verdicts.count(HOLDS), verdicts.count(FAILS)
    verdict = HOLDS if holds >= 0.8 * len(checks) else FAILS if fails > 0.2 * len(checks) else INCONCLUSIVE
    return verdict, (f"keep-alive at least as fast, beyond the noise, for {holds} of {len(checks)} models, "
                     f"slower for {fails}; "
                     + "; ".join(c.describe()[1] for c in checks[:3]) + ("; …" if len(checks) > 3 else ""))


def claim_datagram_fork_cost(run, _times):
    """Over UDP a process per datagram pays a fork for every request, where a recvfrom loop pays
    two system calls: at least ten times the server CPU per datagram."""
    checks = _cpu_ratio(run, "udp-echo", "fork-per-conn", "blocking", 10.0, "at_least")
    return combine(checks) or (UNMEASURED, "needs udp-echo for fork-per-conn and blocking")


# The calls a loop makes to move datagrams and to wait for them (the handler's own aside: --cpu-us
# reads the thread's CPU clock as it spins).
DATAGRAM_IO_CALLS = ("recvfrom", "sendto", "recvmsg", "sendmsg", "recvmmsg", "sendmmsg", "epoll_wait", "poll",
                     "pselect6", "io_uring_enter")


def _io_calls(point):
    top = _count(point, "top_syscalls_per_request")
    return sum(v for name, v in top.items() if name in DATAGRAM_IO_CALLS) if top else None


def claim_datagram_syscalls(run, _times):
    """A recvfrom loop makes two system calls per datagram, one in and one out (counted at its most
    flows, with no handler); a loop that batches (recvmmsg/sendmmsg, --udp-batch) under load makes
    fewer than one."""
    checks = []
    plain = [p for p in run.scenario_points("udp-echo", "blocking")
             if "batch" not in p.label and _count(p, "syscalls_per_request") is not None]
    if plain:
        p = max(plain, key=lambda p: p.connections)
        v = [_count(p, "syscalls_per_request")]
        checks += [Check(f"blocking system calls per datagram at {p.label} (counted)", v, threshold=1.9, exact=True,
                         unit="per datagram"),
                   Check(f"blocking system calls per datagram at {p.label} (counted)", v, threshold=2.2,
                         direction="at_most", exact=True, unit="per datagram")]
    for p in run.scenario_points("udp-echo", "epoll"):
        if "batch" in p.label and not p.label.endswith("batch1") and _io_calls(p) is not None:
            checks.append(Check(f"epoll message and readiness calls per datagram at {p.label} (counted)",
                                [_io_calls(p)], threshold=1.0, direction="at_most", exact=True, unit="per datagram"))
    return combine(checks) or (UNMEASURED, "needs counted udp-echo points of blocking, and of epoll with --udp-batch")


CLAIMS = [
    ("A blocking single-threaded server serves one client at a time", "http-keepalive (>1 connection)",
     claim_blocking_one_client),
    ("A thread per connection is simple, but creating and destroying threads under many short connections is costly",
     "http-close, dispatch microbenchmarks", claim_thread_spawn_cost),
    ("A thread pool removes that cost, but a pool of N blocking workers serves only N keep-alive clients at once",
     "http-close, idle-conns", claim_pool_limits),
    ("A process per connection isolates clients and costs a fork each", "http-close, fork microbenchmark",
     claim_fork_cost),
    ("Thousands of threads or processes cost memory and context switches", "idle-conns", claim_threads_cost_memory),
    ("select is O(n) per call and cannot watch descriptors >= 1024", "readiness microbenchmark, idle-conns",
     claim_select),
    ("epoll's cost follows the active connections, not the total", "readiness microbenchmark, idle-conns",
     claim_epoll),
    ("One event loop stalls when a handler blocks; threads do not", "io-wait", claim_io_wait),
    ("CPU-heavy handlers need as many workers as cores", "cpu-bound", claim_cpu_cores),
    ("Keep-alive connections beat a new connection per request", "http-keepalive vs http-close", claim_keepalive),
    ("A blocking thread pays a context switch per request; an event loop does not", "http-keepalive (counted)",
     claim_thread_switches),
    ("A process per datagram costs a fork for every request", "udp-echo", claim_datagram_fork_cost),
    ("A recvfrom loop makes two system calls per datagram; batching makes fewer than one", "udp-echo (counted)",
     claim_datagram_syscalls),
]


def verdicts(run):
    """[(claim, scenario, what was measured with margins, verdict)] in the order of docs/contract.md."""
    times = microbench_times_us(run.microbench)
    rows = []
    for claim, scenario, rule in CLAIMS:
        verdict, what = rule(run, times)
        rows.append((claim, scenario, what, verdict))
    return rows


RULES_INTRO = (
    "Rules (computed from this run; thresholds are factors, chosen to separate mechanisms, not noise). Each check is "
    "judged on its 95% interval: holds when the interval is wholly on the rule's side of the threshold, does not hold "
    "when wholly on the other side, inconclusive when it straddles it or the point has fewer than two repeats. The "
    "margin is the estimate's distance from the threshold (positive: on the claim's side). Microbenchmark means and "
    "counts of refused connections or errors are judged on their value.")
RULE_LINES = [
    "blocking: >1 client gives <= 1.25x its 1-client req/s, or refused/failed connections.",
    "thread spawn: thread-per-conn server CPU/req in http-close >= 1.1x thread-pool's, and spawn+join >= 2x pool "
    "hand-off.",
    "thread pool: its http-close CPU/req is at most thread-per-conn's, and with more idle clients than workers the "
    "active clients get <= 10% of its keep-alive req/s (or errors).",
    "fork: fork-per-conn CPU/req in http-close >= thread-per-conn's, and fork+waitpid >= spawn+join.",
    "memory: thread-per-conn / fork-per-conn peak RSS with idle clients >= 2x epoll's.",
    "select: select() per call grows >= 5x from the smallest to the largest N, and at >= 1024 connections some are "
    "refused.",
    "epoll: epoll_wait per call grows <= 2x over N, 50 active clients keep >= 70% of their req/s with idle ones "
    "held, and make <= 1.15x the system calls per request (counted).",
    "io-wait: epoll <= 1500 req/s with a 1 ms wait per request while a threaded model does >= 5x that.",
    "cpu-bound: a model running >= one worker per CPU does >= 1.3x the best one-worker model.",
    "keep-alive: keep-alive req/s is at least close-mode req/s at equal connections (interval wholly >= x1) for "
    ">= 80% of models.",
    "switches: thread-per-conn and thread-pool make >= 0.8 context switches per request in keep-alive (counted), "
    "epoll <= 0.2 above one connection.",
    "fork per datagram: fork-per-conn server CPU per datagram in udp-echo >= 10x blocking's.",
    "datagram calls: blocking makes 1.9 to 2.2 system calls per datagram in udp-echo at its most flows, epoll with "
    "--udp-batch under load <= 1 message and readiness call (counted).",
]
RULES = RULES_INTRO + "\n" + "\n".join(RULE_LINES) + "\n"
