// io_uring: one thread, completion-based. Where epoll says "this socket is ready, now make the
// call", io_uring takes the call itself (accept, recv, send) and reports when it is done, so one
// io_uring_submit_and_wait per turn both submits every operation the last turn prepared and
// collects every completion: the system calls of a turn are batched into one. A multishot accept
// keeps yielding new connections from a single request. Each connection owns a receive buffer
// (the kernel fills it in place: it must live until the recv completes) and has exactly one
// operation in flight, recv or send, since it alternates between reading requests and writing
// their responses. SIGINT/SIGTERM come through the ring too (a poll on the signalfd), and a
// periodic timeout drives the idle sweep.
//
// Over UDP the rule is different. There are no connections: one multishot recvmsg stays armed on
// the one socket, and each datagram it takes lands, with its sender's address, in a buffer the
// server provides (a buffer ring registered with the kernel: memory is held by datagrams in hand,
// not by waiting receives). The answer is a sendmsg straight from that buffer, so many sends may be
// in flight at once, one per buffer in use; a buffer goes back to the ring when its send completes.
// When the ring runs dry the receive ends (-ENOBUFS) and is armed again once a buffer comes back.

#include <liburing.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
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
#include "core/datagram.hpp"
#include "core/fd_table.hpp"
#include "core/server.hpp"

namespace {

constexpr sb::ModelInfo kModel{
    .name = "io-uring",
    .summary =
        "One thread, io_uring: multishot accept, one recv or send in flight per connection, batched "
        "submissions (over UDP: a multishot recvmsg into provided buffers).",
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

// Kernels may refuse io_uring (sysctl kernel.io_uring_disabled, seccomp in containers), or a part of
// it: the suite records the model as unsupported rather than as a crash.
[[noreturn]] void unsupported(int err) {
    std::fprintf(stderr, "server-io-uring: io_uring unsupported: %s\n", std::strerror(-err));
    std::exit(2);
}

void init_ring(io_uring& ring) {
    // Only this thread submits, and completions' kernel-side work (task_work) runs when it waits for
    // them rather than interrupting it: fewer switches in and out of the kernel. Kernels before 6.1
    // refuse these flags; then the ring is made without them.
    int err =
        io_uring_queue_init(kRingEntries, &ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
    if (err == -EINVAL) err = io_uring_queue_init(kRingEntries, &ring, 0);
    if (err < 0) unsupported(err);
    io_uring_register_ring_fd(&ring);  // saves a descriptor lookup per io_uring_enter, if the kernel can
}

// A submission entry tagged with what its completion is about. A full queue is submitted to make
// room, so a turn may prepare any number of operations.
io_uring_sqe* tagged_sqe(io_uring& ring, std::uint64_t tag) {
    io_uring_sqe* e = io_uring_get_sqe(&ring);
    while (e == nullptr) {
        io_uring_submit(&ring);
        e = io_uring_get_sqe(&ring);
    }
    io_uring_sqe_set_data64(e, tag);
    return e;
}

// SIGINT and SIGTERM come through the ring as a poll on the signalfd, armed again after each signal
// that does not stop the server.
void watch_signals(io_uring& ring, const sb::SignalFd& signals, std::uint64_t tag) {
    io_uring_prep_poll_add(tagged_sqe(ring, tag), signals.fd(), POLLIN);
}

// The signal poll completed: true when the server is to stop, else the poll is armed again.
bool stop_or_watch_again(io_uring& ring, sb::SignalFd& signals, std::uint64_t tag) {
    if (signals.stop_requested()) return true;
    watch_signals(ring, signals, tag);
    return false;
}

class UringServer {
public:
    explicit UringServer(sb::Server& server)
        : server_(server), limit_(server.options.max_conns, server.stats.rejected_at_limit) {
        init_ring(ring_);
        const int sweep_ms = sb::idle_sweep_interval_ms(server_.options.idle_timeout_ms);
        sweep_every_ = {sweep_ms / 1000, (sweep_ms % 1000) * 1'000'000LL};
    }
    ~UringServer() { io_uring_queue_exit(&ring_); }  // before the connections: it cancels their operations
    UringServer(const UringServer&) = delete;
    UringServer& operator=(const UringServer&) = delete;

    void run() {
        arm_accept();
        watch_signals(ring_, server_.signals, kSignal);
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
                        stop |= stop_or_watch_again(ring_, server_.signals, kSignal);
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
    io_uring_sqe* sqe(std::uint64_t tag) { return tagged_sqe(ring_, tag); }
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

// The server over UDP (see the top of this file). --udp-batch is not used: the ring batches anyway.
class UringDatagramServer {
public:
    explicit UringDatagramServer(sb::Server& server)
        : server_(server), buffers_(std::make_unique_for_overwrite<char[]>(kBuffers * kBufferBytes)) {
        init_ring(ring_);
        // The ring of buffer descriptors must be page-aligned: a mapping of its own.
        void* ring_memory =
            ::mmap(nullptr, kBufferRingBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (ring_memory == MAP_FAILED) sb::die(kModel, "mmap");
        buffer_ring_ = static_cast<io_uring_buf_ring*>(ring_memory);
        io_uring_buf_reg reg{};
        reg.ring_addr = reinterpret_cast<std::uint64_t>(buffer_ring_);
        reg.ring_entries = kBuffers;
        reg.bgid = kBufferGroup;
        if (const int err = io_uring_register_buf_ring(&ring_, &reg, 0); err < 0) unsupported(err);  // < 5.19
        io_uring_buf_ring_init(buffer_ring_);
        for (unsigned id = 0; id < kBuffers; ++id) give_back(static_cast<std::uint16_t>(id));
        // The layout of each buffer a multishot recvmsg fills: a header, the sender's address in
        // room for any, and the payload (no control messages).
        receive_msg_.msg_namelen = sizeof(sockaddr_storage);
    }
    ~UringDatagramServer() {
        io_uring_queue_exit(&ring_);  // cancels the receive and the sends before their memory goes
        ::munmap(buffer_ring_, kBufferRingBytes);
    }
    UringDatagramServer(const UringDatagramServer&) = delete;
    UringDatagramServer& operator=(const UringDatagramServer&) = delete;

    void run() {
        arm_receive();
        watch_signals(ring_, server_.signals, kSignal);
        for (;;) {
            io_uring_submit_and_wait(&ring_, 1);
            unsigned head, seen = 0;
            io_uring_cqe* cqe;
            bool stop = false;
            io_uring_for_each_cqe(&ring_, head, cqe) {
                ++seen;
                if (cqe->user_data == kReceive)
                    on_receive(cqe->res, cqe->flags);
                else if (cqe->user_data == kSignal)
                    stop |= stop_or_watch_again(ring_, server_.signals, kSignal);
                else
                    on_sent(static_cast<std::uint16_t>(cqe->user_data - kSendBase), cqe->res);
            }
            io_uring_cq_advance(&ring_, seen);
            if (stop) return;
        }
    }

private:
    static constexpr unsigned kBuffers = 256;  // a power of two, as a buffer ring's size must be
    static constexpr std::uint16_t kBufferGroup = 0;
    static constexpr std::size_t kBufferBytes =
        sizeof(io_uring_recvmsg_out) + sizeof(sockaddr_storage) + sb::kMaxDatagram;
    static constexpr std::size_t kBufferRingBytes = kBuffers * sizeof(io_uring_buf);
    // Tags: a send's is kSendBase + its buffer's id.
    enum : std::uint64_t { kReceive = 1, kSignal = 2, kSendBase = 16 };

    // A send in flight owns its message header and vector; both point into its datagram's buffer.
    struct Send {
        msghdr msg{};
        iovec iov{};
        sockaddr_storage peer{};
    };

    char* buffer(std::uint16_t id) const noexcept { return buffers_.get() + std::size_t{id} * kBufferBytes; }

    void give_back(std::uint16_t id) {
        io_uring_buf_ring_add(buffer_ring_, buffer(id), kBufferBytes, id, io_uring_buf_ring_mask(kBuffers),
                              0);
        io_uring_buf_ring_advance(buffer_ring_, 1);
        if (starved_) {  // the receive ended for want of a buffer: here is one
            starved_ = false;
            arm_receive();
        }
    }

    // MSG_TRUNC: a datagram's real length, so one larger than its buffer is known as such.
    void arm_receive() {
        io_uring_sqe* e = tagged_sqe(ring_, kReceive);
        if (multishot_) {
            io_uring_prep_recvmsg_multishot(e, server_.listener.fd(), &receive_msg_, MSG_TRUNC);
        } else {  // a kernel before 6.0: one datagram per receive, its sender in single_peer_
            single_iov_ = {nullptr, kBufferBytes};
            single_msg_ = msghdr{};
            single_msg_.msg_name = &single_peer_;
            single_msg_.msg_namelen = sizeof single_peer_;
            single_msg_.msg_iov = &single_iov_;
            single_msg_.msg_iovlen = 1;
            io_uring_prep_recvmsg(e, server_.listener.fd(), &single_msg_, MSG_TRUNC);
        }
        e->flags |= IOSQE_BUFFER_SELECT;
        e->buf_group = kBufferGroup;
    }

    void on_receive(int res, unsigned flags) {
        if (flags & IORING_CQE_F_BUFFER) {
            const auto id = static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
            if (res >= 0)
                on_datagram(id, res);
            else
                give_back(id);
        } else if (res == -EINVAL && multishot_) {
            multishot_ = false;
        } else if (res == -ENOBUFS) {
            starved_ = true;  // every buffer is in a send in flight: armed again by give_back()
        }
        if (!(flags & IORING_CQE_F_MORE) && !starved_) arm_receive();
    }

    // A datagram in buffer `id`: dropped if it did not fit or cannot be answered, else answered
    // straight from the buffer once its handler work is done.
    void on_datagram(std::uint16_t id, int res) {
        server_.stats.datagrams_received.fetch_add(1, std::memory_order_relaxed);
        Send& send = sends_[id];
        std::span<const char> payload;
        socklen_t peer_len = 0;
        bool truncated = false;
        if (multishot_) {
            io_uring_recvmsg_out* out = io_uring_recvmsg_validate(buffer(id), res, &receive_msg_);
            assert(out != nullptr && "the kernel writes the header and room for the address first");
            truncated = out == nullptr || (out->flags & MSG_TRUNC) != 0;
            if (!truncated) {
                payload = {static_cast<const char*>(io_uring_recvmsg_payload(out, &receive_msg_)),
                           out->payloadlen};
                peer_len = std::min<socklen_t>(out->namelen, sizeof send.peer);
                std::memcpy(&send.peer, io_uring_recvmsg_name(out), peer_len);
            }
        } else {
            truncated =
                (single_msg_.msg_flags & MSG_TRUNC) != 0 || static_cast<std::size_t>(res) > kBufferBytes;
            payload = {buffer(id), static_cast<std::size_t>(res)};
            peer_len = single_msg_.msg_namelen;
            std::memcpy(&send.peer, &single_peer_, peer_len);
        }
        if (truncated || payload.size() > sb::kMaxDatagram) {
            server_.stats.datagrams_oversized.fetch_add(1, std::memory_order_relaxed);
            return give_back(id);
        }
        if (peer_len <= sizeof(sa_family_t)) {  // a Unix sender without an address: nothing reaches it
            server_.stats.datagram_send_errors.fetch_add(1, std::memory_order_relaxed);
            return give_back(id);
        }
        sb::simulate_request_work(server_.options, 1);
        send.iov = {const_cast<char*>(payload.data()), payload.size()};
        send.msg = msghdr{};
        send.msg.msg_name = &send.peer;
        send.msg.msg_namelen = peer_len;
        send.msg.msg_iov = &send.iov;
        send.msg.msg_iovlen = 1;
        // MSG_DONTWAIT: a client with no room fails this send now rather than holding the buffer.
        io_uring_prep_sendmsg(tagged_sqe(ring_, kSendBase + id), server_.listener.fd(), &send.msg,
                              MSG_DONTWAIT | MSG_NOSIGNAL);
    }

    void on_sent(std::uint16_t id, int res) {
        assert(id < kBuffers && "a send's tag names its buffer");
        (res >= 0 ? server_.stats.datagrams_answered : server_.stats.datagram_send_errors)
            .fetch_add(1, std::memory_order_relaxed);
        give_back(id);
    }

    sb::Server& server_;
    io_uring ring_{};
    std::unique_ptr<char[]> buffers_;  // kBuffers buffers of kBufferBytes
    io_uring_buf_ring* buffer_ring_ = nullptr;
    std::array<Send, kBuffers> sends_{};
    msghdr receive_msg_{};  // the multishot receive's template: the size of the address room
    msghdr single_msg_{};   // the single-shot receive's
    iovec single_iov_{};
    sockaddr_storage single_peer_{};
    bool multishot_ = true;
    bool starved_ = false;
};

int serve_udp(sb::Server& server) {
    UringDatagramServer uring(server);
    server.announce_ready();
    uring.run();
    return server.finish();
}

}  // namespace

int main(int argc, char** argv) {
    sb::Server server(argc, argv, kModel, sb::Blocking::no);
    if (server.options.transport == sb::Transport::udp) return serve_udp(server);
    UringServer uring(server);
    server.announce_ready();
    uring.run();
    return server.finish();
}
