#include "loadgen/result_json.hpp"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <stdexcept>

namespace loadgen {
namespace {

using nlohmann::json;

double us(std::uint64_t ns) {
    return static_cast<double>(ns) / 1000.0;
}

std::string kernel_version() {
    utsname u{};
    if (uname(&u) != 0) return "";
    return std::string(u.sysname) + " " + u.release;
}

std::string cpu_model() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("model name", 0) == 0) {
            const auto colon = line.find(':');
            if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
        }
    }
    return "";
}

std::vector<std::string> split_words(const std::string& s) {
    std::vector<std::string> words;
    std::size_t pos = 0;
    while ((pos = s.find_first_not_of(" \t", pos)) != std::string::npos) {
        const auto end = s.find_first_of(" \t", pos);
        words.push_back(s.substr(pos, end - pos));
        pos = end;
    }
    return words;
}

std::string errno_name(int err) {
    switch (err) {
        case ECONNREFUSED:
            return "ECONNREFUSED";
        case ECONNRESET:
            return "ECONNRESET";
        case EADDRNOTAVAIL:
            return "EADDRNOTAVAIL";
        case ETIMEDOUT:
            return "ETIMEDOUT";
        case EPIPE:
            return "EPIPE";
        case EMFILE:
            return "EMFILE";
        case ENFILE:
            return "ENFILE";
        case ENETUNREACH:
            return "ENETUNREACH";
        case EHOSTUNREACH:
            return "EHOSTUNREACH";
        case ECONNABORTED:
            return "ECONNABORTED";
        case EAGAIN:
            return "EAGAIN";
        case ENOBUFS:
            return "ENOBUFS";
        case EADDRINUSE:
            return "EADDRINUSE";
        case ENOENT:
            return "ENOENT";
        case EACCES:
            return "EACCES";
        case EPROTOTYPE:
            return "EPROTOTYPE";
        default:
            return "errno_" + std::to_string(err);
    }
}

// Seconds from the window's start to the end of an interval, `end_ms` ms: a whole number when it
// is one, as the 1 s timeseries always wrote it.
json t_s_json(std::uint64_t end_ms) {
    return end_ms % 1000 == 0 ? json(end_ms / 1000) : json(static_cast<double>(end_ms) / 1e3);
}

json timeseries_json(const RunStats& stats, double interval_s) {
    json series = json::array();
    for (std::size_t i = 0; i < stats.intervals.size(); ++i) {
        const auto& s = stats.intervals[i];
        const auto end_ms =
            static_cast<std::uint64_t>(std::llround(static_cast<double>(i + 1) * interval_s * 1e3));
        series.push_back(interval_json(end_ms, s.requests, s.errors, s.latency));
    }
    return series;
}

}  // namespace

json interval_json(std::uint64_t end_ms, std::uint64_t requests, std::uint64_t errors,
                   const LatencyHistogram& latency) {
    return {{"t_s", t_s_json(end_ms)},
            {"requests", requests},
            {"errors", errors},
            {"p50_us", us(latency.percentile(50))},
            {"p99_us", us(latency.percentile(99))},
            {"histogram", histogram_to_json(latency)["histogram"]}};
}

json histogram_to_json(const LatencyHistogram& h) {
    json buckets = json::array();
    for (std::size_t i = 0; i < LatencyHistogram::kBucketCount; ++i) {
        if (const auto n = h.count_in(i))
            buckets.push_back(json::array({us(LatencyHistogram::highest_in(i)), n}));
    }
    return {{"min", us(h.min())},
            {"mean", h.mean() / 1000.0},
            {"stdev", h.stdev() / 1000.0},
            {"p50", us(h.percentile(50))},
            {"p90", us(h.percentile(90))},
            {"p99", us(h.percentile(99))},
            {"p99_9", us(h.percentile(99.9))},
            {"max", us(h.max())},
            {"count", h.count()},
            {"sum_ns", h.sum()},
            {"sum_squares_ns2", h.sum_squares()},
            {"histogram", std::move(buckets)}};
}

LatencyHistogram histogram_from_json(const json& j) {
    LatencyHistogram h;
    const json& buckets = j.is_array() ? j : j.at("histogram");
    for (const auto& entry : buckets) {
        if (!entry.is_array() || entry.size() != 2)
            throw std::runtime_error("histogram entry is not [upper_bound_us, count]");
        const auto ns = std::llround(entry[0].get<double>() * 1000.0);
        if (ns < 0) throw std::runtime_error("negative histogram bound");
        h.add_to_bucket(LatencyHistogram::bucket_of(static_cast<std::uint64_t>(ns)),
                        entry[1].get<std::uint64_t>());
    }
    if (j.is_object() && j.contains("sum_ns") && h.count() > 0) {
        h.set_sums(j.at("sum_ns").get<std::uint64_t>(), j.at("sum_squares_ns2").get<double>(),
                   static_cast<std::uint64_t>(std::llround(j.at("min").get<double>() * 1000.0)),
                   static_cast<std::uint64_t>(std::llround(j.at("max").get<double>() * 1000.0)));
    }
    return h;
}

std::string saturation_bound(double server_util, double loadgen_util) {
    if (server_util >= 0.9) return "server";
    if (loadgen_util >= 0.9) return "loadgen";
    return "neither";
}

namespace {

json errors_json(const RunStats& stats) {
    json errors = json::object();
    for (int k = 0; k < kErrorKinds; ++k)
        errors[to_string(static_cast<ErrorKind>(k))] = stats.errors[static_cast<std::size_t>(k)];
    return errors;
}

json errors_by_errno_json(const RunStats& stats) {
    json by_errno = json::object();
    for (std::size_t e = 1; e < stats.errors_by_errno.size(); ++e)
        if (stats.errors_by_errno[e]) by_errno[errno_name(static_cast<int>(e))] = stats.errors_by_errno[e];
    return by_errno;
}

const char* transport_name(const Options& o) {
    const bool datagrams = o.transport == Transport::udp;
    if (o.unix_path.empty()) return datagrams ? "udp" : "tcp";
    return datagrams ? "unix-dgram" : "unix";
}

json config_json(const Options& o) {
    const bool tcp = o.unix_path.empty();
    return {{"connections", o.connections},
            {"threads", o.threads},
            {"duration_s", o.requests ? json(nullptr) : json(o.duration_s)},
            {"requests", o.requests ? json(o.requests) : json(nullptr)},
            {"warmup_s", o.warmup_s},
            {"interval_ms", o.interval_s * 1e3},
            {"mode", to_string(o.mode)},
            {"pipeline", o.pipeline},
            {"rate", o.rate > 0 ? json(o.rate) : json(nullptr)},
            {"protocol", to_string(o.protocol)},
            {"message_bytes", o.message_bytes},
            {"timeout_s", o.timeout_s},
            {"transport", transport_name(o)},
            {"udp_format", o.transport == Transport::udp ? json(o.sockperf_format ? "sockperf" : "native") : json(nullptr)},
            {"unix_path", tcp ? json(nullptr) : json(o.unix_path)},
            {"host", tcp ? json(o.host) : json(nullptr)},
            {"port", tcp ? json(o.port) : json(nullptr)},
            {"tcp_nodelay", tcp ? json(o.tcp_nodelay) : json(nullptr)},
            {"path", o.path},
            {"server_flags", split_words(o.server_flags.value_or(""))}};
}

json env_json(const RunContext& ctx) {
    const char* git_rev = std::getenv("SERVERBENCH_GIT_REV");
    return {{"kernel", kernel_version()},
            {"cpu_model", cpu_model()},
            {"cpus", sysconf(_SC_NPROCESSORS_ONLN)},
            {"server_cpus", ctx.server_cpus.empty() ? json(nullptr) : json(ctx.server_cpus)},
            {"loadgen_cpus", ctx.loadgen_cpus},
            {"started_at", ctx.started_at},
            {"git_rev", git_rev && *git_rev ? json(git_rev) : json(nullptr)}};
}

json totals_json(const RunContext& ctx, const RunStats& stats, double rps) {
    return {{"requests", stats.requests},
            {"duration_s", ctx.measured_s},
            {"throughput_rps", rps},
            {"bytes_sent", stats.bytes_sent},
            {"bytes_received", stats.bytes_received},
            {"errors", errors_json(stats)}};
}

// CPU seconds per request in microseconds, null without requests.
json us_per_request(double cpu_s, std::uint64_t requests) {
    return requests ? json(cpu_s * 1e6 / static_cast<double>(requests)) : json(nullptr);
}

json server_json(const RunContext& ctx, const RunStats& stats) {
    if (!ctx.server_delta) {
        json none = json::object();
        for (const char* key :
             {"pid", "cpu_user_s", "cpu_sys_s", "cpu_us_per_request", "peak_rss_kib", "peak_threads",
              "peak_processes", "ctx_switches_voluntary", "ctx_switches_involuntary"})
            none[key] = nullptr;
        return none;
    }
    const auto& d = *ctx.server_delta;
    return {{"pid", ctx.options->server_pid},
            {"cpu_user_s", d.cpu_user_s},
            {"cpu_sys_s", d.cpu_sys_s},
            {"cpu_us_per_request", us_per_request(d.cpu_user_s + d.cpu_sys_s, stats.requests)},
            {"peak_rss_kib", ctx.server_peaks.rss_kib},
            {"peak_threads", ctx.server_peaks.threads},
            {"peak_processes", ctx.server_peaks.processes},
            {"ctx_switches_voluntary", d.ctx_voluntary},
            {"ctx_switches_involuntary", d.ctx_involuntary}};
}

// Share of the CPUs each side could use that it did use over the window.
std::pair<double, double> cpu_utilisation(const RunContext& ctx, double duration) {
    const int threads = ctx.options->threads;
    const int listed = count_cpus_in_list(ctx.loadgen_cpus);
    const int loadgen_cpus = std::max(1, std::min(threads, listed > 0 ? listed : threads));
    const double loadgen_util = (ctx.loadgen_user_s + ctx.loadgen_sys_s) / (duration * loadgen_cpus);
    if (!ctx.server_delta) return {0.0, loadgen_util};
    int allowed = count_cpus_in_list(ctx.server_cpus);
    if (allowed <= 0) allowed = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
    const double server_cpu = ctx.server_delta->cpu_user_s + ctx.server_delta->cpu_sys_s;
    return {server_cpu / (duration * allowed), loadgen_util};
}

json saturation_json(const RunContext& ctx, double duration) {
    const auto [server_util, loadgen_util] = cpu_utilisation(ctx, duration);
    return {{"server_cpu_util", ctx.server_delta ? json(server_util) : json(nullptr)},
            {"loadgen_cpu_util", loadgen_util},
            {"bound", saturation_bound(server_util, loadgen_util)},
            {"rule",
             "server if its CPU use >= 0.9 of the CPUs it may run on, else loadgen if its "
             "threads were >= 0.9 busy, else neither"}};
}

json optional_json(const std::optional<double>& v) {
    return v ? json(*v) : json(nullptr);
}

json window_json(const WindowRecord& w) {
    json control = nullptr;
    if (w.control) {
        const auto& c = *w.control;
        control = {{"fifo", c.fifo},
                   {"ack_fifo", c.ack_fifo.empty() ? json(nullptr) : json(c.ack_fifo)},
                   {"enable_monotonic_ns", c.enable_ns},
                   {"disable_monotonic_ns", c.disable_ns},
                   {"enable_ack_us", optional_json(c.enable_ack_us)},
                   {"disable_ack_us", optional_json(c.disable_ack_us)},
                   {"ok", c.error.empty()},
                   {"error", c.error.empty() ? json(nullptr) : json(c.error)}};
    }
    return {{"start_monotonic_ns", w.start_ns},
            {"end_monotonic_ns", w.end_ns},
            {"start_unix_s", w.start_unix_s},
            {"end_unix_s", w.end_unix_s},
            {"length_s", static_cast<double>(w.end_ns - std::min(w.end_ns, w.start_ns)) / 1e9},
            {"counter_control", control}};
}

json share_of_sent(std::uint64_t n, std::uint64_t sent) {
    return sent ? json(static_cast<double>(n) / static_cast<double>(sent)) : json(nullptr);
}

json udp_counters_json(const UdpKernelCounters& c) {
    return {{"udp_in_errors", c.in_errors},
            {"udp_rcvbuf_errors", c.rcvbuf_errors},
            {"udp_sndbuf_errors", c.sndbuf_errors},
            {"server_socket_drops", c.server_socket_drops},
            {"loadgen_socket_drops", c.loadgen_socket_drops},
            {"softnet_drops", c.softnet_drops}};
}

json udp_drops_json(const std::optional<UdpDrops>& d) {
    if (!d) return nullptr;
    return {{"server_namespace", udp_counters_json(d->server_namespace)},
            {"loadgen_namespace", udp_counters_json(d->loadgen_namespace)},
            {"one_namespace", d->one_namespace}};
}

// Over UDP: what became of the window's datagrams (sent = answered + late + lost), and what the
// kernel counted dropped meanwhile.
json datagrams_json(const RunContext& ctx, const DatagramCounts& d) {
    const auto ratio = [&d](std::uint64_t n) { return share_of_sent(n, d.sent); };
    return {{"sent", d.sent},
            {"answered", d.answered},
            {"late", d.late},
            {"lost", d.lost},
            {"loss_ratio", ratio(d.lost)},
            {"unanswered_in_time_ratio", ratio(d.lost + d.late)},
            {"duplicates", d.duplicates},
            {"reordered", d.reordered},
            {"wrong", d.wrong},
            {"send_blocked", d.send_blocked},
            {"kernel_drops", udp_drops_json(ctx.udp_drops)},
            {"socket_rcvbuf_bytes", ctx.udp_buffers ? json(ctx.udp_buffers->rcvbuf) : json(nullptr)},
            {"socket_sndbuf_bytes", ctx.udp_buffers ? json(ctx.udp_buffers->sndbuf) : json(nullptr)}};
}

// Valid when loadgen kept the schedule: over TCP every request it sent is answered, so the answers
// are the measure; over UDP a lost datagram is the server's result, not loadgen's shortfall, so
// the datagrams sent are.
json open_loop_json(const Options& o, const RunStats& stats, double rps, double duration) {
    json r = {{"target_rps", o.rate},           {"achieved_rps", rps},
              {"late_sends", stats.late_sends}, {"unsent", stats.unsent_arrivals},
              {"late_threshold_us", 1000},      {"valid", rps >= 0.99 * o.rate}};
    if (o.transport == Transport::udp) {
        const double sent_rps = static_cast<double>(stats.datagrams.sent) / duration;
        r["sent_rps"] = sent_rps;
        r["valid"] = sent_rps >= 0.99 * o.rate;
    }
    return r;
}

}  // namespace

json make_result(const RunContext& ctx, const RunStats& stats) {
    assert(ctx.options != nullptr);
    const Options& o = *ctx.options;
    const double duration = ctx.measured_s > 0 ? ctx.measured_s : 1e-9;
    const double rps = static_cast<double>(stats.requests) / duration;
    json r;
    r["schema"] = kResultSchema;
    r["model"] = o.model.empty() ? json(nullptr) : json(o.model);
    r["scenario"] = o.scenario.empty() ? json(nullptr) : json(o.scenario);
    r["config"] = config_json(o);
    r["env"] = env_json(ctx);
    r["connections"] = {
        {"requested", o.connections}, {"established", stats.established}, {"reconnects", stats.reconnects}};
    r["pipelined"] = o.pipeline > 1;
    r["totals"] = totals_json(ctx, stats, rps);
    r["errors_by_errno"] = errors_by_errno_json(stats);
    r["latency_us"] = histogram_to_json(stats.latency);
    if (o.rate > 0) r["latency_uncorrected_us"] = histogram_to_json(stats.latency_uncorrected);
    r["connect_us"] = histogram_to_json(stats.connect);
    if (ctx.series) {
        // The entries are in the file; an empty "timeseries" keeps readers of the array working.
        r["timeseries"] = json::array();
        r["timeseries_file"] = ctx.series->path;
        r["timeseries_entries"] = ctx.series->lines;
        r["timeseries_late_entries"] = ctx.series->late_parts;
        r["timeseries_file_error"] = ctx.series->error.empty() ? json(nullptr) : json(ctx.series->error);
    } else {
        r["timeseries"] = timeseries_json(stats, o.interval_s);
    }
    r["server"] = server_json(ctx, stats);
    r["loadgen"] = {
        {"cpu_user_s", ctx.loadgen_user_s},
        {"cpu_sys_s", ctx.loadgen_sys_s},
        {"cpu_us_per_request", us_per_request(ctx.loadgen_user_s + ctx.loadgen_sys_s, stats.requests)},
        {"threads", o.threads}};
    r["saturation"] = saturation_json(ctx, duration);
    r["window"] = window_json(ctx.window);
    if (o.rate > 0) r["open_loop"] = open_loop_json(o, stats, rps, duration);
    if (o.transport == Transport::udp) r["datagrams"] = datagrams_json(ctx, stats.datagrams);
    r["valid"] = o.rate > 0 ? r["open_loop"]["valid"].get<bool>() : true;
    return r;
}

namespace {

// False when --window-fifo's counter may not have counted the window (a line not written or not
// acknowledged).
bool counter_control_ok(const json& r) {
    const json* control = r.contains("window") ? &r.at("window") : nullptr;
    if (control == nullptr || !control->contains("counter_control")) return true;
    control = &control->at("counter_control");
    return !control->is_object() || control->value("ok", true);
}

}  // namespace

int exit_code_of(const json& r) {
    std::uint64_t errors = 0;
    for (const auto& [kind, n] : r.at("totals").at("errors").items()) errors += n.get<std::uint64_t>();
    const auto& c = r.at("connections");
    const bool shortfall = c.at("established").get<std::uint64_t>() < c.at("requested").get<std::uint64_t>();
    const bool valid = r.value("valid", true);
    const bool series_whole = r.value("timeseries_file_error", json(nullptr)).is_null();
    return errors == 0 && !shortfall && valid && counter_control_ok(r) && series_whole ? 0 : 1;
}

bool write_result(const json& r, const std::string& out) {
    if (out.empty()) {
        std::cout << r.dump(1) << "\n";
        return true;
    }
    std::ofstream f(out);
    f << r.dump(1) << "\n";
    if (f) return true;
    std::fprintf(stderr, "loadgen: cannot write %s\n", out.c_str());
    return false;
}

// ------------------------------------------------------------------------------------ merge

namespace {

const json& at(const json& r, const std::string& pointer) {
    return r.at(json::json_pointer(pointer));
}

std::uint64_t sum_u(const std::vector<json>& results, const std::string& pointer) {
    std::uint64_t total = 0;
    for (const auto& r : results) total += at(r, pointer).get<std::uint64_t>();
    return total;
}

// Sum and maximum of a field that may be null in some results (those are skipped).
double sum_d(const std::vector<json>& results, const std::string& pointer) {
    double total = 0;
    for (const auto& r : results)
        if (at(r, pointer).is_number()) total += at(r, pointer).get<double>();
    return total;
}

double max_d(const std::vector<json>& results, const std::string& pointer) {
    double best = 0;
    for (const auto& r : results)
        if (at(r, pointer).is_number()) best = std::max(best, at(r, pointer).get<double>());
    return best;
}

void merge_config(json& m, const std::vector<json>& results) {
    m["config"]["connections"] = sum_u(results, "/config/connections");
    m["config"]["threads"] = sum_u(results, "/config/threads");
    if (m["config"]["rate"].is_number()) m["config"]["rate"] = sum_d(results, "/config/rate");
    std::string loadgen_cpus;
    for (const auto& r : results) {
        const auto& c = r.at("env").at("loadgen_cpus");
        if (!c.is_string() || c.get<std::string>().empty()) continue;
        if (!loadgen_cpus.empty()) loadgen_cpus += ',';
        loadgen_cpus += c.get<std::string>();
    }
    m["env"]["loadgen_cpus"] = loadgen_cpus;
}

// The processes ran side by side: their windows overlap, so the longest is the window.
void merge_totals(json& m, const std::vector<json>& results) {
    auto& t = m["totals"];
    for (const char* key : {"requests", "bytes_sent", "bytes_received"})
        t[key] = sum_u(results, std::string("/totals/") + key);
    const double duration = max_d(results, "/totals/duration_s");
    t["duration_s"] = duration;
    t["throughput_rps"] =
        duration > 0 ? static_cast<double>(t["requests"].get<std::uint64_t>()) / duration : 0.0;
    for (auto& [kind, n] : t["errors"].items()) n = sum_u(results, "/totals/errors/" + kind);
    std::map<std::string, std::uint64_t> by_errno;
    for (const auto& r : results) {
        const json errnos = r.value("errors_by_errno", json::object());  // named: items() must not outlive it
        for (const auto& [name, n] : errnos.items()) by_errno[name] += n.get<std::uint64_t>();
    }
    m["errors_by_errno"] = by_errno;
    if (!m.contains("connections")) return;
    for (const char* key : {"requested", "established", "reconnects"}) {
        std::uint64_t total = 0;
        for (const auto& r : results) total += r.at("connections").value(key, std::uint64_t{0});
        m["connections"][key] = total;
    }
}

void merge_histograms(json& m, const std::vector<json>& results) {
    for (const char* key : {"latency_us", "latency_uncorrected_us", "connect_us"}) {
        if (!m.contains(key)) continue;
        LatencyHistogram merged;
        for (const auto& r : results)
            if (r.contains(key)) merged.merge(histogram_from_json(r.at(key)));
        m[key] = histogram_to_json(merged);
    }
}

struct IntervalSum {
    std::uint64_t requests = 0, errors = 0;
    LatencyHistogram latency;
};

// Results written before --interval existed have 1 s intervals.
double interval_ms_of(const json& r) {
    const json& v = r.at("config").value("interval_ms", json(1000.0));
    return v.is_number() ? v.get<double>() : 1000.0;
}

// Intervals line up by t_s (the processes started together), so they must have the same length.
json merge_timeseries(const std::vector<json>& results) {
    for (const auto& r : results)
        if (interval_ms_of(r) != interval_ms_of(results.front()))
            throw std::runtime_error("the results have different --interval lengths");
    std::map<std::uint64_t, IntervalSum> intervals;
    for (const auto& r : results) {
        const json timeseries = r.value("timeseries", json::array());
        for (const auto& s : timeseries) {
            auto& sum = intervals[static_cast<std::uint64_t>(std::llround(s.at("t_s").get<double>() * 1e3))];
            sum.requests += s.at("requests").get<std::uint64_t>();
            sum.errors += s.at("errors").get<std::uint64_t>();
            if (s.contains("histogram")) sum.latency.merge(histogram_from_json(s.at("histogram")));
        }
    }
    json series = json::array();
    for (const auto& [end_ms, sum] : intervals)
        series.push_back(interval_json(end_ms, sum.requests, sum.errors, sum.latency));
    return series;
}

// Results whose timeseries went to --series-file list their files (each process wrote its own);
// they cannot be lined up with timeseries held in a result, so a mix is refused.
void merge_series_files(json& m, const std::vector<json>& results) {
    const auto streamed = std::count_if(results.begin(), results.end(),
                                        [](const json& r) { return r.contains("timeseries_file"); });
    if (streamed == 0) return;
    if (static_cast<std::size_t>(streamed) != results.size())
        throw std::runtime_error("some results have their timeseries in a --series-file, others in the JSON");
    json files = json::array();
    std::uint64_t late = 0;
    json error = nullptr;
    for (const auto& r : results) {
        files.push_back({{"file", r.at("timeseries_file")}, {"entries", r.value("timeseries_entries", 0)}});
        late += r.value("timeseries_late_entries", std::uint64_t{0});
        if (error.is_null()) error = r.value("timeseries_file_error", json(nullptr));
    }
    m.erase("timeseries_file");
    m.erase("timeseries_entries");
    m["timeseries_files"] = files;
    m["timeseries_late_entries"] = late;
    m["timeseries_file_error"] = error;
}

// The server is the same process seen by each load generator: its figures are not summed.
void merge_cpu(json& m, const std::vector<json>& results) {
    auto& lg = m["loadgen"];
    lg["cpu_user_s"] = sum_d(results, "/loadgen/cpu_user_s");
    lg["cpu_sys_s"] = sum_d(results, "/loadgen/cpu_sys_s");
    const auto requests = m["totals"]["requests"].get<std::uint64_t>();
    lg["cpu_us_per_request"] =
        us_per_request(lg["cpu_user_s"].get<double>() + lg["cpu_sys_s"].get<double>(), requests);
    auto& srv = m["server"];
    if (srv.value("cpu_user_s", json(nullptr)).is_number() && requests)
        srv["cpu_us_per_request"] =
            us_per_request(srv["cpu_user_s"].get<double>() + srv["cpu_sys_s"].get<double>(), requests);
    if (!m.contains("saturation")) return;
    const double lg_util = max_d(results, "/saturation/loadgen_cpu_util");
    const double srv_util = max_d(results, "/saturation/server_cpu_util");
    m["saturation"]["loadgen_cpu_util"] = lg_util;
    m["saturation"]["bound"] = saturation_bound(srv_util, lg_util);
}

// The merged window spans every process's window; its counter control is the first's, failed if
// any failed.
void merge_window(json& m, const std::vector<json>& results) {
    if (!m.contains("window")) return;
    auto& w = m["window"];
    for (const auto& r : results) {
        if (!r.contains("window")) continue;
        const auto& rw = r.at("window");
        for (const char* key : {"start_monotonic_ns", "start_unix_s"})
            if (rw.at(key) < w.at(key)) w[key] = rw.at(key);
        for (const char* key : {"end_monotonic_ns", "end_unix_s"})
            if (rw.at(key) > w.at(key)) w[key] = rw.at(key);
        if (!counter_control_ok(r) && w["counter_control"].is_object()) w["counter_control"]["ok"] = false;
    }
    w["length_s"] = w["end_unix_s"].get<double>() - w["start_unix_s"].get<double>();
}

// Each process counted its own datagrams: they add. The kernel's counters are the namespace's,
// read by each over overlapping windows: the largest delta is the merged one.
void merge_datagrams(json& m, const std::vector<json>& results) {
    if (!m.contains("datagrams")) return;
    auto& d = m["datagrams"];
    for (const char* key : {"sent", "answered", "late", "lost", "duplicates", "reordered", "wrong", "send_blocked"})
        d[key] = sum_u(results, std::string("/datagrams/") + key);
    const auto sent = d["sent"].get<std::uint64_t>(), lost = d["lost"].get<std::uint64_t>();
    d["loss_ratio"] = share_of_sent(lost, sent);
    d["unanswered_in_time_ratio"] = share_of_sent(lost + d["late"].get<std::uint64_t>(), sent);
    if (!d["kernel_drops"].is_object()) return;
    for (const char* side : {"server_namespace", "loadgen_namespace"})
        for (auto& [key, value] : d["kernel_drops"][side].items())
            value = static_cast<std::uint64_t>(max_d(results, std::string("/datagrams/kernel_drops/") + side + "/" + key));
}

void merge_validity(json& m, const std::vector<json>& results) {
    bool valid =
        std::all_of(results.begin(), results.end(), [](const json& r) { return r.value("valid", true); });
    if (m.contains("open_loop")) {
        auto& ol = m["open_loop"];
        ol["target_rps"] = sum_d(results, "/open_loop/target_rps");
        ol["achieved_rps"] = m["totals"]["throughput_rps"];
        ol["late_sends"] = sum_u(results, "/open_loop/late_sends");
        ol["unsent"] = sum_u(results, "/open_loop/unsent");
        double kept = ol["achieved_rps"].get<double>();
        if (ol.contains("sent_rps")) {
            const double duration = m["totals"]["duration_s"].get<double>();
            kept = duration > 0 ? static_cast<double>(m["datagrams"]["sent"].get<std::uint64_t>()) / duration : 0.0;
            ol["sent_rps"] = kept;
        }
        valid = valid && kept >= 0.99 * ol["target_rps"].get<double>();
        ol["valid"] = valid;
    }
    m["valid"] = valid;
}

}  // namespace

json merge_results(const std::vector<json>& results) {
    if (results.empty()) throw std::runtime_error("nothing to merge");
    for (const auto& r : results)
        if (r.value("schema", "") != kResultSchema)
            throw std::runtime_error("not a serverbench.result/1 document");
    json m = results.front();
    merge_config(m, results);
    merge_totals(m, results);
    merge_histograms(m, results);
    m["timeseries"] = merge_timeseries(results);
    merge_series_files(m, results);
    merge_cpu(m, results);
    merge_window(m, results);
    merge_datagrams(m, results);
    merge_validity(m, results);
    m["pipelined"] = std::any_of(results.begin(), results.end(),
                                 [](const json& r) { return r.value("pipelined", false); });
    m["merged_from"] = results.size();
    return m;
}

}  // namespace loadgen
