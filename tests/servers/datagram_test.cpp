// Every model over --transport udp: its real binary, answering datagrams on a loopback UDP port and
// on a Unix datagram socket, with real client sockets. Each test owns its servers, which are
// stopped (or killed and reaped) whatever happens; every wait has a timeout.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "datagram_client.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using sbtest::file_exists;
using sbtest::ServerProcess;

// A socket path of this test's own, removed before and after.
struct SocketPath : sbtest::SocketPath {
    explicit SocketPath(const std::string& model) : sbtest::SocketPath("udp-test", model) {}
};

class DatagramTest : public testing::TestWithParam<std::string> {
protected:
    const std::string& model() const { return GetParam(); }

    // Starts the model under test over UDP with `args` besides.
    ServerProcess* start(std::vector<std::string> args = {}) {
        args.insert(args.begin(), {"--transport", "udp"});
        servers_.push_back(std::make_unique<ServerProcess>(model(), std::move(args)));
        return servers_.back().get();
    }

    // SIGTERM: exit 0 within a second; returns the stop line's counts (after checking for sanitizer
    // reports).
    sbtest::DatagramCounts stop(ServerProcess& server) {
        EXPECT_EQ(server.stop(1000ms), std::optional<int>(0))
            << "server-" << model() << " did not stop in 1 s";
        const std::string err = server.process().drain_stderr();
        EXPECT_FALSE(sbtest::has_sanitizer_report(err)) << err;
        const sbtest::DatagramCounts counts = sbtest::parse_datagram_counts(err);
        EXPECT_TRUE(counts.found()) << "no datagram stop line: " << err;
        EXPECT_NE(err.find("server-" + model() + ": stopped; received "), std::string::npos) << err;
        return counts;
    }

    // Runs the model with args that must be refused: exit 2, one line on stderr, no readiness line.
    void expect_refused(const std::vector<std::string>& args) const {
        std::vector<std::string> argv{sbtest::bin_dir() + "/server-" + model()};
        argv.insert(argv.end(), args.begin(), args.end());
        const std::string shown = testing::PrintToString(args);
        auto p = sbtest::Process::spawn(argv);
        ASSERT_TRUE(p) << shown;
        EXPECT_EQ(p->wait_exit(3000ms), std::optional<int>(2)) << shown;
        const std::string err = p->drain_stderr();
        EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << shown << ": " << err;
        EXPECT_EQ(p->read_stdout_line(100ms), std::nullopt) << shown << ": readiness line after a bad flag";
    }

    void TearDown() override {
        for (auto& server : servers_) {
            if (!server->ok()) continue;
            server->stop(3000ms);
            const std::string err = server->process().drain_stderr();
            EXPECT_FALSE(sbtest::has_sanitizer_report(err)) << err;
        }
        servers_.clear();
    }

private:
    std::vector<std::unique_ptr<ServerProcess>> servers_;
};

#define START_SERVER(var, ...)     \
    auto var = start(__VA_ARGS__); \
    ASSERT_TRUE(var->ok()) << var->error()

// Sends datagrams of 64 and 1400 bytes and an empty one from each client; each answer must be its
// datagram's bytes exactly. Returns how many were answered so.
template <class Clients>
int exchange_all(Clients& clients) {
    int answered = 0;
    unsigned seed = 1;
    for (auto& client : clients) {
        for (std::size_t size : {64, 1400, 64, 1400, 0}) {
            const std::string payload = sbtest::random_bytes(size, seed++);
            const auto answer = sbtest::exchange(client.get(), payload);
            EXPECT_EQ(answer, std::optional<std::string>(payload)) << "a " << size << "-byte datagram";
            answered += answer == payload;
        }
    }
    return answered;
}

TEST_P(DatagramTest, AnswersOverLoopbackFromSeveralSockets) {
    START_SERVER(server);
    std::vector<sb::UniqueFd> clients;
    for (int i = 0; i < 3; ++i) clients.push_back(sbtest::udp_client(server->port()));
    for (auto& c : clients) ASSERT_TRUE(c);
    EXPECT_EQ(exchange_all(clients), 15);
    std::this_thread::sleep_for(100ms);  // a worker process counts its last answer just after sending it
    const sbtest::DatagramCounts counts = stop(*server);
    EXPECT_EQ(counts.received, 15) << sbtest::describe(counts);
    EXPECT_EQ(counts.answered, 15) << sbtest::describe(counts);
}

TEST_P(DatagramTest, AnswersOverAUnixDatagramSocket) {
    SocketPath path(model());
    START_SERVER(server, {"--unix", path.get(), "--protocol", "echo"});
    EXPECT_EQ(server->port(), 0) << "port=0 on a Unix socket";
    std::vector<sb::UniqueFd> clients;
    for (int i = 0; i < 2; ++i) clients.push_back(sbtest::unix_datagram_client(path.get()));
    for (auto& c : clients) ASSERT_TRUE(c);
    EXPECT_EQ(exchange_all(clients), 10);
    clients.clear();
    std::this_thread::sleep_for(100ms);
    const sbtest::DatagramCounts counts = stop(*server);
    EXPECT_EQ(counts.answered, 10) << sbtest::describe(counts);
    EXPECT_FALSE(file_exists(path.get())) << "socket file left behind after the server exited";
}

TEST_P(DatagramTest, SimulatedWorkStillAnswers) {
    START_SERVER(server, {"--cpu-us", "200", "--io-us", "500"});
    sb::UniqueFd client = sbtest::udp_client(server->port());
    ASSERT_TRUE(client);
    for (int i = 0; i < 5; ++i) {
        const std::string payload = "work " + std::to_string(i);
        EXPECT_EQ(sbtest::exchange(client.get(), payload), std::optional<std::string>(payload)) << i;
    }
}

// Physics, not speed: a datagram whose handler must burn 20 ms of CPU is not answered sooner.
TEST_P(DatagramTest, InjectCpuUsIsSpentPerDatagram) {
    START_SERVER(server, {"--inject-cpu-us", "20000"});
    sb::UniqueFd client = sbtest::udp_client(server->port());
    ASSERT_TRUE(client);
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(sbtest::exchange(client.get(), "burn"), std::optional<std::string>("burn"));
    EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms);
}

// A burst sent before any answer is read: with --udp-batch the loops take it in batches
// (recvmmsg/sendmmsg); the models without a loop ignore the flag. Every datagram is answered.
TEST_P(DatagramTest, BatchedBurstIsAnsweredWhole) {
    START_SERVER(server, {"--udp-batch", "16"});
    sb::UniqueFd client = sbtest::udp_client(server->port());
    ASSERT_TRUE(client);
    constexpr int burst = 40;
    std::vector<std::string> sent, answers;
    for (int i = 0; i < burst; ++i) {
        sent.push_back("burst " + std::to_string(i));
        ASSERT_EQ(::send(client.get(), sent.back().data(), sent.back().size(), 0),
                  static_cast<ssize_t>(sent.back().size()));
    }
    while (answers.size() < sent.size()) {
        auto answer = sbtest::receive_datagram(client.get(), 3000ms);
        if (!answer) break;
        answers.push_back(*answer);
    }
    std::sort(sent.begin(), sent.end());
    std::sort(answers.begin(), answers.end());
    EXPECT_EQ(answers, sent);  // threads and processes may answer out of order; none is lost
}

TEST_P(DatagramTest, ReadinessLineAndStopLine) {
    auto p = sbtest::Process::spawn({sbtest::bin_dir() + "/server-" + model(), "--port", "0", "--transport",
                                     "udp", "--protocol", "echo"});
    ASSERT_TRUE(p);
    const auto line = p->read_stdout_line(5000ms);
    ASSERT_TRUE(line) << p->drain_stderr();
    EXPECT_TRUE(line->ends_with(" model=" + model() + " transport=udp")) << *line;
    const auto port = static_cast<std::uint16_t>(std::stoi(line->substr(line->find("port=") + 5)));
    sb::UniqueFd client = sbtest::udp_client(port);
    ASSERT_TRUE(client);
    for (int i = 0; i < 4; ++i)
        EXPECT_EQ(sbtest::exchange(client.get(), "x"), std::optional<std::string>("x"));
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(p->signal_and_wait(SIGTERM, 1000ms), std::optional<int>(0));
    const std::string err = p->drain_stderr();
    EXPECT_EQ(err,
              "server-" + model() +
                  ": stopped; received 4 datagrams, answered 4, dropped 0 oversized, 0 at the cap, 0 send "
                  "errors\n");
}

TEST_P(DatagramTest, SigintStopsAnIdleServer) {
    START_SERVER(server);
    EXPECT_EQ(server->process().signal_and_wait(SIGINT, 1000ms), std::optional<int>(0));
}

TEST_P(DatagramTest, BadTransportFlagsPrintOneLineAndExitTwo) {
    for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
             {"--transport", "tcpx"},
             {"--transport"},
             {"--transport", "udp", "--protocol", "http"},
             {"--protocol", "http", "--transport", "udp"},
             {"--udp-batch", "0"},
             {"--udp-batch", "1025"},
             {"--udp-batch", "x"},
         }) {
        expect_refused(args);
    }
}

TEST_P(DatagramTest, HelpListsTheDatagramFlags) {
    auto p = sbtest::Process::spawn({sbtest::bin_dir() + "/server-" + model(), "--help"});
    ASSERT_TRUE(p);
    std::string out;
    while (auto line = p->read_stdout_line(3000ms)) out += *line + "\n";
    EXPECT_EQ(p->wait_exit(3000ms), std::optional<int>(0));
    for (const char* text : {"--transport", "tcp|udp", "--udp-batch", "transport=udp"}) {
        EXPECT_NE(out.find(text), std::string::npos) << text << " missing from --help:\n" << out;
    }
}

std::string model_test_name(const testing::TestParamInfo<std::string>& info) {
    std::string name = info.param;
    std::replace(name.begin(), name.end(), '-', '_');
    return name;
}

INSTANTIATE_TEST_SUITE_P(Models, DatagramTest, testing::ValuesIn(sbtest::server_models()), model_test_name);

}  // namespace
