#include "event_loop.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

namespace sb {
namespace {

constexpr std::size_t kKeptBufferBytes = 64 * 1024;  // larger buffers are freed once drained

}  // namespace

Connection::Connection(UniqueFd fd, const Server& server, RequestWork work) noexcept
    : fd_(std::move(fd)), server_(&server), work_(work), session_(server.responses) {}

Interest Connection::on_ready(std::span<char> scratch) {
    interest_ = interest_ == Interest::write ? on_writable() : on_readable(scratch);
    return interest_;
}

Interest Connection::on_work_done() {
    pending_requests_ = 0;
    interest_ = on_writable();  // send the batch, then answer what arrived behind it
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
        if (work_ == RequestWork::handed_off && r.requests > 0) {
            pending_requests_ = r.requests;  // its responses wait in out_ until the work is done
            break;
        }
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
    if (pending_requests_ > 0) return Interest::work;
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
    : server_(server), fd_limit_(fd_limit), scratch_(kLoopScratchBytes) {}

ConnectionTable::ConnectionTable(Server& server, ConnectionBudget& shared_budget)
    : server_(server), shared_budget_(&shared_budget), scratch_(kLoopScratchBytes) {}

ConnectionTable::ConnectionTable(Server& server, RequestWork work)
    : server_(server), work_(work), scratch_(kLoopScratchBytes) {}

ConnectionTable::~ConnectionTable() {
    if (shared_budget_ != nullptr) shared_budget_->give_back(static_cast<int>(count_));
}

Connection* ConnectionTable::admit(UniqueFd fd) {
    const int limit = server_.options.max_conns;
    const bool refused = fd.get() >= fd_limit_ || (shared_budget_ != nullptr ? !shared_budget_->try_take(limit)
                                                                           : count_ >= static_cast<std::size_t>(limit));
    if (refused) {
        server_.stats.rejected_at_limit.fetch_add(1, std::memory_order_relaxed);
        return nullptr;  // fd closes here: the client sees its connection closed at once
    }
    auto index = static_cast<std::size_t>(fd.get());
    if (index >= by_fd_.size()) by_fd_.resize(std::max(index + 1, by_fd_.size() * 2));
    by_fd_[index] = std::make_unique<Connection>(std::move(fd), server_, work_);
    by_fd_[index]->last_active_ms = monotonic_ms();
    ++count_;
    return by_fd_[index].get();
}

Interest ConnectionTable::run(Connection& c) {
    const bool was_awaiting = c.awaiting_rest_of_request();
    Interest next = c.on_ready(scratch_);
    if (next == Interest::close) {
        close(c);
        return next;
    }
    // More bytes of a request that is still incomplete are not activity: its clock runs from its
    // first byte, so --idle-timeout-ms also bounds how long a request may take to arrive, and a
    // client trickling a header byte at a time (slowloris) cannot hold its slot for ever.
    if (!(was_awaiting && c.awaiting_rest_of_request())) c.last_active_ms = monotonic_ms();
    return next;
}

Interest ConnectionTable::finish_work(Connection& c) {
    c.last_active_ms = monotonic_ms();
    Interest next = c.on_work_done();
    if (next == Interest::close) close(c);
    return next;
}

void ConnectionTable::close(Connection& c) {
    by_fd_[static_cast<std::size_t>(c.fd())].reset();
    --count_;
    if (shared_budget_ != nullptr) shared_budget_->give_back();
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
