// Hostile datagrams against the models over --transport udp: garbage, a datagram past the 64 KiB
// bound, a sender nobody can answer, a flood, and more datagrams than the per-datagram models'
// caps. After each, the server must still answer, hold no more threads, processes or descriptors
// than before, have counted what it dropped, and stop with exit 0.
//
// Bounds here are generous limits on "served at all", never speed measurements.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "datagram_client.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using sb::UniqueFd;
using Clock = std::chrono::steady_clock;

struct SocketPath : sbtest::SocketPath {
    explicit SocketPath(const std::string& model) : sbtest::SocketPath("udp-robust", model) {}
};

class DatagramRobustness : public testing::TestWithParam<std::string> {
protected:
    const std::string& model() const { return GetParam(); }

    // Starts the server over UDP (on --unix `unix_path` if given), checks that it answers, and takes
    // the baseline the after-checks use.
    void start(std::vector<std::string> args, const std::string& unix_path = "") {
        args.insert(args.begin(), {"--transport", "udp"});
        if (!unix_path.empty()) args.insert(args.end(), {"--unix", unix_path});
        unix_path_ = unix_path;
        server_.emplace(model(), std::move(args));
        ASSERT_TRUE(server_->ok()) << server_->error();
        ASSERT_TRUE(answers()) << "server-" << model() << " does not answer before any attack";
        std::this_thread::sleep_for(50ms);  // thread-per-conn's thread, fork's child: ended by now
        base_fds_ = server_->open_fds();
        base_threads_ = server_->threads();
        base_children_ = server_->child_processes();
    }

    UniqueFd client() const {
        return unix_path_.empty() ? sbtest::udp_client(server_->port())
                                  : sbtest::unix_datagram_client(unix_path_);
    }

    // One datagram answered with its bytes by a fresh client, within a short wait.
    bool answers() const {
        UniqueFd fd = client();
        return fd && sbtest::exchange(fd.get(), "still there?", 500ms) == "still there?";
    }

    void expect_healthy() {
        SCOPED_TRACE("after the attack, server-" + model());
        EXPECT_TRUE(sbtest::eventually([&] { return answers(); }, 8000ms)) << "no longer answers";
        EXPECT_TRUE(sbtest::eventually([&] { return server_->open_fds() <= base_fds_; }, 4000ms))
            << "descriptors: " << server_->open_fds() << " open, " << base_fds_ << " before";
        EXPECT_TRUE(sbtest::eventually([&] { return server_->zombie_children() == 0; }, 4000ms))
            << server_->zombie_children() << " zombie children";
        EXPECT_TRUE(sbtest::eventually([&] { return server_->child_processes() <= base_children_; }, 4000ms))
            << server_->child_processes() << " children, " << base_children_ << " before";
        EXPECT_TRUE(sbtest::eventually([&] { return server_->threads() <= base_threads_; }, 4000ms))
            << server_->threads() << " threads, " << base_threads_ << " before";
    }

    // SIGTERM: exit 0 within a second, no sanitizer report; the stop line's counts.
    sbtest::DatagramCounts stop_and_check() {
        if (!server_ || !server_->ok() || stopped_) return {};
        stopped_ = true;
        std::this_thread::sleep_for(100ms);  // a worker process counts its last answer just after sending it
        const auto code = server_->stop(1000ms);
        const std::string err = server_->process().drain_stderr();
        EXPECT_EQ(code, std::optional<int>(0)) << "server-" << model() << " did not stop cleanly:\n" << err;
        EXPECT_FALSE(sbtest::has_sanitizer_report(err)) << err;
        const sbtest::DatagramCounts counts = sbtest::parse_datagram_counts(err);
        EXPECT_TRUE(counts.found()) << err;
        EXPECT_TRUE(counts.balanced())
            << "a datagram neither answered nor counted as dropped: " << sbtest::describe(counts);
        return counts;
    }

    void TearDown() override { stop_and_check(); }

    std::optional<sbtest::ServerProcess> server_;
    std::string unix_path_;
    bool stopped_ = false;
    int base_fds_ = 0, base_threads_ = 0, base_children_ = 0;
};

// Noise of every size is just bytes: echoed exactly. A datagram past 64 KiB (possible only on a
// Unix datagram socket) and one from a sender without an address are dropped and counted.
TEST_P(DatagramRobustness, GarbageOversizedAndUnanswerableOnAUnixSocket) {
    SocketPath path(model());
    start({}, path.get());
    UniqueFd fd = client();
    ASSERT_TRUE(fd);
    for (unsigned i = 0; i < 10; ++i) {
        const std::string noise = sbtest::random_bytes(1 + i * 997, 100 + i);
        EXPECT_EQ(sbtest::exchange(fd.get(), noise), std::optional<std::string>(noise)) << "noise " << i;
    }
    const std::string oversized = sbtest::random_bytes(70000, 7);
    ASSERT_EQ(::send(fd.get(), oversized.data(), oversized.size(), 0),
              static_cast<ssize_t>(oversized.size()));
    EXPECT_EQ(sbtest::receive_datagram(fd.get(), 300ms), std::nullopt)
        << "a datagram past 64 KiB was answered";
    const std::string largest = sbtest::random_bytes(65536, 8);
    EXPECT_EQ(sbtest::exchange(fd.get(), largest), std::optional<std::string>(largest)) << "64 KiB exactly";

    UniqueFd anonymous = sbtest::unix_datagram_client(path.get(), false);
    ASSERT_TRUE(anonymous);
    ASSERT_EQ(::send(anonymous.get(), "who?", 4, 0), 4);
    EXPECT_EQ(sbtest::exchange(fd.get(), "next"), std::optional<std::string>("next"));
    fd.reset();
    anonymous.reset();
    expect_healthy();
    const sbtest::DatagramCounts counts = stop_and_check();
    EXPECT_EQ(counts.oversized, 1) << sbtest::describe(counts);
    EXPECT_EQ(counts.send_errors, 1) << sbtest::describe(counts);
}

// A few clients send as fast as they can for a second and never read: the server stays up, then
// answers normally, with its threads, processes and descriptors back where they were.
TEST_P(DatagramRobustness, FloodThenAnswersNormally) {
    start({});
    std::atomic<long> sent{0};
    {
        const auto until = Clock::now() + 1s;
        std::vector<std::jthread> flooders;
        for (int t = 0; t < 3; ++t) {
            flooders.emplace_back([&, t] {
                UniqueFd fd = sbtest::udp_client(server_->port());
                if (!fd) return;
                const std::string payload = sbtest::random_bytes(64, 50 + static_cast<unsigned>(t));
                long n = 0;
                while (Clock::now() < until) {
                    n += ::send(fd.get(), payload.data(), payload.size(), MSG_DONTWAIT) > 0;
                }
                sent += n;
            });
        }
    }
    EXPECT_GT(sent.load(), 0);
    expect_healthy();
    const sbtest::DatagramCounts counts = stop_and_check();
    std::cerr << "[ flood ] server-" << model() << ": sent " << sent.load() << "; "
              << sbtest::describe(counts) << "\n";
    EXPECT_GT(counts.received, 0) << sbtest::describe(counts);
}

// The models that spend a thread, a process or a queue slot per datagram: past --max-conns of them
// at once, a datagram is dropped and counted, and once they finish, datagrams are answered again.
class DatagramCap : public DatagramRobustness {};

TEST_P(DatagramCap, DatagramsPastTheCapAreDroppedAndCounted) {
    start({"--max-conns", "2", "--workers", "1", "--io-us", "300000"});
    UniqueFd fd = client();
    ASSERT_TRUE(fd);
    for (int i = 0; i < 10; ++i) ASSERT_EQ(::send(fd.get(), "capped", 6, 0), 6);
    int answered = 0;
    while (sbtest::receive_datagram(fd.get(), 1000ms)) ++answered;
    EXPECT_GE(answered, 1);
    EXPECT_LT(answered, 10) << "nothing was dropped at --max-conns 2";
    expect_healthy();
    const sbtest::DatagramCounts counts = stop_and_check();
    EXPECT_GE(counts.at_cap, 1) << sbtest::describe(counts);
    EXPECT_EQ(counts.at_cap + answered, 10 + 0) << sbtest::describe(counts);
}

std::string model_test_name(const testing::TestParamInfo<std::string>& info) {
    std::string name = info.param;
    std::replace(name.begin(), name.end(), '-', '_');
    return name;
}

INSTANTIATE_TEST_SUITE_P(AllModels, DatagramRobustness, testing::ValuesIn(sbtest::server_models()),
                         model_test_name);

std::vector<std::string> capped_models() {
    std::vector<std::string> models;
    for (const std::string& m : sbtest::server_models()) {
        if (m == "thread-per-conn" || m == "fork-per-conn" || m == "epoll-pool") models.push_back(m);
    }
    return models;
}

INSTANTIATE_TEST_SUITE_P(PerDatagramModels, DatagramCap, testing::ValuesIn(capped_models()), model_test_name);

}  // namespace
