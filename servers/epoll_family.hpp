#pragma once
// What the epoll models (epoll, epoll-reuseport, epoll-pool) share besides the readiness-loop
// connection (core/event_loop.hpp) and the meaning of an epoll_ctl failure
// (core/check_epoll_ctl.hpp): turning a connection's interest into epoll's event bits, and
// the loop of servers/epoll.cpp, which epoll-reuseport runs once per thread (that binary is built
// with epoll.cpp, whose main is left out of it: see servers/CMakeLists.txt).

#include <sys/epoll.h>

#include <cstdint>
#include <functional>

#include "core/check_epoll_ctl.hpp"
#include "core/datagram.hpp"
#include "core/event_loop.hpp"

namespace sb {

// The events epoll_ctl is asked to report for a connection waiting for `interest`.
inline std::uint32_t epoll_events(Interest interest) noexcept {
    return interest == Interest::write ? EPOLLOUT : EPOLLIN;
}

// Serves the listener's connections on the epoll instance epoll_fd until stop_fd is readable and
// stop_requested() agrees. The caller makes the epoll instance before its readiness line, so a
// server that says it is ready has every descriptor its loops will keep (a test counting them
// takes that as its baseline). Defined in servers/epoll.cpp.
void run_epoll_loop(int epoll_fd, Listener& listener, ConnectionTable& connections, int stop_fd,
                    const std::function<bool()>& stop_requested);

// Over UDP: answers the datagrams of socket_fd on the epoll instance epoll_fd, received and answered
// --udp-batch at a time, until stop_fd is readable and stop_requested() agrees. Defined in
// servers/epoll.cpp.
void run_epoll_datagram_loop(int epoll_fd, int socket_fd, Server& server, int stop_fd,
                             const std::function<bool()>& stop_requested);

}  // namespace sb
