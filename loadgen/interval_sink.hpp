#pragma once
// The measured window's timeseries, one entry per --interval. Without --series-file each worker
// thread keeps every entry in memory (RunStats.intervals, merged into the JSON's "timeseries" at
// the end). With it, the entries are written to the file as the run goes, in constant memory:
// a thread keeps only the interval it is in (IntervalRecorder) and hands it to the IntervalSink
// once its time is over; the sink adds the threads' parts up in a small ring and writes each
// interval as one JSON line once every thread is past it, or two intervals and a second after its
// end, so that a thread late to hand over cannot hold the file (and the ring) back; a part that
// comes after its line is added to the next line written. One lock per interval per thread,
// never per request.

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"
#include "loadgen/run_stats.hpp"

namespace loadgen {

// The measured window cut into intervals. The last one also takes the drain after the window.
struct IntervalGrid {
    std::uint64_t start_ns = UINT64_MAX;  // CLOCK_MONOTONIC; UINT64_MAX: not known yet (before go)
    std::uint64_t end_ns = 0;             // 0: open-ended (a request quota)
    std::uint64_t interval_ns = 1;
    std::uint64_t count = 0;  // intervals in the window; 0: open-ended (a request quota)

    IntervalGrid() = default;
    IntervalGrid(std::uint64_t start, std::uint64_t end, std::uint64_t interval);  // end 0: open-ended
    std::uint64_t index_of(std::uint64_t now) const noexcept;
    // Past this instant nothing counts in interval `index` any more: its end, or never for the
    // window's last (the drain).
    std::uint64_t closes_at(std::uint64_t index) const noexcept;
    // How much of the window the interval covers: --interval, less for a last one cut short.
    std::uint64_t span_of(std::uint64_t index) const noexcept;
};

class IntervalSink {
public:
    // Creates or truncates `path`: throws UsageError naming --series-file if it cannot.
    IntervalSink(const std::string& path, int workers, std::uint64_t interval_ns);

    // The measured window (end 0: a request quota). Before any part is handed over; with
    // --start-on-stdin again at go.
    void set_window(std::uint64_t start_ns, std::uint64_t end_ns);
    // Worker `worker` is past interval `index` at `now`: its part of it.
    void hand_over(int worker, std::uint64_t index, const IntervalStats& part, std::uint64_t now);
    // The worker's last part: it hands over nothing more. Once every worker left, every line is out.
    void leave(int worker, std::uint64_t index, const IntervalStats& part, std::uint64_t now);

    const std::string& path() const { return path_; }
    std::uint64_t lines_written() const;
    std::uint64_t late_parts() const;  // parts that came after their line was out (see take())
    std::string error() const;         // empty: every line was written

private:
    void take(int worker, std::uint64_t index, const IntervalStats& part, std::uint64_t now, bool leaving);
    void write_ready();
    bool overdue(std::uint64_t index) const noexcept;
    void write_line();

    const std::string path_;
    sb::UniqueFd fd_;
    const std::uint64_t lag_ns_;  // a line waits at most this long past its interval for late workers
    mutable std::mutex mutex_;
    IntervalGrid grid_;
    std::vector<IntervalStats> slots_;        // a ring: interval i in slots_[i % size]
    std::vector<std::uint64_t> worker_next_;  // per worker: the first interval it may still hand over
    std::uint64_t next_line_ = 0;             // the next interval to write
    std::uint64_t highest_ = 0;               // one past the last interval with events
    std::uint64_t latest_now_ = 0;
    std::uint64_t lines_ = 0, late_ = 0;
    std::string error_;
};

// One worker thread's side: the interval its events count in.
class IntervalRecorder {
public:
    // `kept`: where every interval stays without a sink (RunStats.intervals).
    IntervalRecorder(std::vector<IntervalStats>& kept, IntervalSink* sink, int worker, std::uint64_t interval_ns);

    void set_window(std::uint64_t start_ns, std::uint64_t end_ns);
    // The hot path: the interval of an event at `now` (in the window or its drain). With a sink,
    // a time read a little before the current interval (earlier in the same wake-up) counts in it.
    IntervalStats& at(std::uint64_t now) {
        if (sink_ == nullptr) return kept_at(now);
        if (now >= current_closes_ns_) move_on(now);
        return current_;
    }
    // The loops call this on every wake-up, so that an interval is handed over when its time is
    // over, whether or not events came since.
    void retire_due(std::uint64_t now) {
        if (sink_ != nullptr && now >= current_closes_ns_) move_on(now);
    }
    // The thread's run is over: its last interval goes to the sink.
    void finish(std::uint64_t now);

private:
    IntervalStats& kept_at(std::uint64_t now);
    void move_on(std::uint64_t now);

    std::vector<IntervalStats>& kept_;
    IntervalSink* const sink_;
    const int worker_;
    IntervalGrid grid_;
    std::uint64_t current_index_ = UINT64_MAX;
    IntervalStats* current_kept_ = nullptr;
    std::uint64_t current_closes_ns_ = UINT64_MAX;
    IntervalStats current_;  // with a sink: the only interval this thread holds
};

}  // namespace loadgen
