#include "loadgen/options.hpp"

#include <sys/un.h>

#include <CLI/CLI.hpp>

#include <charconv>
#include <cmath>
#include <functional>
#include <set>

// CLI11 reads the command line's grammar: which flags exist, that each takes one value (also a
// value that begins with "-", as in --server-flags "--workers 1", and the --flag=value form), that
// --header repeats, the `merge` (with its files) and `sample-server` subcommands, and the --help
// text, generated from the same declarations so that flags and help cannot drift apart.
//
// Kept by hand, and why:
// * Converting and checking each value (the functions below): every failure reads "invalid value
//   for --flag: 'text'", the one-line form the servers and the scripts share, where CLI11's own
//   messages differ from one type to the next. Durations (250ms, 2s) and CPU lists are not CLI11
//   types anyway.
// * The exit on a usage error: CLI11's App::exit prints its message plus a "Run with --help" line
//   and returns its own codes (105, 109, ...). The contract is one line on stderr and exit 2, so
//   parse errors become UsageError, which main prints and turns into 2.
// * --help acts as soon as it is read: CLI11 checks values before it looks at its own help flag,
//   so "--help" next to a bad value would otherwise be an error instead of the help.
// * Checks that involve several flags (--port required except by the subcommands and --unix,
//   --pipeline with --mode, --interval against --duration, --pid required by sample-server).

namespace loadgen {
namespace {

using Store = std::function<void(const std::string&)>;

// Shorter timeseries entries would hold too few requests at low rates for a p99, and the entries
// of a long run would outweigh its result.
constexpr double kMinIntervalS = 0.1;
// Each timeseries entry kept in memory holds a full histogram (about 35 KB) per thread, so the
// count is bounded: 10 000 entries are 1000 s at 100 ms, or 2.7 hours at 1 s. --series-file
// writes them out as the run goes instead, in constant memory, and lifts the bound.
constexpr double kMaxIntervals = 10'000;

constexpr std::size_t kUnixPathMax = sizeof(sockaddr_un::sun_path);  // with its terminating NUL
constexpr std::size_t kMinDatagramBytes = 16;       // loadgen's datagram header
constexpr std::size_t kMaxUdpPayloadBytes = 65507;  // 65535 less the IPv4 and UDP headers

[[noreturn]] void invalid(const std::string& flag, const std::string& value, const std::string& why = "") {
    throw UsageError("invalid value for " + flag + ": '" + value + "'" +
                     (why.empty() ? "" : " (" + why + ")"));
}

long long parse_integer(const std::string& flag, const std::string& text, long long lo, long long hi) {
    long long v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi) invalid(flag, text);
    return v;
}

double parse_number(const std::string& flag, const std::string& text) {
    try {
        std::size_t used = 0;
        const double v = std::stod(text, &used);
        if (used != text.size() || !std::isfinite(v) || v < 0) invalid(flag, text);
        return v;
    } catch (const std::logic_error&) {
        invalid(flag, text);
    }
}

bool strip_suffix(std::string& text, const std::string& suffix) {
    if (text.size() <= suffix.size() || text.compare(text.size() - suffix.size(), suffix.size(), suffix) != 0)
        return false;
    text.resize(text.size() - suffix.size());
    return true;
}

// The unit suffix of a duration, removed from `number`; the factor to seconds.
double strip_duration_unit(std::string& number) {
    if (strip_suffix(number, "ms")) return 1e-3;
    if (strip_suffix(number, "us")) return 1e-6;
    if (strip_suffix(number, "s")) return 1;
    if (strip_suffix(number, "m")) return 60;
    return 1;
}

// Adds `flag` taking one value that `store` checks and keeps. A repeated flag keeps its last
// value, as the hand-written parser did.
CLI::Option* add_value(CLI::App& app, const std::string& flag, const std::string& value_name,
                       const std::string& help, Store store) {
    return app.add_option_function<std::string>(flag, std::move(store), help)
        ->type_name(value_name)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
}

template <class T>
Store store_integer(const std::string& flag, T& field, long long lo, long long hi) {
    return [flag, &field, lo, hi](const std::string& text) {
        field = static_cast<T>(parse_integer(flag, text, lo, hi));
    };
}

// A duration > 0, or >= 0 when `zero_allowed`.
Store store_duration(const std::string& flag, double& field, bool zero_allowed) {
    return [flag, &field, zero_allowed](const std::string& text) {
        field = parse_duration(flag, text);
        if (field <= 0 && !zero_allowed) invalid(flag, text);
    };
}

Store store_text(std::string& field) {
    return [&field](const std::string& text) { field = text; };
}

bool parse_on_off(const std::string& flag, const std::string& v) {
    if (v == "on") return true;
    if (v == "off") return false;
    invalid(flag, v, "on or off");
}

void store_protocol(Options& o, const std::string& v) {
    if (v == "http")
        o.protocol = Protocol::http;
    else if (v == "echo")
        o.protocol = Protocol::echo;
    else
        invalid("--protocol", v);
}

void store_transport(Options& o, const std::string& v) {
    if (v == "tcp")
        o.transport = Transport::tcp;
    else if (v == "udp")
        o.transport = Transport::udp;
    else
        invalid("--transport", v, "tcp or udp");
}

void store_mode(Options& o, const std::string& v) {
    if (v == "keepalive" || v == "keep-alive")
        o.mode = ConnectionMode::keepalive;
    else if (v == "close")
        o.mode = ConnectionMode::close;
    else
        invalid("--mode", v);
}

void check_path(const std::string& v) {
    if (v.empty() || v[0] != '/' || v.find_first_of(" \r\n") != std::string::npos) invalid("--path", v);
}

void check_header(const std::string& v) {
    const auto colon = v.find(':');
    if (colon == 0 || colon == std::string::npos || v.find_first_of("\r\n") != std::string::npos)
        invalid("--header", v);
}

void add_target_flags(CLI::App& app, Options& o) {
    const std::string group = "target and requests";
    add_value(app, "--host", "ADDR", "server address (default 127.0.0.1)", [&o](const std::string& v) {
        if (v.empty()) invalid("--host", v);
        o.host = v;
    })->group(group);
    add_value(app, "--port", "N", "server port (required)", store_integer("--port", o.port, 1, 65535))
        ->group(group);
    add_value(app, "--transport", "tcp|udp",
              "udp: one datagram per request on --connections connected UDP flows, each reply matched, "
              "unanswered ones counted lost (default tcp)",
              [&o](const std::string& v) { store_transport(o, v); })
        ->group(group);
    add_value(app, "--udp-format", "native|sockperf",
              "a datagram's header: loadgen's own, or sockperf's, which `sockperf server` answers (default native)",
              [&o](const std::string& v) {
                  if (v != "native" && v != "sockperf") invalid("--udp-format", v, "native or sockperf");
                  o.sockperf_format = v == "sockperf";
              })
        ->group(group);
    add_value(app, "--unix", "PATH",
              "Unix domain socket (stream, or datagram with --transport udp) instead of --host/--port "
              "(TCP-only flags then unused)",
              [&o](const std::string& v) {
                  if (v.empty() || v.size() >= kUnixPathMax) invalid("--unix", v);
                  o.unix_path = v;
              })
        ->group(group);
    add_value(app, "--tcp-nodelay", "on|off", "TCP_NODELAY on loadgen's sockets (default on)",
              [&o](const std::string& v) { o.tcp_nodelay = parse_on_off("--tcp-nodelay", v); })
        ->group(group);
    add_value(app, "--protocol", "http|echo", "default http", [&o](const std::string& v) {
        store_protocol(o, v);
    })->group(group);
    add_value(app, "--path", "/P", "HTTP request path (default /)", [&o](const std::string& v) {
        check_path(v);
        o.path = v;
    })->group(group);
    app.add_option_function<std::vector<std::string>>(
           "--header",
           [&o](const std::vector<std::string>& values) {
               for (const auto& v : values) check_header(v);
               o.headers = values;
           },
           "extra HTTP request header (repeatable)")
        ->type_name("\"Name: v\"")
        ->expected(1)
        ->take_all()
        ->group(group);
    add_value(app, "--message-bytes", "B", "echo payload bytes per request, a datagram's size over udp (default 64)",
              store_integer("--message-bytes", o.message_bytes, 1, 16 << 20))
        ->group(group);
}

void add_load_flags(CLI::App& app, Options& o) {
    const std::string group = "load";
    add_value(app, "--connections", "N", "connections, spread over the threads (default 10)",
              store_integer("--connections", o.connections, 1, 1'000'000))
        ->group(group);
    add_value(app, "--threads", "T", "event-loop threads (default 1)",
              store_integer("--threads", o.threads, 1, 1024))
        ->group(group);
    add_value(app, "--duration", "D", "measured time (default 10s)",
              store_duration("--duration", o.duration_s, false))
        ->group(group);
    add_value(app, "--warmup", "D", "run this long first, excluded from the results (default 0)",
              store_duration("--warmup", o.warmup_s, true))
        ->group(group);
    add_value(app, "--interval", "D",
              "length of a timeseries entry, from 100ms up to the duration (default 1s)",
              [&o](const std::string& v) {
                  o.interval_s = parse_duration("--interval", v);
                  if (o.interval_s < kMinIntervalS) invalid("--interval", v, "at least 100ms");
              })
        ->group(group);
    add_value(app, "--requests", "N", "end after N responses in total instead of a duration",
              store_integer("--requests", o.requests, 1, 1'000'000'000'000LL))
        ->group(group);
    add_value(app, "--rate", "R", "open loop: R requests/s in total, latency from the intended send time",
              [&o](const std::string& v) {
                  o.rate = parse_number("--rate", v);
                  if (o.rate <= 0) invalid("--rate", v);
              })
        ->group(group);
    add_value(app, "--mode", "keepalive|close",
              "keep connections, or a fresh connection per request (default keepalive)",
              [&o](const std::string& v) { store_mode(o, v); })
        ->group(group);
    add_value(app, "--pipeline", "N", "requests in flight per connection (default 1)",
              store_integer("--pipeline", o.pipeline, 1, 1024))
        ->group(group);
    add_value(app, "--timeout", "D",
              "per-request (and connect) timeout; over udp the reply timeout, after which a request is lost "
              "(default 5s, over udp 200ms)",
              store_duration("--timeout", o.timeout_s, false))
        ->group(group);
    add_value(app, "--cpus", "LIST", "pin the threads: \"1\", \"0-1\", \"1,3\"", [&o](const std::string& v) {
        o.cpus = parse_cpu_list("--cpus", v);
        o.cpus_text = v;
    })->group(group);
}

void add_recording_flags(CLI::App& app, Options& o) {
    const std::string group = "recording";
    add_value(app, "--server-pid", "PID",
              "sample this process tree's CPU, RSS, threads, processes, context switches",
              store_integer("--server-pid", o.server_pid, 1, 1 << 30))
        ->group(group);
    add_value(app, "--out", "FILE", "result JSON here (default stdout)", store_text(o.out))->group(group);
    add_value(app, "--series-file", "PATH",
              "the timeseries as JSON lines here, one written as each --interval ends, in constant "
              "memory (no 10000-entry bound)",
              [&o](const std::string& v) {
                  if (v.empty()) invalid("--series-file", v);
                  o.series_file = v;
              })
        ->group(group);
    add_value(app, "--model", "NAME", "recorded into the JSON", store_text(o.model))->group(group);
    add_value(app, "--scenario", "NAME", "recorded into the JSON", store_text(o.scenario))->group(group);
    add_value(app, "--server-flags", "\"STRING\"", "recorded into the JSON, split into words",
              [&o](const std::string& v) { o.server_flags = v; })
        ->group(group);
    app.add_flag_callback(
           "-q,--quiet", [&o] { o.quiet = true; }, "no human summary on stderr")
        ->group(group);
}

void add_coordination_flags(CLI::App& app, Options& o) {
    const std::string group = "coordination (several load generators, external counters)";
    app.add_flag_callback(
           "--start-on-stdin", [&o] { o.start_on_stdin = true; },
           "connect, print \"connected N\", then start at a line \"go\" on stdin (EOF first: exit 3)")
        ->group(group);
    add_value(app, "--window-fifo", "PATH[,ACK]",
              "\"enable\"/\"disable\" to FIFO PATH as the window opens/closes, \"ack\" awaited on ACK (2 s): "
              "perf stat -D -1 --control fifo:PATH,ACK",
              [&o](const std::string& v) {
                  const auto comma = v.find(',');
                  o.window_fifo = v.substr(0, comma);
                  o.window_ack_fifo = comma == std::string::npos ? "" : v.substr(comma + 1);
                  if (o.window_fifo.empty() || (comma != std::string::npos && o.window_ack_fifo.empty()))
                      invalid("--window-fifo", v);
              })
        ->group(group);
}

// An option rather than CLI11's help flag, so that it acts the moment it is read (see the top).
void add_help_flag(CLI::App& app) {
    app.set_help_flag();
    app.add_flag_callback(
           "-h,--help", [] { throw CLI::CallForHelp(); }, "print this help and exit 0")
        ->trigger_on_parse();
}

CLI::App* add_merge_command(CLI::App& app, MergeOptions& m) {
    CLI::App* merge =
        app.add_subcommand("merge", "combine results of load generators that ran side by side, exactly");
    merge->set_help_flag("-h,--help", "print this help and exit 0");
    merge->fallthrough();  // a run-form flag after the files is named as one (reject_run_flags)
    merge->add_option("files", m.inputs, "result JSON files")->type_name("FILE");
    merge->add_option("--out", m.out, "merged JSON here (default stdout)")->type_name("FILE");
    return merge;
}

// The driver's view of a server on another host: the --server-pid rule, run where the server is.
CLI::App* add_sample_server_command(CLI::App& app, SampleServerOptions& s) {
    CLI::App* sample = app.add_subcommand(
        "sample-server", "a JSON line of PID's process tree (the --server-pid figures) per stdin line");
    add_help_flag(*sample);  // before --pid's check, as at the top level
    sample->fallthrough();   // a run-form flag after --pid is named as one (reject_run_flags)
    add_value(*sample, "--pid", "PID", "the server's pid (required)",
              store_integer("--pid", s.pid, 1, 1 << 30));
    sample->footer(R"(
Each line read, whatever it says, gets one JSON line on stdout, flushed:
{"pid","cpu_user_s","cpu_sys_s","rss_kib","threads","processes","ctx_switches_voluntary",
"ctx_switches_involuntary","cpus_allowed","cpus_allowed_count","monotonic_ns"} of PID and its
descendants (monotonic_ns: CLOCK_MONOTONIC as the sample began), or, once PID is gone,
{"pid","gone":true,"monotonic_ns"}.
exit codes: 0 at EOF on stdin; 2 bad usage; 1 (or SIGPIPE) when stdout's reader is gone.)");
    return sample;
}

constexpr const char* kFooter = R"(
D is a duration: 10, 10s, 500ms, 2.5s, 1m, 250us.
loadgen merge a.json b.json ... [--out FILE]: combine results exactly (loadgen merge --help).
loadgen sample-server --pid PID: a JSON line of PID's process tree per stdin line (--help).
exit codes: 0 no errors and every connection established; 1 errors, a shortfall, an invalid open
loop or a --window-fifo line not acknowledged (JSON still written); 2 bad usage; 3
--start-on-stdin and no "go" came (no JSON).)";

void configure(CLI::App& app, Options& o) {
    app.footer(kFooter);
    app.get_formatter()->column_width(34);
    add_help_flag(app);
    add_target_flags(app, o);
    add_load_flags(app, o);
    add_recording_flags(app, o);
    add_coordination_flags(app, o);
}

std::string one_line(const CLI::ParseError& e) {
    std::string text = e.what();
    for (char& ch : text)
        if (ch == '\n') ch = ' ';
    if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr) text += " (see --help)";
    return text;
}

// Flags of the run form given with a subcommand would be ignored silently: refuse them instead.
void reject_run_flags(const CLI::App& app, const CLI::App& subcommand) {
    for (const CLI::Option* opt : app.get_options())
        if (opt->count() > 0)
            throw UsageError(opt->get_name() + " is a flag of the run form, not of " + subcommand.get_name());
}

// A request is one datagram in loadgen's own format (flow, sequence number, padding), echoed back.
void check_datagram_options(const CLI::App& app, Options& o) {
    if (app.get_option("--protocol")->count() > 0 && o.protocol == Protocol::http)
        invalid("--protocol", "http", "echo: a datagram is echoed, --transport udp has no HTTP");
    if (o.mode == ConnectionMode::close) invalid("--mode", "close", "keepalive: a flow has no connection to close");
    if (o.message_bytes < kMinDatagramBytes || o.message_bytes > kMaxUdpPayloadBytes)
        invalid("--message-bytes", std::to_string(o.message_bytes),
                "16..65507 over udp: a datagram holds a 16-byte header");
    o.protocol = Protocol::echo;
    if (app.get_option("--timeout")->count() == 0) o.timeout_s = kUdpReplyTimeoutS;
}

void check_run_options(const CLI::App& app, Options& o) {
    if (o.sockperf_format && o.transport != Transport::udp)
        invalid("--udp-format", "sockperf", "a format of --transport udp");
    if (app.get_option("--port")->count() == 0 && o.unix_path.empty())
        throw UsageError("missing required flag --port (or --unix)");
    // Only a given --interval: the default 1 s with a shorter --duration keeps writing one (partial)
    // entry, as it always did.
    const CLI::Option* interval = app.get_option("--interval");
    if (interval->count() > 0 && o.requests == 0 && o.interval_s > o.duration_s)
        invalid("--interval", interval->as<std::string>(), "longer than --duration");
    if (o.requests == 0 && o.series_file.empty() && o.duration_s / o.interval_s > kMaxIntervals)
        throw UsageError(
            "--duration / --interval makes more than 10000 timeseries entries (each holds a 35 KB "
            "histogram per thread): use a longer --interval, or --series-file to write them out as the run goes");
    if (o.mode == ConnectionMode::close && o.pipeline > 1)
        invalid("--pipeline", std::to_string(o.pipeline), "pipelining needs --mode keepalive");
    if (o.transport == Transport::udp) check_datagram_options(app, o);
    if (o.threads > o.connections) o.threads = o.connections;  // a thread without connections idles
}

}  // namespace

double parse_duration(const std::string& flag, const std::string& text) {
    std::string number = text;
    const double scale = strip_duration_unit(number);
    if (number.empty() || number[0] == '+' || number[0] == '-') invalid(flag, text);
    try {
        return parse_number(flag, number) * scale;
    } catch (const UsageError&) {
        invalid(flag, text);
    }
}

std::vector<int> parse_cpu_list(const std::string& flag, const std::string& text) {
    std::set<int> cpus;
    if (text.empty()) invalid(flag, text);
    std::size_t pos = 0;
    while (pos <= text.size()) {
        std::size_t comma = text.find(',', pos);
        if (comma == std::string::npos) comma = text.size();
        const std::string item = text.substr(pos, comma - pos);
        const std::size_t dash = item.find('-');
        try {
            const auto lo = parse_integer(flag, item.substr(0, dash), 0, 4095);
            const auto hi =
                dash == std::string::npos ? lo : parse_integer(flag, item.substr(dash + 1), 0, 4095);
            if (hi < lo) invalid(flag, text);
            for (auto c = lo; c <= hi; ++c) cpus.insert(static_cast<int>(c));
        } catch (const UsageError&) {
            invalid(flag, text);
        }
        pos = comma + 1;
    }
    return {cpus.begin(), cpus.end()};
}

CommandLine parse_command_line(const std::vector<std::string>& args) {
    CommandLine cl;
    CLI::App app{"loadgen: drive an HTTP/1.1 or echo server, write a result JSON", "loadgen"};
    configure(app, cl.run);
    app.require_subcommand(-1);  // at most one: a later subcommand's name is an argument, not a command
    const CLI::App* merge = add_merge_command(app, cl.merge);
    const CLI::App* sample = add_sample_server_command(app, cl.sample_server);
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 consumes from the back
    try {
        app.parse(reversed);
    } catch (const CLI::CallForHelp&) {
        cl.action = CommandLine::Action::help;
        cl.help_text = app.help();
        return cl;
    } catch (const CLI::ParseError& e) {
        throw UsageError(one_line(e));
    }
    if (merge->parsed()) {
        reject_run_flags(app, *merge);
        cl.action = CommandLine::Action::merge;
        return cl;
    }
    if (sample->parsed()) {
        reject_run_flags(app, *sample);
        if (sample->get_option("--pid")->count() == 0) throw UsageError("missing required flag --pid");
        cl.action = CommandLine::Action::sample_server;
        return cl;
    }
    check_run_options(app, cl.run);
    return cl;
}

const char* to_string(Protocol p) {
    return p == Protocol::http ? "http" : "echo";
}
const char* to_string(Transport t) {
    return t == Transport::tcp ? "tcp" : "udp";
}

const char* to_string(ConnectionMode m) {
    return m == ConnectionMode::keepalive ? "keepalive" : "close";
}

}  // namespace loadgen
