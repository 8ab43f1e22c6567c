// Thread per connection: the acceptor starts a new thread for every connection, which serves it
// with plain blocking calls and ends with it. Simple to write; each connection costs a thread's
// creation, its stack, and a context switch whenever it blocks.

#include <system_error>
#include <thread>

#include "core/serve_blocking.hpp"

namespace {

constexpr sb::ModelInfo kModel{
    .name = "thread-per-conn",
    .summary = "A new thread for every connection, serving it with blocking calls until it closes.",
    // High enough that an idle-connections scenario measures what thousands of threads cost rather
    // than hitting this limit; beyond it, the threads' stacks (address space, memory) are the risk.
    .default_max_conns = 20000,
};

}  // namespace

int main(int argc, char** argv) {
    sb::Server server(argc, argv, kModel, sb::Blocking::yes);
    sb::StopWatcher stop(server);
    sb::ConnectionLimit limit(server.options.max_conns, server.stats.rejected_at_limit);
    server.announce_ready();

    while (!stop.stopping()) {
        sb::UniqueFd conn = server.listener.accept(sb::Blocking::yes);
        if (!conn) continue;
        if (!limit.try_take()) continue;  // refused (and counted): conn closes here
        try {
            std::thread([&server, &stop, &limit, conn = std::move(conn)]() mutable {
                {
                    sb::StopWatcher::Tracked tracked(stop, conn.get());
                    sb::serve_blocking(conn.get(), server);
                    conn.reset();
                }
                limit.give_back();
            }).detach();
        } catch (const std::system_error&) {
            // No thread to be had (EAGAIN): this connection is closed, the others go on.
            limit.give_back();
            server.stats.rejected_no_resources.fetch_add(1, std::memory_order_relaxed);
        }
    }
    limit.wait_until_unused();  // the stop shut every connection down, so their threads are ending
    return server.finish();
}
