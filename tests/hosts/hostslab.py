"""Hosts for the multi-host test, made of network namespaces: a netlab.Link extended to a star.

    driver + server namespace (sbPxN-srv)          10.215.0.1/32 on lo: the server's address
      |-- data link i:       10.215.i.1/30   <->  10.215.i.2/30       client namespace i (sbPxN-hI)
      |-- management link i: 10.215.(100+i).1/30 <-> 10.215.(100+i).2/30   sshd listens here

The driver runs in the server's namespace (the server is `local` to it) and reaches each client
through a real sshd on the client's management address; the load goes over the data links, so
the server sees each client's connections come from that client's own data address. Every
address exists only inside these namespaces. The names follow netlab's pattern (sb<pid>x<n>),
so close() (also at exit) and netlab.cleanup_leftovers() remove them, with every process left
inside (sshd, loadgen).
"""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from netlab_path import netlab

SERVER_ADDRESS = "10.215.0.1"
SSHD = "/usr/sbin/sshd"
# Interface name suffixes: four per client (data server end, data client end, management
# driver end, management client end); one character, so names fit IFNAMSIZ.
_SUFFIXES = "defghijklmnopqrtuvwxyz"


def data_addresses(i):
    return f"10.215.{i}.1", f"10.215.{i}.2"


def management_addresses(i):
    return f"10.215.{100 + i}.1", f"10.215.{100 + i}.2"


class HostsLab(netlab.Link):
    """The server's namespace joined to `clients` client namespaces by data and management links."""

    def __init__(self, clients=2):
        super().__init__("veth")
        assert 1 <= clients <= len(_SUFFIXES) // 4
        self.client_nss = [f"{self.name}-h{i}" for i in range(1, clients + 1)]

    def open(self):
        netlab.require_net_admin()
        netlab._open_links.add(self)
        try:
            self._add_namespace(self.server_ns)
            netlab._run(["ip", "-n", self.server_ns, "addr", "add", f"{SERVER_ADDRESS}/32", "dev", "lo"])
            for i, ns in enumerate(self.client_nss, 1):
                self._add_namespace(ns)
                self._join(ns, 4 * (i - 1), data_addresses(i))
                self._join(ns, 4 * (i - 1) + 2, management_addresses(i))
                netlab._run(["ip", "-n", ns, "route", "add", f"{SERVER_ADDRESS}/32", "via", data_addresses(i)[0]])
        except BaseException:
            self.close()
            raise
        return self

    def _join(self, ns, first, addresses):
        near, far = (f"{self.name}{_SUFFIXES[first + k]}" for k in (0, 1))
        self._add_veth(self.server_ns, near, ns, far)
        for namespace, interface, address in ((self.server_ns, near, addresses[0]), (ns, far, addresses[1])):
            netlab._run(["ip", "-n", namespace, "addr", "add", f"{address}/30", "dev", interface])

    def in_server_ns(self, argv):
        return netlab.netns_exec(self.server_ns, argv)


class Sshd:
    """A real sshd in client namespace i: its own config, host key and authorized key, all in
    folder; it listens on the namespace's management address only. The system's sshd and
    /etc/ssh, /root/.ssh are not touched: privilege separation needs /run/sshd, which is made on
    a tmpfs over /run that exists only in sshd's own mount namespace (ip netns exec makes one)."""

    def __init__(self, lab, i, folder, client_key_pub):
        self.ns, self.address = lab.client_nss[i - 1], management_addresses(i)[1]
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.host_key = self.folder / "host_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"h{i}", "-f", str(self.host_key)],
                       check=True)
        (self.folder / "authorized_keys").write_text(Path(client_key_pub).read_text())
        self.config = self.folder / "sshd_config"
        self.config.write_text(
            f"ListenAddress {self.address}:22\nHostKey {self.host_key}\nPidFile {self.folder}/sshd.pid\n"
            f"AuthorizedKeysFile {self.folder}/authorized_keys\nPubkeyAuthentication yes\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
            "UsePAM no\nStrictModes no\nLogLevel VERBOSE\nMaxStartups 50\nMaxSessions 50\n")
        self.log = self.folder / "sshd.log"
        self.process = None

    def known_hosts_line(self):
        return f"{self.address} {' '.join(Path(str(self.host_key) + '.pub').read_text().split()[:2])}\n"

    def start(self):
        script = (f"mount -t tmpfs -o mode=755 serverbench-sshd /run && mkdir -m 755 /run/sshd && "
                  f"exec {SSHD} -D -e -f {self.config}")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(netlab.netns_exec(self.ns, ["sh", "-c", script]),
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while "Server listening on" not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"sshd in {self.ns} did not start: {self.log.read_text()[-500:]}")
            time.sleep(0.05)
        return self

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def accepted_from(self):
        """The addresses whose public key this sshd accepted."""
        return set(re.findall(r"Accepted publickey for \S+ from (\S+)", self.log.read_text(errors="replace")))


def ssh_config(path, sshds, key):
    """An ssh config (ssh -F) naming each client h1, h2, ...: its address, the test's key, and a
    known_hosts file with the test's host keys only."""
    folder = Path(path).parent
    known = folder / "known_hosts"
    known.write_text("".join(s.known_hosts_line() for s in sshds))
    blocks = [f"Host h{i}\n  HostName {s.address}\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
              f"  UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n"
              for i, s in enumerate(sshds, 1)]
    Path(path).write_text("".join(blocks))
    return path


def processes_matching(pattern):
    """Pids whose command line matches pattern (bytes regex)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if re.search(pattern, cmdline):
            found.append(int(proc.name))
    return found
