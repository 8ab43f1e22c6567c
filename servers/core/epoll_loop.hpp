#pragma once
// The epoll model's loop, shared by the models that run it: server-epoll runs one, and
// server-epoll-reuseport one per thread, each on its own listening socket.
//
// Level-triggered epoll on non-blocking sockets. The kernel keeps the interest set, so a call
// costs what the ready connections cost, not what the idle ones do; a connection's interest is
// changed (one epoll_ctl) only when it switches between waiting to read and waiting to write, and
// a closed descriptor leaves the set by itself, so closing needs no epoll_ctl either.

#include <sys/epoll.h>

#include <array>

#include "event_loop.hpp"

namespace sb {

// Starts (EPOLL_CTL_ADD) or changes (EPOLL_CTL_MOD) what epoll watches fd for.
inline void epoll_watch(int epoll_fd, int op, int fd, Interest interest) {
    epoll_event ev{};
    ev.events = interest == Interest::write ? EPOLLOUT : EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_fd, op, fd, &ev);
}

// Serves the listener's connections until stop_fd is readable and stop_requested() agrees.
// A template, so the stop check inlines and the loop costs what it did written out in one model.
template <class StopRequested>
void run_epoll_loop(const ModelInfo& model, Listener& listener, ConnectionTable& connections, int stop_fd,
                    StopRequested&& stop_requested) {
    UniqueFd epoll_fd{::epoll_create1(EPOLL_CLOEXEC)};
    if (!epoll_fd) die(model, "epoll_create1");
    const int listen_fd = listener.fd();
    epoll_watch(epoll_fd.get(), EPOLL_CTL_ADD, listen_fd, Interest::read);
    epoll_watch(epoll_fd.get(), EPOLL_CTL_ADD, stop_fd, Interest::read);

    std::array<epoll_event, 512> events;
    for (;;) {
        const int timeout_ms = connections.close_idle([](int) {});
        const int ready = ::epoll_wait(epoll_fd.get(), events.data(), events.size(), timeout_ms);
        for (int i = 0; i < ready; ++i) {
            const int fd = events[i].data.fd;
            if (fd == listen_fd) {
                connections.accept_all(listener, [&](Connection& c) {
                    epoll_watch(epoll_fd.get(), EPOLL_CTL_ADD, c.fd(), Interest::read);
                });
            } else if (fd == stop_fd) {
                if (stop_requested()) return;
            } else if (Connection* c = connections.find(fd)) {
                const Interest before = c->interest();
                const Interest after = connections.run(*c);
                if (after != Interest::close && after != before) epoll_watch(epoll_fd.get(), EPOLL_CTL_MOD, fd, after);
            }
        }
    }
}

}  // namespace sb
