// Blocking, single-threaded: accept one connection, serve it until it closes, then take the next.
// While a client is connected every other one waits in the listen backlog, so this model serves
// exactly one client at a time: the baseline the other models improve on.

#include "core/serve_blocking.hpp"

namespace {

constexpr sb::ModelInfo kModel{
    .name = "blocking",
    .summary = "One thread, blocking calls: serves one connection at a time, others wait in the backlog.",
    .default_max_conns = 1,
};

}  // namespace

int main(int argc, char** argv) {
    sb::Server server(argc, argv, kModel, sb::Blocking::yes);
    sb::StopWatcher stop(server);
    server.announce_ready();

    while (!stop.stopping()) {
        sb::UniqueFd conn = server.listener.accept(sb::Blocking::yes);
        if (!conn) continue;
        sb::StopWatcher::Tracked tracked(stop, conn.get());
        sb::serve_blocking(conn.get(), server);
    }
    return server.finish();
}
