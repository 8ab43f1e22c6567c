// io_uring: one thread, completion-based. Where epoll says "this socket is ready, now make the
// call", io_uring takes the call itself (accept, recv, send) and reports when it is done, so one
// io_uring_submit_and_wait per turn both submits every operation the last turn prepared and
// collects every completion: the system calls of a turn are batched into one. A multishot accept
// keeps yielding new connections from a single request. Each connection owns a receive buffer
// (the kernel fills it in place: it must live until the recv completes) and has exactly one
// operation in flight, recv or send, since it alternates between reading requests and writing
// their responses. SIGINT/SIGTERM come through the ring too (a poll on the signalfd), and a
// periodic timeout drives the idle sweep.

#include <liburing.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <vector>

#include "core/clock.hpp"
#include "core/connection_limit.hpp"
#include "core/connection_step.hpp"
#include "core/fd_table.hpp"
#include "core/server.hpp"

namespace {

constexpr sb::ModelInfo kModel{
    .name = "io-uring",
    .summary =
        "One thread, io_uring: multishot accept, one recv or send in flight per connection, batched "
        "submissions.",
    .default_max_conns = 100000,
};

constexpr unsigned kRingEntries = 4096;
// Requests are small, so a connection starts with 4 KiB (an idle connection holds only that). One
// whose recv filled its buffer is sent large messages: its buffer doubles, up to 64 KiB, so that a
// message takes one recv rather than many. (Provided buffers would hold memory only while a recv
// is in flight, at the price of a second code path for kernels before 5.19.)
constexpr std::size_t kFirstRecvBytes = 4096;
constexpr std::size_t kMaxRecvBytes = 64 * 1024;

struct UringConnection {
    explicit UringConnection(sb::UniqueFd socket, const sb::ResponseSet& responses) noexcept
        : fd(std::move(socket)), step(responses) {}

    sb::UniqueFd fd;
    sb::ConnectionStep step;  // what came in, the protocol, and the responses being sent
    std::int64_t last_active_ms = 0;
    bool in_flight = false;    // its one recv or send is submitted and has not completed
    bool shut_down = false;    // closing: its operation in flight ends with an error, then it is freed
    bool recv_filled = false;  // the last recv filled the buffer: the next one gets a larger buffer
    std::vector<char> recv_buffer = std::vector<char>(kFirstRecvBytes);
};

// What a completion is about: a connection's recv or send (user_data is its address: a connection
// is never freed while its operation is in flight, asserted in close()), or one of these, which are
// never a connection's address: each is below its alignment.
enum Tag : std::uint64_t { kAccept = 1, kSignal = 2, kSweep = 3, kBacklog = 4, kLastTag = kBacklog };
static_assert(alignof(UringConnection) > kLastTag, "a tag could be a connection's address");

class UringServer {
public:
    explicit UringServer(sb::Server& server)
        : server_(server), limit_(server.options.max_conns, server.stats.rejected_at_limit) {
        // Only this thread submits, and completions' kernel-side work (task_work) runs when it
        // waits for them rather than interrupting it: fewer switches in and out of the kernel.
        // Kernels before 6.1 refuse these flags; then the ring is made without them.
        int err = io_uring_queue_init(kRingEntries, &ring_,
                                      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
        if (err == -EINVAL) err = io_uring_queue_init(kRingEntries, &ring_, 0);
        if (err < 0) {
            // Kernels may refuse io_uring (sysctl kernel.io_uring_disabled, seccomp in containers):
            // the suite records the model as unsupported rather than as a crash.
            std::fprintf(stderr, "server-io-uring: io_uring unsupported: %s\n", std::strerror(-err));
            std::exit(2);
        }
        io_uring_register_ring_fd(&ring_);  // saves a descriptor lookup per io_uring_enter, if the kernel can
        const int sweep_ms = sb::idle_sweep_interval_ms(server_.options.idle_timeout_ms);
        sweep_every_ = {sweep_ms / 1000, (sweep_ms % 1000) * 1'000'000LL};
    }
    ~UringServer() { io_uring_queue_exit(&ring_); }  // before the connections: it cancels their operations
    UringServer(const UringServer&) = delete;
    UringServer& operator=(const UringServer&) = delete;

    void run() {
        arm_accept();
        io_uring_prep_poll_add(sqe(kSignal), server_.signals.fd(), POLLIN);
        if (server_.options.idle_timeout_ms > 0) io_uring_prep_timeout(sqe(kSweep), &sweep_every_, 0, 0);
        for (;;) {
            // One system call per turn: submits what the last turn prepared, waits for one completion.
            io_uring_submit_and_wait(&ring_, 1);
            unsigned head, seen = 0;
            io_uring_cqe* cqe;
            bool stop = false;
            io_uring_for_each_cqe(&ring_, head, cqe) {
                ++seen;
                switch (cqe->user_data) {
                    case kAccept:
                        on_accept(cqe->res, cqe->flags);
                        break;
                    case kSignal:
                        stop |= on_signal();
                        break;
                    case kSweep:
                        on_sweep();
                        break;
                    case kBacklog:
                        on_backlog();
                        break;
                    default:
                        on_io_done(*reinterpret_cast<UringConnection*>(cqe->user_data), cqe->res);
                        break;
                }
            }
            io_uring_cq_advance(&ring_, seen);
            if (stop) return;
        }
    }

private:
    // A submission entry tagged with what its completion is about. A full queue is submitted to
    // make room, so a turn may prepare any number of operations.
    io_uring_sqe* sqe(std::uint64_t tag) {
        io_uring_sqe* e = io_uring_get_sqe(&ring_);
        while (e == nullptr) {
            io_uring_submit(&ring_);
            e = io_uring_get_sqe(&ring_);
        }
        io_uring_sqe_set_data64(e, tag);
        return e;
    }
    // The entry of c's one operation in flight: it alternates between a recv and a send, and its
    // completion clears the flag (on_io_done).
    io_uring_sqe* sqe(UringConnection& c) {
        assert(!c.in_flight && "one operation in flight per connection");
        c.in_flight = true;
        return sqe(reinterpret_cast<std::uint64_t>(&c));
    }

    void arm_accept() {
        if (multishot_accept_)
            io_uring_prep_multishot_accept(sqe(kAccept), server_.listener.fd(), nullptr, nullptr,
                                           SOCK_CLOEXEC);
        else
            io_uring_prep_accept(sqe(kAccept), server_.listener.fd(), nullptr, nullptr, SOCK_CLOEXEC);
    }

    void on_accept(int res, unsigned flags) {
        if (res >= 0)
            admit(server_.listener.adopt(res));  // counted, TCP_NODELAY: as the listener's own
        else if (res == -EINVAL && multishot_accept_)
            multishot_accept_ = false;          // a kernel before 5.19
        if (flags & IORING_CQE_F_MORE) return;  // the multishot accept goes on
        // Out of descriptors, an accept fails at once whether a connection waits or not: re-armed
        // now, it would fail again and again (the EMFILE spin). Wait for a connection to be queued.
        if (res == -EMFILE || res == -ENFILE)
            io_uring_prep_poll_add(sqe(kBacklog), server_.listener.fd(), POLLIN);
        else
            arm_accept();
    }

    // A connection is queued while descriptors were short. The core listener takes it if one has
    // been freed since, or else sheds it (accepts it on its reserve descriptor and closes it).
    void on_backlog() {
        if (sb::UniqueFd fd = server_.listener.accept(sb::Blocking::no)) admit(std::move(fd));
        arm_accept();
    }

    void admit(sb::UniqueFd fd) {
        if (!limit_.try_take()) return;  // refused (and counted): closed here, at once
        std::unique_ptr<UringConnection>& slot = by_fd_[fd.get()];
        slot = std::make_unique<UringConnection>(std::move(fd), server_.responses);
        slot->last_active_ms = sb::monotonic_ms();
        receive(*slot);
    }

    bool on_signal() {
        if (server_.signals.stop_requested()) return true;
        io_uring_prep_poll_add(sqe(kSignal), server_.signals.fd(), POLLIN);
        return false;
    }

    // Idle connections are shut down: their pending recv then completes, and they are freed there.
    void on_sweep() {
        const std::int64_t deadline = sb::monotonic_ms() - server_.options.idle_timeout_ms;
        by_fd_.for_each([deadline](int fd, std::unique_ptr<UringConnection>& c) {
            if (c && !c->shut_down && c->last_active_ms < deadline) {
                c->shut_down = true;
                ::shutdown(fd, SHUT_RDWR);
            }
        });
        io_uring_prep_timeout(sqe(kSweep), &sweep_every_, 0, 0);
    }

    // The next request is rarely there yet when a response has just left, so the recv waits for
    // data first (POLL_FIRST) instead of trying at once and failing with EAGAIN.
    void receive(UringConnection& c) {
        if (c.recv_filled && c.recv_buffer.size() < kMaxRecvBytes)
            c.recv_buffer.resize(2 * c.recv_buffer.size());
        io_uring_sqe* e = sqe(c);
        io_uring_prep_recv(e, c.fd.get(), c.recv_buffer.data(), c.recv_buffer.size(), 0);
        e->ioprio |= IORING_RECVSEND_POLL_FIRST;
    }
    void send(UringConnection& c) {
        const std::span<const char> bytes = c.step.output().readable();
        io_uring_prep_send(sqe(c), c.fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    }

    // A recv or a send of c completed. The connection was sending if it has output.
    void on_io_done(UringConnection& c, int res) {
        assert(c.in_flight && "a completion ends the connection's operation in flight");
        c.in_flight = false;
        if (res < 0 || c.shut_down) return close(c);  // reset, shut down by the sweep, ...
        c.last_active_ms = sb::monotonic_ms();
        if (!c.step.output().empty()) {  // a send
            c.step.sent(static_cast<std::size_t>(res));
            return proceed(c);
        }
        if (res == 0) {  // end of stream: every request that came was answered already
            c.step.end_of_input();
            return proceed(c);
        }
        const auto received = static_cast<std::size_t>(res);
        assert(received <= c.recv_buffer.size());
        c.recv_filled = received == c.recv_buffer.size();
        answer(c, {c.recv_buffer.data(), received});
    }

    // Answers the requests that are complete and runs their handler work, then goes on.
    void answer(UringConnection& c, std::span<const char> fresh) {
        const sb::FeedResult r = c.step.answer(fresh);
        sb::simulate_request_work(server_.options, r.requests);
        proceed(c);
    }

    // Sends, reads more, answers what was held back, or closes, as the connection's step says.
    void proceed(UringConnection& c) {
        switch (c.step.next()) {
            case sb::ConnectionStep::Next::send:
                return send(c);
            case sb::ConnectionStep::Next::answer_more:
                return answer(c, {});
            case sb::ConnectionStep::Next::read:
                return receive(c);
            case sb::ConnectionStep::Next::close:
                return close(c);
            case sb::ConnectionStep::Next::discard_and_close:
                sb::discard_pending_input(c.fd.get());
                return close(c);
        }
    }

    void close(UringConnection& c) {
        assert(!c.in_flight && "a connection is freed only once its operation has completed");
        by_fd_[c.fd.get()].reset();
        limit_.give_back();
    }

    sb::Server& server_;
    io_uring ring_{};
    __kernel_timespec sweep_every_{};
    bool multishot_accept_ = true;
    sb::ConnectionLimit limit_;
    sb::FdTable<std::unique_ptr<UringConnection>> by_fd_;
};

}  // namespace

int main(int argc, char** argv) {
    sb::Server server(argc, argv, kModel, sb::Blocking::no);
    UringServer uring(server);
    server.announce_ready();
    uring.run();
    return server.finish();
}
