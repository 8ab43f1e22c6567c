// poll: one thread watches every connection with poll(). The interest set is an array of pollfd
// rather than a bitmap, so any descriptor can be watched (no FD_SETSIZE limit, unlike select); but
// like select the kernel forgets the set after each call, so the loop passes all of it every turn
// and then scans all of it for the ready entries: the cost per turn still grows with the number of
// connections, not with the active ones. Over UDP the array is the one socket and the signal
// descriptor.

#include <poll.h>

#include <vector>

#include "core/datagram.hpp"
#include "core/event_loop.hpp"

namespace {

constexpr sb::ModelInfo kModel{
    .name = "poll",
    .summary = "One thread, non-blocking sockets, poll(): O(connections) per call, no FD_SETSIZE limit.",
    .default_max_conns = 100000,
    .batches_datagrams = true,
};

int serve_udp(sb::Server& server) {
    sb::DatagramBatch batch(server.options.udp_batch);
    pollfd watched[] = {{server.listener.fd(), POLLIN, 0}, {server.signals.fd(), POLLIN, 0}};
    server.announce_ready();

    for (;;) {
        if (::poll(watched, 2, -1) < 0) continue;
        if (watched[1].revents != 0 && server.signals.stop_requested()) break;
        if (watched[0].revents != 0) sb::answer_waiting_datagrams(watched[0].fd, batch, server);
    }
    return server.finish();
}

}  // namespace

int main(int argc, char** argv) {
    sb::Server server(argc, argv, kModel, sb::Blocking::no);
    if (server.options.transport == sb::Transport::udp) return serve_udp(server);
    sb::ConnectionLimit limit(server.options.max_conns, server.stats.rejected_at_limit);
    sb::ConnectionTable connections(server, limit);
    server.announce_ready();

    std::vector<pollfd> watched;  // reused, so rebuilding it each turn allocates nothing once grown
    for (;;) {
        const int timeout_ms = connections.close_idle();

        // Rebuilt every turn from the connections' interests, as select rebuilds its fd_sets: this
        // copy (and the kernel's copy of it on every call) is the cost that epoll removes.
        watched.clear();
        watched.push_back({server.listener.fd(), POLLIN, 0});
        watched.push_back({server.signals.fd(), POLLIN, 0});
        connections.for_each([&](sb::Connection& c) {
            watched.push_back(
                {c.fd(), static_cast<short>(c.interest() == sb::Interest::write ? POLLOUT : POLLIN), 0});
        });

        if (::poll(watched.data(), watched.size(), timeout_ms) < 0) continue;

        if (watched[1].revents != 0 && server.signals.stop_requested()) break;
        for (std::size_t i = 2; i < watched.size(); ++i) {
            if (watched[i].revents == 0) continue;
            if (sb::Connection* c = connections.find(watched[i].fd)) connections.run(*c);
        }
        // Accepting last: a descriptor closed above cannot be reused by a new connection while
        // entries of this turn still name it.
        if (watched[0].revents != 0) connections.accept_all(server.listener, [](sb::Connection&) {});
    }
    return server.finish();
}
