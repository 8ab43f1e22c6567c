#pragma once
// The kernel's own account of where UDP datagrams were dropped, read before and after a window:
// a network namespace's UDP counters (net/snmp), the drops of each socket (net/udp), split into
// the server's sockets (bound to the target port) and loadgen's (connected to it), and the per-CPU
// backlog drops (/proc/net/softnet_stat, the machine's). net/snmp counts per namespace: with the
// server on loopback, loadgen's own drops are in it too, and net/udp tells them apart; with the
// server in a namespace of its own (--net veth), /proc/PID/net is that namespace's view.

#include <cstdint>
#include <string>

namespace loadgen {

struct UdpKernelCounters {
    std::uint64_t in_errors = 0;          // Udp: InErrors
    std::uint64_t rcvbuf_errors = 0;      // Udp: RcvbufErrors (a full receive buffer)
    std::uint64_t sndbuf_errors = 0;      // Udp: SndbufErrors
    std::uint64_t server_socket_drops = 0;   // sockets bound to the port
    std::uint64_t loadgen_socket_drops = 0;  // sockets connected to the port
    std::uint64_t softnet_drops = 0;      // every CPU's backlog

    UdpKernelCounters operator-(const UdpKernelCounters& before) const;
};

// Reads the counters for the UDP port `port` from a namespace's net folder ("/proc/self/net",
// "/proc/PID/net"; tests pass their own files).
UdpKernelCounters read_udp_counters(std::uint16_t port, const std::string& net_dir = "/proc/self/net",
                                    const std::string& softnet = "/proc/net/softnet_stat");

// Both sides' namespaces: the server's (through --server-pid's /proc/PID/net) and loadgen's own;
// the same namespace read twice when the server shares it, or without --server-pid.
struct UdpDrops {
    UdpKernelCounters server_namespace, loadgen_namespace;
    bool one_namespace = true;
    UdpDrops operator-(const UdpDrops& before) const;
};
UdpDrops read_udp_drops(std::uint16_t port, int server_pid);

// SO_RCVBUF and SO_SNDBUF of a socket, in bytes as the kernel reports them (twice what was set).
struct SocketBuffers {
    int rcvbuf = 0, sndbuf = 0;
};
SocketBuffers socket_buffers(int fd);
// Those of a fresh UDP socket: what loadgen's flows and a server that sets none get (getsockopt's
// figures, twice net.core.rmem_default and wmem_default: the kernel's bookkeeping share).
SocketBuffers default_udp_buffers();

}  // namespace loadgen
