"""./run_all.sh --hosts FILE with the server on a host of its own, for real, as root: the driver in
the hub namespace, the server in a server host namespace (hs) and two clients in two more, each
host with a real sshd; the load crosses the hub, which forwards between its links.

It shows that the server ran on hs, started through hs's sshd from the copy checked by hash
(`hosts.server`) and pinned to CPU 0, that its CPU was measured there (`loadgen sample-server`),
that hs's kernel saw each client's connections come from that client's own data address, that
counting trials count the server on hs (perf there, in a cgroup of its own, switched at the
driver's window edges through the server's ssh session) and leave no cgroup, that a server host whose
sshd is down fails every timed point with the reason, that a driver stopped mid-window (SIGINT,
SIGKILL) ends the remote server and loadgens within seconds, and that nothing is left afterwards:
no sshd, server, loadgen, namespace or remote folder (each host has a /tmp of its own). Skipped
(77) only without root or without OpenSSH's ssh, ssh-keygen and /usr/sbin/sshd. The bundled nginx
runs beside epoll on hs, as a server file does there: its launcher and file copied by hash, hs's
own nginx measured and counted there, and none of it left.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import unittest
from pathlib import Path

from serverbench_path import ROOT
from serverbench import cgroups
import hostslab
from hostsfixture import REMOTE_LOADGEN, REMOTE_SERVER, HostsChecks, Lab, commands, point_json, points, \
    run_tests, wait_for

BUILD = (Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build").resolve()
# A server or loadgen process itself (its executable, this checkout's or a remote copy), not a
# shell whose command line merely names one.
SERVER_OR_LOADGEN = rb"^(\S*/)?(server-epoll|loadgen)(-[0-9a-f]+)?( |$)"
SERVER_ITSELF = rb"^/tmp/serverbench-loadgen\.\w+/server-epoll-[0-9a-f]+ "


def cpus_allowed(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return next(line.split(":")[1].strip() for line in status.splitlines() if line.startswith("Cpus_allowed_list:"))


def counting_cgroups(driver_pid):
    """The cgroups that hs's wrappers made for the driver of pid driver_pid (the fourth field of
    serverbench-<pid namespace>-<wrapper pid>-<driver pid>-server): hs shares the machine's cgroup
    tree, where other runs may count too."""
    mount = cgroups.perf_cgroup_mount()
    return {os.path.join(folder, d) for folder, subdirs, _ in os.walk(mount) for d in subdirs
            if d.startswith(cgroups.PREFIX) and d.split("-")[3:4] == [str(driver_pid)]}


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class RemoteServer(HostsChecks, unittest.TestCase):
    def test_server_on_its_own_host_through_real_ssh(self):
        """epoll on hs, and the bundled nginx beside it: a server file runs there as a model does."""
        with Lab(BUILD, server_host=True) as lab:
            argv = [{"epoll": "epoll,nginx"}.get(a, a) for a in lab.run_all_argv(lab.tmp / "run")]
            driver = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
            _, stderr = driver.communicate(timeout=240)
            self.assertEqual(driver.returncode, 0, stderr[-3000:])
            got = points(lab.tmp / "run")
            timed = {label: record for (label, kind), record in got.items() if kind is None}
            counts = {label: record for (label, kind), record in got.items() if kind == "count"}
            self.assertEqual({r["status"] for r in timed.values()}, {"ok"}, timed)
            c10 = point_json(lab.tmp / "run", timed["c10"])
            c1 = point_json(lab.tmp / "run", timed["c1"])
            counted = {label: point_json(lab.tmp / "run", record) for label, record in counts.items()
                       if record["status"] == "ok"}
            accepted = {sshd.alias: sshd.accepted_from() for sshd in lab.sshds}
            nginx = {key: point_json(lab.tmp / "run", record) if record["status"] == "ok" else record
                     for key, record in points(lab.tmp / "run", "nginx").items()}
            nginx_left = lab.lab_processes(rb"nginx")
            self.assert_run_left_nothing(lab)
        self.assert_server_file_on_hs(nginx, nginx_left)
        self.assertEqual({r["status"] for r in counts.values()}, {"ok"}, counts)
        self.assertEqual(set(counted), {"c1", "c10"})
        for label, point in counted.items():
            self.assert_counted_on_hs(point)
        self.assertEqual(counting_cgroups(driver.pid), set())
        self.assertEqual(accepted, {"h1": {"10.215.101.1"}, "h2": {"10.215.102.1"},
                                    "hs": {hostslab.SERVER_HOST_MANAGEMENT[0]}})
        for point in (c1, c10):
            self.assert_server_on_hs(point)
        self.assert_clients_split(c10)  # with hs's peers: ss ran on hs
        self.assertEqual(c1["hosts"]["server_peers"], {hostslab.data_addresses(1)[1]: 1})
        self.assert_nothing_left(lab)

    def assert_server_on_hs(self, point):
        server = point["hosts"]["server"]
        sha256 = sha256_of(BUILD / "bin" / "server-epoll")
        self.assertEqual({k: server.get(k) for k in ("host", "address", "cpus", "binary_sha256", "copied")},
                         {"host": hostslab.SERVER_HOST, "address": hostslab.SERVER_ADDRESS, "cpus": "0",
                          "binary_sha256": sha256, "copied": True}, server)
        self.assertRegex(server["binary"], rf"^/tmp/serverbench-loadgen\.\w+/server-epoll-{sha256[:16]}$")
        # The session reached hs's sshd from the hub's end of the management link.
        fields = server["ssh_connection"].split()
        self.assertEqual([fields[0], fields[2], fields[3]], [*hostslab.SERVER_HOST_MANAGEMENT, "22"], server)
        self.assertIsInstance(server["pid"], int)
        self.assertGreater(server["pid"], 1)
        self.assertGreater(point["server"]["cpu_us_per_request"], 0)
        self.assertIn("sample-server", point["server"]["measured_by"])

    def assert_counted_on_hs(self, point):
        """A counting trial of epoll with its server on hs: counted there in a cgroup, about two
        system calls per request at 10 connections (read and write, and a share of epoll_wait),
        three at one (the wait every time); loadgen, on the clients, not counted."""
        self.assert_server_on_hs(point)
        counts = point["counts"]
        server = counts.get("server") or {}
        self.assertEqual((counts["method"], counts.get("not_counted"), server.get("not_counted")),
                         ("cgroup", None, None), counts)
        self.assertIn("server's ssh session", counts["window"])
        self.assertIsNone(counts["loadgen"])
        self.assertIn("clients", counts["loadgen_not_counted"])
        calls = server["top_syscalls_per_request"]
        self.assertAlmostEqual(calls["read"], 1.0, delta=0.1, msg=counts)
        self.assertAlmostEqual(calls["write"], 1.0, delta=0.1, msg=counts)
        expected = 3.0 if point["config"]["connections"] == 1 else 2.0
        self.assertGreater(server["syscalls_per_request"], expected - 0.3, counts)
        self.assertLess(server["syscalls_per_request"], 3.6, counts)
        for edge in ("enable", "disable"):
            self.assertLess(counts["switch_ms"][edge][1], 0.15 * 1000 * point["config"]["duration_s"], counts)

    def assert_server_file_on_hs(self, results, left):
        """The bundled nginx's timed and counting trials ran on hs (results: {(point, kind): its
        result, or its record if it did not run}): the launcher and the server file copied there
        by hash, hs's own nginx (hs shares the machine's installed programs) started, measured
        and counted there, and none of it left."""
        self.assertEqual(set(results), {("c1", None), ("c10", None), ("c1", "count"), ("c10", "count")}, results)
        for point in results.values():
            self.assertEqual(point.get("model"), "nginx", point)
            server = point["hosts"]["server"]
            self.assertEqual((server["host"], server["copied"]), (hostslab.SERVER_HOST, True), server)
            self.assertRegex(server["binary"], r"/nginx\.toml-[0-9a-f]{16}$")
            self.assertGreater(point["server"]["cpu_us_per_request"], 0)
        for label in ("c1", "c10"):
            counts = results[(label, "count")]["counts"]
            self.assertEqual((counts["method"], counts.get("not_counted")), ("cgroup", None), counts)
            self.assertGreater(counts["server"]["syscalls_per_request"], 1.5, counts)
        self.assertEqual(left, [])

    def test_a_capacity_sweep_from_two_clients_to_the_server_host(self):
        """Every step's rate is split over h1 and h2 (exactly), the server ran on hs, and the sweep
        finds a saturation."""
        with Lab(BUILD, server_host=True) as lab:
            argv = [a if a != "http-keepalive" else "capacity-io-wait" for a in lab.run_all_argv(lab.tmp / "run")]
            run = subprocess.run(argv, capture_output=True, text=True, timeout=400, cwd=ROOT)
            self.assertEqual(run.returncode, 0, run.stderr[-3000:])
            with open(lab.tmp / "run" / "capacity.json") as f:
                record = json.load(f)["records"][0]
            steps = [point_json(lab.tmp / "run", {"file": trial["file"]})
                     for step in record["steps"] for trial in step["trials"]]
            self.assert_run_left_nothing(lab)
        self.assertEqual((record["model"], record["status"]), ("epoll", "ok"), record)
        self.assertGreater(record["saturation_rps"], 0)
        self.assertGreaterEqual(len(steps), 3)
        for step in steps:
            self.assert_server_on_hs(step)
            clients = step["hosts"]["clients"]
            self.assertEqual([(c["host"], c["connections"]) for c in clients], [("h1", 25), ("h2", 25)])
            self.assertAlmostEqual(sum(c["rate"] for c in clients), step["config"]["rate"], places=6)
        self.assert_nothing_left(lab)

    def test_a_server_host_whose_sshd_is_down_fails_the_points(self):
        with Lab(BUILD, server_host=True) as lab:
            lab.server_sshd.stop()
            run = lab.run_all(lab.tmp / "run")
            self.assertEqual(run.returncode, 1, run.stderr[-3000:])
            got = points(lab.tmp / "run")
            self.assert_run_left_nothing(lab)
        timed = [record for (_, kind), record in got.items() if kind is None]
        self.assertTrue(timed)
        for record in timed:
            self.assertEqual(record["status"], "failed", record)
            self.assertIsNone(record["file"])
            self.assertIn(f"server {hostslab.SERVER_HOST}", record["reason"])
            self.assertIn("Connection refused", record["reason"])
        self.assert_nothing_left(lab)

    def test_a_driver_stopped_mid_point_leaves_nothing(self):
        for how in (signal.SIGINT, signal.SIGKILL):
            with self.subTest(signal=how.name), Lab(BUILD, server_host=True) as lab:
                code, stopped = self.stop_driver_mid_point(lab, how)
                self.assertEqual(code, 130 if how == signal.SIGINT else -signal.SIGKILL)
                # Within seconds, with the driver gone: its sessions ended, so the wrappers on hs
                # and on the clients ended the server and the loadgens.
                gone = wait_for(lambda: not lab.lab_processes(SERVER_OR_LOADGEN), 3)
                self.assertTrue(gone, f"left: {commands(lab.lab_processes(SERVER_OR_LOADGEN))}")
                self.assertLess(time.monotonic() - stopped, 3.5)
                # The sessions' other remote sides (the folders' keepers) end too, and remove the folders.
                self.assert_run_left_nothing(lab)
            self.assert_nothing_left(lab)

    def test_a_driver_killed_in_a_counting_trial_leaves_no_cgroup_on_the_server_host(self):
        """SIGKILL while perf counts the server in its cgroup on hs: the driver's sessions end, so
        the wrapper there stops the server and removes its cgroup."""
        with Lab(BUILD, server_host=True) as lab:
            driver = subprocess.Popen(lab.run_all_argv(lab.tmp / "run"), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, start_new_session=True, cwd=ROOT)
            try:
                def counting_on_hs():
                    return [g for g in counting_cgroups(driver.pid) if g.endswith("-server")
                            and (Path(g) / "cgroup.procs").read_text().split()]
                self.assertTrue(wait_for(lambda: driver.poll() is not None or counting_on_hs(), 120)
                                and counting_on_hs(), "no counting trial counted the server on hs")
                driver.kill()
                driver.wait(timeout=30)
            finally:
                if driver.poll() is None:
                    driver.kill()
                    driver.wait()
            self.assertTrue(wait_for(lambda: not counting_cgroups(driver.pid), 10), counting_cgroups(driver.pid))
            self.assert_run_left_nothing(lab)
        self.assert_nothing_left(lab)

    def stop_driver_mid_point(self, lab, how):
        """Sends how to the driver in a point's window; its exit code and when it was sent. The full
        profile's points run 1 + 4 s after go: a server or loadgen that ends within 3 s of the
        signal was ended by its session's end, not by the end of its point."""
        driver = subprocess.Popen(lab.run_all_argv(lab.tmp / "run", "full"), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, start_new_session=True, cwd=ROOT)

        def point_runs():
            return (hostslab.processes_in([lab.lab.server_host_ns], REMOTE_SERVER)
                    and hostslab.processes_in(lab.lab.client_nss, REMOTE_LOADGEN))
        try:
            wait_for(lambda: driver.poll() is not None or point_runs(), 60)
            if driver.poll() is not None:
                self.fail(f"the driver ended ({driver.returncode}) before a point ran: "
                          f"{driver.communicate(timeout=10)[1].decode(errors='replace')[-3000:]}")
            self.assertTrue(point_runs(), "the server runs on hs and a client's loadgen runs")
            server = hostslab.processes_in([lab.lab.server_host_ns], SERVER_ITSELF)
            self.assertEqual([cpus_allowed(pid) for pid in server], ["0"], commands(server))  # taskset -c 0
            time.sleep(1.5)  # past go: the loadgens run their window
            os.kill(driver.pid, how)
            stopped = time.monotonic()
            return driver.wait(timeout=30), stopped
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait()
            driver.stderr.close()


if __name__ == "__main__":
    run_tests()
