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
#include <cstdint>
#include <span>

#include "event_loop.hpp"

namespace sb {

// An epoll instance and the array its events arrive in.
class EpollSet {
public:
    explicit EpollSet(const ModelInfo& model) : fd_(::epoll_create1(EPOLL_CLOEXEC)) {
        if (!fd_) die(model, "epoll_create1");
    }

    // Starts (EPOLL_CTL_ADD) or changes (EPOLL_CTL_MOD) what fd is watched for; `flags` such as
    // EPOLLONESHOT are added to the readiness the interest stands for.
    void watch(int op, int fd, Interest interest, std::uint32_t flags = 0) noexcept {
        epoll_event ev{};
        ev.events = (interest == Interest::write ? EPOLLOUT : EPOLLIN) | flags;
        ev.data.fd = fd;
        ::epoll_ctl(fd_.get(), op, fd, &ev);
    }

    // Waits up to timeout_ms (-1: without end) and returns the events that came.
    std::span<const epoll_event> wait(int timeout_ms) noexcept {
        const int ready = ::epoll_wait(fd_.get(), events_.data(), static_cast<int>(events_.size()), timeout_ms);
        return {events_.data(), static_cast<std::size_t>(ready > 0 ? ready : 0)};
    }

private:
    UniqueFd fd_;
    std::array<epoll_event, 512> events_{};
};

// Serves the listener's connections until stop_fd is readable and stop_requested() agrees. The
// caller makes the epoll set before its readiness line, so a server that says it is ready has
// every descriptor its loops will keep (a test counting them takes that as its baseline).
// A template, so the stop check inlines and the loop costs what it did written out in one model.
template <class StopRequested>
void run_epoll_loop(EpollSet& epoll, Listener& listener, ConnectionTable& connections, int stop_fd,
                    StopRequested&& stop_requested) {
    const int listen_fd = listener.fd();
    epoll.watch(EPOLL_CTL_ADD, listen_fd, Interest::read);
    epoll.watch(EPOLL_CTL_ADD, stop_fd, Interest::read);

    for (;;) {
        for (const epoll_event& event : epoll.wait(connections.close_idle([](int) {}))) {
            const int fd = event.data.fd;
            if (fd == listen_fd) {
                connections.accept_all(listener, [&](Connection& c) { epoll.watch(EPOLL_CTL_ADD, c.fd(), Interest::read); });
            } else if (fd == stop_fd) {
                if (stop_requested()) return;
            } else if (Connection* c = connections.find(fd)) {
                const Interest before = c->interest();
                const Interest after = connections.run(*c);
                if (after != Interest::close && after != before) epoll.watch(EPOLL_CTL_MOD, fd, after);
            }
        }
    }
}

}  // namespace sb
