"""Over a veth link, a UDP server offered twice what it answers loses datagrams, and loadgen's
account of the loss is the kernel's: the datagrams it counts lost match the drops the kernel
counted in the server's namespace (its socket's full receive queue) within 5%, and none were
dropped on loadgen's sockets or in a CPU's backlog. The server is epoll slowed by --cpu-us 20: a
single loop, so its capacity is its handler's."""

import re
import unittest

from network_testlib import Started, build_dir, namespaces, run_json, run_tests_as_root


class UdpLossOverVeth(unittest.TestCase):
    def test_the_datagrams_lost_are_the_drops_the_kernel_counted_at_the_server(self):
        binaries = build_dir() / "bin"
        with namespaces.Link("veth") as link, \
                Started(link.server_cmd([str(binaries / "server-epoll"), "--transport", "udp", "--cpu-us", "20",
                                         "--host", link.server_addr, "--port", "0"])) as server:
            pid = re.search(r"pid=(\d+)", server.line).group(1)
            load = [str(binaries / "loadgen"), "--transport", "udp", "--host", link.server_addr,
                    "--port", str(server.port), "--connections", "50", "--server-pid", pid, "--quiet"]
            capacity = run_json(link.client_cmd([*load, "--duration", "1s"]))["totals"]["throughput_rps"]
            self.assertGreater(capacity, 1000)
            result = run_json(link.client_cmd([*load, "--duration", "2s", "--rate", str(int(2 * capacity))]))
        d = result["datagrams"]
        drops = d["kernel_drops"]
        self.assertFalse(drops["one_namespace"])
        server_side, loadgen_side = drops["server_namespace"], drops["loadgen_namespace"]
        self.assertGreater(d["lost"], 0.2 * d["sent"], "twice the capacity offered: about half is lost")
        self.assertAlmostEqual(server_side["server_socket_drops"], d["lost"], delta=0.05 * d["lost"])
        # The two files are read one after the other while datagrams still arrive, so a few drops
        # can fall between the reads at either edge of the window.
        self.assertAlmostEqual(server_side["udp_rcvbuf_errors"], server_side["server_socket_drops"],
                               delta=max(10, 0.001 * server_side["server_socket_drops"]))
        self.assertEqual(loadgen_side["loadgen_socket_drops"], 0)
        self.assertEqual(loadgen_side["udp_rcvbuf_errors"], 0)
        self.assertEqual(loadgen_side["softnet_drops"], 0)
        self.assertEqual(d["late"] + d["duplicates"] + d["wrong"], 0)


if __name__ == "__main__":
    run_tests_as_root()
