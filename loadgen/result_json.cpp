#include "loadgen/result_json.hpp"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <stdexcept>

namespace loadgen {
namespace {

using nlohmann::json;

double us(std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; }

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
    case ECONNREFUSED: return "ECONNREFUSED";
    case ECONNRESET: return "ECONNRESET";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EPIPE: return "EPIPE";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENETUNREACH: return "ENETUNREACH";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ECONNABORTED: return "ECONNABORTED";
    case EAGAIN: return "EAGAIN";
    case ENOBUFS: return "ENOBUFS";
    case EADDRINUSE: return "EADDRINUSE";
    default: return "errno_" + std::to_string(err);
    }
}

json timeseries_json(const RunStats& stats) {
    json series = json::array();
    for (std::size_t i = 0; i < stats.seconds.size(); ++i) {
        const auto& s = stats.seconds[i];
        series.push_back({{"t_s", i + 1},
                          {"requests", s.requests},
                          {"errors", s.errors},
                          {"p50_us", us(s.latency.percentile(50))},
                          {"p99_us", us(s.latency.percentile(99))},
                          {"histogram", histogram_to_json(s.latency)["histogram"]}});
    }
    return series;
}

}  // namespace

json histogram_to_json(const LatencyHistogram& h) {
    json buckets = json::array();
    for (std::size_t i = 0; i < LatencyHistogram::kBucketCount; ++i) {
        if (const auto n = h.count_in(i)) buckets.push_back(json::array({us(LatencyHistogram::highest_in(i)), n}));
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
        if (!entry.is_array() || entry.size() != 2) throw std::runtime_error("histogram entry is not [upper_bound_us, count]");
        const auto ns = std::llround(entry[0].get<double>() * 1000.0);
        if (ns < 0) throw std::runtime_error("negative histogram bound");
        h.add_to_bucket(LatencyHistogram::bucket_of(static_cast<std::uint64_t>(ns)), entry[1].get<std::uint64_t>());
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

json make_result(const RunContext& ctx, const RunStats& stats) {
    const Options& o = *ctx.options;
    const double duration = ctx.measured_s > 0 ? ctx.measured_s : 1e-9;
    const bool open_loop = o.rate > 0;
    const double rps = static_cast<double>(stats.requests) / duration;
    const double requests = static_cast<double>(std::max<std::uint64_t>(stats.requests, 1));

    json errors = json::object();
    for (int k = 0; k < kErrorKinds; ++k) errors[to_string(static_cast<ErrorKind>(k))] = stats.errors[static_cast<std::size_t>(k)];
    json by_errno = json::object();
    for (std::size_t e = 1; e < stats.errors_by_errno.size(); ++e)
        if (stats.errors_by_errno[e]) by_errno[errno_name(static_cast<int>(e))] = stats.errors_by_errno[e];

    json r;
    r["schema"] = kResultSchema;
    r["model"] = o.model.empty() ? json(nullptr) : json(o.model);
    r["scenario"] = o.scenario.empty() ? json(nullptr) : json(o.scenario);
    r["config"] = {{"connections", o.connections},
                   {"threads", o.threads},
                   {"duration_s", o.requests ? json(nullptr) : json(o.duration_s)},
                   {"requests", o.requests ? json(o.requests) : json(nullptr)},
                   {"warmup_s", o.warmup_s},
                   {"mode", to_string(o.mode)},
                   {"pipeline", o.pipeline},
                   {"rate", open_loop ? json(o.rate) : json(nullptr)},
                   {"protocol", to_string(o.protocol)},
                   {"message_bytes", o.message_bytes},
                   {"timeout_s", o.timeout_s},
                   {"host", o.host},
                   {"port", o.port},
                   {"path", o.path},
                   {"server_flags", split_words(o.server_flags.value_or(""))}};
    const char* git_rev = std::getenv("SERVERBENCH_GIT_REV");
    r["env"] = {{"kernel", kernel_version()},
                {"cpu_model", cpu_model()},
                {"cpus", sysconf(_SC_NPROCESSORS_ONLN)},
                {"server_cpus", ctx.server_cpus.empty() ? json(nullptr) : json(ctx.server_cpus)},
                {"loadgen_cpus", ctx.loadgen_cpus},
                {"started_at", ctx.started_at},
                {"git_rev", git_rev && *git_rev ? json(git_rev) : json(nullptr)}};
    r["connections"] = {{"requested", o.connections}, {"established", stats.established},
                        {"reconnects", stats.reconnects}};
    r["pipelined"] = o.pipeline > 1;
    r["totals"] = {{"requests", stats.requests},
                   {"duration_s", ctx.measured_s},
                   {"throughput_rps", rps},
                   {"bytes_sent", stats.bytes_sent},
                   {"bytes_received", stats.bytes_received},
                   {"errors", errors}};
    r["errors_by_errno"] = by_errno;
    r["latency_us"] = histogram_to_json(stats.latency);
    if (open_loop) r["latency_uncorrected_us"] = histogram_to_json(stats.latency_uncorrected);
    r["connect_us"] = histogram_to_json(stats.connect);
    r["timeseries"] = timeseries_json(stats);

    const int loadgen_cpu_count = std::max(1, std::min(o.threads, count_cpus_in_list(ctx.loadgen_cpus) > 0
                                                                      ? count_cpus_in_list(ctx.loadgen_cpus)
                                                                      : o.threads));
    const double loadgen_cpu = ctx.loadgen_user_s + ctx.loadgen_sys_s;
    const double loadgen_util = loadgen_cpu / (duration * loadgen_cpu_count);
    double server_util = 0;
    if (ctx.server_delta) {
        const auto& d = *ctx.server_delta;
        const double server_cpu = d.cpu_user_s + d.cpu_sys_s;
        int allowed = count_cpus_in_list(ctx.server_cpus);
        if (allowed <= 0) allowed = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
        server_util = server_cpu / (duration * allowed);
        r["server"] = {{"pid", o.server_pid},
                       {"cpu_user_s", d.cpu_user_s},
                       {"cpu_sys_s", d.cpu_sys_s},
                       {"cpu_us_per_request", stats.requests ? json(server_cpu * 1e6 / requests) : json(nullptr)},
                       {"peak_rss_kib", ctx.server_peaks.rss_kib},
                       {"peak_threads", ctx.server_peaks.threads},
                       {"peak_processes", ctx.server_peaks.processes},
                       {"ctx_switches_voluntary", d.ctx_voluntary},
                       {"ctx_switches_involuntary", d.ctx_involuntary}};
    } else {
        r["server"] = {{"pid", nullptr}, {"cpu_user_s", nullptr}, {"cpu_sys_s", nullptr},
                       {"cpu_us_per_request", nullptr}, {"peak_rss_kib", nullptr}, {"peak_threads", nullptr},
                       {"peak_processes", nullptr}, {"ctx_switches_voluntary", nullptr},
                       {"ctx_switches_involuntary", nullptr}};
    }
    r["loadgen"] = {{"cpu_user_s", ctx.loadgen_user_s},
                    {"cpu_sys_s", ctx.loadgen_sys_s},
                    {"cpu_us_per_request", stats.requests ? json(loadgen_cpu * 1e6 / requests) : json(nullptr)},
                    {"threads", o.threads}};
    r["saturation"] = {{"server_cpu_util", ctx.server_delta ? json(server_util) : json(nullptr)},
                       {"loadgen_cpu_util", loadgen_util},
                       {"bound", saturation_bound(server_util, loadgen_util)},
                       {"rule", "server if its CPU use >= 0.9 of the CPUs it may run on, else loadgen if its "
                                "threads were >= 0.9 busy, else neither"}};
    bool valid = true;
    if (open_loop) {
        valid = rps >= 0.99 * o.rate;
        r["open_loop"] = {{"target_rps", o.rate},
                          {"achieved_rps", rps},
                          {"late_sends", stats.late_sends},
                          {"unsent", stats.unsent_arrivals},
                          {"late_threshold_us", 1000},
                          {"valid", valid}};
    }
    r["valid"] = valid;
    return r;
}

int exit_code_of(const json& r) {
    std::uint64_t errors = 0;
    for (const auto& [kind, n] : r.at("totals").at("errors").items()) errors += n.get<std::uint64_t>();
    const auto& c = r.at("connections");
    const bool shortfall = c.at("established").get<std::uint64_t>() < c.at("requested").get<std::uint64_t>();
    const bool valid = r.value("valid", true);
    return errors == 0 && !shortfall && valid ? 0 : 1;
}

json merge_results(const std::vector<json>& results) {
    if (results.empty()) throw std::runtime_error("nothing to merge");
    for (const auto& r : results)
        if (r.value("schema", "") != kResultSchema) throw std::runtime_error("not a serverbench.result/1 document");

    json m = results.front();
    auto sum_u = [&](auto get) {
        std::uint64_t total = 0;
        for (const auto& r : results) total += get(r).template get<std::uint64_t>();
        return total;
    };
    auto max_d = [&](auto get) {
        double best = 0;
        for (const auto& r : results)
            if (get(r).is_number()) best = std::max(best, get(r).template get<double>());
        return best;
    };
    auto sum_d = [&](auto get) {
        double total = 0;
        for (const auto& r : results)
            if (get(r).is_number()) total += get(r).template get<double>();
        return total;
    };

    m["config"]["connections"] = sum_u([](const json& r) -> const json& { return r.at("config").at("connections"); });
    m["config"]["threads"] = sum_u([](const json& r) -> const json& { return r.at("config").at("threads"); });
    if (m["config"]["rate"].is_number())
        m["config"]["rate"] = sum_d([](const json& r) -> const json& { return r.at("config").at("rate"); });
    std::string loadgen_cpus;
    for (const auto& r : results) {
        const auto& c = r.at("env").at("loadgen_cpus");
        if (!c.is_string() || c.get<std::string>().empty()) continue;
        if (!loadgen_cpus.empty()) loadgen_cpus += ',';
        loadgen_cpus += c.get<std::string>();
    }
    m["env"]["loadgen_cpus"] = loadgen_cpus;

    auto& t = m["totals"];
    t["requests"] = sum_u([](const json& r) -> const json& { return r.at("totals").at("requests"); });
    t["bytes_sent"] = sum_u([](const json& r) -> const json& { return r.at("totals").at("bytes_sent"); });
    t["bytes_received"] = sum_u([](const json& r) -> const json& { return r.at("totals").at("bytes_received"); });
    // The processes ran side by side: their windows overlap, so the longest is the window.
    const double duration = max_d([](const json& r) -> const json& { return r.at("totals").at("duration_s"); });
    t["duration_s"] = duration;
    t["throughput_rps"] = duration > 0 ? static_cast<double>(t["requests"].get<std::uint64_t>()) / duration : 0.0;
    for (auto& [kind, n] : t["errors"].items()) {
        const std::string k = kind;
        n = sum_u([&](const json& r) -> const json& { return r.at("totals").at("errors").at(k); });
    }

    std::map<std::string, std::uint64_t> by_errno;
    for (const auto& r : results) {
        const json errnos = r.value("errors_by_errno", json::object());  // named: items() must not outlive it
        for (const auto& [name, n] : errnos.items()) by_errno[name] += n.get<std::uint64_t>();
    }
    m["errors_by_errno"] = by_errno;

    if (m.contains("connections")) {
        for (const char* key : {"requested", "established", "reconnects"}) {
            std::uint64_t total = 0;
            for (const auto& r : results) total += r.at("connections").value(key, std::uint64_t{0});
            m["connections"][key] = total;
        }
    }

    for (const char* key : {"latency_us", "latency_uncorrected_us", "connect_us"}) {
        if (!m.contains(key)) continue;
        LatencyHistogram merged;
        for (const auto& r : results)
            if (r.contains(key)) merged.merge(histogram_from_json(r.at(key)));
        m[key] = histogram_to_json(merged);
    }

    // Seconds line up by t_s (the processes started together).
    std::map<std::uint64_t, std::pair<std::pair<std::uint64_t, std::uint64_t>, LatencyHistogram>> seconds;
    for (const auto& r : results) {
        const json timeseries = r.value("timeseries", json::array());
        for (const auto& s : timeseries) {
            auto& [counts, hist] = seconds[s.at("t_s").get<std::uint64_t>()];
            counts.first += s.at("requests").get<std::uint64_t>();
            counts.second += s.at("errors").get<std::uint64_t>();
            if (s.contains("histogram")) hist.merge(histogram_from_json(s.at("histogram")));
        }
    }
    json series = json::array();
    for (const auto& [second, entry] : seconds) {
        const auto& [counts, hist] = entry;
        series.push_back({{"t_s", second},
                          {"requests", counts.first},
                          {"errors", counts.second},
                          {"p50_us", us(hist.percentile(50))},
                          {"p99_us", us(hist.percentile(99))},
                          {"histogram", histogram_to_json(hist)["histogram"]}});
    }
    m["timeseries"] = series;

    // The server is the same process seen by each load generator: its figures are not summed.
    auto& lg = m["loadgen"];
    lg["cpu_user_s"] = sum_d([](const json& r) -> const json& { return r.at("loadgen").at("cpu_user_s"); });
    lg["cpu_sys_s"] = sum_d([](const json& r) -> const json& { return r.at("loadgen").at("cpu_sys_s"); });
    const auto requests = t["requests"].get<std::uint64_t>();
    const double lg_cpu = lg["cpu_user_s"].get<double>() + lg["cpu_sys_s"].get<double>();
    lg["cpu_us_per_request"] = requests ? json(lg_cpu * 1e6 / static_cast<double>(requests)) : json(nullptr);
    auto& srv = m["server"];
    if (srv.value("cpu_user_s", json(nullptr)).is_number() && requests) {
        const double srv_cpu = srv["cpu_user_s"].get<double>() + srv["cpu_sys_s"].get<double>();
        srv["cpu_us_per_request"] = srv_cpu * 1e6 / static_cast<double>(requests);
    }
    if (m.contains("saturation")) {
        const double lg_util = max_d([](const json& r) -> const json& { return r.at("saturation").at("loadgen_cpu_util"); });
        const double srv_util = max_d([](const json& r) -> const json& { return r.at("saturation").at("server_cpu_util"); });
        m["saturation"]["loadgen_cpu_util"] = lg_util;
        m["saturation"]["bound"] = saturation_bound(srv_util, lg_util);
    }

    bool valid = true;
    for (const auto& r : results) valid = valid && r.value("valid", true);
    if (m.contains("open_loop")) {
        auto& ol = m["open_loop"];
        ol["target_rps"] = sum_d([](const json& r) -> const json& { return r.at("open_loop").at("target_rps"); });
        ol["achieved_rps"] = t["throughput_rps"];
        ol["late_sends"] = sum_u([](const json& r) -> const json& { return r.at("open_loop").at("late_sends"); });
        ol["unsent"] = sum_u([](const json& r) -> const json& { return r.at("open_loop").at("unsent"); });
        valid = valid && ol["achieved_rps"].get<double>() >= 0.99 * ol["target_rps"].get<double>();
        ol["valid"] = valid;
    }
    m["valid"] = valid;
    m["pipelined"] = std::any_of(results.begin(), results.end(), [](const json& r) { return r.value("pipelined", false); });
    m["merged_from"] = results.size();
    return m;
}

}  // namespace loadgen
