#pragma once
// The command line: flags, their defaults and validation. A bad value is a UsageError naming the
// flag (main prints it on one line and exits 2).

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace loadgen {

enum class Protocol { http, echo };
enum class ConnectionMode { keepalive, close };
enum class Transport { tcp, udp };  // udp: datagrams (UDP, or Unix datagram sockets with --unix)

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The run form: `loadgen --port N [flags]`.
struct Options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;
    std::string unix_path;    // non-empty: a Unix domain socket instead of host:port
    Transport transport = Transport::tcp;
    bool sockperf_format = false;  // --udp-format sockperf: sockperf's header instead of loadgen's
    bool tcp_nodelay = true;  // TCP_NODELAY on loadgen's TCP sockets
    Protocol protocol = Protocol::http;
    std::string path = "/";
    std::vector<std::string> headers;
    int connections = 10;
    int threads = 1;
    double duration_s = 10;
    double warmup_s = 0;
    double interval_s = 1;       // length of a timeseries entry
    std::uint64_t requests = 0;  // 0: run for duration_s instead
    double rate = 0;             // total requests/s; 0: closed loop
    ConnectionMode mode = ConnectionMode::keepalive;
    int pipeline = 1;
    std::size_t message_bytes = 64;
    double timeout_s = 5;  // over UDP, unless given: kUdpReplyTimeoutS
    std::vector<int> cpus;  // empty: not pinned
    std::string cpus_text;
    int server_pid = 0;  // 0: no server sampling
    std::string out;     // empty: stdout
    std::string series_file;  // --series-file: the timeseries as JSON lines, written as the run goes
    std::string model, scenario;
    std::optional<std::string> server_flags;
    bool quiet = false;
    bool start_on_stdin = false;  // connect, print "connected N", wait for "go" on stdin
    std::string window_fifo;      // "enable"/"disable" at the window's edges ("" = none)
    std::string window_ack_fifo;  // an "ack" awaited after each ("" = none)
};

// The merge form: `loadgen merge a.json b.json ... [--out FILE]`.
struct MergeOptions {
    std::vector<std::string> inputs;
    std::string out;  // empty: stdout
};

// The sampler form: `loadgen sample-server --pid PID`, a /proc sample of PID's tree per stdin line.
struct SampleServerOptions {
    int pid = 0;
};

struct CommandLine {
    enum class Action { run, merge, sample_server, help };
    Action action = Action::run;
    Options run;
    MergeOptions merge;
    SampleServerOptions sample_server;
    std::string help_text;  // Action::help: what to print on stdout
};

// Parses everything after argv[0]. Throws UsageError (one line, naming the flag or value).
CommandLine parse_command_line(const std::vector<std::string>& args);

// "10", "10s", "500ms", "2.5s", "1m" -> seconds. Throws UsageError naming `flag`.
double parse_duration(const std::string& flag, const std::string& text);
// "1", "0-1", "1,3" -> CPU numbers. Throws UsageError naming `flag`.
std::vector<int> parse_cpu_list(const std::string& flag, const std::string& text);

const char* to_string(Protocol p);
const char* to_string(ConnectionMode m);
const char* to_string(Transport t);

// How long a UDP request waits for its reply before it counts as lost (--timeout's default over
// UDP): many times the queueing delay of a full default receive buffer (about 300 datagrams) at
// 100 µs each, yet short enough that a closed-loop flow stalled by one loss resumes quickly.
constexpr double kUdpReplyTimeoutS = 0.2;

}  // namespace loadgen
