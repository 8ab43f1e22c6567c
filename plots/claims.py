"""The verdict table: DESIGN.md's claims judged from a run's numbers.

Each rule is explicit and written next to its claim; a claim whose data is
missing (model not built, scenario not run, point failed) is "not measured",
never guessed. Thresholds are deliberately coarse (factors, not percents):
they separate mechanisms, not noise.
"""
from run_results import dispatch_costs, microbench_times_us, readiness_series

HOLDS, FAILS, UNMEASURED = "holds", "does not hold", "not measured"


def _ok(point):
    return point is not None and point.status == "ok" and point.rps is not None


def _fmt_rps(v):
    return f"{v:,.0f} req/s"


def _fmt_us(v):
    return f"{v:,.1f} µs" if v is not None else "?"


def _best_label(run, scenario, *models):
    """The label of `scenario` at the most connections where every model has an ok point."""
    for label in reversed(run.labels(scenario)):
        if all(_ok(run.get(m, scenario, label)) for m in models):
            return label
    return None


def claim_blocking_one_client(run):
    ok1 = [p for p in run.scenario_points("http-keepalive", "blocking") if p.connections == 1 and _ok(p)]
    more = [p for p in run.scenario_points("http-keepalive", "blocking") if p.connections > 1 and p.status == "ok"]
    if not ok1 or not more:
        return UNMEASURED, "needs the blocking model at 1 and >1 keep-alive connections"
    one, probe = ok1[0], more[0]
    served = probe.established if probe.established is not None else probe.connections
    rps = probe.rps or 0.0
    no_scaling = rps <= 1.25 * one.rps
    refused = probe.errors > 0 or served < probe.connections
    what = (f"blocking: {_fmt_rps(one.rps)} with 1 client, {_fmt_rps(rps)} with {probe.connections} "
            f"({probe.errors} errors, {served} of {probe.connections} connections established)")
    return (HOLDS if (no_scaling or refused) else FAILS), what


def claim_thread_spawn_cost(run, times):
    label = _best_label(run, "http-close", "thread-per-conn", "thread-pool")
    spawn = dict(dispatch_costs(times)).get("thread spawn + join")
    handoff = dict(dispatch_costs(times)).get("thread-pool hand-off")
    parts, verdicts = [], []
    if label:
        tpc, pool = run.get("thread-per-conn", "http-close", label), run.get("thread-pool", "http-close", label)
        if tpc.server_cpu_us_per_req and pool.server_cpu_us_per_req:
            verdicts.append(tpc.server_cpu_us_per_req > 1.1 * pool.server_cpu_us_per_req)
            parts.append(f"http-close {label}: thread-per-conn {_fmt_us(tpc.server_cpu_us_per_req)}/req vs "
                         f"thread-pool {_fmt_us(pool.server_cpu_us_per_req)}/req server CPU")
    if spawn and handoff:
        verdicts.append(spawn > 2 * handoff)
        parts.append(f"spawn+join {_fmt_us(spawn)} vs pool hand-off {_fmt_us(handoff)}")
    if not verdicts:
        return UNMEASURED, "needs http-close for thread-per-conn and thread-pool, or the dispatch microbenchmarks"
    return (HOLDS if all(verdicts) else FAILS), "; ".join(parts)


def claim_pool_limits(run):
    """Part 1: the pool is cheaper per short connection than thread-per-conn.
    Part 2: with more idle keep-alive clients than workers, the active ones starve."""
    parts, verdicts = [], []
    label = _best_label(run, "http-close", "thread-per-conn", "thread-pool")
    if label:
        tpc, pool = run.get("thread-per-conn", "http-close", label), run.get("thread-pool", "http-close", label)
        if tpc.server_cpu_us_per_req and pool.server_cpu_us_per_req:
            verdicts.append(pool.server_cpu_us_per_req < tpc.server_cpu_us_per_req)
            parts.append(f"http-close CPU/req pool {_fmt_us(pool.server_cpu_us_per_req)} vs "
                         f"thread-per-conn {_fmt_us(tpc.server_cpu_us_per_req)}")
    idle = [p for p in run.scenario_points("idle-conns", "thread-pool") if p.status == "ok"]
    keep = {p.connections: p for p in run.scenario_points("http-keepalive", "thread-pool") if _ok(p)}
    if idle:
        p = idle[-1]
        ref = keep.get(p.connections)
        starved = (p.rps or 0) < 0.1 * ref.rps if ref else (p.rps or 0) == 0
        verdicts.append(starved or p.errors > 0)
        parts.append(f"{p.idle} idle + {p.connections} active clients (64 workers): "
                     f"{_fmt_rps(p.rps or 0)}, {p.errors} errors"
                     + (f", vs {_fmt_rps(ref.rps)} without idle clients" if ref else ""))
    if not verdicts:
        return UNMEASURED, "needs http-close and idle-conns for thread-pool"
    return (HOLDS if all(verdicts) else FAILS), "; ".join(parts)


def claim_fork_cost(run, times):
    parts, verdicts = [], []
    label = _best_label(run, "http-close", "fork-per-conn", "thread-per-conn")
    if label:
        fork, tpc = run.get("fork-per-conn", "http-close", label), run.get("thread-per-conn", "http-close", label)
        if fork.server_cpu_us_per_req and tpc.server_cpu_us_per_req:
            verdicts.append(fork.server_cpu_us_per_req > tpc.server_cpu_us_per_req)
            parts.append(f"http-close {label}: fork-per-conn {_fmt_us(fork.server_cpu_us_per_req)}/req, "
                         f"{_fmt_rps(fork.rps)} vs thread-per-conn {_fmt_us(tpc.server_cpu_us_per_req)}/req, "
                         f"{_fmt_rps(tpc.rps)}")
    costs = dict(dispatch_costs(times))
    if "fork + waitpid" in costs and "thread spawn + join" in costs:
        verdicts.append(costs["fork + waitpid"] > costs["thread spawn + join"])
        parts.append(f"fork+waitpid {_fmt_us(costs['fork + waitpid'])} vs spawn+join {_fmt_us(costs['thread spawn + join'])}")
    if not verdicts:
        return UNMEASURED, "needs http-close for fork-per-conn and thread-per-conn, or the fork microbenchmark"
    return (HOLDS if all(verdicts) else FAILS), "; ".join(parts)


def claim_threads_cost_memory(run):
    parts, verdicts = [], []
    for label in reversed(run.labels("idle-conns")):
        epoll = run.get("epoll", "idle-conns", label)
        if not (epoll and epoll.status == "ok" and epoll.peak_rss_kib):
            continue
        for model in ("thread-per-conn", "fork-per-conn"):
            p = run.get(model, "idle-conns", label)
            if p and p.status == "ok" and p.peak_rss_kib:
                verdicts.append(p.peak_rss_kib > 2 * epoll.peak_rss_kib)
                parts.append(f"{model}: {p.peak_rss_kib / 1024:,.1f} MiB, "
                             f"{int(p.peak_threads or 0)} threads, {int(p.peak_processes or 0)} processes, "
                             f"{int(p.ctx_switches or 0):,} ctx switches")
        if verdicts:
            parts.append(f"epoll: {epoll.peak_rss_kib / 1024:,.1f} MiB, {int(epoll.ctx_switches or 0):,} ctx switches "
                         f"({epoll.idle} idle connections)")
            break
    if not verdicts:
        return UNMEASURED, "needs idle-conns for epoll and thread-per-conn or fork-per-conn"
    return (HOLDS if all(verdicts) else FAILS), "; ".join(parts)


def _growth(series):
    """Cost at the largest N over cost at the smallest N."""
    if len(series) < 2 or series[0][1] <= 0:
        return None
    return series[-1][1] / series[0][1]


def claim_select(run, times):
    parts, verdicts = [], []
    sel = readiness_series(times).get("select", [])
    g = _growth(sel)
    if g is not None:
        verdicts.append(g >= 5)
        parts.append(f"select(): {_fmt_us(sel[0][1])} at N={sel[0][0]}, {_fmt_us(sel[-1][1])} at N={sel[-1][0]} (x{g:.0f})")
    for p in reversed(run.scenario_points("idle-conns", "select")):
        if p.status == "ok" and p.idle + p.connections >= 1024 and p.idle_established is not None:
            kept = p.idle_open
            refused = (kept < p.idle or p.errors > 0
                       or (p.established is not None and p.established < p.connections))
            verdicts.append(refused)
            parts.append(f"{p.idle} idle + {p.connections} active asked: {kept} idle kept open, "
                         f"{p.errors} active-client errors")
            break
    if not verdicts:
        return UNMEASURED, "needs the select readiness microbenchmark or idle-conns >= 1024 for select"
    return (HOLDS if all(verdicts) else FAILS), "; ".join(parts)


def claim_epoll(run, times):
    parts, verdicts = [], []
    ep = readiness_series(times).get("epoll_wait", [])
    g = _growth(ep)
    if g is not None:
        verdicts.append(g < 2)
        parts.append(f"epoll_wait: {_fmt_us(ep[0][1])} at N={ep[0][0]}, {_fmt_us(ep[-1][1])} at N={ep[-1][0]} (x{g:.1f})")
    keep = {p.connections: p for p in run.scenario_points("http-keepalive", "epoll") if _ok(p)}
    for p in reversed(run.scenario_points("idle-conns", "epoll")):
        ref = keep.get(p.connections)
        if _ok(p) and ref:
            verdicts.append(p.rps >= 0.7 * ref.rps and p.errors == 0)
            parts.append(f"{p.connections} active with {p.idle} idle: {_fmt_rps(p.rps)} vs {_fmt_rps(ref.rps)} without")
            break
    if not verdicts:
        return UNMEASURED, "needs the epoll readiness microbenchmark or idle-conns and http-keepalive for epoll"
    return (HOLDS if all(verdicts) else FAILS), "; ".join(parts)


def claim_io_wait(run):
    ev = run.get("epoll", "io-wait", (run.labels("io-wait") or [None])[-1])
    threaded = [run.get(m, "io-wait", ev.label) for m in ("thread-pool", "thread-per-conn")] if ev else []
    threaded = [p for p in threaded if _ok(p)]
    if not _ok(ev) or not threaded:
        return UNMEASURED, "needs io-wait for epoll and thread-pool or thread-per-conn"
    best = max(threaded, key=lambda p: p.rps)
    # A single loop that sleeps 1 ms per request cannot exceed ~1000 req/s.
    stalls = ev.rps <= 1.5 * 1e6 / 1000
    verdict = stalls and best.rps >= 5 * ev.rps
    return (HOLDS if verdict else FAILS), (f"1 ms wait per request, {ev.connections} clients: epoll {_fmt_rps(ev.rps)}, "
                                           f"{best.model} {_fmt_rps(best.rps)}")


def claim_cpu_cores(run):
    """Models are told apart by what the server actually ran (peak threads/processes),
    not by name: 'one worker' = 1 thread and 1 process during the point."""
    pts = [p for p in run.scenario_points("cpu-bound") if _ok(p)]
    ncpu = (run.manifest.get("machine") or {}).get("cpus") or 2
    single = [p for p in pts if (p.peak_threads or 1) <= 1 and (p.peak_processes or 1) <= 1]
    multi = [p for p in pts if (p.peak_threads or 1) >= ncpu or (p.peak_processes or 1) >= ncpu]
    if not single or not multi:
        return UNMEASURED, "needs cpu-bound for a one-worker model and a model with >= one worker per core"
    s, m = max(single, key=lambda p: p.rps), max(multi, key=lambda p: p.rps)
    return (HOLDS if m.rps >= 1.3 * s.rps else FAILS), (
        f"100 µs CPU per request on {ncpu} CPUs: best one-worker model {s.model} {_fmt_rps(s.rps)}, "
        f"best multi-worker {m.model} {_fmt_rps(m.rps)} (x{m.rps / s.rps:.2f})")


def claim_keepalive(run):
    wins, compared, examples = 0, 0, []
    for model in run.models:
        keep = {p.connections: p for p in run.scenario_points("http-keepalive", model) if _ok(p)}
        for close in run.scenario_points("http-close", model):
            ref = keep.get(close.connections)
            if _ok(close) and ref:
                compared += 1
                wins += ref.rps > close.rps
                if len(examples) < 3:
                    examples.append(f"{model} x{ref.rps / close.rps:.1f}")
                break
    if not compared:
        return UNMEASURED, "needs http-keepalive and http-close at the same connection count"
    return (HOLDS if wins >= 0.8 * compared else FAILS), (
        f"keep-alive faster for {wins} of {compared} models at equal connections ({', '.join(examples)})")


def verdicts(run):
    """[(claim, scenario, what was measured, verdict)] in DESIGN.md's order."""
    times = microbench_times_us(run.microbench)
    rows = [
        ("A blocking single-threaded server serves one client at a time",
         "http-keepalive (>1 connection)", claim_blocking_one_client(run)),
        ("A thread per connection is simple, but creating and destroying threads under many short connections is costly",
         "http-close, dispatch microbenchmarks", claim_thread_spawn_cost(run, times)),
        ("A thread pool removes that cost, but a pool of N blocking workers serves only N keep-alive clients at once",
         "http-close, idle-conns", claim_pool_limits(run)),
        ("A process per connection isolates clients and costs a fork each",
         "http-close, fork microbenchmark", claim_fork_cost(run, times)),
        ("Thousands of threads or processes cost memory and context switches",
         "idle-conns", claim_threads_cost_memory(run)),
        ("select is O(n) per call and cannot watch descriptors >= 1024",
         "readiness microbenchmark, idle-conns", claim_select(run, times)),
        ("epoll's cost follows the active connections, not the total",
         "readiness microbenchmark, idle-conns", claim_epoll(run, times)),
        ("One event loop stalls when a handler blocks; threads do not", "io-wait", claim_io_wait(run)),
        ("CPU-heavy handlers need as many workers as cores", "cpu-bound", claim_cpu_cores(run)),
        ("Keep-alive connections beat a new connection per request", "http-keepalive vs http-close",
         claim_keepalive(run)),
    ]
    return [(claim, scenario, what, verdict) for claim, scenario, (verdict, what) in rows]


RULES = """\
Rules (computed from this run; thresholds are factors, chosen to separate mechanisms, not noise):
blocking: >1 client gives <= 1.25x its 1-client req/s, or refused/failed connections.
thread spawn: thread-per-conn server CPU/req in http-close > 1.1x thread-pool's, and spawn+join > 2x pool hand-off.
thread pool: its http-close CPU/req is below thread-per-conn's, and with more idle clients than workers the active
clients get < 10% of its keep-alive req/s (or errors).
fork: fork-per-conn CPU/req in http-close > thread-per-conn's, and fork+waitpid > spawn+join.
memory: thread-per-conn / fork-per-conn peak RSS with idle clients > 2x epoll's.
select: select() per call grows >= 5x from the smallest to the largest N, and at >= 1024 connections some are refused.
epoll: epoll_wait per call grows < 2x over N, and 50 active clients keep >= 70% of their req/s with idle ones held.
io-wait: epoll <= 1500 req/s with a 1 ms wait per request while a threaded model does >= 5x that.
cpu-bound: a model running >= one worker per CPU does >= 1.3x the best one-worker model.
keep-alive: keep-alive req/s beats close-mode req/s at equal connections for >= 80% of models.
"""
