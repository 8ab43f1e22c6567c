#include "net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace sb {

[[noreturn]] void die(const ModelInfo& model, const char* what) {
    std::fprintf(stderr, "server-%s: %s: %s\n", model.name, what, std::strerror(errno));
    std::exit(1);
}

namespace {

// The socket a listener starts from: a stream or a datagram socket, in the given blocking mode.
UniqueFd server_socket(int family, Transport transport, Blocking mode, const ModelInfo& model) {
    const int type = (transport == Transport::udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC |
                     (mode == Blocking::no ? SOCK_NONBLOCK : 0);
    UniqueFd fd{::socket(family, type, 0)};
    if (!fd) die(model, "socket");
    return fd;
}

}  // namespace

Listener::Listener(const ServerOptions& options, const ModelInfo& model, ServerStats& stats, Blocking mode,
                   std::uint16_t port)
    : stats_(&stats), tcp_nodelay_(options.tcp_nodelay) {
    if (options.unix_path.empty()) {
        bind_tcp(options, model, mode, port);
    } else {
        bind_unix(options, model, mode);
    }
    if (options.transport == Transport::udp) return;  // a datagram socket receives once bound
    if (::listen(fd_.get(), options.backlog) != 0) die(model, "listen");
    reserve_fd_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
}

Listener::~Listener() {
    // Only the process that made the socket file removes it: a forked child that returns through
    // here must not take the parent's address away.
    if (!unix_path_.empty() && owner_ == ::getpid()) ::unlink(unix_path_.c_str());
}

void Listener::bind_tcp(const ServerOptions& options, const ModelInfo& model, Blocking mode,
                        std::uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (inet_pton(AF_INET, options.host.c_str(), &addr.sin_addr) != 1) {
        std::fprintf(stderr, "server-%s: invalid value for --host: '%s' (expected an IPv4 address)\n",
                     model.name, options.host.c_str());
        std::exit(2);
    }
    fd_ = server_socket(AF_INET, options.transport, mode, model);
    int one = 1;
    // For TCP, SO_REUSEADDR lets a restarted server bind past its predecessor's TIME_WAIT. A UDP
    // socket has no TIME_WAIT, and there SO_REUSEADDR would let a second server bind the same port
    // and quietly take its datagrams: a busy port must fail the bind instead.
    if (options.transport == Transport::tcp &&
        ::setsockopt(fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
        die(model, "setsockopt SO_REUSEADDR");
    if (model.reuse_port && ::setsockopt(fd_.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        die(model, "setsockopt SO_REUSEPORT");
    }
    if (::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        char what[96];
        std::snprintf(what, sizeof what, "bind %s:%u", options.host.c_str(), unsigned{port});
        die(model, what);
    }
    socklen_t len = sizeof addr;
    if (::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) die(model, "getsockname");
    port_ = ntohs(addr.sin_port);
}

void Listener::bind_unix(const ServerOptions& options, const ModelInfo& model, Blocking mode) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (options.unix_path.size() >= sizeof addr.sun_path) {
        std::fprintf(stderr, "server-%s: invalid value for --unix: '%s' (longer than %zu bytes)\n",
                     model.name, options.unix_path.c_str(), sizeof addr.sun_path - 1);
        std::exit(2);
    }
    std::memcpy(addr.sun_path, options.unix_path.c_str(), options.unix_path.size() + 1);
    // A socket file left by a server that did not exit cleanly would make bind fail: remove it. Any
    // other kind of file is not ours to delete, and bind then fails with EADDRINUSE.
    struct stat st;
    if (::lstat(addr.sun_path, &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(addr.sun_path);
    fd_ = server_socket(AF_UNIX, options.transport, mode, model);
    if (::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        const std::string what = "bind " + options.unix_path;
        die(model, what.c_str());
    }
    unix_path_ = options.unix_path;
    owner_ = ::getpid();
}

UniqueFd Listener::adopt(int fd) {
    UniqueFd conn{fd};
    if (tcp_nodelay_ && unix_path_.empty()) {
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    stats_->accepted.fetch_add(1, std::memory_order_relaxed);
    return conn;
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
    return adopt(conn.release());
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
