// Pure parts of the load generator: histogram, HTTP response parser, rate scheduler.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "loadgen/http_response_parser.hpp"
#include "loadgen/latency_histogram.hpp"
#include "loadgen/rate_scheduler.hpp"
#include "loadgen/result_json.hpp"

using namespace loadgen;

TEST(LatencyHistogram, RelativeErrorBoundFrom1usTo60s) {
    for (std::uint64_t v = 1000; v <= 60'000'000'000ull; v = v + v / 97 + 1) {
        const auto b = LatencyHistogram::bucket_of(v);
        EXPECT_LE(LatencyHistogram::lowest_in(b), v);
        EXPECT_GE(LatencyHistogram::highest_in(b), v);
        const double err = static_cast<double>(LatencyHistogram::highest_in(b) - LatencyHistogram::lowest_in(b)) / static_cast<double>(v);
        EXPECT_LE(err, 0.01) << v;
    }
}

TEST(LatencyHistogram, MergeEqualsRecordingIntoOne) {
    std::mt19937_64 rng(1);
    LatencyHistogram a, b, all;
    for (int i = 0; i < 100000; ++i) {
        const std::uint64_t v = rng() % 50'000'000'000ull;
        (i % 2 ? a : b).record(v);
        all.record(v);
    }
    a.merge(b);
    for (std::size_t i = 0; i < LatencyHistogram::kBucketCount; ++i) ASSERT_EQ(a.count_in(i), all.count_in(i));
    EXPECT_EQ(a.count(), all.count());
    EXPECT_EQ(a.sum(), all.sum());
    EXPECT_EQ(a.percentile(99), all.percentile(99));
}

TEST(LatencyHistogram, PercentilesMatchSortedArray) {
    std::mt19937_64 rng(2);
    std::lognormal_distribution<double> dist(11, 1.5);
    std::vector<std::uint64_t> values;
    LatencyHistogram h;
    for (int i = 0; i < 200000; ++i) {
        const auto v = static_cast<std::uint64_t>(dist(rng)) + 1000;
        values.push_back(v);
        h.record(v);
    }
    std::sort(values.begin(), values.end());
    for (double p : {50.0, 90.0, 99.0, 99.9, 100.0}) {
        auto rank = static_cast<std::size_t>(std::ceil(p / 100 * static_cast<double>(values.size())));
        const double exact = static_cast<double>(values[std::max<std::size_t>(rank, 1) - 1]);
        EXPECT_NEAR(static_cast<double>(h.percentile(p)), exact, exact * 0.01) << p;
    }
    EXPECT_EQ(h.max(), values.back());
    EXPECT_EQ(h.min(), values.front());
}

TEST(LatencyHistogram, JsonRoundTripIsExact) {
    LatencyHistogram h;
    for (std::uint64_t v = 1; v < 10'000'000'000ull; v = v * 3 + 7) h.record(v);
    const auto back = histogram_from_json(histogram_to_json(h));
    for (std::size_t i = 0; i < LatencyHistogram::kBucketCount; ++i) ASSERT_EQ(back.count_in(i), h.count_in(i));
    EXPECT_EQ(back.sum(), h.sum());
}

namespace {
int parse_all_split(const std::string& input, std::size_t split, std::vector<int>& statuses) {
    HttpResponseParser p;
    std::string pieces[2] = {input.substr(0, split), input.substr(split)};
    for (auto& piece : pieces) {
        const char* d = piece.data();
        std::size_t n = piece.size();
        while (n > 0) {
            auto r = p.parse(d, n);
            d += r.consumed;
            n -= r.consumed;
            if (r.status == HttpResponseParser::Status::error) return -1;
            if (r.status == HttpResponseParser::Status::complete) statuses.push_back(p.status_code());
            else break;
        }
    }
    return static_cast<int>(statuses.size());
}
}  // namespace

TEST(HttpResponseParser, EveryByteBoundaryPipelinedAndChunked) {
    const std::string input =
        "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!"
        "HTTP/1.1 100 Continue\r\n\r\n"
        "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nHello\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n"
        "HTTP/1.1 204 No Content\r\n\r\n"
        "HTTP/1.0 404 Not Found\r\ncontent-length: 0\r\n\r\n";
    for (std::size_t split = 0; split <= input.size(); ++split) {
        std::vector<int> statuses;
        ASSERT_EQ(parse_all_split(input, split, statuses), 4) << split;
        EXPECT_EQ(statuses, (std::vector<int>{200, 201, 204, 404}));
    }
}

TEST(HttpResponseParser, BadInputIsAnError) {
    for (const std::string bad : {"garbage\r\n", "HTTP/1.1 2x0 OK\r\n", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                                  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "HTTP/1.1 200 OK\r\nno colon\r\n"}) {
        std::vector<int> s;
        EXPECT_EQ(parse_all_split(bad, 0, s), -1) << bad;
    }
    HttpResponseParser p;
    const std::string truncated = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    EXPECT_EQ(p.parse(truncated.data(), truncated.size()).status, HttpResponseParser::Status::need_more);
    EXPECT_EQ(p.finish_on_eof(), HttpResponseParser::Status::error);
    HttpResponseParser q;
    const std::string until_close = "HTTP/1.0 200 OK\r\n\r\nbody";
    q.parse(until_close.data(), until_close.size());
    EXPECT_EQ(q.finish_on_eof(), HttpResponseParser::Status::complete);
}

// Bytes that cannot start a status line fail at once, without waiting for a line feed that a
// garbage-sending server may never send (the load generator would otherwise see a timeout).
TEST(HttpResponseParser, GarbageWithoutLineFeedFailsAtOnce) {
    for (const std::string& bad : {std::string("\x01\x02junk"), std::string("X"), std::string("HTTP/2"),
                                  std::string("HTTQ"), std::string("\r\n")}) {
        HttpResponseParser p;
        EXPECT_EQ(p.parse(bad.data(), bad.size()).status, HttpResponseParser::Status::error) << bad;
    }
    // A valid prefix split anywhere still waits for more.
    const std::string prefix = "HTTP/1.1 20";
    for (std::size_t split = 0; split <= prefix.size(); ++split) {
        HttpResponseParser p;
        EXPECT_EQ(p.parse(prefix.data(), split).status, HttpResponseParser::Status::need_more);
        EXPECT_EQ(p.parse(prefix.data() + split, prefix.size() - split).status, HttpResponseParser::Status::need_more);
    }
}

TEST(RateScheduler, ArrivalsEvenlySpacedAndBacklogCounted) {
    RateScheduler s(1000.0, 1'000'000'000);
    EXPECT_EQ(s.due_count(999'999'999), 0u);
    EXPECT_EQ(s.due_count(1'000'000'000), 1u);
    EXPECT_EQ(s.due_count(1'010'000'000), 11u);
    EXPECT_EQ(s.due_time(5), 1'005'000'000u);
    EXPECT_EQ(s.backlog(1'010'000'000), 11u);
    EXPECT_EQ(s.take(), 1'000'000'000u);
    EXPECT_EQ(s.backlog(1'010'000'000), 10u);
    EXPECT_EQ(s.next_due(), 1'001'000'000u);
}
