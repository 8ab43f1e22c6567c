// Coroutines: one thread, an epoll loop, and a C++20 coroutine per connection whose handler reads
// as straight-line blocking code, exactly like the handler of thread-per-connection. Where that
// code would block, it suspends (co_await) and the loop (coroutine_reactor.hpp) runs another
// connection, resuming this one when its socket is ready. So: the readability of a thread per
// connection at the cost of an event loop (a suspended connection is a heap frame, not a thread
// with a stack, and no context switch happens), but, as with any one-thread loop, a handler that
// blocks for real (--io-us) stalls every connection. Over UDP one coroutine serves the socket: it
// waits (co_await) until datagrams are there, answers them, and waits again.

#include <cassert>

#include "core/datagram.hpp"
#include "coroutine_reactor.hpp"

namespace {

constexpr sb::ModelInfo kModel{
    .name = "coroutine",
    .summary =
        "One thread, an epoll loop and a C++20 coroutine per connection (straight-line co_await handlers).",
    .default_max_conns = 100000,
    .batches_datagrams = true,
};

sb::ConnectionTask serve(sb::Socket conn, const sb::Server& server) {
    using Next = sb::ConnectionStep::Next;
    sb::ConnectionStep step(server.responses);
    for (;;) {
        // Nothing: end of stream (perhaps a half-close: answer what came, then close), error or
        // idle timeout.
        const std::span<const char> fresh = co_await conn.read();
        if (fresh.empty()) step.end_of_input();
        sb::FeedResult r = step.answer(fresh);

        // Answer everything that came, a high-water mark of output at a time.
        for (Next next = Next::answer_more; next != Next::read;) {
            sb::simulate_request_work(server.options, r.requests);
            if (!co_await conn.write(step)) co_return;
            next = step.next();
            if (next == Next::answer_more) r = step.answer();
            if (next == Next::discard_and_close) sb::discard_pending_input(conn.fd());
            if (next == Next::close || next == Next::discard_and_close) co_return;
            assert(next != Next::send && "write() returns once all of the output is sent");
        }
    }
}

sb::ConnectionTask serve_datagrams(sb::DatagramSocket socket, sb::Server& server) {
    sb::DatagramBatch batch(server.options.udp_batch);
    for (;;) {
        co_await socket.readable();
        sb::answer_waiting_datagrams(socket.fd(), batch, server);  // never blocks: nothing to await
    }
}

int serve_udp(sb::Server& server, sb::Reactor& reactor) {
    server.announce_ready();
    reactor.run_datagrams([&server](sb::DatagramSocket socket) { return serve_datagrams(socket, server); });
    return server.finish();
}

}  // namespace

int main(int argc, char** argv) {
    sb::Server server(argc, argv, kModel, sb::Blocking::no);
    sb::Reactor reactor(server);
    if (server.options.transport == sb::Transport::udp) return serve_udp(server, reactor);
    server.announce_ready();
    reactor.run([&server](sb::Socket conn) { return serve(std::move(conn), server); });
    return server.finish();
}
