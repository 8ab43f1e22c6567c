#pragma once
// What the server tests share: real server processes started and always stopped (RAII), and a
// small blocking client with timeouts, so no test can hang or leave a process behind.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/unique_fd.hpp"

namespace sbtest {

using namespace std::chrono_literals;
using Millis = std::chrono::milliseconds;

// build/bin, where every binary lands.
std::string bin_dir();

// Every server model built, from servers/CMakeLists.txt's list: a new model is tested with no edit here.
std::vector<std::string> server_models();
// Every model but blocking, which serves one connection at a time.
std::vector<std::string> concurrent_server_models();

// A child process, killed (SIGKILL) and reaped when this object dies unless it already ended.
class Process {
public:
    // Starts argv[0] with its stdout and stderr on pipes. Returns nullopt if it cannot start.
    static std::optional<Process> spawn(const std::vector<std::string>& argv);

    Process(Process&& other) noexcept;
    Process& operator=(Process&& other) noexcept;
    ~Process();

    pid_t pid() const noexcept { return pid_; }

    // One line of stdout, waiting at most `timeout`; nullopt on timeout or EOF.
    std::optional<std::string> read_stdout_line(Millis timeout);

    // Everything the process wrote to stderr so far (non-blocking).
    std::string drain_stderr();

    // Sends a signal; waits up to `timeout` for the exit. Returns the exit status (as waitpid's
    // WEXITSTATUS, or 128+signal when killed), or nullopt if it is still running.
    std::optional<int> signal_and_wait(int signo, Millis timeout);
    std::optional<int> wait_exit(Millis timeout);

private:
    Process(pid_t pid, sb::UniqueFd out, sb::UniqueFd err) noexcept;
    void kill_and_reap() noexcept;
    pid_t pid_ = -1;
    bool reaped_ = false;
    sb::UniqueFd stdout_, stderr_;
    std::string stdout_buffer_;
};

// A server binary started with --port 0 and its readiness line read.
class ServerProcess {
public:
    // Starts build/bin/server-<model> --port 0 <args>; waits up to 5 s for "port=N pid=P model=M"
    // (with --unix among args: "port=0 pid=P model=M unix=PATH").
    // On failure `ok()` is false and `error()` says why (the test should ASSERT on ok()).
    // `launcher`, if given, is put in front of the command line: a program that sets something up
    // and execs the rest, e.g. {"prlimit", "--nofile=64"}, so the pid is still the server's.
    explicit ServerProcess(const std::string& model, std::vector<std::string> args = {},
                           std::vector<std::string> launcher = {});

    bool ok() const noexcept { return process_.has_value() && (port_ != 0 || !unix_path_.empty()); }
    const std::string& error() const noexcept { return error_; }
    std::uint16_t port() const noexcept { return port_; }
    const std::string& unix_path() const noexcept { return unix_path_; }  // from the readiness line
    pid_t pid() const noexcept { return process_ ? process_->pid() : -1; }
    Process& process() { return *process_; }

    // Introspection from /proc, for leak checks.
    int open_fds() const;         // entries in /proc/PID/fd
    int zombie_children() const;  // children of PID in state Z
    int child_processes() const;  // all children of PID
    long rss_kib() const;         // VmRSS of PID (not its children)
    int threads() const;          // Threads: of PID

    // SIGTERM, then the exit code within `limit` (nullopt if it did not exit in time).
    std::optional<int> stop(Millis limit = 1000ms);

private:
    std::optional<Process> process_;
    std::uint16_t port_ = 0;
    std::string unix_path_;
    std::string error_;
};

// True if a server's stderr holds a sanitizer (ASan, UBSan, TSan, LSan) report: run under a
// -DSANITIZE build, a test fails on it even when the server survived the error.
bool has_sanitizer_report(std::string_view stderr_text);

// Polls `condition` every 10 ms until true or `timeout` passes; returns its last value.
template <class F>
bool eventually(F&& condition, Millis timeout = 2000ms);

// ---- a client with timeouts ----

// Connected, blocking TCP socket to 127.0.0.1:port with 5 s send/receive timeouts; empty on failure.
sb::UniqueFd connect_to(std::uint16_t port);

// Connected, blocking Unix stream socket to `path`, with the same timeouts; empty on failure.
sb::UniqueFd connect_unix(const std::string& path);

// A Unix socket path of one test's own, /tmp/serverbench-<what>-<pid>-<model>.sock, removed
// before and after (a test that failed may have left one).
class SocketPath {
public:
    SocketPath(std::string_view what, const std::string& model);
    ~SocketPath();
    SocketPath(const SocketPath&) = delete;
    SocketPath& operator=(const SocketPath&) = delete;
    const std::string& get() const { return path_; }

private:
    std::string path_;
};

bool file_exists(const std::string& path);

bool send_all(int fd, std::string_view bytes);

// Reads until `total` bytes have arrived, EOF, an error, or `timeout`; returns what arrived.
std::string read_exactly(int fd, std::size_t total, Millis timeout = 3000ms);

// Reads until EOF (the server closed) or `timeout`; `closed` says which.
std::string read_to_eof(int fd, Millis timeout = 3000ms, bool* closed = nullptr);

struct HttpResponse {
    int status = 0;
    std::string head;  // status line and headers
    std::string body;
    bool has_header(std::string_view name, std::string_view value) const;  // case-insensitive
};

// Reads one response (head, then a Content-Length body) from fd; `pending` carries bytes read
// past it to the next call (pipelining). nullopt on timeout, EOF or garbage.
std::optional<HttpResponse> read_http_response(int fd, std::string& pending, Millis timeout = 3000ms);

// A GET on a fresh connection; nullopt when no valid response came.
std::optional<HttpResponse> http_get(std::uint16_t port, std::string_view path = "/");

// ---- inline template ----
template <class F>
bool eventually(F&& condition, Millis timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (condition()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        struct timespec ts {
            0, 10'000'000
        };
        nanosleep(&ts, nullptr);
    }
}

}  // namespace sbtest
