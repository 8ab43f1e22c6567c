#include "serve_blocking.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <chrono>
#include <memory>

#include "connection_step.hpp"

namespace sb {
namespace {

// Sends all of the step's output with blocking writes.
bool send_all(int fd, ConnectionStep& step) {
    while (!step.output().empty()) {
        const std::span<const char> bytes = step.output().readable();
        ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;  // peer gone, send timeout (idle reader), or shut down at stop
        step.sent(static_cast<std::size_t>(n));
    }
    return true;
}

// Answers everything that came (r: the first answer), a high-water mark of output at a time, and
// sends it. True when the connection goes on: read more.
bool answer_all(int fd, ConnectionStep& step, FeedResult r, const Server& server, bool simulate_work) {
    for (;;) {
        if (simulate_work) simulate_request_work(server.options, r.requests);
        if (!send_all(fd, step)) return false;
        switch (step.next()) {
            case ConnectionStep::Next::answer_more:
                r = step.answer();
                break;
            case ConnectionStep::Next::read:
                return true;
            case ConnectionStep::Next::discard_and_close:
                discard_pending_input(fd);
                return false;
            case ConnectionStep::Next::close:
                return false;
            case ConnectionStep::Next::send:
                assert(false && "send_all returns once all of the output is sent");
                return false;
        }
    }
}

}  // namespace

void serve_blocking(int fd, const Server& server, bool simulate_work) {
    constexpr std::size_t read_size = 16 * 1024;
    const int idle_timeout_ms = server.options.idle_timeout_ms;
    set_io_timeout(fd, idle_timeout_ms);
    ConnectionStep step(server.responses);
    const auto scratch = std::make_unique_for_overwrite<char[]>(read_size);
    // The socket timeout restarts with every byte, so a client trickling a header byte at a time
    // (slowloris) would hold this thread for ever. An incomplete request must therefore arrive
    // whole within the idle timeout of its first byte: while one is pending, the receive timeout
    // is what is left of that time. (Requests that arrive whole, the common case, cost nothing.)
    using Clock = std::chrono::steady_clock;
    Clock::time_point request_deadline{};
    bool shortened = false;
    for (;;) {
        const bool request_pending = step.awaiting_rest_of_request();
        if (idle_timeout_ms > 0 && request_pending) {
            const auto left =
                std::chrono::ceil<std::chrono::milliseconds>(request_deadline - Clock::now()).count();
            if (left <= 0) return;  // too slow: close
            set_io_timeout(fd, static_cast<int>(std::min<long long>(left, idle_timeout_ms)));
            shortened = true;
        } else if (shortened) {
            set_io_timeout(fd, idle_timeout_ms);
            shortened = false;
        }
        ssize_t n = ::read(fd, scratch.get(), read_size);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            step.end_of_input();  // EOF (perhaps a half-close: still answer what came), error or timeout
        const FeedResult r = step.answer({scratch.get(), n > 0 ? static_cast<std::size_t>(n) : 0});
        if (!answer_all(fd, step, r, server, simulate_work)) return;
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
