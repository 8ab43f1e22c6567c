// Thread per connection: the acceptor starts a new thread for every connection, which serves it
// with plain blocking calls and ends with it. Simple to write; each connection costs a thread's
// creation, its stack, and a context switch whenever it blocks. Over UDP the main thread receives,
// and a new thread per datagram does its work, answers and ends.

#include <system_error>
#include <thread>

#include "core/datagram.hpp"
#include "core/serve_blocking.hpp"

namespace {

constexpr sb::ModelInfo kModel{
    .name = "thread-per-conn",
    .summary = "A new thread for every connection, serving it with blocking calls until it closes.",
    // High enough that an idle-connections scenario measures what thousands of threads cost rather
    // than hitting this limit; beyond it, the threads' stacks (address space, memory) are the risk.
    .default_max_conns = 20000,
};

// A thread per datagram, at most --max-conns of them at once: past that a datagram is dropped and
// counted (at the cap), so a flood costs threads up to the cap and never exhausts the machine.
int serve_udp(sb::Server& server, sb::StopWatcher& stop) {
    sb::ConnectionLimit threads(server.options.max_conns, server.stats.datagrams_at_cap);
    const auto buffer = std::make_unique_for_overwrite<char[]>(sb::kMaxDatagram);
    const int fd = server.listener.fd();
    server.announce_ready();

    while (!stop.stopping()) {
        sb::Datagram d;
        std::size_t size = 0;
        if (sb::receive_datagram(fd, {buffer.get(), sb::kMaxDatagram}, size, d.peer, server.stats,
                                 [&stop] { return stop.stopping(); }) != sb::Received::datagram)
            continue;
        if (!threads.try_take()) continue;                    // dropped (and counted)
        d.payload.assign(buffer.get(), buffer.get() + size);  // the thread's own copy
        try {
            std::thread([&server, &threads, fd, d = std::move(d)] {
                sb::simulate_request_work(server.options, 1);
                sb::answer_datagram(fd, d.payload, d.peer, server.stats);
                threads.give_back();
            }).detach();
        } catch (const std::system_error&) {
            threads.give_back();  // no thread to be had (EAGAIN): the system's cap, counted as one
            server.stats.datagrams_at_cap.fetch_add(1, std::memory_order_relaxed);
        }
    }
    threads.wait_until_unused();
    return server.finish();
}

}  // namespace

int main(int argc, char** argv) {
    sb::Server server(argc, argv, kModel, sb::Blocking::yes);
    sb::StopWatcher stop(server);
    if (server.options.transport == sb::Transport::udp) return serve_udp(server, stop);
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
