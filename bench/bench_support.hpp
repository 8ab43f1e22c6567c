#pragma once
// Small pieces shared by the microbenchmark files: reporting a failed system call, and pinning
// threads to one CPU so a ping-pong measures context switches rather than cross-CPU wake-ups.

#include <benchmark/benchmark.h>
#include <pthread.h>
#include <sched.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace sb::bench {

// Ends the benchmark with "call: strerror(errno)" in its JSON (error_occurred) instead of a
// number that measured the failure path.
inline void skip_with_errno(benchmark::State& state, const char* call) {
    const std::string message = std::string(call) + ": " + std::strerror(errno);
    state.SkipWithError(message.c_str());
}

// The lowest CPU this process may run on: under `taskset -c 1` that is CPU 1, not CPU 0.
inline int first_allowed_cpu() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (CPU_ISSET(cpu, &set)) return cpu;
    }
    return 0;
}

// Pins the calling thread to one CPU for its lifetime and restores the previous mask after, so a
// pinned benchmark does not leave the benchmarks that follow it pinned. Threads and processes
// started while it is held inherit the pin.
class CpuPin {
public:
    explicit CpuPin(int cpu) {
        CPU_ZERO(&previous_);
        if (pthread_getaffinity_np(pthread_self(), sizeof previous_, &previous_) != 0) return;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        pinned_ = pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0;
    }
    ~CpuPin() {
        if (pinned_) pthread_setaffinity_np(pthread_self(), sizeof previous_, &previous_);
    }
    CpuPin(const CpuPin&) = delete;
    CpuPin& operator=(const CpuPin&) = delete;

    bool pinned() const noexcept { return pinned_; }

private:
    cpu_set_t previous_;
    bool pinned_ = false;
};

}  // namespace sb::bench
