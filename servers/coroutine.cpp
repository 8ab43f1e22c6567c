// Coroutines: one thread, an epoll loop, and a C++20 coroutine per connection whose handler reads
// as straight-line blocking code, exactly like the handler of thread-per-connection. Where that
// code would block, it suspends (co_await) and the loop (coroutine_reactor.hpp) runs another
// connection, resuming this one when its socket is ready. So: the readability of a thread per
// connection at the cost of an event loop (a suspended connection is a heap frame, not a thread
// with a stack, and no context switch happens), but, as with any one-thread loop, a handler that
// blocks for real (--io-us) stalls every connection.

#include "coroutine_reactor.hpp"

namespace {

constexpr sb::ModelInfo kModel{
    .name = "coroutine",
    .summary =
        "One thread, an epoll loop and a C++20 coroutine per connection (straight-line co_await handlers).",
    .default_max_conns = 100000,
};

sb::ConnectionTask serve(sb::Socket conn, const sb::Server& server) {
    sb::ProtocolSession session(server.responses);
    sb::ByteBuffer in, out;
    for (;;) {
        const bool peer_done =
            co_await conn.read(in) <= 0;  // end of stream (perhaps a half-close), error or idle timeout

        // Answer everything that came, a high-water mark of output at a time.
        for (;;) {
            const sb::FeedResult r = session.feed(in.readable(), out);
            in.consume(r.consumed);
            sb::simulate_request_work(server.options, r.requests);
            if (!co_await conn.write(out)) co_return;
            if (r.consumed == 0 || session.closing()) break;
        }
        if (session.closing() && !in.empty()) sb::discard_pending_input(conn.fd());
        if (session.closing() || peer_done) co_return;
        in.shrink_if_empty(
            sb::Socket::kReadBytes);  // a burst's large buffer is not kept by an idle connection
    }
}

}  // namespace

int main(int argc, char** argv) {
    sb::Server server(argc, argv, kModel, sb::Blocking::no);
    sb::Reactor reactor(server);
    server.announce_ready();
    reactor.run([&server](sb::Socket conn) { return serve(std::move(conn), server); });
    return server.finish();
}
