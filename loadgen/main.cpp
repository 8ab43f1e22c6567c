// loadgen: the command line, the run's timeline (warmup, window, drain), CPU and /proc sampling
// at the window's edges, then the result JSON and a wrk-style summary.

#include <arpa/inet.h>
#include <netdb.h>
#include <sched.h>
#include <csignal>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <memory>
#include <thread>

#include "loadgen/engine.hpp"
#include "loadgen/result_json.hpp"

using namespace loadgen;
using nlohmann::json;

namespace {

std::string utc_now_iso() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::pair<double, double> own_cpu_s() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    auto s = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6; };
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

std::string build_request(const Options& o) {
    if (o.protocol == Protocol::echo) {
        static const char pattern[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        std::string payload(o.message_bytes, ' ');
        for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = pattern[(i + i / 62) % 62];
        payload.back() = '\n';
        return payload;
    }
    std::string r = "GET " + o.path + " HTTP/1.1\r\nHost: " + o.host + ":" + std::to_string(o.port) + "\r\n";
    for (const auto& h : o.headers) r += h + "\r\n";
    if (o.mode == ConnectionMode::close) r += "Connection: close\r\n";
    return r + "\r\n";
}

void sleep_until_ns(std::uint64_t t) {
    const std::uint64_t now = monotonic_ns();
    if (t > now) std::this_thread::sleep_for(std::chrono::nanoseconds(t - now));
}

std::string fmt_us(double v) {
    char b[32];
    if (v >= 1e6) std::snprintf(b, sizeof b, "%.2fs", v / 1e6);
    else if (v >= 1e3) std::snprintf(b, sizeof b, "%.2fms", v / 1e3);
    else std::snprintf(b, sizeof b, "%.1fus", v);
    return b;
}

void print_summary(const json& r) {
    const auto& t = r["totals"];
    const auto& l = r["latency_us"];
    std::fprintf(stderr, "  Latency   p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s, stdev %s)\n",
                 fmt_us(l["p50"]).c_str(), fmt_us(l["p90"]).c_str(), fmt_us(l["p99"]).c_str(),
                 fmt_us(l["p99_9"]).c_str(), fmt_us(l["max"]).c_str(), fmt_us(l["mean"]).c_str(),
                 fmt_us(l["stdev"]).c_str());
    if (r.contains("latency_uncorrected_us"))
        std::fprintf(stderr, "  Uncorrected p50 %s  p99 %s\n", fmt_us(r["latency_uncorrected_us"]["p50"]).c_str(),
                     fmt_us(r["latency_uncorrected_us"]["p99"]).c_str());
    const double d = t["duration_s"].get<double>();
    std::fprintf(stderr, "  %llu requests in %.2fs, %.2fMB read\n", (unsigned long long)t["requests"].get<std::uint64_t>(), d,
                 static_cast<double>(t["bytes_received"].get<std::uint64_t>()) / 1048576.0);
    std::fprintf(stderr, "Requests/sec: %.2f\nTransfer/sec: %.2fMB\n", t["throughput_rps"].get<double>(),
                 d > 0 ? static_cast<double>(t["bytes_received"].get<std::uint64_t>()) / 1048576.0 / d : 0.0);
    std::string errs;
    for (const auto& [k, v] : t["errors"].items()) errs += " " + k + " " + std::to_string(v.get<std::uint64_t>());
    std::fprintf(stderr, "Errors:%s %s\n", errs.c_str(), r.value("errors_by_errno", json::object()).dump().c_str());
    std::fprintf(stderr, "Connections: %s\n", r["connections"].dump().c_str());
    std::fprintf(stderr, "CPU us/req: loadgen %s, server %s; bound: %s\n", r["loadgen"]["cpu_us_per_request"].dump().c_str(),
                 r["server"]["cpu_us_per_request"].dump().c_str(), r["saturation"]["bound"].get<std::string>().c_str());
}

int write_out(const json& r, const std::string& out) {
    if (out.empty()) {
        std::cout << r.dump(1) << "\n";
        return 0;
    }
    std::ofstream f(out);
    f << r.dump(1) << "\n";
    if (!f) {
        std::fprintf(stderr, "loadgen: cannot write %s\n", out.c_str());
        return 1;
    }
    return 0;
}

int run_merge(const std::vector<std::string>& args) {
    std::vector<json> docs;
    std::string out;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--out") {
            if (i + 1 >= args.size()) { std::fprintf(stderr, "loadgen: missing value for --out\n"); return 2; }
            out = args[++i];
            continue;
        }
        std::ifstream in(args[i]);
        if (!in) { std::fprintf(stderr, "loadgen: cannot read '%s'\n", args[i].c_str()); return 2; }
        try { docs.push_back(json::parse(in)); }
        catch (const std::exception& e) { std::fprintf(stderr, "loadgen: %s: %s\n", args[i].c_str(), e.what()); return 2; }
    }
    try {
        const json m = merge_results(docs);
        if (write_out(m, out) != 0) return 1;
        return exit_code_of(m);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "loadgen: merge: %s\n", e.what());
        return 2;
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (!args.empty() && args[0] == "merge") return run_merge({args.begin() + 1, args.end()});
    for (const auto& a : args)
        if (a == "--help" || a == "-h") { std::fputs(usage_text(), stdout); return 0; }
    Options o;
    try {
        o = parse_options(args);
    } catch (const UsageError& e) {
        std::fprintf(stderr, "loadgen: %s\n", e.what());
        return 2;
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(o.port);
    if (inet_pton(AF_INET, o.host.c_str(), &addr.sin_addr) != 1) {
        addrinfo hints{}, *res = nullptr;
        hints.ai_family = AF_INET;
        if (getaddrinfo(o.host.c_str(), nullptr, &hints, &res) != 0 || !res) {
            std::fprintf(stderr, "loadgen: invalid value for --host: '%s'\n", o.host.c_str());
            return 2;
        }
        addr.sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
        freeaddrinfo(res);
    }
    if (!o.cpus.empty()) {
        cpu_set_t set;
        CPU_ZERO(&set);
        for (int c : o.cpus) CPU_SET(c, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0) {
            std::fprintf(stderr, "loadgen: invalid value for --cpus: '%s'\n", o.cpus_text.c_str());
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);

    const std::string started_at = utc_now_iso();
    const std::uint64_t start = monotonic_ns();
    const std::uint64_t measure_start = start + static_cast<std::uint64_t>(o.warmup_s * 1e9);
    const std::uint64_t measure_end = o.requests ? 0 : measure_start + static_cast<std::uint64_t>(o.duration_s * 1e9);
    const std::string request = build_request(o);

    std::unique_ptr<ProcessTreeSampler> sampler;
    if (o.server_pid) sampler = std::make_unique<ProcessTreeSampler>(o.server_pid);

    std::vector<std::unique_ptr<LiveCounters>> live;
    std::vector<std::unique_ptr<Worker>> workers;
    for (int i = 0; i < o.threads; ++i) {
        WorkerPlan p;
        p.address = addr;
        p.protocol = o.protocol;
        p.mode = o.mode;
        p.request = request;
        p.connections = o.connections / o.threads + (i < o.connections % o.threads ? 1 : 0);
        p.pipeline = o.pipeline;
        p.rate = o.rate > 0 ? o.rate / o.threads : 0;
        p.rate_phase = static_cast<double>(i) / o.threads;
        p.timeout_ns = static_cast<std::uint64_t>(o.timeout_s * 1e9);
        p.start_ns = start;
        p.measure_start_ns = measure_start;
        p.measure_end_ns = measure_end;
        p.request_quota = o.requests ? o.requests / static_cast<std::uint64_t>(o.threads) +
                                           (static_cast<std::uint64_t>(i) < o.requests % static_cast<std::uint64_t>(o.threads) ? 1 : 0)
                                     : 0;
        p.cpu = o.cpus.empty() ? -1 : o.cpus[static_cast<std::size_t>(i) % o.cpus.size()];
        live.push_back(std::make_unique<LiveCounters>());
        workers.push_back(std::make_unique<Worker>(std::move(p), *live.back()));
    }
    std::vector<std::thread> threads;
    for (auto& w : workers) threads.emplace_back([&w] { w->run(); });

    auto all_done = [&] {
        for (auto& l : live) if (!l->done.load()) return false;
        return true;
    };
    sleep_until_ns(measure_start);
    auto cpu0 = own_cpu_s();
    std::optional<ProcessTreeSnapshot> server0 = o.server_pid ? snapshot_process_tree(o.server_pid) : std::nullopt;
    const std::uint64_t t0 = monotonic_ns();
    const bool live_line = !o.quiet && isatty(STDERR_FILENO);
    std::uint64_t last_requests = 0, next_tick = t0 + 1'000'000'000;
    while (!all_done() && (measure_end == 0 || monotonic_ns() < measure_end)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (live_line && monotonic_ns() >= next_tick) {
            std::uint64_t req = 0, err = 0;
            for (auto& l : live) { req += l->requests.load(std::memory_order_relaxed); err += l->errors.load(std::memory_order_relaxed); }
            std::fprintf(stderr, "\r  %llus: %llu req/s, %llu errors   ", (unsigned long long)((next_tick - t0) / 1'000'000'000),
                         (unsigned long long)(req - last_requests), (unsigned long long)err);
            last_requests = req;
            next_tick += 1'000'000'000;
        }
    }
    const std::uint64_t t1 = measure_end ? std::max(measure_end, t0) : monotonic_ns();
    auto cpu1 = own_cpu_s();
    for (auto& t : threads) t.join();
    // After the drain, before any connection closes (the workers still hold them).
    std::optional<ProcessTreeSnapshot> server1 = o.server_pid ? snapshot_process_tree(o.server_pid) : std::nullopt;
    if (live_line) std::fputs("\n", stderr);
    const std::uint64_t window_end = measure_end ? t1 : monotonic_ns();

    RunStats total;
    for (auto& w : workers) total.merge(w->stats());

    RunContext ctx;
    ctx.options = &o;
    ctx.started_at = started_at;
    ctx.measured_s = static_cast<double>(window_end - std::min(window_end, measure_start)) / 1e9;
    if (measure_end) ctx.measured_s = o.duration_s;
    ctx.loadgen_user_s = cpu1.first - cpu0.first;
    ctx.loadgen_sys_s = cpu1.second - cpu0.second;
    ctx.loadgen_cpus = o.cpus.empty() ? affinity_list() : o.cpus_text;
    if (server0 && server1) {
        ProcessTreeSnapshot d = *server1;
        d.cpu_user_s -= server0->cpu_user_s;
        d.cpu_sys_s -= server0->cpu_sys_s;
        d.ctx_voluntary -= std::min(d.ctx_voluntary, server0->ctx_voluntary);
        d.ctx_involuntary -= std::min(d.ctx_involuntary, server0->ctx_involuntary);
        ctx.server_delta = d;
    }
    if (sampler) {
        sampler->sample_now();
        ctx.server_peaks = sampler->peaks();
        ctx.server_cpus = cpus_allowed_list(o.server_pid);
    }
    const json result = make_result(ctx, total);
    if (!o.quiet) {
        std::fprintf(stderr, "%s %s @ %s:%u, %d threads, %d connections\n", to_string(o.protocol), to_string(o.mode),
                     o.host.c_str(), o.port, o.threads, o.connections);
        print_summary(result);
    }
    if (write_out(result, o.out) != 0) return 1;
    const int code = exit_code_of(result);
    if (code != 0) {
        std::fprintf(stderr, "loadgen: run had errors: %llu errors, %llu/%d connections established%s\n",
                     (unsigned long long)total.total_errors(), (unsigned long long)total.established, o.connections,
                     result.value("valid", true) ? "" : ", open loop invalid (achieved < 99% of the rate)");
    }
    return code;
}
