"""What the multi-host tests share: a HostsLab with a real sshd on every host, a key made for the
test, an ssh config and a hosts file (Lab); the driver's command line in the hub; the checks of a
run's clients and that nothing is left (HostsChecks); and small helpers.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

from serverbench_path import ROOT, namespaces
import hostslab

SKIP = 77
# The remote copies running themselves: not the shell that copies them there, whose command line
# names the same path.
REMOTE_LOADGEN = rb"^/tmp/serverbench-loadgen\.\w+/loadgen-[0-9a-f]+ "
REMOTE_SERVER = rb"^/tmp/serverbench-loadgen\.\w+/server-"
# What a run starts on the lab's hosts, besides their sshds' listeners: loadgens and their
# wrappers, the server, the ssh sessions and masters, the remote folders' keepers.
RUN_PROCESSES = rb"loadgen|server-epoll|BatchMode=yes"


def skip_reason():
    """Why the multi-host tests cannot run here (no root, no OpenSSH), else None."""
    try:
        namespaces.require_net_admin()
    except namespaces.NamespaceError as error:
        return f"the multi-host tests make network namespaces: {error}"
    missing = [tool for tool in ("ssh", "ssh-keygen") if shutil.which(tool) is None]
    if not os.access(hostslab.SSHD, os.X_OK):
        missing.append(hostslab.SSHD)
    return f"needs OpenSSH: {', '.join(missing)} missing" if missing else None


def run_tests():
    """A hosts test file's main: skipped (77) where it cannot run, else its tests (argv[1] is
    the build folder, not a test name)."""
    reason = skip_reason()
    if reason:
        print(f"skipped: {reason}")
        sys.exit(SKIP)
    unittest.main(argv=sys.argv[:1] + sys.argv[2:], verbosity=2)


class Lab:
    """The namespaces, one sshd per host namespace (the clients', and the server host's with
    server_host), a key and an ssh config; all removed on exit. The hosts file names the server
    `local` (the hub) or, with server_host, `hs`."""

    def __init__(self, build, clients=2, options=None, server_host=False):
        self.build = Path(build).resolve()
        self.options = options or {}  # client number -> extra options on its line
        self.tmp = Path(tempfile.mkdtemp(prefix="serverbench-hosts-test."))
        self.lab = hostslab.HostsLab(clients, server_host=server_host)
        self.sshds = []           # the clients' in order, then the server host's
        self.server_sshd = None

    def __enter__(self):
        self.lab.open()
        try:
            key = self.tmp / "id_ed25519"
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "serverbench-test", "-f", str(key)],
                           check=True)
            for i in range(1, len(self.lab.client_nss) + 1):
                self.sshds.append(hostslab.Sshd.of_client(self.lab, i, self.tmp / f"h{i}", f"{key}.pub").start())
            if self.lab.server_host_ns:
                self.server_sshd = hostslab.Sshd.of_server_host(self.lab, self.tmp / hostslab.SERVER_HOST,
                                                                f"{key}.pub").start()
                self.sshds.append(self.server_sshd)
            self.ssh_config = hostslab.ssh_config(self.tmp / "ssh_config", self.sshds, key)
            self.hosts_file = self.tmp / "hosts"
            self.hosts_file.write_text(self.hosts_text())
        except BaseException:
            self.__exit__()
            raise
        return self

    def hosts_text(self):
        server = hostslab.SERVER_HOST if self.lab.server_host_ns else "local"
        clients = len(self.lab.client_nss)
        return (f"# made by {Path(__file__).name}\nssh-config {self.ssh_config}\n"
                f"server {server} address={hostslab.SERVER_ADDRESS}\n"
                + "".join(f"client h{i} cpus=1 {self.options.get(i, '')}\n" for i in range(1, clients + 1)))

    def __exit__(self, *exc):
        for sshd in self.sshds:
            sshd.stop()
        self.lab.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_all(self, out):
        return subprocess.run(self.run_all_argv(out), capture_output=True, text=True, timeout=240, cwd=ROOT)

    def run_all_argv(self, out, profile="smoke"):
        """The driver in the hub namespace (run from ROOT: `python3 -m` looks for the package in the
        working directory first)."""
        return self.lab.in_hub_ns([str(ROOT / "run_all.sh"), "--hosts", str(self.hosts_file), "--models", "epoll",
                                   "--scenarios", "http-keepalive", "--profile", profile, "--no-build",
                                   "--build-dir", str(self.build), "--no-microbench", "--no-plots", "--out", str(out)])

    def lab_processes(self, pattern):
        """Pids in the lab's namespaces whose command line matches pattern (bytes regex)."""
        return hostslab.processes_in(self.lab.namespaces(), pattern)

    def remote_dirs(self):
        """The driver's folders in the /tmp of each host whose sshd runs (each host has its own)."""
        return {f"{sshd.alias}:{path.name}" for sshd in self.sshds if sshd.process.poll() is None
                for path in sshd.tmp_path().glob("serverbench-loadgen.*")}


class HostsChecks:
    """A unittest.TestCase mixin: the checks the multi-host tests share."""

    def assert_clients_split(self, point):
        """The 10-connection point of the two-client lab: each client ran in its own namespace and
        had its equal share, and the merge is exact."""
        hosts = point["hosts"]
        clients = hosts["clients"]
        self.assertEqual([c["host"] for c in clients], ["h1", "h2"])
        self.assertEqual([c["connections"] for c in clients], [5, 5])
        # The server's kernel saw each client's connections come from that client's data address.
        self.assertEqual(hosts["server_peers"], {hostslab.data_addresses(1)[1]: 5, hostslab.data_addresses(2)[1]: 5})
        # Each ssh session reached the sshd of its own namespace, and loadgen was the copy checked by hash.
        self.assertEqual([c["ssh_connection"].split()[2] for c in clients], ["10.215.101.2", "10.215.102.2"])
        self.assertTrue(all(c["copied"] and c["loadgen"].endswith(c["loadgen_sha256"][:16]) for c in clients))
        requests = [c["totals"]["requests"] for c in clients]
        total = point["totals"]["requests"]
        self.assertEqual(sum(requests), total)  # merged exactly
        self.assertEqual(point["latency_us"]["count"], sum(c["latency_us"]["count"] for c in clients))
        for r in requests:
            self.assertLessEqual(abs(r - total / 2), 0.1 * total / 2, requests)
        self.assertFalse(hosts["clocks"]["synchronised_clocks_needed"])

    def assert_run_left_nothing(self, lab, timeout_s=10):
        """Within timeout_s of the driver's end, while the lab is still open: no process of the run
        in the lab's namespaces, no folder in the /tmp of a host whose sshd runs."""
        gone = wait_for(lambda: not lab.lab_processes(RUN_PROCESSES) and not lab.remote_dirs(), timeout_s)
        self.assertTrue(gone, f"left: {commands(lab.lab_processes(RUN_PROCESSES))} {lab.remote_dirs()}")

    def assert_nothing_left(self, lab):
        """After a Lab has closed: no namespace or sshd of it, no process naming this checkout's
        binaries in the lab's namespaces (deleted or not), and none naming the lab's files (ssh -F)
        anywhere on the machine: other tests may run this checkout's binaries meanwhile, elsewhere."""
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
        self.assertFalse([ns for ns in lab.lab.namespaces() if ns in listed])
        for sshd in lab.sshds:
            self.assertIsNotNone(sshd.process.poll(), f"the sshd of {sshd.alias} is still running")
        binaries = b"|".join(re.escape(str(lab.build / "bin" / name).encode()) for name in ("loadgen", "server-"))
        left = (hostslab.processes_in_inodes(lab.lab.namespace_inodes, binaries)
                + hostslab.processes_matching(re.escape(str(lab.tmp).encode())))
        self.assertEqual(left, [], commands(left))


def commands(pids):
    """The command lines of pids, for a message."""
    found = []
    for pid in pids:
        try:
            found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            pass
    return found


def points(run_dir, model="epoll"):
    """The points of a run's model, by (point, kind): kind None for a timed point, "count" for a
    counting trial."""
    with open(run_dir / "points.jsonl") as f:
        return {(p["point"], p.get("kind")): p for p in map(json.loads, f) if p["model"] == model}


def point_json(run_dir, record):
    with open(run_dir / record["file"]) as f:
        return json.load(f)


def wait_for(condition, timeout_s):
    """condition()'s first true value within timeout_s, else its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)
