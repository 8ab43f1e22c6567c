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

// A FIFO that becomes loadgen's stdin (through `sh -c 'exec ... < FIFO'`, so the pid stays
// loadgen's): the test writes lines to it, or closes it for an EOF.
class StdinFifo {
public:
    StdinFifo() : path_(lgtest::temp_path("lg_stdin")) {
        if (::mkfifo(path_.c_str(), 0600) == 0) fd_.reset(::open(path_.c_str(), O_RDWR | O_CLOEXEC));
    }
    ~StdinFifo() { ::unlink(path_.c_str()); }
    StdinFifo(const StdinFifo&) = delete;
    StdinFifo& operator=(const StdinFifo&) = delete;

    bool ok() const { return static_cast<bool>(fd_); }
    std::vector<std::string> command(std::vector<std::string> argv) const {
        argv.insert(argv.begin(), {"/bin/sh", "-c", "f=$1; shift; exec \"$@\" < \"$f\"", "sh", path_});
        return argv;
    }
    bool write_line(const std::string& line) {
        const std::string bytes = line + "\n";
        return ::write(fd_.get(), bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
    }
    void close() { fd_.reset(); }

private:
    std::string path_;
    sb::UniqueFd fd_;
};

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

}  // namespace
