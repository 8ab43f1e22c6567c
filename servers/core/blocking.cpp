#include "blocking.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

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

void serve_blocking(int fd, const Server& server, bool simulate_work) {
    constexpr std::size_t read_size = 16 * 1024;
    const int idle_timeout_ms = server.options.idle_timeout_ms;
    set_io_timeout(fd, idle_timeout_ms);
    ProtocolSession session(server.responses);
    ByteBuffer in(read_size), out(read_size);
    // The socket timeout restarts with every byte, so a client trickling a header byte at a time
    // (slowloris) would hold this thread for ever. An incomplete request must therefore arrive
    // whole within the idle timeout of its first byte: while one is pending, the receive timeout
    // is what is left of that time. (Requests that arrive whole, the common case, cost nothing.)
    using Clock = std::chrono::steady_clock;
    Clock::time_point request_deadline{};
    bool shortened = false;
    for (;;) {
        if (idle_timeout_ms > 0 && !in.empty()) {
            const auto left =
                std::chrono::ceil<std::chrono::milliseconds>(request_deadline - Clock::now()).count();
            if (left <= 0) return;  // too slow: close
            set_io_timeout(fd, static_cast<int>(std::min<long long>(left, idle_timeout_ms)));
            shortened = true;
        } else if (shortened) {
            set_io_timeout(fd, idle_timeout_ms);
            shortened = false;
        }
        const bool request_pending = !in.empty();
        std::span<char> space = in.writable(read_size);
        ssize_t n = ::read(fd, space.data(), space.size());
        if (n < 0 && errno == EINTR) continue;
        bool peer_done = n <= 0;  // EOF (perhaps a half-close: still answer what came), error or timeout
        if (!peer_done) in.commit(static_cast<std::size_t>(n));

        // Answer everything buffered, a high-water mark of output at a time.
        for (;;) {
            FeedResult r = session.feed(in.readable(), out);
            in.consume(r.consumed);
            if (simulate_work) simulate_request_work(server.options, r.requests);
            if (!write_all(fd, out)) return;
            if (r.consumed == 0 || session.closing()) break;
        }
        if (session.closing() && !in.empty()) discard_pending_input(fd);
        if (session.closing() || peer_done) return;
        if (!request_pending) request_deadline = Clock::now() + std::chrono::milliseconds(idle_timeout_ms);
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
