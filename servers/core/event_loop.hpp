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

#include "clock.hpp"
#include "connection_limit.hpp"
#include "connection_step.hpp"
#include "fd_table.hpp"
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
    bool awaiting_rest_of_request() const noexcept { return step_.awaiting_rest_of_request(); }

    // With RequestWork::handed_off, on_ready returns Interest::work after parsing a batch whose
    // responses are ready but whose handler work has not run: run it for pending_requests()
    // elsewhere, then call on_work_done() (via ConnectionTable::finish_work) to send the batch.
    std::size_t pending_requests() const noexcept { return pending_requests_; }
    Interest on_work_done();

    std::int64_t last_active_ms = 0;

private:
    Interest on_readable(std::span<char> scratch);
    Interest answer(std::span<const char> fresh);
    Interest after_answer();
    bool flush();

    UniqueFd fd_;
    const Server* server_;
    RequestWork work_;
    std::size_t pending_requests_ = 0;
    ConnectionStep step_;
    Interest interest_ = Interest::read;
};

// A loop's connections, indexed by descriptor, with the limits and the idle timeout applied.
class ConnectionTable {
public:
    // `limit` is --max-conns, perhaps shared with other loops (epoll-reuseport); it must outlive the
    // table. `work`: whether the model runs handler work elsewhere (see Connection::pending_requests).
    // fd_limit: descriptors at or above it are refused (select cannot watch fds >= FD_SETSIZE).
    ConnectionTable(Server& server, ConnectionLimit& limit, RequestWork work = RequestWork::in_loop,
                    int fd_limit = INT_MAX);
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
        std::unique_ptr<Connection>* slot = by_fd_.find(fd);
        return slot != nullptr ? slot->get() : nullptr;
    }

    // Runs a ready connection and stamps its activity time; on Interest::close it is already closed.
    Interest run(Connection& c);

    // Sends a batch whose handler work is done (Interest::work before); as run() otherwise.
    Interest finish_work(Connection& c);

    void close(Connection& c);

    // Closes a connection the readiness mechanism had no room to watch (epoll_ctl: ENOMEM,
    // ENOSPC), counted in the stop line with those refused for lack of resources.
    void close_for_lack_of_resources(Connection& c);

    const ModelInfo& model() const noexcept { return server_.model(); }

    // Closes connections idle past --idle-timeout-ms. One whose requests are in a worker's hands is
    // not idle: the server, not the client, is busy. A closed descriptor leaves every readiness
    // set by itself (epoll) or is not put in the next one (select, poll), so the models need not
    // hear of it. Returns how long the loop may wait before the next check, in ms (-1: forever).
    int close_idle();

    template <class F>
    void for_each(F&& f) {
        by_fd_.for_each([&f](int, std::unique_ptr<Connection>& slot) {
            if (slot) f(*slot);
        });
    }

private:
    Connection* admit(UniqueFd fd);

    Server& server_;
    ConnectionLimit& limit_;
    RequestWork work_;
    int fd_limit_;
    FdTable<std::unique_ptr<Connection>> by_fd_;
    int count_ = 0;
    IdleSweep sweep_;
    std::vector<char> scratch_;
};

}  // namespace sb
