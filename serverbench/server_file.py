"""Server files: how to run a server that is not one of the suite's models (nginx, Apache, a
user's own), so that the driver treats it like a model (docs/contract.md#server-files).

A server file is TOML. It names the server, the Debian package that has it, the command (and
optionally a config file) to start it, with placeholders the driver fills in, how readiness is
seen (the port answering, or a line in its output), the signal that stops it, and the scenarios
and networks it serves. launch_server.py runs one: it takes a model's flags, so everything that
starts, samples, counts or stops a model does the same to it.

A file that cannot be used is a ServerFileError whose message is one line naming the file and
the field.
"""
import os
import re
import shutil
import signal
import tomllib
from dataclasses import dataclass

from . import scenarios as sc

BUNDLED_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "servers", "references")

# What the driver fills into a template: where to listen, the CPUs the server is pinned to (and
# how many), the worker count (the point's --workers, else the suite's pool size), a private
# folder, the response body and a file holding it, the rendered config, and the server file's
# own folder (for a user's binary next to it).
PLACEHOLDERS = ("address", "port", "unix", "listen", "cpus", "cpu_count", "workers", "tmpdir", "body",
                "body_file", "config", "dir")
DEFAULT_WORKERS = 64
BODY = "Hello, World!"   # the models' 13-byte body (--response-bytes 13)

# The scenarios a production server can serve: HTTP only, with no simulated handler.
HTTP_SCENARIOS = ("http-keepalive", "http-close", "idle-conns", "open-loop", "capacity", "distance",
                  "distance-open-loop", "soak")
OWN_ONLY = {
    "echo": "the echo protocol is the suite's own",
    "cpu-bound": "the simulated handlers (--cpu-us, --io-us) are the suite's own",
    "io-wait": "the simulated handlers (--cpu-us, --io-us) are the suite's own",
    "capacity-io-wait": "the simulated handlers (--cpu-us, --io-us) are the suite's own",
    "capacity-cpu-bound": "the simulated handlers (--cpu-us, --io-us) are the suite's own",
    "nagle": "TCP_NODELAY is the server's own setting, not a flag the driver can turn off",
}
NETS = ("loopback", "unix", "veth", "wan")
FIELDS = {"name", "package", "about", "counterpart", "sendfile", "command", "config", "config_name", "ready",
          "ready_log", "ready_workers", "ready_timeout_s", "stop_signal", "scenarios", "listen_tcp", "listen_unix"}
# How long a server may take to become ready: below the driver's 10 s for a readiness line, so
# that the launcher's own message says why.
MAX_READY_S = 8.0
PLACEHOLDER_RE = re.compile(r"\{\{([^{}]*)\}\}")  # {{name}}: nginx's and h2o's own braces stay as they are


class ServerFileError(Exception):
    """A server file that cannot be used; the message is one line: FILE: FIELD: what is wrong."""


@dataclass(frozen=True)
class ServerFile:
    path: str
    name: str
    command: tuple
    package: str = None
    about: str = ""
    counterpart: str = None          # the model it is paired with (serverbench/pairs.py)
    sendfile: bool = False
    config: str = None               # template of the config file, written to {config}
    config_name: str = "server.conf"
    ready: str = "port"              # "port": the port accepts; "log": ready_log appears in its output
    ready_log: str = None            # a regular expression
    ready_workers: bool = False      # also wait until its tree has {{workers}} + 1 threads (a master's pool)
    ready_timeout_s: float = MAX_READY_S
    stop_signal: str = "TERM"
    scenarios: tuple = HTTP_SCENARIOS
    listen_tcp: str = "{{address}}:{{port}}"
    listen_unix: str = None          # how it listens on a Unix socket; None: it cannot

    @property
    def dir(self):
        return os.path.dirname(self.path)

    def refusal(self, scenario, net_kind):
        """Why this server does not serve a point of scenario over net_kind, or None."""
        if scenario not in self.scenarios:
            return f"{self.name}: {OWN_ONLY.get(scenario, 'not among the scenarios of its server file')}"
        if net_kind == "unix" and not self.listen_unix:
            return f"{self.name} cannot listen on a Unix socket"
        return None

    def binary(self):
        """The command's program as found (an absolute path), or None when it is not installed."""
        program = render(self.command[0], {"dir": self.dir})
        return shutil.which(program) if os.sep not in program else (program if os.access(program, os.X_OK) else None)


def render(template, values):
    """template with each {{name}} replaced by values[name] (a placeholder it lacks stays)."""
    return PLACEHOLDER_RE.sub(lambda m: str(values.get(m.group(1), m.group(0))), template)


def load(path, installed=True):
    """The ServerFile at path, checked (with installed, also that its program is installed);
    ServerFileError (one line) when it cannot be used."""
    return parse(os.path.abspath(path), read_toml(path), installed)


def read_toml(path):
    """The server file's TOML document, unchecked; ServerFileError when it cannot be read or parsed."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ServerFileError(f"{path}: cannot be read: {e.strerror}")
    except tomllib.TOMLDecodeError as e:
        raise ServerFileError(f"{path}: not TOML: {e}")


STRING_FIELDS = ("package", "about", "counterpart", "config", "config_name", "ready", "ready_log", "stop_signal",
                 "listen_tcp", "listen_unix")
BOOL_FIELDS = ("sendfile", "ready_workers")


def parse(path, doc, installed=True):
    """The ServerFile of a parsed TOML document; ServerFileError names the first field that is wrong."""
    def bad(field, problem):
        return ServerFileError(f"{path}: {field}: {problem}")

    for check in (check_fields, check_placeholders, check_ready, check_scenarios):
        problem = check(doc)
        if problem:
            raise bad(*problem)
    kept = {k: doc[k] for k in FIELDS - {"command", "scenarios"} if k in doc}
    server = ServerFile(path=path, command=tuple(doc["command"]),
                        scenarios=tuple(doc.get("scenarios", HTTP_SCENARIOS)), **kept)
    if installed and server.binary() is None:
        hint = f" (its package: {server.package})" if server.package else ""
        raise bad("command", f"'{server.command[0]}' is not installed{hint}")
    return server


def check_fields(doc):
    """(field, problem) of the first field missing, unknown or of the wrong type, else None."""
    unknown = sorted(set(doc) - FIELDS)
    if unknown:
        return unknown[0], f"unknown field (known: {', '.join(sorted(FIELDS))})"
    missing = [field for field in ("name", "command") if field not in doc]
    if missing:
        return missing[0], "missing"
    name, command = doc["name"], doc["command"]
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name):
        return "name", f"'{name}' is not a model name (lower-case letters, digits, '.', '_', '-')"
    if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
        return "command", "expected a list of strings, the program first"
    wrong = [(f, "expected a string") for f in STRING_FIELDS if f in doc and not isinstance(doc[f], str)]
    wrong += [(f, "expected true or false") for f in BOOL_FIELDS if f in doc and not isinstance(doc[f], bool)]
    return wrong[0] if wrong else None


def check_placeholders(doc):
    for field in ("command", "config", "listen_tcp", "listen_unix"):
        for text in (doc[field] if field == "command" else [doc.get(field) or ""]):
            unknown = [p for p in PLACEHOLDER_RE.findall(text) if p not in PLACEHOLDERS]
            if unknown:
                return field, f"unknown placeholder {{{{{unknown[0]}}}}} (known: {', '.join(PLACEHOLDERS)})"
    return None


def check_ready(doc):
    ready, stop = doc.get("ready", "port"), doc.get("stop_signal", "TERM")
    if ready not in ("port", "log"):
        return "ready", f"'{ready}': expected \"port\" or \"log\""
    if ready == "log" and not doc.get("ready_log"):
        return "ready_log", "missing (ready = \"log\" waits for it)"
    try:
        re.compile(doc.get("ready_log") or "")
    except re.error as e:
        return "ready_log", f"not a regular expression: {e}"
    timeout = doc.get("ready_timeout_s", MAX_READY_S)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_READY_S:
        return "ready_timeout_s", f"{timeout!r}: expected seconds, more than 0 and at most {MAX_READY_S:g}"
    if "SIG" + stop not in signal.Signals.__members__:
        return "stop_signal", f"'{stop}' is not a signal name (TERM, QUIT, INT, ...)"
    return None


def check_scenarios(doc):
    scenarios = doc.get("scenarios", HTTP_SCENARIOS)
    if not isinstance(scenarios, (list, tuple)):
        return "scenarios", "expected a list of scenario names"
    for scenario in scenarios:
        if scenario not in HTTP_SCENARIOS:
            why = OWN_ONLY.get(scenario, "not a scenario" if scenario not in sc.SCENARIO_NAMES else "not HTTP")
            return "scenarios", f"'{scenario}' cannot be served by a server file ({why})"
    return None


def bundled():
    """{name: path} of the server files that come with the suite."""
    if not os.path.isdir(BUNDLED_DIR):
        return {}
    return {f[:-len(".toml")]: os.path.join(BUNDLED_DIR, f) for f in sorted(os.listdir(BUNDLED_DIR))
            if f.endswith(".toml")}

