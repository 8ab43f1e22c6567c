// The load generator's own cost per response: one LatencyHistogram::record per request on its hot
// path, and one merge per thread (or per result file) at the end of a run. If recording were not
// a few nanoseconds, the load generator would be measuring itself.

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <cmath>
#include <random>
#include <vector>

#include "loadgen/latency_histogram.hpp"

namespace {

// Latencies spread log-uniformly over 10 µs .. 10 ms, in ns: buckets all over the range, as in a
// real run, rather than one hot bucket.
std::vector<std::uint64_t> sample_latencies(std::size_t count) {
    std::mt19937_64 random(42);
    std::uniform_real_distribution<double> exponent(4.0, 7.0);
    std::vector<std::uint64_t> values(count);
    for (auto& v : values) v = static_cast<std::uint64_t>(std::pow(10.0, exponent(random)));
    return values;
}

void BM_HistogramRecord(benchmark::State& state) {
    constexpr std::size_t kSamples = 4096;  // a power of two: the index wraps with a mask
    const std::vector<std::uint64_t> values = sample_latencies(kSamples);
    loadgen::LatencyHistogram histogram;
    std::size_t i = 0;
    for (auto _ : state) {
        histogram.record(values[i++ & (kSamples - 1)]);
        benchmark::ClobberMemory();
    }
    benchmark::DoNotOptimize(histogram.count());
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HistogramRecord);

// One whole-histogram merge: a pass over every bucket, whatever the number of samples.
void BM_HistogramMerge(benchmark::State& state) {
    loadgen::LatencyHistogram total;
    loadgen::LatencyHistogram part;
    for (std::uint64_t v : sample_latencies(100'000)) part.record(v);
    for (auto _ : state) {
        total.merge(part);
        benchmark::ClobberMemory();
    }
    benchmark::DoNotOptimize(total.count());
    state.SetItemsProcessed(state.iterations());
    state.counters["buckets"] = static_cast<double>(loadgen::LatencyHistogram::kBucketCount);
}
BENCHMARK(BM_HistogramMerge);

}  // namespace
