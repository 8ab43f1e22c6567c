"""./run_all.sh --hosts FILE for real, as root: two client "hosts" (network namespaces, each with
a real sshd), the driver and the server in a third, the load through real ssh sessions.

It shows that each client ran in its own namespace (the server's kernel saw connections from
each client's own data address, and each sshd accepted the driver's key), that the load was split
evenly (each client's requests within 10% of an equal split, the merge exact), that a client
whose sshd is down, or that cannot connect, fails the point with the reason, that a driver
stopped mid-window (SIGINT, SIGKILL) ends the remote loadgens within seconds, and that nothing is
left afterwards: no sshd, no loadgen, no namespace, no remote folder. Skipped (77) only without root or without
OpenSSH's ssh, ssh-keygen and /usr/sbin/sshd.
"""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

from netlab_path import ROOT, netlab
import hostslab

SKIP = 77
BUILD = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build"


def skip_reason():
    try:
        netlab.require_net_admin()
    except netlab.NetlabError as error:
        return f"the multi-host test makes network namespaces: {error}"
    missing = [tool for tool in ("ssh", "ssh-keygen") if shutil.which(tool) is None]
    if not os.access(hostslab.SSHD, os.X_OK):
        missing.append(hostslab.SSHD)
    return f"needs OpenSSH: {', '.join(missing)} missing" if missing else None


class Lab:
    """The namespaces, one sshd per client namespace, a key and an ssh config; all removed on exit."""

    def __init__(self, clients=2, options=None):
        self.options = options or {}  # client number -> extra options on its line
        self.tmp = Path(tempfile.mkdtemp(prefix="serverbench-hosts-test."))
        self.lab = hostslab.HostsLab(clients)
        self.sshds = []

    def __enter__(self):
        self.remote_dirs_before = set(glob.glob("/tmp/serverbench-loadgen.*"))
        self.lab.open()
        try:
            key = self.tmp / "id_ed25519"
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "serverbench-test", "-f", str(key)],
                           check=True)
            for i in range(1, len(self.lab.client_nss) + 1):
                self.sshds.append(hostslab.Sshd(self.lab, i, self.tmp / f"h{i}", f"{key}.pub").start())
            config = hostslab.ssh_config(self.tmp / "ssh_config", self.sshds, key)
            self.hosts_file = self.tmp / "hosts"
            self.hosts_file.write_text(f"# made by {Path(__file__).name}\nssh-config {config}\n"
                                       f"server local address={hostslab.SERVER_ADDRESS}\n"
                                       + "".join(f"client h{i} cpus=1 {self.options.get(i, '')}\n"
                                                 for i in range(1, len(self.sshds) + 1)))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        for sshd in self.sshds:
            sshd.stop()
        self.lab.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_all(self, out):
        return subprocess.run(self.run_all_argv(out), capture_output=True, text=True, timeout=240, cwd=ROOT)

    def run_all_argv(self, out, profile="smoke"):
        """The driver in the server's namespace (run from ROOT: `python3 -m` looks for the package
        in the working directory first)."""
        return self.lab.in_server_ns([str(ROOT / "run_all.sh"), "--hosts", str(self.hosts_file), "--models", "epoll",
                                      "--scenarios", "http-keepalive", "--profile", profile, "--no-build",
                                      "--build-dir", str(BUILD), "--no-microbench", "--no-plots", "--out", str(out)])


def points(run_dir):
    with open(run_dir / "points.jsonl") as f:
        return {(p["point"], p.get("kind")): p for p in map(json.loads, f) if p["model"] == "epoll"}


class MultiHost(unittest.TestCase):
    def assert_nothing_left(self, lab):
        self.assertFalse([ns for ns in lab.lab.client_nss + [lab.lab.server_ns]
                          if ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout])
        for sshd in lab.sshds:
            self.assertIsNotNone(sshd.process.poll(), "an sshd is still running")
        self.assertEqual(hostslab.processes_matching(rb"serverbench-loadgen\.|" + str(BUILD / "bin" / "loadgen").encode()), [])
        self.assertEqual(hostslab.processes_matching(rb"ssh .*BatchMode=yes.*" + str(lab.tmp).encode()), [])
        self.assertEqual(set(glob.glob("/tmp/serverbench-loadgen.*")) - lab.remote_dirs_before, set())

    def test_two_clients_through_real_ssh(self):
        with Lab() as lab:
            run = lab.run_all(lab.tmp / "run")
            self.assertEqual(run.returncode, 0, run.stderr[-3000:])
            got = points(lab.tmp / "run")
            self.assertEqual({p["status"] for p in got.values()}, {"ok"}, got)
            with open(lab.tmp / "run" / got[("c10", None)]["file"]) as f:
                c10 = json.load(f)
            with open(lab.tmp / "run" / got[("c1", None)]["file"]) as f:
                c1 = json.load(f)
            accepted = [sshd.accepted_from() for sshd in lab.sshds]
        self.assertEqual(accepted, [{"10.215.101.1"}, {"10.215.102.1"}])
        self.check_split(c10)
        self.assertEqual([c["host"] for c in c1["hosts"]["clients"]], ["h1"])
        self.assertEqual(c1["hosts"]["unused_clients"], ["h2"])
        self.assertEqual(c1["hosts"]["server_peers"], {hostslab.data_addresses(1)[1]: 1})
        self.assert_nothing_left(lab)

    def check_split(self, point):
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
        self.assertGreater(point["server"]["cpu_user_s"] + point["server"]["cpu_sys_s"], 0)
        self.assertFalse(hosts["clocks"]["synchronised_clocks_needed"])

    def test_a_client_whose_sshd_is_down_fails_the_point(self):
        with Lab() as lab:
            lab.sshds[1].stop()
            run = lab.run_all(lab.tmp / "run")
            self.assertEqual(run.returncode, 1, run.stderr[-3000:])
            got = points(lab.tmp / "run")
        c10 = got[("c10", None)]
        self.assertEqual(c10["status"], "failed")
        self.assertIsNone(c10["file"])
        self.assertIn("client 2 (h2)", c10["reason"])
        self.assertIn("Connection refused", c10["reason"])
        self.assertEqual(got[("c1", None)]["status"], "ok")  # one connection: client 1 only
        self.assert_nothing_left(lab)


    def test_a_client_that_cannot_connect_fails_the_point(self):
        # Client 2 is told a server address that has no route from its namespace: its loadgen
        # retries for its --timeout, says `connected 0`, and the point must not start.
        with Lab(options={2: "address=10.215.0.9"}) as lab:
            run = lab.run_all(lab.tmp / "run")
            self.assertEqual(run.returncode, 1, run.stderr[-3000:])
            got = points(lab.tmp / "run")
        c10 = got[("c10", None)]
        self.assertEqual(c10["status"], "failed")
        self.assertIn("client 2 (h2) connected 0 of 5", c10["reason"])
        self.assertEqual(got[("c1", None)]["status"], "ok")
        self.assert_nothing_left(lab)

    def test_a_driver_stopped_mid_point_leaves_nothing(self):
        for how in (signal.SIGINT, signal.SIGKILL):
            with self.subTest(signal=how.name), Lab() as lab:
                # The full profile's first point runs 1 + 4 s after go: a loadgen that ends within
                # 3 s of the signal was ended by its session's end, not by the end of its run.
                driver = subprocess.Popen(lab.run_all_argv(lab.tmp / "run", "full"), stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, start_new_session=True, cwd=ROOT)
                try:
                    remote = wait_for(lambda: len(hostslab.processes_matching(REMOTE_LOADGEN)) == 2, 60)
                    self.assertTrue(remote, "both clients' loadgens run")
                    time.sleep(1.5)  # past go: each loadgen now runs its window, no longer reads its stdin
                    os.kill(driver.pid, how)
                    stopped = time.monotonic()
                    code = driver.wait(timeout=30)
                finally:
                    if driver.poll() is None:
                        driver.kill()
                        driver.wait()
                    driver.stderr.close()
                self.assertEqual(code, 130 if how == signal.SIGINT else -signal.SIGKILL)
                # Within seconds, with the driver gone: the sessions ended, so the wrappers ended
                # their loadgens and the masters' remote commands removed their folders.
                self.assertTrue(wait_for(lambda: not hostslab.processes_matching(REMOTE_LOADGEN), 3), "loadgen left")
                self.assertLess(time.monotonic() - stopped, 3.5)
                self.assertTrue(wait_for(lambda: not set(glob.glob("/tmp/serverbench-loadgen.*")) - lab.remote_dirs_before,
                                         10), "remote folders left")
                self.assertEqual(hostslab.processes_matching(rb"ssh .*BatchMode=yes.*" + str(lab.tmp).encode()), [])
            self.assert_nothing_left(lab)


REMOTE_LOADGEN = rb"serverbench-loadgen\.\w+/loadgen-"


def wait_for(condition, timeout_s):
    """condition()'s first true value within timeout_s, else its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


if __name__ == "__main__":
    reason = skip_reason()
    if reason:
        print(f"skipped: {reason}")
        sys.exit(SKIP)
    unittest.main(argv=sys.argv[:1] + sys.argv[2:], verbosity=2)
