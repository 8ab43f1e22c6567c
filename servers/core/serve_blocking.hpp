#pragma once
// The pieces of the models that serve each connection with blocking calls (blocking,
// thread-per-conn, thread-pool, fork-per-conn, prefork).

#include <atomic>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "connection_limit.hpp"
#include "server.hpp"

namespace sb {

// Serves one connection until the peer closes it, it sends something malformed, it stays idle past
// --idle-timeout-ms (socket timeouts), or the server stops (StopWatcher shuts the socket down).
// `simulate_work` false: requests cost nothing beyond their serving (a warm-up's canned request is
// not a client's, and must not pay --cpu-us, --io-us or --inject-cpu-us).
void serve_blocking(int fd, const Server& server, bool simulate_work = true);

// How blocking models stop. Their threads sleep in accept(), read() and write(), where no signal
// reaches them (signals are blocked and routed to a signalfd), so a watcher thread waits on the
// signalfd and, on SIGINT/SIGTERM, shuts down the listener and every tracked connection: each
// blocked call returns at once and its thread runs to its end.
class StopWatcher {
public:
    explicit StopWatcher(Server& server);

    bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }

    // Keeps fd in the set a stop shuts down, for as long as the Tracked lives.
    class Tracked {
    public:
        Tracked(StopWatcher& watcher, int fd);
        ~Tracked();
        Tracked(const Tracked&) = delete;
        Tracked& operator=(const Tracked&) = delete;

    private:
        StopWatcher& watcher_;
        int fd_;
    };

private:
    void stop();

    Server& server_;
    std::atomic<bool> stopping_{false};
    std::mutex mutex_;
    std::unordered_set<int> connections_;
    std::jthread thread_;
};

}  // namespace sb
