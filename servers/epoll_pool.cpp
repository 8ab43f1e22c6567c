// epoll + worker pool (half-sync/half-async, as in many Java NIO servers): one epoll loop does all
// the socket work, reading and parsing requests and writing responses; the handler, which may be
// slow (--cpu-us, --io-us: a database call), runs in a pool of --workers threads. Each complete
// batch of requests on a connection goes to the pool, and the finished batch comes back to the
// loop through a queue and an eventfd wake-up. A handler that blocks holds a worker, not the loop,
// so the other connections keep being read and written; the price is two thread hand-offs per
// batch, which a fast handler pays for nothing.
//
// Order and fairness: while a connection's batch is in the pool, the loop does not watch it (not
// even for reading), so its responses leave in order and it has at most one job queued; the queue
// is FIFO, so every keep-alive client gets its turn however busy the others are. Connections are
// watched EPOLLONESHOT for that: each event disarms its connection, which is re-armed when the
// loop wants to hear of it again, so the trip through the pool costs one epoll_ctl, not two.
//
// Over UDP the loop receives datagrams and hands each one, copied with its sender's address, to the
// pool; a worker does the work and sends the answer itself, with sendto on the one socket (a
// datagram socket takes sends from any thread, and needs no ordering between them).

#include <sys/eventfd.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <mutex>
#include <vector>

#include "core/datagram.hpp"
#include "core/worker_pool.hpp"
#include "epoll_family.hpp"

namespace {

const sb::ModelInfo kModel{
    .name = "epoll-pool",
    .summary = "One epoll loop reads and writes; --workers threads run the request handlers.",
    .default_workers = sb::available_cpus(),
    .default_max_conns = 100000,
    .batches_datagrams = true,
};

// Datagrams waiting for a worker: at most --max-conns, and at most this many, since each may hold
// up to 64 KiB. Past it a datagram is dropped and counted (at the cap).
constexpr int kMaxQueuedDatagrams = 1024;

// A batch for the pool: the connection's responses are already built (by the protocol state
// machine, in the connection's output buffer, which the loop leaves alone meanwhile); what the
// worker runs is the handler's cost for that many requests.
struct Batch {
    int fd = -1;
    std::size_t requests = 0;
};

// Connections whose batch is done, handed back from the workers to the loop, which alone touches
// connections. The eventfd is written only when the queue turns non-empty: one wake-up per turn of
// the loop, however many batches finish meanwhile.
class Completions {
public:
    Completions() : wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
        if (!wake_) sb::die(kModel, "eventfd");
    }
    int fd() const noexcept { return wake_.get(); }

    void push(int conn_fd) {
        bool was_empty;
        {
            std::lock_guard lock(mutex_);
            was_empty = done_.empty();
            done_.push_back(conn_fd);
        }
        const std::uint64_t one = 1;
        if (was_empty) (void)!::write(wake_.get(), &one, sizeof one);
    }

    // Reset the wake-up before taking the queue: a batch pushed after the swap wakes the loop again.
    const std::vector<int>& take() {
        std::uint64_t count;
        (void)!::read(wake_.get(), &count, sizeof count);
        taken_.clear();
        std::lock_guard lock(mutex_);
        taken_.swap(done_);
        return taken_;
    }

private:
    sb::UniqueFd wake_;
    std::mutex mutex_;
    std::vector<int> done_, taken_;
};

// A new epoll instance watching `fds` (the server's own) for input, for as long as they live.
sb::UniqueFd epoll_watching(std::initializer_list<int> fds) {
    sb::UniqueFd epoll{::epoll_create1(EPOLL_CLOEXEC)};
    if (!epoll) sb::die(kModel, "epoll_create1");
    for (int fd : fds) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = fd;
        if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &ev) != 0) sb::die(kModel, "epoll_ctl");
    }
    return epoll;
}

// Watches a connection (op EPOLL_CTL_ADD) or re-arms it (EPOLL_CTL_MOD) for `interest`, disarmed
// again by its next event. One the kernel has no room for is closed and counted (check_epoll_ctl).
void watch_once(int epoll_fd, int op, sb::Connection& c, sb::Interest interest,
                sb::ConnectionTable& connections) {
    epoll_event ev{};
    ev.events = sb::epoll_events(interest) | EPOLLONESHOT;
    ev.data.fd = c.fd();
    if (!sb::check_epoll_ctl(::epoll_ctl(epoll_fd, op, c.fd(), &ev), kModel))
        connections.close_for_lack_of_resources(c);
}

// Copies each datagram of the batch out of the loop's buffers into a job for the pool.
void hand_to_pool(const sb::DatagramBatch& batch, sb::WorkerPool<sb::Datagram>& pool,
                  sb::ServerStats& stats) {
    for (std::size_t i = 0; i < batch.size(); ++i) {
        const std::span<const char> bytes = batch.payload(i);
        sb::Datagram d{{bytes.begin(), bytes.end()}, batch.peer(i)};
        if (!pool.try_submit(d)) stats.datagrams_at_cap.fetch_add(1, std::memory_order_relaxed);
    }
}

// The loop: receives what the socket holds, a wake-up's share at a time, and hands it to the pool.
void hand_datagrams_to_pool(sb::Server& server, sb::WorkerPool<sb::Datagram>& pool) {
    const int socket_fd = server.listener.fd();
    const int signal_fd = server.signals.fd();
    const sb::UniqueFd epoll = epoll_watching({socket_fd, signal_fd});
    sb::DatagramBatch batch(server.options.udp_batch);
    server.announce_ready();

    std::array<epoll_event, 2> events;
    for (;;) {
        const int ready = ::epoll_wait(epoll.get(), events.data(), events.size(), -1);
        for (int i = 0; i < ready; ++i) {
            const int fd = events[static_cast<std::size_t>(i)].data.fd;
            if (fd == signal_fd && server.signals.stop_requested()) return;
            if (fd != socket_fd) continue;
            for (std::size_t taken = 0; taken < sb::kDatagramsPerWakeup;) {
                const std::size_t received = batch.receive(socket_fd, server.stats);
                if (received == 0) break;
                hand_to_pool(batch, pool, server.stats);
                taken += received;
            }
        }
    }
}

int serve_udp(sb::Server& server) {
    {
        const auto queued = static_cast<std::size_t>(std::min(server.options.max_conns, kMaxQueuedDatagrams));
        sb::WorkerPool<sb::Datagram> pool(
            static_cast<std::size_t>(server.options.workers), queued, [&server](sb::Datagram& d) {
                sb::simulate_request_work(server.options, 1);
                sb::answer_datagram(server.listener.fd(), d.payload, d.peer, server.stats);
            });
        if (pool.started() == 0) sb::die(kModel, "starting worker threads");
        hand_datagrams_to_pool(server, pool);
    }  // the pool joins its workers, so their counts are in the stop line
    return server.finish();
}

}  // namespace

int main(int argc, char** argv) {
    sb::Server server(argc, argv, kModel, sb::Blocking::no);
    if (server.options.transport == sb::Transport::udp) return serve_udp(server);
    sb::ConnectionLimit limit(server.options.max_conns, server.stats.rejected_at_limit);
    sb::ConnectionTable connections(server, limit, sb::RequestWork::handed_off);
    Completions completions;  // declared before the pool: workers push into it until they are joined
    // A connection has at most one batch in the pool, so a queue of --max-conns never refuses one.
    sb::WorkerPool<Batch> pool(static_cast<std::size_t>(server.options.workers),
                               static_cast<std::size_t>(server.options.max_conns), [&](Batch& batch) {
                                   sb::simulate_request_work(server.options, batch.requests);
                                   completions.push(batch.fd);
                               });
    if (pool.started() == 0) sb::die(kModel, "starting worker threads");

    const int listen_fd = server.listener.fd();
    const int signal_fd = server.signals.fd();
    const sb::UniqueFd epoll = epoll_watching({listen_fd, signal_fd, completions.fd()});
    server.announce_ready();

    // What a connection returned by the table waits for next: Interest::work goes to the pool (and
    // stays disarmed while there), any other interest is re-armed.
    auto follow = [&](sb::Connection& c, sb::Interest next) {
        if (next == sb::Interest::work) {
            Batch batch{c.fd(), c.pending_requests()};
            if (!pool.try_submit(batch)) {
                assert(false && "the queue holds --max-conns batches, and a connection has at most one");
                connections.close(c);
            }
        } else if (next != sb::Interest::close) {
            watch_once(epoll.get(), EPOLL_CTL_MOD, c, next, connections);
        }
    };

    std::array<epoll_event, 512> events;
    for (;;) {
        const int ready = ::epoll_wait(epoll.get(), events.data(), events.size(), connections.close_idle());
        for (int i = 0; i < ready; ++i) {
            const int fd = events[static_cast<std::size_t>(i)].data.fd;
            if (fd == listen_fd) {
                connections.accept_all(server.listener, [&](sb::Connection& c) {
                    watch_once(epoll.get(), EPOLL_CTL_ADD, c, sb::Interest::read, connections);
                });
            } else if (fd == signal_fd) {
                if (server.signals.stop_requested()) return server.finish();  // the pool joins its workers
            } else if (fd == completions.fd()) {
                for (int done_fd : completions.take()) {
                    sb::Connection* c = connections.find(done_fd);
                    assert(c != nullptr && "a connection is not closed while its batch is in the pool");
                    if (c == nullptr) continue;
                    follow(*c, connections.finish_work(*c));  // requests queued behind the batch may go back
                }
            } else if (sb::Connection* c = connections.find(fd)) {
                follow(*c, connections.run(*c));
            }
        }
    }
}
