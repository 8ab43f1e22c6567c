#pragma once
// The clock of the idle timeouts, and the rule for how often an event loop looks for idle
// connections. Every event-loop model uses both, so a timeout means the same thing in each.

#include <algorithm>
#include <cstdint>
#include <ctime>

namespace sb {

// Milliseconds of CLOCK_MONOTONIC_COARSE: runs in the vDSO (no system call) and is precise to a
// few ms, which is all an idle timeout needs.
inline std::int64_t monotonic_ms() noexcept {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return std::int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
}

// How often idle connections are looked for: a quarter of the timeout, so a connection is closed
// at most 25% late, but not more often than every 10 ms (a loop would wake for nothing) nor less
// often than every second.
inline int idle_sweep_interval_ms(int idle_timeout_ms) noexcept {
    return std::clamp(idle_timeout_ms / 4, 10, 1000);
}

// When a loop sweeps next. due() says whether a sweep is due now (and schedules the next one);
// wait_ms() how long the loop may sleep before it must look again.
class IdleSweep {
public:
    explicit IdleSweep(int idle_timeout_ms) noexcept : idle_timeout_ms_(idle_timeout_ms) {}

    bool enabled() const noexcept { return idle_timeout_ms_ > 0; }

    bool due(std::int64_t now_ms) noexcept {
        if (!enabled() || now_ms < next_ms_) return false;
        next_ms_ = now_ms + idle_sweep_interval_ms(idle_timeout_ms_);
        return true;
    }

    // -1 (wait without end) when idle connections are never closed.
    int wait_ms(std::int64_t now_ms) const noexcept {
        return enabled() ? static_cast<int>(std::max<std::int64_t>(0, next_ms_ - now_ms)) : -1;
    }

    // Activity before this time is idle past the timeout.
    std::int64_t idle_before(std::int64_t now_ms) const noexcept { return now_ms - idle_timeout_ms_; }

private:
    int idle_timeout_ms_;
    std::int64_t next_ms_ = 0;
};

}  // namespace sb
