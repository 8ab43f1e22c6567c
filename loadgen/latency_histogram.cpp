#include "loadgen/latency_histogram.hpp"

#include <algorithm>
#include <cmath>

namespace loadgen {

std::uint64_t LatencyHistogram::lowest_in(std::size_t bucket) noexcept {
    if (bucket < kLinearLimit) return bucket;
    const std::size_t above = bucket - kLinearLimit;
    const int shift = static_cast<int>(above / kSubBuckets) + 1;
    const std::uint64_t sub = above % kSubBuckets;
    return (kSubBuckets + sub) << shift;
}

std::uint64_t LatencyHistogram::highest_in(std::size_t bucket) noexcept {
    if (bucket < kLinearLimit) return bucket;
    const int shift = static_cast<int>((bucket - kLinearLimit) / kSubBuckets) + 1;
    return lowest_in(bucket) + (std::uint64_t{1} << shift) - 1;
}

void LatencyHistogram::merge(const LatencyHistogram& other) noexcept {
    for (std::size_t i = 0; i < kBucketCount; ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    sum_ += other.sum_;
    sum_squares_ += other.sum_squares_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
}

void LatencyHistogram::add_to_bucket(std::size_t bucket, std::uint64_t count) noexcept {
    if (count == 0) return;
    bucket = std::min(bucket, kBucketCount - 1);
    counts_[bucket] += count;
    count_ += count;
    const std::uint64_t mid = (lowest_in(bucket) + highest_in(bucket)) / 2;
    sum_ += mid * count;
    sum_squares_ += static_cast<double>(mid) * static_cast<double>(mid) * static_cast<double>(count);
    min_ = std::min(min_, lowest_in(bucket));
    max_ = std::max(max_, highest_in(bucket));
}

void LatencyHistogram::set_sums(std::uint64_t sum_ns, double sum_squares_ns2, std::uint64_t min_ns,
                                std::uint64_t max_ns) noexcept {
    sum_ = sum_ns;
    sum_squares_ = sum_squares_ns2;
    min_ = min_ns;
    max_ = max_ns;
}

void LatencyHistogram::clear() noexcept {
    std::fill(counts_.begin(), counts_.end(), 0);
    count_ = sum_ = max_ = 0;
    sum_squares_ = 0;
    min_ = UINT64_MAX;
}

double LatencyHistogram::mean() const noexcept {
    return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0.0;
}

double LatencyHistogram::stdev() const noexcept {
    if (count_ < 2) return 0.0;
    const double n = static_cast<double>(count_);
    const double m = mean();
    const double variance = sum_squares_ / n - m * m;
    return variance > 0 ? std::sqrt(variance) : 0.0;
}

std::uint64_t LatencyHistogram::percentile(double p) const noexcept {
    if (count_ == 0) return 0;
    p = std::clamp(p, 0.0, 100.0);
    // The rank of the p-th percentile value, 1-based (nearest-rank definition).
    auto rank = static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
    rank = std::clamp<std::uint64_t>(rank, 1, count_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBucketCount; ++i) {
        seen += counts_[i];
        if (seen >= rank) return std::clamp(highest_in(i), min(), max_);
    }
    return max_;
}

}  // namespace loadgen
