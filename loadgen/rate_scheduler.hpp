#pragma once
// The open-loop arrival schedule of one thread: arrival k is due at start + k * interval, fixed
// in advance, whatever the server does. A request's latency is measured from its due time, so a
// server that stalls is charged for every arrival it held up (no coordinated omission).
//
// Arrivals that are due but could not be sent yet (every connection busy) are not stored: they
// are the indices between sent() and due(now), and each one's due time is computed from its
// index. Pure arithmetic, no clock: the caller passes `now`.

#include <cstdint>

namespace loadgen {

class RateScheduler {
public:
    RateScheduler() = default;
    // `rate_per_s` arrivals per second starting at `start_ns`; `phase` (0..1) offsets this thread's
    // schedule so several threads do not all send at the same instants.
    RateScheduler(double rate_per_s, std::uint64_t start_ns, double phase = 0.0) noexcept
        : interval_ns_(1e9 / rate_per_s),
          start_ns_(static_cast<double>(start_ns) + phase * (1e9 / rate_per_s)) {}

    double interval_ns() const noexcept { return interval_ns_; }

    // Due time of arrival `index`.
    std::uint64_t due_time(std::uint64_t index) const noexcept {
        return static_cast<std::uint64_t>(start_ns_ + static_cast<double>(index) * interval_ns_);
    }
    // Number of arrivals due at or before `now_ns`.
    std::uint64_t due_count(std::uint64_t now_ns) const noexcept {
        const double t = static_cast<double>(now_ns);
        if (t < start_ns_) return 0;
        auto n = static_cast<std::uint64_t>((t - start_ns_) / interval_ns_) + 1;
        // Guard the floating-point edge: arrival n-1 must be due, arrival n must not be.
        while (n > 0 && due_time(n - 1) > now_ns) --n;
        while (due_time(n) <= now_ns) ++n;
        return n;
    }

    // Arrivals handed to a connection so far; the next one to send is arrival sent().
    std::uint64_t sent() const noexcept { return sent_; }
    std::uint64_t backlog(std::uint64_t now_ns) const noexcept {
        const std::uint64_t due = due_count(now_ns);
        return due > sent_ ? due - sent_ : 0;
    }
    // Takes the next arrival; returns its due time.
    std::uint64_t take() noexcept { return due_time(sent_++); }
    // When the next unsent arrival is due (for the event loop's wait).
    std::uint64_t next_due() const noexcept { return due_time(sent_); }

private:
    double interval_ns_ = 0;
    double start_ns_ = 0;
    std::uint64_t sent_ = 0;
};

}  // namespace loadgen
