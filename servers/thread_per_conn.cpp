// Thread per connection: the acceptor starts a new thread for every connection, which serves it
// with plain blocking calls and ends with it. Simple to write; each connection costs a thread's
// creation, its stack, and a context switch whenever it blocks.

#include <system_error>
#include <thread>

#include "core/blocking.hpp"

namespace {

constexpr sb::ModelInfo kModel{
    .name = "thread-per-conn",
    .summary = "A new thread for every connection, serving it with blocking calls until it closes.",
    // Room for the full profile's 10 000 idle clients and its active ones, so idle-conns measures
    // what 10 000 threads cost rather than this limit; beyond it, thread stacks are the risk.
    .default_max_conns = 20000,
};

}  // namespace

int main(int argc, char** argv) {
    sb::Server server(argc, argv, kModel, sb::Blocking::yes);
    sb::StopWatcher stop(server);
    sb::LiveCount live;
    server.announce_ready();

    while (!stop.stopping()) {
        sb::UniqueFd conn = server.listener.accept(sb::Blocking::yes);
        if (!conn) continue;
        if (!live.try_add(server.options.max_conns)) {
            server.stats.rejected_at_limit.fetch_add(1, std::memory_order_relaxed);
            continue;  // conn closes here
        }
        try {
            std::thread([&server, &stop, &live, conn = std::move(conn)]() mutable {
                {
                    sb::StopWatcher::Tracked tracked(stop, conn.get());
                    sb::serve_blocking(conn.get(), server);
                    conn.reset();
                }
                live.remove();
            }).detach();
        } catch (const std::system_error&) {
            // No thread to be had (EAGAIN): this connection is closed, the others go on.
            live.remove();
            server.stats.rejected_no_resources.fetch_add(1, std::memory_order_relaxed);
        }
    }
    live.wait_for_zero();  // the stop shut every connection down, so their threads are ending
    return server.finish();
}
