#pragma once
// The serverbench.result/1 document: built from a run, read back, and merged exactly (bucket
// counts and running sums add; percentiles are recomputed from the merged buckets).

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "loadgen/latency_histogram.hpp"
#include "loadgen/options.hpp"
#include "loadgen/proc_sampler.hpp"
#include "loadgen/run_stats.hpp"
#include "loadgen/udp_counters.hpp"

namespace loadgen {

inline constexpr const char* kResultSchema = "serverbench.result/1";

// Latency summary in microseconds: min, mean, stdev, p50, p90, p99, p99_9, max, plus count and
// the exact running sums (sum_ns, sum_squares_ns2) that an exact merge needs, and `histogram`:
// [upper_bound_us, count] for each non-empty bucket (upper bound = the bucket's highest value).
nlohmann::json histogram_to_json(const LatencyHistogram& h);
// The inverse: bucket indices rebuilt from the upper bounds (exact: a bound is a whole number of
// nanoseconds). Throws std::runtime_error on a malformed document.
LatencyHistogram histogram_from_json(const nlohmann::json& j);

// One "timeseries" entry: t_s (seconds from the window's start to the interval's end, `end_ms`),
// requests, errors, p50_us, p99_us and histogram (the interval's buckets, mergeable).
nlohmann::json interval_json(std::uint64_t end_ms, std::uint64_t requests, std::uint64_t errors,
                             const LatencyHistogram& latency);

// --series-file: where the timeseries went instead of the result (interval_sink.hpp).
struct SeriesRecord {
    std::string path;
    std::uint64_t lines = 0;       // intervals written
    std::uint64_t late_parts = 0;  // threads' parts added to a later line than their own
    std::string error;             // empty: every line written
};

// The measured window's edges on loadgen's clocks, and its --window-fifo signals.
struct WindowRecord {
    std::uint64_t start_ns = 0, end_ns = 0;  // CLOCK_MONOTONIC
    double start_unix_s = 0, end_unix_s = 0;
    struct CounterControl {
        std::string fifo, ack_fifo;
        std::uint64_t enable_ns = 0, disable_ns = 0;  // when each line was written
        std::optional<double> enable_ack_us, disable_ack_us;
        std::string error;  // empty: every line written (and acknowledged, with an ACK FIFO)
    };
    std::optional<CounterControl> control;
};

struct RunContext {
    const Options* options = nullptr;
    std::string started_at;  // UTC ISO-8601
    double measured_s = 0;   // length of the measured window
    double loadgen_user_s = 0, loadgen_sys_s = 0;
    std::string loadgen_cpus;                         // from --cpus or the affinity mask
    std::optional<ProcessTreeSnapshot> server_delta;  // CPU and context switches over the window
    ProcessTreeSampler::Peaks server_peaks;
    std::string server_cpus;  // Cpus_allowed_list of --server-pid ("" = unknown)
    WindowRecord window;
    // Over UDP: the kernel's drop counters from the window's start to the end of the drain (none
    // over Unix datagram sockets), and the socket buffer sizes.
    std::optional<UdpDrops> udp_drops;
    std::optional<SocketBuffers> udp_buffers;  // a fresh socket's: loadgen's flows, a server that sets none
    std::optional<SeriesRecord> series;        // --series-file
};

nlohmann::json make_result(const RunContext& ctx, const RunStats& stats);

// Sums several results of load generators that ran side by side. Throws std::runtime_error.
nlohmann::json merge_results(const std::vector<nlohmann::json>& results);

// Writes the document to `out` ("" = stdout); false (with a line on stderr) if it cannot.
bool write_result(const nlohmann::json& result, const std::string& out);

// 0 when the run had no errors, established every connection, (open loop) was valid and wrote
// its --series-file whole; else 1.
int exit_code_of(const nlohmann::json& result);

// "server", "loadgen" or "neither": whichever side used >= 90% of the CPU it had.
std::string saturation_bound(double server_util, double loadgen_util);

}  // namespace loadgen
