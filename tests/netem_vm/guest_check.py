"""The netem branch of serverbench/namespaces.py, run for real: inside the VM of run_in_vm.py, whose
kernel has netem. Exits non-zero if that kernel turns out to have none (this is no skip: the
VM exists to have it). Prints the figures that show netem did the work.

  guest_check.py BUILD_DIR   (argv[1] is the build tree: linkemu, for the jitter case)
"""

import json
import os
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "network"))

import test_wan  # noqa: E402
from network_testlib import PEER, PYTHON, Started, build_dir, namespaces, run_json  # noqa: E402


def qdisc(ns: str, interface: str) -> str:
    return subprocess.run(namespaces.netns_exec(ns, ["tc", "-s", "qdisc", "show", "dev", interface]),
                          capture_output=True, text=True, check=True).stdout


class NetemForReal(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        has_netem = test_wan.probe_netem()
        print(f"guest kernel {os.uname().release}: netem {'works' if has_netem else 'absent'}", flush=True)
        if not has_netem:
            raise AssertionError("the guest kernel has no netem: nothing here can run")

    def test_rtt_through_netem(self):
        """10 ms RTT: netem (5 ms on each end's egress) on both veth ends, every round trip >= 10 ms."""
        with namespaces.Link("wan", rtt_ms=10, emulator="netem") as link:
            env = link.env()
            with Started(link.server_cmd([PYTHON, PEER, "echo-server", link.server_addr])) as server:
                rtts = run_json(link.client_cmd([PYTHON, PEER, "pingpong", link.server_addr, str(server.port), "30"]))
            shown = qdisc(link.client_ns, link.client_if) + qdisc(link.server_ns, link.server_if)
            stats = link.emulator_stats()
        print(f"netem link: env {json.dumps(env)}\n  pingpong {json.dumps(rtts)}\n  stats {json.dumps(stats)}")
        print("  " + shown.strip().replace("\n", "\n  "))
        self.assertEqual(env["emulator"], "netem")
        self.assertEqual(shown.count("qdisc netem"), 2, shown)
        self.assertIn("delay 5ms", shown)
        self.assertGreaterEqual(rtts["min_us"], 10_000)
        self.assertEqual(stats["emulator"], "netem")
        self.assertGreaterEqual(stats["forwarded"], 2 * 30)  # each round trip crosses both qdiscs
        self.assertEqual(stats["dropped"], 0)

    def test_loss_through_netem(self):
        """20% loss: what netem dropped on the sender's end is exactly what the receiver missed."""
        count = 500
        with namespaces.Link("wan", rtt_ms=2, loss_pct=20, emulator="netem") as link:
            with Started(link.server_cmd([PYTHON, PEER, "udp-sink", link.server_addr, str(count)])) as sink:
                subprocess.run(link.client_cmd([PYTHON, PEER, "udp-send", link.server_addr, str(sink.port), str(count)]),
                               check=True, timeout=60)
                sink.process.wait(timeout=30)
                received = json.loads(sink.stop().strip().splitlines()[-1])["received"]
            stats = link.emulator_stats()
            env = link.env()
        print(f"lossy netem link: env {json.dumps(env)}\n  {received} of {count} datagrams received, stats {json.dumps(stats)}")
        self.assertEqual(env["emulator"], "netem")
        self.assertEqual(env["loss_pct"], 20.0)
        self.assertGreater(stats["dropped"], 0)
        self.assertLess(received, count)
        # The sink's namespace sends nothing back (UDP, permanent neighbours, no IPv6).
        self.assertEqual(received + stats["dropped"], count, stats)
        self.assertLess(abs(stats["dropped"] / count - 0.20), 0.08, stats)  # 500 draws: sd 1.8 points


def suite() -> unittest.TestSuite:
    tests = unittest.defaultTestLoader.loadTestsFromTestCase(NetemForReal)
    # The test of this checkout that checks the netem branch only where the kernel has netem.
    tests.addTest(test_wan.WanThroughLinkemu("test_emulator_choice"))
    return tests


if __name__ == "__main__":
    os.environ["SERVERBENCH_LINKEMU"] = str(build_dir() / "bin" / "linkemu")
    namespaces.require_net_admin()
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite())
    sys.exit(0 if result.wasSuccessful() else 1)
