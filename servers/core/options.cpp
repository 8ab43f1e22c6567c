#include "options.hpp"

#include <sched.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string_view>

// Flag parsing is CLI11's: the two spellings (--flag VALUE, --flag=VALUE), unknown flags, missing
// values, repeated flags (the last one wins) and the --help listing. Kept by hand, and why:
//  * the values' conversion and ranges (parse_int below): CLI11's integer parsing also takes
//    "0x10", "1e3" or "1.0" for an integer, and its messages vary in shape; ours take plain
//    decimals only and every bad value is reported the same way, naming the flag, the value and
//    what was expected;
//  * the error path: CLI11's app.exit() prints several lines and exits with codes of its own (105,
//    106, 109, ...), while the contract is one line on stderr and exit 2, so every ParseError is
//    caught here and reported as that one line (and --help, which CLI11 reports by throwing
//    CallForHelp, prints and exits 0).

namespace sb {
namespace {

// A value a flag cannot take; what() names the flag and the value.
class BadValue : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

template <class Int>
Int parse_int(std::string_view flag, std::string_view text, long long min, long long max) {
    long long v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || v < min || v > max) {
        throw BadValue("invalid value for " + std::string(flag) + ": '" + std::string(text) + "' (expected " +
                       std::to_string(min) + ".." + std::to_string(max) + ")");
    }
    return static_cast<Int>(v);
}

Protocol parse_protocol(std::string_view text) {
    if (text == "http") return Protocol::http;
    if (text == "echo") return Protocol::echo;
    throw BadValue("invalid value for --protocol: '" + std::string(text) + "' (expected http or echo)");
}

Transport parse_transport(std::string_view text) {
    if (text == "tcp") return Transport::tcp;
    if (text == "udp") return Transport::udp;
    throw BadValue("invalid value for --transport: '" + std::string(text) + "' (expected tcp or udp)");
}

std::string parse_nonempty(std::string_view flag, std::string_view text) {
    if (text.empty()) throw BadValue("invalid value for " + std::string(flag) + ": ''");
    return std::string(text);
}

bool parse_on_off(std::string_view flag, std::string_view text) {
    if (text == "on") return true;
    if (text == "off") return false;
    throw BadValue("invalid value for " + std::string(flag) + ": '" + std::string(text) +
                   "' (expected on or off)");
}

// Each flag: its name, the name of its value in --help, its help, and how its value is stored.
struct Flag {
    const char* name;
    const char* value;
    const char* help;
    std::function<void(ServerOptions&, std::string_view)> store;
};

std::vector<Flag> server_flags() {
    constexpr long long int_max = std::numeric_limits<int>::max();
    using O = ServerOptions;
    using V = std::string_view;
    return {
        {"--host", "ADDR", "IPv4 address to bind (default 127.0.0.1; never all interfaces unless asked)",
         [](O& o, V v) { o.host = parse_nonempty("--host", v); }},
        {"--port", "N", "TCP port, 0 = pick a free one (default 8080)",
         [](O& o, V v) { o.port = parse_int<std::uint16_t>("--port", v, 0, 65535); }},
        {"--protocol", "http|echo", "protocol to serve over TCP (default http; over UDP only echo)",
         [](O& o, V v) { o.protocol = parse_protocol(v); }},
        {"--workers", "N", "threads or processes, for models that have them",
         [](O& o, V v) { o.workers = parse_int<int>("--workers", v, 1, 100000); }},
        {"--backlog", "N", "listen backlog (default 4096)",
         [](O& o, V v) { o.backlog = parse_int<int>("--backlog", v, 1, int_max); }},
        {"--max-conns", "N",
         "connections served at once; more are closed at once (default: model's safe limit)",
         [](O& o, V v) { o.max_conns = parse_int<int>("--max-conns", v, 1, int_max); }},
        {"--idle-timeout-ms", "MS", "close a connection idle this long, 0 = never (default 30000)",
         [](O& o, V v) { o.idle_timeout_ms = parse_int<int>("--idle-timeout-ms", v, 0, int_max); }},
        {"--cpu-us", "US", "simulated CPU work per request, busy loop (default 0)",
         [](O& o, V v) { o.cpu_us = parse_int<int>("--cpu-us", v, 0, 10'000'000); }},
        {"--io-us", "US", "simulated blocking wait per request, sleep (default 0)",
         [](O& o, V v) { o.io_us = parse_int<int>("--io-us", v, 0, 10'000'000); }},
        {"--response-bytes", "N", "HTTP response body size (default 13)",
         [](O& o, V v) { o.response_bytes = parse_int<std::size_t>("--response-bytes", v, 0, 64LL << 20); }},
        {"--unix", "PATH",
         "listen on a Unix stream socket at PATH instead of TCP, or with --transport udp receive on a Unix "
         "datagram socket there (--host, --port ignored)",
         [](O& o, V v) { o.unix_path = parse_nonempty("--unix", v); }},
        {"--tcp-nodelay", "on|off", "TCP_NODELAY on accepted TCP connections (default on)",
         [](O& o, V v) { o.tcp_nodelay = parse_on_off("--tcp-nodelay", v); }},
        {"--inject-cpu-us", "US",
         "test knob: busy CPU per request on top of --cpu-us, to inject a known regression (default 0)",
         [](O& o, V v) { o.inject_cpu_us = parse_int<int>("--inject-cpu-us", v, 0, 10'000'000); }},
        {"--transport", "tcp|udp",
         "tcp serves connections; udp answers each datagram with one holding its bytes (default tcp)",
         [](O& o, V v) { o.transport = parse_transport(v); }},
        {"--udp-batch", "N",
         "datagrams an event loop receives per recvmmsg and answers per sendmmsg, 1 = recvfrom/sendto "
         "(default 1)",
         [](O& o, V v) { o.udp_batch = parse_int<int>("--udp-batch", v, 1, 1024); }},
    };
}

std::string help_footer(const ModelInfo& model) {
    std::string footer =
        model.default_workers > 0
            ? "--workers defaults to " + std::to_string(model.default_workers) + " for this model.\n"
            : "This model has no workers: --workers is accepted and ignored.\n";
    footer += "--max-conns defaults to " + std::to_string(model.default_max_conns) + " for this model.\n";
    footer +=
        model.batches_datagrams
            ? "--udp-batch sets how many datagrams this model's event loop takes per system call.\n"
            : "This model has no event loop of its own to batch: --udp-batch is accepted and ignored.\n";
    footer += "Prints 'port=N pid=P model=" + std::string(model.name) +
              "' on stdout when listening (with --unix: 'port=0 pid=P model=" + std::string(model.name) +
              " unix=PATH'; with --transport udp, ' transport=udp' at its end); SIGINT/SIGTERM stop it.";
    return footer;
}

// One line, whatever the message holds: the contract's shape for a bad flag.
[[noreturn]] void usage_error(const ModelInfo& model, std::string message) {
    for (char& c : message) {
        if (c == '\n') c = ' ';
    }
    std::fprintf(stderr, "server-%s: %s (see --help)\n", model.name, message.c_str());
    std::exit(2);
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
    ServerOptions o;
    o.workers = model.default_workers > 0 ? model.default_workers : 1;
    o.max_conns = model.default_max_conns;

    CLI::App app(model.summary, "server-" + std::string(model.name));
    app.set_help_flag("-h,--help", "print this help and exit");
    app.footer(help_footer(model));
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    const std::vector<Flag> flags = server_flags();  // outlives parse(), which runs the callbacks
    for (const Flag& flag : flags) {
        app.add_option_function<std::string>(
               flag.name, [&o, &flag](const std::string& v) { flag.store(o, v); }, flag.help)
            ->type_name(flag.value);
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        std::fputs(app.help().c_str(), stdout);
        std::exit(0);
    } catch (const CLI::ParseError& e) {
        usage_error(model, e.what());
    } catch (const BadValue& e) {
        usage_error(model, e.what());
    }
    // A datagram is answered with its own bytes: HTTP is a protocol of connections.
    if (o.transport == Transport::udp && o.protocol == Protocol::http && app.count("--protocol") > 0)
        usage_error(model, "--protocol http needs --transport tcp (over udp each datagram is echoed)");
    return o;
}

}  // namespace sb
