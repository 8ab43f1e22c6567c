// Blocking, single-threaded: accept one connection, serve it until it closes, then take the next.
// While a client is connected every other one waits in the listen backlog, so this model serves
// exactly one client at a time: the baseline the other models improve on. Over UDP the same one
// thread answers one datagram at a time (recvfrom, work, sendto); the others wait in the socket's
// receive queue, and past its size the kernel drops them.

#include "core/datagram.hpp"
#include "core/serve_blocking.hpp"

namespace {

constexpr sb::ModelInfo kModel{
    .name = "blocking",
    .summary = "One thread, blocking calls: serves one connection at a time, others wait in the backlog.",
    .default_max_conns = 1,
};

int serve_udp(sb::Server& server, sb::StopWatcher& stop) {
    server.announce_ready();
    sb::serve_datagrams_blocking(server.listener.fd(), server.options, server.stats,
                                 [&stop] { return stop.stopping(); });
    return server.finish();
}

}  // namespace

int main(int argc, char** argv) {
    sb::Server server(argc, argv, kModel, sb::Blocking::yes);
    sb::StopWatcher stop(server);
    if (server.options.transport == sb::Transport::udp) return serve_udp(server, stop);
    server.announce_ready();

    while (!stop.stopping()) {
        sb::UniqueFd conn = server.listener.accept(sb::Blocking::yes);
        if (!conn) continue;
        sb::StopWatcher::Tracked tracked(stop, conn.get());
        sb::serve_blocking(conn.get(), server);
    }
    return server.finish();
}
