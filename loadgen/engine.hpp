#pragma once
// The load-generating event loop: one Worker per thread, each with its own epoll instance, its
// own connections and its own RunStats. The hot path (send, receive, parse, record) is all here.

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"
#include "loadgen/datagram_ledger.hpp"
#include "loadgen/http_response_parser.hpp"
#include "loadgen/interval_sink.hpp"
#include "loadgen/options.hpp"
#include "loadgen/rate_scheduler.hpp"
#include "loadgen/run_stats.hpp"

namespace loadgen {

using sb::UniqueFd;  // the descriptor owner shared with the servers (common/)

// CLOCK_MONOTONIC in nanoseconds.
std::uint64_t monotonic_ns() noexcept;
// CLOCK_REALTIME, in seconds, of a CLOCK_MONOTONIC instant near now (past or future).
double unix_time_of(std::uint64_t monotonic) noexcept;

// Where to connect: an IPv4 address or a Unix domain socket path.
struct Target {
    sockaddr_storage address{};
    socklen_t length = 0;
    bool tcp_nodelay = true;  // applied to TCP sockets only
    bool is_inet() const noexcept { return address.ss_family == AF_INET; }
};

// When the connections open, the warm-up ends (the measured window opens) and the window ends.
struct Timeline {
    std::uint64_t start_ns = 0;
    std::uint64_t measure_start_ns = 0;
    std::uint64_t measure_end_ns = 0;  // 0: no time limit (request quota)
};

// --start-on-stdin: holds every worker between its connect phase and the start of the load until
// the controller says go (or the run is cancelled). Workers and main meet here, nowhere else.
class StartGate {
public:
    explicit StartGate(int workers) : expected_(workers) {}
    // Worker: `open_connections` of its connections are up; blocks until open() or cancel().
    // Returns the timeline to run, or nullopt when the run is cancelled.
    std::optional<Timeline> arrive_and_wait(std::size_t open_connections);
    // Main: blocks until every worker arrived; the open connections of all of them.
    std::size_t wait_for_workers();
    void open(const Timeline& timeline);
    void cancel();

private:
    void decide(std::optional<Timeline> timeline);

    std::mutex mutex_;
    std::condition_variable changed_;
    const int expected_;
    int arrived_ = 0;
    std::size_t open_connections_ = 0;
    bool decided_ = false;
    std::optional<Timeline> timeline_;
};

struct WorkerPlan {
    Target target;
    Protocol protocol = Protocol::http;
    Transport transport = Transport::tcp;
    DatagramFormat datagram_format = DatagramFormat::native;
    ConnectionMode mode = ConnectionMode::keepalive;
    std::string request;  // the bytes of one request (precomputed once; over UDP, its size only)
    int connections = 1;
    int pipeline = 1;
    double rate = 0;        // this thread's arrivals/s; 0 = closed loop
    double rate_phase = 0;  // 0..1, spreads the threads' schedules
    std::uint64_t timeout_ns = 5'000'000'000;
    std::uint64_t start_ns = 0;                 // connections open now
    std::uint64_t measure_start_ns = 0;         // warmup ends
    std::uint64_t measure_end_ns = 0;           // 0: no time limit (request quota)
    std::uint64_t request_quota = 0;            // responses to record; 0: no quota
    std::uint64_t interval_ns = 1'000'000'000;  // length of a timeseries entry
    IntervalSink* series = nullptr;             // --series-file: the entries go there, not to stats
    int worker_index = 0;                       // this thread's number, for the sink
    StartGate* gate = nullptr;                  // --start-on-stdin; the timeline then comes from it
    int cpu = -1;                               // pin this thread to it; -1: not pinned
};

// Counters the main thread reads once a second for the live line (relaxed, written by the owner).
struct LiveCounters {
    std::atomic<std::uint64_t> requests{0};
    std::atomic<std::uint64_t> errors{0};
    std::atomic<bool> done{false};
};

// What a load-generating thread is, whatever the transport: its plan, its timeline, its counters
// and the measured window's timeseries. Worker drives TCP and Unix streams; DatagramWorker drives
// UDP and Unix datagram flows (datagram_worker.hpp).
class LoadWorker {
public:
    LoadWorker(WorkerPlan plan, LiveCounters& live);
    virtual ~LoadWorker() = default;
    LoadWorker(const LoadWorker&) = delete;
    LoadWorker& operator=(const LoadWorker&) = delete;

    virtual void run() = 0;  // the thread body: returns when the run is over
    const RunStats& stats() const { return stats_; }

protected:
    void prepare_thread() const;
    void set_timeline(const Timeline& timeline);
    bool recording(std::uint64_t now) const noexcept { return now >= plan_.measure_start_ns; }
    void count_error(ErrorKind kind, int err, std::uint64_t count, std::uint64_t now);
    IntervalStats& interval_of(std::uint64_t now) { return intervals_.at(now); }
    void publish_live();
    void end_run(std::uint64_t now);  // every way out of run() ends here

    WorkerPlan plan_;
    LiveCounters& live_;
    RunStats stats_;
    IntervalRecorder intervals_;  // the loops call retire_due() on every wake-up
};

class Worker final : public LoadWorker {
public:
    Worker(WorkerPlan plan, LiveCounters& live);

    void run() override;

private:
    enum class State { closed, connecting, open, backoff };
    struct Connection {
        UniqueFd fd;
        State state = State::closed;
        bool ever_established = false;
        bool available = false;  // open loop: on the free list
        std::uint64_t connect_start_ns = 0;
        std::uint64_t retry_at_ns = 0;
        std::uint64_t backoff_ns = 0;
        // Requests in flight, oldest first: a ring of `pipeline` slots.
        std::vector<std::uint64_t> due_ns;   // intended send time (open loop) or send time
        std::vector<std::uint64_t> sent_ns;  // actual send time
        std::uint32_t head = 0, inflight = 0;
        std::uint32_t generation = 0;      // told apart from a stale event of a closed socket
        bool has_pending_arrival = false;  // close mode, open loop: an arrival waits for connect
        bool refill_queued = false;        // closed loop: on refills_, sent after this wakeup's reads
        std::uint64_t pending_due_ns = 0;
        std::size_t unsent_bytes = 0;   // tail of the request stream not yet written
        std::uint64_t echo_offset = 0;  // echo: bytes of the current response checked
        HttpResponseParser parser;
    };

    // --- the loop
    bool start_connections();
    bool hold_until_go(bool started);
    void wait_for_connects();
    void begin_load(std::uint64_t now);
    std::size_t count_open() const noexcept;
    bool window_over(std::uint64_t now) const noexcept;
    std::uint64_t next_wake(std::uint64_t now) const noexcept;
    void poll_events(std::uint64_t wake, std::uint64_t now);

    // --- the hot path
    void on_event(Connection& c, std::uint32_t events, std::uint64_t now);
    void on_readable(Connection& c, bool peer_closed);
    void on_eof(Connection& c, std::uint64_t now);
    void send_requests(Connection& c, std::uint32_t count, std::uint64_t now, const std::uint64_t* due);
    bool flush(Connection& c, std::uint64_t now);
    bool consume_http(Connection& c, const char* data, std::size_t size, std::uint64_t now);
    bool consume_echo(Connection& c, const char* data, std::size_t size, std::uint64_t now);
    void on_response(Connection& c, std::uint64_t now);
    void refill(Connection& c, std::uint64_t now);
    void send_refills();

    // --- connections
    void open_connection(Connection& c, std::uint64_t now);
    void on_connected(Connection& c, std::uint64_t now);
    void fail(Connection& c, ErrorKind kind, int err, std::uint64_t now);
    void replace(Connection& c, std::uint64_t now);
    void reconnect(Connection& c, std::uint64_t now);
    void close_connection(Connection& c);
    void check_timeouts(std::uint64_t now);

    // --- open loop
    void dispatch_arrivals(std::uint64_t now);
    void make_available(Connection& c);

    bool sending_allowed(std::uint64_t now) const noexcept;
    std::uint32_t send_budget(std::uint32_t wanted, std::uint64_t now) const noexcept;
    void begin_stop(std::uint64_t now);
    void finish(std::uint64_t now);
    std::uint32_t index_of(const Connection& c) const noexcept {
        return static_cast<std::uint32_t>(&c - connections_.data());
    }
    std::uint64_t outstanding() const noexcept;

    UniqueFd epoll_;
    std::vector<Connection> connections_;
    std::vector<std::uint32_t> free_list_;  // open loop: connections that can take an arrival
    std::vector<std::uint32_t> refills_;    // closed loop: connections to send on after the reads
    std::string stream_;                    // the request repeated pipeline+1 times: any batch is one write
    std::vector<char> read_buffer_;
    RateScheduler schedule_;
    bool holding_ = false;   // --start-on-stdin, before go: connect, send nothing
    bool stopping_ = false;  // the window is over: no new requests, waiting for answers
    std::uint64_t inflight_total_ = 0;
    std::uint64_t sent_for_quota_ = 0;
    std::uint64_t next_timeout_check_ns_ = 0;
    std::uint64_t timeout_check_interval_ns_ = 0;
    std::uint64_t drain_deadline_ns_ = 0;
    std::uint64_t last_progress_ns_ = 0;
    std::vector<std::uint64_t> due_scratch_;
};

}  // namespace loadgen
