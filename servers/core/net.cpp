#include "net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace sb {

[[noreturn]] void die(const ModelInfo& model, const char* what) {
    std::fprintf(stderr, "server-%s: %s: %s\n", model.name, what, std::strerror(errno));
    std::exit(1);
}

Listener::Listener(const ServerOptions& options, const ModelInfo& model, ServerStats& stats, Blocking mode,
                   std::uint16_t port)
    : stats_(&stats) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (inet_pton(AF_INET, options.host.c_str(), &addr.sin_addr) != 1) {
        std::fprintf(stderr, "server-%s: invalid value for --host: '%s' (expected an IPv4 address)\n",
                     model.name, options.host.c_str());
        std::exit(2);
    }
    int type = SOCK_STREAM | SOCK_CLOEXEC | (mode == Blocking::no ? SOCK_NONBLOCK : 0);
    fd_.reset(::socket(AF_INET, type, 0));
    if (!fd_) die(model, "socket");
    int one = 1;
    if (::setsockopt(fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
        die(model, "setsockopt SO_REUSEADDR");
    if (model.reuse_port && ::setsockopt(fd_.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        die(model, "setsockopt SO_REUSEPORT");
    }
    if (::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        char what[96];
        std::snprintf(what, sizeof what, "bind %s:%u", options.host.c_str(), unsigned{port});
        die(model, what);
    }
    if (::listen(fd_.get(), options.backlog) != 0) die(model, "listen");
    socklen_t len = sizeof addr;
    if (::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) die(model, "getsockname");
    port_ = ntohs(addr.sin_port);
    reserve_fd_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
}

UniqueFd Listener::accept(Blocking mode) {
    int flags = SOCK_CLOEXEC | (mode == Blocking::no ? SOCK_NONBLOCK : 0);
    UniqueFd conn{::accept4(fd_.get(), nullptr, nullptr, flags)};
    if (!conn) {
        if (errno == EMFILE || errno == ENFILE) return shed_one_connection();
        if (errno == ENOBUFS || errno == ENOMEM) {
            stats_->rejected_no_resources.fetch_add(1, std::memory_order_relaxed);
        }
        return {};  // EAGAIN, EINTR, a connection reset while queued, or shut down: nothing to serve
    }
    int one = 1;
    ::setsockopt(conn.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    stats_->accepted.fetch_add(1, std::memory_order_relaxed);
    return conn;
}

UniqueFd Listener::shed_one_connection() {
    stats_->rejected_no_resources.fetch_add(1, std::memory_order_relaxed);
    if (!reserve_fd_) {
        // Another thread holds the reserve's slot; back off briefly rather than spin on accept.
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        return {};
    }
    reserve_fd_.reset();
    UniqueFd{::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC)};  // accepted and closed at once
    reserve_fd_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    return {};
}

void Listener::shutdown() noexcept {
    ::shutdown(fd_.get(), SHUT_RDWR);
}

void set_io_timeout(int fd, int timeout_ms) {
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

void discard_pending_input(int fd) {
    char scratch[4096];
    while (::recv(fd, scratch, sizeof scratch, MSG_DONTWAIT) > 0) {
    }
}

}  // namespace sb
