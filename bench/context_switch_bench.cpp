// Context switches: a ping-pong over two eventfds, between two threads and between two processes.
// Both sides are pinned to one CPU, so every hand-over is a real switch (block, schedule the other
// side, run it): one round trip = two switches, and `per_switch` is half a round trip. Unpinned, on
// two CPUs, it would measure cross-CPU wake-up latency instead, which depends on idle states.
// This is the price thread-per-connection and process-per-connection servers pay whenever more
// connections are active than there are CPUs, and the price of every pool hand-off.

#include <benchmark/benchmark.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <thread>

#include "bench_support.hpp"
#include "common/unique_fd.hpp"

namespace {

using sb::UniqueFd;
using sb::bench::CpuPin;
using sb::bench::first_allowed_cpu;
using sb::bench::skip_with_errno;

constexpr std::uint64_t kPing = 1;
constexpr std::uint64_t kStop = 2;

bool send_value(int fd, std::uint64_t value) {
    return ::write(fd, &value, sizeof value) == sizeof value;
}

// Blocks until the eventfd is non-zero; returns its value (and resets it), 0 on error.
std::uint64_t receive_value(int fd) {
    std::uint64_t value = 0;
    ssize_t got;
    while ((got = ::read(fd, &value, sizeof value)) < 0 && errno == EINTR) {
    }
    return got == sizeof value ? value : 0;
}

// The partner side: answers each ping, ends on anything else. Async-signal-safe (runs in a child).
void answer_pings(int ping, int pong) {
    while (receive_value(ping) == kPing) {
        if (!send_value(pong, kPing)) return;
    }
}

// The timed side, shared by both benchmarks.
void play_ping_pong(benchmark::State& state, int ping, int pong) {
    for (auto _ : state) {
        if (!send_value(ping, kPing) || receive_value(pong) != kPing) {
            skip_with_errno(state, "eventfd ping-pong");
            break;
        }
    }
    state.SetItemsProcessed(state.iterations() * 2);  // items = context switches
    state.counters["per_switch"] =
        benchmark::Counter(2, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

struct EventFds {
    UniqueFd ping{::eventfd(0, EFD_CLOEXEC)};
    UniqueFd pong{::eventfd(0, EFD_CLOEXEC)};
    explicit operator bool() const noexcept { return ping && pong; }
};

void BM_ContextSwitchThreads(benchmark::State& state) {
    const EventFds fds;
    if (!fds) {
        skip_with_errno(state, "eventfd");
        return;
    }
    const CpuPin pin(first_allowed_cpu());  // the partner thread inherits the pin
    std::thread partner(answer_pings, fds.ping.get(), fds.pong.get());
    play_ping_pong(state, fds.ping.get(), fds.pong.get());
    send_value(fds.ping.get(), kStop);
    partner.join();
}
BENCHMARK(BM_ContextSwitchThreads)->UseRealTime();

void BM_ContextSwitchProcesses(benchmark::State& state) {
    const EventFds fds;
    if (!fds) {
        skip_with_errno(state, "eventfd");
        return;
    }
    const CpuPin pin(first_allowed_cpu());  // the child inherits the pin
    const pid_t pid = ::fork();
    if (pid < 0) {
        skip_with_errno(state, "fork");
        return;
    }
    if (pid == 0) {
        answer_pings(fds.ping.get(), fds.pong.get());
        ::_exit(0);
    }
    play_ping_pong(state, fds.ping.get(), fds.pong.get());
    send_value(fds.ping.get(), kStop);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
}
BENCHMARK(BM_ContextSwitchProcesses)->UseRealTime();

}  // namespace
