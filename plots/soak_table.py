"""The soak's verdicts as tables (soak.json, schema serverbench-soak/1: docs/soak.md), and the
reading of soak.json that its charts (soak_plots.py) share.

* soak_doc(run_dir): the document or None; load_soak(run_dir) -> [records] ([] without soak.json).
* soak_rows(records): per model the verdict, what grew, the memory's slope with its interval and
  the reload's, descriptors, threads and processes before the load and after the drain, p99's
  start and rise, loadgen's own slope: the cells soak.md, summary.md, report.html and the
  terminal table all show. plan_text, thresholds_text and why_lines: the sentences around it.
* soak_table_md(run_dir); write_soak_md(run_dir, out_dir) writes soak.md.
"""
import os

from serverbench.jsonfile import read_json
from serverbench.scenarios import ordered_models
from serverbench.units import number


# ------------------------------------------------------------------ reading


def soak_doc(run_dir):
    """soak.json's document, or None when the run has no soak."""
    doc = read_json(os.path.join(run_dir, "soak.json"))
    return doc if isinstance(doc, dict) else None


def load_soak(run_dir):
    """The records of soak.json in the models' usual order, or []."""
    records = [r for r in (soak_doc(run_dir) or {}).get("records") or [] if isinstance(r, dict) and r.get("model")]
    order = ordered_models({r["model"] for r in records})
    return sorted(records, key=lambda r: order.index(r["model"]))


def soaked(records):
    """The records with samples to draw."""
    return [r for r in records if r.get("status") == "ok" and r.get("samples")]


def verdict_of(record):
    return record.get("verdict") or {}


def verdict_title(record):
    """"epoll: flat", "leaky: grows (descriptors)", "x: cannot tell (memory, load)", "y: failed"."""
    if record.get("status") != "ok":
        return f"{record['model']}: {record.get('status')}"
    v = verdict_of(record)
    which = v.get("grew") if v.get("verdict") == "grows" else v.get("cannot_tell")
    return f"{record['model']}: {v.get('verdict', '?')}" + (f" ({', '.join(which)})" if which else "")


# ------------------------------------------------------------------ the table


def kib(v):
    """A slope in KiB/min, signed: a shrinking tree reads as such."""
    return "-" if v is None else f"{v:+,.0f}" if abs(v) >= 100 else f"{v:+.1f}"


def interval_text(part):
    """The slope's 95% interval, "[low, high]", or "" when the verdict has none."""
    low, high = part.get("slope_low"), part.get("slope_high")
    return f"[{kib(low)}, {kib(high)}]" if low is not None and high is not None else ""


def _count(part):
    """("before → after the drain", how many more), or the part's verdict when it was not counted."""
    part = part or {}
    if part.get("before") is None or part.get("after_drain") is None:
        return part.get("verdict") or "-", None
    return f"{part['before']} → {part['after_drain']}", part["after_drain"] - part["before"]


def _ms(v):
    return "-" if v is None else f"{v:,.2f}"


# (key, heading)
COLUMNS = [("model", "model"), ("verdict", "verdict"), ("grew", "what grew"),
           ("memory", "memory KiB/min [95% interval]"), ("reload", "reload KiB/min"),
           ("descriptors", "descriptors before → after drain"), ("threads", "threads before → after"),
           ("processes", "processes before → after"), ("p99_start", "p99 start (ms)"), ("p99_rise", "p99 rise (ms)"),
           ("loadgen", "loadgen KiB/min"), ("notes", "notes")]


def soak_row(record):
    """{column: (text, sort value or None)} of one record."""
    if record.get("status") != "ok":
        row = {key: ("-", None) for key, _ in COLUMNS}
        row.update(model=(record["model"], None), verdict=(record.get("status") or "?", None),
                   notes=(record.get("reason") or "", None))
        return row
    v = verdict_of(record)
    mem, p99, lg = v.get("memory") or {}, v.get("p99") or {}, v.get("loadgen") or {}
    unsure = [name for name in v.get("cannot_tell") or [] if name != "load"]
    notes = [f"cannot tell: {', '.join(unsure)}"] if unsure else []
    # The verdict lists "load" among what it cannot tell when the rates were not served.
    notes += [] if record.get("load_held", True) else ["the offered load was not held"]
    notes += ["loadgen's own memory grew"] if lg.get("verdict") == "grows" else []
    notes += [record["reason"]] if record.get("reason") else []
    slope = mem.get("slope_kib_per_min")
    return {"model": (record["model"], None), "verdict": (v.get("verdict", "?"), None),
            "grew": (", ".join(v.get("grew") or []) or "-", None),
            "memory": (f"{kib(slope)} {interval_text(mem)}".strip() if slope is not None else mem.get("verdict", "-"),
                       slope),
            "reload": (kib(mem.get("reload_kib_per_min")), mem.get("reload_kib_per_min")),
            "descriptors": _count(v.get("descriptors")), "threads": _count(v.get("threads")),
            "processes": _count(v.get("processes")),
            "p99_start": (_ms(p99.get("start_ms")), p99.get("start_ms")),
            "p99_rise": (_ms(p99.get("rise_ms")), p99.get("rise_ms")),
            "loadgen": (kib(lg.get("slope_kib_per_min")), lg.get("slope_kib_per_min")),
            "notes": ("; ".join(notes), None)}


def soak_rows(records):
    return [soak_row(r) for r in records]


def plan_text(doc):
    """The load every model was soaked under, in one sentence."""
    p = doc.get("plan") or {}
    return (f"Each model soaked for {number(doc.get('minutes'))} min, one at a time, under the same mixed load well "
            f"below saturation: {p.get('keepalive_conns', '?')} keep-alive connections at "
            f"{p.get('keepalive_rps', '?')} req/s, {p.get('churn_conns', '?')} more with a new connection per "
            f"request at {p.get('churn_rps', '?')} req/s, a wave of {p.get('idle_wave', '?')} idle connections "
            f"every {p.get('wave_every_s', '?')} s, a misbehaving client every {p.get('bad_every_s', '?')} s; "
            f"then a drain and a reload of the same load. Memory is PSS summed over the server's processes; its "
            f"slope is fitted over the soak's steady part.")


def thresholds_text(records):
    """The thresholds the verdicts used, once per distinct set (they depend on the soak's length)."""
    sets = []   # [(thresholds, the soaks' lengths in minutes)]
    for r in soaked(records):
        th = verdict_of(r).get("thresholds")
        if th:
            lengths = next((m for t, m in sets if t == th), None)
            if lengths is None:
                sets.append((th, lengths := []))
            if r.get("minutes") not in lengths:
                lengths.append(r.get("minutes"))
    return [_threshold_line(th, lengths) for th, lengths in sets]


def _threshold_line(th, lengths):
    length = " or ".join(f"{number(m)} min" for m in lengths if m is not None) or "this length"
    mem, share = th.get("memory_kib_per_min"), th.get("p99_rise_share")
    return (f"Thresholds (for a soak of {length}): memory grows above {number(mem)} KiB/min over the soak when the "
            f"reload grows at least {number(mem / 2 if mem is not None else None)} KiB/min too; descriptors, "
            f"threads and processes when the drain leaves more than {th.get('descriptors', '?')}, "
            f"{th.get('threads', '?')} and {th.get('processes', '?')} more than before the load; p99 when its "
            f"fitted rise exceeds {number(th.get('p99_rise_ms'))} ms and "
            f"{number(share * 100 if share is not None else None)}% of its start; loadgen's own memory above "
            f"{number(th.get('loadgen_kib_per_min'))} KiB/min.")


def why_lines(records):
    """One line per resource that grew or could not be judged: the verdict's own sentence."""
    lines = []
    for r in soaked(records):
        v = verdict_of(r)
        for name in (v.get("grew") or []) + [n for n in v.get("cannot_tell") or [] if n != "load"]:
            why = (v.get(name) or {}).get("why")
            if why:
                lines.append(f"{r['model']}, {name}: {why}")
    return lines


def soak_table_md(run_dir):
    """Markdown: the soak's verdict per model, the thresholds under it; "" without soak.json."""
    doc, records = soak_doc(run_dir), load_soak(run_dir)
    if not records:
        return ""
    lines = [plan_text(doc), "", "| " + " | ".join(h for _, h in COLUMNS) + " |",
             "|" + "|".join("---:" if key in ("reload", "p99_start", "p99_rise", "loadgen") else "---"
                            for key, _ in COLUMNS) + "|"]
    for row in soak_rows(records):
        lines.append("| " + " | ".join(row[key][0].replace("|", "/") for key, _ in COLUMNS) + " |")
    lines += [""] + thresholds_text(records)
    why = why_lines(records)
    if why:
        lines += ["", "What decided:", ""] + [f"- {line}" for line in why]
    return "\n".join(lines) + "\n"


def write_soak_md(run_dir, out_dir):
    """out_dir/soak.md: the soak's table under its heading; returns [its path], or [] when the run
    has no soak."""
    table = soak_table_md(run_dir)
    if not table:
        return []
    path = os.path.join(out_dir, "soak.md")
    with open(path, "w") as f:
        f.write("## Soak: memory, descriptors and p99 over time\n\n" + table)
    return [path]
