#include "loadgen/run.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "loadgen/datagram_worker.hpp"
#include "loadgen/engine.hpp"
#include "loadgen/result_json.hpp"
#include "loadgen/summary.hpp"
#include "loadgen/window_control.hpp"

namespace loadgen {
namespace {

using nlohmann::json;

constexpr std::uint64_t kSecondNs = 1'000'000'000;
constexpr int kNoGoExit = 3;  // --start-on-stdin: the controller never said go
// How often main looks at the workers during the window (it wakes at the window's end exactly).
constexpr std::uint64_t kWatchStepNs = 20'000'000;

struct CpuTime {
    double user_s = 0, sys_s = 0;
};

// What is read at the window's edges.
struct WindowEdges {
    CpuTime own_start, own_end;
    std::optional<ProcessTreeSnapshot> server_start, server_end;
    std::uint64_t opened_ns = 0, closed_ns = 0, drained_ns = 0;
    std::optional<WindowRecord::CounterControl> control;
    std::optional<UdpDrops> udp_start, udp_end;
};

// --window-fifo: the counter's signals at the window's edges, and when they were given. The line
// goes out first and its ack is awaited after loadgen's own samples of that edge, so the counter's
// window and loadgen's differ by the pipe's latency, not by the sampling.
class CounterSignals {
public:
    enum class Edge { open, close };

    explicit CounterSignals(const Options& o) {
        if (o.window_fifo.empty()) return;
        control_.emplace(o.window_fifo, o.window_ack_fifo);
        record_.fifo = o.window_fifo;
        record_.ack_fifo = o.window_ack_fifo;
    }
    void send(Edge edge) {
        if (!usable()) return;
        control_->send(command(edge));
        sent_ns(edge) = monotonic_ns();
    }
    void await_ack(Edge edge) {
        if (!usable() || !control_->has_ack()) return;
        if (control_->await_ack(command(edge)))
            ack_us(edge) = static_cast<double>(monotonic_ns() - sent_ns(edge)) / 1e3;
    }
    std::optional<WindowRecord::CounterControl> record() const {
        if (!control_) return std::nullopt;
        WindowRecord::CounterControl r = record_;
        r.error = control_->error();
        return r;
    }

private:
    bool usable() const { return control_ && control_->error().empty(); }  // after a failure: silent
    static const char* command(Edge edge) { return edge == Edge::open ? "enable" : "disable"; }
    std::uint64_t& sent_ns(Edge edge) { return edge == Edge::open ? record_.enable_ns : record_.disable_ns; }
    std::optional<double>& ack_us(Edge edge) {
        return edge == Edge::open ? record_.enable_ack_us : record_.disable_ack_us;
    }

    std::optional<WindowControl> control_;
    WindowRecord::CounterControl record_;
};

std::uint64_t to_ns(double seconds) {
    return static_cast<std::uint64_t>(seconds * 1e9);
}

std::string utc_now_iso() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

CpuTime own_cpu() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    auto s = [](const timeval& tv) {
        return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
    };
    return {s(u.ru_utime), s(u.ru_stime)};
}

std::string affinity_list() {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return "";
    std::string out;
    for (int i = 0; i < CPU_SETSIZE; ++i) {
        if (!CPU_ISSET(i, &set)) continue;
        if (!out.empty()) out += ',';
        out += std::to_string(i);
    }
    return out;
}

Target unix_target(const Options& o) {
    Target t;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    assert(o.unix_path.size() < sizeof addr.sun_path);  // options.cpp refuses longer paths
    std::copy(o.unix_path.begin(), o.unix_path.end(), addr.sun_path);
    std::memcpy(&t.address, &addr, sizeof addr);
    t.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + o.unix_path.size() + 1);
    return t;
}

Target resolve_target(const Options& o) {
    if (!o.unix_path.empty()) return unix_target(o);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(o.port);
    if (inet_pton(AF_INET, o.host.c_str(), &addr.sin_addr) != 1) {
        addrinfo hints{};
        hints.ai_family = AF_INET;
        addrinfo* res = nullptr;
        if (getaddrinfo(o.host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr)
            throw UsageError("invalid value for --host: '" + o.host + "'");
        addr.sin_addr = reinterpret_cast<const sockaddr_in*>(res->ai_addr)->sin_addr;
        freeaddrinfo(res);
    }
    Target t;
    std::memcpy(&t.address, &addr, sizeof addr);
    t.length = sizeof addr;
    t.tcp_nodelay = o.tcp_nodelay;
    return t;
}

void pin_process(const Options& o) {
    if (o.cpus.empty()) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : o.cpus) CPU_SET(c, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        throw UsageError("invalid value for --cpus: '" + o.cpus_text + "'");
}

// Echo: a patterned payload, so that a shifted or mixed-up echo does not match. A datagram's bytes
// depend on its flow and sequence number: the worker writes each (here: its size).
std::string build_request(const Options& o) {
    if (o.transport == Transport::udp) return std::string(o.message_bytes, '\0');
    if (o.protocol == Protocol::echo) {
        static const char pattern[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        std::string payload(o.message_bytes, ' ');
        for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = pattern[(i + i / 62) % 62];
        payload.back() = '\n';
        return payload;
    }
    const std::string host = o.unix_path.empty() ? o.host + ":" + std::to_string(o.port) : "localhost";
    std::string r = "GET " + o.path + " HTTP/1.1\r\nHost: " + host + "\r\n";
    for (const auto& h : o.headers) r += h + "\r\n";
    if (o.mode == ConnectionMode::close) r += "Connection: close\r\n";
    return r + "\r\n";
}

Timeline plan_timeline(const Options& o, std::uint64_t now) {
    Timeline t;
    t.start_ns = now;
    t.measure_start_ns = now + to_ns(o.warmup_s);
    t.measure_end_ns = o.requests ? 0 : t.measure_start_ns + to_ns(o.duration_s);
    return t;
}

// Thread i's share of `total`: the remainder goes to the first threads.
template <class T>
T share_of(T total, int threads, int i) {
    const auto n = static_cast<T>(threads);
    return total / n + (static_cast<T>(i) < total % n ? 1 : 0);
}

WorkerPlan plan_for_thread(const Options& o, int i, const Timeline& t, const Target& target,
                           const std::string& request) {
    WorkerPlan p;
    p.target = target;
    p.protocol = o.protocol;
    p.transport = o.transport;
    p.datagram_format = o.sockperf_format ? DatagramFormat::sockperf : DatagramFormat::native;
    p.mode = o.mode;
    p.request = request;
    p.connections = share_of(o.connections, o.threads, i);
    p.pipeline = o.pipeline;
    p.rate = o.rate > 0 ? o.rate / o.threads : 0;
    p.rate_phase = static_cast<double>(i) / o.threads;
    p.timeout_ns = to_ns(o.timeout_s);
    p.start_ns = t.start_ns;
    p.measure_start_ns = t.measure_start_ns;
    p.measure_end_ns = t.measure_end_ns;
    p.request_quota = o.requests ? share_of(o.requests, o.threads, i) : 0;
    p.interval_ns = to_ns(o.interval_s);
    p.cpu = o.cpus.empty() ? -1 : o.cpus[static_cast<std::size_t>(i) % o.cpus.size()];
    return p;
}

// The worker threads; joined by the destructor if the run is cut short.
class WorkerThreads {
public:
    WorkerThreads(const Options& o, const Timeline& t, const Target& target, StartGate* gate,
                  IntervalSink* series) {
        const std::string request = build_request(o);
        for (int i = 0; i < o.threads; ++i) {
            live_.push_back(std::make_unique<LiveCounters>());
            WorkerPlan plan = plan_for_thread(o, i, t, target, request);
            plan.gate = gate;
            plan.series = series;
            plan.worker_index = i;
            if (o.transport == Transport::udp)
                workers_.push_back(std::make_unique<DatagramWorker>(std::move(plan), *live_.back()));
            else
                workers_.push_back(std::make_unique<Worker>(std::move(plan), *live_.back()));
        }
        for (auto& w : workers_) threads_.emplace_back([&w] { w->run(); });
    }
    WorkerThreads(const WorkerThreads&) = delete;
    WorkerThreads& operator=(const WorkerThreads&) = delete;
    ~WorkerThreads() { join(); }

    bool all_done() const {
        return std::all_of(live_.begin(), live_.end(), [](const auto& l) { return l->done.load(); });
    }
    std::pair<std::uint64_t, std::uint64_t> requests_and_errors() const {
        std::pair<std::uint64_t, std::uint64_t> sum{0, 0};
        for (const auto& l : live_) {
            sum.first += l->requests.load(std::memory_order_relaxed);
            sum.second += l->errors.load(std::memory_order_relaxed);
        }
        return sum;
    }
    void join() {
        for (auto& t : threads_)
            if (t.joinable()) t.join();
    }
    RunStats merged_stats() const {
        RunStats total;
        for (const auto& w : workers_) total.merge(w->stats());
        return total;
    }

private:
    std::vector<std::unique_ptr<LiveCounters>> live_;
    std::vector<std::unique_ptr<LoadWorker>> workers_;  // they hold the sockets open until destroyed
    std::vector<std::thread> threads_;
};

void sleep_until_ns(std::uint64_t t) {
    const std::uint64_t now = monotonic_ns();
    if (t > now) std::this_thread::sleep_for(std::chrono::nanoseconds(t - now));
}

// The kernel's UDP drop counters, where there are some: UDP, not Unix datagram sockets.
std::optional<UdpDrops> sample_udp_drops(const Options& o) {
    if (o.transport != Transport::udp || !o.unix_path.empty()) return std::nullopt;
    return read_udp_drops(o.port, o.server_pid);
}

std::optional<ProcessTreeSnapshot> sample_server(const Options& o) {
    if (o.server_pid == 0) return std::nullopt;
    return snapshot_process_tree(o.server_pid);
}

// Returns when the window is over (its end time, or every worker done with its quota); prints a
// live line once a second when stderr is a terminal.
void wait_for_window_end(const Options& o, const Timeline& t, const WorkerThreads& workers,
                         std::uint64_t opened_ns) {
    const bool live_line = !o.quiet && isatty(STDERR_FILENO);
    std::uint64_t last_requests = 0, next_tick = opened_ns + kSecondNs;
    while (!workers.all_done() && (t.measure_end_ns == 0 || monotonic_ns() < t.measure_end_ns)) {
        const std::uint64_t step = monotonic_ns() + kWatchStepNs;
        sleep_until_ns(t.measure_end_ns ? std::min(step, t.measure_end_ns) : step);
        if (!live_line || monotonic_ns() < next_tick) continue;
        const auto [requests, errors] = workers.requests_and_errors();
        std::fprintf(stderr, "\r  %llus: %llu req/s, %llu errors   ",
                     static_cast<unsigned long long>((next_tick - opened_ns) / kSecondNs),
                     static_cast<unsigned long long>(requests - last_requests),
                     static_cast<unsigned long long>(errors));
        last_requests = requests;
        next_tick += kSecondNs;
    }
    if (live_line) std::fputs("\n", stderr);
}

WindowEdges measure_window(const Options& o, const Timeline& t, WorkerThreads& workers,
                           CounterSignals& counter) {
    WindowEdges e;
    sleep_until_ns(t.measure_start_ns);
    e.opened_ns = monotonic_ns();
    counter.send(CounterSignals::Edge::open);
    e.own_start = own_cpu();
    e.server_start = sample_server(o);
    e.udp_start = sample_udp_drops(o);
    counter.await_ack(CounterSignals::Edge::open);
    wait_for_window_end(o, t, workers, e.opened_ns);
    e.closed_ns = t.measure_end_ns ? std::max(t.measure_end_ns, e.opened_ns) : monotonic_ns();
    counter.send(CounterSignals::Edge::close);  // before the drain: its requests are not the window's
    e.own_end = own_cpu();
    counter.await_ack(CounterSignals::Edge::close);
    e.control = counter.record();
    workers.join();
    // After the drain, before any connection closes (the workers still hold them).
    e.server_end = sample_server(o);
    e.udp_end = sample_udp_drops(o);
    e.drained_ns = monotonic_ns();
    return e;
}

std::optional<ProcessTreeSnapshot> server_delta(const WindowEdges& e) {
    if (!e.server_start || !e.server_end) return std::nullopt;
    ProcessTreeSnapshot d = *e.server_end;
    d.cpu_user_s -= e.server_start->cpu_user_s;
    d.cpu_sys_s -= e.server_start->cpu_sys_s;
    d.ctx_voluntary -= std::min(d.ctx_voluntary, e.server_start->ctx_voluntary);
    d.ctx_involuntary -= std::min(d.ctx_involuntary, e.server_start->ctx_involuntary);
    return d;
}

// The window in which the workers recorded responses; a request quota's ends when the drain is
// over (which is also when "disable" is sent).
WindowRecord window_record(const Timeline& t, const WindowEdges& e) {
    WindowRecord w;
    w.start_ns = t.measure_start_ns;
    w.end_ns = t.measure_end_ns ? t.measure_end_ns : e.drained_ns;
    w.start_unix_s = unix_time_of(w.start_ns);
    w.end_unix_s = unix_time_of(w.end_ns);
    w.control = e.control;
    return w;
}

// With a duration, the window is that duration; with a request quota, it ends when the last
// response (or timeout) of the drain is in.
RunContext context_of(const Options& o, const Timeline& t, const WindowEdges& e,
                      ProcessTreeSampler* sampler) {
    RunContext ctx;
    ctx.options = &o;
    const std::uint64_t window_end = t.measure_end_ns ? e.closed_ns : e.drained_ns;
    ctx.measured_s = t.measure_end_ns
                         ? o.duration_s
                         : static_cast<double>(window_end - std::min(window_end, t.measure_start_ns)) / 1e9;
    ctx.loadgen_user_s = e.own_end.user_s - e.own_start.user_s;
    ctx.loadgen_sys_s = e.own_end.sys_s - e.own_start.sys_s;
    ctx.loadgen_cpus = o.cpus.empty() ? affinity_list() : o.cpus_text;
    ctx.server_delta = server_delta(e);
    ctx.window = window_record(t, e);
    if (e.udp_start && e.udp_end) ctx.udp_drops = *e.udp_end - *e.udp_start;
    if (o.transport == Transport::udp) ctx.udp_buffers = default_udp_buffers();
    if (sampler != nullptr) {
        sampler->sample_now();
        ctx.server_peaks = sampler->peaks();
        ctx.server_cpus = cpus_allowed_list(o.server_pid);
    }
    return ctx;
}

// What --series-file wrote, once every worker is done.
std::optional<SeriesRecord> series_record(const IntervalSink* series) {
    if (series == nullptr) return std::nullopt;
    return SeriesRecord{series->path(), series->lines_written(), series->late_parts(), series->error()};
}

int report(const Options& o, const json& result, const RunStats& total) {
    if (!o.quiet) {
        const std::string where =
            o.unix_path.empty() ? o.host + ":" + std::to_string(o.port) : "unix:" + o.unix_path;
        if (o.transport == Transport::udp)
            std::fprintf(stderr, "udp datagrams of %zu B @ %s, %d threads, %d flows\n", o.message_bytes,
                         where.c_str(), o.threads, o.connections);
        else
            std::fprintf(stderr, "%s %s @ %s, %d threads, %d connections\n", to_string(o.protocol),
                         to_string(o.mode), where.c_str(), o.threads, o.connections);
        print_summary(result);
    }
    if (!write_result(result, o.out)) return 1;
    const int code = exit_code_of(result);
    if (code != 0) {
        std::fprintf(stderr, "loadgen: run had errors: %llu errors, %llu/%d connections established%s\n",
                     static_cast<unsigned long long>(total.total_errors()),
                     static_cast<unsigned long long>(total.established), o.connections,
                     result.value("valid", true) ? "" : ", open loop invalid (achieved < 99% of the rate)");
        const json& control = result["window"]["counter_control"];
        if (control.is_object() && !control["ok"].get<bool>())
            std::fprintf(stderr, "loadgen: --window-fifo: %s\n", control["error"].get<std::string>().c_str());
        const json series_error = result.value("timeseries_file_error", json(nullptr));
        if (series_error.is_string())
            std::fprintf(stderr, "loadgen: --series-file: %s\n", series_error.get<std::string>().c_str());
    }
    return code;
}

// Before go, nothing is measured: the window opens at the end of time.
Timeline held_timeline(std::uint64_t now) {
    return {now, UINT64_MAX, 0};
}

// "connected N" on stdout once every worker's connections are up, then a line "go" on stdin.
// Returns why the run cannot start, or nullopt on go.
std::optional<std::string> wait_for_go(StartGate& gate) {
    const std::size_t open = gate.wait_for_workers();
    std::printf("connected %zu\n", open);
    std::fflush(stdout);
    std::string line;
    if (!std::getline(std::cin, line)) return "stdin closed before 'go'";
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (line != "go") return "expected 'go' on stdin, got '" + line + "'";
    return std::nullopt;
}

}  // namespace

int run_load(const Options& o) {
    const Target target = resolve_target(o);
    pin_process(o);
    std::signal(SIGPIPE, SIG_IGN);
    CounterSignals counter(o);  // opens the FIFOs: a bad one is a usage error before any load
    std::unique_ptr<IntervalSink> series;  // opens the file: likewise
    if (!o.series_file.empty()) series = std::make_unique<IntervalSink>(o.series_file, o.threads, to_ns(o.interval_s));
    std::unique_ptr<ProcessTreeSampler> sampler;
    if (o.server_pid) sampler = std::make_unique<ProcessTreeSampler>(o.server_pid);
    std::optional<StartGate> gate;
    if (o.start_on_stdin) gate.emplace(o.threads);
    Timeline timeline = gate ? held_timeline(monotonic_ns()) : plan_timeline(o, monotonic_ns());
    if (series) series->set_window(timeline.measure_start_ns, timeline.measure_end_ns);
    WorkerThreads workers(o, timeline, target, gate ? &*gate : nullptr, series.get());
    if (gate) {
        if (const auto reason = wait_for_go(*gate)) {
            gate->cancel();
            std::fprintf(stderr, "loadgen: %s: no result written\n", reason->c_str());
            return kNoGoExit;
        }
        timeline = plan_timeline(o, monotonic_ns());
        if (series) series->set_window(timeline.measure_start_ns, timeline.measure_end_ns);
        gate->open(timeline);
    }
    const std::string started_at = utc_now_iso();
    const WindowEdges edges = measure_window(o, timeline, workers, counter);
    RunContext ctx = context_of(o, timeline, edges, sampler.get());
    ctx.started_at = started_at;
    ctx.series = series_record(series.get());
    const RunStats total = workers.merged_stats();
    return report(o, make_result(ctx, total), total);
}

}  // namespace loadgen
