"""The hosts file (hosts_file.py), the splits (client_runs.py) and the remote wrapper (remote_server.py); runs anywhere
(no root, no ssh): the wrapper is run here with sh, as sshd would run it."""

import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

from serverbench_path import ROOT
from serverbench import client_runs, hosts_file, remote_server, ssh_session, trial
from serverbench.settings import HostsSettings

BUILD = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "build"


class HostsFile(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "hosts")

    def tearDown(self):
        self.dir.cleanup()

    def parse(self, text):
        with open(self.path, "w") as f:
            f.write(text)
        return hosts_file.parse_hosts_file(self.path)

    def test_a_good_file(self):
        open(os.path.join(self.dir.name, "cfg"), "w").close()
        plan = self.parse("# comment\nssh-config cfg\n\nserver local address=10.0.0.1  # trailing\n"
                          "client bench@c1.example.net cpus=0-3,6 threads=2\n"
                          "client c2 address=10.0.1.1 loadgen=/opt/loadgen\nclient local\n")
        clients = plan.clients
        self.assertEqual(plan.server, hosts_file.Server("local", address="10.0.0.1", ssh_config=clients[0].ssh_config))
        self.assertFalse(hosts_file.is_remote(plan.server))
        self.assertEqual([c.host for c in clients], ["bench@c1.example.net", "c2", "local"])
        self.assertEqual([c.address for c in clients], ["10.0.0.1", "10.0.1.1", "10.0.0.1"])
        self.assertEqual((clients[0].cpus, clients[0].threads, clients[1].loadgen), ("0-3,6", 2, "/opt/loadgen"))
        self.assertEqual(clients[0].ssh_config, os.path.join(self.dir.name, "cfg"))
        self.assertTrue(clients[2].local)
        kept = HostsSettings.from_json(json.loads(json.dumps(HostsSettings.of(self.path, plan).to_json())))
        self.assertEqual(kept.clients, clients)
        self.assertEqual(kept.server, plan.server)
        self.assertIsNone(HostsSettings.from_json(None))
        # A run folder written when the server could only be local says "server": "local".
        self.assertEqual(HostsSettings.from_json({"server": "local", "clients": []}).server, hosts_file.Server())

    def test_a_remote_server(self):
        plan = self.parse("server bench@srv1 address=10.0.0.1 cpus=2-3 bin=/opt/sb/bin loadgen=/opt/sb/loadgen\n"
                          "client c1\n")
        self.assertEqual(plan.server, hosts_file.Server("bench@srv1", address="10.0.0.1", cpus="2-3", bin="/opt/sb/bin",
                                                   loadgen="/opt/sb/loadgen"))
        self.assertTrue(hosts_file.is_remote(plan.server))
        self.assertEqual(plan.clients[0].address, "10.0.0.1")
        self.assertEqual(self.parse("server srv1\nclient c1\n").server, hosts_file.Server("srv1"))

    def test_bad_files_say_why_in_one_line(self):
        cases = {"client c1\n": "no 'server HOST' line",
                 "server local\n": "no 'client HOST' line",
                 "server local\nserver local\nclient a\n": "a second 'server' line",
                 "server local cpus=1\nclient a\n": "are for a server on another host",
                 "server s bin=opt/bin\nclient a\n": "bin=opt/bin must be an absolute path",
                 "server s threads=2\nclient a\n": "unknown option 'threads=2'",
                 "server local\nclient -oProxyCommand=x\n": "is not an ssh destination",
                 "server local\nclient a cpus=x\n": "cpus=x is not a CPU list",
                 "server local\nclient a threads=0\n": "threads=0 is not a positive integer",
                 "server local address=10.0.0\nclient a\n": "is not an IPv4 address",
                 "server local\nclient a colour=red\n": "unknown option 'colour=red'",
                 "server local\nclient a loadgen=bin/loadgen\n": "must be an absolute path",
                 "server local\nclients a\n": "unknown line 'clients'",
                 "ssh-config nowhere\nserver local\nclient a\n": "no such file",
                 "server\nclient a\n": "expected 'server HOST'"}
        for text, message in cases.items():
            with self.subTest(text=text):
                with self.assertRaises(hosts_file.HostsFileError) as raised:
                    self.parse(text)
                self.assertIn(message, str(raised.exception))
                self.assertNotIn("\n", str(raised.exception))

    def test_run_all_exits_2_with_one_line(self):
        with open(self.path, "w") as f:
            f.write("server far.example.net threads=2\nclient a\n")
        for argv in (["--hosts", self.path], ["--hosts", self.path + ".missing"]):
            run = subprocess.run([str(ROOT / "run_all.sh"), *argv, "--no-build", "--build-dir", str(BUILD)],
                                 capture_output=True, text=True, timeout=60, cwd=ROOT)
            self.assertEqual(run.returncode, 2)
            self.assertEqual(len(run.stderr.strip().splitlines()), 1, run.stderr)
            self.assertIn("--hosts", run.stderr)


class Ssh(unittest.TestCase):
    def test_openssh_in_batch_mode_through_the_run_s_master(self):
        with tempfile.TemporaryDirectory() as folder:
            client = hosts_file.Client("bench@c1", ssh_config=f"{folder}/cfg")
            session = ssh_session.HostSession(None, client, folder, folder)
            argv = session.ssh("true")
            master = session.ssh("true", master=True)
        self.assertEqual(argv[0], "ssh")
        self.assertEqual(argv[-3:], ["--", "bench@c1", "true"])  # no destination read as an option
        options = " ".join(argv)
        for option in ("-T", "-o BatchMode=yes", "-o ControlMaster=no", f"-o ControlPath={session.control}",
                       "-o ControlPersist=no", f"-F {folder}/cfg"):
            self.assertIn(option, options)
        self.assertIn("-o ControlMaster=yes", " ".join(master))

    def test_remote_commands_are_quoted_for_any_login_shell(self):
        line = ssh_session.sh_command("echo \"$1\"", "a b; rm -rf /", "'x'")
        out = subprocess.run(["bash", "-c", line], capture_output=True, text=True, check=True).stdout
        self.assertEqual(out, "a b; rm -rf /\n")


class Splits(unittest.TestCase):
    def test_connections(self):
        self.assertEqual(client_runs.split_connections(10, 2), [5, 5])
        self.assertEqual(client_runs.split_connections(10, 3), [4, 3, 3])
        self.assertEqual(client_runs.split_connections(1, 3), [1])
        self.assertEqual(client_runs.split_connections(2, 3), [1, 1])
        for total in range(1, 40):
            for clients in range(1, 6):
                shares = client_runs.split_connections(total, clients)
                self.assertEqual(sum(shares), total)
                self.assertGreaterEqual(min(shares), 1)
                self.assertLessEqual(max(shares) - min(shares), 1)

    def test_rate_follows_the_connections(self):
        self.assertEqual(client_runs.split_rate(500, [5, 5]), [250, 250])
        self.assertEqual(client_runs.split_rate(1000, [4, 3, 3]), [400, 300, 300])
        self.assertEqual(client_runs.split_rate(10, [1, 1, 1]), [4, 3, 3])
        self.assertEqual(sum(client_runs.split_rate(20001, [4, 3, 3])), 20001)
        self.assertAlmostEqual(sum(client_runs.split_rate(10.5, [1, 2])), 10.5)

    def test_flags(self):
        flags = ("--protocol", "http", "--rate", "500")
        self.assertEqual(trial.flag_value(flags, "--rate"), "500")
        self.assertIsNone(trial.flag_value(flags, "--mode"))
        self.assertEqual(trial.without_flag(flags, "--rate"), ["--protocol", "http"])


class Wrapper(unittest.TestCase):
    """RUN_SCRIPT, the sh wrapper of every client's loadgen: here around a stand-in that prints
    `connected 3`, waits for a line, and writes a JSON file."""

    STAND_IN = ("import sys, time\nprint('connected 3', flush=True)\nline = sys.stdin.readline()\n"
                "if line.strip() != 'go':\n    sys.exit(3)\ntime.sleep(float(sys.argv[2]))\n"
                "open(sys.argv[1], 'w').write('{\"ok\": true}')\n")

    def start(self, folder, sleep_s):
        argv = ["sh", "-c", ssh_session.RUN_SCRIPT, "sh", f"{folder}/t.go", f"{folder}/t.json",
                sys.executable, "-c", self.STAND_IN, f"{folder}/t.json", str(sleep_s)]
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    @staticmethod
    def close(proc):
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            pipe.close()

    def test_go_then_exit_code_and_result(self):
        with tempfile.TemporaryDirectory() as folder:
            proc = self.start(folder, 0.1)
            self.assertEqual(proc.stdout.readline(), b"connected 3\n")
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
            out = proc.stdout.read()  # stdin stays open, as the driver keeps it until the result is in
            proc.wait(timeout=20)
            self.close(proc)
            self.assertEqual(out, b'exit 0\n{"ok": true}')
            self.assertEqual(proc.returncode, 0)
            self.assertEqual(os.listdir(folder), [])

    def test_stdin_ending_ends_the_loadgen(self):
        with tempfile.TemporaryDirectory() as folder:
            proc = self.start(folder, 60)
            self.assertEqual(proc.stdout.readline(), b"connected 3\n")
            proc.stdin.write(b"go\n")
            proc.stdin.flush()
            time.sleep(0.3)
            started = time.monotonic()
            proc.stdin.close()  # what a lost ssh session does to it
            out = proc.stdout.read()
            proc.wait(timeout=20)
            self.close(proc)
            self.assertLess(time.monotonic() - started, 10)
            self.assertTrue(out.startswith(b"exit "), out)
            self.assertNotEqual(proc.returncode, 0)


class ServerWrapper(unittest.TestCase):
    """SERVER_SCRIPT with its plain steps, the sh wrapper of a server on another host: here around
    a stand-in server that forks a child (as the fork models do), prints a readiness line and
    waits for SIGTERM."""

    # SIGTERM is blocked and then awaited with sigwait: a Python handler can miss a signal that
    # lands between its last check and the sleep's system call. The child keeps it blocked, so
    # it outlives a SIGTERM as a fork model's child may.
    STAND_IN = ("import os, signal, sys, time\n"
                "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})\n"
                "child = os.fork()\n"
                "if child == 0:\n    time.sleep(600)\n    os._exit(0)\n"
                "print(f'port=1234 pid={os.getpid()} model=stand-in child={child}', flush=True)\n"
                "signal.sigwait({signal.SIGTERM})\n"
                "sys.exit(int(sys.argv[1]))\n")

    def run_wrapper(self, code):
        proc = subprocess.Popen(["sh", "-c", remote_server.PLAIN_STEPS + remote_server.SERVER_SCRIPT, "sh", sys.executable,
                                 "-c", self.STAND_IN, str(code)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            ready = proc.stdout.readline().decode()
            pid, child = (int(w.split("=")[1]) for w in ready.split() if w.startswith(("pid=", "child=")))
            self.assertEqual(os.getpgid(pid), pid, "the server leads a process group of its own")
            proc.stdin.close()  # what the driver, or a lost ssh session, does
            # Bounded: a child left holding the pipe would keep it open.
            out = ssh_session.read_until_eof(proc.stdout, time.monotonic() + 10)
            proc.wait(timeout=10)
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
        return pid, child, out, proc.returncode

    def test_stdin_ending_stops_the_server_and_its_children(self):
        for code in (0, 5):
            with self.subTest(code=code):
                pid, child, out, returncode = self.run_wrapper(code)
                self.assertEqual(out, f"exit {code}\n".encode())
                self.assertEqual(returncode, code)
                deadline = time.monotonic() + 5
                while any(os.path.exists(f"/proc/{p}") for p in (pid, child)) and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.assertFalse(os.path.exists(f"/proc/{child}"), "the server's child outlived it")


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1], verbosity=2)
