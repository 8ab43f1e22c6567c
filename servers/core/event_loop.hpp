#pragma once
// The connection of the readiness-based models (select, poll, epoll, and the multi-loop ones).
// They differ only in how they ask which sockets are ready; what a ready connection does is
// written once, here (the redis ae_* / muduo TcpConnection idea). A connection says which
// readiness it waits for next, and the model turns that into its own interest set.

#include <climits>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "byte_buffer.hpp"
#include "server.hpp"

namespace sb {

enum class Interest : std::uint8_t { read, write, close };

class Connection {
public:
    Connection(UniqueFd fd, const Server& server) noexcept;

    int fd() const noexcept { return fd_.get(); }

    // What the connection waits for now: as last registered with the readiness mechanism.
    Interest interest() const noexcept { return interest_; }

    // Call when the socket is ready for interest() (or has an error). Reading: one read, answer
    // every complete request, write the answers at once. Writing: flush, then answer requests held
    // back while output was full. Returns what to wait for next; Interest::close means close it.
    // `scratch` is the loop's read buffer: bytes are copied into the connection only when a request
    // is split across reads, so an idle connection owns no buffer memory.
    Interest on_ready(std::span<char> scratch);

    std::int64_t last_active_ms = 0;

private:
    Interest on_readable(std::span<char> scratch);
    Interest on_writable();
    Interest answer(std::span<const char> fresh);
    bool flush();

    UniqueFd fd_;
    const Server* server_;
    ProtocolSession session_;
    ByteBuffer in_;   // an incomplete request, or input held back while output was full
    ByteBuffer out_;  // responses the socket has not taken yet
    Interest interest_ = Interest::read;
    bool peer_closed_ = false;
};

// A loop's connections, indexed by descriptor, with the limits and the idle timeout applied.
class ConnectionTable {
public:
    // fd_limit: descriptors at or above it are refused (select cannot watch fds >= FD_SETSIZE).
    explicit ConnectionTable(Server& server, int fd_limit = INT_MAX);

    // Accepts every waiting connection; calls on_open(Connection&) for each one admitted, so the
    // model can start watching it. Connections over --max-conns or fd_limit are closed at once.
    template <class OnOpen>
    void accept_all(Listener& listener, OnOpen&& on_open) {
        while (UniqueFd fd = listener.accept(Blocking::no)) {
            if (Connection* c = admit(std::move(fd))) on_open(*c);
        }
    }

    Connection* find(int fd) noexcept {
        return fd >= 0 && static_cast<std::size_t>(fd) < by_fd_.size() ? by_fd_[fd].get() : nullptr;
    }

    // Runs a ready connection and stamps its activity time; on Interest::close it is already closed.
    Interest run(Connection& c);

    void close(Connection& c);

    // Closes connections idle past --idle-timeout-ms, calling on_close(fd) just before each.
    // Returns how long the loop may wait before the next check, in ms (-1: forever).
    template <class OnClose>
    int close_idle(OnClose&& on_close) {
        if (server_.options.idle_timeout_ms == 0) return -1;
        const std::int64_t now = monotonic_ms();
        if (now >= next_sweep_ms_) {
            const std::int64_t deadline = now - server_.options.idle_timeout_ms;
            for (auto& slot : by_fd_) {
                if (slot && slot->last_active_ms < deadline) {
                    on_close(slot->fd());
                    close(*slot);
                }
            }
            next_sweep_ms_ = now + sweep_interval_ms();
        }
        return static_cast<int>(next_sweep_ms_ - now);
    }

    template <class F>
    void for_each(F&& f) {
        for (auto& slot : by_fd_) if (slot) f(*slot);
    }

    std::size_t size() const noexcept { return count_; }

private:
    Connection* admit(UniqueFd fd);
    int sweep_interval_ms() const noexcept;
    static std::int64_t monotonic_ms() noexcept;  // cheap: clock_gettime runs in the vDSO

    Server& server_;
    int fd_limit_;
    std::vector<std::unique_ptr<Connection>> by_fd_;
    std::size_t count_ = 0;
    std::int64_t next_sweep_ms_ = 0;
    std::vector<char> scratch_;
};

}  // namespace sb
