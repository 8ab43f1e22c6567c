#pragma once
// Tells an external counter when the measured window opens and closes, with the protocol of
// `perf stat --control fifo:CTL[,ACK]` (perf-stat(1), --control): "enable\n" and "disable\n" are
// written to the CTL FIFO; when an ACK FIFO is given, a line "ack\n" is read back from it after
// each, waiting at most kAckTimeoutMs. A server started under `perf stat -D -1 --control ...`
// is then counted over loadgen's measured window only, not its start-up or warm-up.

#include <cstdint>
#include <optional>
#include <string>

#include "common/unique_fd.hpp"

namespace loadgen {

inline constexpr int kAckTimeoutMs = 2000;

class WindowControl {
public:
    // Opens the FIFOs (ack_path may be ""). Throws UsageError naming --window-fifo when a path is
    // not a FIFO, or when no process has CTL open for reading (the counter is not listening).
    WindowControl(const std::string& ctl_path, const std::string& ack_path);

    // Writes "COMMAND\n" to CTL; false (and error() says why) if it could not be written whole.
    bool send(const char* command);
    // Waits for the "ack" line that answers the last command. Without an ACK FIFO: true at once.
    bool await_ack(const char* command);

    bool has_ack() const noexcept { return static_cast<bool>(ack_); }
    const std::string& error() const noexcept { return error_; }

private:
    std::optional<std::string> read_line(int timeout_ms);
    bool fail(std::string why);

    sb::UniqueFd ctl_, ack_;
    std::string pending_;  // bytes of the ACK FIFO after the last line read
    std::string error_;    // the first failure, if any
};

}  // namespace loadgen
