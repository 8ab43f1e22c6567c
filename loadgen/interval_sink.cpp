#include "loadgen/interval_sink.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>

#include "loadgen/engine.hpp"
#include "loadgen/options.hpp"
#include "loadgen/result_json.hpp"

namespace loadgen {
namespace {

bool empty(const IntervalStats& s) {
    return s.requests == 0 && s.errors == 0 && s.latency.count() == 0;
}

void clear(IntervalStats& s) {
    s.requests = s.errors = 0;
    if (s.latency.count() != 0) s.latency.clear();
}

bool write_all(int fd, const std::string& bytes) {
    for (std::size_t done = 0; done < bytes.size();) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        done += static_cast<std::size_t>(n);
    }
    return true;
}

// A "timeseries" entry (the same fields, from the same code), led by the interval's end on both
// clocks, with the throughput, p90 and max beside.
nlohmann::ordered_json line_json(std::uint64_t index, const IntervalGrid& grid, const IntervalStats& s) {
    const std::uint64_t end_ns = (index + 1) * grid.interval_ns;  // from the window's start
    const nlohmann::json entry = interval_json((end_ns + 500'000) / 1'000'000, s.requests, s.errors, s.latency);
    const auto us = [](std::uint64_t ns) { return static_cast<double>(ns) / 1e3; };
    return {{"t_s", entry["t_s"]},
            {"unix_s", unix_time_of(grid.start_ns + end_ns)},
            {"requests", s.requests},
            {"errors", s.errors},
            {"throughput_rps", static_cast<double>(s.requests) * 1e9 / static_cast<double>(grid.span_of(index))},
            {"p50_us", entry["p50_us"]},
            {"p90_us", us(s.latency.percentile(90))},
            {"p99_us", entry["p99_us"]},
            {"max_us", us(s.latency.max())},
            {"histogram", entry["histogram"]}};
}

}  // namespace

// ------------------------------------------------------------------------------ the grid

IntervalGrid::IntervalGrid(std::uint64_t start, std::uint64_t end, std::uint64_t interval)
    : start_ns(start), end_ns(end), interval_ns(interval) {
    assert(interval > 0);
    if (end > start) count = (end - start + interval - 1) / interval;
}

std::uint64_t IntervalGrid::index_of(std::uint64_t now) const noexcept {
    const std::uint64_t index = now > start_ns ? (now - start_ns) / interval_ns : 0;
    return count != 0 && index >= count ? count - 1 : index;
}

std::uint64_t IntervalGrid::closes_at(std::uint64_t index) const noexcept {
    if (start_ns == UINT64_MAX || (count != 0 && index + 1 >= count)) return UINT64_MAX;
    return start_ns + (index + 1) * interval_ns;
}

std::uint64_t IntervalGrid::span_of(std::uint64_t index) const noexcept {
    if (count != 0 && index + 1 == count) return end_ns - (start_ns + index * interval_ns);
    return interval_ns;
}

// ------------------------------------------------------------------------------ the sink

// A line waits for its slowest worker at most two intervals and a second (a worker wakes at least
// every 100 ms, see the loops), so the ring needs that many slots and three more: the interval
// being written, the one the workers are in, and one for rounding.
IntervalSink::IntervalSink(const std::string& path, int workers, std::uint64_t interval_ns)
    : path_(path),
      lag_ns_(2 * interval_ns + 1'000'000'000),
      slots_(lag_ns_ / interval_ns + 3),
      worker_next_(static_cast<std::size_t>(workers), 0) {
    fd_.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd_) throw UsageError("invalid value for --series-file: '" + path + "' (" + std::strerror(errno) + ")");
    grid_.interval_ns = interval_ns;
}

void IntervalSink::set_window(std::uint64_t start_ns, std::uint64_t end_ns) {
    const std::lock_guard lock(mutex_);
    grid_ = IntervalGrid(start_ns, end_ns, grid_.interval_ns);
}

void IntervalSink::hand_over(int worker, std::uint64_t index, const IntervalStats& part, std::uint64_t now) {
    take(worker, index, part, now, false);
}

void IntervalSink::leave(int worker, std::uint64_t index, const IntervalStats& part, std::uint64_t now) {
    take(worker, index, part, now, true);
}

// A part whose line is already out (its worker was later than the lag) is added to the next line
// written, so the lines still add up to the run's totals, and counted in late_parts().
void IntervalSink::take(int worker, std::uint64_t index, const IntervalStats& part, std::uint64_t now,
                        bool leaving) {
    const std::lock_guard lock(mutex_);
    latest_now_ = std::max(latest_now_, now);
    std::uint64_t& next = worker_next_[static_cast<std::size_t>(worker)];
    next = leaving ? UINT64_MAX : std::max({next, index + 1, grid_.index_of(now)});
    if (!empty(part)) {
        if (index < next_line_) {
            index = next_line_;
            ++late_;
        }
        assert(grid_.count == 0 || index < grid_.count);  // the window's last line waits for every worker
        while (index >= next_line_ + slots_.size()) write_line();  // not in time order: the lag writes first
        IntervalStats& slot = slots_[index % slots_.size()];
        slot.requests += part.requests;
        slot.errors += part.errors;
        slot.latency.merge(part.latency);
        highest_ = std::max(highest_, index + 1);
    }
    write_ready();
}

// In order: every interval all workers are past, or that is overdue. A request quota's run has
// no end known in advance: its lines go up to the last interval with events.
void IntervalSink::write_ready() {
    const std::uint64_t all_past = *std::min_element(worker_next_.begin(), worker_next_.end());
    const std::uint64_t limit = grid_.count != 0 ? grid_.count : highest_;
    while (next_line_ < limit && (next_line_ < all_past || overdue(next_line_))) write_line();
}

bool IntervalSink::overdue(std::uint64_t index) const noexcept {
    const std::uint64_t closes = grid_.closes_at(index);
    return closes != UINT64_MAX && latest_now_ >= lag_ns_ && closes <= latest_now_ - lag_ns_;
}

// After a failed write, no more lines (the file would have a hole), but the ring moves on.
void IntervalSink::write_line() {
    IntervalStats& s = slots_[next_line_ % slots_.size()];
    if (error_.empty()) {
        if (write_all(fd_.get(), line_json(next_line_, grid_, s).dump() + "\n"))
            ++lines_;
        else
            error_ = "cannot write '" + path_ + "': " + std::strerror(errno);
    }
    clear(s);
    ++next_line_;
}

std::uint64_t IntervalSink::lines_written() const {
    const std::lock_guard lock(mutex_);
    return lines_;
}

std::uint64_t IntervalSink::late_parts() const {
    const std::lock_guard lock(mutex_);
    return late_;
}

std::string IntervalSink::error() const {
    const std::lock_guard lock(mutex_);
    return error_;
}

// --------------------------------------------------------------------------- the recorder

IntervalRecorder::IntervalRecorder(std::vector<IntervalStats>& kept, IntervalSink* sink, int worker,
                                   std::uint64_t interval_ns)
    : kept_(kept), sink_(sink), worker_(worker) {
    grid_.interval_ns = interval_ns;
}

void IntervalRecorder::set_window(std::uint64_t start_ns, std::uint64_t end_ns) {
    grid_ = IntervalGrid(start_ns, end_ns, grid_.interval_ns);
    current_kept_ = nullptr;
    current_index_ = sink_ != nullptr ? 0 : UINT64_MAX;
    current_closes_ns_ = grid_.closes_at(0);
}

IntervalStats& IntervalRecorder::kept_at(std::uint64_t now) {
    const std::uint64_t index = grid_.index_of(now);
    if (index != current_index_) {
        if (kept_.size() <= index) kept_.resize(index + 1);
        current_kept_ = &kept_[index];
        current_index_ = index;
    }
    return *current_kept_;
}

void IntervalRecorder::move_on(std::uint64_t now) {
    const std::uint64_t index = grid_.index_of(now);
    assert(index > current_index_);  // now is past the current interval's close
    sink_->hand_over(worker_, current_index_, current_, now);
    clear(current_);
    current_index_ = index;
    current_closes_ns_ = grid_.closes_at(index);
}

void IntervalRecorder::finish(std::uint64_t now) {
    if (sink_ != nullptr) sink_->leave(worker_, current_index_, current_, now);
}

}  // namespace loadgen
