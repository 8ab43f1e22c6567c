"""Shared by the network tests: paths, the skip rule, processes started and always ended."""

import json
import os
import re
import selectors
import subprocess
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from serverbench import namespaces  # noqa: E402

SKIP = 77
PEER = str(HERE / "network_peer.py")
PYTHON = sys.executable


def build_dir() -> Path:
    """The build tree under test: argv[1] (ctest passes it), else ./build."""
    return Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build"


def run_tests_as_root() -> None:
    """Runs the module's tests; exits 77 (skip) without the rights to make namespaces."""
    try:
        namespaces.require_net_admin()
    except namespaces.NamespaceError as error:
        print(f"skipped: {error}")
        sys.exit(SKIP)
    os.environ["SERVERBENCH_LINKEMU"] = str(build_dir() / "bin" / "linkemu")
    unittest.main(argv=sys.argv[:1], verbosity=2)


class Started:
    """A process that prints a readiness line containing port=N; ended on exit, always."""

    def __init__(self, argv: list[str], timeout_s: float = 10.0) -> None:
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout_s)
        self.line = self.process.stdout.readline() if ready else ""
        match = re.search(r"port=(\d+)", self.line)
        if not match:
            self.stop()
            raise AssertionError(f"no readiness line from {argv}: {self.line!r} {self.errors}")
        self.port = int(match.group(1))

    def stop(self) -> str:
        """Ends the process (SIGTERM, then SIGKILL) and returns what it printed; idempotent."""
        if self.process.stdout.closed:
            return ""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        out = self.process.stdout.read()
        self.errors = self.process.stderr.read()
        self.process.stdout.close()
        self.process.stderr.close()
        return out

    def __enter__(self) -> "Started":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def run_json(argv: list[str], timeout_s: float = 60) -> dict:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    if result.returncode != 0:
        raise AssertionError(f"{argv} exited {result.returncode}: {result.stderr.strip()}")
    try:
        return json.loads(result.stdout)  # a whole document (loadgen's is indented)
    except ValueError:
        return json.loads(result.stdout.strip().splitlines()[-1])  # or the last line


def netns_names() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split(" ")[0] for line in out.splitlines() if line]


def links() -> list[str]:
    """Interface names in the root namespace."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return [line.split(": ")[1].split("@")[0] for line in out.splitlines()]


def linkemu_pids_for(prefix: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if proc.name.isdigit() and argv and argv[0].endswith(b"linkemu") and any(
                a.startswith(prefix.encode()) for a in argv):
            pids.append(int(proc.name))
    return pids
