#include "loadgen/options.hpp"

#include <charconv>
#include <cmath>
#include <set>

namespace loadgen {
namespace {

[[noreturn]] void invalid(const std::string& flag, const std::string& value) {
    throw UsageError("invalid value for " + flag + ": '" + value + "'");
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

}  // namespace

double parse_duration(const std::string& flag, const std::string& text) {
    std::string number = text;
    double scale = 1;
    auto ends_with = [&](const char* suffix) {
        const std::string s(suffix);
        return number.size() > s.size() && number.compare(number.size() - s.size(), s.size(), s) == 0;
    };
    if (ends_with("ms")) { number.resize(number.size() - 2); scale = 1e-3; }
    else if (ends_with("us")) { number.resize(number.size() - 2); scale = 1e-6; }
    else if (ends_with("s")) { number.resize(number.size() - 1); }
    else if (ends_with("m")) { number.resize(number.size() - 1); scale = 60; }
    if (number.empty() || number[0] == '+' || number[0] == '-') invalid(flag, text);
    try {
        return parse_number(flag, number) * scale;
    } catch (const UsageError&) {
        invalid(flag, text);
    }
}

std::vector<int> parse_cpu_list(const std::string& flag, const std::string& text) {
    std::set<int> cpus;
    std::size_t pos = 0;
    if (text.empty()) invalid(flag, text);
    while (pos <= text.size()) {
        std::size_t comma = text.find(',', pos);
        if (comma == std::string::npos) comma = text.size();
        const std::string item = text.substr(pos, comma - pos);
        const std::size_t dash = item.find('-');
        try {
            if (dash == std::string::npos) {
                cpus.insert(static_cast<int>(parse_integer(flag, item, 0, 4095)));
            } else {
                const auto lo = parse_integer(flag, item.substr(0, dash), 0, 4095);
                const auto hi = parse_integer(flag, item.substr(dash + 1), 0, 4095);
                if (hi < lo) invalid(flag, text);
                for (auto c = lo; c <= hi; ++c) cpus.insert(static_cast<int>(c));
            }
        } catch (const UsageError&) {
            invalid(flag, text);
        }
        pos = comma + 1;
    }
    return {cpus.begin(), cpus.end()};
}

Options parse_options(const std::vector<std::string>& args) {
    Options o;
    bool have_port = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& flag = args[i];
        auto value = [&]() -> const std::string& {
            if (i + 1 >= args.size()) throw UsageError("missing value for " + flag);
            return args[++i];
        };
        if (flag == "--port") {
            o.port = static_cast<std::uint16_t>(parse_integer(flag, value(), 1, 65535));
            have_port = true;
        } else if (flag == "--host") {
            o.host = value();
            if (o.host.empty()) invalid(flag, o.host);
        } else if (flag == "--protocol") {
            const std::string& v = value();
            if (v == "http") o.protocol = Protocol::http;
            else if (v == "echo") o.protocol = Protocol::echo;
            else invalid(flag, v);
        } else if (flag == "--path") {
            o.path = value();
            if (o.path.empty() || o.path[0] != '/' || o.path.find_first_of(" \r\n") != std::string::npos)
                invalid(flag, o.path);
        } else if (flag == "--header") {
            const std::string& v = value();
            const auto colon = v.find(':');
            if (colon == 0 || colon == std::string::npos || v.find_first_of("\r\n") != std::string::npos)
                invalid(flag, v);
            o.headers.push_back(v);
        } else if (flag == "--connections") {
            o.connections = static_cast<int>(parse_integer(flag, value(), 1, 1'000'000));
        } else if (flag == "--threads") {
            o.threads = static_cast<int>(parse_integer(flag, value(), 1, 1024));
        } else if (flag == "--duration") {
            const std::string& v = value();
            o.duration_s = parse_duration(flag, v);
            if (o.duration_s <= 0) invalid(flag, v);
        } else if (flag == "--warmup") {
            o.warmup_s = parse_duration(flag, value());
        } else if (flag == "--requests") {
            o.requests = static_cast<std::uint64_t>(parse_integer(flag, value(), 1, 1'000'000'000'000LL));
        } else if (flag == "--rate") {
            const std::string& v = value();
            o.rate = parse_number(flag, v);
            if (o.rate <= 0) invalid(flag, v);
        } else if (flag == "--mode") {
            const std::string& v = value();
            if (v == "keepalive" || v == "keep-alive") o.mode = ConnectionMode::keepalive;
            else if (v == "close") o.mode = ConnectionMode::close;
            else invalid(flag, v);
        } else if (flag == "--pipeline") {
            o.pipeline = static_cast<int>(parse_integer(flag, value(), 1, 1024));
        } else if (flag == "--message-bytes") {
            o.message_bytes = static_cast<std::size_t>(parse_integer(flag, value(), 1, 16 << 20));
        } else if (flag == "--timeout") {
            const std::string& v = value();
            o.timeout_s = parse_duration(flag, v);
            if (o.timeout_s <= 0) invalid(flag, v);
        } else if (flag == "--cpus") {
            o.cpus_text = value();
            o.cpus = parse_cpu_list(flag, o.cpus_text);
        } else if (flag == "--server-pid") {
            o.server_pid = static_cast<int>(parse_integer(flag, value(), 1, 1 << 30));
        } else if (flag == "--out") {
            o.out = value();
        } else if (flag == "--model") {
            o.model = value();
        } else if (flag == "--scenario") {
            o.scenario = value();
        } else if (flag == "--server-flags") {
            o.server_flags = value();
        } else if (flag == "--quiet" || flag == "-q") {
            o.quiet = true;
        } else {
            throw UsageError("unknown flag: '" + flag + "' (see --help)");
        }
    }
    if (!have_port) throw UsageError("missing required flag --port");
    if (o.mode == ConnectionMode::close && o.pipeline > 1)
        throw UsageError("invalid value for --pipeline: '" + std::to_string(o.pipeline) +
                         "' (pipelining needs --mode keepalive)");
    if (o.threads > o.connections) o.threads = o.connections;  // a thread without connections idles
    return o;
}

const char* to_string(Protocol p) { return p == Protocol::http ? "http" : "echo"; }
const char* to_string(ConnectionMode m) { return m == ConnectionMode::keepalive ? "keepalive" : "close"; }

const char* usage_text() {
    return R"(usage: loadgen --port N [flags]        drive an HTTP/1.1 or echo server, write a result JSON
       loadgen merge a.json b.json ... [--out FILE]   combine results exactly
       loadgen --help

target and requests
  --host ADDR            server address (default 127.0.0.1)
  --port N               server port (required)
  --protocol http|echo   default http
  --path /P              HTTP request path (default /)
  --header "Name: v"     extra HTTP request header (repeatable)
  --message-bytes B      echo payload bytes per request (default 64)
load
  --connections N        connections, spread over the threads (default 10)
  --threads T            event-loop threads (default 1)
  --duration D           measured time (default 10s); D: 10, 10s, 500ms, 2.5s
  --warmup D             run this long first, excluded from the results (default 0)
  --requests N           end after N responses in total instead of a duration
  --rate R               open loop: R requests/s in total, latency from the intended send time
  --mode keepalive|close keep connections, or a fresh connection per request (default keepalive)
  --pipeline D           requests in flight per connection (default 1)
  --timeout D            per-request (and connect) timeout (default 5s)
  --cpus LIST            pin the threads: "1", "0-1", "1,3"
recording
  --server-pid PID       sample this process tree's CPU, RSS, threads, processes, context switches
  --out FILE             result JSON here (default stdout)
  --model NAME, --scenario NAME, --server-flags "STRING"   recorded into the JSON
  --quiet                no human summary on stderr

exit codes: 0 no errors and every connection established; 1 errors or a shortfall (JSON still
written); 2 bad usage.
)";
}

}  // namespace loadgen
