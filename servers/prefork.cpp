// Prefork (Apache's prefork MPM): --workers processes forked up front all accept from the one
// shared listening socket, each serving one connection at a time with blocking calls; the kernel
// wakes one waiting worker per connection. No fork per connection, and clients stay isolated (a
// crash takes one worker and its connection down), but like a thread pool it serves at most
// --workers clients at once, the others waiting in the backlog. The parent only supervises: it
// restarts a worker that dies, and on SIGINT/SIGTERM ends them all before it exits. Over UDP the
// workers all block in recvfrom on the one shared socket instead of in accept, each answering one
// datagram at a time; the parent supervises them just the same.

#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <vector>

#include "core/datagram.hpp"
#include "core/serve_blocking.hpp"
#include "prefork_shared_memory.hpp"

namespace {

constexpr sb::ModelInfo kModel{
    .name = "prefork",
    .summary =
        "--workers processes forked up front accept from the shared socket; each serves one connection at a "
        "time.",
    .default_workers = 64,
    .default_max_conns = 10000,
};

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// What the workers and the parent count together. Each process has its own copy of everything else,
// server.stats included, so a worker moves its counts here and the parent reports the sum.
struct Tally {
    std::atomic<int> serving{0};  // connections being served by all workers: --max-conns's count
    sb::ServerStats stats;
};

void move_counts(sb::ServerStats& from, sb::ServerStats& to) {
    for (auto counter : {&sb::ServerStats::accepted, &sb::ServerStats::rejected_at_limit,
                         &sb::ServerStats::rejected_no_resources, &sb::ServerStats::datagrams_received,
                         &sb::ServerStats::datagrams_answered, &sb::ServerStats::datagrams_oversized,
                         &sb::ServerStats::datagrams_at_cap, &sb::ServerStats::datagram_send_errors}) {
        to.*counter += (from.*counter).exchange(0);
    }
}

// A worker's first connection faults in the pages of the serving code (library text, shared but
// counted in every worker's RSS). Serving one canned request over a socketpair at start-up pays
// for that before the first client does, so the workers' memory does not seem to grow with their
// first connections, and a memory figure taken under load shows what connections cost. HEAD and a
// few echo bytes: the reply fits the socket's buffer, which nobody reads.
void warm_up(const sb::Server& server) {
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return;
    sb::UniqueFd client{pair[0]}, conn{pair[1]};
    constexpr std::string_view request = "HEAD / HTTP/1.1\r\nConnection: close\r\n\r\n";
    if (::write(client.get(), request.data(), request.size()) < 0) return;
    ::shutdown(client.get(), SHUT_WR);
    sb::serve_blocking(conn.get(), server, false);
}

// `serving` is this worker's own flag, so the parent can give back the slot of a worker that died
// mid-connection.
[[noreturn]] void run_worker(sb::Server& server, Tally& tally, std::atomic<bool>& serving) {
    sb::reset_signals_for_child();  // the parent's SIGTERM now ends this worker, wherever it blocks
    ::close(server.signals.fd());   // the parent's to read
    warm_up(server);
    sb::ConnectionLimit limit(server.options.max_conns, tally.serving, tally.stats.rejected_at_limit);
    for (;;) {
        sb::UniqueFd conn = server.listener.accept(sb::Blocking::yes);
        move_counts(server.stats, tally.stats);
        if (!conn) continue;
        if (!limit.try_take()) continue;  // refused (and counted in the tally): conn closes here
        serving = true;
        sb::serve_blocking(conn.get(), server);
        serving = false;
        limit.give_back();
    }
}

// Over UDP: a worker answers datagrams until the parent's SIGTERM ends it, counting straight into
// the tally (there is no connection whose end would be the moment to move its counts).
[[noreturn]] void run_datagram_worker(sb::Server& server, Tally& tally) {
    sb::reset_signals_for_child();
    ::close(server.signals.fd());
    sb::serve_datagrams_blocking(server.listener.fd(), server.options, tally.stats, [] { return false; });
    ::_exit(0);  // never reached: serve_datagrams_blocking returns only when asked to stop
}

struct Worker {
    pid_t pid = 0;  // 0: not running, (re)started at restart_at
    Clock::time_point started, restart_at;
    milliseconds backoff{0};
};

// A worker that dies young (or cannot be forked) is likely to fail again: back off, 10 ms doubling
// to 1 s, so a crash loop does not spin the parent and the machine. One that served a while is
// restarted at once.
void retry_later(Worker& w, Clock::time_point now) {
    w.pid = 0;
    w.backoff = now - w.started < std::chrono::seconds(1)
                    ? std::clamp(w.backoff * 2, milliseconds(10), milliseconds(1000))
                    : milliseconds(0);
    w.restart_at = now + w.backoff;
}

// How long the parent may sleep before the next stopped worker is due to be restarted (-1: none is).
int ms_until_next_restart(const std::vector<Worker>& workers) {
    auto wake_at = Clock::time_point::max();
    for (const Worker& w : workers) {
        if (w.pid == 0) wake_at = std::min(wake_at, w.restart_at);
    }
    if (wake_at == Clock::time_point::max()) return -1;
    return static_cast<int>(
        std::max<long long>(0, std::chrono::ceil<milliseconds>(wake_at - Clock::now()).count()));
}

// Reaps every worker that has exited (SIGCHLDs merge: one may stand for several) and schedules its
// restart. One that died mid-connection gives its --max-conns slot back: it cannot any more.
void reap_workers(std::vector<Worker>& workers, sb::SharedArray<std::atomic<bool>>& serving,
                  sb::ConnectionLimit& limit) {
    int status;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
        auto w =
            std::find_if(workers.begin(), workers.end(), [pid](const Worker& x) { return x.pid == pid; });
        if (w == workers.end()) continue;
        const auto i = static_cast<std::size_t>(w - workers.begin());
        if (serving[i].exchange(false)) limit.give_back();
        retry_later(*w, Clock::now());
        std::fprintf(stderr, "server-prefork: worker %d %s %d; restarting it in %lld ms\n",
                     static_cast<int>(pid), WIFSIGNALED(status) ? "killed by signal" : "exited with status",
                     WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
                     static_cast<long long>(w->backoff.count()));
    }
}

// SIGTERM ends a worker wherever it is (in accept, read or write); then every one is reaped.
void stop_workers(const std::vector<Worker>& workers) {
    for (const Worker& w : workers) {
        if (w.pid != 0) ::kill(w.pid, SIGTERM);
    }
    for (const Worker& w : workers) {
        if (w.pid != 0) ::waitpid(w.pid, nullptr, 0);
    }
}

}  // namespace

int main(int argc, char** argv) {
    // SIGCHLD arrives on the signalfd too: a worker that dies is reaped at once, never a zombie.
    sb::Server server(argc, argv, kModel, sb::Blocking::yes, {SIGCHLD});
    const auto worker_count = static_cast<std::size_t>(server.options.workers);
    sb::SharedArray<Tally> tally(1, kModel);
    sb::SharedArray<std::atomic<bool>> serving(worker_count, kModel);
    // The workers' limit, seen by the parent (which only gives back the slots of dead workers).
    sb::ConnectionLimit limit(server.options.max_conns, tally[0].serving, tally[0].stats.rejected_at_limit);
    std::vector<Worker> workers(worker_count);

    auto start = [&](std::size_t i) {
        pid_t pid = ::fork();
        if (pid == 0 && server.options.transport == sb::Transport::udp) run_datagram_worker(server, tally[0]);
        if (pid == 0) run_worker(server, tally[0], serving[i]);
        Worker& w = workers[i];
        w.started = Clock::now();
        if (pid > 0)
            w.pid = pid;
        else
            retry_later(w, w.started);  // no process to be had now (EAGAIN)
    };
    for (std::size_t i = 0; i < worker_count; ++i) start(i);
    server.announce_ready();

    pollfd signals{server.signals.fd(), POLLIN, 0};
    for (bool stopping = false; !stopping;) {
        // Sleep until a signal comes, or the next stopped worker is due to be restarted.
        ::poll(&signals, 1, ms_until_next_restart(workers));
        while (int signo = server.signals.take()) {
            if (signo == SIGCHLD)
                reap_workers(workers, serving, limit);
            else
                stopping = true;
        }
        for (std::size_t i = 0; i < worker_count && !stopping; ++i) {
            if (workers[i].pid == 0 && workers[i].restart_at <= Clock::now()) start(i);
        }
    }
    stop_workers(workers);
    move_counts(tally[0].stats, server.stats);
    return server.finish();
}
