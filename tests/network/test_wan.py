"""Link('wan') through linkemu: real RTT, jitter without reordering."""

import json
import os
import subprocess
import unittest

from network_testlib import PEER, PYTHON, Started, build_dir, namespaces, run_json, run_tests_as_root


class WanThroughLinkemu(unittest.TestCase):
    def test_one_keepalive_connection_at_10ms_rtt(self):
        """1 connection at 10 ms RTT cannot exceed 100 req/s, and its p50 is at least 10 ms.

        Both are physics and hold on every attempt. The floor of 80 req/s says the emulator adds
        little; a machine shared with other work can push one 2-second attempt under it (the
        server and loadgen wait for a CPU), so the floor gets up to three attempts."""
        rates = []
        for _ in range(3):
            result, stats = self.one_connection_through_linkemu()
            rps, p50 = result["totals"]["throughput_rps"], result["latency_us"]["p50"]
            print(f"1 connection at 10 ms RTT: {rps} req/s, p50 {p50} us, linkemu late {stats['late']}")
            self.assertLessEqual(rps, 100.0)
            self.assertGreaterEqual(p50, 10_000)
            self.assertEqual(sum(result["totals"]["errors"].values()), 0)
            # Each request crosses the emulator at least once each way.
            self.assertGreaterEqual(stats["a_to_b"]["forwarded"], result["totals"]["requests"])
            self.assertGreaterEqual(stats["b_to_a"]["forwarded"], result["totals"]["requests"])
            rates.append(rps)
            if rps >= 80.0:
                return
        self.fail(f"1 connection at 10 ms RTT under 80 req/s in every attempt: {rates}")

    def one_connection_through_linkemu(self) -> tuple[dict, dict]:
        binaries = build_dir() / "bin"
        with namespaces.Link("wan", rtt_ms=10, emulator="linkemu") as link:
            self.assertEqual(link.emulator, "linkemu")
            self.assertEqual(link.env()["rtt_ms"], 10.0)
            server_argv = link.server_cmd([str(binaries / "server-epoll"), "--host", link.server_addr, "--port", "0"])
            with Started(server_argv) as server:
                result = run_json(link.client_cmd([
                    str(binaries / "loadgen"), "--host", link.server_addr, "--port", str(server.port),
                    "--connections", "1", "--duration", "2s", "--quiet"]))
            return result, link.emulator_stats()

    def test_jitter_keeps_frame_order(self):
        """Uniform jitter of +-4 ms on frames 100 us apart would reorder most of them if it could."""
        with namespaces.Link("wan", rtt_ms=10, jitter_ms=4) as link:
            self.assertEqual(link.emulator, "linkemu")
            with Started(link.server_cmd([PYTHON, PEER, "udp-sink", link.server_addr, "500"])) as sink:
                subprocess.run(link.client_cmd([PYTHON, PEER, "udp-send", link.server_addr, str(sink.port), "500"]),
                               check=True, timeout=30)
                sink.process.wait(timeout=15)
                report = sink.stop()
            with Started(link.server_cmd([PYTHON, PEER, "echo-server", link.server_addr])) as server:
                rtts = run_json(link.client_cmd([PYTHON, PEER, "pingpong", link.server_addr, str(server.port), "40"]))
            stats = link.emulator_stats()
        # The jitter is there: round trips spread over milliseconds (the sum of four +-4 ms samples).
        self.assertGreater(rtts["max_us"] - rtts["min_us"], 2000, rtts)
        counts = json.loads(report.strip().splitlines()[-1])
        self.assertEqual(counts["received"], 500)
        self.assertEqual(counts["out_of_order"], 0)
        self.assertEqual(stats["jitter_ms"], 4.0)

    def test_emulator_choice(self):
        """auto takes netem where the kernel has it (not with jitter: netem reorders), else linkemu;
        netem asked for on a kernel without it is an error that leaves nothing behind."""
        has_netem = probe_netem()
        with namespaces.Link("wan", rtt_ms=4) as link:
            self.assertEqual(link.emulator, "netem" if has_netem else "linkemu")
            with Started(link.server_cmd([PYTHON, PEER, "echo-server", link.server_addr])) as server:
                rtts = run_json(link.client_cmd([PYTHON, PEER, "pingpong", link.server_addr, str(server.port), "20"]))
            self.assertGreaterEqual(rtts["min_us"], 4000)
        with namespaces.Link("wan", rtt_ms=4, jitter_ms=1) as link:
            self.assertEqual(link.emulator, "linkemu")
            self.assertTrue(link.env()["jitter_keeps_order"])
        if has_netem:
            with namespaces.Link("wan", rtt_ms=4, emulator="netem") as link:
                self.assertEqual(link.emulator_stats()["emulator"], "netem")
        else:
            link = namespaces.Link("wan", rtt_ms=4, emulator="netem")
            with self.assertRaisesRegex(namespaces.NamespaceError, "no netem"):
                link.open()
            left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
            self.assertNotIn(link.name, left)

    def test_stats_after_close_are_kept(self):
        with namespaces.Link("wan", rtt_ms=0, emulator="linkemu") as link:
            live = link.emulator_stats()
            self.assertEqual(live["schema"], "serverbench.linkemu/1")
        self.assertIsNotNone(link.final_stats)
        self.assertGreater(link.final_stats["seq"], live["seq"])
        self.assertEqual(link.emulator_stats()["seq"], link.final_stats["seq"])

    def test_an_emulator_that_died_is_an_error(self):
        with namespaces.Link("wan", rtt_ms=0, emulator="linkemu") as link:
            link._process.kill()
            link._process.wait()
            with self.assertRaisesRegex(namespaces.NamespaceError, "linkemu exited"):
                link.emulator_stats()


def probe_netem() -> bool:
    """Whether tc can add netem, asked in a namespace of the test's own."""
    ns = f"sb{os.getpid()}x999-probe"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        return subprocess.run(namespaces.netns_exec(ns, ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]),
                              capture_output=True).returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)


if __name__ == "__main__":
    run_tests_as_root()
