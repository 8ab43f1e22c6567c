#include "options.hpp"

#include <sched.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string_view>

namespace sb {
namespace {

struct FlagSpec {
    const char* name;
    const char* value;
    const char* help;
};

constexpr FlagSpec kFlags[] = {
    {"--host", "ADDR", "IPv4 address to bind (default 127.0.0.1; never all interfaces unless asked)"},
    {"--port", "N", "TCP port, 0 = pick a free one (default 8080)"},
    {"--protocol", "http|echo", "protocol to serve (default http)"},
    {"--workers", "N", "threads or processes, for models that have them"},
    {"--backlog", "N", "listen backlog (default 4096)"},
    {"--max-conns", "N", "connections served at once; more are closed at once (default: model's safe limit)"},
    {"--idle-timeout-ms", "MS", "close a connection idle this long, 0 = never (default 30000)"},
    {"--cpu-us", "US", "simulated CPU work per request, busy loop (default 0)"},
    {"--io-us", "US", "simulated blocking wait per request, sleep (default 0)"},
    {"--response-bytes", "N", "HTTP response body size (default 13)"},
};

[[noreturn]] void usage_error(const ModelInfo& model, const std::string& message) {
    std::fprintf(stderr, "server-%s: %s (see --help)\n", model.name, message.c_str());
    std::exit(2);
}

[[noreturn]] void print_help(const ModelInfo& model) {
    std::printf("usage: server-%s [flags]\n%s\n\nflags:\n", model.name, model.summary);
    for (const FlagSpec& f : kFlags) {
        std::printf("  %-18s %-10s %s\n", f.name, f.value, f.help);
    }
    if (model.default_workers > 0) std::printf("\n--workers defaults to %d for this model.\n", model.default_workers);
    else std::printf("\nThis model has no workers: --workers is accepted and ignored.\n");
    std::printf("--max-conns defaults to %d for this model.\n", model.default_max_conns);
    std::printf("Prints 'port=N pid=P model=%s' on stdout when listening; SIGINT/SIGTERM stop it.\n", model.name);
    std::exit(0);
}

template <class Int>
Int parse_int(const ModelInfo& model, std::string_view flag, std::string_view text, long long min, long long max) {
    long long v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || v < min || v > max) {
        usage_error(model, "invalid value for " + std::string(flag) + ": '" + std::string(text) + "' (expected " +
                               std::to_string(min) + ".." + std::to_string(max) + ")");
    }
    return static_cast<Int>(v);
}

}  // namespace

ProtocolConfig ServerOptions::protocol_config() const {
    ProtocolConfig config;
    config.protocol = protocol;
    config.response_bytes = response_bytes;
    return config;
}

int available_cpus() {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
    return 1;
}

ServerOptions parse_server_options(int argc, char** argv, const ModelInfo& model) {
    constexpr long long int_max = std::numeric_limits<int>::max();
    ServerOptions o;
    o.workers = model.default_workers > 0 ? model.default_workers : 1;
    o.max_conns = model.default_max_conns;

    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--help" || arg == "-h") print_help(model);
        std::string_view flag = arg, value;
        bool inline_value = false;
        if (std::size_t eq = arg.find('='); arg.starts_with("--") && eq != std::string_view::npos) {
            flag = arg.substr(0, eq);
            value = arg.substr(eq + 1);
            inline_value = true;
        }
        bool known = false;
        for (const FlagSpec& f : kFlags) known |= flag == f.name;
        if (!known) usage_error(model, "unknown flag '" + std::string(arg) + "'");
        if (!inline_value) {
            if (i + 1 >= argc) usage_error(model, "missing value for " + std::string(flag));
            value = argv[++i];
        }

        if (flag == "--host") {
            if (value.empty()) usage_error(model, "invalid value for --host: ''");
            o.host = value;
        } else if (flag == "--port") {
            o.port = parse_int<std::uint16_t>(model, flag, value, 0, 65535);
        } else if (flag == "--protocol") {
            if (value == "http") o.protocol = Protocol::http;
            else if (value == "echo") o.protocol = Protocol::echo;
            else usage_error(model, "invalid value for --protocol: '" + std::string(value) + "' (expected http or echo)");
        } else if (flag == "--workers") {
            o.workers = parse_int<int>(model, flag, value, 1, 100000);
        } else if (flag == "--backlog") {
            o.backlog = parse_int<int>(model, flag, value, 1, int_max);
        } else if (flag == "--max-conns") {
            o.max_conns = parse_int<int>(model, flag, value, 1, int_max);
        } else if (flag == "--idle-timeout-ms") {
            o.idle_timeout_ms = parse_int<int>(model, flag, value, 0, int_max);
        } else if (flag == "--cpu-us") {
            o.cpu_us = parse_int<int>(model, flag, value, 0, 10'000'000);
        } else if (flag == "--io-us") {
            o.io_us = parse_int<int>(model, flag, value, 0, 10'000'000);
        } else if (flag == "--response-bytes") {
            o.response_bytes = parse_int<std::size_t>(model, flag, value, 0, 64LL << 20);
        }
    }
    return o;
}

}  // namespace sb
