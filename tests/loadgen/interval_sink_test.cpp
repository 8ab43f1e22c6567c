// --series-file's path as the worker threads drive it, with the clock injected instead of read:
// each simulated thread has its IntervalRecorder (records into at(now), calls retire_due(now) on
// every wake-up, finish() at the end, as Worker and DatagramWorker do), all hand over to one
// IntervalSink, and the test reads back the file it wrote. No sleeping, no threads.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <deque>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "loadgen/engine.hpp"
#include "loadgen/interval_sink.hpp"

namespace loadgen {
namespace {

using nlohmann::json;

constexpr std::uint64_t kMs = 1'000'000;

// Under AddressSanitizer, freed blocks (each line's JSON) wait in a quarantine of up to 256 MB
// before reuse: the resident set then measures the quarantine, not loadgen.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kResidentSetMeansSomething = false;
#else
constexpr bool kResidentSetMeansSomething = true;
#endif

// The resident set of this process, from /proc/self/statm (its second field, in pages).
std::uint64_t resident_bytes() {
    std::ifstream in("/proc/self/statm");
    std::uint64_t size = 0, resident = 0;
    in >> size >> resident;
    return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

std::vector<json> read_lines(const std::string& path) {
    std::vector<json> lines;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
    return lines;
}

double us(std::uint64_t ns) {
    return static_cast<double>(ns) / 1e3;
}

// Simulated worker threads: each with its own recorder, all on one sink.
struct Threads {
    Threads(IntervalSink& sink, int n, std::uint64_t interval_ns, std::uint64_t start_ns, std::uint64_t end_ns)
        : kept(static_cast<std::size_t>(n)) {
        for (int t = 0; t < n; ++t) {
            recorders.emplace_back(kept[static_cast<std::size_t>(t)], &sink, t, interval_ns);
            recorders.back().set_window(start_ns, end_ns);
        }
    }
    // One response of thread t at `now`, as Worker::on_response records it.
    void respond(int t, std::uint64_t now, std::uint64_t latency_ns) {
        IntervalStats& s = recorders[static_cast<std::size_t>(t)].at(now);
        ++s.requests;
        s.latency.record(latency_ns);
    }
    IntervalRecorder& operator[](int t) { return recorders[static_cast<std::size_t>(t)]; }

    std::vector<std::vector<IntervalStats>> kept;  // what each would keep without a sink: stays empty
    std::deque<IntervalRecorder> recorders;
};

class IntervalSinkTest : public testing::Test {
protected:
    void TearDown() override { std::remove(path_.c_str()); }
    const std::string path_ = testing::TempDir() + "series_" + std::to_string(::getpid()) + ".jsonl";
};

// 20,000 intervals of 100 ms (33 minutes of run) through 4 threads: one line per interval, in
// order, with the right counts, and memory flat from interval 2,000 on. Thread 3 is slow: it
// sleeps through every third interval, so it hands over late and skips intervals. Every
// thousandth interval has no events at all.
TEST_F(IntervalSinkTest, TwentyThousandIntervalsInConstantMemory) {
    constexpr int kThreads = 4;
    constexpr std::uint64_t kIntervals = 20'000, kInterval = 100 * kMs, kProbe = 12'345;
    constexpr std::uint64_t kMaxGrowth = 1 << 20;  // 1 MiB: a few slots of 35 KB would show, 20,000 could not hide
    const std::uint64_t start = monotonic_ns(), end = start + kIntervals * kInterval;
    IntervalSink sink(path_, kThreads, kInterval);
    sink.set_window(start, end);
    Threads threads(sink, kThreads, kInterval, start, end);

    std::mt19937_64 rng(7);
    std::vector<std::uint64_t> requests(kIntervals), errors(kIntervals);
    LatencyHistogram probe;  // the samples of interval kProbe, recorded directly
    std::uint64_t resident_at_2000 = 0;
    for (std::uint64_t i = 0; i < kIntervals; ++i) {
        if (i == 2'000) resident_at_2000 = resident_bytes();
        for (std::uint64_t wake : {1 * kMs, 40 * kMs, 90 * kMs}) {
            for (int t = 0; t < kThreads; ++t) {
                if (t == 3 && i % 3 == 1) continue;  // asleep
                const std::uint64_t now = start + i * kInterval + wake + static_cast<std::uint64_t>(t) * kMs;
                threads[t].retire_due(now);
                const std::uint64_t events = i % 1000 == 999 ? 0 : rng() % 4;
                for (std::uint64_t e = 0; e < events; ++e) {
                    const std::uint64_t latency = 20'000 + rng() % 5'000'000;
                    threads.respond(t, now, latency);
                    ++requests[i];
                    if (i == kProbe) probe.record(latency);
                }
                if (events != 0 && rng() % 50 == 0) {
                    ++threads[t].at(now).errors;  // as count_error does
                    ++errors[i];
                }
            }
        }
    }
    for (int t = 0; t < kThreads; ++t) threads[t].finish(end + 5 * kMs);  // after the drain
    const std::uint64_t resident_at_end = resident_bytes();

    if (kResidentSetMeansSomething) {
        EXPECT_LE(resident_at_end, resident_at_2000 + kMaxGrowth)
            << "resident set grew from " << resident_at_2000 << " to " << resident_at_end << " bytes";
    }
    std::printf("resident set: %llu KiB at interval 2,000, %llu KiB at 20,000\n",
                static_cast<unsigned long long>(resident_at_2000 >> 10),
                static_cast<unsigned long long>(resident_at_end >> 10));
    for (const auto& kept : threads.kept) EXPECT_TRUE(kept.empty());
    EXPECT_EQ(sink.lines_written(), kIntervals);
    EXPECT_EQ(sink.late_parts(), 0u);
    EXPECT_EQ(sink.error(), "");

    const std::vector<json> lines = read_lines(path_);
    ASSERT_EQ(lines.size(), kIntervals);
    for (std::uint64_t i = 0; i < kIntervals; ++i) {
        const json& line = lines[i];
        ASSERT_NEAR(line["t_s"].get<double>(), 0.1 * static_cast<double>(i + 1), 1e-6) << i;
        ASSERT_EQ(line["requests"].get<std::uint64_t>(), requests[i]) << i;
        ASSERT_EQ(line["errors"].get<std::uint64_t>(), errors[i]) << i;
        ASSERT_DOUBLE_EQ(line["throughput_rps"].get<double>(), static_cast<double>(requests[i]) * 10) << i;
        if (i > 0) {
            ASSERT_NEAR(line["unix_s"].get<double>() - lines[i - 1]["unix_s"].get<double>(), 0.1, 1e-3) << i;
        }
    }
    const json& empty = lines[999];
    EXPECT_EQ(empty["requests"], 0u);
    EXPECT_EQ(empty["p50_us"], 0.0);  // as an empty "timeseries" entry has it
    EXPECT_EQ(empty["max_us"], 0.0);
    EXPECT_TRUE(empty["histogram"].empty());

    const json& p = lines[kProbe];
    ASSERT_GT(probe.count(), 10u);
    EXPECT_EQ(p["requests"].get<std::uint64_t>(), probe.count());
    EXPECT_EQ(p["p50_us"].get<double>(), us(probe.percentile(50)));
    EXPECT_EQ(p["p90_us"].get<double>(), us(probe.percentile(90)));
    EXPECT_EQ(p["p99_us"].get<double>(), us(probe.percentile(99)));
    EXPECT_EQ(p["max_us"].get<double>(), us(probe.max()));
}

// A thread that hands over nothing for longer than the lag (two intervals and a second) does not
// hold the lines back; its part, when it comes, is added to the next line written and counted.
TEST_F(IntervalSinkTest, ALatePartGoesToTheNextLineAndIsCounted) {
    constexpr std::uint64_t kInterval = 100 * kMs;
    const std::uint64_t start = 1'000 * kMs * 1'000, end = start + 50 * kInterval;
    IntervalSink sink(path_, 2, kInterval);
    sink.set_window(start, end);
    Threads threads(sink, 2, kInterval, start, end);
    for (int r = 0; r < 5; ++r) threads.respond(1, start + 1 * kMs, 1'000'000);  // then thread 1 stalls
    for (std::uint64_t i = 0; i <= 20; ++i) {
        threads[0].retire_due(start + i * kInterval + 1 * kMs);
        if (i < 20) threads.respond(0, start + i * kInterval + 1 * kMs, 2'000'000);
    }
    // At 2.001 s, intervals closed by 0.801 s (1.2 s ago) are out: 0 to 7.
    ASSERT_EQ(sink.lines_written(), 8u);
    threads[1].retire_due(start + 20 * kInterval + 2 * kMs);  // hands over interval 0
    EXPECT_EQ(sink.late_parts(), 1u);
    threads[0].finish(end + 1 * kMs);
    threads[1].finish(end + 1 * kMs);

    const std::vector<json> lines = read_lines(path_);
    ASSERT_EQ(lines.size(), 50u);
    std::uint64_t total = 0;
    for (const json& line : lines) total += line["requests"].get<std::uint64_t>();
    EXPECT_EQ(total, 25u);
    EXPECT_EQ(lines[0]["requests"], 1u);  // thread 0's part only
    EXPECT_EQ(lines[8]["requests"], 6u);  // its own and the late 5
    EXPECT_EQ(lines[9]["requests"], 1u);
}

// The window's last interval takes the drain: its line waits for every thread, however long
// past the lag the drain lasts, and its throughput is over the part of the window it covers.
TEST_F(IntervalSinkTest, TheLastLineWaitsForTheDrain) {
    constexpr std::uint64_t kInterval = 1'000 * kMs;
    const std::uint64_t start = 5'000 * kMs, end = start + 2'500 * kMs;  // 3 intervals, the last half
    IntervalSink sink(path_, 2, kInterval);
    sink.set_window(start, end);
    Threads threads(sink, 2, kInterval, start, end);
    threads.respond(0, start + 2'100 * kMs, 1'000);
    threads[1].retire_due(start + 2'200 * kMs);  // in the last interval too
    threads[0].finish(end + 10 * kMs);
    EXPECT_EQ(sink.lines_written(), 2u);
    threads.respond(1, end + 4'000 * kMs, 4'000'000'000);  // answered 4 s into the drain
    threads[1].finish(end + 4'000 * kMs);
    const std::vector<json> lines = read_lines(path_);
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_EQ(lines[2]["t_s"], 3);
    EXPECT_EQ(lines[2]["requests"], 2u);
    EXPECT_DOUBLE_EQ(lines[2]["throughput_rps"].get<double>(), 4.0);  // 2 over 0.5 s
    EXPECT_EQ(sink.late_parts(), 0u);
}

// A request quota has no end known in advance: the lines go up to the last interval with
// events, empty ones between included, as the "timeseries" array does.
TEST_F(IntervalSinkTest, ARequestQuotaRunEndsAtItsLastEvent) {
    constexpr std::uint64_t kInterval = 100 * kMs;
    const std::uint64_t start = 7'000 * kMs;
    IntervalSink sink(path_, 1, kInterval);
    sink.set_window(start, 0);
    Threads threads(sink, 1, kInterval, start, 0);
    for (std::uint64_t i : {0, 2, 5}) threads.respond(0, start + i * kInterval + 1, 1'000);
    threads[0].retire_due(start + 9 * kInterval);
    threads[0].finish(start + 9 * kInterval);
    const std::vector<json> lines = read_lines(path_);
    ASSERT_EQ(lines.size(), 6u);
    for (std::uint64_t i = 0; i < lines.size(); ++i)
        EXPECT_EQ(lines[i]["requests"].get<std::uint64_t>(), i == 0 || i == 2 || i == 5 ? 1u : 0u) << i;
}

TEST(IntervalSink, AnUnwritablePathIsAUsageError) {
    EXPECT_THROW(IntervalSink(testing::TempDir(), 1, 100 * kMs), UsageError);
    EXPECT_THROW(IntervalSink("/nonexistent-dir/series.jsonl", 1, 100 * kMs), UsageError);
}

}  // namespace
}  // namespace loadgen
