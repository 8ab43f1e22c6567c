#include "server.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>

namespace sb {

Server::Server(int argc, char** argv, const ModelInfo& model, Blocking listener_mode,
               std::initializer_list<int> extra_signals)
    : model_(model),
      options(parse_server_options(argc, argv, model)),
      responses(options.protocol_config()),
      signals(extra_signals),
      listener(options, model_, stats, listener_mode, options.port) {}

void Server::announce_ready() const {
    std::printf("port=%u pid=%d model=%s", unsigned{listener.port()}, static_cast<int>(::getpid()),
                model_.name);
    if (!listener.unix_path().empty()) std::printf(" unix=%s", listener.unix_path().c_str());
    if (options.transport == Transport::udp) std::printf(" transport=udp");
    std::printf("\n");
    std::fflush(stdout);
}

int Server::finish() const {
    if (options.transport == Transport::udp) {
        auto n = [](const std::atomic<std::uint64_t>& count) {
            return static_cast<unsigned long long>(count.load());
        };
        std::fprintf(
            stderr,
            "server-%s: stopped; received %llu datagrams, answered %llu, dropped %llu oversized, %llu "
            "at the cap, %llu send errors\n",
            model_.name, n(stats.datagrams_received), n(stats.datagrams_answered),
            n(stats.datagrams_oversized), n(stats.datagrams_at_cap), n(stats.datagram_send_errors));
        return 0;
    }
    std::fprintf(stderr,
                 "server-%s: stopped; accepted %llu connections, refused %llu at --max-conns, %llu for lack "
                 "of resources\n",
                 model_.name, static_cast<unsigned long long>(stats.accepted.load()),
                 static_cast<unsigned long long>(stats.rejected_at_limit.load()),
                 static_cast<unsigned long long>(stats.rejected_no_resources.load()));
    return 0;
}

namespace {

std::int64_t thread_cpu_ns() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

void simulate_request_work(const ServerOptions& options, std::size_t requests) {
    if (requests == 0) return;
    const int cpu_us = options.cpu_us + options.inject_cpu_us;
    if (cpu_us > 0) {
        const std::int64_t end =
            thread_cpu_ns() + std::int64_t{cpu_us} * 1000 * static_cast<std::int64_t>(requests);
        while (thread_cpu_ns() < end) {
        }
    }
    if (options.io_us > 0) {
        std::int64_t ns = std::int64_t{options.io_us} * 1000 * static_cast<std::int64_t>(requests);
        timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
}

}  // namespace sb
