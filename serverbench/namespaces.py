"""Network namespaces and emulated links: the --net veth and --net wan setups (network.py).

A Link puts the server and the load generator in two network namespaces of their own:

  veth: server-ns [S] <------ one veth pair ------> [C] client-ns
  wan:  the same with kernel netem on both ends (delay rtt/2 each way), or, where the kernel has
        no netem, through the project's emulator in a third namespace:
        server-ns [S] <-> [A] emu-ns: linkemu [B] <-> [C] client-ns

Segmentation, receive and TX checksum offloads (tso, gso, gro, tx) are off on every end, so every
frame fits the MTU and carries a finished checksum (a frame re-sent through AF_PACKET with an
unfinished one is silently dropped by the receiving TCP). IPv6 is off in the namespaces, so the
link carries only the benchmark's traffic (and ARP).

Every name starts with sb<owner pid>x<n>: a Link removes its namespaces (their links and any
process left in them go with them) on close, at interpreter exit, and, for drivers killed
outright, cleanup_leftovers() removes what earlier runs left once their owner is gone.
Standard library only; driven with ip, ethtool and tc.
"""
import argparse
import atexit
import itertools
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Sequence

from .processes import alive

KINDS = ("veth", "wan")
EMULATORS = ("auto", "netem", "linkemu")
DEFAULT_WAN_RTT_MS = 20.0
STATE_ROOT = Path("/tmp/serverbench-netlab")
_NAME_RE = re.compile(r"^sb(\d+)x(\d+)")
_IFNAMSIZ = 16
_CAP_NET_ADMIN, _CAP_SYS_ADMIN = 12, 21
_READY_TIMEOUT_S = 5.0
_counter = itertools.count()
_open_links: "weakref.WeakSet[Link]" = weakref.WeakSet()


class NamespaceError(RuntimeError):
    """A link could not be made or removed; the message is one line for the user."""


class NetAdminRequired(NamespaceError):
    """The process may not create network namespaces and links."""


def require_net_admin() -> None:
    """Raises NetAdminRequired (one-line message) without CAP_NET_ADMIN and CAP_SYS_ADMIN."""
    caps = 0
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("CapEff:"):
                caps = int(line.split()[1], 16)
    needed = (1 << _CAP_NET_ADMIN) | (1 << _CAP_SYS_ADMIN)
    if caps & needed != needed:
        raise NetAdminRequired(
            "--net veth|wan needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to create network "
            "namespaces and links: run it as root or with sudo")
    missing = [tool for tool in ("ip", "ethtool") if shutil.which(tool) is None]
    if missing:
        raise NamespaceError(f"--net veth|wan needs {' and '.join(missing)} (apt-get install iproute2 ethtool)")


def netns_exec(ns: str, argv: Sequence[str]) -> list[str]:
    """The argv that runs argv inside network namespace ns."""
    return ["ip", "netns", "exec", ns, *argv]


def find_linkemu() -> str:
    """$SERVERBENCH_LINKEMU, else build/bin/linkemu of this checkout, else linkemu on PATH."""
    candidates = [os.environ.get("SERVERBENCH_LINKEMU", ""),
                  str(Path(__file__).resolve().parent.parent / "build" / "bin" / "linkemu"),
                  shutil.which("linkemu") or ""]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise NamespaceError("linkemu not found: build it (cmake --build build --target linkemu) "
                      "or set SERVERBENCH_LINKEMU")


def _run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise NamespaceError(f"{' '.join(argv)}: {message[0] if message else f'exit {result.returncode}'}")
    return result


def _netem_works(ns: str) -> bool:
    """Whether this kernel has netem, asked on the loopback of a namespace we own."""
    if shutil.which("tc") is None:
        return False
    added = _run(netns_exec(ns, ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "0ms"]), False)
    if added.returncode != 0:
        return False
    _run(netns_exec(ns, ["tc", "qdisc", "del", "dev", "lo", "root"]), False)
    return True


class Link:
    """Two (or three) network namespaces joined by an emulated link; a context manager.

    kind "veth": one veth pair, MTU 1500, no added delay (emulator "none").
    kind "wan": rtt_ms (default 20, split over both directions), loss_pct, jitter_ms; emulator
    "auto" uses kernel netem where it works (linkemu instead when jitter_ms > 0, since netem's
    jitter reorders frames), "netem" or "linkemu" force one. queue_frames (per direction)
    is large by default so thousands of connections' frames in flight are never dropped.
    """

    def __init__(self, kind: str = "veth", rtt_ms: float | None = None, loss_pct: float = 0.0,
                 jitter_ms: float = 0.0, emulator: str = "auto", *, mtu: int = 1500, seed: int = 1,
                 queue_frames: int = 10000, linkemu: str | None = None, linkemu_sched: str = "fifo",
                 linkemu_args: Sequence[str] = ()) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        if emulator not in EMULATORS:
            raise ValueError(f"emulator must be one of {EMULATORS}, not {emulator!r}")
        if rtt_ms is None:
            rtt_ms = DEFAULT_WAN_RTT_MS if kind == "wan" else 0.0
        if kind == "veth" and (rtt_ms or loss_pct or jitter_ms or emulator != "auto"):
            raise ValueError("a veth link has no delay, loss, jitter or emulator: use kind='wan'")
        if rtt_ms < 0 or jitter_ms < 0 or not 0 <= loss_pct <= 100 or not 68 <= mtu <= 65535:
            raise ValueError("rtt_ms and jitter_ms must be >= 0, loss_pct in 0..100, mtu in 68..65535")
        self.kind, self.rtt_ms, self.loss_pct, self.jitter_ms = kind, float(rtt_ms), float(loss_pct), float(jitter_ms)
        self.mtu, self.seed, self.queue_frames = mtu, seed, queue_frames
        if linkemu_sched not in ("fifo", "other"):
            raise ValueError(f"linkemu_sched must be 'fifo' or 'other', not {linkemu_sched!r}")
        self.linkemu_sched, self.linkemu_args = linkemu_sched, list(linkemu_args)
        self._requested_emulator, self._linkemu_path = emulator, linkemu
        n = next(_counter)
        self._owner = os.getpid()
        # 7 pid digits + 4 = 14 characters, one left for the interface suffix; a Link 10 000 links
        # older that is still open would make `ip netns add` refuse the name, loudly.
        self.name = f"sb{self._owner}x{n % 10000}"
        assert len(self.name) + 1 < _IFNAMSIZ, self.name
        self.server_ns, self.client_ns = f"{self.name}-srv", f"{self.name}-cli"
        self.emu_ns: str | None = None
        self.server_if, self.client_if = f"{self.name}s", f"{self.name}c"
        self.server_addr = f"10.213.{(n // 64) % 256}.{(n % 64) * 4 + 1}"
        self.client_addr = f"10.213.{(n // 64) % 256}.{(n % 64) * 4 + 2}"
        self.emulator = "none"
        self.state_dir = STATE_ROOT / self.name
        self.final_stats: dict | None = None
        self._process: subprocess.Popen | None = None
        self._made_ns: list[str] = []
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> "Link":
        self.open()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def open(self) -> "Link":
        """Creates the namespaces and the link; on any failure removes what was made and raises."""
        require_net_admin()
        _open_links.add(self)
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._add_namespace(self.server_ns)
            self._add_namespace(self.client_ns)
            emulator = self._choose_emulator()
            if emulator == "linkemu":
                self._make_linkemu_link()
            else:
                self._make_direct_link(emulator == "netem")
            self.emulator = emulator
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stops the emulator, ends every process left in the namespaces, removes them. Idempotent."""
        if self._closed or os.getpid() != self._owner:
            return  # a forked child's exit must not remove its parent's link
        self._closed = True
        _open_links.discard(self)
        if self._process is not None:
            self.final_stats = _stop_linkemu(self._process, self.state_dir / "linkemu.json")
        for ns in reversed(self._made_ns):
            _remove_namespace(ns)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- what callers use ------------------------------------------------------------------

    def server_cmd(self, argv: Sequence[str]) -> list[str]:
        return netns_exec(self.server_ns, argv)

    def client_cmd(self, argv: Sequence[str]) -> list[str]:
        return netns_exec(self.client_ns, argv)

    def env(self) -> dict:
        """The network setup to record in a result's env."""
        return {"kind": self.kind, "rtt_ms": self.rtt_ms, "loss_pct": self.loss_pct,
                "jitter_ms": self.jitter_ms, "mtu": self.mtu, "emulator": self.emulator,
                "offloads": "off", "jitter_keeps_order": self.emulator != "netem" or not self.jitter_ms}

    def emulator_stats(self) -> dict:
        """The emulator's counters now (linkemu: its JSON; netem: the qdiscs' sent/dropped packets).
        Raises NamespaceError if linkemu ended while the link was open."""
        if self.emulator == "linkemu" and not self._closed:
            if self._process.poll() is not None:  # it died under the run: the run must not pass
                log = (self.state_dir / "linkemu.log").read_text(errors="replace").strip().splitlines()
                raise NamespaceError(f"linkemu exited ({self._process.returncode}): {log[-1] if log else 'no message'}")
            return _ask_linkemu(self._process, self.state_dir / "linkemu.json")
        if self.emulator == "linkemu":
            return dict(self.final_stats or {})
        if self.emulator == "netem":
            return self._netem_stats()
        return {"emulator": "none"}

    # -- building --------------------------------------------------------------------------

    def _add_namespace(self, ns: str) -> None:
        _run(["ip", "netns", "add", ns])
        self._made_ns.append(ns)
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        _run(netns_exec(ns, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                             "net.ipv6.conf.default.disable_ipv6=1"]))

    def _choose_emulator(self) -> str:
        if self.kind == "veth":
            return "none"
        if self._requested_emulator != "auto":
            if self._requested_emulator == "netem" and not _netem_works(self.server_ns):
                raise NamespaceError("netem asked for, but this kernel has no netem (CONFIG_NET_SCH_NETEM)")
            return self._requested_emulator
        if self.jitter_ms == 0 and _netem_works(self.server_ns):
            return "netem"
        return "linkemu"

    def _add_veth(self, ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
        _run(["ip", "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns", ns_b])
        for ns, interface in ((ns_a, if_a), (ns_b, if_b)):
            _run(["ip", "-n", ns, "link", "set", interface, "mtu", str(self.mtu), "up"])
            _offloads_off(ns, interface)

    def _address_ends(self) -> None:
        """Addresses both ends, each with a permanent neighbour entry for the other: no ARP
        exchange stalls a lossy link for a second, nor reorders the first frames of a stream."""
        ends = ((self.server_ns, self.server_if, self.server_addr), (self.client_ns, self.client_if, self.client_addr))
        for (ns, interface, addr), (peer_ns, peer_if, peer_addr) in zip(ends, reversed(ends)):
            _run(["ip", "-n", ns, "addr", "add", f"{addr}/30", "dev", interface])
            mac = _run(netns_exec(peer_ns, ["cat", f"/sys/class/net/{peer_if}/address"])).stdout.strip()
            _run(["ip", "-n", ns, "neigh", "replace", peer_addr, "lladdr", mac, "dev", interface, "nud", "permanent"])

    def _make_direct_link(self, netem: bool) -> None:
        self._add_veth(self.server_ns, self.server_if, self.client_ns, self.client_if)
        self._address_ends()
        if netem:
            for ns, interface in ((self.server_ns, self.server_if), (self.client_ns, self.client_if)):
                _run(netns_exec(ns, ["tc", "qdisc", "add", "dev", interface, "root", "netem",
                                     *self._netem_args()]))

    def _netem_args(self) -> list[str]:
        args = ["limit", str(self.queue_frames), "delay", f"{self.rtt_ms / 2}ms"]
        if self.jitter_ms:
            args.append(f"{self.jitter_ms}ms")
        if self.loss_pct:
            args += ["loss", f"{self.loss_pct}%"]
        return args

    def _make_linkemu_link(self) -> None:
        path = self._linkemu_path or find_linkemu()
        self.emu_ns = f"{self.name}-emu"
        self._add_namespace(self.emu_ns)
        emu_a, emu_b = f"{self.name}a", f"{self.name}b"
        self._add_veth(self.server_ns, self.server_if, self.emu_ns, emu_a)
        self._add_veth(self.client_ns, self.client_if, self.emu_ns, emu_b)
        self._address_ends()
        argv = [path, "--a", emu_a, "--b", emu_b, "--delay-ms", str(self.rtt_ms / 2),
                "--jitter-ms", str(self.jitter_ms), "--loss-pct", str(self.loss_pct),
                "--seed", str(self.seed), "--queue-frames", str(self.queue_frames),
                "--stats-out", str(self.state_dir / "linkemu.json"), "--exit-with", str(os.getpid()),
                "--sched", self.linkemu_sched, *self.linkemu_args]
        self._process = _start_linkemu(netns_exec(self.emu_ns, argv), self.state_dir / "linkemu.log")

    def _netem_stats(self) -> dict:
        stats = {"emulator": "netem", "forwarded": 0, "dropped": 0}
        for ns, interface in ((self.server_ns, self.server_if), (self.client_ns, self.client_if)):
            text = _run(netns_exec(ns, ["tc", "-s", "qdisc", "show", "dev", interface])).stdout
            match = re.search(r"Sent \d+ bytes (\d+) pkt \(dropped (\d+)", text)
            if match:
                stats["forwarded"] += int(match.group(1))
                stats["dropped"] += int(match.group(2))
        return stats


def _offloads_off(ns: str, interface: str) -> None:
    _run(netns_exec(ns, ["ethtool", "-K", interface, "tx", "off", "tso", "off", "gso", "off", "gro", "off"]), False)
    features = _run(netns_exec(ns, ["ethtool", "-k", interface])).stdout
    still_on = [name for name in ("tx-checksumming", "tcp-segmentation-offload",
                                  "generic-segmentation-offload", "generic-receive-offload")
                if re.search(rf"^{name}: on", features, re.MULTILINE)]
    if still_on:
        raise NamespaceError(f"ethtool could not turn off {', '.join(still_on)} on {interface}")


def _start_linkemu(argv: list[str], log: Path) -> subprocess.Popen:
    """Starts linkemu in its own session (a terminal's Ctrl-C is the driver's to handle) and
    waits for its readiness line."""
    with open(log, "wb") as stderr:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True)
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        ready = selector.select(_READY_TIMEOUT_S)
    line = process.stdout.readline().decode(errors="replace") if ready else ""
    if not line.startswith("linkemu ready"):
        process.kill()
        process.wait()
        reason = log.read_text(errors="replace").strip() or "no readiness line"
        raise NamespaceError(f"linkemu did not start: {reason.splitlines()[-1]}")
    return process


def _read_stats(path: Path) -> dict:
    """linkemu's stats file ({} while it has none)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _ask_linkemu(process: subprocess.Popen, path: Path, timeout_s: float = 2.0) -> dict:
    """SIGUSR1 makes linkemu rewrite its stats file; waits for the new document (seq grows)."""
    before = _read_stats(path).get("seq", 0)
    process.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stats = _read_stats(path)
        if stats.get("seq", 0) > before:
            return stats
        time.sleep(0.005)
    raise NamespaceError("linkemu did not answer SIGUSR1 with its counters")


def _stop_linkemu(process: subprocess.Popen, path: Path) -> dict | None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
    return _read_stats(path) or None


def _kill_namespace_processes(ns: str) -> None:
    """Ends what a caller left running in ns: SIGTERM, a second to go, then SIGKILL."""
    def pids() -> list[int]:
        out = _run(["ip", "netns", "pids", ns], check=False).stdout
        return [int(p) for p in out.split() if p.isdigit() and int(p) != os.getpid()]

    for sig in (signal.SIGTERM, signal.SIGKILL):
        remaining = pids()
        for pid in remaining:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 1.0
        while remaining and time.monotonic() < deadline:
            time.sleep(0.02)
            remaining = [pid for pid in remaining if alive(pid)]
        if not remaining:
            return


def _remove_namespace(ns: str) -> None:
    """Deletes ns; its veth ends go with it, and with them their peers in other namespaces."""
    _kill_namespace_processes(ns)
    _run(["ip", "netns", "del", ns], check=False)


def close_all() -> None:
    """Closes every Link still open in this process (registered with atexit; call it from a
    SIGTERM handler, or turn SIGTERM into SystemExit so context managers run)."""
    for link in list(_open_links):
        link.close()


atexit.register(close_all)


def _owner_gone(name: str) -> bool:
    match = _NAME_RE.match(name)
    return bool(match) and not alive(int(match.group(1)))


def _leftover_linkemus() -> list[int]:
    """Pids of linkemu processes whose --a interface belongs to a run whose owner is gone."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"linkemu" and b"--a" in argv[:-1]:
            interface = argv[argv.index(b"--a") + 1].decode(errors="replace")
            if _owner_gone(interface):
                found.append(int(proc.name))
    return found


def cleanup_leftovers() -> list[str]:
    """Removes namespaces, links, emulators and state of earlier runs whose owner pid is gone.
    Returns what was removed (namespace and link names, 'linkemu:<pid>')."""
    removed = []
    for pid in _leftover_linkemus():
        try:
            os.kill(pid, signal.SIGKILL)
            removed.append(f"linkemu:{pid}")
        except ProcessLookupError:
            pass
    for ns in _run(["ip", "netns", "list"], check=False).stdout.split("\n"):
        name = ns.split(" ")[0]
        if _owner_gone(name):
            _remove_namespace(name)
            removed.append(name)
    for line in _run(["ip", "-o", "link", "show"], check=False).stdout.splitlines():
        fields = line.split(": ")
        name = fields[1].split("@")[0] if len(fields) > 1 else ""
        if _owner_gone(name):
            _run(["ip", "link", "del", name], check=False)
            removed.append(name)
    if STATE_ROOT.is_dir():
        for state in STATE_ROOT.iterdir():
            if _owner_gone(state.name):
                shutil.rmtree(state, ignore_errors=True)
    return removed


def emulator_window(before: dict, after: dict, late_fraction: float = 0.01,
                    cpu_util_limit: float = 0.9) -> dict:
    """What linkemu did between two emulator_stats() documents, and whether it was the limit:
    frames left late (over late_fraction of those forwarded), its queue or socket dropped
    frames, or it used cpu_util_limit of a CPU."""
    def delta(key: str, side: str | None = None) -> float:
        a, b = (before.get(side, {}), after.get(side, {})) if side else (before, after)
        return b.get(key, 0) - a.get(key, 0)

    forwarded = delta("forwarded")
    late = delta("late")
    socket_drops = delta("dropped_socket", "a_to_b") + delta("dropped_socket", "b_to_a")
    wall = delta("wall_s")
    cpu = delta("cpu_user_s") + delta("cpu_sys_s")
    window = {"forwarded": forwarded, "late": late, "dropped_loss": delta("dropped_loss"),
              "dropped_queue": delta("dropped_queue"), "dropped_socket": socket_drops,
              "packets_per_s": forwarded / wall if wall > 0 else 0.0,
              "cpu_util": cpu / wall if wall > 0 else 0.0}
    window["bound"] = bool(late > late_fraction * max(forwarded, 1) or window["dropped_queue"] > 0
                           or socket_drops > 0 or window["cpu_util"] >= cpu_util_limit)
    return window


def main(argv: Sequence[str] | None = None) -> int:
    """python3 -m serverbench.namespaces cleanup|check: remove leftovers of killed runs, or say
    whether this process may make links (one line, exit 2 when it may not)."""
    parser = argparse.ArgumentParser(prog="python3 -m serverbench.namespaces", description=main.__doc__)
    parser.add_argument("command", choices=("cleanup", "check"))
    command = parser.parse_args(argv).command
    try:
        require_net_admin()
    except NamespaceError as error:
        print(f"serverbench: {error}", file=sys.stderr)
        return 2
    if command == "cleanup":
        for name in cleanup_leftovers():
            print(f"removed {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
