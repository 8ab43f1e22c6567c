// epoll: one thread, non-blocking sockets. The kernel keeps the interest set, so a call costs
// what the ready connections cost, not what the idle ones do; the interest of a connection is
// changed (one epoll_ctl) only when it switches between waiting to read and waiting to write.

#include <sys/epoll.h>

#include <array>

#include "core/event_loop.hpp"

namespace {

constexpr sb::ModelInfo kModel{
    .name = "epoll",
    .summary = "One thread, non-blocking sockets, level-triggered epoll.",
    .default_max_conns = 100000,
};

void watch(int epoll_fd, int op, int fd, sb::Interest interest) {
    epoll_event ev{};
    ev.events = interest == sb::Interest::write ? EPOLLOUT : EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_fd, op, fd, &ev);
}

}  // namespace

int main(int argc, char** argv) {
    sb::Server server(argc, argv, kModel, sb::Blocking::no);
    sb::ConnectionTable connections(server);
    sb::UniqueFd epoll_fd{::epoll_create1(EPOLL_CLOEXEC)};
    if (!epoll_fd) sb::die(kModel, "epoll_create1");
    const int listen_fd = server.listener.fd();
    const int signal_fd = server.signals.fd();
    watch(epoll_fd.get(), EPOLL_CTL_ADD, listen_fd, sb::Interest::read);
    watch(epoll_fd.get(), EPOLL_CTL_ADD, signal_fd, sb::Interest::read);
    server.announce_ready();

    std::array<epoll_event, 512> events;
    for (;;) {
        // A closed descriptor leaves the epoll set by itself: idle connections need no epoll_ctl.
        const int timeout_ms = connections.close_idle([](int) {});
        const int ready = ::epoll_wait(epoll_fd.get(), events.data(), events.size(), timeout_ms);
        for (int i = 0; i < ready; ++i) {
            const int fd = events[i].data.fd;
            if (fd == listen_fd) {
                connections.accept_all(server.listener, [&](sb::Connection& c) {
                    watch(epoll_fd.get(), EPOLL_CTL_ADD, c.fd(), sb::Interest::read);
                });
            } else if (fd == signal_fd) {
                if (server.signals.stop_requested()) return server.finish();
            } else if (sb::Connection* c = connections.find(fd)) {
                const sb::Interest before = c->interest();
                const sb::Interest after = connections.run(*c);
                if (after != sb::Interest::close && after != before) watch(epoll_fd.get(), EPOLL_CTL_MOD, fd, after);
            }
        }
    }
}
