#pragma once
// What one load-generator thread counts, merged across threads at the end (no sharing while the
// run is on, so no locks on the hot path).

#include <array>
#include <cstdint>
#include <vector>

#include "loadgen/latency_histogram.hpp"

namespace loadgen {

enum class ErrorKind { connect, read, write, timeout, protocol, reset };
constexpr int kErrorKinds = 6;
const char* to_string(ErrorKind kind);

// One entry of the timeseries: what happened in one --interval of the measured window.
struct IntervalStats {
    std::uint64_t requests = 0;
    std::uint64_t errors = 0;
    LatencyHistogram latency;
};

// UDP: what became of the datagrams sent in the measured window. Every one is answered, late or
// lost by the end of the drain; duplicates, reordered and wrong replies are counted beside.
struct DatagramCounts {
    std::uint64_t sent = 0;
    std::uint64_t answered = 0;    // within --timeout: the latency histograms hold these
    std::uint64_t late = 0;        // after --timeout (the request was given up), before the end
    std::uint64_t lost = 0;        // never answered
    std::uint64_t duplicates = 0;  // a second reply to one request
    std::uint64_t reordered = 0;   // answered after a request sent later on its flow
    std::uint64_t wrong = 0;       // a reply matching nothing sent: wrong size, header or bytes
    std::uint64_t send_blocked = 0;  // sends the socket refused for now (EAGAIN, ENOBUFS), retried

    void merge(const DatagramCounts& other);
};

struct RunStats {
    LatencyHistogram latency;              // from the intended send time (open loop) or the send
    LatencyHistogram latency_uncorrected;  // open loop: from the actual send
    LatencyHistogram connect;              // connect() to writable, every new connection
    std::uint64_t requests = 0;            // responses received and checked, measured window
    std::uint64_t bytes_sent = 0, bytes_received = 0;
    std::array<std::uint64_t, kErrorKinds> errors{};
    std::array<std::uint64_t, 256> errors_by_errno{};  // index: errno (0: none, e.g. a bad status)
    std::uint64_t reconnects = 0;
    std::uint64_t established = 0;         // connection slots that connected at least once
    std::uint64_t late_sends = 0;          // open loop: sent more than 1 ms after the due time
    std::uint64_t unsent_arrivals = 0;     // open loop: due, never sent before the end
    std::vector<IntervalStats> intervals;  // timeseries of the measured window (empty with --series-file)
    DatagramCounts datagrams;              // UDP only

    std::uint64_t total_errors() const {
        std::uint64_t n = 0;
        for (auto e : errors) n += e;
        return n;
    }
    void merge(const RunStats& other);
};

}  // namespace loadgen
