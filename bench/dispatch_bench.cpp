// Per-connection dispatch: what each model pays before it reads the first byte of a connection.
//   thread-per-conn  -> BM_ThreadSpawnJoin    (a thread created and joined per connection)
//   thread-pool      -> BM_ThreadPoolHandoff  (a job queued to a sleeping worker, and its completion)
//   fork-per-conn    -> BM_ForkWaitpid        (a process forked, exited and reaped per connection)
//   every model      -> BM_AcceptClose        (the loopback connection itself, both ends)
// Thread and process benchmarks use real time: the work happens off the timing thread.

#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <thread>

#include "bench_support.hpp"
#include "common/unique_fd.hpp"
#include "core/worker_pool.hpp"

namespace {

using sb::UniqueFd;
using sb::bench::skip_with_errno;

void BM_ThreadSpawnJoin(benchmark::State& state) {
    for (auto _ : state) {
        std::thread thread([] {});
        thread.join();
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ThreadSpawnJoin)->UseRealTime();

// What the thread-pool server does per accepted connection, plus the way back: the job is queued,
// a worker blocked on the pool's condition variable wakes and runs it, and the submitter, blocked
// on a futex (std::atomic::wait), wakes when it is done. One worker: notify_one wakes one sleeper
// however many there are.
struct CompletionJob {
    std::atomic<int>* done = nullptr;
};

void BM_ThreadPoolHandoff(benchmark::State& state) {
    sb::WorkerPool<CompletionJob> pool(1, 1, [](CompletionJob& job) {
        job.done->store(1, std::memory_order_release);
        job.done->notify_one();
    });
    if (pool.started() == 0) {
        state.SkipWithError("the thread pool started no worker");
        return;
    }
    std::atomic<int> done{0};
    for (auto _ : state) {
        done.store(0, std::memory_order_relaxed);
        CompletionJob job{&done};
        if (!pool.try_submit(job)) {
            state.SkipWithError("the thread pool's queue was full");
            break;
        }
        done.wait(0, std::memory_order_acquire);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ThreadPoolHandoff)->UseRealTime();

// The child exits at once: this is the cost of creating, scheduling and reaping a process that
// shares nothing, for a parent as small as a server. A parent with a larger address space pays
// more, since fork copies its page tables.
void BM_ForkWaitpid(benchmark::State& state) {
    for (auto _ : state) {
        const pid_t pid = ::fork();
        if (pid == 0) ::_exit(0);
        if (pid < 0) {
            skip_with_errno(state, "fork");
            break;
        }
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ForkWaitpid)->UseRealTime();

UniqueFd loopback_listener(sockaddr_in& address) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return fd;
    address = {};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;  // an ephemeral port: never collides with a server under test
    socklen_t length = sizeof address;
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(fd.get(), 128) != 0 ||
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
        return UniqueFd();
    }
    return fd;
}

// One whole loopback connection per iteration, both ends in this thread: socket + connect (the
// handshake completes in the kernel against the backlog), accept, close both. The client closes
// first with SO_LINGER 0, so it sends RST and neither side keeps a TIME_WAIT entry: a long run
// cannot exhaust the ephemeral ports, and every iteration costs the same.
void BM_AcceptClose(benchmark::State& state) {
    sockaddr_in address{};
    const UniqueFd listener = loopback_listener(address);
    if (!listener) {
        skip_with_errno(state, "listening socket");
        return;
    }
    const linger abort_on_close{1, 0};
    for (auto _ : state) {
        UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!client || ::setsockopt(client.get(), SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close) != 0) {
            skip_with_errno(state, "client socket");
            break;
        }
        if (::connect(client.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
            skip_with_errno(state, "connect");
            break;
        }
        UniqueFd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!accepted) {
            skip_with_errno(state, "accept4");
            break;
        }
        client.reset();
        accepted.reset();
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AcceptClose)->UseRealTime();

}  // namespace
