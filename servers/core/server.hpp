#pragma once
// What every model's main() starts with: flags parsed, signals routed, the socket listening.

#include <cstddef>

#include "net.hpp"
#include "options.hpp"
#include "protocol.hpp"
#include "signals.hpp"

namespace sb {

class Server {
public:
    // Parses the flags (exit 2 on a bad one), blocks the stop signals (before any thread exists),
    // and listens (exit 1 if that fails). `extra_signals` joins SIGINT/SIGTERM on the signalfd.
    Server(int argc, char** argv, const ModelInfo& model, Blocking listener_mode,
           std::initializer_list<int> extra_signals = {});

    const ModelInfo& model() const noexcept { return model_; }

    // Prints the readiness line "port=N pid=P model=NAME" that scripts and tests wait for; on a Unix
    // socket "port=0 pid=P model=NAME unix=PATH", so a reader looking for port= still finds it; over
    // UDP either one with " transport=udp" at its end.
    void announce_ready() const;

    // Prints the one-line summary to stderr (connections accepted and refused, or over UDP what
    // became of the datagrams); returns exit code 0.
    int finish() const;

    const ModelInfo model_;
    const ServerOptions options;
    const ResponseSet responses;
    ServerStats stats;
    SignalFd signals;
    Listener listener;
};

// The per-request cost the flags ask for: --cpu-us (plus the test knob --inject-cpu-us) of busy CPU
// (measured in thread CPU time, so preemption does not shorten it) and --io-us of sleep, as a
// database call would block.
void simulate_request_work(const ServerOptions& options, std::size_t requests);

}  // namespace sb
