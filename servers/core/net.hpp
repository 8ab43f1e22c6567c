#pragma once
// Socket set-up shared by every model: the listening socket and accepting from it, or over
// --transport udp the bound datagram socket (what is done with datagrams: core/datagram.hpp).

#include <sys/types.h>
#include <atomic>

#include <cstdint>
#include <string>

#include "common/unique_fd.hpp"
#include "options.hpp"

namespace sb {

// Counted for the line a server prints when it stops.
struct ServerStats {
    std::atomic<std::uint64_t> accepted{0};
    std::atomic<std::uint64_t> rejected_at_limit{0};      // over --max-conns, or select's FD_SETSIZE
    std::atomic<std::uint64_t> rejected_no_resources{0};  // no descriptor, thread or process for it
    // Over UDP. Every datagram received ends as one of the four after it (once its handler is done):
    // received = answered + oversized + at_cap + send_errors.
    std::atomic<std::uint64_t> datagrams_received{0};
    std::atomic<std::uint64_t> datagrams_answered{0};
    std::atomic<std::uint64_t> datagrams_oversized{0};   // over kMaxDatagram: dropped unanswered
    std::atomic<std::uint64_t> datagrams_at_cap{0};      // no thread, process or queue room for it
    std::atomic<std::uint64_t> datagram_send_errors{0};  // the reply failed, or nothing can reach the sender
};

enum class Blocking { yes, no };

// The server's socket. Over TCP it listens and accept() takes connections from it; over UDP it is
// the bound datagram socket itself (no listen, no accept), which the model receives on and answers
// from: one socket, so binding (port 0 resolved, a stale Unix socket file removed, SO_REUSEPORT)
// is written once for both.
class Listener {
public:
    // Binds host:port, or the Unix socket at --unix (removing a stale socket file there first), of the
    // type --transport says, and over TCP listens. Exits 1 with one line on stderr if that fails.
    Listener(const ServerOptions& options, const ModelInfo& model, ServerStats& stats, Blocking mode,
             std::uint16_t port);
    // Removes the Unix socket's file (in the process that made it).
    ~Listener();
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;

    int fd() const noexcept { return fd_.get(); }
    std::uint16_t port() const noexcept { return port_; }                 // 0 on a Unix socket
    const std::string& unix_path() const noexcept { return unix_path_; }  // empty on TCP

    // Accepts one connection in the given blocking mode, as adopt() leaves it. Returns an empty fd
    // when there is none to take now, or when it had to be refused for want of a descriptor.
    UniqueFd accept(Blocking mode);

    // What every accepted connection gets, also one accepted elsewhere (io_uring's ring): counted,
    // and TCP_NODELAY when --tcp-nodelay is on and the socket is TCP.
    UniqueFd adopt(int fd);

    // Wakes a thread blocked in accept(), which then returns empty fds: how blocking models stop.
    // Over UDP it wakes every thread blocked in recvfrom (Linux does so even on an unconnected
    // socket, though shutdown reports ENOTCONN there), which then returns 0 at once, as for an empty
    // datagram: a caller tells the two apart by its stop flag, set before this is called.
    void shutdown() noexcept;

private:
    void bind_tcp(const ServerOptions& options, const ModelInfo& model, Blocking mode, std::uint16_t port);
    void bind_unix(const ServerOptions& options, const ModelInfo& model, Blocking mode);
    UniqueFd shed_one_connection();

    UniqueFd fd_;
    // A descriptor held in reserve: when accept() fails with EMFILE, closing it lets us accept the
    // waiting connection and close it at once. Without this, a level-triggered loop sees the listener
    // readable forever and spins at 100% CPU (the classic EMFILE loop), and clients wait in the backlog.
    UniqueFd reserve_fd_;
    ServerStats* stats_;
    bool tcp_nodelay_;
    std::uint16_t port_ = 0;
    std::string unix_path_;
    pid_t owner_ = 0;
};

// Makes blocked reads and writes on fd give up after timeout_ms (0 = never): the idle timeout of
// the models that serve a connection with blocking calls.
void set_io_timeout(int fd, int timeout_ms);

// Reads and drops whatever input has already arrived, without waiting. Called before closing a
// connection that still holds unread input (after a 400, say): closing with unread data makes the
// kernel send RST, which can destroy the error response before the client has read it.
void discard_pending_input(int fd);

// Prints "server-<model>: <what>: <strerror(errno)>" and exits 1: for start-up failures only.
[[noreturn]] void die(const ModelInfo& model, const char* what);

}  // namespace sb
