"""The multi-host lab itself, as root, without the driver: with a server host namespace (hs), its
sshd is reached from the hub through real ssh, its session runs in hs's network namespace and has
a /tmp of its own; a server in hs, bound to every address, is reached at 10.215.0.1 by a loadgen
in each client namespace through the hub's forwarding, and hs's kernel sees each client's
connections come from that client's own data address; IPv4 forwarding is on in the hub only; and
close(), or namespaces.py's leftover cleanup after an owner killed outright, leaves no namespace, link or
process. Skipped (77) only without root or without OpenSSH's ssh, ssh-keygen and /usr/sbin/sshd.
"""

import collections
import json
import os
import re
import signal
import subprocess
import sys
import unittest
from pathlib import Path

from serverbench_path import ROOT, namespaces
import hostslab
from hostsfixture import Lab, HostsChecks, run_tests, skip_reason

BUILD = (Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build").resolve()


class ServerHostLab(HostsChecks, unittest.TestCase):
    def test_server_host_is_reached_through_the_hub(self):
        forwarding_before = Path("/proc/sys/net/ipv4/ip_forward").read_text()
        with Lab(BUILD, server_host=True) as lab:
            self.check_names(lab.lab)
            self.check_ssh(lab)
            self.assertEqual(self.sysctl(lab.lab.hub_ns), "1")
            server = Server(lab.lab)
            try:
                peers, results = self.load_both_clients(lab, server.port)
            finally:
                server.stop()
            self.assertEqual(server.process.returncode, 0, server.stderr)
            self.assert_run_left_nothing(lab)
        self.assertEqual(peers, {hostslab.data_addresses(1)[1]: 5, hostslab.data_addresses(2)[1]: 5})
        for code, stderr in results:
            self.assertEqual(code, 0, stderr[-2000:])
        self.assertEqual(Path("/proc/sys/net/ipv4/ip_forward").read_text(), forwarding_before)
        self.assert_nothing_left(lab)
        self.assertFalse([line for line in self.links() if lab.lab.name in line])

    def check_names(self, lab):
        self.assertEqual(lab.server_host_ns, f"{lab.name}-hs")
        names = [line.split(": ")[1].split("@")[0]
                 for ns in lab.namespaces() for line in self.links(ns) if lab.name in line]
        self.assertEqual(len(names), 3 * 4)  # three hosts, four interface ends each
        self.assertTrue(all(len(n) < 16 and n.startswith(lab.name) for n in names), names)
        self.assertEqual(len(set(names)), len(names))

    def check_ssh(self, lab):
        # The session lands in hs's network namespace: its netns is hs's, not the hub's.
        connection, netns = self.ssh(lab, "echo $SSH_CONNECTION; readlink /proc/self/ns/net").splitlines()
        self.assertEqual(connection.split()[::2], ["10.215.150.1", "10.215.150.2"])
        self.assertEqual(connection.split()[3], "22")
        self.assertEqual(netns, self.netns_of(lab.lab.server_host_ns))
        self.assertNotEqual(netns, self.netns_of(lab.lab.hub_ns))
        self.assertEqual(lab.server_sshd.accepted_from(), {"10.215.150.1"})
        # hs has a /tmp of its own, as a real host does: what a session makes there is not in ours.
        made = self.ssh(lab, "mktemp -d /tmp/serverbench-loadgen.XXXXXX").strip()
        self.assertFalse(os.path.exists(made))
        self.assertTrue((lab.server_sshd.tmp_path() / Path(made).name).is_dir())
        self.assertEqual(lab.remote_dirs(), {f"hs:{Path(made).name}"})
        self.ssh(lab, f"rmdir {made}")
        self.assertEqual(lab.remote_dirs(), set())

    def ssh(self, lab, command):
        argv = ["ssh", "-F", str(lab.ssh_config), "-o", "BatchMode=yes", hostslab.SERVER_HOST, command]
        ssh = subprocess.run(lab.lab.in_hub_ns(argv), capture_output=True, text=True, timeout=30)
        self.assertEqual(ssh.returncode, 0, ssh.stderr)
        return ssh.stdout

    def load_both_clients(self, lab, port):
        """One loadgen of 5 connections in each client namespace; hs's established peers seen by
        ss while both are connected and held before `go`."""
        argv = [str(BUILD / "bin" / "loadgen"), "--host", hostslab.SERVER_ADDRESS, "--port", str(port),
                "--connections", "5", "--warmup", "0", "--duration", "500ms", "--start-on-stdin", "-q"]
        clients = [subprocess.Popen(namespaces.netns_exec(ns, argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True) for ns in lab.lab.client_nss]
        try:
            for client in clients:
                self.assertEqual(client.stdout.readline().strip(), "connected 5")
            peers = established_peers(lab.lab, port)
            for client in clients:
                client.stdin.write("go\n")
                client.stdin.flush()
            results = []
            for client in clients:
                out, err = client.communicate(timeout=30)
                self.assertGreater(json.loads(out)["totals"]["requests"], 0)
                results.append((client.returncode, err))
        finally:
            for client in clients:
                if client.poll() is None:
                    client.kill()
                    client.wait()
        return peers, results

    def test_leftovers_of_a_killed_owner_are_removed(self):
        owner = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]); "
                                  "import hostslab; lab = hostslab.HostsLab(2, server_host=True).open(); "
                                  "print(lab.name, flush=True); time.sleep(60)", str(Path(__file__).parent)],
                                 stdout=subprocess.PIPE, text=True)
        try:
            name = owner.stdout.readline().strip()
            self.assertTrue(name.startswith("sb"), name)
        finally:
            owner.send_signal(signal.SIGKILL)  # no close(), no atexit
            owner.wait()
            owner.stdout.close()
        self.assertIn(f"{name}-hs", self.namespaces())
        removed = namespaces.cleanup_leftovers()
        self.assertTrue({f"{name}-srv", f"{name}-h1", f"{name}-h2", f"{name}-hs"} <= set(removed), removed)
        self.assertFalse([ns for ns in self.namespaces() if ns.startswith(name)])
        self.assertFalse([line for line in self.links() if name in line])

    @staticmethod
    def links(ns=None):
        argv = ["ip", "-o", "link", "show"]
        return subprocess.run(["ip", "-n", ns, *argv[1:]] if ns else argv, capture_output=True, text=True,
                              check=True).stdout.splitlines()

    @staticmethod
    def namespaces():
        return [line.split()[0] for line in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                                             text=True).stdout.splitlines() if line]

    @staticmethod
    def sysctl(ns):
        return subprocess.run(namespaces.netns_exec(ns, ["sysctl", "-n", "net.ipv4.ip_forward"]), capture_output=True,
                              text=True, check=True).stdout.strip()

    @staticmethod
    def netns_of(ns):
        return subprocess.run(namespaces.netns_exec(ns, ["readlink", "/proc/self/ns/net"]), capture_output=True,
                              text=True, check=True).stdout.strip()


class Server:
    """server-epoll in the server host namespace, bound to every address on a free port."""

    def __init__(self, lab):
        self.process = subprocess.Popen(
            lab.in_server_host_ns([str(BUILD / "bin" / "server-epoll"), "--host", "0.0.0.0", "--port", "0"]),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stderr = ""
        ready = self.process.stdout.readline()
        match = re.search(r"port=(\d+)", ready)
        if not match:
            self.stop()
            raise AssertionError(f"server-epoll did not start: {ready!r} {self.stderr}")
        self.port = int(match.group(1))

    def stop(self):
        hostslab.terminate(self.process)
        self.stderr = self.process.stderr.read()
        self.process.stdout.close()
        self.process.stderr.close()


def established_peers(lab, port):
    """Established connections to port in the server host namespace, per peer address."""
    ss = subprocess.run(lab.in_server_host_ns(["ss", "-Htn", "state", "established", f"( sport = :{port} )"]),
                        capture_output=True, text=True, check=True)
    return dict(collections.Counter(line.split()[-1].rsplit(":", 1)[0] for line in ss.stdout.splitlines()))


if __name__ == "__main__":
    if skip_reason() is None and not os.access(BUILD / "bin" / "server-epoll", os.X_OK):
        print(f"{BUILD}/bin/server-epoll is not built", file=sys.stderr)
        sys.exit(1)
    run_tests()