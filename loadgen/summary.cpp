#include "loadgen/summary.hpp"

#include <cstdint>
#include <cstdio>
#include <string>

namespace loadgen {
namespace {

using nlohmann::json;

std::string fmt_us(double v) {
    char b[32];
    if (v >= 1e6)
        std::snprintf(b, sizeof b, "%.2fs", v / 1e6);
    else if (v >= 1e3)
        std::snprintf(b, sizeof b, "%.2fms", v / 1e3);
    else
        std::snprintf(b, sizeof b, "%.1fus", v);
    return b;
}

std::string fmt_us(const json& v) {
    return fmt_us(v.get<double>());
}

void print_latency(const json& r) {
    const auto& l = r["latency_us"];
    std::fprintf(stderr, "  Latency   p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (mean %s, stdev %s)\n",
                 fmt_us(l["p50"]).c_str(), fmt_us(l["p90"]).c_str(), fmt_us(l["p99"]).c_str(),
                 fmt_us(l["p99_9"]).c_str(), fmt_us(l["max"]).c_str(), fmt_us(l["mean"]).c_str(),
                 fmt_us(l["stdev"]).c_str());
    if (r.contains("latency_uncorrected_us"))
        std::fprintf(stderr, "  Uncorrected p50 %s  p99 %s\n",
                     fmt_us(r["latency_uncorrected_us"]["p50"]).c_str(),
                     fmt_us(r["latency_uncorrected_us"]["p99"]).c_str());
}

void print_throughput(const json& t) {
    const double d = t["duration_s"].get<double>();
    const double mib = static_cast<double>(t["bytes_received"].get<std::uint64_t>()) / 1048576.0;
    std::fprintf(stderr, "  %llu requests in %.2fs, %.2fMB read\n",
                 static_cast<unsigned long long>(t["requests"].get<std::uint64_t>()), d, mib);
    std::fprintf(stderr, "Requests/sec: %.2f\nTransfer/sec: %.2fMB\n", t["throughput_rps"].get<double>(),
                 d > 0 ? mib / d : 0.0);
}

void print_datagrams(const json& d) {
    const auto n = [&d](const char* key) { return static_cast<unsigned long long>(d[key].get<std::uint64_t>()); };
    const double loss = d["loss_ratio"].is_number() ? d["loss_ratio"].get<double>() * 100 : 0.0;
    std::fprintf(stderr, "Datagrams: %llu sent, %llu answered, %llu late, %llu lost (%.3f%%), %llu duplicates, "
                 "%llu reordered, %llu wrong\n", n("sent"), n("answered"), n("late"), n("lost"), loss,
                 n("duplicates"), n("reordered"), n("wrong"));
    if (d["kernel_drops"].is_object())
        std::fprintf(stderr, "Kernel drops: %s\n", d["kernel_drops"].dump().c_str());
}

}  // namespace

void print_summary(const json& r) {
    print_latency(r);
    const auto& t = r["totals"];
    print_throughput(t);
    std::string errs;
    for (const auto& [k, v] : t["errors"].items())
        errs += " " + k + " " + std::to_string(v.get<std::uint64_t>());
    std::fprintf(stderr, "Errors:%s %s\n", errs.c_str(),
                 r.value("errors_by_errno", json::object()).dump().c_str());
    std::fprintf(stderr, "Connections: %s\n", r["connections"].dump().c_str());
    if (r.contains("datagrams")) print_datagrams(r["datagrams"]);
    std::fprintf(stderr, "CPU us/req: loadgen %s, server %s; bound: %s\n",
                 r["loadgen"]["cpu_us_per_request"].dump().c_str(),
                 r["server"]["cpu_us_per_request"].dump().c_str(),
                 r["saturation"]["bound"].get<std::string>().c_str());
}

}  // namespace loadgen
