#!/usr/bin/env python3
"""JSON chores of run_all.sh, kept out of bash (standard library only).

  result_json.py point-line key=value...        one manifest point as a JSON line
  result_json.py set FILE KEY JSON_FILE         FILE[KEY] = contents of JSON_FILE
  result_json.py brief FILE                     one-line summary of a result
  result_json.py manifest RUN_DIR key=value...  serverbench.manifest/1 on stdout
"""
import json
import os
import platform
import sys

INT_FIELDS = {"connections", "repeat", "idle_connections"}


def parse_pairs(pairs):
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        out[key] = value
    return out


def point_line(pairs):
    point = parse_pairs(pairs)
    for key in INT_FIELDS & point.keys():
        point[key] = int(point[key]) if point[key] else 0
    for key in ("file", "reason", "server_cpus", "loadgen_cpus"):
        if not point.get(key):
            point[key] = None
    print(json.dumps(point))


def read_points(run_dir):
    path = os.path.join(run_dir, "points.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def set_key(path, key, value_path):
    with open(path) as f:
        doc = json.load(f)
    with open(value_path) as f:
        doc[key] = json.load(f)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def brief(path):
    with open(path) as f:
        r = json.load(f)
    rps = r["totals"]["throughput_rps"]
    p99 = r["latency_us"].get("p99", 0)
    text = f"{rps:>10,.0f} req/s  p99 {p99 / 1000:7.2f} ms"
    cpu = (r.get("server") or {}).get("cpu_us_per_request")
    if cpu is not None:
        text += f"  srv {cpu:6.1f} us/req"
    errors = sum((r["totals"].get("errors") or {}).values())
    if errors:
        text += f"  errors {errors}"
    print(text)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def manifest(run_dir, pairs):
    info = parse_pairs(pairs)
    uname = platform.uname()
    doc = {
        "schema": "serverbench.manifest/1",
        "run_id": os.path.basename(os.path.normpath(run_dir)),
        "git_rev": info.get("git_rev"),
        "profile": info.get("profile"),
        "repeat": int(info.get("repeat") or 1),
        "warmup": info.get("warmup"),
        "duration": info.get("duration"),
        "started_at": info.get("started_at"),
        "finished_at": info.get("finished_at"),
        "interrupted": info.get("interrupted") == "1",
        "machine": {
            "uname": " ".join([uname.system, uname.node, uname.release, uname.version, uname.machine]),
            "kernel": uname.release,
            "cpu_model": cpu_model(),
            "cpus": os.cpu_count(),
        },
        "models": info.get("models", "").split(),
        "scenarios": info.get("scenarios", "").split(),
        "microbench": "microbench.json" if os.path.exists(os.path.join(run_dir, "microbench.json")) else None,
        "points": read_points(run_dir),
    }
    json.dump(doc, sys.stdout, indent=2)
    sys.stdout.write("\n")


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "point-line":
        point_line(args)
    elif cmd == "set" and len(args) == 3:
        set_key(*args)
    elif cmd == "brief" and len(args) == 1:
        brief(args[0])
    elif cmd == "manifest" and len(args) >= 1:
        manifest(args[0], args[1:])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
