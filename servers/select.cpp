// select: one thread watches every connection with select(). The kernel forgets the interest set
// on each call, so the loop rebuilds it every turn and then scans every descriptor to find the
// ready ones: the cost per turn grows with the number of connections, not with the active ones.
// And an fd_set holds only descriptors below FD_SETSIZE (1024): a connection whose descriptor is
// at or above it cannot be watched, so it is closed at once and counted. Over UDP the set is the
// one socket and the signal descriptor, rebuilt every turn all the same.

#include <sys/select.h>

#include <algorithm>

#include "core/datagram.hpp"
#include "core/event_loop.hpp"

namespace {

constexpr sb::ModelInfo kModel{
    .name = "select",
    .summary =
        "One thread, non-blocking sockets, select(): O(connections) per call, descriptors < FD_SETSIZE.",
    .default_max_conns = FD_SETSIZE - 24,
    .batches_datagrams = true,
};

int serve_udp(sb::Server& server) {
    sb::DatagramBatch batch(server.options.udp_batch);
    const int socket_fd = server.listener.fd();
    const int signal_fd = server.signals.fd();
    server.announce_ready();

    for (;;) {
        fd_set readable;
        FD_ZERO(&readable);
        FD_SET(socket_fd, &readable);
        FD_SET(signal_fd, &readable);
        if (::select(std::max(socket_fd, signal_fd) + 1, &readable, nullptr, nullptr, nullptr) < 0) continue;

        if (FD_ISSET(signal_fd, &readable) && server.signals.stop_requested()) break;
        if (FD_ISSET(socket_fd, &readable)) sb::answer_waiting_datagrams(socket_fd, batch, server);
    }
    return server.finish();
}

}  // namespace

int main(int argc, char** argv) {
    sb::Server server(argc, argv, kModel, sb::Blocking::no);
    if (server.options.transport == sb::Transport::udp) return serve_udp(server);
    sb::ConnectionLimit limit(server.options.max_conns, server.stats.rejected_at_limit);
    sb::ConnectionTable connections(server, limit, sb::RequestWork::in_loop, FD_SETSIZE);
    const int listen_fd = server.listener.fd();
    const int signal_fd = server.signals.fd();
    server.announce_ready();

    for (;;) {
        const int timeout_ms = connections.close_idle();

        fd_set readable, writable;
        FD_ZERO(&readable);
        FD_ZERO(&writable);
        FD_SET(listen_fd, &readable);
        FD_SET(signal_fd, &readable);
        int max_fd = std::max(listen_fd, signal_fd);
        connections.for_each([&](sb::Connection& c) {
            FD_SET(c.fd(), c.interest() == sb::Interest::write ? &writable : &readable);
            max_fd = std::max(max_fd, c.fd());
        });

        timeval timeout{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        if (::select(max_fd + 1, &readable, &writable, nullptr, timeout_ms < 0 ? nullptr : &timeout) < 0)
            continue;

        if (FD_ISSET(signal_fd, &readable) && server.signals.stop_requested()) break;
        connections.for_each([&](sb::Connection& c) {
            if (FD_ISSET(c.fd(), &readable) || FD_ISSET(c.fd(), &writable)) connections.run(c);
        });
        if (FD_ISSET(listen_fd, &readable)) connections.accept_all(server.listener, [](sb::Connection&) {});
    }
    return server.finish();
}
