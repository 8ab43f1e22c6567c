"""Loss through linkemu: TCP retransmits, the transfer completes intact, the loss is counted."""

import unittest

from network_testlib import PEER, PYTHON, Started, namespaces, run_json, run_tests_as_root


class LossThroughLinkemu(unittest.TestCase):
    def test_transfer_completes_at_5_pct_loss(self):
        size = 1 << 20
        with namespaces.Link("wan", rtt_ms=2, loss_pct=5, emulator="linkemu") as link, \
                Started(link.server_cmd([PYTHON, PEER, "echo-server", link.server_addr])) as server:
            result = run_json(link.client_cmd([PYTHON, PEER, "bulk", link.server_addr, str(server.port), str(size)]),
                              timeout_s=120)
            stats = link.emulator_stats()
        self.assertEqual(result["bytes"], size)  # the peer also compared every byte of the echo
        self.assertGreater(stats["dropped_loss"], 0)
        self.assertGreater(stats["a_to_b"]["dropped_loss"], 0)
        self.assertGreater(stats["b_to_a"]["dropped_loss"], 0)
        # About 5% of what arrived; the bound is loose because a TCP window's worth is a small sample.
        received = stats["a_to_b"]["received"] + stats["b_to_a"]["received"]
        self.assertLess(abs(stats["dropped_loss"] / received - 0.05), 0.02, stats)
        self.assertEqual(link.env()["loss_pct"], 5.0)

    def test_no_loss_configured_drops_nothing(self):
        with namespaces.Link("wan", rtt_ms=0, emulator="linkemu") as link, \
                Started(link.server_cmd([PYTHON, PEER, "echo-server", link.server_addr])) as server:
            run_json(link.client_cmd([PYTHON, PEER, "bulk", link.server_addr, str(server.port), str(1 << 20)]))
            stats = link.emulator_stats()
        self.assertEqual(stats["dropped_loss"], 0)
        self.assertEqual(stats["a_to_b"]["dropped_oversize"] + stats["b_to_a"]["dropped_oversize"], 0)
        self.assertGreater(stats["forwarded"], (1 << 20) * 2 // 1500)


if __name__ == "__main__":
    run_tests_as_root()
