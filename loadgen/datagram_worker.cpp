#include "loadgen/datagram_worker.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <cerrno>

namespace loadgen {
namespace {

constexpr std::uint64_t kLateSendNs = 1'000'000;       // a send more than 1 ms after its due time
constexpr std::uint64_t kFullSocketRetryNs = 50'000;   // EAGAIN, ENOBUFS: the queue drains in µs
constexpr std::uint64_t kRefusedRetryNs = 10'000'000;  // ECONNREFUSED: nobody listens, for now
constexpr int kMaxEvents = 256;

}  // namespace

DatagramWorker::DatagramWorker(WorkerPlan plan, LiveCounters& live)
    : LoadWorker(std::move(plan), live),
      flows_(static_cast<std::size_t>(plan_.connections)),
      request_(plan_.request.size()),
      replies_(kReplyBatch * (request_.size() + 1)) {
    const std::size_t slot = request_.size() + 1;
    for (std::size_t i = 0; i < kReplyBatch; ++i) {
        reply_iov_[i] = {replies_.data() + i * slot, slot};
        reply_headers_[i].msg_hdr.msg_iov = &reply_iov_[i];
        reply_headers_[i].msg_hdr.msg_iovlen = 1;
    }
    expiry_check_interval_ns_ = std::clamp<std::uint64_t>(plan_.timeout_ns / 10, 1'000'000, 100'000'000);
}

// ------------------------------------------------------------------------------------ the loop

void DatagramWorker::run() {
    prepare_thread();
    bool go = open_flows();
    if (plan_.gate != nullptr)
        go = hold_until_go(go);  // arrives at the gate even when it cannot run
    else if (go)
        begin_load(monotonic_ns());
    if (!go) {
        end_run(monotonic_ns());
        return;
    }
    for (;;) {
        const std::uint64_t now = monotonic_ns();
        intervals_.retire_due(now);  // next_wake() is at most 100 ms away (the expiry checks)
        if (!stopping_ && window_over(now)) begin_stop(now);
        if (stopping_ && (outstanding() == 0 || now >= drain_deadline_ns_)) break;
        if (now >= next_expiry_check_ns_) {
            expire_lost(now);
            next_expiry_check_ns_ = now + expiry_check_interval_ns_;
        }
        if (!stopping_ && plan_.rate > 0) dispatch_arrivals(now);
        if (!stopping_ && plan_.rate == 0) retry_unsent(now);
        publish_live();
        poll_events(next_wake(now), now);
    }
    finish();
}

// False if the thread cannot work at all (no epoll instance). A flow that cannot open is counted
// as a connect error, and the run goes on with the others.
bool DatagramWorker::open_flows() {
    const std::uint64_t now = monotonic_ns();
    epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_) {
        count_error(ErrorKind::connect, errno, flows_.size(), now);
        return false;
    }
    for (std::uint32_t i = 0; i < flows_.size(); ++i) {
        if (open_flow(flows_[i], i))
            ++stats_.established;
        else
            count_error(ErrorKind::connect, errno, 1, now);
    }
    return true;
}

// A connected socket: its own source port, and the kernel hands it only the server's datagrams.
// A Unix datagram socket is bound first (an autobind address), or the server could not answer.
bool DatagramWorker::open_flow(Flow& f, std::uint32_t index) {
    const Target& target = plan_.target;
    UniqueFd fd{::socket(target.address.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
    if (!fd) return false;
    if (!target.is_inet()) {
        const sockaddr_un autobind{.sun_family = AF_UNIX, .sun_path = {}};
        if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&autobind), sizeof(sa_family_t)) != 0) return false;
    }
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&target.address), target.length) != 0) return false;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = index;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) != 0) return false;
    f.fd = std::move(fd);
    return true;
}

// --start-on-stdin: reports how many flows are open and waits for the controller's go.
bool DatagramWorker::hold_until_go(bool started) {
    const std::optional<Timeline> timeline = plan_.gate->arrive_and_wait(started ? count_open() : 0);
    if (!timeline || !started) return false;
    set_timeline(*timeline);
    begin_load(monotonic_ns());
    return true;
}

// The open loop's schedule starts at the timeline's start; the closed loop owes every open flow
// --pipeline sends.
void DatagramWorker::begin_load(std::uint64_t now) {
    if (plan_.rate > 0) {
        schedule_ = RateScheduler(plan_.rate, plan_.start_ns, plan_.rate_phase);
        return;
    }
    for (std::uint32_t i = 0; i < flows_.size(); ++i) {
        if (!flows_[i].fd) continue;
        flows_[i].unsent = static_cast<std::uint32_t>(plan_.pipeline);
        send_owed(i, now);
    }
}

std::size_t DatagramWorker::count_open() const noexcept {
    return static_cast<std::size_t>(
        std::count_if(flows_.begin(), flows_.end(), [](const Flow& f) { return static_cast<bool>(f.fd); }));
}

// The end of the duration, or of the request quota (every request sent and resolved).
bool DatagramWorker::window_over(std::uint64_t now) const noexcept {
    if (plan_.measure_end_ns != 0 && now >= plan_.measure_end_ns) return true;
    if (plan_.request_quota == 0) return false;
    return count_open() == 0 || stats_.requests >= plan_.request_quota ||
           (sent_for_quota_ >= plan_.request_quota && outstanding() == 0);
}

std::uint64_t DatagramWorker::next_wake(std::uint64_t now) const noexcept {
    std::uint64_t wake = next_expiry_check_ns_;
    if (stopping_) {
        wake = std::min(wake, drain_deadline_ns_);
    } else {
        if (plan_.measure_end_ns != 0) wake = std::min(wake, plan_.measure_end_ns);
        if (send_refused_) wake = std::min(wake, retry_at_ns_);
        // Arrivals held up by full ledgers wait for a reply or a loss, not for the clock.
        if (plan_.rate > 0 && !arrivals_waiting_) wake = std::min(wake, schedule_.next_due());
    }
    return std::max(wake, now);
}

void DatagramWorker::poll_events(std::uint64_t wake, std::uint64_t now) {
    const std::uint64_t wait = wake - now;
    const timespec timeout{static_cast<time_t>(wait / 1'000'000'000), static_cast<long>(wait % 1'000'000'000)};
    std::array<epoll_event, kMaxEvents> events;
    const int n = epoll_pwait2(epoll_.get(), events.data(), kMaxEvents, &timeout, nullptr);
    if (n <= 0) return;  // timeout, or EINTR
    now = monotonic_ns();
    for (int i = 0; i < n; ++i) receive(events[static_cast<std::size_t>(i)].data.u32, now);
    send_refills();
}

// Closed loop: the next requests of the flows answered in this wake-up, sent once every reply of
// it is read, so that a reply's receive time is not pushed back by this thread's sends (as over
// TCP, docs/loadgen.md).
void DatagramWorker::send_refills() {
    for (const std::uint32_t index : refills_) send_owed(index, monotonic_ns());  // each one's send time
    refills_.clear();
}

// ------------------------------------------------------------------------------- the hot path

// Everything ready on the flow, up to a batch, in one call: a reply per wake-up is the common case,
// and reading on until EAGAIN would cost a second call for it. More than a batch waiting: the
// level-triggered epoll reports the flow again.
void DatagramWorker::receive(std::uint32_t index, std::uint64_t now) {
    const int n = ::recvmmsg(flows_[index].fd.get(), reply_headers_.data(), kReplyBatch, MSG_DONTWAIT, nullptr);
    if (n < 0) {
        // ECONNREFUSED: an ICMP "port unreachable" for an earlier request; nobody serves the port.
        if (errno != EAGAIN && errno != EINTR) count_error(ErrorKind::read, errno, 1, now);
        return;
    }
    for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
        const mmsghdr& h = reply_headers_[i];
        on_reply(index, {static_cast<const char*>(reply_iov_[i].iov_base), h.msg_len}, now);
    }
}

void DatagramWorker::on_reply(std::uint32_t index, std::span<const char> reply, std::uint64_t now) {
    Flow& f = flows_[index];
    DatagramHeader header;
    const bool matches = parse_datagram(reply, request_.size(), header, plan_.datagram_format) &&
                         (header.flow == index || header.flow == DatagramHeader::kAnyFlow);
    const FlowLedger::Reply judged = matches ? f.ledger.on_reply(header.seq) : FlowLedger::Reply{};
    switch (judged.outcome) {
        case FlowLedger::Outcome::answered:
            if (judged.counted) {
                stats_.bytes_received += reply.size();
                on_answered(judged, now);
            }
            if (plan_.rate == 0 && f.unsent++ == 0) refills_.push_back(index);
            break;
        case FlowLedger::Outcome::late:
            if (judged.counted) {  // it was counted lost when its time ran out
                --stats_.datagrams.lost;
                ++stats_.datagrams.late;
            }
            break;
        case FlowLedger::Outcome::duplicate:
            if (recording(now)) ++stats_.datagrams.duplicates;
            break;
        case FlowLedger::Outcome::unknown:
            if (recording(now)) ++stats_.datagrams.wrong;
            count_error(ErrorKind::protocol, 0, 1, now);
            break;
    }
}

void DatagramWorker::on_answered(const FlowLedger::Reply& reply, std::uint64_t now) {
    const std::uint64_t latency = now - std::min(reply.due_ns, now);
    stats_.latency.record(latency);
    if (plan_.rate > 0) stats_.latency_uncorrected.record(now - std::min(reply.sent_ns, now));
    ++stats_.requests;
    ++stats_.datagrams.answered;
    if (reply.reordered) ++stats_.datagrams.reordered;
    IntervalStats& interval = interval_of(now);
    ++interval.requests;
    interval.latency.record(latency);
}

// Sends the flow's next request. False when the socket refused it (then nothing is recorded).
bool DatagramWorker::send_one(std::uint32_t index, std::uint64_t due_ns, std::uint64_t now) {
    Flow& f = flows_[index];
    fill_datagram(request_, index, f.ledger.next_seq(), plan_.datagram_format);
    const ssize_t n = ::send(f.fd.get(), request_.data(), request_.size(), MSG_DONTWAIT);
    if (n == static_cast<ssize_t>(request_.size())) {
        const bool counted = recording(now);
        f.ledger.sent(due_ns, now, counted);
        if (counted) {
            ++stats_.datagrams.sent;
            stats_.bytes_sent += request_.size();
            ++sent_for_quota_;
        }
        return true;
    }
    send_refused_ = true;
    if (n < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
        if (recording(now)) ++stats_.datagrams.send_blocked;
        retry_at_ns_ = now + kFullSocketRetryNs;
    } else {
        count_error(ErrorKind::write, n < 0 ? errno : EMSGSIZE, 1, now);
        retry_at_ns_ = now + kRefusedRetryNs;
    }
    return false;
}

// Closed loop: sends what the flow owes, as far as the socket and the quota allow.
void DatagramWorker::send_owed(std::uint32_t index, std::uint64_t now) {
    Flow& f = flows_[index];
    while (f.unsent > 0 && sending_allowed(now) && f.ledger.can_send() && send_one(index, now, now)) --f.unsent;
}

void DatagramWorker::retry_unsent(std::uint64_t now) {
    if (!send_refused_ || now < retry_at_ns_) return;
    send_refused_ = false;
    for (std::uint32_t i = 0; i < flows_.size(); ++i)
        if (flows_[i].unsent > 0 && flows_[i].fd) send_owed(i, now);
}

// Hands every due arrival to the next flow that can take it; a late send keeps its due time.
void DatagramWorker::dispatch_arrivals(std::uint64_t now) {
    if (send_refused_ && now < retry_at_ns_) return;
    send_refused_ = false;
    const std::uint64_t due = schedule_.due_count(now);
    std::size_t passed_over = 0;
    while (schedule_.sent() < due && passed_over < flows_.size() && sending_allowed(now)) {
        const std::uint32_t index = next_flow_;
        next_flow_ = (next_flow_ + 1) % static_cast<std::uint32_t>(flows_.size());
        Flow& f = flows_[index];
        const std::uint64_t due_ns = schedule_.due_time(schedule_.sent());
        if (!f.fd || !f.ledger.can_send() || !send_one(index, due_ns, now)) {
            ++passed_over;
            continue;
        }
        schedule_.take();
        passed_over = 0;
        if (now - std::min(now, due_ns) > kLateSendNs && recording(now)) ++stats_.late_sends;
    }
    arrivals_waiting_ = schedule_.sent() < due;
}

// Requests unanswered for --timeout are lost; in the closed loop, their flows send the next.
void DatagramWorker::expire_lost(std::uint64_t now) {
    if (now < plan_.timeout_ns) return;
    for (std::uint32_t i = 0; i < flows_.size(); ++i) {
        const std::size_t lost = give_up(flows_[i], now - plan_.timeout_ns);
        if (plan_.rate == 0 && lost > 0 && flows_[i].fd) {
            flows_[i].unsent += static_cast<std::uint32_t>(lost);
            send_owed(i, now);
        }
    }
    arrivals_waiting_ = false;  // flows may have room again
}

// Gives up the flow's requests sent at or before the deadline; returns how many.
std::size_t DatagramWorker::give_up(Flow& f, std::uint64_t deadline_ns) {
    lost_scratch_.clear();
    f.ledger.expire(deadline_ns, lost_scratch_);
    for (const FlowLedger::Lost& lost : lost_scratch_)
        if (lost.counted) ++stats_.datagrams.lost;
    return lost_scratch_.size();
}

// ---------------------------------------------------------------------------------- helpers

bool DatagramWorker::sending_allowed(std::uint64_t now) const noexcept {
    if (stopping_) return false;
    return plan_.request_quota == 0 || !recording(now) || sent_for_quota_ < plan_.request_quota;
}

// The window is over: nothing more is sent; what is outstanding gets --timeout to be answered.
void DatagramWorker::begin_stop(std::uint64_t now) {
    stopping_ = true;
    drain_deadline_ns_ = now + plan_.timeout_ns;
    if (plan_.rate > 0) {
        const std::uint64_t end = plan_.measure_end_ns ? std::min(now, plan_.measure_end_ns) : now;
        const std::uint64_t due = schedule_.due_count(end);
        if (due > schedule_.sent()) stats_.unsent_arrivals += due - schedule_.sent();
    }
}

// Requests still unanswered at the end are lost. The sockets stay open until the worker is
// destroyed, as the stream worker's do.
void DatagramWorker::finish() {
    for (Flow& f : flows_) give_up(f, UINT64_MAX);
    end_run(monotonic_ns());
}

std::uint64_t DatagramWorker::outstanding() const noexcept {
    std::uint64_t n = 0;
    for (const Flow& f : flows_) n += f.ledger.outstanding();
    return n;
}

}  // namespace loadgen
