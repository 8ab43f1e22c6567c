"""Where a run's traffic goes (--net): loopback TCP (the default), a Unix stream socket, or a
veth link between two network namespaces, plain (`veth`) or with emulated distance (`wan`:
round-trip time, loss, jitter, through netem or linkemu; see namespaces.py).

A Network turns the commands of a trial into commands for its setup: which namespace the server
and the clients run in, which address they use, and what to record in each result's env.
"""
import os
import shutil
import tempfile

from . import namespaces

KINDS = ("loopback", "unix", "veth", "wan")


class NetworkError(Exception):
    pass


class Loopback:
    kind = "loopback"

    def open(self):
        return self

    def close(self):
        pass

    def server_argv(self, argv, _name):
        return list(argv)

    def client_argv(self, argv):
        return list(argv)

    def target_flags(self, port, _name):
        return ["--host", "127.0.0.1", "--port", str(port)]

    def env(self):
        return {"kind": self.kind}

    def begin_point(self):
        return None

    def end_point(self, _before):
        return None


class UnixSockets(Loopback):
    """Each trial's server listens on its own socket file in a private folder."""
    kind = "unix"

    def open(self):
        self.dir = tempfile.mkdtemp(prefix="serverbench-unix-")
        return self

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, f"{name}.sock")

    def server_argv(self, argv, name):
        return [*argv, "--unix", self.path(name)]

    def target_flags(self, _port, name):
        return ["--unix", self.path(name)]


class NamespaceLink(Loopback):
    """The server in one network namespace, loadgen and the idle holder in another."""

    def __init__(self, kind, rtt_ms=None, loss_pct=0.0, jitter_ms=0.0, emulator="auto"):
        self.kind = kind
        self.link = namespaces.Link(kind, rtt_ms=rtt_ms, loss_pct=loss_pct, jitter_ms=jitter_ms, emulator=emulator)

    def open(self):
        try:
            namespaces.require_net_admin()
            removed = namespaces.cleanup_leftovers()
            self.link.open()
        except namespaces.NamespaceError as e:
            raise NetworkError(str(e))
        if removed:
            print(f"== removed leftovers of earlier runs: {', '.join(removed)}", flush=True)
        return self

    def close(self):
        self.link.close()

    def server_argv(self, argv, _name):
        return self.link.server_cmd([*argv, "--host", self.link.server_addr])

    def client_argv(self, argv):
        return self.link.client_cmd(argv)

    def target_flags(self, port, _name):
        return ["--host", self.link.server_addr, "--port", str(port)]

    def env(self):
        return self.link.env()

    def begin_point(self):
        return self.link.emulator_stats() if self.link.emulator == "linkemu" else None

    def end_point(self, before):
        """What the emulator did during the point, and whether it was the limit."""
        if before is None:
            return None
        return namespaces.emulator_window(before, self.link.emulator_stats())


def make(net):
    """The Network of a run's settings.NetworkSettings."""
    if net.kind == "loopback":
        return Loopback()
    if net.kind == "unix":
        return UnixSockets()
    if net.kind in ("veth", "wan"):
        return NamespaceLink(net.kind, net.rtt_ms if net.kind == "wan" else None, net.loss_pct, net.jitter_ms,
                             net.emulator)
    raise NetworkError(f"unknown --net '{net.kind}' ({', '.join(KINDS)})")
