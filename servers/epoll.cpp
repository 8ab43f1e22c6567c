// epoll: one thread, non-blocking sockets, level-triggered epoll. The kernel keeps the interest
// set, so a call costs what the ready connections cost, not what the idle ones do. The loop itself
// (core/epoll_loop.hpp) is shared with epoll-reuseport, which runs one of it per thread: here a
// single loop serves the one listening socket and stops on the signalfd.

#include "core/epoll_loop.hpp"

namespace {

constexpr sb::ModelInfo kModel{
    .name = "epoll",
    .summary = "One thread, non-blocking sockets, level-triggered epoll.",
    .default_max_conns = 100000,
};

}  // namespace

int main(int argc, char** argv) {
    sb::Server server(argc, argv, kModel, sb::Blocking::no);
    sb::ConnectionTable connections(server);
    sb::EpollSet epoll(kModel);
    server.announce_ready();

    sb::run_epoll_loop(epoll, server.listener, connections, server.signals.fd(),
                       [&] { return server.signals.stop_requested(); });
    return server.finish();
}
