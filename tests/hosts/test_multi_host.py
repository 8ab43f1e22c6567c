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

import os
import signal
import subprocess
import sys
import time
import unittest
from pathlib import Path

from serverbench_path import ROOT
import hostslab
from hostsfixture import REMOTE_LOADGEN, Lab, HostsChecks, point_json, points, run_tests, \
    wait_for

BUILD = (Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build").resolve()


class MultiHost(HostsChecks, unittest.TestCase):
    def test_two_clients_through_real_ssh(self):
        with Lab(BUILD) as lab:
            run = lab.run_all(lab.tmp / "run")
            self.assertEqual(run.returncode, 0, run.stderr[-3000:])
            got = points(lab.tmp / "run")
            self.assertEqual({p["status"] for p in got.values()}, {"ok"}, got)
            c10 = point_json(lab.tmp / "run", got[("c10", None)])
            c1 = point_json(lab.tmp / "run", got[("c1", None)])
            accepted = [sshd.accepted_from() for sshd in lab.sshds]
            self.assert_run_left_nothing(lab)
        self.assertEqual(accepted, [{"10.215.101.1"}, {"10.215.102.1"}])
        self.assert_clients_split(c10)
        self.assertGreater(c10["server"]["cpu_user_s"] + c10["server"]["cpu_sys_s"], 0)
        self.assertEqual([c["host"] for c in c1["hosts"]["clients"]], ["h1"])
        self.assertEqual(c1["hosts"]["unused_clients"], ["h2"])
        self.assertEqual(c1["hosts"]["server_peers"], {hostslab.data_addresses(1)[1]: 1})
        self.assert_nothing_left(lab)

    def test_a_client_whose_sshd_is_down_fails_the_point(self):
        with Lab(BUILD) as lab:
            lab.sshds[1].stop()
            run = lab.run_all(lab.tmp / "run")
            self.assertEqual(run.returncode, 1, run.stderr[-3000:])
            got = points(lab.tmp / "run")
            self.assert_run_left_nothing(lab)
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
        with Lab(BUILD, options={2: "address=10.215.0.9"}) as lab:
            run = lab.run_all(lab.tmp / "run")
            self.assertEqual(run.returncode, 1, run.stderr[-3000:])
            got = points(lab.tmp / "run")
            self.assert_run_left_nothing(lab)
        c10 = got[("c10", None)]
        self.assertEqual(c10["status"], "failed")
        self.assertIn("client 2 (h2) connected 0 of 5", c10["reason"])
        self.assertEqual(got[("c1", None)]["status"], "ok")
        self.assert_nothing_left(lab)

    def test_a_driver_stopped_mid_point_leaves_nothing(self):
        for how in (signal.SIGINT, signal.SIGKILL):
            with self.subTest(signal=how.name), Lab(BUILD) as lab:
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
                self.assert_run_left_nothing(lab)
            self.assert_nothing_left(lab)


if __name__ == "__main__":
    run_tests()
