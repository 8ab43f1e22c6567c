#pragma once
// Log-linear latency histogram in the spirit of HdrHistogram: values are nanoseconds, recorded in
// O(1) (one count-leading-zeros, a shift and an increment), merged exactly, and read back as
// percentiles with a relative error of at most 1/128 (< 0.8%) over the whole range.
//
// Layout: values below 256 ns each have their own bucket; above, every power-of-two range
// [2^k, 2^(k+1)) is split into 128 equal buckets, so a bucket is never wider than 1/128 of the
// values in it. Values up to 2^40 ns (about 18 minutes) are kept apart; larger ones land in the
// top bucket (max() stays exact).

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace loadgen {

class LatencyHistogram {
public:
    static constexpr int kSubBucketBits = 7;  // 128 buckets per octave
    static constexpr std::uint64_t kSubBuckets = 1u << kSubBucketBits;
    static constexpr std::uint64_t kLinearLimit = 2 * kSubBuckets;  // 256: exact below
    static constexpr int kMaxValueBits = 40;                        // 2^40 ns ~ 18 min
    static constexpr std::size_t kBucketCount =
        kLinearLimit + (kMaxValueBits - kSubBucketBits - 1) * kSubBuckets;

    LatencyHistogram() : counts_(kBucketCount, 0) {}

    // The hot path: no loop, no allocation.
    void record(std::uint64_t value_ns) noexcept {
        ++counts_[bucket_of(value_ns)];
        ++count_;
        sum_ += value_ns;
        const double v = static_cast<double>(value_ns);
        sum_squares_ += v * v;
        if (value_ns < min_) min_ = value_ns;
        if (value_ns > max_) max_ = value_ns;
    }

    static std::size_t bucket_of(std::uint64_t value_ns) noexcept {
        if (value_ns < kLinearLimit) return static_cast<std::size_t>(value_ns);
        if (value_ns >= (std::uint64_t{1} << kMaxValueBits)) return kBucketCount - 1;
        const int msb = 63 - std::countl_zero(value_ns);              // >= 8
        const int shift = msb - kSubBucketBits;                       // >= 1
        const std::uint64_t sub = (value_ns >> shift) - kSubBuckets;  // 0..127
        return static_cast<std::size_t>(kLinearLimit + (shift - 1) * kSubBuckets + sub);
    }
    // Smallest and largest value that land in `bucket`.
    static std::uint64_t lowest_in(std::size_t bucket) noexcept;
    static std::uint64_t highest_in(std::size_t bucket) noexcept;

    // Adds every count of `other`: the result is what recording both streams into one gives.
    void merge(const LatencyHistogram& other) noexcept;
    // Adds `count` values known only by their bucket (rebuilding from JSON); sums are estimated
    // from the bucket unless set afterwards with set_sums().
    void add_to_bucket(std::size_t bucket, std::uint64_t count) noexcept;
    void set_sums(std::uint64_t sum_ns, double sum_squares_ns2, std::uint64_t min_ns,
                  std::uint64_t max_ns) noexcept;
    void clear() noexcept;

    std::uint64_t count() const noexcept { return count_; }
    std::uint64_t min() const noexcept { return count_ ? min_ : 0; }
    std::uint64_t max() const noexcept { return max_; }
    std::uint64_t sum() const noexcept { return sum_; }
    double sum_squares() const noexcept { return sum_squares_; }
    double mean() const noexcept;
    double stdev() const noexcept;
    // The highest value of the bucket holding the p-th percentile (0 < p <= 100), capped at max():
    // never an underestimate by more than a bucket, never above what was seen.
    std::uint64_t percentile(double p) const noexcept;
    std::uint64_t count_in(std::size_t bucket) const noexcept { return counts_[bucket]; }

private:
    std::vector<std::uint64_t> counts_;
    std::uint64_t count_ = 0;
    std::uint64_t sum_ = 0;
    double sum_squares_ = 0;
    std::uint64_t min_ = UINT64_MAX;
    std::uint64_t max_ = 0;
};

}  // namespace loadgen
