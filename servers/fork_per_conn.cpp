// Fork per connection: the parent accepts, forks a child for each connection and goes back to
// accepting; the child serves that one connection with blocking calls and exits. Clients are
// isolated from each other (a crash takes one connection down), at the price of a fork each.
// Over UDP the parent receives, and forks a child per datagram, which does the work, answers on
// the socket it inherited and exits.

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <memory>
#include <unordered_set>

#include "core/datagram.hpp"
#include "core/serve_blocking.hpp"

namespace {

constexpr sb::ModelInfo kModel{
    .name = "fork-per-conn",
    .summary = "The parent forks a child process for every connection; the child serves it and exits.",
    .default_max_conns = 2000,
};

// A datagram's child counts in its own copy of the stats, which die with it: its exit status says
// whether it answered, and is counted by the parent, into `answers` (null over TCP).
void count_answer(int status, sb::ServerStats* answers) {
    if (answers == nullptr) return;
    const bool answered = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    (answered ? answers->datagrams_answered : answers->datagram_send_errors)
        .fetch_add(1, std::memory_order_relaxed);
}

// Collects every child that has exited, giving back its slot. SIGCHLD signals merge, so one may
// stand for several.
void reap_exited(std::unordered_set<pid_t>& children, sb::ConnectionLimit& limit,
                 sb::ServerStats* answers = nullptr) {
    int status;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
        if (children.erase(pid) == 0) continue;
        limit.give_back();
        count_answer(status, answers);
    }
}

// SIGTERM ends every child wherever it is; then each one is reaped (a datagram's child killed
// before it answered counts as a send error).
void stop_children(std::unordered_set<pid_t>& children, sb::ConnectionLimit& limit,
                   sb::ServerStats* answers = nullptr) {
    reap_exited(children, limit, answers);
    for (pid_t child : children) ::kill(child, SIGTERM);
    while (!children.empty()) {
        int status;
        pid_t pid = ::waitpid(-1, &status, 0);
        if (pid < 0) break;
        if (children.erase(pid) == 0) continue;
        limit.give_back();
        count_answer(status, answers);
    }
}

// Waits in poll() for the listener or a signal, reaping the children SIGCHLD announces. True: a
// stop signal came.
bool wait_for_work(sb::Server& server, std::unordered_set<pid_t>& children, sb::ConnectionLimit& limit,
                   sb::ServerStats* answers = nullptr) {
    pollfd watched[] = {{server.listener.fd(), POLLIN, 0}, {server.signals.fd(), POLLIN, 0}};
    if (::poll(watched, 2, -1) < 0) return false;
    bool stop = false;
    while (int signo = server.signals.take()) {
        if (signo == SIGCHLD)
            reap_exited(children, limit, answers);
        else
            stop = true;
    }
    return stop;
}

[[noreturn]] void serve_in_child(sb::Server& server, int conn) {
    sb::reset_signals_for_child();  // the parent's SIGTERM now ends this child
    ::close(server.listener.fd());  // only the parent accepts
    ::close(server.signals.fd());
    sb::serve_blocking(conn, server);
    ::_exit(0);  // not exit(): the parent's objects are the parent's to clean up
}

[[noreturn]] void answer_in_child(sb::Server& server, std::span<const char> payload,
                                  const sb::PeerAddress& peer) {
    sb::reset_signals_for_child();
    ::close(server.signals.fd());
    sb::simulate_request_work(server.options, 1);
    sb::ServerStats outcome;  // this child's own: the parent's copy holds the parent's counts
    sb::answer_datagram(server.listener.fd(), payload, peer, outcome);  // on the inherited socket
    ::_exit(outcome.datagrams_answered.load() > 0 ? 0 : 1);
}

// A process per datagram, at most --max-conns at once: past that a datagram is dropped and counted
// (at the cap). The parent waits in poll() for a datagram or a signal, as over TCP.
int serve_udp(sb::Server& server) {
    std::unordered_set<pid_t> children;
    sb::ConnectionLimit limit(server.options.max_conns, server.stats.datagrams_at_cap);
    const auto buffer = std::make_unique_for_overwrite<char[]>(sb::kMaxDatagram);
    server.announce_ready();

    bool stopping = false;
    while (!stopping) {
        stopping = wait_for_work(server, children, limit, &server.stats);
        for (std::size_t n = 0; n < sb::kDatagramsPerWakeup && !stopping; ++n) {
            sb::PeerAddress peer;
            std::size_t size = 0;
            const sb::Received r = sb::receive_datagram(
                server.listener.fd(), {buffer.get(), sb::kMaxDatagram}, size, peer, server.stats);
            if (r == sb::Received::nothing) break;
            if (r == sb::Received::dropped) continue;
            reap_exited(children, limit, &server.stats);  // a flood keeps the loop from poll()
            if (!limit.try_take()) continue;              // dropped (and counted)
            pid_t pid = ::fork();
            if (pid == 0) answer_in_child(server, {buffer.get(), size}, peer);
            if (pid > 0) {
                children.insert(pid);
            } else {
                limit.give_back();  // no process to be had: the system's cap, counted as one
                server.stats.datagrams_at_cap.fetch_add(1, std::memory_order_relaxed);
            }
        }
    }
    stop_children(children, limit, &server.stats);
    return server.finish();
}

}  // namespace

int main(int argc, char** argv) {
    // SIGCHLD arrives on the signalfd too: children are reaped as they exit, never left as zombies.
    sb::Server server(argc, argv, kModel, sb::Blocking::no, {SIGCHLD});
    if (server.options.transport == sb::Transport::udp) return serve_udp(server);
    std::unordered_set<pid_t> children;
    // A slot per child: taken at fork, given back at reaping.
    sb::ConnectionLimit limit(server.options.max_conns, server.stats.rejected_at_limit);
    server.announce_ready();

    bool stopping = false;
    while (!stopping) {
        stopping = wait_for_work(server, children, limit);
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

    stop_children(children, limit);
    return server.finish();
}
