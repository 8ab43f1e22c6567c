// Fork per connection: the parent accepts, forks a child for each connection and goes back to
// accepting; the child serves that one connection with blocking calls and exits. Clients are
// isolated from each other (a crash takes one connection down), at the price of a fork each.

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <unordered_set>

#include "core/serve_blocking.hpp"

namespace {

constexpr sb::ModelInfo kModel{
    .name = "fork-per-conn",
    .summary = "The parent forks a child process for every connection; the child serves it and exits.",
    .default_max_conns = 2000,
};

// Collects every child that has exited, giving back its connection's slot. SIGCHLD signals merge,
// so one may stand for several.
void reap_exited(std::unordered_set<pid_t>& children, sb::ConnectionLimit& limit) {
    pid_t pid;
    while ((pid = ::waitpid(-1, nullptr, WNOHANG)) > 0) {
        if (children.erase(pid) > 0) limit.give_back();
    }
}

[[noreturn]] void serve_in_child(sb::Server& server, int conn) {
    sb::reset_signals_for_child();  // the parent's SIGTERM now ends this child
    ::close(server.listener.fd());  // only the parent accepts
    ::close(server.signals.fd());
    sb::serve_blocking(conn, server);
    ::_exit(0);  // not exit(): the parent's objects are the parent's to clean up
}

}  // namespace

int main(int argc, char** argv) {
    // SIGCHLD arrives on the signalfd too: children are reaped as they exit, never left as zombies.
    sb::Server server(argc, argv, kModel, sb::Blocking::no, {SIGCHLD});
    std::unordered_set<pid_t> children;
    // A slot per child: taken at fork, given back at reaping.
    sb::ConnectionLimit limit(server.options.max_conns, server.stats.rejected_at_limit);
    server.announce_ready();

    pollfd watched[] = {{server.listener.fd(), POLLIN, 0}, {server.signals.fd(), POLLIN, 0}};
    bool stopping = false;
    while (!stopping) {
        if (::poll(watched, 2, -1) < 0) continue;
        while (int signo = server.signals.take()) {
            if (signo == SIGCHLD)
                reap_exited(children, limit);
            else
                stopping = true;
        }
        while (!stopping) {
            sb::UniqueFd conn = server.listener.accept(sb::Blocking::yes);
            if (!conn) break;
            // A steady stream of connections keeps this loop from going back to poll(), where
            // SIGCHLD is read: reap here too, or zombies pile up and count against --max-conns.
            reap_exited(children, limit);
            if (!limit.try_take()) continue;  // refused (and counted): conn closes here
            pid_t pid = ::fork();
            if (pid == 0) serve_in_child(server, conn.get());
            if (pid > 0) {
                children.insert(pid);
            } else {
                limit.give_back();
                server.stats.rejected_no_resources.fetch_add(1, std::memory_order_relaxed);
            }
            // The parent closes its copy here; the child's copy keeps the connection open, and the
            // client sees the end of it when the child exits.
        }
    }

    for (pid_t child : children) ::kill(child, SIGTERM);
    while (!children.empty()) {
        pid_t pid = ::waitpid(-1, nullptr, 0);
        if (pid < 0) break;
        children.erase(pid);
    }
    return server.finish();
}
