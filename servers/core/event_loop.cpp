#include "event_loop.hpp"

#include <unistd.h>

#include <cassert>
#include <cerrno>

namespace sb {

Connection::Connection(UniqueFd fd, const Server& server, RequestWork work) noexcept
    : fd_(std::move(fd)), server_(&server), work_(work), step_(server.responses) {}

Interest Connection::on_ready(std::span<char> scratch) {
    interest_ =
        interest_ == Interest::write ? (flush() ? after_answer() : Interest::close) : on_readable(scratch);
    return interest_;
}

Interest Connection::on_work_done() {
    pending_requests_ = 0;
    interest_ =
        flush() ? after_answer() : Interest::close;  // send the batch, then answer what arrived behind it
    return interest_;
}

Interest Connection::on_readable(std::span<char> scratch) {
    ssize_t n = ::read(fd_.get(), scratch.data(), scratch.size());
    if (n < 0) return errno == EAGAIN || errno == EINTR ? Interest::read : Interest::close;
    if (n == 0) step_.end_of_input();  // perhaps only a half-close: answer what came, then close
    return answer(scratch.first(static_cast<std::size_t>(n)));
}

// Answers what arrived and writes the answers at once; the handler work runs here, in the loop,
// unless the model hands it off.
Interest Connection::answer(std::span<const char> fresh) {
    const FeedResult r = step_.answer(fresh);
    if (work_ == RequestWork::handed_off && r.requests > 0) {
        pending_requests_ = r.requests;  // its responses wait in the output until the work is done
        return Interest::work;
    }
    simulate_request_work(server_->options, r.requests);
    if (!flush()) return Interest::close;
    return after_answer();
}

// What the connection waits for once the socket has taken what it would.
Interest Connection::after_answer() {
    switch (step_.next()) {
        case ConnectionStep::Next::send:
            return Interest::write;  // back-pressure: no reading until it drains
        case ConnectionStep::Next::answer_more:
            return answer({});
        case ConnectionStep::Next::read:
            return Interest::read;
        case ConnectionStep::Next::close:
            return Interest::close;
        case ConnectionStep::Next::discard_and_close:
            discard_pending_input(fd_.get());
            return Interest::close;
    }
    assert(false && "every ConnectionStep::Next is handled above");
    return Interest::close;
}

bool Connection::flush() {
    while (!step_.output().empty()) {
        const std::span<const char> bytes = step_.output().readable();
        ssize_t n = ::write(fd_.get(), bytes.data(), bytes.size());
        if (n < 0) return errno == EAGAIN || errno == EINTR;
        step_.sent(static_cast<std::size_t>(n));
    }
    return true;
}

ConnectionTable::ConnectionTable(Server& server, ConnectionLimit& limit, RequestWork work, int fd_limit)
    : server_(server),
      limit_(limit),
      work_(work),
      fd_limit_(fd_limit),
      sweep_(server.options.idle_timeout_ms),
      scratch_(kLoopScratchBytes) {}

ConnectionTable::~ConnectionTable() {
    limit_.give_back(count_);
}  // its connections close with it

Connection* ConnectionTable::admit(UniqueFd fd) {
    // Refused (and counted by the limit): fd closes here, so the client sees its connection closed
    // at once. A descriptor select cannot watch is refused as one over the limit.
    if (fd.get() >= fd_limit_) {
        limit_.refuse();
        return nullptr;
    }
    if (!limit_.try_take()) return nullptr;
    const int index = fd.get();
    std::unique_ptr<Connection>& slot = by_fd_[index];
    slot = std::make_unique<Connection>(std::move(fd), server_, work_);
    slot->last_active_ms = monotonic_ms();
    ++count_;
    return slot.get();
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
    by_fd_[c.fd()].reset();
    --count_;
    limit_.give_back();
}

void ConnectionTable::close_for_lack_of_resources(Connection& c) {
    server_.stats.rejected_no_resources.fetch_add(1, std::memory_order_relaxed);
    close(c);
}

int ConnectionTable::close_idle() {
    if (!sweep_.enabled()) return -1;
    const std::int64_t now = monotonic_ms();
    if (sweep_.due(now)) {
        const std::int64_t idle_before = sweep_.idle_before(now);
        for_each([&](Connection& c) {
            if (c.last_active_ms < idle_before && c.interest() != Interest::work) close(c);
        });
    }
    return sweep_.wait_ms(now);
}

}  // namespace sb
