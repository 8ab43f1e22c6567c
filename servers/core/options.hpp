#pragma once
// The flags every server model takes (docs/contract.md's table), parsed identically in every binary.

#include <cstdint>
#include <string>

#include "protocol.hpp"

namespace sb {

// What a model tells the shared code about itself.
struct ModelInfo {
    const char* name;         // "epoll": the binary is server-<name>
    const char* summary;      // one line for --help
    int default_workers = 0;  // 0: the model has no workers and ignores --workers
    int default_max_conns = 10000;
    bool reuse_port = false;         // listening sockets are shared with SO_REUSEPORT
    bool batches_datagrams = false;  // its event loop takes --udp-batch; the others ignore it
};

// What the server's socket carries: connections (TCP, or a Unix stream socket), or datagrams
// (UDP, or a Unix datagram socket), each answered by one datagram (core/datagram.hpp).
enum class Transport { tcp, udp };

struct ServerOptions {
    std::string host = "127.0.0.1";
    std::uint16_t port = 8080;
    Protocol protocol = Protocol::http;
    int workers = 0;
    int backlog = 4096;
    int max_conns = 0;
    int idle_timeout_ms = 30000;  // 0: never
    int cpu_us = 0;
    int io_us = 0;
    std::size_t response_bytes = 13;
    std::string unix_path;    // non-empty: listen on this Unix socket instead of TCP
    bool tcp_nodelay = true;  // TCP_NODELAY on accepted TCP sockets
    int inject_cpu_us = 0;    // a test knob: busy CPU per request on top of cpu_us
    Transport transport = Transport::tcp;
    int udp_batch = 1;  // datagrams per recvmmsg/sendmmsg in the event loops; 1: recvfrom/sendto

    ProtocolConfig protocol_config() const;
};

// Parses argv. --help prints the usage and exits 0; a bad flag or value prints one line naming
// it on stderr and exits 2.
ServerOptions parse_server_options(int argc, char** argv, const ModelInfo& model);

// Number of CPUs this process may run on: the default size of event-loop worker sets.
int available_cpus();

}  // namespace sb
