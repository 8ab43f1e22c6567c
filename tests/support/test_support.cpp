#include "test_support.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace sbtest {
namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
    return left > 0 ? static_cast<int>(left) : 0;
}

bool wait_readable(int fd, Clock::time_point deadline) {
    pollfd pfd{fd, POLLIN, 0};
    return ::poll(&pfd, 1, remaining_ms(deadline)) > 0;
}

// Fields of /proc/PID/stat after the command name: state is [0], ppid is [1].
std::vector<std::string> stat_fields(const std::string& pid) {
    std::ifstream in("/proc/" + pid + "/stat");
    std::string line;
    std::getline(in, line);
    std::vector<std::string> fields;
    auto close_paren = line.rfind(')');
    if (close_paren == std::string::npos) return fields;
    std::istringstream rest(line.substr(close_paren + 2));
    for (std::string f; rest >> f;) fields.push_back(f);
    return fields;
}

template <class F>
void for_each_child(pid_t parent, F&& f) {
    DIR* dir = ::opendir("/proc");
    if (!dir) return;
    while (dirent* e = ::readdir(dir)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        auto fields = stat_fields(e->d_name);
        if (fields.size() > 1 && std::stoi(fields[1]) == parent) f(fields[0]);
    }
    ::closedir(dir);
}

long status_field(pid_t pid, const std::string& key) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
    }
    return -1;
}

int decode_status(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

}  // namespace

std::string bin_dir() {
    return SERVERBENCH_BIN_DIR;
}

std::vector<std::string> server_models() {
    std::vector<std::string> models;
    std::istringstream list(SERVERBENCH_MODELS);
    for (std::string m; std::getline(list, m, ',');) {
        if (!m.empty()) models.push_back(m);
    }
    return models;
}

std::vector<std::string> concurrent_server_models() {
    std::vector<std::string> models = server_models();
    std::erase(models, "blocking");
    return models;
}

// ---- Process ----

Process::Process(pid_t pid, sb::UniqueFd out, sb::UniqueFd err) noexcept
    : pid_(pid), stdout_(std::move(out)), stderr_(std::move(err)) {}

Process::Process(Process&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      reaped_(other.reaped_),
      stdout_(std::move(other.stdout_)),
      stderr_(std::move(other.stderr_)),
      stdout_buffer_(std::move(other.stdout_buffer_)) {}

Process& Process::operator=(Process&& other) noexcept {
    if (this != &other) {
        kill_and_reap();
        pid_ = std::exchange(other.pid_, -1);
        reaped_ = other.reaped_;
        stdout_ = std::move(other.stdout_);
        stderr_ = std::move(other.stderr_);
        stdout_buffer_ = std::move(other.stdout_buffer_);
    }
    return *this;
}

Process::~Process() {
    kill_and_reap();
}

void Process::kill_and_reap() noexcept {
    if (pid_ > 0 && !reaped_) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        reaped_ = true;
    }
}

std::optional<Process> Process::spawn(const std::vector<std::string>& argv) {
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0) return std::nullopt;
    if (::pipe2(err, O_CLOEXEC) != 0) {
        ::close(out[0]);
        ::close(out[1]);
        return std::nullopt;
    }
    sb::UniqueFd out_read{out[0]}, out_write{out[1]}, err_read{err[0]}, err_write{err[1]};
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) return std::nullopt;
    if (pid == 0) {
        // A test killed by ctest's timeout runs no destructor: the kernel then ends the child
        // (PDEATHSIG), so no server outlives its test. Only async-signal-safe calls until exec.
        if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ::_exit(127);
        ::dup2(out_write.get(), STDOUT_FILENO);
        ::dup2(err_write.get(), STDERR_FILENO);
        // execvp: a launcher such as "prlimit" is found on PATH; absolute paths are used as they are.
        ::execvp(args[0], args.data());
        ::_exit(127);
    }
    ::fcntl(err_read.get(), F_SETFL, O_NONBLOCK);
    return Process(pid, std::move(out_read), std::move(err_read));
}

std::optional<std::string> Process::read_stdout_line(Millis timeout) {
    auto deadline = Clock::now() + timeout;
    for (;;) {
        if (auto nl = stdout_buffer_.find('\n'); nl != std::string::npos) {
            std::string line = stdout_buffer_.substr(0, nl);
            stdout_buffer_.erase(0, nl + 1);
            return line;
        }
        if (!wait_readable(stdout_.get(), deadline)) return std::nullopt;
        char buf[512];
        ssize_t n = ::read(stdout_.get(), buf, sizeof buf);
        if (n <= 0) return std::nullopt;
        stdout_buffer_.append(buf, static_cast<std::size_t>(n));
    }
}

std::string Process::drain_stderr() {
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(stderr_.get(), buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
    return text;
}

std::optional<int> Process::wait_exit(Millis timeout) {
    if (reaped_) return std::nullopt;
    auto deadline = Clock::now() + timeout;
    for (;;) {
        int status = 0;
        pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
            reaped_ = true;
            return decode_status(status);
        }
        if (Clock::now() >= deadline) return std::nullopt;
        ::usleep(5000);
    }
}

std::optional<int> Process::signal_and_wait(int signo, Millis timeout) {
    if (reaped_) return std::nullopt;  // its pid may already belong to another process
    ::kill(pid_, signo);
    return wait_exit(timeout);
}

// ---- ServerProcess ----

ServerProcess::ServerProcess(const std::string& model, std::vector<std::string> args,
                             std::vector<std::string> launcher) {
    std::vector<std::string> argv = std::move(launcher);
    argv.insert(argv.end(), {bin_dir() + "/server-" + model, "--port", "0"});
    argv.insert(argv.end(), args.begin(), args.end());
    process_ = Process::spawn(argv);
    if (!process_) {
        error_ = "cannot start " + argv[0];
        return;
    }
    auto line = process_->read_stdout_line(5000ms);
    if (!line) {
        error_ = "no readiness line from " + argv[0] + "; stderr: " + process_->drain_stderr();
        return;
    }
    auto at = line->find("port=");
    if (at == std::string::npos || line->find("model=" + model) == std::string::npos) {
        error_ = "bad readiness line: " + *line;
        return;
    }
    port_ = static_cast<std::uint16_t>(std::stoi(line->substr(at + 5)));
    if (auto u = line->find(" unix="); u != std::string::npos) unix_path_ = line->substr(u + 6, line->find(' ', u + 6) - (u + 6));
}

int ServerProcess::open_fds() const {
    int count = 0;
    DIR* dir = ::opendir(("/proc/" + std::to_string(pid()) + "/fd").c_str());
    if (!dir) return -1;
    while (dirent* e = ::readdir(dir)) count += e->d_name[0] != '.';
    ::closedir(dir);
    return count;
}

int ServerProcess::zombie_children() const {
    int zombies = 0;
    for_each_child(pid(), [&](const std::string& state) { zombies += state == "Z"; });
    return zombies;
}

int ServerProcess::child_processes() const {
    int children = 0;
    for_each_child(pid(), [&](const std::string&) { ++children; });
    return children;
}

long ServerProcess::rss_kib() const {
    return status_field(pid(), "VmRSS");
}

int ServerProcess::threads() const {
    return static_cast<int>(status_field(pid(), "Threads"));
}

std::optional<int> ServerProcess::stop(Millis limit) {
    if (!process_) return std::nullopt;
    return process_->signal_and_wait(SIGTERM, limit);
}

bool has_sanitizer_report(std::string_view stderr_text) {
    return stderr_text.find("Sanitizer") != std::string_view::npos ||
           stderr_text.find("runtime error:") != std::string_view::npos;  // UBSan's wording
}

// ---- client ----

sb::UniqueFd connect_to(std::uint16_t port) {
    sb::UniqueFd fd{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    if (!fd) return fd;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval tv{5, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return {};
    return fd;
}

sb::UniqueFd connect_unix(const std::string& path) {
    sb::UniqueFd fd{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    sockaddr_un addr{};
    if (!fd || path.size() >= sizeof addr.sun_path) return {};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    timeval tv{5, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return {};
    return fd;
}

bool send_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n <= 0) return false;
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

std::string read_exactly(int fd, std::size_t total, Millis timeout) {
    auto deadline = Clock::now() + timeout;
    std::string data;
    char buf[16384];
    while (data.size() < total && wait_readable(fd, deadline)) {
        ssize_t n = ::recv(fd, buf, std::min(sizeof buf, total - data.size()), 0);
        if (n <= 0) break;
        data.append(buf, static_cast<std::size_t>(n));
    }
    return data;
}

std::string read_to_eof(int fd, Millis timeout, bool* closed) {
    auto deadline = Clock::now() + timeout;
    std::string data;
    char buf[16384];
    if (closed) *closed = false;
    while (wait_readable(fd, deadline)) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            if (closed) *closed = true;  // EOF, or a reset: either way the server closed it
            break;
        }
        data.append(buf, static_cast<std::size_t>(n));
    }
    return data;
}

bool HttpResponse::has_header(std::string_view name, std::string_view value) const {
    std::string needle = "\r\n" + std::string(name) + ": " + std::string(value) + "\r\n";
    std::string h = head + "\r\n";
    return ::strcasestr(h.c_str(), needle.c_str()) != nullptr;
}

std::optional<HttpResponse> read_http_response(int fd, std::string& pending, Millis timeout) {
    auto deadline = Clock::now() + timeout;
    auto fill = [&]() {
        if (!wait_readable(fd, deadline)) return false;
        char buf[16384];
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) return false;
        pending.append(buf, static_cast<std::size_t>(n));
        return true;
    };
    std::size_t head_end;
    while ((head_end = pending.find("\r\n\r\n")) == std::string::npos) {
        if (!fill()) return std::nullopt;
    }
    HttpResponse r;
    r.head = pending.substr(0, head_end);
    if (r.head.rfind("HTTP/1.", 0) != 0 || r.head.size() < 12) return std::nullopt;
    r.status = std::atoi(r.head.c_str() + 9);
    std::size_t length = 0;
    if (const char* cl = ::strcasestr(r.head.c_str(), "\r\ncontent-length:"))
        length = std::strtoul(cl + 17, nullptr, 10);
    while (pending.size() < head_end + 4 + length) {
        if (!fill()) return std::nullopt;
    }
    r.body = pending.substr(head_end + 4, length);
    pending.erase(0, head_end + 4 + length);
    return r;
}

std::optional<HttpResponse> http_get(std::uint16_t port, std::string_view path) {
    sb::UniqueFd fd = connect_to(port);
    if (!fd) return std::nullopt;
    std::string request = "GET " + std::string(path) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    if (!send_all(fd.get(), request)) return std::nullopt;
    std::string pending;
    return read_http_response(fd.get(), pending);
}

SocketPath::SocketPath(std::string_view what, const std::string& model)
    : path_("/tmp/serverbench-" + std::string(what) + "-" + std::to_string(::getpid()) + "-" + model + ".sock") {
    ::unlink(path_.c_str());
}

SocketPath::~SocketPath() { ::unlink(path_.c_str()); }

bool file_exists(const std::string& path) {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace sbtest
