// The real loadgen binary on the transports and controls a driver uses: a Unix domain socket
// (--unix), TCP_NODELAY (--tcp-nodelay), the start barrier of several load generators
// (--start-on-stdin), and the measured window's signal to an external counter (--window-fifo).
//
// Every process is a sbtest::Process, killed and reaped by its destructor, and every wait has a
// limit, so a failing test leaves nothing behind and a hung loadgen fails instead of hanging.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/tcp.h>  // struct tcp_info with tcpi_bytes_sent (glibc's lacks it)
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "loadgen_harness.hpp"
#include "test_support.hpp"

namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using lgtest::count;
using lgtest::errors_of;
using lgtest::kLoadgen;
using lgtest::MisbehavingServer;
using lgtest::run_loadgen;
using lgtest::StdinFifo;
using lgtest::total_errors;

// ------------------------------------------------------------------------------- --unix

// The server listens on a Unix socket only, so every answer it gave came over that socket.
TEST(LoadgenUnix, RunOverAUnixSocketIsClean) {
    const std::string path = lgtest::temp_path("lg_unix") + ".sock";
    MisbehavingServer server("ok", {}, path);
    ASSERT_TRUE(server.ok());
    // --port and --tcp-nodelay are TCP-only: accepted, not applied (nothing listens on port 1).
    const auto run = run_loadgen(
        {"--unix", path, "--port", "1", "--tcp-nodelay", "off", "--connections", "4", "--duration", "1s"});
    ASSERT_TRUE(run.result.is_object()) << run.stderr_text;
    EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
    EXPECT_EQ(total_errors(run.result), 0u) << run.result["totals"].dump();
    EXPECT_GT(count(run.result, {"totals", "requests"}), 0u);
    EXPECT_EQ(count(run.result, {"connections", "established"}), 4u);
    const json& config = run.result["config"];
    EXPECT_EQ(config["transport"], "unix");
    EXPECT_EQ(config["unix_path"], path);
    EXPECT_TRUE(config["host"].is_null());
    EXPECT_TRUE(config["port"].is_null());
    EXPECT_TRUE(config["tcp_nodelay"].is_null());
    std::filesystem::remove(path);
}

TEST(LoadgenUnix, CloseModeReconnectsOverTheSocket) {
    const std::string path = lgtest::temp_path("lg_unix_close") + ".sock";
    MisbehavingServer server("ok", {}, path);
    ASSERT_TRUE(server.ok());
    const auto run =
        run_loadgen({"--unix", path, "--mode", "close", "--connections", "2", "--requests", "200"});
    ASSERT_TRUE(run.result.is_object()) << run.stderr_text;
    EXPECT_EQ(run.exit_code, 0) << run.stderr_text;
    EXPECT_EQ(count(run.result, {"totals", "requests"}), 200u);
    EXPECT_GE(count(run.result, {"connect_us", "count"}), 200u);
    std::filesystem::remove(path);
}

TEST(LoadgenUnix, MissingSocketIsAConnectError) {
    const auto run = run_loadgen({"--unix", lgtest::temp_path("lg_unix_none"), "--duration", "500ms"});
    ASSERT_TRUE(run.result.is_object()) << run.stderr_text;
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_GT(errors_of(run.result, "connect"), 0u);
    EXPECT_GT(count(run.result, {"errors_by_errno", "ENOENT"}), 0u) << run.result["errors_by_errno"].dump();
}

TEST(LoadgenUnix, BadPathIsUsage) {
    EXPECT_EQ(run_loadgen({"--unix", std::string(200, 'x')}).exit_code, 2);
    EXPECT_EQ(run_loadgen({"--unix", ""}).exit_code, 2);
}

// -------------------------------------------------------------------------- --tcp-nodelay

// Calls `inspect` with a copy (pidfd_getfd) of every connected TCP socket of process `pid`: the
// sockets as the kernel holds them, options and counters included.
template <class F>
void for_each_connected_tcp_socket(pid_t pid, F&& inspect) {
    const sb::UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!pidfd) return;
    std::error_code ec;
    for (const auto& entry :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
        const auto target = std::filesystem::read_symlink(entry.path(), ec);
        if (ec || target.string().rfind("socket:", 0) != 0) continue;
        const int number = std::stoi(entry.path().filename().string());
        const sb::UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), number, 0)));
        int domain = 0, protocol = 0;
        socklen_t len = sizeof(int);
        sockaddr_storage peer{};
        socklen_t peer_len = sizeof peer;
        if (fd && getsockopt(fd.get(), SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_INET &&
            getsockopt(fd.get(), SOL_SOCKET, SO_PROTOCOL, &protocol, &len) == 0 && protocol == IPPROTO_TCP &&
            getpeername(fd.get(), reinterpret_cast<sockaddr*>(&peer), &peer_len) == 0)
            inspect(fd.get());
    }
}

std::vector<int> nodelay_of_connected_tcp_sockets(pid_t pid) {
    std::vector<int> values;
    for_each_connected_tcp_socket(pid, [&](int fd) {
        int nodelay = -1;
        socklen_t len = sizeof nodelay;
        if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len) == 0) values.push_back(nodelay);
    });
    return values;
}

// Copying another process's descriptor needs ptrace rights over it (a child of ours, same user):
// a kernel before 5.6 or a stricter Yama setting refuses it.
bool can_copy_descriptors_of(pid_t pid) {
    const sb::UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    return pidfd && sb::UniqueFd(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), 2, 0)));
}

class LoadgenNoDelay : public testing::TestWithParam<const char*> {};

TEST_P(LoadgenNoDelay, OptionIsSetOnLoadgensSockets) {
    sbtest::ServerProcess server("epoll");
    ASSERT_TRUE(server.ok()) << server.error();
    const std::string setting = GetParam();
    std::vector<std::string> args{kLoadgen,
                                  "--port",
                                  std::to_string(server.port()),
                                  "--connections",
                                  "3",
                                  "--duration",
                                  "3s",
                                  "--quiet",
                                  "--out",
                                  "/dev/null"};
    if (setting != "default") args.insert(args.end(), {"--tcp-nodelay", setting});
    auto loadgen = sbtest::Process::spawn(args);
    ASSERT_TRUE(loadgen);
    if (!can_copy_descriptors_of(loadgen->pid())) GTEST_SKIP() << "pidfd_getfd is not permitted here";
    std::vector<int> values;
    ASSERT_TRUE(sbtest::eventually(
        [&] {
            values = nodelay_of_connected_tcp_sockets(loadgen->pid());
            return values.size() == 3;
        },
        2500ms))
        << "sockets seen: " << values.size();
    const int expected = setting == "off" ? 0 : 1;
    for (const int v : values) EXPECT_EQ(v != 0, expected != 0) << setting;
    EXPECT_EQ(loadgen->wait_exit(10s), 0) << loadgen->drain_stderr();
}

INSTANTIATE_TEST_SUITE_P(Settings, LoadgenNoDelay, testing::Values("default", "on", "off"));

TEST(LoadgenNoDelayUsage, OnlyOnOrOff) {
    EXPECT_EQ(run_loadgen({"--port", "1", "--tcp-nodelay", "yes"}).exit_code, 2);
}

// ----------------------------------------------------------------------- --start-on-stdin

// Data bytes sent so far on each of loadgen's connected TCP sockets.
std::vector<std::uint64_t> bytes_sent_per_socket(pid_t pid) {
    std::vector<std::uint64_t> sent;
    for_each_connected_tcp_socket(pid, [&](int fd) {
        tcp_info info{};
        socklen_t len = sizeof info;
        if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0) sent.push_back(info.tcpi_bytes_sent);
    });
    return sent;
}

struct HeldLoadgen {
    std::optional<sbtest::Process> process;
    std::string out;
};

// Starts loadgen --start-on-stdin and reads its "connected N" line into `connected`.
HeldLoadgen start_held(StdinFifo& in, std::uint16_t port, const std::string& connections,
                       std::optional<std::string>& connected) {
    HeldLoadgen h;
    h.out = lgtest::temp_path("lg_held") + ".json";
    h.process = sbtest::Process::spawn(
        in.command({kLoadgen, "--port", std::to_string(port), "--connections", connections, "--duration",
                    "1s", "--start-on-stdin", "--quiet", "--out", h.out}));
    if (h.process) connected = h.process->read_stdout_line(5000ms);
    return h;
}

json read_json(const std::string& path) {
    std::ifstream in(path);
    return json::parse(in, nullptr, /*allow_exceptions=*/false);
}

// Connected, then nothing is sent (0 data bytes on every socket, even a second later) until go.
TEST(LoadgenStartBarrier, ConnectsThenSendsNothingUntilGo) {
    sbtest::ServerProcess server("epoll");
    ASSERT_TRUE(server.ok()) << server.error();
    StdinFifo in;
    ASSERT_TRUE(in.ok());
    std::optional<std::string> connected;
    HeldLoadgen held = start_held(in, server.port(), "4", connected);
    ASSERT_TRUE(held.process);
    ASSERT_EQ(connected, "connected 4");
    if (!can_copy_descriptors_of(held.process->pid())) GTEST_SKIP() << "pidfd_getfd is not permitted here";
    std::this_thread::sleep_for(1s);
    EXPECT_EQ(bytes_sent_per_socket(held.process->pid()), std::vector<std::uint64_t>(4, 0));
    EXPECT_FALSE(held.process->wait_exit(0ms));  // still waiting
    const auto go = std::chrono::steady_clock::now();
    ASSERT_TRUE(in.write_line("go"));
    ASSERT_EQ(held.process->wait_exit(10s), 0) << held.process->drain_stderr();
    EXPECT_GE(std::chrono::steady_clock::now() - go, 1s);  // the 1 s window began at go
    const json r = read_json(held.out);
    ASSERT_TRUE(r.is_object());
    EXPECT_EQ(total_errors(r), 0u);
    EXPECT_GT(count(r, {"totals", "requests"}), 0u);
    EXPECT_EQ(count(r, {"connections", "established"}), 4u);
    EXPECT_EQ(count(r, {"connections", "reconnects"}), 0u);  // the held connections carried the load
    std::remove(held.out.c_str());
}

TEST(LoadgenStartBarrier, EofBeforeGoExits3WithoutAResult) {
    sbtest::ServerProcess server("epoll");
    ASSERT_TRUE(server.ok()) << server.error();
    StdinFifo in;
    ASSERT_TRUE(in.ok());
    std::optional<std::string> connected;
    HeldLoadgen held = start_held(in, server.port(), "2", connected);
    ASSERT_TRUE(held.process);
    ASSERT_EQ(connected, "connected 2");
    in.close();
    EXPECT_EQ(held.process->wait_exit(5s), 3);
    const std::string err = held.process->drain_stderr();
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_NE(err.find("go"), std::string::npos) << err;
    EXPECT_FALSE(std::filesystem::exists(held.out));
}

TEST(LoadgenStartBarrier, AnotherLineThanGoExits3) {
    sbtest::ServerProcess server("epoll");
    ASSERT_TRUE(server.ok()) << server.error();
    StdinFifo in;
    ASSERT_TRUE(in.ok());
    std::optional<std::string> connected;
    HeldLoadgen held = start_held(in, server.port(), "1", connected);
    ASSERT_TRUE(held.process);
    ASSERT_EQ(connected, "connected 1");
    ASSERT_TRUE(in.write_line("start"));
    EXPECT_EQ(held.process->wait_exit(5s), 3);
    EXPECT_FALSE(std::filesystem::exists(held.out));
}

// What the barrier is for: one controller starts several load generators together; their results
// merge exactly. Nothing listens for the connections' count: it is reported, not waited for.
TEST(LoadgenStartBarrier, TwoLoadGeneratorsStartTogetherAndMerge) {
    sbtest::ServerProcess server("epoll");
    ASSERT_TRUE(server.ok()) << server.error();
    StdinFifo in_a, in_b;
    ASSERT_TRUE(in_a.ok() && in_b.ok());
    std::optional<std::string> connected_a, connected_b;
    HeldLoadgen a = start_held(in_a, server.port(), "2", connected_a);
    HeldLoadgen b = start_held(in_b, server.port(), "3", connected_b);
    ASSERT_TRUE(a.process && b.process);
    ASSERT_EQ(connected_a, "connected 2");
    ASSERT_EQ(connected_b, "connected 3");
    ASSERT_TRUE(in_a.write_line("go") && in_b.write_line("go"));
    ASSERT_EQ(a.process->wait_exit(10s), 0) << a.process->drain_stderr();
    ASSERT_EQ(b.process->wait_exit(10s), 0) << b.process->drain_stderr();
    const std::string merged = lgtest::temp_path("lg_held_merged") + ".json";
    auto merge = sbtest::Process::spawn({kLoadgen, "merge", a.out, b.out, "--out", merged});
    ASSERT_TRUE(merge);
    ASSERT_EQ(merge->wait_exit(10s), 0) << merge->drain_stderr();
    const json m = read_json(merged);
    EXPECT_EQ(count(m, {"connections", "established"}), 5u);
    EXPECT_EQ(count(m, {"totals", "requests"}), count(read_json(a.out), {"totals", "requests"}) +
                                                    count(read_json(b.out), {"totals", "requests"}));
    for (const auto& f : {a.out, b.out, merged}) std::remove(f.c_str());
}

// -------------------------------------------------------------------------- --window-fifo

// The two FIFOs of `perf stat --control fifo:CTL,ACK`, with the test in perf's place: CTL held
// open for reading (so loadgen finds a reader), ACK held read-write (as perf holds it).
class ControlFifos {
public:
    ControlFifos() : ctl_path_(lgtest::temp_path("lg_ctl")), ack_path_(lgtest::temp_path("lg_ack")) {
        if (::mkfifo(ctl_path_.c_str(), 0600) != 0 || ::mkfifo(ack_path_.c_str(), 0600) != 0) return;
        ctl_.reset(::open(ctl_path_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
        ack_.reset(::open(ack_path_.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
    }
    ~ControlFifos() {
        ::unlink(ctl_path_.c_str());
        ::unlink(ack_path_.c_str());
    }
    ControlFifos(const ControlFifos&) = delete;
    ControlFifos& operator=(const ControlFifos&) = delete;

    bool ok() const { return ctl_ && ack_; }
    const std::string& ctl() const { return ctl_path_; }
    const std::string& ack() const { return ack_path_; }
    // Perf's end: reopen the paths under `perf stat --control fifo:...` instead.
    void release() {
        ctl_.reset();
        ack_.reset();
    }

    // The next line loadgen wrote to CTL, waiting at most `timeout`.
    std::optional<std::string> read_command(sbtest::Millis timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (const auto lf = pending_.find('\n'); lf != std::string::npos) {
                std::string line = pending_.substr(0, lf);
                pending_.erase(0, lf + 1);
                return line;
            }
            if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
            char buf[64];
            const ssize_t n = ::read(ctl_.get(), buf, sizeof buf);
            if (n > 0)
                pending_.append(buf, static_cast<std::size_t>(n));
            else
                std::this_thread::sleep_for(1ms);
        }
    }
    // As perf answers: "ack\n" and its terminating NUL.
    bool send_ack() { return ::write(ack_.get(), "ack\n", 5) == 5; }
    bool send_answer(const std::string& bytes) {
        return ::write(ack_.get(), bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
    }

private:
    std::string ctl_path_, ack_path_;
    sb::UniqueFd ctl_, ack_;
    std::string pending_;
};

std::vector<std::string> windowed_loadgen(std::uint16_t port, const std::string& fifo_arg,
                                          const std::string& out) {
    return {kLoadgen,        "--port",     std::to_string(port),
            "--connections", "2",          "--warmup",
            "500ms",         "--duration", "1s",
            "--quiet",       "--out",      out,
            "--window-fifo", fifo_arg};
}

// enable after the warm-up, disable a window later, each acknowledged; the JSON records the window
// and both signals inside it.
TEST(LoadgenWindowFifo, EnableAfterWarmupDisableAtTheEnd) {
    sbtest::ServerProcess server("epoll");
    ASSERT_TRUE(server.ok()) << server.error();
    ControlFifos fifos;
    ASSERT_TRUE(fifos.ok());
    const std::string out = lgtest::temp_path("lg_window") + ".json";
    const auto started = std::chrono::steady_clock::now();
    auto loadgen =
        sbtest::Process::spawn(windowed_loadgen(server.port(), fifos.ctl() + "," + fifos.ack(), out));
    ASSERT_TRUE(loadgen);
    ASSERT_EQ(fifos.read_command(5s), "enable");
    const auto enabled = std::chrono::steady_clock::now();
    EXPECT_GE(enabled - started, 500ms);  // not before the warm-up is over
    ASSERT_TRUE(fifos.send_ack());
    ASSERT_EQ(fifos.read_command(5s), "disable");
    const auto disabled = std::chrono::steady_clock::now();
    EXPECT_GE(disabled - enabled, 900ms);  // the 1 s window, give or take the pipe's latency
    ASSERT_TRUE(fifos.send_ack());
    ASSERT_EQ(loadgen->wait_exit(10s), 0) << loadgen->drain_stderr();
    EXPECT_EQ(fifos.read_command(0ms), std::nullopt);  // nothing else was written
    const json r = read_json(out);
    ASSERT_TRUE(r.is_object());
    const json& w = r["window"];
    EXPECT_EQ(w["end_monotonic_ns"].get<std::uint64_t>() - w["start_monotonic_ns"].get<std::uint64_t>(),
              1'000'000'000u);
    EXPECT_NEAR(w["end_unix_s"].get<double>() - w["start_unix_s"].get<double>(), 1.0, 0.01);
    const json& c = w["counter_control"];
    EXPECT_EQ(c["ok"], true) << c.dump();
    EXPECT_EQ(c["fifo"], fifos.ctl());
    EXPECT_EQ(c["ack_fifo"], fifos.ack());
    EXPECT_GE(c["enable_monotonic_ns"].get<std::uint64_t>(), w["start_monotonic_ns"].get<std::uint64_t>());
    EXPECT_GE(c["disable_monotonic_ns"].get<std::uint64_t>(), w["end_monotonic_ns"].get<std::uint64_t>());
    EXPECT_TRUE(c["enable_ack_us"].is_number());
    EXPECT_TRUE(c["disable_ack_us"].is_number());
    std::remove(out.c_str());
}

TEST(LoadgenWindowFifo, WithoutAckFifoNothingIsAwaited) {
    sbtest::ServerProcess server("epoll");
    ASSERT_TRUE(server.ok()) << server.error();
    ControlFifos fifos;
    ASSERT_TRUE(fifos.ok());
    const std::string out = lgtest::temp_path("lg_window_noack") + ".json";
    auto loadgen = sbtest::Process::spawn(windowed_loadgen(server.port(), fifos.ctl(), out));
    ASSERT_TRUE(loadgen);
    EXPECT_EQ(fifos.read_command(5s), "enable");
    EXPECT_EQ(fifos.read_command(5s), "disable");
    ASSERT_EQ(loadgen->wait_exit(10s), 0) << loadgen->drain_stderr();
    const json c = read_json(out)["window"]["counter_control"];
    EXPECT_EQ(c["ok"], true);
    EXPECT_TRUE(c["ack_fifo"].is_null());
    EXPECT_TRUE(c["enable_ack_us"].is_null());
    std::remove(out.c_str());
}

// A counter that never acknowledges may not have counted: the run says so and exits 1, after
// waiting 2 s for the ack, never longer.
TEST(LoadgenWindowFifo, MissingAckFailsTheRunAfter2s) {
    sbtest::ServerProcess server("epoll");
    ASSERT_TRUE(server.ok()) << server.error();
    ControlFifos fifos;
    ASSERT_TRUE(fifos.ok());
    const auto run = run_loadgen({"--port", std::to_string(server.port()), "--connections", "2", "--duration",
                                  "500ms", "--window-fifo", fifos.ctl() + "," + fifos.ack()},
                                 15s);
    ASSERT_TRUE(run.result.is_object()) << run.stderr_text;
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_EQ(total_errors(run.result), 0u);
    const json& c = run.result["window"]["counter_control"];
    EXPECT_EQ(c["ok"], false);
    EXPECT_NE(c["error"].get<std::string>().find("no ack for 'enable'"), std::string::npos) << c.dump();
    EXPECT_NE(run.stderr_text.find("--window-fifo"), std::string::npos) << run.stderr_text;
}

// Another answer than "ack", or bytes without an end, are not an acknowledgement either.
TEST(LoadgenWindowFifo, WrongAnswerFailsTheRun) {
    sbtest::ServerProcess server("epoll");
    ASSERT_TRUE(server.ok()) << server.error();
    for (const std::string& answer : {std::string("nope\n"), std::string(100, 'a')}) {
        ControlFifos fifos;
        ASSERT_TRUE(fifos.ok());
        const std::string out = lgtest::temp_path("lg_window_wrong") + ".json";
        auto loadgen = sbtest::Process::spawn(
            {kLoadgen, "--port", std::to_string(server.port()), "--connections", "1", "--duration", "300ms",
             "--quiet", "--out", out, "--window-fifo", fifos.ctl() + "," + fifos.ack()});
        ASSERT_TRUE(loadgen);
        ASSERT_EQ(fifos.read_command(5s), "enable");
        ASSERT_TRUE(fifos.send_answer(answer));
        EXPECT_EQ(loadgen->wait_exit(10s), 1);
        const json c = read_json(out)["window"]["counter_control"];
        EXPECT_EQ(c["ok"], false) << c.dump();
        EXPECT_TRUE(c["enable_ack_us"].is_null());
        EXPECT_EQ(fifos.read_command(0ms), std::nullopt);  // no "disable" after a failed "enable"
        std::remove(out.c_str());
    }
}

TEST(LoadgenWindowFifo, NotAFifoOrNoReaderIsUsage) {
    const std::string file = lgtest::temp_path("lg_not_fifo");
    std::ofstream(file) << "x";
    EXPECT_EQ(run_loadgen({"--port", "1", "--window-fifo", file}).exit_code, 2);
    const std::string lonely = lgtest::temp_path("lg_lonely_fifo");
    ASSERT_EQ(::mkfifo(lonely.c_str(), 0600), 0);
    const auto run = run_loadgen({"--port", "1", "--window-fifo", lonely});
    EXPECT_EQ(run.exit_code, 2);
    EXPECT_NE(run.stderr_text.find("no process reads it"), std::string::npos) << run.stderr_text;
    EXPECT_EQ(run_loadgen({"--port", "1", "--window-fifo", lonely + ","}).exit_code, 2);
    std::remove(file.c_str());
    ::unlink(lonely.c_str());
}

// ------------------------------------------------- --window-fifo with the real perf stat

bool perf_can_count_syscalls() {
    auto perf = sbtest::Process::spawn({"perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "true"});
    return perf && perf->wait_exit(10s) == 0 &&
           perf->drain_stderr().find("raw_syscalls:sys_enter") != std::string::npos;
}

// The first number of perf's CSV line for `event`, nullopt if it is missing or "<not counted>".
std::optional<std::uint64_t> perf_count(const std::string& path, const std::string& event) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        const auto fields = line.find(",," + event + ",");
        if (fields == std::string::npos || fields == 0 || !std::isdigit(static_cast<unsigned char>(line[0])))
            continue;
        return std::stoull(line.substr(0, fields));
    }
    return std::nullopt;
}

// server-epoll under `perf stat -D -1 --control fifo:CTL,ACK`, loaded 2 s of warm-up and a 0.5 s
// window at a fixed rate (about 4000 requests, then 1000). Every request costs the server at least
// a read and a write, so counting the whole run would give >= 10 system calls per window request;
// counting the window only gives about 2-4.
TEST(LoadgenWindowFifo, RealPerfCountsTheWindowOnly) {
    if (!perf_can_count_syscalls()) GTEST_SKIP() << "perf stat cannot count raw_syscalls:sys_enter here";
    ControlFifos fifos;
    ASSERT_TRUE(fifos.ok());
    fifos.release();
    const std::string perf_out = lgtest::temp_path("lg_perf") + ".txt";
    auto perf = sbtest::Process::spawn(
        {"perf", "stat", "-x,", "-D", "-1", "--control", "fifo:" + fifos.ctl() + "," + fifos.ack(), "-e",
         "raw_syscalls:sys_enter", "-o", perf_out, "--", sbtest::bin_dir() + "/server-epoll", "--port", "0"});
    ASSERT_TRUE(perf);
    const auto ready = perf->read_stdout_line(10s);
    ASSERT_TRUE(ready) << perf->drain_stderr();
    const auto port_at = ready->find("port="), pid_at = ready->find("pid=");
    ASSERT_TRUE(port_at != std::string::npos && pid_at != std::string::npos) << *ready;
    const pid_t server_pid = std::stoi(ready->substr(pid_at + 4));
    const auto run =
        run_loadgen({"--port", ready->substr(port_at + 5, ready->find(' ', port_at) - port_at - 5), "--rate",
                     "2000", "--connections", "2", "--warmup", "2s", "--duration", "500ms", "--window-fifo",
                     fifos.ctl() + "," + fifos.ack()});
    // perf reports when its child exits: the server is stopped, never perf (which would print nothing).
    ::kill(server_pid, SIGTERM);
    ASSERT_EQ(perf->wait_exit(10s), 0) << perf->drain_stderr();
    ASSERT_TRUE(run.result.is_object()) << run.stderr_text;
    ASSERT_EQ(run.exit_code, 0) << run.stderr_text;
    EXPECT_EQ(run.result["window"]["counter_control"]["ok"], true);
    const auto window_requests = count(run.result, {"totals", "requests"});
    ASSERT_GT(window_requests, 500u);
    const auto syscalls = perf_count(perf_out, "raw_syscalls:sys_enter");
    ASSERT_TRUE(syscalls) << "perf counted nothing: was the window ever enabled?";
    const double per_request = static_cast<double>(*syscalls) / static_cast<double>(window_requests);
    EXPECT_GE(per_request, 1.5) << *syscalls << " system calls, " << window_requests << " requests";
    EXPECT_LE(per_request, 7.0) << *syscalls << " system calls, " << window_requests << " requests";
    std::remove(perf_out.c_str());
}

}  // namespace
