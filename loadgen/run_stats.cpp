#include "loadgen/run_stats.hpp"

#include <cassert>

namespace loadgen {

const char* to_string(ErrorKind kind) {
    switch (kind) {
        case ErrorKind::connect:
            return "connect";
        case ErrorKind::read:
            return "read";
        case ErrorKind::write:
            return "write";
        case ErrorKind::timeout:
            return "timeout";
        case ErrorKind::protocol:
            return "protocol";
        case ErrorKind::reset:
            return "reset";
    }
    assert(false && "every ErrorKind is named above");
    return "?";
}

void DatagramCounts::merge(const DatagramCounts& other) {
    sent += other.sent;
    answered += other.answered;
    late += other.late;
    lost += other.lost;
    duplicates += other.duplicates;
    reordered += other.reordered;
    wrong += other.wrong;
    send_blocked += other.send_blocked;
}

void RunStats::merge(const RunStats& other) {
    latency.merge(other.latency);
    latency_uncorrected.merge(other.latency_uncorrected);
    connect.merge(other.connect);
    requests += other.requests;
    bytes_sent += other.bytes_sent;
    bytes_received += other.bytes_received;
    for (std::size_t i = 0; i < errors.size(); ++i) errors[i] += other.errors[i];
    for (std::size_t i = 0; i < errors_by_errno.size(); ++i) errors_by_errno[i] += other.errors_by_errno[i];
    reconnects += other.reconnects;
    established += other.established;
    late_sends += other.late_sends;
    unsent_arrivals += other.unsent_arrivals;
    datagrams.merge(other.datagrams);
    if (intervals.size() < other.intervals.size()) intervals.resize(other.intervals.size());
    for (std::size_t i = 0; i < other.intervals.size(); ++i) {
        intervals[i].requests += other.intervals[i].requests;
        intervals[i].errors += other.intervals[i].errors;
        intervals[i].latency.merge(other.intervals[i].latency);
    }
}

}  // namespace loadgen
