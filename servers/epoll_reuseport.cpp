// epoll with SO_REUSEPORT: --workers threads, each with its own listening socket bound to the same
// port and its own epoll loop over its own connections (the "one loop per core" design of nginx,
// muduo and Seastar). The kernel spreads new connections over the sockets by a hash of their
// addresses, so the loops share nothing on the hot path: no lock, no shared queue, no thundering
// herd. The price: a connection stays on the loop it landed on, so an unlucky hash leaves one core
// busier than another, and --max-conns is the one thing the loops must count together. Over UDP
// each loop has its own SO_REUSEPORT datagram socket, and the kernel spreads datagrams over them by
// a hash of their source: a client's datagrams all go to one loop.

#include <poll.h>
#include <sys/eventfd.h>

#include <memory>
#include <system_error>
#include <thread>
#include <vector>

#include "epoll_family.hpp"

namespace {

const sb::ModelInfo kModel{
    .name = "epoll-reuseport",
    .summary =
        "--workers threads, each with its own SO_REUSEPORT listening socket and epoll loop "
        "(one loop over a Unix datagram socket).",
    .default_workers = sb::available_cpus(),
    .default_max_conns = 100000,
    .reuse_port = true,
    .batches_datagrams = true,
};

}  // namespace

int main(int argc, char** argv) {
    sb::Server server(argc, argv, kModel, sb::Blocking::no);
    // One --max-conns for all the loops.
    sb::ConnectionLimit limit(server.options.max_conns, server.stats.rejected_at_limit);
    // How main tells every loop to stop: written once, never read, so it stays readable and wakes
    // each loop's epoll (level-triggered). A signalfd could not do this: the one loop that read the
    // signal would consume it, and the others would never learn of it.
    sb::UniqueFd stop{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
    if (!stop) sb::die(kModel, "eventfd");

    // A Unix socket's path cannot be bound twice (SO_REUSEPORT is for TCP and UDP): over --unix every
    // loop watches the one stream socket, and whichever loop wakes first accepts; a Unix datagram
    // socket is served by one loop, since each datagram would wake them all for one to take it.
    const bool udp = server.options.transport == sb::Transport::udp;
    const bool unix_socket = !server.listener.unix_path().empty();
    const int loop_count = udp && unix_socket ? 1 : server.options.workers;

    std::vector<std::jthread> loops;
    for (int i = 0; i < loop_count; ++i) {
        // The first loop takes the Server's socket (port 0 resolved to a real port); the others
        // bind that port again. A socket is created only for a loop that will serve it: the kernel
        // would hash connections (or datagrams) to a socket nobody serves. Each loop's descriptors
        // are made here, not in its thread, so that all of them exist by the readiness line.
        std::unique_ptr<sb::Listener> own;
        if (i > 0 && !unix_socket) {
            own = std::make_unique<sb::Listener>(server.options, kModel, server.stats, sb::Blocking::no,
                                                 server.listener.port());
        }
        sb::UniqueFd epoll{::epoll_create1(EPOLL_CLOEXEC)};
        if (!epoll) sb::die(kModel, "epoll_create1");
        try {
            loops.emplace_back([&server, &limit, &stop, udp, own = std::move(own), epoll = std::move(epoll)] {
                sb::Listener& socket = own ? *own : server.listener;
                if (udp) {
                    sb::run_epoll_datagram_loop(epoll.get(), socket.fd(), server, stop.get(),
                                                [] { return true; });
                    return;
                }
                sb::ConnectionTable connections(server, limit);
                sb::run_epoll_loop(epoll.get(), socket, connections, stop.get(), [] { return true; });
            });
        } catch (const std::system_error&) {
            break;  // out of threads: serve with the loops that started (their sockets only)
        }
    }
    if (loops.empty()) sb::die(kModel, "starting loop threads");
    server.announce_ready();

    pollfd signals{server.signals.fd(), POLLIN, 0};
    while (!server.signals.stop_requested()) ::poll(&signals, 1, -1);
    const std::uint64_t one = 1;
    if (::write(stop.get(), &one, sizeof one) < 0) sb::die(kModel, "write eventfd");
    loops.clear();  // joins each loop, which closes its connections on the way out
    return server.finish();
}
