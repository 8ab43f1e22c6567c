#pragma once
// Signals as readable events. SIGINT/SIGTERM (and any other signal a model asks for, such as the
// fork model's SIGCHLD) are blocked and read from a signalfd, so a model learns of them in its
// normal flow: event loops watch the fd with the sockets; blocking models run a StopWatcher.
// No asynchronous handler runs, so nothing has to be async-signal-safe.

#include <csignal>
#include <initializer_list>

#include "common/unique_fd.hpp"

namespace sb {

class SignalFd {
public:
    // Blocks the signals in the calling thread, so it must run before any thread is started
    // (threads inherit the mask). Also ignores SIGPIPE: a vanished peer is a write error, not a
    // reason for the server to die.
    // SIGINT and SIGTERM always; `extra_signals` besides (the fork model's SIGCHLD).
    explicit SignalFd(std::initializer_list<int> extra_signals = {});

    int fd() const noexcept { return fd_.get(); }

    // The next pending signal's number, or 0 when none is pending (never blocks).
    int take();

    // Drains pending signals; true once SIGINT or SIGTERM has arrived.
    bool stop_requested();

private:
    UniqueFd fd_;
    bool stop_seen_ = false;
};

// In a forked child that will serve a connection: default dispositions and an empty mask, so the
// parent's SIGTERM ends the child.
void reset_signals_for_child();

}  // namespace sb
