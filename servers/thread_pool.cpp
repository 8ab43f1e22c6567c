// Thread pool: --workers threads started up front take accepted connections from a bounded queue.
// A worker serves one connection until it closes, so the pool serves at most --workers clients at
// once; with every worker held by a keep-alive client, a new connection waits in the queue until a
// client leaves (or idles out), and once the queue is full new connections are closed at once.
// Over UDP there is nothing to queue: the --workers threads all block in recvfrom on the one
// socket, and the kernel hands each datagram to one of them.

#include <cassert>
#include <system_error>
#include <thread>
#include <vector>

#include "core/datagram.hpp"
#include "core/serve_blocking.hpp"
#include "core/worker_pool.hpp"

namespace {

constexpr sb::ModelInfo kModel{
    .name = "thread-pool",
    .summary =
        "--workers threads take connections from a bounded queue; each serves one connection at a time.",
    .default_workers = 64,
    .default_max_conns = 10000,
};

int serve_udp(sb::Server& server, sb::StopWatcher& stop) {
    std::vector<std::jthread> workers;
    for (int i = 0; i < server.options.workers; ++i) {
        try {
            workers.emplace_back([&server, &stop] {
                sb::serve_datagrams_blocking(server.listener.fd(), server.options, server.stats,
                                             [&stop] { return stop.stopping(); });
            });
        } catch (const std::system_error&) {
            break;  // out of threads: serve with those that started
        }
    }
    if (workers.empty()) sb::die(kModel, "starting worker threads");
    server.announce_ready();
    workers.clear();  // each returns once the stop has shut the socket down
    return server.finish();
}

}  // namespace

int main(int argc, char** argv) {
    sb::Server server(argc, argv, kModel, sb::Blocking::yes);
    sb::StopWatcher stop(server);
    if (server.options.transport == sb::Transport::udp) return serve_udp(server, stop);
    // Connections being served plus connections queued: at most --max-conns. Counted apart from the
    // queue's capacity because with --max-conns below --workers the queue alone would not bound it
    // (idle workers take every connection at once).
    const int max_conns = server.options.max_conns;
    sb::ConnectionLimit limit(max_conns, server.stats.rejected_at_limit);
    sb::WorkerPool<sb::UniqueFd> pool(static_cast<std::size_t>(server.options.workers),
                                      static_cast<std::size_t>(max_conns), [&](sb::UniqueFd& conn) {
                                          {
                                              sb::StopWatcher::Tracked tracked(stop, conn.get());
                                              sb::serve_blocking(conn.get(), server);
                                              conn.reset();
                                          }
                                          limit.give_back();
                                      });
    if (pool.started() == 0) sb::die(kModel, "starting worker threads");
    server.announce_ready();

    while (!stop.stopping()) {
        sb::UniqueFd conn = server.listener.accept(sb::Blocking::yes);
        if (!conn) continue;
        if (!limit.try_take()) continue;  // refused (and counted): conn closes here
        if (!pool.try_submit(conn)) {
            assert(false && "the queue holds --max-conns connections, and the limit admits no more");
            limit.give_back();  // never leak a slot
        }
    }
    return server.finish();
}
