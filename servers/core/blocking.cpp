#include "blocking.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "byte_buffer.hpp"

namespace sb {
namespace {

bool write_all(int fd, ByteBuffer& out) {
    while (!out.empty()) {
        ssize_t n = ::write(fd, out.readable().data(), out.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;  // peer gone, send timeout (idle reader), or shut down at stop
        out.consume(static_cast<std::size_t>(n));
    }
    return true;
}

}  // namespace

void serve_blocking(int fd, const Server& server) {
    constexpr std::size_t read_size = 16 * 1024;
    set_io_timeout(fd, server.options.idle_timeout_ms);
    ProtocolSession session(server.responses);
    ByteBuffer in(read_size), out(read_size);
    for (;;) {
        std::span<char> space = in.writable(read_size);
        ssize_t n = ::read(fd, space.data(), space.size());
        if (n < 0 && errno == EINTR) continue;
        bool peer_done = n <= 0;  // EOF (perhaps a half-close: still answer what came), error or timeout
        if (!peer_done) in.commit(static_cast<std::size_t>(n));

        // Answer everything buffered, a high-water mark of output at a time.
        for (;;) {
            FeedResult r = session.feed(in.readable(), out);
            in.consume(r.consumed);
            simulate_request_work(server.options, r.requests);
            if (!write_all(fd, out)) return;
            if (r.consumed == 0 || session.closing()) break;
        }
        if (session.closing() && !in.empty()) discard_pending_input(fd);
        if (session.closing() || peer_done) return;
    }
}

StopWatcher::StopWatcher(Server& server) : server_(server) {
    thread_ = std::jthread([this](std::stop_token token) {
        pollfd pfd{server_.signals.fd(), POLLIN, 0};
        while (!token.stop_requested()) {
            // A bounded wait, so the watcher also ends when main returns without any signal.
            if (::poll(&pfd, 1, 100) > 0 && server_.signals.stop_requested()) {
                stop();
                return;
            }
        }
    });
}

void StopWatcher::stop() {
    std::lock_guard lock(mutex_);
    stopping_.store(true, std::memory_order_release);
    server_.listener.shutdown();
    for (int fd : connections_) ::shutdown(fd, SHUT_RDWR);
}

StopWatcher::Tracked::Tracked(StopWatcher& watcher, int fd) : watcher_(watcher), fd_(fd) {
    std::lock_guard lock(watcher_.mutex_);
    watcher_.connections_.insert(fd);
    if (watcher_.stopping()) ::shutdown(fd, SHUT_RDWR);  // accepted just as the stop came
}

StopWatcher::Tracked::~Tracked() {
    std::lock_guard lock(watcher_.mutex_);
    watcher_.connections_.erase(fd_);
}

}  // namespace sb
