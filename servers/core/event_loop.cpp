#include "event_loop.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

namespace sb {
namespace {

constexpr std::size_t kScratchBytes = 64 * 1024;
constexpr std::size_t kKeptBufferBytes = 64 * 1024;  // larger buffers are freed once drained

}  // namespace

Connection::Connection(UniqueFd fd, const Server& server) noexcept
    : fd_(std::move(fd)), server_(&server), session_(server.responses) {}

Interest Connection::on_ready(std::span<char> scratch) {
    interest_ = interest_ == Interest::write ? on_writable() : on_readable(scratch);
    return interest_;
}

Interest Connection::on_readable(std::span<char> scratch) {
    ssize_t n = ::read(fd_.get(), scratch.data(), scratch.size());
    if (n < 0) return errno == EAGAIN || errno == EINTR ? Interest::read : Interest::close;
    if (n == 0) peer_closed_ = true;  // perhaps only a half-close: answer what came, then close
    std::span<const char> fresh = scratch.first(static_cast<std::size_t>(n));
    if (!in_.empty()) {  // the rest of a split request: continue it in the connection's own buffer
        in_.append({fresh.data(), fresh.size()});
        fresh = {};
    }
    return answer(fresh);
}

Interest Connection::on_writable() {
    if (!flush()) return Interest::close;
    if (!out_.empty()) return Interest::write;
    out_.shrink_if_empty(kKeptBufferBytes);
    return answer({});  // requests held back while output was full
}

Interest Connection::answer(std::span<const char> fresh) {
    const bool from_buffer = !in_.empty();
    std::span<const char> input = from_buffer ? in_.readable() : fresh;
    for (;;) {
        FeedResult r = session_.feed(input, out_);
        input = input.subspan(r.consumed);
        simulate_request_work(server_->options, r.requests);
        if (!flush()) return Interest::close;
        // Output the socket would not take: stop reading until it drains (back-pressure).
        if (!out_.empty() || session_.closing() || r.consumed == 0) break;
    }
    if (from_buffer) {
        in_.consume(in_.size() - input.size());
        in_.shrink_if_empty(kKeptBufferBytes);
    } else {
        in_.append({input.data(), input.size()});
    }
    if (!out_.empty()) return Interest::write;
    if (session_.closing()) {
        if (!in_.empty()) discard_pending_input(fd_.get());
        return Interest::close;
    }
    return peer_closed_ ? Interest::close : Interest::read;
}

bool Connection::flush() {
    while (!out_.empty()) {
        ssize_t n = ::write(fd_.get(), out_.readable().data(), out_.size());
        if (n < 0) return errno == EAGAIN || errno == EINTR;
        out_.consume(static_cast<std::size_t>(n));
    }
    return true;
}

ConnectionTable::ConnectionTable(Server& server, int fd_limit)
    : server_(server), fd_limit_(fd_limit), scratch_(kScratchBytes) {}

Connection* ConnectionTable::admit(UniqueFd fd) {
    if (count_ >= static_cast<std::size_t>(server_.options.max_conns) || fd.get() >= fd_limit_) {
        server_.stats.rejected_at_limit.fetch_add(1, std::memory_order_relaxed);
        return nullptr;  // fd closes here: the client sees its connection closed at once
    }
    auto index = static_cast<std::size_t>(fd.get());
    if (index >= by_fd_.size()) by_fd_.resize(std::max(index + 1, by_fd_.size() * 2));
    by_fd_[index] = std::make_unique<Connection>(std::move(fd), server_);
    by_fd_[index]->last_active_ms = monotonic_ms();
    ++count_;
    return by_fd_[index].get();
}

Interest ConnectionTable::run(Connection& c) {
    c.last_active_ms = monotonic_ms();
    Interest next = c.on_ready(scratch_);
    if (next == Interest::close) close(c);
    return next;
}

void ConnectionTable::close(Connection& c) {
    by_fd_[static_cast<std::size_t>(c.fd())].reset();
    --count_;
}

int ConnectionTable::sweep_interval_ms() const noexcept {
    return std::clamp(server_.options.idle_timeout_ms / 4, 10, 1000);
}

std::int64_t ConnectionTable::monotonic_ms() noexcept {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return std::int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
}

}  // namespace sb
