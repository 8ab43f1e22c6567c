// epoll: one thread, non-blocking sockets, level-triggered epoll. The kernel keeps the interest
// set (epoll_ctl changes it), so a call to epoll_wait costs what the ready connections cost, not
// what the idle ones do. A connection's interest is changed (one epoll_ctl) only when it switches
// between waiting to read and waiting to write, and a closed descriptor leaves the set by itself,
// so closing needs no epoll_ctl either. epoll-reuseport runs this same loop once per thread.
// Over UDP the interest set is the one socket and the stop descriptor, set once.

#include <sys/epoll.h>

#include <array>

#include "epoll_family.hpp"

namespace sb {

void run_epoll_loop(int epoll_fd, Listener& listener, ConnectionTable& connections, int stop_fd,
                    const std::function<bool()>& stop_requested) {
    const int listen_fd = listener.fd();
    for (int fd : {listen_fd, stop_fd}) {  // the loop's own: it cannot run without them
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) die(connections.model(), "epoll_ctl");
    }
    // Adds a connection (EPOLL_CTL_ADD) or changes its interest (EPOLL_CTL_MOD). One the kernel has
    // no room for is closed and counted (check_epoll_ctl).
    auto watch = [&](int op, Connection& c, Interest interest) {
        epoll_event ev{};
        ev.events = epoll_events(interest);
        ev.data.fd = c.fd();
        if (!check_epoll_ctl(::epoll_ctl(epoll_fd, op, c.fd(), &ev), connections.model()))
            connections.close_for_lack_of_resources(c);
    };

    std::array<epoll_event, 512> events;
    for (;;) {
        const int ready = ::epoll_wait(epoll_fd, events.data(), events.size(), connections.close_idle());
        for (int i = 0; i < ready; ++i) {
            const int fd = events[static_cast<std::size_t>(i)].data.fd;
            if (fd == listen_fd) {
                connections.accept_all(listener,
                                       [&](Connection& c) { watch(EPOLL_CTL_ADD, c, Interest::read); });
            } else if (fd == stop_fd) {
                if (stop_requested()) return;
            } else if (Connection* c = connections.find(fd)) {
                const Interest before = c->interest();
                const Interest after = connections.run(*c);
                if (after != Interest::close && after != before) watch(EPOLL_CTL_MOD, *c, after);
            }
        }
    }
}

void run_epoll_datagram_loop(int epoll_fd, int socket_fd, Server& server, int stop_fd,
                             const std::function<bool()>& stop_requested) {
    for (int fd : {socket_fd, stop_fd}) {
        epoll_event ev{};
        ev.events = EPOLLIN;  // level-triggered: what one wake-up leaves is reported at the next
        ev.data.fd = fd;
        if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) die(server.model(), "epoll_ctl");
    }
    DatagramBatch batch(server.options.udp_batch);
    std::array<epoll_event, 2> events;
    for (;;) {
        const int ready = ::epoll_wait(epoll_fd, events.data(), events.size(), -1);
        for (int i = 0; i < ready; ++i) {
            const int fd = events[static_cast<std::size_t>(i)].data.fd;
            if (fd == stop_fd && stop_requested()) return;
            if (fd == socket_fd) answer_waiting_datagrams(socket_fd, batch, server);
        }
    }
}

}  // namespace sb

// epoll-reuseport is built with this file for the loop above, and brings its own main.
#ifndef SERVERBENCH_EPOLL_LOOP_ONLY

namespace {

constexpr sb::ModelInfo kModel{
    .name = "epoll",
    .summary = "One thread, non-blocking sockets, level-triggered epoll.",
    .default_max_conns = 100000,
    .batches_datagrams = true,
};

int serve_udp(sb::Server& server) {
    sb::UniqueFd epoll{::epoll_create1(EPOLL_CLOEXEC)};
    if (!epoll) sb::die(kModel, "epoll_create1");
    server.announce_ready();
    sb::run_epoll_datagram_loop(epoll.get(), server.listener.fd(), server, server.signals.fd(),
                                [&] { return server.signals.stop_requested(); });
    return server.finish();
}

}  // namespace

int main(int argc, char** argv) {
    sb::Server server(argc, argv, kModel, sb::Blocking::no);
    if (server.options.transport == sb::Transport::udp) return serve_udp(server);
    sb::ConnectionLimit limit(server.options.max_conns, server.stats.rejected_at_limit);
    sb::ConnectionTable connections(server, limit);
    sb::UniqueFd epoll{::epoll_create1(EPOLL_CLOEXEC)};
    if (!epoll) sb::die(kModel, "epoll_create1");
    server.announce_ready();

    sb::run_epoll_loop(epoll.get(), server.listener, connections, server.signals.fd(),
                       [&] { return server.signals.stop_requested(); });
    return server.finish();
}

#endif
