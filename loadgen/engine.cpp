#include "loadgen/engine.hpp"

#include <netinet/tcp.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cerrno>
#include <cstring>

namespace loadgen {
namespace {

constexpr std::uint64_t kLateSendNs = 1'000'000;     // a send more than 1 ms after its due time
constexpr std::uint64_t kMinBackoffNs = 10'000'000;  // reconnect backoff after a connect error
constexpr std::uint64_t kMaxBackoffNs = 250'000'000;
constexpr std::size_t kReadBufferBytes = 64 * 1024;
constexpr int kMaxEvents = 256;

}  // namespace

std::uint64_t monotonic_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

double unix_time_of(std::uint64_t monotonic) noexcept {
    timespec rt{};
    clock_gettime(CLOCK_REALTIME, &rt);
    const auto ahead = static_cast<std::int64_t>(monotonic - monotonic_ns());  // negative: in the past
    return static_cast<double>(rt.tv_sec) + static_cast<double>(rt.tv_nsec) / 1e9 + static_cast<double>(ahead) / 1e9;
}

// --------------------------------------------------------------------------- the start gate

std::optional<Timeline> StartGate::arrive_and_wait(std::size_t open_connections) {
    std::unique_lock lock(mutex_);
    ++arrived_;
    open_connections_ += open_connections;
    changed_.notify_all();
    changed_.wait(lock, [this] { return decided_; });
    return timeline_;
}

std::size_t StartGate::wait_for_workers() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [this] { return arrived_ == expected_; });
    return open_connections_;
}

void StartGate::open(const Timeline& timeline) {
    decide(timeline);
}

void StartGate::cancel() {
    decide(std::nullopt);
}

void StartGate::decide(std::optional<Timeline> timeline) {
    const std::lock_guard lock(mutex_);
    assert(!decided_);
    timeline_ = timeline;
    decided_ = true;
    changed_.notify_all();
}

// --------------------------------------------------------------------------------- the worker

LoadWorker::LoadWorker(WorkerPlan plan, LiveCounters& live)
    : plan_(std::move(plan)),
      live_(live),
      intervals_(stats_.intervals, plan_.series, plan_.worker_index, plan_.interval_ns) {
    set_timeline({plan_.start_ns, plan_.measure_start_ns, plan_.measure_end_ns});
}

// Pins the thread, and takes its timer slack to 1 ns: an open loop's sends are due at exact
// instants, and the default 50 µs of slack lets the kernel end epoll_pwait2's wait that much late.
void LoadWorker::prepare_thread() const {
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    if (plan_.cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(plan_.cpu, &set);
    sched_setaffinity(0, sizeof set, &set);  // best effort: main already pinned the process
}

Worker::Worker(WorkerPlan plan, LiveCounters& live)
    : LoadWorker(std::move(plan), live),
      connections_(static_cast<std::size_t>(plan_.connections)),
      read_buffer_(kReadBufferBytes) {
    const auto depth = static_cast<std::size_t>(plan_.pipeline);
    for (auto& c : connections_) {
        c.due_ns.resize(depth);
        c.sent_ns.resize(depth);
    }
    stream_.reserve(plan_.request.size() * (depth + 1));
    for (std::size_t i = 0; i <= depth; ++i) stream_ += plan_.request;
    free_list_.reserve(connections_.size());
    refills_.reserve(connections_.size());
    due_scratch_.resize(depth);
    timeout_check_interval_ns_ = std::clamp<std::uint64_t>(plan_.timeout_ns / 10, 1'000'000, 100'000'000);
}

void LoadWorker::set_timeline(const Timeline& timeline) {
    plan_.start_ns = timeline.start_ns;
    plan_.measure_start_ns = timeline.measure_start_ns;
    plan_.measure_end_ns = timeline.measure_end_ns;
    intervals_.set_window(plan_.measure_start_ns, plan_.measure_end_ns);
}

// ------------------------------------------------------------------------------------ the loop

void Worker::run() {
    prepare_thread();
    bool go = start_connections();
    if (plan_.gate != nullptr) go = hold_until_go(go);  // arrives at the gate even when it cannot run
    if (!go) {
        end_run(monotonic_ns());
        return;
    }
    for (;;) {
        const std::uint64_t now = monotonic_ns();
        intervals_.retire_due(now);  // next_wake() is at most 100 ms away (the timeout checks)
        if (!stopping_ && window_over(now)) begin_stop(now);
        if (stopping_ && (inflight_total_ == 0 || now >= drain_deadline_ns_)) break;
        if (!stopping_ && plan_.rate > 0) dispatch_arrivals(now);
        if (now >= next_timeout_check_ns_) {
            check_timeouts(now);
            next_timeout_check_ns_ = now + timeout_check_interval_ns_;
        }
        publish_live();
        poll_events(next_wake(now), now);
        send_refills();
    }
    finish(monotonic_ns());
}

// False if the thread cannot work at all (no epoll instance): every connection is then an error.
bool Worker::start_connections() {
    epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
    const std::uint64_t now = monotonic_ns();
    last_progress_ns_ = now;
    if (plan_.rate > 0) schedule_ = RateScheduler(plan_.rate, plan_.start_ns, plan_.rate_phase);
    if (!epoll_) {
        count_error(ErrorKind::connect, errno, connections_.size(), now);
        return false;
    }
    for (auto& c : connections_) open_connection(c, now);
    return true;
}

// --start-on-stdin: connects (sending nothing), reports how many connections are up, and waits
// for the controller's go, which brings the run's timeline. False: the run was cancelled.
bool Worker::hold_until_go(bool started) {
    holding_ = true;
    if (started) wait_for_connects();
    const std::optional<Timeline> timeline = plan_.gate->arrive_and_wait(started ? count_open() : 0);
    holding_ = false;
    if (!timeline || !started) return false;
    set_timeline(*timeline);
    begin_load(monotonic_ns());
    return true;
}

// Until every connection is open, or --timeout has passed (failed connects are retried meanwhile).
void Worker::wait_for_connects() {
    const std::uint64_t deadline = monotonic_ns() + plan_.timeout_ns;
    for (std::uint64_t now = monotonic_ns(); count_open() < connections_.size() && now < deadline;
         now = monotonic_ns()) {
        if (now >= next_timeout_check_ns_) {
            check_timeouts(now);
            next_timeout_check_ns_ = now + timeout_check_interval_ns_;
        }
        poll_events(std::max(now, std::min(next_timeout_check_ns_, deadline)), now);
    }
}

// After go: the open loop's schedule starts now; the closed loop sends on every open connection.
void Worker::begin_load(std::uint64_t now) {
    last_progress_ns_ = now;
    if (plan_.rate > 0) {
        schedule_ = RateScheduler(plan_.rate, plan_.start_ns, plan_.rate_phase);
        return;
    }
    for (auto& c : connections_) {
        if (c.state != State::open) continue;
        const std::uint32_t count = send_budget(static_cast<std::uint32_t>(plan_.pipeline), now);
        if (count > 0) send_requests(c, count, now, nullptr);
    }
}

std::size_t Worker::count_open() const noexcept {
    return static_cast<std::size_t>(
        std::count_if(connections_.begin(), connections_.end(),
                      [](const Connection& c) { return c.state == State::open; }));
}

// The end of the duration, or of the request quota (also when no answer came for --timeout).
bool Worker::window_over(std::uint64_t now) const noexcept {
    if (plan_.measure_end_ns != 0 && now >= plan_.measure_end_ns) return true;
    if (plan_.request_quota == 0) return false;
    return stats_.requests >= plan_.request_quota ||
           (sent_for_quota_ >= plan_.request_quota && inflight_total_ == 0) ||
           now - last_progress_ns_ > plan_.timeout_ns;
}

std::uint64_t Worker::next_wake(std::uint64_t now) const noexcept {
    std::uint64_t wake = next_timeout_check_ns_;
    if (stopping_)
        wake = std::min(wake, drain_deadline_ns_);
    else if (plan_.measure_end_ns != 0)
        wake = std::min(wake, plan_.measure_end_ns);
    if (!stopping_ && plan_.rate > 0 && !free_list_.empty()) wake = std::min(wake, schedule_.next_due());
    return std::max(wake, now);
}

// Waits for readiness until `wake` at the latest and handles every event.
void Worker::poll_events(std::uint64_t wake, std::uint64_t now) {
    const std::uint64_t wait = wake - now;
    const timespec timeout{static_cast<time_t>(wait / 1'000'000'000),
                           static_cast<long>(wait % 1'000'000'000)};
    std::array<epoll_event, kMaxEvents> events;
    const int n = epoll_pwait2(epoll_.get(), events.data(), kMaxEvents, &timeout, nullptr);
    if (n <= 0) return;  // timeout, or EINTR
    now = monotonic_ns();
    for (int i = 0; i < n; ++i) {
        const auto& event = events[static_cast<std::size_t>(i)];
        const auto index = static_cast<std::uint32_t>(event.data.u64);
        const auto generation = static_cast<std::uint32_t>(event.data.u64 >> 32);
        Connection& c = connections_[index];
        if (c.generation == generation && c.fd) on_event(c, event.events, now);
    }
}

void Worker::on_event(Connection& c, std::uint32_t events, std::uint64_t now) {
    if (c.state == State::connecting) {
        if (events & (EPOLLERR | EPOLLHUP)) {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
            fail(c, ErrorKind::connect, err ? err : ECONNREFUSED, now);
        } else if (events & EPOLLOUT) {
            on_connected(c, now);
        }
        return;
    }
    if (c.state != State::open) return;
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
        on_readable(c, (events & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) != 0);
        if (c.state != State::open) return;
    }
    if ((events & EPOLLOUT) && c.unsent_bytes != 0) flush(c, now);
}

// ------------------------------------------------------------------------------ the hot path

// Every request is the same bytes, so `count` requests are the next count * size bytes of
// stream_ (the request repeated): one send for the whole batch.
void Worker::send_requests(Connection& c, std::uint32_t count, std::uint64_t now, const std::uint64_t* due) {
    const auto depth = static_cast<std::uint32_t>(plan_.pipeline);
    for (std::uint32_t i = 0; i < count; ++i) {
        std::uint32_t slot = c.head + c.inflight + i;
        if (slot >= depth) slot -= depth;
        c.due_ns[slot] = due ? due[i] : now;
        c.sent_ns[slot] = now;
    }
    c.inflight += count;
    inflight_total_ += count;
    if (recording(now)) sent_for_quota_ += count;
    c.unsent_bytes += count * plan_.request.size();
    flush(c, now);
}

bool Worker::flush(Connection& c, std::uint64_t now) {
    const std::size_t size = plan_.request.size();
    const std::size_t offset = (size - c.unsent_bytes % size) % size;
    const ssize_t n = ::send(c.fd.get(), stream_.data() + offset, c.unsent_bytes, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return true;  // EPOLLOUT (edge) resumes it
        fail(c, errno == ECONNRESET ? ErrorKind::reset : ErrorKind::write, errno, now);
        return false;
    }
    c.unsent_bytes -= static_cast<std::size_t>(n);
    if (recording(now)) stats_.bytes_sent += static_cast<std::uint64_t>(n);
    return true;
}

// Edge-triggered: read until a short read (the socket is then drained; the next arrival is a
// new edge), which costs one read per event in the common case instead of a read that EAGAINs.
// Except when the event also said the peer closed or failed: that edge has been consumed and no
// other will come, so read on to the EOF or the error (else a response cut short by a close
// would wait for --timeout and be counted as a timeout instead of a read error).
void Worker::on_readable(Connection& c, bool peer_closed) {
    std::uint64_t now = 0;
    for (;;) {
        const ssize_t n = ::read(c.fd.get(), read_buffer_.data(), read_buffer_.size());
        if (n > 0) {
            now = monotonic_ns();
            if (recording(now)) stats_.bytes_received += static_cast<std::uint64_t>(n);
            const auto size = static_cast<std::size_t>(n);
            const bool still_open = plan_.protocol == Protocol::http
                                        ? consume_http(c, read_buffer_.data(), size, now)
                                        : consume_echo(c, read_buffer_.data(), size, now);
            if (!still_open) return;
            if (size < read_buffer_.size() && !peer_closed) break;
            continue;
        }
        if (now == 0) now = monotonic_ns();
        if (n == 0) {
            on_eof(c, now);
            return;
        }
        if (errno == EAGAIN || errno == EINTR) break;
        fail(c, errno == ECONNRESET ? ErrorKind::reset : ErrorKind::read, errno, now);
        return;
    }
    if (now != 0) refill(c, now);
}

// Both consumers return false once the connection they were reading is gone (failed, or closed
// after its last response; the slot may already hold a new connection, hence the generation).
bool Worker::consume_http(Connection& c, const char* data, std::size_t size, std::uint64_t now) {
    const std::uint32_t generation = c.generation;
    while (size > 0) {
        const auto result = c.parser.parse(data, size);
        data += result.consumed;
        size -= result.consumed;
        if (result.status == HttpResponseParser::Status::need_more) return true;
        if (result.status == HttpResponseParser::Status::error || c.inflight == 0) {
            fail(c, ErrorKind::protocol, 0, now);  // garbage, or a response nobody asked for
            return false;
        }
        const int status = c.parser.status_code();
        if (status < 200 || status > 299) {
            fail(c, ErrorKind::protocol, 0, now);
            return false;
        }
        on_response(c, now);
        if (c.generation != generation || c.state != State::open) return false;  // close mode
        if (!c.parser.keep_alive()) {
            // The server closes after this response: what else was in flight is lost.
            if (c.inflight > 0)
                fail(c, ErrorKind::read, 0, now);
            else
                reconnect(c, now);
            return false;
        }
    }
    return true;
}

// The echo of request bytes must be the same bytes: the response stream is compared with the
// request stream (a patterned payload, so a shifted or mixed-up echo does not match).
bool Worker::consume_echo(Connection& c, const char* data, std::size_t size, std::uint64_t now) {
    const std::size_t length = plan_.request.size();
    const std::uint32_t generation = c.generation;
    while (size > 0) {
        if (c.inflight == 0) {
            fail(c, ErrorKind::protocol, 0, now);
            return false;
        }
        const std::size_t take = std::min<std::size_t>(size, length - c.echo_offset);
        if (std::memcmp(data, stream_.data() + c.echo_offset, take) != 0) {
            fail(c, ErrorKind::protocol, 0, now);
            return false;
        }
        c.echo_offset += take;
        data += take;
        size -= take;
        if (c.echo_offset == length) {
            c.echo_offset = 0;
            on_response(c, now);
            if (c.generation != generation || c.state != State::open) return false;
        }
    }
    return true;
}

// One latency sample per response, also when pipelined: responses come back in request order.
void Worker::on_response(Connection& c, std::uint64_t now) {
    assert(c.inflight > 0 &&
           inflight_total_ >= c.inflight);  // the consumers fail a response nobody asked for
    const std::uint64_t due = c.due_ns[c.head];
    const std::uint64_t sent = c.sent_ns[c.head];
    if (++c.head == static_cast<std::uint32_t>(plan_.pipeline)) c.head = 0;
    --c.inflight;
    --inflight_total_;
    last_progress_ns_ = now;
    if (recording(now)) {
        const std::uint64_t latency = now - std::min(due, now);
        stats_.latency.record(latency);
        if (plan_.rate > 0) stats_.latency_uncorrected.record(now - std::min(sent, now));
        ++stats_.requests;
        IntervalStats& interval = interval_of(now);
        ++interval.requests;
        interval.latency.record(latency);
    }
    if (plan_.mode == ConnectionMode::close) {  // a connection per request: this one is done
        close_connection(c);
        if (sending_allowed(now)) replace(c, now);
    }
}

// Closed loop: the connection's next requests are queued, not sent, and send_refills() sends
// them once every event of this wakeup is read. Reads first, then sends: a response's receive
// time is taken before this thread spends time sending other connections' requests, time that
// would otherwise be charged to the responses still waiting in their sockets (the load
// generator's own queueing, not the server's latency). wrk's loop has the same shape.
void Worker::refill(Connection& c, std::uint64_t now) {
    if (c.state != State::open || plan_.mode == ConnectionMode::close) return;
    const auto depth = static_cast<std::uint32_t>(plan_.pipeline);
    if (c.inflight >= depth) return;
    if (plan_.rate > 0) {
        make_available(c);
        return;
    }
    if (c.refill_queued || !sending_allowed(now)) return;
    c.refill_queued = true;
    refills_.push_back(index_of(c));
}

void Worker::send_refills() {
    const auto depth = static_cast<std::uint32_t>(plan_.pipeline);
    for (const std::uint32_t index : refills_) {
        Connection& c = connections_[index];
        c.refill_queued = false;
        if (c.state != State::open || c.inflight >= depth) continue;  // failed since, or refilled
        const std::uint64_t now = monotonic_ns();                     // the send time of these requests
        const std::uint32_t count = send_budget(depth - c.inflight, now);
        if (count > 0) send_requests(c, count, now, nullptr);
    }
    refills_.clear();
}

// ----------------------------------------------------------------------------- connections

void Worker::open_connection(Connection& c, std::uint64_t now) {
    ++c.generation;
    c.connect_start_ns = now;
    const Target& target = plan_.target;
    UniqueFd fd(::socket(target.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
        fail(c, ErrorKind::connect, errno, now);  // EMFILE, ENFILE: backs off and retries
        return;
    }
    if (target.is_inet() && target.tcp_nodelay) {
        const int one = 1;
        setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    // A Unix socket connects at once or fails (EAGAIN: the listen backlog is full, retried after a
    // backoff like any connect error); TCP answers EINPROGRESS and completes on EPOLLOUT.
    const int rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&target.address), target.length);
    if (rc != 0 && errno != EINPROGRESS) {
        const int err = errno;
        c.fd = std::move(fd);
        fail(c, ErrorKind::connect, err, now);
        return;
    }
    // Registered once for both directions, edge-triggered: no epoll_ctl per request.
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = (std::uint64_t{c.generation} << 32) | index_of(c);
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) {
        const int err = errno;
        c.fd = std::move(fd);
        fail(c, ErrorKind::connect, err, now);
        return;
    }
    c.fd = std::move(fd);
    c.state = State::connecting;
    if (rc == 0) on_connected(c, now);
}

void Worker::on_connected(Connection& c, std::uint64_t now) {
    c.state = State::open;
    c.backoff_ns = 0;
    if (!c.ever_established) {
        c.ever_established = true;
        ++stats_.established;
    }
    if (recording(now)) stats_.connect.record(now - c.connect_start_ns);
    if (plan_.rate > 0) {
        if (c.has_pending_arrival) {
            c.has_pending_arrival = false;
            send_requests(c, 1, now, &c.pending_due_ns);
        } else {
            make_available(c);
        }
        return;
    }
    if (holding_) return;  // the requests wait for go (begin_load)
    const std::uint32_t count = send_budget(static_cast<std::uint32_t>(plan_.pipeline), now);
    if (count > 0) send_requests(c, count, now, nullptr);
}

// A failed connection fails what it had in flight (at least one error is counted), is closed and
// replaced: at once after a read/write/protocol/timeout error, after a short backoff after a
// connect error, so a server that is gone costs a few connect attempts per second, not a spin.
void Worker::fail(Connection& c, ErrorKind kind, int err, std::uint64_t now) {
    const std::uint64_t lost = c.inflight + (c.has_pending_arrival ? 1u : 0u);
    count_error(kind, err, std::max<std::uint64_t>(lost, 1), now);
    close_connection(c);
    if (stopping_) return;
    if (kind == ErrorKind::connect) {
        c.backoff_ns = std::clamp<std::uint64_t>(c.backoff_ns * 2, kMinBackoffNs, kMaxBackoffNs);
        c.retry_at_ns = now + c.backoff_ns;
        c.state = State::backoff;
        return;
    }
    ++stats_.reconnects;
    replace(c, now);
}

// A closed connection, back to work: in the open loop's close mode it waits on the free list for
// the next arrival (which opens it); otherwise it opens again at once, if requests may still go.
void Worker::replace(Connection& c, std::uint64_t now) {
    if (plan_.rate > 0 && plan_.mode == ConnectionMode::close)
        make_available(c);
    else if (sending_allowed(now))
        open_connection(c, now);
}

// A connection the server closed between responses (nothing was lost): closed and opened again.
void Worker::reconnect(Connection& c, std::uint64_t now) {
    close_connection(c);
    ++stats_.reconnects;
    if (sending_allowed(now)) open_connection(c, now);
}

void Worker::close_connection(Connection& c) {
    assert(inflight_total_ >= c.inflight);
    c.fd.reset();  // also leaves the epoll set
    inflight_total_ -= c.inflight;
    c.state = State::closed;
    c.head = c.inflight = 0;
    c.unsent_bytes = 0;
    c.echo_offset = 0;
    c.has_pending_arrival = false;
    c.parser.reset();
}

void Worker::on_eof(Connection& c, std::uint64_t now) {
    if (plan_.protocol == Protocol::http && c.inflight > 0 &&
        c.parser.finish_on_eof() == HttpResponseParser::Status::complete) {
        const std::uint32_t generation = c.generation;
        on_response(c, now);  // a body delimited by the close
        if (c.generation != generation || c.state != State::open) return;
    }
    if (c.inflight > 0 || c.echo_offset != 0 || c.parser.in_progress()) {
        fail(c, ErrorKind::read, 0, now);  // closed mid-response or with requests unanswered
        return;
    }
    reconnect(c, now);  // an idle keep-alive connection the server closed: not an error
}

void Worker::check_timeouts(std::uint64_t now) {
    for (auto& c : connections_) {
        switch (c.state) {
            case State::connecting:
                if (now - c.connect_start_ns > plan_.timeout_ns) fail(c, ErrorKind::connect, ETIMEDOUT, now);
                break;
            case State::open:
                if (c.inflight > 0 && now - c.sent_ns[c.head] > plan_.timeout_ns)
                    fail(c, ErrorKind::timeout, ETIMEDOUT, now);
                break;
            case State::backoff:
                if (now < c.retry_at_ns) break;
                c.state = State::closed;
                replace(c, now);
                break;
            case State::closed:
                break;
        }
    }
}

// ------------------------------------------------------------------------------- open loop

// Hands every due arrival to a connection that can take one. Arrivals that find none wait (their
// latency keeps growing from the due time); they are sent as soon as a connection frees up.
void Worker::dispatch_arrivals(std::uint64_t now) {
    const auto depth = static_cast<std::uint32_t>(plan_.pipeline);
    std::uint64_t due = schedule_.due_count(now);
    while (schedule_.sent() < due && !free_list_.empty()) {
        Connection& c = connections_[free_list_.back()];
        // In close mode an arrival opens a closed connection, or takes one the start opened.
        const bool usable = plan_.mode == ConnectionMode::close
                                ? (c.state == State::closed || c.state == State::open) && c.inflight == 0 &&
                                      !c.has_pending_arrival
                                : c.state == State::open && c.inflight < depth;
        if (!usable) {
            c.available = false;
            free_list_.pop_back();
            continue;
        }
        const std::uint32_t room = plan_.mode == ConnectionMode::close ? 1 : depth - c.inflight;
        const auto count = send_budget(
            static_cast<std::uint32_t>(std::min<std::uint64_t>(room, due - schedule_.sent())), now);
        if (count == 0) return;
        for (std::uint32_t i = 0; i < count; ++i) {
            due_scratch_[i] = schedule_.take();
            if (now - std::min(now, due_scratch_[i]) > kLateSendNs && recording(now)) ++stats_.late_sends;
        }
        if (count == room) {
            c.available = false;
            free_list_.pop_back();
        }
        if (plan_.mode == ConnectionMode::close && c.state == State::closed) {
            c.has_pending_arrival = true;
            c.pending_due_ns = due_scratch_[0];
            open_connection(c, now);
        } else {
            send_requests(c, count, now, due_scratch_.data());
        }
    }
}

void Worker::make_available(Connection& c) {
    if (c.available) return;
    c.available = true;
    free_list_.push_back(index_of(c));
}

// ---------------------------------------------------------------------------------- helpers

bool Worker::sending_allowed(std::uint64_t now) const noexcept {
    if (stopping_) return false;
    return plan_.request_quota == 0 || !recording(now) || sent_for_quota_ < plan_.request_quota;
}

std::uint32_t Worker::send_budget(std::uint32_t wanted, std::uint64_t now) const noexcept {
    if (!sending_allowed(now)) return 0;
    if (plan_.request_quota == 0 || !recording(now)) return wanted;
    return static_cast<std::uint32_t>(std::min<std::uint64_t>(wanted, plan_.request_quota - sent_for_quota_));
}

void LoadWorker::count_error(ErrorKind kind, int err, std::uint64_t count, std::uint64_t now) {
    stats_.errors[static_cast<std::size_t>(kind)] += count;
    if (err > 0)
        stats_.errors_by_errno[static_cast<std::size_t>(err) < stats_.errors_by_errno.size() ? err : 0] +=
            count;
    if (recording(now)) interval_of(now).errors += count;
}

void LoadWorker::publish_live() {
    live_.requests.store(stats_.requests, std::memory_order_relaxed);
    live_.errors.store(stats_.total_errors(), std::memory_order_relaxed);
}

// The last interval (with the drain) goes to --series-file's sink before main can look.
void LoadWorker::end_run(std::uint64_t now) {
    intervals_.finish(now);
    publish_live();
    live_.done.store(true);
}

// The window is over: no new requests; connections still connecting are dropped (not errors);
// requests in flight get up to --timeout to be answered.
void Worker::begin_stop(std::uint64_t now) {
    stopping_ = true;
    drain_deadline_ns_ = now + plan_.timeout_ns;
    if (plan_.rate > 0) {
        const std::uint64_t end = plan_.measure_end_ns ? std::min(now, plan_.measure_end_ns) : now;
        const std::uint64_t due = schedule_.due_count(end);
        if (due > schedule_.sent()) stats_.unsent_arrivals += due - schedule_.sent();
    }
    for (auto& c : connections_) {
        if (c.state == State::connecting && c.has_pending_arrival) ++stats_.unsent_arrivals;
        if (c.state == State::connecting || c.state == State::backoff) close_connection(c);
    }
}

// Requests still unanswered at the end are timeouts, not forgotten.
// The sockets stay open until the Worker is destroyed: the caller samples the server first, and a
// thread-per-connection server's threads, with their context-switch counts, end with them.
void Worker::finish(std::uint64_t now) {
    for (auto& c : connections_) {
        if (c.inflight > 0) count_error(ErrorKind::timeout, ETIMEDOUT, c.inflight, now);
    }
    end_run(now);
}

}  // namespace loadgen
