"""Link('veth'): TCP between the two namespaces works, MTU 1500 on both ends, offloads off."""

import subprocess
import unittest

from network_testlib import PEER, PYTHON, Started, namespaces, run_json, run_tests_as_root


class VethLink(unittest.TestCase):
    def test_ping_pong_between_namespaces(self):
        with namespaces.Link("veth") as link, \
                Started(link.server_cmd([PYTHON, PEER, "echo-server", link.server_addr])) as server:
            result = run_json(link.client_cmd([PYTHON, PEER, "pingpong", link.server_addr, str(server.port), "50"]))
            self.assertEqual(result["count"], 50)
            self.assertEqual(link.emulator, "none")
            self.assertEqual(link.env(), {"kind": "veth", "rtt_ms": 0.0, "loss_pct": 0.0, "jitter_ms": 0.0,
                                          "mtu": 1500, "emulator": "none", "offloads": "off",
                                          "jitter_keeps_order": True})

    def test_mtu_and_offloads_on_both_ends(self):
        with namespaces.Link("veth") as link:
            for ns, interface in ((link.server_ns, link.server_if), (link.client_ns, link.client_if)):
                mtu = subprocess.run(namespaces.netns_exec(ns, ["cat", f"/sys/class/net/{interface}/mtu"]),
                                     capture_output=True, text=True, check=True).stdout
                self.assertEqual(mtu.strip(), "1500")
                features = subprocess.run(namespaces.netns_exec(ns, ["ethtool", "-k", interface]),
                                          capture_output=True, text=True, check=True).stdout
                for feature in ("tx-checksumming", "tcp-segmentation-offload", "generic-receive-offload"):
                    self.assertIn(f"{feature}: off", features)

    def test_the_server_address_is_only_in_the_server_namespace(self):
        with namespaces.Link("veth") as link:
            def addresses(ns):
                return subprocess.run(["ip", "-n", ns, "-o", "-4", "addr", "show"], capture_output=True,
                                      text=True, check=True).stdout
            self.assertIn(f"{link.server_addr}/30", addresses(link.server_ns))
            self.assertIn(f"{link.client_addr}/30", addresses(link.client_ns))
            root = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
            self.assertNotIn(link.server_addr + "/", root)

    def test_bad_arguments(self):
        with self.assertRaises(ValueError):
            namespaces.Link("veth", rtt_ms=10)
        with self.assertRaises(ValueError):
            namespaces.Link("fibre")
        with self.assertRaises(ValueError):
            namespaces.Link("wan", loss_pct=150)


if __name__ == "__main__":
    run_tests_as_root()
