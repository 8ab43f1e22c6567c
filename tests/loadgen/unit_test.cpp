// Pure parts of the load generator: histogram, HTTP response parser, rate scheduler, command line.
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "loadgen/http_response_parser.hpp"
#include "loadgen/latency_histogram.hpp"
#include "loadgen/options.hpp"
#include "loadgen/rate_scheduler.hpp"
#include "loadgen/result_json.hpp"

namespace loadgen {

TEST(LatencyHistogram, RelativeErrorBoundFrom1usTo60s) {
    for (std::uint64_t v = 1000; v <= 60'000'000'000ull; v = v + v / 97 + 1) {
        const auto b = LatencyHistogram::bucket_of(v);
        EXPECT_LE(LatencyHistogram::lowest_in(b), v);
        EXPECT_GE(LatencyHistogram::highest_in(b), v);
        const double err =
            static_cast<double>(LatencyHistogram::highest_in(b) - LatencyHistogram::lowest_in(b)) /
            static_cast<double>(v);
        EXPECT_LE(err, 0.01) << v;
    }
}

TEST(LatencyHistogram, MergeEqualsRecordingIntoOne) {
    std::mt19937_64 rng(1);
    LatencyHistogram a, b, all;
    for (int i = 0; i < 100000; ++i) {
        const std::uint64_t v = rng() % 50'000'000'000ull;
        (i % 2 ? a : b).record(v);
        all.record(v);
    }
    a.merge(b);
    for (std::size_t i = 0; i < LatencyHistogram::kBucketCount; ++i)
        ASSERT_EQ(a.count_in(i), all.count_in(i));
    EXPECT_EQ(a.count(), all.count());
    EXPECT_EQ(a.sum(), all.sum());
    EXPECT_EQ(a.percentile(99), all.percentile(99));
}

TEST(LatencyHistogram, PercentilesMatchSortedArray) {
    std::mt19937_64 rng(2);
    std::lognormal_distribution<double> dist(11, 1.5);
    std::vector<std::uint64_t> values;
    LatencyHistogram h;
    for (int i = 0; i < 200000; ++i) {
        const auto v = static_cast<std::uint64_t>(dist(rng)) + 1000;
        values.push_back(v);
        h.record(v);
    }
    std::sort(values.begin(), values.end());
    for (double p : {50.0, 90.0, 99.0, 99.9, 100.0}) {
        auto rank = static_cast<std::size_t>(std::ceil(p / 100 * static_cast<double>(values.size())));
        const double exact = static_cast<double>(values[std::max<std::size_t>(rank, 1) - 1]);
        EXPECT_NEAR(static_cast<double>(h.percentile(p)), exact, exact * 0.01) << p;
    }
    EXPECT_EQ(h.max(), values.back());
    EXPECT_EQ(h.min(), values.front());
}

TEST(LatencyHistogram, JsonRoundTripIsExact) {
    LatencyHistogram h;
    for (std::uint64_t v = 1; v < 10'000'000'000ull; v = v * 3 + 7) h.record(v);
    const auto back = histogram_from_json(histogram_to_json(h));
    for (std::size_t i = 0; i < LatencyHistogram::kBucketCount; ++i)
        ASSERT_EQ(back.count_in(i), h.count_in(i));
    EXPECT_EQ(back.sum(), h.sum());
}

namespace {
int parse_all_split(const std::string& input, std::size_t split, std::vector<int>& statuses) {
    HttpResponseParser p;
    std::string pieces[2] = {input.substr(0, split), input.substr(split)};
    for (auto& piece : pieces) {
        const char* d = piece.data();
        std::size_t n = piece.size();
        while (n > 0) {
            auto r = p.parse(d, n);
            d += r.consumed;
            n -= r.consumed;
            if (r.status == HttpResponseParser::Status::error) return -1;
            if (r.status == HttpResponseParser::Status::complete)
                statuses.push_back(p.status_code());
            else
                break;
        }
    }
    return static_cast<int>(statuses.size());
}
}  // namespace

TEST(HttpResponseParser, EveryByteBoundaryPipelinedAndChunked) {
    const std::string input =
        "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!"
        "HTTP/1.1 100 Continue\r\n\r\n"
        "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nHello\r\n3\r\nabc\r\n0\r\nT: "
        "1\r\n\r\n"
        "HTTP/1.1 204 No Content\r\n\r\n"
        "HTTP/1.0 404 Not Found\r\ncontent-length: 0\r\n\r\n";
    for (std::size_t split = 0; split <= input.size(); ++split) {
        std::vector<int> statuses;
        ASSERT_EQ(parse_all_split(input, split, statuses), 4) << split;
        EXPECT_EQ(statuses, (std::vector<int>{200, 201, 204, 404}));
    }
}

TEST(HttpResponseParser, BadInputIsAnError) {
    for (const std::string bad :
         {"garbage\r\n", "HTTP/1.1 2x0 OK\r\n", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "HTTP/1.1 200 OK\r\nno colon\r\n"}) {
        std::vector<int> s;
        EXPECT_EQ(parse_all_split(bad, 0, s), -1) << bad;
    }
    HttpResponseParser p;
    const std::string truncated = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc";
    EXPECT_EQ(p.parse(truncated.data(), truncated.size()).status, HttpResponseParser::Status::need_more);
    EXPECT_EQ(p.finish_on_eof(), HttpResponseParser::Status::error);
    HttpResponseParser q;
    const std::string until_close = "HTTP/1.0 200 OK\r\n\r\nbody";
    q.parse(until_close.data(), until_close.size());
    EXPECT_EQ(q.finish_on_eof(), HttpResponseParser::Status::complete);
}

// Bytes that cannot start a status line fail at once, without waiting for a line feed that a
// garbage-sending server may never send (the load generator would otherwise see a timeout).
TEST(HttpResponseParser, GarbageWithoutLineFeedFailsAtOnce) {
    for (const std::string& bad : {std::string("\x01\x02junk"), std::string("X"), std::string("HTTP/2"),
                                   std::string("HTTQ"), std::string("\r\n")}) {
        HttpResponseParser p;
        EXPECT_EQ(p.parse(bad.data(), bad.size()).status, HttpResponseParser::Status::error) << bad;
    }
    // A valid prefix split anywhere still waits for more.
    const std::string prefix = "HTTP/1.1 20";
    for (std::size_t split = 0; split <= prefix.size(); ++split) {
        HttpResponseParser p;
        EXPECT_EQ(p.parse(prefix.data(), split).status, HttpResponseParser::Status::need_more);
        EXPECT_EQ(p.parse(prefix.data() + split, prefix.size() - split).status,
                  HttpResponseParser::Status::need_more);
    }
}

TEST(RateScheduler, ArrivalsEvenlySpacedAndBacklogCounted) {
    RateScheduler s(1000.0, 1'000'000'000);
    EXPECT_EQ(s.due_count(999'999'999), 0u);
    EXPECT_EQ(s.due_count(1'000'000'000), 1u);
    EXPECT_EQ(s.due_count(1'010'000'000), 11u);
    EXPECT_EQ(s.due_time(5), 1'005'000'000u);
    EXPECT_EQ(s.backlog(1'010'000'000), 11u);
    EXPECT_EQ(s.take(), 1'000'000'000u);
    EXPECT_EQ(s.backlog(1'010'000'000), 10u);
    EXPECT_EQ(s.next_due(), 1'001'000'000u);
}

// ---------------------------------------------------------------------------- result JSON

namespace {

// A result of `requests` responses over 1 s, its window at [start_ns, start_ns + 1 s].
nlohmann::json small_result(const Options& o, std::uint64_t requests, std::uint64_t start_ns,
                            std::optional<WindowRecord::CounterControl> control = std::nullopt) {
    RunStats stats;
    stats.requests = requests;
    stats.established = static_cast<std::uint64_t>(o.connections);
    stats.intervals.resize(2);
    for (std::uint64_t i = 0; i < requests; ++i) {
        stats.latency.record(1000 + i);
        stats.intervals[i % 2].requests += 1;
        stats.intervals[i % 2].latency.record(1000 + i);
    }
    RunContext ctx;
    ctx.options = &o;
    ctx.measured_s = 1;
    ctx.window.start_ns = start_ns;
    ctx.window.end_ns = start_ns + 1'000'000'000;
    ctx.window.start_unix_s = static_cast<double>(start_ns) / 1e9;
    ctx.window.end_unix_s = ctx.window.start_unix_s + 1;
    ctx.window.control = control;
    return make_result(ctx, stats);
}

}  // namespace

TEST(ResultJson, IntervalsAndWindowAreRecorded) {
    Options o;
    o.interval_s = 0.5;
    const auto r = small_result(o, 10, 5'000'000'000);
    EXPECT_DOUBLE_EQ(r["config"]["interval_ms"].get<double>(), 500.0);
    ASSERT_EQ(r["timeseries"].size(), 2u);
    EXPECT_DOUBLE_EQ(r["timeseries"][0]["t_s"].get<double>(), 0.5);
    EXPECT_EQ(r["timeseries"][1]["t_s"], 1);  // a whole number of seconds stays an integer
    EXPECT_EQ(r["window"]["start_monotonic_ns"], 5'000'000'000u);
    EXPECT_DOUBLE_EQ(r["window"]["length_s"].get<double>(), 1.0);
    EXPECT_TRUE(r["window"]["counter_control"].is_null());
    EXPECT_EQ(r["config"]["transport"], "tcp");
    EXPECT_EQ(exit_code_of(r), 0);
}

TEST(ResultJson, UnacknowledgedCounterControlFailsTheRun) {
    Options o;
    WindowRecord::CounterControl control;
    control.fifo = "ctl";
    control.enable_ack_us = 12.5;
    EXPECT_EQ(exit_code_of(small_result(o, 10, 0, control)), 0);
    control.error = "no ack for 'disable' within 2 s";
    const auto r = small_result(o, 10, 0, control);
    EXPECT_EQ(r["window"]["counter_control"]["ok"], false);
    EXPECT_EQ(r["window"]["counter_control"]["enable_ack_us"], 12.5);
    EXPECT_TRUE(r["window"]["counter_control"]["disable_ack_us"].is_null());
    EXPECT_EQ(exit_code_of(r), 1);
}

TEST(ResultJson, MergeSpansWindowsAndRefusesMixedIntervals) {
    Options o;
    o.interval_s = 0.5;
    const auto a = small_result(o, 10, 1'000'000'000), b = small_result(o, 6, 1'200'000'000);
    const auto m = merge_results({a, b});
    EXPECT_EQ(m["totals"]["requests"], 16u);
    EXPECT_EQ(m["window"]["start_monotonic_ns"], 1'000'000'000u);
    EXPECT_EQ(m["window"]["end_monotonic_ns"], 2'200'000'000u);
    EXPECT_NEAR(m["window"]["length_s"].get<double>(), 1.2, 1e-9);
    ASSERT_EQ(m["timeseries"].size(), 2u);
    EXPECT_EQ(m["timeseries"][0]["requests"], 8u);
    Options other;
    EXPECT_THROW(merge_results({a, small_result(other, 4, 0)}), std::runtime_error);
}

// --series-file: the entries are in the file; the result says where and how many, keeps an empty
// "timeseries" for its readers, and a failed write fails the run. Merged results list the files.
TEST(ResultJson, SeriesFileReplacesTheTimeseries) {
    Options o;
    o.interval_s = 0.5;
    const auto plain = small_result(o, 10, 0);
    EXPECT_FALSE(plain.contains("timeseries_file"));
    const auto with_series = [&o](const char* path, std::string error) {
        RunStats stats;
        stats.established = static_cast<std::uint64_t>(o.connections);
        RunContext ctx;
        ctx.options = &o;
        ctx.measured_s = 1;
        ctx.series = SeriesRecord{path, 2, 1, std::move(error)};
        return make_result(ctx, stats);
    };
    const auto a = with_series("a.jsonl", ""), b = with_series("b.jsonl", "");
    EXPECT_EQ(a["timeseries"], nlohmann::json::array());
    EXPECT_EQ(a["timeseries_file"], "a.jsonl");
    EXPECT_EQ(a["timeseries_entries"], 2u);
    EXPECT_EQ(a["timeseries_late_entries"], 1u);
    EXPECT_TRUE(a["timeseries_file_error"].is_null());
    EXPECT_EQ(exit_code_of(a), 0);
    EXPECT_EQ(exit_code_of(with_series("c.jsonl", "cannot write 'c.jsonl': No space left on device")), 1);

    const auto m = merge_results({a, b});
    EXPECT_FALSE(m.contains("timeseries_file"));
    ASSERT_EQ(m["timeseries_files"].size(), 2u);
    EXPECT_EQ(m["timeseries_files"][1]["file"], "b.jsonl");
    EXPECT_EQ(m["timeseries_files"][1]["entries"], 2u);
    EXPECT_EQ(m["timeseries_late_entries"], 2u);
    EXPECT_EQ(m["timeseries"], nlohmann::json::array());
    EXPECT_THROW(merge_results({a, plain}), std::runtime_error);  // nothing to line them up with
}

// ------------------------------------------------------------------------- command line

namespace {

CommandLine parse(std::vector<std::string> args) {
    return parse_command_line(args);
}

// The message of the UsageError that `args` raises ("" if none).
std::string usage_error(std::vector<std::string> args) {
    try {
        parse_command_line(args);
    } catch (const UsageError& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST(CommandLine, DefaultsAndEveryFlag) {
    const Options d = parse({"--port", "8080"}).run;
    EXPECT_EQ(d.host, "127.0.0.1");
    EXPECT_EQ(d.connections, 10);
    EXPECT_DOUBLE_EQ(d.duration_s, 10.0);
    EXPECT_DOUBLE_EQ(d.timeout_s, 5.0);
    EXPECT_EQ(d.message_bytes, 64u);
    EXPECT_FALSE(d.server_flags.has_value());
    const CommandLine cl = parse({"--host",
                                  "localhost",
                                  "--port",
                                  "9",
                                  "--protocol",
                                  "echo",
                                  "--path",
                                  "/x",
                                  "--header",
                                  "A: 1",
                                  "--header",
                                  "B: 2",
                                  "--connections",
                                  "8",
                                  "--threads",
                                  "2",
                                  "--duration",
                                  "250ms",
                                  "--warmup",
                                  "2s",
                                  "--rate",
                                  "1e3",
                                  "--mode",
                                  "keep-alive",
                                  "--pipeline",
                                  "4",
                                  "--message-bytes",
                                  "5",
                                  "--timeout",
                                  "1.5",
                                  "--cpus",
                                  "0-1",
                                  "--server-pid",
                                  "42",
                                  "--out",
                                  "r.json",
                                  "--series-file",
                                  "s.jsonl",
                                  "--model",
                                  "epoll",
                                  "--scenario",
                                  "s",
                                  "--server-flags",
                                  "--workers 1",
                                  "-q"});
    ASSERT_EQ(cl.action, CommandLine::Action::run);
    const Options& o = cl.run;
    EXPECT_EQ(o.host, "localhost");
    EXPECT_EQ(o.port, 9);
    EXPECT_EQ(o.protocol, Protocol::echo);
    EXPECT_EQ(o.path, "/x");
    EXPECT_EQ(o.headers, (std::vector<std::string>{"A: 1", "B: 2"}));
    EXPECT_EQ(o.connections, 8);
    EXPECT_EQ(o.threads, 2);
    EXPECT_DOUBLE_EQ(o.duration_s, 0.25);
    EXPECT_DOUBLE_EQ(o.warmup_s, 2.0);
    EXPECT_DOUBLE_EQ(o.rate, 1000.0);
    EXPECT_EQ(o.mode, ConnectionMode::keepalive);
    EXPECT_EQ(o.pipeline, 4);
    EXPECT_EQ(o.message_bytes, 5u);
    EXPECT_DOUBLE_EQ(o.timeout_s, 1.5);
    EXPECT_EQ(o.cpus, (std::vector<int>{0, 1}));
    EXPECT_EQ(o.server_pid, 42);
    EXPECT_EQ(o.out, "r.json");
    EXPECT_EQ(o.series_file, "s.jsonl");
    EXPECT_EQ(o.model, "epoll");
    EXPECT_EQ(o.scenario, "s");
    EXPECT_EQ(o.server_flags, "--workers 1");  // a value that looks like a flag is still a value
    EXPECT_TRUE(o.quiet);
}

TEST(CommandLine, EqualsFormRepeatedFlagAndThreadClamp) {
    const Options o = parse({"--port=80", "--connections", "3", "--connections", "2", "--threads", "8"}).run;
    EXPECT_EQ(o.port, 80);
    EXPECT_EQ(o.connections, 2);  // the last value wins
    EXPECT_EQ(o.threads, 2);      // no more threads than connections
    EXPECT_EQ(parse({"--port", "1", "--server-flags", ""}).run.server_flags, "");
    EXPECT_EQ(parse({"--port", "1", "--model", "merge"}).run.model, "merge");  // a value, not the subcommand
}

TEST(CommandLine, BadUsageIsOneLineNamingTheFlag) {
    const std::pair<std::vector<std::string>, std::string> cases[] = {
        {{"--port", "x"}, "--port"},
        {{"--port", "0"}, "--port"},
        {{"--port", "65536"}, "--port"},
        {{"--port"}, "--port"},
        {{"--connections", "1"}, "--port"},
        {{"--port", "1", "--connections", "0"}, "--connections"},
        {{"--port", "1", "--duration", "0"}, "--duration"},
        {{"--port", "1", "--duration", "2x"}, "'2x'"},
        {{"--port", "1", "--warmup", "-1s"}, "--warmup"},
        {{"--port", "1", "--rate", "-5"}, "--rate"},
        {{"--port", "1", "--rate", "inf"}, "--rate"},
        {{"--port", "1", "--protocol", "ftp"}, "--protocol"},
        {{"--port", "1", "--mode", "open"}, "--mode"},
        {{"--port", "1", "--path", "x"}, "--path"},
        {{"--port", "1", "--header", "NoColon"}, "--header"},
        {{"--port", "1", "--cpus", "3-1"}, "--cpus"},
        {{"--port", "1", "--host", ""}, "--host"},
        {{"--port", "1", "--mode", "close", "--pipeline", "2"}, "--pipeline"},
        {{"--port", "1", "--bogus"}, "--bogus"},
        {{"--port", "1", "stray"}, "stray"},
        {{"--port", "1", "merge", "a.json"}, "--port"},
    };
    for (const auto& [args, names] : cases) {
        const std::string message = usage_error(args);
        EXPECT_NE(message.find(names), std::string::npos)
            << testing::PrintToString(args) << " -> " << message;
        EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
}

TEST(CommandLine, HelpWinsAndMergeIsASubcommand) {
    for (const auto& args :
         std::vector<std::vector<std::string>>{{"--help"}, {"-h"}, {"--port", "x", "--help"}}) {
        const CommandLine cl = parse(args);
        EXPECT_EQ(cl.action, CommandLine::Action::help);
        EXPECT_NE(cl.help_text.find("--connections"), std::string::npos);
    }
    const CommandLine merge = parse({"merge", "a.json", "b.json", "--out", "m.json"});
    ASSERT_EQ(merge.action, CommandLine::Action::merge);
    EXPECT_EQ(merge.merge.inputs, (std::vector<std::string>{"a.json", "b.json"}));
    EXPECT_EQ(merge.merge.out, "m.json");
    const CommandLine merge_help = parse({"merge", "--help"});
    EXPECT_EQ(merge_help.action, CommandLine::Action::help);
    EXPECT_NE(merge_help.help_text.find("files"), std::string::npos);
}

TEST(CommandLine, SampleServerIsASubcommandWithARequiredPid) {
    const CommandLine cl = parse({"sample-server", "--pid", "42"});
    ASSERT_EQ(cl.action, CommandLine::Action::sample_server);
    EXPECT_EQ(cl.sample_server.pid, 42);
    EXPECT_EQ(parse({"sample-server", "--pid=7"}).sample_server.pid, 7);
    const CommandLine help = parse({"sample-server", "--pid", "x", "--help"});  // help wins here too
    EXPECT_EQ(help.action, CommandLine::Action::help);
    EXPECT_NE(help.help_text.find("--pid"), std::string::npos);
    EXPECT_NE(parse({"--help"}).help_text.find("sample-server"), std::string::npos);
    const std::pair<std::vector<std::string>, std::string> cases[] = {
        {{"sample-server"}, "missing required flag --pid"},
        {{"sample-server", "--pid", "x"}, "--pid"},
        {{"sample-server", "--pid", "0"}, "--pid"},
        {{"sample-server", "--pid", "1", "--connections", "5"}, "--connections is a flag of the run form"},
        {{"--port", "1", "sample-server", "--pid", "1"}, "--port is a flag of the run form"},
        {{"merge", "a.json", "--connections", "5"}, "--connections is a flag of the run form"},
        {{"sample-server", "--pid", "1", "merge"}, "merge"},  // one subcommand per call
        {{"sample-server", "--pid", "1", "--bogus"}, "--bogus"},
    };
    for (const auto& [args, names] : cases) {
        const std::string message = usage_error(args);
        EXPECT_NE(message.find(names), std::string::npos)
            << testing::PrintToString(args) << " -> " << message;
        EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    }
}

TEST(CommandLine, IntervalFrom100msUpToTheDuration) {
    EXPECT_DOUBLE_EQ(parse({"--port", "1"}).run.interval_s, 1.0);
    EXPECT_DOUBLE_EQ(parse({"--port", "1", "--interval", "100ms"}).run.interval_s, 0.1);
    EXPECT_DOUBLE_EQ(parse({"--port", "1", "--duration", "2s", "--interval", "2s"}).run.interval_s, 2.0);
    EXPECT_DOUBLE_EQ(parse({"--port", "1", "--requests", "5", "--interval", "30s"}).run.interval_s, 30.0);
    EXPECT_NE(usage_error({"--port", "1", "--interval", "99ms"}).find("--interval"), std::string::npos);
    EXPECT_NE(usage_error({"--port", "1", "--interval", "0"}).find("--interval"), std::string::npos);
    EXPECT_NE(usage_error({"--port", "1", "--duration", "1s", "--interval", "1001ms"}).find("'1001ms'"),
              std::string::npos);
    EXPECT_NE(usage_error({"--port", "1", "--interval", "11s"}).find("--duration"),
              std::string::npos);  // 10s default
    // The default is not checked against a shorter duration.
    EXPECT_DOUBLE_EQ(parse({"--port", "1", "--duration", "500ms"}).run.interval_s, 1.0);
    EXPECT_EQ(usage_error({"--port", "1", "--duration", "1000s", "--interval", "100ms"}), "");
    EXPECT_NE(usage_error({"--port", "1", "--duration", "1001s", "--interval", "100ms"}).find("--interval"),
              std::string::npos);
    EXPECT_NE(usage_error({"--port", "1", "--duration", "200m"}).find("--interval"), std::string::npos);
}

// Written out as the run goes, the entries are not bounded: the usage error names the way out.
TEST(CommandLine, SeriesFileLiftsTheBoundOnEntries) {
    EXPECT_EQ(parse({"--port", "1"}).run.series_file, "");
    const Options o =
        parse({"--port", "1", "--duration", "1440m", "--interval", "100ms", "--series-file", "s.jsonl"}).run;
    EXPECT_EQ(o.series_file, "s.jsonl");
    EXPECT_DOUBLE_EQ(o.duration_s, 86400.0);
    EXPECT_NE(usage_error({"--port", "1", "--duration", "1001s", "--interval", "100ms"}).find("--series-file"),
              std::string::npos);
    EXPECT_NE(usage_error({"--port", "1", "--series-file", ""}).find("--series-file"), std::string::npos);
}

TEST(CommandLine, UnixSocketAndNoDelay) {
    const Options u = parse({"--unix", "/tmp/s.sock"}).run;  // no --port needed
    EXPECT_EQ(u.unix_path, "/tmp/s.sock");
    EXPECT_TRUE(u.tcp_nodelay);
    EXPECT_FALSE(parse({"--port", "1", "--tcp-nodelay", "off"}).run.tcp_nodelay);
    EXPECT_TRUE(parse({"--port", "1", "--tcp-nodelay", "on"}).run.tcp_nodelay);
    EXPECT_NE(usage_error({"--tcp-nodelay", "on"}).find("--port"), std::string::npos);
    EXPECT_NE(usage_error({"--port", "1", "--tcp-nodelay", "1"}).find("--tcp-nodelay"), std::string::npos);
    EXPECT_NE(usage_error({"--unix", std::string(108, 'x')}).find("--unix"), std::string::npos);
    EXPECT_EQ(usage_error({"--unix", std::string(107, 'x')}), "");
}

TEST(CommandLine, CoordinationFlags) {
    const Options none = parse({"--port", "1"}).run;
    EXPECT_FALSE(none.start_on_stdin);
    EXPECT_EQ(none.window_fifo, "");
    const Options o = parse({"--port", "1", "--start-on-stdin", "--window-fifo", "/t/ctl,/t/ack"}).run;
    EXPECT_TRUE(o.start_on_stdin);
    EXPECT_EQ(o.window_fifo, "/t/ctl");
    EXPECT_EQ(o.window_ack_fifo, "/t/ack");
    const Options no_ack = parse({"--port", "1", "--window-fifo", "/t/ctl"}).run;
    EXPECT_EQ(no_ack.window_fifo, "/t/ctl");
    EXPECT_EQ(no_ack.window_ack_fifo, "");
    for (const char* bad : {"", ",/t/ack", "/t/ctl,"})
        EXPECT_NE(usage_error({"--port", "1", "--window-fifo", bad}).find("--window-fifo"), std::string::npos)
            << bad;
}

TEST(CommandLine, Durations) {
    EXPECT_DOUBLE_EQ(parse_duration("--d", "10"), 10.0);
    EXPECT_DOUBLE_EQ(parse_duration("--d", "2s"), 2.0);
    EXPECT_DOUBLE_EQ(parse_duration("--d", "250ms"), 0.25);
    EXPECT_DOUBLE_EQ(parse_duration("--d", "1m"), 60.0);
    EXPECT_DOUBLE_EQ(parse_duration("--d", "500us"), 0.0005);
    for (const char* bad : {"", "s", "ms", "+1s", "-1", "1h", "1 s", "nan", "inf"})
        EXPECT_THROW(parse_duration("--d", bad), UsageError) << bad;
}

}  // namespace loadgen
