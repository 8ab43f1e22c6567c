"""Hosts for the multi-host tests, made of network namespaces: a namespaces.Link extended to a star.

    hub namespace (sbPxN-srv): the driver, and the server unless server_host
      |-- data link i:       10.215.i.1/30   <->  10.215.i.2/30       client namespace i (sbPxN-hI)
      |-- management link i: 10.215.(100+i).1/30 <-> 10.215.(100+i).2/30   sshd listens here
    server_host=False: 10.215.0.1/32, the server's address, on the hub's lo (`server local`)
    server_host=True: a server host namespace (sbPxN-hs) has it on its lo instead:
      |-- data link:         10.215.50.1/30  <->  10.215.50.2/30      server host namespace
      |-- management link:   10.215.150.1/30 <->  10.215.150.2/30     sshd listens here
      the hub routes 10.215.0.1 via 10.215.50.2 and forwards between its links; the server host
      answers every client's data address through its default route, via 10.215.50.1

The driver runs in the hub and reaches each host through a real sshd on the host's management
address; what a session makes in /tmp stays in that host's own /tmp, as on real hosts. The load
goes over the data links (through the hub when the server has its own host), so the server sees
each client's connections come from that client's own data address. Every address exists only
inside these namespaces, and IPv4 forwarding is on in the hub's namespace only. The names follow
namespaces.py's pattern (sb<pid>x<n>), so close() (also at exit) and namespaces.cleanup_leftovers() remove
them, with every process left inside (sshd, server, loadgen).
"""

import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

from serverbench_path import namespaces

SERVER_ADDRESS = "10.215.0.1"
SERVER_HOST_DATA = ("10.215.50.1", "10.215.50.2")           # hub end, server host end
SERVER_HOST_MANAGEMENT = ("10.215.150.1", "10.215.150.2")
SERVER_HOST = "hs"                                           # its ssh alias and namespace suffix
SSHD = "/usr/sbin/sshd"
_SSHD_RUN = "/run/serverbench-sshd"                          # its files, inside its mount namespace
# Interface name suffixes: four per host (data hub end, data host end, management hub end,
# management host end); one character, so names fit IFNAMSIZ. The clients take them from the
# front, the server host the last four; a, b, c and s are namespaces.Link's own.
_SUFFIXES = "defghijklmnopqrtuvwxyz"
_SERVER_HOST_FIRST = len(_SUFFIXES) - 4


def data_addresses(i):
    return f"10.215.{i}.1", f"10.215.{i}.2"


def management_addresses(i):
    return f"10.215.{100 + i}.1", f"10.215.{100 + i}.2"


class HostsLab(namespaces.Link):
    """The hub namespace joined to `clients` client namespaces by data and management links, and,
    with server_host, to a server host namespace that holds the server's address."""

    def __init__(self, clients=2, server_host=False):
        super().__init__("veth")
        assert 1 <= clients <= (_SERVER_HOST_FIRST if server_host else len(_SUFFIXES)) // 4
        self.client_nss = [f"{self.name}-h{i}" for i in range(1, clients + 1)]
        self.server_host_ns = f"{self.name}-{SERVER_HOST}" if server_host else None

    @property
    def hub_ns(self):
        """Where the driver runs (namespaces.Link's server namespace)."""
        return self.server_ns

    def namespaces(self):
        return [self.hub_ns, *self.client_nss, *([self.server_host_ns] if self.server_host_ns else [])]

    def open(self):
        namespaces.require_net_admin()
        namespaces._open_links.add(self)
        try:
            self._add_namespace(self.hub_ns)
            if self.server_host_ns:
                self._add_server_host()
            else:
                namespaces._run(["ip", "-n", self.hub_ns, "addr", "add", f"{SERVER_ADDRESS}/32", "dev", "lo"])
            for i, ns in enumerate(self.client_nss, 1):
                self._add_namespace(ns)
                self._join(ns, 4 * (i - 1), data_addresses(i))
                self._join(ns, 4 * (i - 1) + 2, management_addresses(i))
                namespaces._run(["ip", "-n", ns, "route", "add", f"{SERVER_ADDRESS}/32", "via", data_addresses(i)[0]])
        except BaseException:
            self.close()
            raise
        # Kept past close: a process left inside a deleted namespace still holds its inode.
        self.namespace_inodes = {namespace_inode(ns) for ns in self.namespaces()}
        return self

    def _add_server_host(self):
        ns = self.server_host_ns
        self._add_namespace(ns)
        namespaces._run(["ip", "-n", ns, "addr", "add", f"{SERVER_ADDRESS}/32", "dev", "lo"])
        self._join(ns, _SERVER_HOST_FIRST, SERVER_HOST_DATA)
        self._join(ns, _SERVER_HOST_FIRST + 2, SERVER_HOST_MANAGEMENT)
        namespaces._run(["ip", "-n", self.hub_ns, "route", "add", f"{SERVER_ADDRESS}/32", "via", SERVER_HOST_DATA[1]])
        namespaces._run(["ip", "-n", ns, "route", "add", "default", "via", SERVER_HOST_DATA[0]])
        # The clients' packets to the server cross the hub: forwarding on, in its namespace only.
        namespaces._run(namespaces.netns_exec(self.hub_ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]))

    def _join(self, ns, first, addresses):
        near, far = (f"{self.name}{_SUFFIXES[first + k]}" for k in (0, 1))
        self._add_veth(self.hub_ns, near, ns, far)
        for namespace, interface, address in ((self.hub_ns, near, addresses[0]), (ns, far, addresses[1])):
            namespaces._run(["ip", "-n", namespace, "addr", "add", f"{address}/30", "dev", interface])

    def in_hub_ns(self, argv):
        return namespaces.netns_exec(self.hub_ns, argv)

    in_server_ns = in_hub_ns  # without server_host, the hub is the server's namespace

    def in_server_host_ns(self, argv):
        assert self.server_host_ns, "a lab made without server_host"
        return namespaces.netns_exec(self.server_host_ns, argv)


class Sshd:
    """A real sshd in namespace ns: its own config, host key and authorized key, made in folder;
    it listens on address (the namespace's management address) only, and ssh_config() names it
    alias. It runs in a mount namespace of its own (ip netns exec makes one) with a private tmpfs
    on /run and one on /tmp: privilege separation needs /run/sshd, and each host has its own
    /tmp, as real hosts do (what the driver makes there is seen at tmp_path()). The system's sshd
    and /etc/ssh, /root/.ssh are not touched. Its files are copied to /run before /tmp is covered.
    With cgroup2, the cgroup v2 hierarchy is mounted at /sys/fs/cgroup there, as on a real host
    (ip netns exec mounts a /sys of its own, without it): counting trials count the server host's
    server in a cgroup."""

    def __init__(self, ns, address, alias, folder, client_key_pub, cgroup2=False):
        self.ns, self.address, self.alias, self.cgroup2 = ns, address, alias, cgroup2
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.host_key = self.folder / "host_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", alias, "-f", str(self.host_key)],
                       check=True)
        (self.folder / "authorized_keys").write_text(Path(client_key_pub).read_text())
        (self.folder / "sshd_config").write_text(
            f"ListenAddress {self.address}:22\nHostKey {_SSHD_RUN}/host_key\nPidFile {_SSHD_RUN}/sshd.pid\n"
            f"AuthorizedKeysFile {_SSHD_RUN}/authorized_keys\nPubkeyAuthentication yes\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
            "UsePAM no\nStrictModes no\nLogLevel VERBOSE\nMaxStartups 50\nMaxSessions 50\n")
        self.log = self.folder / "sshd.log"
        self.process = None

    @classmethod
    def of_client(cls, lab, i, folder, client_key_pub):
        """The sshd of client namespace i, alias h<i>."""
        return cls(lab.client_nss[i - 1], management_addresses(i)[1], f"h{i}", folder, client_key_pub)

    @classmethod
    def of_server_host(cls, lab, folder, client_key_pub):
        """The sshd of the server host namespace, alias hs."""
        return cls(lab.server_host_ns, SERVER_HOST_MANAGEMENT[1], SERVER_HOST, folder, client_key_pub, cgroup2=True)

    def known_hosts_line(self):
        return f"{self.address} {' '.join(Path(str(self.host_key) + '.pub').read_text().split()[:2])}\n"

    def start(self):
        # An empty home of its own, as a fresh host has: the login shell of every remote command
        # would otherwise run the start-up files of the home of the machine running the tests
        # (a version manager's there can take half a second per command).
        home = shlex.quote(os.path.expanduser("~"))
        script = (("mount -t cgroup2 serverbench-cgroup2 /sys/fs/cgroup && " if self.cgroup2 else "") +
                  f"mount -t tmpfs -o mode=700 serverbench-home {home} && "
                  f"mount -t tmpfs -o mode=755 serverbench-sshd /run && mkdir -m 755 /run/sshd && "
                  f"cp -a {self.folder} {_SSHD_RUN} && mount -t tmpfs -o mode=1777 serverbench-tmp /tmp && "
                  f"exec {SSHD} -D -e -f {_SSHD_RUN}/sshd_config")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(namespaces.netns_exec(self.ns, ["sh", "-c", script]),
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while "Server listening on" not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"sshd in {self.ns} did not start: {self.log.read_text()[-500:]}")
            time.sleep(0.05)
        return self

    def stop(self):
        if self.process is not None:
            terminate(self.process)

    def tmp_path(self):
        """This host's /tmp, seen from outside: valid while the sshd runs."""
        assert self.process is not None and self.process.poll() is None, f"the sshd of {self.alias} is not running"
        return Path(f"/proc/{self.process.pid}/root/tmp")

    def accepted_from(self):
        """The addresses whose public key this sshd accepted."""
        return set(re.findall(r"Accepted publickey for \S+ from (\S+)", self.log.read_text(errors="replace")))


def terminate(process):
    """SIGTERM, then SIGKILL after 5 s, and reaped."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ssh_config(path, sshds, key):
    """An ssh config (ssh -F) naming each sshd by its alias (h1, h2, ..., hs): its address, the
    test's key, and a known_hosts file with the test's host keys only."""
    folder = Path(path).parent
    known = folder / "known_hosts"
    known.write_text("".join(s.known_hosts_line() for s in sshds))
    blocks = [f"Host {s.alias}\n  HostName {s.address}\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
              f"  UserKnownHostsFile {known}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n"
              for s in sshds]
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


def namespace_inode(name):
    """The inode of a named network namespace (what /proc/PID/ns/net of its processes points
    to), or None when no namespace has that name."""
    try:
        return os.stat(f"/run/netns/{name}").st_ino
    except FileNotFoundError:
        return None


def processes_in_inodes(inodes, pattern):
    """Pids whose network namespace is one of inodes and whose command line matches pattern
    (bytes regex): found even after their namespace's name was deleted."""
    found = []
    for pid in processes_matching(pattern):
        try:
            if os.stat(f"/proc/{pid}/ns/net").st_ino in inodes:
                found.append(pid)
        except OSError:
            pass
    return sorted(found)


def processes_in(namespaces, pattern):
    """Pids of processes in these named network namespaces whose command line matches pattern
    (bytes regex): only what the lab's own hosts run, whatever other tests run on the machine."""
    return processes_in_inodes({namespace_inode(ns) for ns in namespaces} - {None}, pattern)
