#pragma once
// The connection of the readiness-based models (select, poll, epoll, and the multi-loop ones).
// They differ only in how they ask which sockets are ready; what a ready connection does is
// written once, here (the redis ae_* / muduo TcpConnection idea). A connection says which
// readiness it waits for next, and the model turns that into its own interest set.

#include <atomic>
#include <climits>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "byte_buffer.hpp"
#include "server.hpp"

namespace sb {

// Size of a loop's read buffer, shared by all its connections (one read takes up to this much).
inline constexpr std::size_t kLoopScratchBytes = 64 * 1024;

// `work`: the connection's last batch of requests waits for its handler's work in another thread
// (RequestWork::handed_off); watch nothing for it until ConnectionTable::finish_work.
enum class Interest : std::uint8_t { read, write, close, work };

// Who runs a request's handler work (--cpu-us, --io-us): the loop itself, between reads, or a pool
// of threads the model hands each batch to (epoll-pool), so a slow handler does not stall the loop.
enum class RequestWork : std::uint8_t { in_loop, handed_off };

class Connection {
public:
    Connection(UniqueFd fd, const Server& server, RequestWork work = RequestWork::in_loop) noexcept;

    int fd() const noexcept { return fd_.get(); }

    // What the connection waits for now: as last registered with the readiness mechanism.
    Interest interest() const noexcept { return interest_; }

    // Call when the socket is ready for interest() (or has an error). Reading: one read, answer
    // every complete request, write the answers at once. Writing: flush, then answer requests held
    // back while output was full. Returns what to wait for next; Interest::close means close it.
    // `scratch` is the loop's read buffer: bytes are copied into the connection only when a request
    // is split across reads, so an idle connection owns no buffer memory.
    Interest on_ready(std::span<char> scratch);

    // True while part of a request has arrived and the rest has not (nothing left to write).
    bool awaiting_rest_of_request() const noexcept { return !in_.empty() && out_.empty(); }

    // With RequestWork::handed_off, on_ready returns Interest::work after parsing a batch whose
    // responses are ready but whose handler work has not run: run it for pending_requests()
    // elsewhere, then call on_work_done() (via ConnectionTable::finish_work) to send the batch.
    std::size_t pending_requests() const noexcept { return pending_requests_; }
    Interest on_work_done();

    std::int64_t last_active_ms = 0;

private:
    Interest on_readable(std::span<char> scratch);
    Interest on_writable();
    Interest answer(std::span<const char> fresh);
    bool flush();

    UniqueFd fd_;
    const Server* server_;
    RequestWork work_;
    std::size_t pending_requests_ = 0;
    ProtocolSession session_;
    ByteBuffer in_;   // an incomplete request, or input held back while output was full
    ByteBuffer out_;  // responses the socket has not taken yet
    Interest interest_ = Interest::read;
    bool peer_closed_ = false;
};

// --max-conns counted across several loops' tables (epoll-reuseport: one table per thread), so the
// limit is the server's, not each loop's.
class ConnectionBudget {
public:
    bool try_take(int limit) noexcept {
        int used = used_.load(std::memory_order_relaxed);
        do {
            if (used >= limit) return false;
        } while (!used_.compare_exchange_weak(used, used + 1, std::memory_order_relaxed));
        return true;
    }
    void give_back(int n = 1) noexcept { used_.fetch_sub(n, std::memory_order_relaxed); }

private:
    std::atomic<int> used_{0};
};

// A loop's connections, indexed by descriptor, with the limits and the idle timeout applied.
class ConnectionTable {
public:
    // fd_limit: descriptors at or above it are refused (select cannot watch fds >= FD_SETSIZE).
    explicit ConnectionTable(Server& server, int fd_limit = INT_MAX);
    // One of several loops that share --max-conns.
    ConnectionTable(Server& server, ConnectionBudget& shared_budget);
    // Connections whose handler work the model runs elsewhere (see Connection::pending_requests).
    ConnectionTable(Server& server, RequestWork work);
    ~ConnectionTable();
    ConnectionTable(const ConnectionTable&) = delete;
    ConnectionTable& operator=(const ConnectionTable&) = delete;

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

    // Sends a batch whose handler work is done (Interest::work before); as run() otherwise.
    Interest finish_work(Connection& c);

    void close(Connection& c);

    // Closes connections idle past --idle-timeout-ms, calling on_close(fd) just before each. One
    // whose requests are in a worker's hands is not idle: the server, not the client, is busy.
    // Returns how long the loop may wait before the next check, in ms (-1: forever).
    template <class OnClose>
    int close_idle(OnClose&& on_close) {
        if (server_.options.idle_timeout_ms == 0) return -1;
        const std::int64_t now = monotonic_ms();
        if (now >= next_sweep_ms_) {
            const std::int64_t deadline = now - server_.options.idle_timeout_ms;
            for (auto& slot : by_fd_) {
                if (slot && slot->last_active_ms < deadline && slot->interest() != Interest::work) {
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
    int fd_limit_ = INT_MAX;
    ConnectionBudget* shared_budget_ = nullptr;
    RequestWork work_ = RequestWork::in_loop;
    std::vector<std::unique_ptr<Connection>> by_fd_;
    std::size_t count_ = 0;
    std::int64_t next_sweep_ms_ = 0;
    std::vector<char> scratch_;
};

}  // namespace sb
