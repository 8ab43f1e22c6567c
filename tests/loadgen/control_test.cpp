// The real loadgen binary on the transports and controls a driver uses: a Unix domain socket
// (--unix), TCP_NODELAY (--tcp-nodelay), the start barrier of several load generators
// (--start-on-stdin), and the measured window's signal to an external counter (--window-fifo).
//
// Every process is a sbtest::Process, killed and reaped by its destructor, and every wait has a
// limit, so a failing test leaves nothing behind and a hung loadgen fails instead of hanging.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
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

// TCP_NODELAY of every connected TCP socket of process `pid`, read through a copy of each
// descriptor (pidfd_getfd): the option as the kernel holds it on loadgen's own sockets.
std::vector<int> nodelay_of_connected_tcp_sockets(pid_t pid) {
    std::vector<int> values;
    const sb::UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!pidfd) return values;
    std::error_code ec;
    for (const auto& entry :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
        const auto target = std::filesystem::read_symlink(entry.path(), ec);
        if (ec || target.string().rfind("socket:", 0) != 0) continue;
        const int number = std::stoi(entry.path().filename().string());
        const sb::UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), number, 0)));
        int domain = 0, protocol = 0, nodelay = -1;
        socklen_t len = sizeof(int);
        sockaddr_storage peer{};
        socklen_t peer_len = sizeof peer;
        if (!fd || getsockopt(fd.get(), SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0 || domain != AF_INET ||
            getsockopt(fd.get(), SOL_SOCKET, SO_PROTOCOL, &protocol, &len) != 0 || protocol != IPPROTO_TCP ||
            getpeername(fd.get(), reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0)
            continue;
        if (getsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &nodelay, &len) == 0) values.push_back(nodelay);
    }
    return values;
}

class LoadgenNoDelay : public testing::TestWithParam<const char*> {};

// Copying another process's descriptor needs ptrace rights over it (a child of ours, same user):
// a kernel before 5.6 or a stricter Yama setting refuses it.
bool can_copy_descriptors_of(pid_t pid) {
    const sb::UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    return pidfd && sb::UniqueFd(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), 2, 0)));
}

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

}  // namespace
