// The real loadgen binary as a subprocess, against real servers: the project's server-epoll (a
// clean run has zero errors), a misbehaving server (each fault is counted by its kind, never as a
// success; the JSON is written; the exit code is 1; nothing hangs), and no server at all.
//
// Every process is a sbtest::Process, killed and reaped by its destructor, so a failing ASSERT
// leaves nothing behind; every wait has a limit, so a hung loadgen fails the test instead of
// hanging it. The only timing assertion is the coordinated-omission check, about a 1 s stall.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "loadgen_harness.hpp"
#include "test_support.hpp"

namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using lgtest::count;
using lgtest::errors_of;
using lgtest::kLoadgen;
using lgtest::LoadgenRun;
using lgtest::MisbehavingServer;
using lgtest::run_loadgen;
using lgtest::total_errors;

// A port nothing listens on: bound (so the kernel picks a free one), then released.
std::string unused_port() {
    sb::UniqueFd fd{::socket(AF_INET, SOCK_STREAM, 0)};
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        return "1";
    return std::to_string(ntohs(addr.sin_port));
}

// What every faulty run must show: the JSON written, errors of `kind` counted, nothing counted as
// a success, exit code 1.
void expect_counted_as(const LoadgenRun& run, const char* kind) {
    ASSERT_TRUE(run.result.is_object()) << "no JSON written; stderr: " << run.stderr_text;
    EXPECT_EQ(run.exit_code, 1) << run.stderr_text;
    EXPECT_GT(errors_of(run.result, kind), 0u) << run.result["totals"].dump();
    EXPECT_EQ(count(run.result, {"totals", "requests"}), 0u) << run.result["totals"].dump();
    EXPECT_EQ(count(run.result, {"latency_us", "count"}), 0u);
}

// ---------------------------------------------------------------------------- faults

TEST(LoadgenFaults, NoServerCountsConnectErrorsAndExits1) {
    const auto run = run_loadgen({"--port", unused_port(), "--duration", "1s", "--timeout", "1s"});
    expect_counted_as(run, "connect");
    EXPECT_EQ(count(run.result, {"connections", "established"}), 0u);
    EXPECT_GT(count(run.result, {"errors_by_errno", "ECONNREFUSED"}), 0u)
        << run.result["errors_by_errno"].dump();
}

// A server that answers every request wrongly, and the error kind loadgen must count it as.
struct Fault {
    const char* behaviour;
    std::vector<std::string> loadgen_args;  // beyond --port, --connections, --duration
    const char* kind;
    const char* errno_name;  // also in errors_by_errno, or nullptr
};

void PrintTo(const Fault& f, std::ostream* os) {
    *os << f.behaviour << " -> " << f.kind;
}

class LoadgenFaultKinds : public testing::TestWithParam<Fault> {};

TEST_P(LoadgenFaultKinds, CountedByKindNeverAsSuccess) {
    const Fault& fault = GetParam();
    MisbehavingServer server(fault.behaviour);
    ASSERT_TRUE(server.ok());
    std::vector<std::string> args{"--port", server.port(), "--connections", "4", "--duration", "1s"};
    args.insert(args.end(), fault.loadgen_args.begin(), fault.loadgen_args.end());
    const auto run = run_loadgen(args);
    expect_counted_as(run, fault.kind);
    if (fault.errno_name) {
        EXPECT_GT(count(run.result, {"errors_by_errno", fault.errno_name}), 0u);
    }
}

INSTANTIATE_TEST_SUITE_P(
    Misbehaving, LoadgenFaultKinds,
    testing::Values(Fault{"wrong-status", {}, "protocol", nullptr},
                    Fault{"truncated-body", {}, "read", nullptr},  // FIN 90 bytes short of Content-Length
                    Fault{"reset", {}, "reset", "ECONNRESET"},     // RST mid-response
                    Fault{"garbage", {}, "protocol", nullptr},
                    Fault{"garbage", {"--protocol", "echo", "--message-bytes", "32"}, "protocol", nullptr}),
    [](const testing::TestParamInfo<Fault>& param) {
        std::string name = std::to_string(param.index) + "_" + param.param.behaviour +
                           (param.param.loadgen_args.empty() ? "" : "_" + param.param.loadgen_args[1]);
        for (auto& ch : name)
            if (ch == '-') ch = '_';
        return name;
    });

// A server that accepts and never reads: every request times out after --timeout, the run ends on
// time (the limit of run_loadgen is what "never hangs" means here).
TEST(LoadgenFaults, NeverReadingServerTimesOut) {
    MisbehavingServer server("never-reads");
    ASSERT_TRUE(server.ok());
    const auto run = run_loadgen(
        {"--port", server.port(), "--connections", "4", "--duration", "1500ms", "--timeout", "500ms"}, 10s);
    expect_counted_as(run, "timeout");
    EXPECT_GT(count(run.result, {"errors_by_errno", "ETIMEDOUT"}), 0u);
}

// Same with a request count: no answer for --timeout ends the run instead of waiting forever.
TEST(LoadgenFaults, NeverReadingServerEndsARequestCountRun) {
    MisbehavingServer server("never-reads");
    ASSERT_TRUE(server.ok());
    expect_counted_as(
        run_loadgen(
            {"--port", server.port(), "--connections", "2", "--requests", "100", "--timeout", "500ms"}, 10s),
        "timeout");
}

// A server that dies mid-run: the answers before are counted, the lost ones are errors, every
// reconnection is refused (connect errors), and loadgen exits 1 at the end of its duration.
TEST(LoadgenFaults, ServerDyingMidRunEndsWithErrorsAndExit1) {
    MisbehavingServer server("die", {"--after", "200"});
    ASSERT_TRUE(server.ok());
    const auto run = run_loadgen(
        {"--port", server.port(), "--connections", "4", "--duration", "1500ms", "--timeout", "1s"}, 10s);
    ASSERT_TRUE(run.result.is_object()) << run.stderr_text;
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_LE(count(run.result, {"totals", "requests"}), 200u);
    EXPECT_GT(count(run.result, {"totals", "requests"}), 0u);
    EXPECT_GT(errors_of(run.result, "connect"), 0u) << run.result["totals"].dump();
    EXPECT_GT(count(run.result, {"errors_by_errno", "ECONNREFUSED"}), 0u);
    EXPECT_EQ(server.process().wait_exit(1000ms), 0);  // it did die
}

// Warmup is excluded: a server that answers 50 requests and dies, all within a 1 s warmup, leaves
// no request in the results, only the errors of the measured window.
TEST(LoadgenFaults, WarmupRequestsAreNotCounted) {
    MisbehavingServer server("die", {"--after", "50"});
    ASSERT_TRUE(server.ok());
    const auto run = run_loadgen({"--port", server.port(), "--connections", "2", "--warmup", "1s",
                                  "--duration", "500ms", "--timeout", "1s"},
                                 10s);
    ASSERT_TRUE(run.result.is_object()) << run.stderr_text;
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_EQ(count(run.result, {"totals", "requests"}), 0u);
    EXPECT_EQ(count(run.result, {"latency_us", "count"}), 0u);
    EXPECT_GT(errors_of(run.result, "connect"), 0u);
    EXPECT_DOUBLE_EQ(run.result["config"]["warmup_s"].get<double>(), 1.0);
}

// Open loop against a server that stalls 1 s: latency counted from the intended send time shows
// the stall in its p99 (arrivals in the first 100 ms of the stall alone are 3% of a 3 s run at
// 1000/s), the uncorrected latency does not (only the 10 requests in flight when it began, 0.3%,
// waited the whole second). A closed-loop tool would report the uncorrected view only.
TEST(LoadgenOpenLoop, ServerStallShowsInCorrectedP99Only) {
    MisbehavingServer server("stall", {"--after", "500", "--stall-ms", "1000"});
    ASSERT_TRUE(server.ok());
    const auto run = run_loadgen({"--port", server.port(), "--rate", "1000", "--connections", "10",
                                  "--duration", "3s", "--timeout", "5s"},
                                 20s);
    ASSERT_TRUE(run.result.is_object()) << run.stderr_text;
    const auto& r = run.result;
    EXPECT_EQ(total_errors(r), 0u) << r["totals"].dump();
    EXPECT_GE(r["latency_us"]["p99"].get<double>(), 900'000.0) << r["latency_us"].dump();
    ASSERT_TRUE(r.contains("latency_uncorrected_us"));
    EXPECT_LT(r["latency_uncorrected_us"]["p99"].get<double>(), 900'000.0);
    EXPECT_GE(r["latency_uncorrected_us"]["max"].get<double>(), 900'000.0);  // the stalled ones
    EXPECT_GT(count(r, {"open_loop", "late_sends"}), 0u);  // arrivals queued behind the stall
}

// ------------------------------------------------------------- the project's own server

class LoadgenVsEpoll : public testing::Test {
protected:
    void start(std::vector<std::string> server_args = {}) {
        server_.emplace("epoll", std::move(server_args));
        ASSERT_TRUE(server_->ok()) << server_->error();
    }
    std::string port() const { return std::to_string(server_->port()); }
    // A clean run: exit 0, zero errors of every kind, every connection established.
    static void expect_clean(const LoadgenRun& run) {
        ASSERT_TRUE(run.result.is_object()) << run.stderr_text;
        EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
        EXPECT_EQ(total_errors(run.result), 0u) << run.result["totals"].dump();
        EXPECT_EQ(count(run.result, {"connections", "established"}),
                  count(run.result, {"connections", "requested"}));
        EXPECT_GT(count(run.result, {"totals", "requests"}), 0u);
        EXPECT_EQ(count(run.result, {"latency_us", "count"}), count(run.result, {"totals", "requests"}));
    }
    std::optional<sbtest::ServerProcess> server_;
};

TEST_F(LoadgenVsEpoll, HttpKeepAliveIsClean) {
    start();
    const auto run = run_loadgen({"--port", port(), "--connections", "8", "--duration", "1s", "--server-pid",
                                  std::to_string(server_->pid())});
    expect_clean(run);
    EXPECT_GT(run.result["server"]["cpu_us_per_request"].get<double>(), 0.0);
    EXPECT_EQ(run.result["pipelined"], false);
}

TEST_F(LoadgenVsEpoll, HttpCloseModeIsClean) {
    start();
    const auto run =
        run_loadgen({"--port", port(), "--connections", "4", "--mode", "close", "--duration", "1s"});
    expect_clean(run);
    EXPECT_GE(count(run.result, {"connect_us", "count"}), count(run.result, {"totals", "requests"}));
}

TEST_F(LoadgenVsEpoll, EchoIsCleanAndComparesEveryByte) {
    start({"--protocol", "echo"});
    // 5000 bytes: each echo spans several reads, so the comparison resumes mid-message.
    const auto run = run_loadgen({"--port", port(), "--protocol", "echo", "--message-bytes", "5000",
                                  "--connections", "4", "--duration", "1s"});
    expect_clean(run);
    EXPECT_EQ(run.result["config"]["message_bytes"], 5000);
}

TEST_F(LoadgenVsEpoll, PipelinedRunIsCleanAndTagged) {
    start();
    const auto run =
        run_loadgen({"--port", port(), "--connections", "4", "--pipeline", "8", "--duration", "1s"});
    expect_clean(run);
    EXPECT_EQ(run.result["pipelined"], true);
    EXPECT_EQ(run.result["config"]["pipeline"], 8);
}

TEST_F(LoadgenVsEpoll, RequestCountIsExact) {
    start();
    for (const char* pipeline : {"1", "4"}) {
        const auto run = run_loadgen({"--port", port(), "--connections", "6", "--threads", "2", "--pipeline",
                                      pipeline, "--requests", "1001"});
        expect_clean(run);
        EXPECT_EQ(count(run.result, {"totals", "requests"}), 1001u) << "pipeline " << pipeline;
    }
}

TEST_F(LoadgenVsEpoll, OpenLoopAtAModestRateIsValid) {
    start();
    const auto run =
        run_loadgen({"--port", port(), "--rate", "500", "--connections", "4", "--duration", "1s"});
    expect_clean(run);
    EXPECT_EQ(run.result["valid"], true);
    EXPECT_TRUE(run.result.contains("latency_uncorrected_us"));
}

// A new connection per request at a set rate: every arrival is sent, on a connection of its own
// (the connections the start opened each carry one, then close like the rest).
TEST_F(LoadgenVsEpoll, OpenLoopInCloseModeSendsEveryArrival) {
    start();
    const auto run = run_loadgen(
        {"--port", port(), "--mode", "close", "--rate", "400", "--connections", "2", "--duration", "1s"});
    expect_clean(run);
    EXPECT_EQ(run.result["valid"], true);
    EXPECT_NEAR(static_cast<double>(count(run.result, {"totals", "requests"})), 400.0, 4.0);
}

TEST_F(LoadgenVsEpoll, CpusPinsAndIsRecorded) {
    start();
    const auto run =
        run_loadgen({"--port", port(), "--connections", "2", "--requests", "200", "--cpus", "0"});
    expect_clean(run);
    EXPECT_EQ(run.result["env"]["loadgen_cpus"], "0");
    EXPECT_EQ(run_loadgen({"--port", port(), "--requests", "10", "--cpus", "4095"}).exit_code, 2);
}

// --interval sets the timeseries entries' length; their counts add up to the totals, and merge
// keeps the entries' times (and refuses results of different lengths).
TEST_F(LoadgenVsEpoll, IntervalSetsTheTimeseriesLength) {
    start();
    const auto run =
        run_loadgen({"--port", port(), "--connections", "2", "--duration", "1s", "--interval", "200ms"});
    expect_clean(run);
    const json& r = run.result;
    EXPECT_DOUBLE_EQ(r["config"]["interval_ms"].get<double>(), 200.0);
    const json& series = r["timeseries"];
    ASSERT_EQ(series.size(), 5u) << series.dump();
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < series.size(); ++i) {
        EXPECT_NEAR(series[i]["t_s"].get<double>(), 0.2 * static_cast<double>(i + 1), 1e-9);
        for (const char* key : {"requests", "errors", "p50_us", "p99_us", "histogram"})
            EXPECT_TRUE(series[i].contains(key)) << key;
        sum += series[i]["requests"].get<std::uint64_t>();
    }
    EXPECT_EQ(sum, count(r, {"totals", "requests"}));

    const std::string dir = testing::TempDir(), a = dir + "lg_interval_a.json",
                      b = dir + "lg_interval_b.json";
    std::ofstream(a) << r.dump();
    json other = r;
    other["config"]["interval_ms"] = 1000;
    std::ofstream(b) << other.dump();
    auto same = sbtest::Process::spawn({kLoadgen, "merge", a, a, "--out", b + ".m"});
    ASSERT_TRUE(same);
    ASSERT_EQ(same->wait_exit(15s), 0) << same->drain_stderr();
    std::ifstream in(b + ".m");
    const json merged = json::parse(in);
    ASSERT_EQ(merged["timeseries"].size(), 5u);
    EXPECT_NEAR(merged["timeseries"][4]["t_s"].get<double>(), 1.0, 1e-9);
    EXPECT_EQ(merged["timeseries"][0]["requests"].get<std::uint64_t>(),
              2 * series[0]["requests"].get<std::uint64_t>());
    auto mixed = sbtest::Process::spawn({kLoadgen, "merge", a, b, "--out", b + ".m"});
    ASSERT_TRUE(mixed);
    EXPECT_EQ(mixed->wait_exit(15s), 2);
    for (const auto& f : {a, b, b + ".m"}) std::remove(f.c_str());
}

// --series-file: a line per interval of the window, in order, on both clocks; they add up to the
// totals of the result, which names the file instead of holding the entries.
TEST_F(LoadgenVsEpoll, SeriesFileHasALinePerIntervalAddingUpToTheTotals) {
    start();
    const std::string series = lgtest::temp_path("series") + ".jsonl";
    const auto run = run_loadgen({"--port", port(), "--connections", "4", "--threads", "2", "--duration", "3s",
                                  "--interval", "100ms", "--series-file", series});
    expect_clean(run);
    const json& r = run.result;
    EXPECT_EQ(r["timeseries_file"], series);
    EXPECT_EQ(r["timeseries_entries"], 30);
    EXPECT_EQ(r["timeseries"], json::array());  // the entries are in the file
    EXPECT_TRUE(r["timeseries_file_error"].is_null());
    const std::vector<json> lines = lgtest::read_json_lines(series);
    ASSERT_EQ(lines.size(), 30u);
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const json& line = lines[i];
        ASSERT_TRUE(line.is_object()) << i;
        EXPECT_NEAR(line["t_s"].get<double>(), 0.1 * static_cast<double>(i + 1), 1e-9) << i;
        if (i > 0) {
            EXPECT_GT(line["unix_s"].get<double>(), lines[i - 1]["unix_s"].get<double>()) << i;
        }
        for (const char* key : {"errors", "throughput_rps", "p50_us", "p90_us", "p99_us", "max_us", "histogram"})
            EXPECT_TRUE(line.contains(key)) << key;
        sum += line["requests"].get<std::uint64_t>();
    }
    EXPECT_EQ(sum, count(r, {"totals", "requests"}));
    EXPECT_NEAR(lines.back()["unix_s"].get<double>(), r["window"]["end_unix_s"].get<double>(), 0.01);
    std::remove(series.c_str());
}

// Two loadgen processes side by side, merged: counts and histograms are the sums of the parts.
TEST_F(LoadgenVsEpoll, MergeOfTwoProcessesSumsCounts) {
    start();
    const std::string dir = testing::TempDir(), a = dir + "lg_merge_a.json", b = dir + "lg_merge_b.json",
                      m = dir + "lg_merge_m.json";
    std::vector<std::optional<sbtest::Process>> runs;
    for (const auto& out : {a, b})
        runs.push_back(sbtest::Process::spawn(
            {kLoadgen, "--port", port(), "--connections", "3", "--duration", "1s", "--quiet", "--out", out}));
    for (auto& p : runs) {
        ASSERT_TRUE(p);
        ASSERT_EQ(p->wait_exit(15s), 0) << p->drain_stderr();
    }
    auto merge = sbtest::Process::spawn({kLoadgen, "merge", a, b, "--out", m});
    ASSERT_TRUE(merge);
    ASSERT_EQ(merge->wait_exit(15s), 0) << merge->drain_stderr();
    std::ifstream ia(a), ib(b), im(m);
    const json ja = json::parse(ia), jb = json::parse(ib), jm = json::parse(im);
    const std::pair<const char*, const char*> summed[] = {
        {"totals", "requests"},  {"totals", "bytes_sent"},     {"totals", "bytes_received"},
        {"latency_us", "count"}, {"connections", "requested"}, {"connections", "established"}};
    for (const auto& [section, key] : summed)
        EXPECT_EQ(count(jm, {section, key}), count(ja, {section, key}) + count(jb, {section, key}))
            << section << "." << key;
    EXPECT_EQ(total_errors(jm), total_errors(ja) + total_errors(jb));
    EXPECT_GT(count(jm, {"totals", "requests"}), 0u);
    EXPECT_EQ(jm["merged_from"], 2);
}

// ------------------------------------------------------------------------ usage

// One line on stderr, exit 2, no JSON: the contract every binary of the suite keeps.
TEST(LoadgenUsage, BadUsageExits2WithOneLine) {
    const std::vector<std::vector<std::string>> cases = {
        {"--port", "80", "--connections", "x"},
        {"--connections", "1"},  // no --port
        {"--port", "80", "--mode", "close", "--pipeline", "2"},
        {"--port", "80", "--no-such-flag"},
        {"--port", "80", "--duration"}};
    for (const auto& args : cases) {
        const auto run = run_loadgen(args);
        EXPECT_EQ(run.exit_code, 2) << testing::PrintToString(args);
        EXPECT_FALSE(run.result.is_object());
        EXPECT_EQ(std::count(run.stderr_text.begin(), run.stderr_text.end(), '\n'), 1) << run.stderr_text;
        EXPECT_EQ(run.stderr_text.rfind("loadgen: ", 0), 0u) << run.stderr_text;
    }
}

// A --series-file that cannot be written (a directory, a missing directory) is refused before any
// load, like any bad value.
TEST(LoadgenUsage, UnwritableSeriesFileExits2WithOneLine) {
    for (const std::string& path : {testing::TempDir(), std::string("/nonexistent-dir/series.jsonl")}) {
        const auto run = run_loadgen({"--port", "1", "--duration", "1s", "--series-file", path});
        EXPECT_EQ(run.exit_code, 2) << path;
        EXPECT_FALSE(run.result.is_object());
        EXPECT_EQ(std::count(run.stderr_text.begin(), run.stderr_text.end(), '\n'), 1) << run.stderr_text;
        EXPECT_NE(run.stderr_text.find("invalid value for --series-file"), std::string::npos) << run.stderr_text;
    }
}

TEST(LoadgenUsage, HelpExits0OnStdout) {
    for (const char* flag : {"--help", "-h"}) {
        auto process = sbtest::Process::spawn({kLoadgen, flag});
        ASSERT_TRUE(process);
        const auto first = process->read_stdout_line(5000ms);
        ASSERT_TRUE(first);
        EXPECT_NE(first->find("loadgen"), std::string::npos) << *first;
        EXPECT_EQ(process->wait_exit(5000ms), 0);
        EXPECT_EQ(process->drain_stderr(), "");
    }
}

}  // namespace
