#pragma once
// C++20 coroutines on an epoll loop: a connection's handler is written as straight-line code that
// looks blocking (co_await socket.read(...), co_await socket.write(...)), and each co_await that
// would block suspends the handler instead of a thread. The Reactor resumes it when epoll says the
// socket is ready. Thread-per-connection's readability, an event loop's cost: a suspended handler
// is a heap frame of a few hundred bytes, not a thread and its stack.
//
// Generic machinery only; the handler itself is the model's (servers/coroutine.cpp).

#include <sys/epoll.h>
#include <unistd.h>

#include <array>
#include <cassert>
#include <cerrno>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <span>
#include <utility>
#include <vector>

#include "core/check_epoll_ctl.hpp"
#include "core/clock.hpp"
#include "core/connection_limit.hpp"
#include "core/connection_step.hpp"
#include "core/fd_table.hpp"
#include "core/server.hpp"

namespace sb {

// A connection's coroutine. It starts suspended, so the Reactor owns its frame before it runs, and
// stays suspended at its end, so the Reactor frees it; at stop, the Reactor destroys the frames of
// those still waiting, which closes their sockets (their locals' destructors run).
class ConnectionTask {
public:
    struct promise_type {
        ConnectionTask get_return_object() noexcept {
            return ConnectionTask{std::coroutine_handle<promise_type>::from_promise(*this)};
        }
        std::suspend_always initial_suspend() noexcept { return {}; }
        std::suspend_always final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
        void unhandled_exception() noexcept { std::terminate(); }
    };

    ConnectionTask(ConnectionTask&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
    ConnectionTask& operator=(ConnectionTask&&) = delete;
    ~ConnectionTask() {
        if (handle_) handle_.destroy();
    }
    std::coroutine_handle<> release() noexcept { return std::exchange(handle_, {}); }

private:
    explicit ConnectionTask(std::coroutine_handle<> h) noexcept : handle_(h) {}
    std::coroutine_handle<> handle_;
};

class Reactor;

// An operation a handler waits for: tried at once, and again each time epoll reports its socket.
struct PendingIo {
    bool (*attempt)(PendingIo&);  // true: done (or failed); false: it would block, keep waiting
    std::int64_t since_ms = 0;
    bool timed_out = false;  // the Reactor gave up on it after --idle-timeout-ms
};

// A connection's socket, non-blocking; its operations suspend the calling coroutine, never the thread.
class Socket {
public:
    Socket(Reactor& reactor, UniqueFd fd) noexcept : reactor_(&reactor), fd_(std::move(fd)) {}
    int fd() const noexcept { return fd_.get(); }

    // co_await read(): the bytes that arrived, read into the Reactor's scratch, so an idle
    // connection owns no input buffer; valid until the handler next suspends (hand them to a
    // ConnectionStep, which keeps what it does not answer). Empty at end of stream, on an error
    // or at the idle timeout.
    auto read() noexcept;
    // co_await write(step): true once all of step's output is sent, false on error or idle timeout.
    auto write(ConnectionStep& step) noexcept;

private:
    Reactor* reactor_;
    UniqueFd fd_;
};

// Over UDP: the server's datagram socket, which one coroutine serves.
class DatagramSocket {
public:
    DatagramSocket(Reactor& reactor, int fd) noexcept : reactor_(&reactor), fd_(fd) {}
    int fd() const noexcept { return fd_; }

    // co_await readable(): suspends until epoll reports datagrams waiting. It always suspends, even
    // when some are waiting still: the loop then looks at the stop signal before resuming it.
    auto readable() noexcept;

private:
    Reactor* reactor_;
    int fd_;  // the Server's: not this object's to close
};

class Reactor {
public:
    explicit Reactor(Server& server)
        : server_(server),
          epoll_(::epoll_create1(EPOLL_CLOEXEC)),
          limit_(server.options.max_conns, server.stats.rejected_at_limit),
          sweep_(server.options.idle_timeout_ms) {
        if (!epoll_) die(server.model(), "epoll_create1");
        for (int fd : {server.listener.fd(), server.signals.fd()}) {  // its own: it cannot run without them
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.fd = fd;
            if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) die(server.model(), "epoll_ctl");
        }
    }
    ~Reactor() {
        slots_.for_each([this](int fd, Slot& slot) {
            if (slot.task) finish(fd);  // stopping: handlers still waiting end here
        });
    }
    Reactor(const Reactor&) = delete;
    Reactor& operator=(const Reactor&) = delete;

    // Runs handler(Socket) as a coroutine for each connection until SIGINT/SIGTERM.
    template <class Handler>
    void run(Handler&& handler) {
        std::array<epoll_event, 512> events;
        for (;;) {
            const int ready = ::epoll_wait(epoll_.get(), events.data(), events.size(), close_idle());
            for (int i = 0; i < ready; ++i) {
                const int fd = events[static_cast<std::size_t>(i)].data.fd;
                if (fd == server_.listener.fd()) {
                    while (UniqueFd conn = server_.listener.accept(Blocking::no))
                        start(std::move(conn), handler);
                } else if (fd == server_.signals.fd()) {
                    if (server_.signals.stop_requested()) return;
                } else {
                    on_ready(fd, events[static_cast<std::size_t>(i)].events);
                }
            }
        }
    }

    // Over UDP: runs handler(DatagramSocket) as the one coroutine serving the server's datagram
    // socket until SIGINT/SIGTERM. The socket is watched level-triggered (since the constructor),
    // so a wake-up whose share left datagrams waiting is followed by another. The coroutine holds a
    // --max-conns slot, as a connection's does, so that it is freed like one.
    template <class Handler>
    void run_datagrams(Handler&& handler) {
        const int fd = server_.listener.fd();
        [[maybe_unused]] const bool took = limit_.try_take();
        assert(took && "--max-conns is at least 1");
        slots_[fd] = Slot{.task = handler(DatagramSocket(*this, fd)).release()};
        resume(fd);
        std::array<epoll_event, 2> events;
        for (;;) {
            const int ready = ::epoll_wait(epoll_.get(), events.data(), events.size(), -1);
            for (int i = 0; i < ready; ++i) {
                const epoll_event& e = events[static_cast<std::size_t>(i)];
                if (e.data.fd == server_.signals.fd() && server_.signals.stop_requested()) return;
                if (e.data.fd == fd) on_ready(fd, e.events);
            }
        }
    }

    // Where every connection reads; what it holds is used (or copied) before any other connection
    // runs, so one buffer serves them all (the event loops' scratch, as in muduo).
    std::span<char> scratch() noexcept { return scratch_; }

    // Called by an awaiter whose operation would block: resumed when it completes (or times out).
    void park(int fd, PendingIo& io) noexcept {
        io.since_ms = monotonic_ms();
        slots_[fd].waiting = &io;
    }

    // Whether a read of fd may find input now. False only when the last read drained the socket
    // and epoll has reported no input since: edge-triggered epoll reports every arrival after that
    // drain, so a read is not tried when it is sure to fail with EAGAIN (after a response has gone
    // out, the next request is rarely there yet), which saves one system call per request, and no
    // arrival is missed. An end of stream or an error keeps it true for good: the FIN may have come
    // with the last data, before that read, and raises no later edge.
    bool may_have_input(int fd) noexcept {
        const Slot& slot = slots_[fd];
        return slot.unread_input || slot.input_ended;
    }
    void read_done(int fd, bool drained) noexcept { slots_[fd].unread_input = !drained; }

private:
    struct Slot {
        std::coroutine_handle<> task;  // the connection's handler
        PendingIo* waiting = nullptr;  // what it is suspended on
        bool unread_input = true;      // input may have arrived since the last read (see may_have_input)
        bool input_ended = false;      // epoll reported the peer's end of stream, a hang-up or an error
    };

    template <class Handler>
    void start(UniqueFd conn, Handler& handler) {
        if (!limit_.try_take()) return;  // refused (and counted): closed here, at once
        const int fd = conn.get();
        // Edge-triggered, both directions, once for the connection's life, so no epoll_ctl is made
        // per operation. No edge is missed: a write is always tried before it waits, and a read
        // unless the socket is known to be drained since the last edge (may_have_input).
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.fd = fd;
        if (!check_epoll_ctl(::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev), server_.model())) {
            limit_.give_back();  // no room to watch it: closed here, counted for lack of resources
            server_.stats.rejected_no_resources.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        slots_[fd] = Slot{.task = handler(Socket(*this, std::move(conn))).release()};
        resume(fd);
    }

    void on_ready(int fd, std::uint32_t events) {
        Slot& slot = slots_[fd];
        if (events & EPOLLIN) slot.unread_input = true;
        if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) slot.input_ended = true;
        if (slot.waiting != nullptr && slot.waiting->attempt(*slot.waiting)) resume(fd);
    }

    void resume(int fd) {
        Slot& slot = slots_[fd];
        slot.waiting = nullptr;
        slot.task.resume();  // runs the handler to its next wait, or to its end
        if (slot.task.done()) finish(fd);
    }

    void finish(int fd) {
        Slot& slot = slots_[fd];
        std::exchange(slot.task, {}).destroy();  // closes the socket (a local of the frame)
        slot.waiting = nullptr;
        limit_.give_back();
    }

    // Resumes, as timed out, the handlers waiting longer than --idle-timeout-ms. Returns how long
    // epoll may wait before the next check (-1: forever).
    int close_idle() {
        if (!sweep_.enabled()) return -1;
        const std::int64_t now = monotonic_ms();
        if (sweep_.due(now)) {
            const std::int64_t idle_before = sweep_.idle_before(now);
            slots_.for_each([&](int fd, Slot& slot) {
                if (slot.waiting != nullptr && slot.waiting->since_ms < idle_before) {
                    slot.waiting->timed_out = true;
                    resume(fd);
                }
            });
        }
        return sweep_.wait_ms(now);
    }

    Server& server_;
    UniqueFd epoll_;
    FdTable<Slot> slots_;
    ConnectionLimit limit_;
    IdleSweep sweep_;
    std::vector<char> scratch_ = std::vector<char>(64 * 1024);
};

// The awaiters. Each tries its system call in await_ready, so an operation that can complete now
// costs no suspension at all, and parks itself with the Reactor only on EAGAIN; a read is not
// tried when the Reactor knows it would fail (Reactor::may_have_input).

struct ReadAwaiter : PendingIo {
    Reactor* reactor;
    int fd;
    ssize_t result = -1;

    static bool try_read(PendingIo& io) noexcept {
        auto& self = static_cast<ReadAwaiter&>(io);
        const std::span<char> scratch = self.reactor->scratch();
        for (;;) {
            ssize_t n = ::read(self.fd, scratch.data(), scratch.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) {
                self.reactor->read_done(self.fd, true);
                return false;
            }
            // Less than asked for: the socket held no more when it was read.
            if (n > 0) self.reactor->read_done(self.fd, static_cast<std::size_t>(n) < scratch.size());
            self.result = n;
            return true;
        }
    }
    bool await_ready() noexcept { return reactor->may_have_input(fd) && try_read(*this); }
    void await_suspend(std::coroutine_handle<>) noexcept { reactor->park(fd, *this); }
    std::span<const char> await_resume() const noexcept {
        if (timed_out || result <= 0) return {};
        return reactor->scratch().first(static_cast<std::size_t>(result));
    }
};

struct WriteAwaiter : PendingIo {
    Reactor* reactor;
    int fd;
    ConnectionStep* step;
    bool ok = false;

    static bool try_write(PendingIo& io) {
        auto& self = static_cast<WriteAwaiter&>(io);
        while (!self.step->output().empty()) {
            const std::span<const char> bytes = self.step->output().readable();
            ssize_t n = ::write(self.fd, bytes.data(), bytes.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && errno == EAGAIN) return false;
            if (n < 0) return true;  // ok stays false: peer gone
            self.step->sent(static_cast<std::size_t>(n));
        }
        self.ok = true;
        return true;
    }
    bool await_ready() { return try_write(*this); }
    void await_suspend(std::coroutine_handle<>) noexcept { reactor->park(fd, *this); }
    bool await_resume() const noexcept { return ok && !timed_out; }
};

// Waits for epoll's report, and nothing else: the coroutine receives for itself once resumed.
struct ReadableAwaiter : PendingIo {
    Reactor* reactor;
    int fd;

    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<>) noexcept { reactor->park(fd, *this); }
    void await_resume() const noexcept {}
};

inline auto DatagramSocket::readable() noexcept {
    ReadableAwaiter a;
    a.attempt = [](PendingIo&) { return true; };  // reported readable: resume
    a.reactor = reactor_;
    a.fd = fd_;
    return a;
}

inline auto Socket::read() noexcept {
    ReadAwaiter a;
    a.attempt = &ReadAwaiter::try_read;
    a.reactor = reactor_;
    a.fd = fd_.get();
    return a;
}

inline auto Socket::write(ConnectionStep& step) noexcept {
    WriteAwaiter a;
    a.attempt = &WriteAwaiter::try_write;
    a.reactor = reactor_;
    a.fd = fd_.get();
    a.step = &step;
    return a;
}

}  // namespace sb
