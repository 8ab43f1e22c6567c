"""The report's first section, the run: what was measured where and how (revision, profile,
machine, pinning, network, hosts, baseline), and the noise signals measured with it (steal,
other load, clock, load average, the drift of the reference point)."""
from .report_html import E, NOT_MEASURED, fmt, table, td


def run_section(run):
    m, machine = run.manifest, run.manifest.get("machine") or {}
    rows = [
        ("run", f"{run.run_id}, git {m.get('git_rev', '?')}, {m.get('started_at', '?')} → {m.get('finished_at', '?')}"
                + (" (interrupted)" if m.get("interrupted") else "")),
        ("profile", f"{m.get('profile', '?')}: {m.get('repeat', 1)} repeat(s) per point, "
                    f"{m.get('duration', '?')} after {m.get('warmup', '?')} warm-up"),
        ("models", ", ".join(run.models)),
        ("machine", f"{machine.get('cpus', '?')} CPUs, {machine.get('cpu_model', '?')}"),
        ("kernel", machine.get("uname") or machine.get("kernel") or "?"),
        ("pinning", pinning_text(m.get("points") or [])),
        ("network", network_text(m)),
        ("hosts", hosts_text(m)),
        ("baseline", baseline_text(m)),
    ]
    body = table(["what", "value"], [[f"<th>{E(k)}</th>", td(v)] for k, v in rows], cls="facts")
    return body + "<h3>Noise signals</h3>" + noise_html(m)


def pinning_text(entries):
    layouts = {}
    for e in entries:
        if isinstance(e, dict) and e.get("server_cpus") is not None:
            key = (e["server_cpus"], e.get("loadgen_cpus"))
            layouts.setdefault(key, set()).add(e.get("scenario"))
    if not layouts:
        return "not recorded"
    return "; ".join(f"server on CPU {s}, load generator on CPU {lg} ({', '.join(sorted(x for x in sc if x))})"
                     for (s, lg), sc in sorted(layouts.items(), key=lambda kv: -len(kv[1])))


def network_text(m):
    net = m.get("net") or m.get("network")
    if isinstance(net, dict):
        return ", ".join(f"{k} {v}" for k, v in net.items() if v is not None)
    if net:
        return str(net)
    return "loopback (127.0.0.1), no link emulation"


def hosts_text(m):
    """Where the server and the load generators ran (--hosts), from the run's settings."""
    hosts = m.get("hosts")
    if not isinstance(hosts, dict):
        return "this machine only"
    server = hosts.get("server")
    server_host = server.get("host", "local") if isinstance(server, dict) else (server or "local")
    clients = [c.get("host", "?") for c in hosts.get("clients") or []]
    where = "this machine" if server_host == "local" else server_host
    return (f"server on {where}; {len(clients)} load generator(s) over ssh: {', '.join(clients)} "
            f"(each point's hosts section has the details)")


def baseline_text(m):
    if m.get("baseline") or m.get("baseline_bin"):
        return (f"A/B run: A = {m.get('baseline') or m.get('baseline_bin')}, B = this tree; "
                f"{m.get('trials', '?')} trials per side, interleaved")
    return "none (not an A/B run)"


def noise_html(m):
    """Steal, other load, clock and load average over every trial, and the drift reference."""
    noises = [e["noise"] for e in m.get("points") or [] if isinstance(e, dict) and isinstance(e.get("noise"), dict)]
    rows = []
    for key, label, unit in (("steal_pct", "CPU steal", "%"), ("other_cpu_pct", "other processes' CPU", "%"),
                             ("cpu_mhz", "CPU clock", " MHz"), ("loadavg_1m", "load average (1 min)", "")):
        vals = sorted(n[key] for n in noises if isinstance(n.get(key), (int, float)))
        if vals:
            rows.append([td(label), td(f"{fmt(vals[len(vals) // 2], unit)} median, {fmt(vals[0], unit)} to "
                                       f"{fmt(vals[-1], unit)} over {len(vals)} trials")])
    heavy = [e for e in m.get("points") or [] if isinstance(e, dict) and (e.get("noise") or {}).get("heavy_steal")]
    if noises:
        rows.append([td("trials under heavy steal"),
                     td(", ".join(f"{e['model']} {e['scenario']} {e['point']} r{e.get('repeat')}" for e in heavy)
                        or "none")])
    rows.append([td("drift (reference point, start → end)"), td(drift_text(m.get("drift")))])
    if not noises:
        rows.insert(0, [td("per-trial signals"), td(NOT_MEASURED)])
    return table(["signal", "value"], rows, cls="facts")


def drift_text(drift):
    if not isinstance(drift, dict) or not drift.get("start"):
        return NOT_MEASURED
    s, e = drift.get("start") or {}, drift.get("end") or {}
    text = (f"{s.get('model', '?')} {s.get('point', '?')}: {fmt(s.get('throughput_rps'))} → "
            f"{fmt(e.get('throughput_rps'))} req/s")
    ratio = drift.get("throughput_rps_end_over_start")
    if ratio:
        text += f" (end/start x{ratio:.3f}); CPU/req x{drift.get('cpu_us_per_request_end_over_start') or 0:.3f}"
    return text
