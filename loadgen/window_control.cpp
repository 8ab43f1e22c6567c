#include "loadgen/window_control.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "loadgen/engine.hpp"
#include "loadgen/options.hpp"

namespace loadgen {
namespace {

constexpr std::size_t kMaxAckLine = 64;  // a writer that floods the ACK FIFO is not acknowledging

[[noreturn]] void refuse(const std::string& path, const std::string& why) {
    throw UsageError("invalid value for --window-fifo: '" + path + "' (" + why + ")");
}

void require_fifo(int fd, const std::string& path) {
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode)) refuse(path, "not a FIFO");
}

// Non-blocking and write-only: open() fails with ENXIO when nobody reads, instead of waiting for
// a reader that may never come; a write of a few bytes to a pipe with room never blocks.
sb::UniqueFd open_control(const std::string& path) {
    sb::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
    if (!fd && errno == ENXIO) refuse(path, "no process reads it");
    if (!fd) refuse(path, std::strerror(errno));
    require_fifo(fd.get(), path);
    return fd;
}

// Read-write, as perf opens its own end: the open never waits for a writer, and the FIFO never
// reports a hang-up while loadgen holds it, so a late ack is simply waited for.
sb::UniqueFd open_ack(const std::string& path) {
    sb::UniqueFd fd(::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
    if (!fd) refuse(path, std::strerror(errno));
    require_fifo(fd.get(), path);
    char stale[256];
    while (::read(fd.get(), stale, sizeof stale) > 0) {
    }  // an ack left over by an earlier run would answer the wrong command
    return fd;
}

}  // namespace

WindowControl::WindowControl(const std::string& ctl_path, const std::string& ack_path)
    : ctl_(open_control(ctl_path)) {
    if (!ack_path.empty()) ack_ = open_ack(ack_path);
}

bool WindowControl::fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    return false;
}

bool WindowControl::send(const char* command) {
    const std::string line = std::string(command) + "\n";
    const ssize_t n = ::write(ctl_.get(), line.data(), line.size());
    if (n == static_cast<ssize_t>(line.size())) return true;
    return fail(std::string("cannot write '") + command +
                "': " + (n < 0 ? std::strerror(errno) : "short write"));
}

bool WindowControl::await_ack(const char* command) {
    if (!ack_) return true;
    const auto line = read_line(kAckTimeoutMs);
    if (!line && pending_.size() > kMaxAckLine) return fail("no line feed in the ACK FIFO's bytes");
    if (!line) return fail(std::string("no ack for '") + command + "' within 2 s");
    if (*line != "ack") return fail(std::string("'") + *line + "' instead of an ack for '" + command + "'");
    return true;
}

std::optional<std::string> WindowControl::read_line(int timeout_ms) {
    const std::uint64_t deadline = monotonic_ns() + static_cast<std::uint64_t>(timeout_ms) * 1'000'000;
    for (;;) {
        if (const auto lf = pending_.find('\n'); lf != std::string::npos) {
            std::string line = pending_.substr(0, lf);
            pending_.erase(0, lf + 1);
            return line;
        }
        const std::uint64_t now = monotonic_ns();
        if (now >= deadline || pending_.size() > kMaxAckLine) return std::nullopt;
        pollfd p{ack_.get(), POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>((deadline - now + 999'999) / 1'000'000)) <= 0) continue;
        char buf[64];
        const ssize_t n = ::read(ack_.get(), buf, sizeof buf);
        // perf writes its ack as sizeof("ack\n"), terminating NUL included: NULs are dropped.
        for (ssize_t i = 0; i < n; ++i)
            if (buf[i] != '\0') pending_.push_back(buf[i]);
    }
}

}  // namespace loadgen
