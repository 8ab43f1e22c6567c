// Integration tests: every built server binary, started for real on an ephemeral loopback port and
// driven through real sockets. Each test owns its ServerProcess, whose destructor kills and reaps
// the server even when an assertion fails; every read has a timeout, so nothing can hang. No test
// asserts on speed: waits are bounded only so that a broken server fails instead of hanging.

#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using sbtest::HttpResponse;
using sbtest::ServerProcess;

constexpr std::string_view kBody = "Hello, World!";  // the default 13-byte body

std::string get(std::string_view path = "/", std::string_view extra_headers = "",
                std::string_view version = "HTTP/1.1") {
    return "GET " + std::string(path) + " " + std::string(version) + "\r\nHost: 127.0.0.1\r\n" +
           std::string(extra_headers) + "\r\n";
}

// True if nothing arrives on fd within `wait` (data or EOF would make it readable).
bool stays_silent(int fd, sbtest::Millis wait) {
    pollfd pfd{fd, POLLIN, 0};
    return ::poll(&pfd, 1, static_cast<int>(wait.count())) == 0;
}

bool is_ok(const std::optional<HttpResponse>& r, std::string_view body = kBody) {
    return r && r->status == 200 && r->body == body;
}

std::string describe(const std::optional<HttpResponse>& r) {
    return r ? r->head + "\r\n\r\n" + r->body.substr(0, 64) : std::string("<no response>");
}

// One request on an open connection, its response checked.
bool request_ok(int fd, std::string& pending, std::string_view request = get()) {
    return sbtest::send_all(fd, request) && is_ok(sbtest::read_http_response(fd, pending));
}

class ServerTest : public testing::TestWithParam<std::string> {
protected:
    const std::string& model() const { return GetParam(); }

    // Runs the model with args that must be refused: exit 2, one line on stderr, no readiness
    // line. Returns what it wrote on stderr, for the caller's own checks of that line.
    std::string refused(const std::vector<std::string>& args) const {
        std::vector<std::string> argv{sbtest::bin_dir() + "/server-" + model()};
        argv.insert(argv.end(), args.begin(), args.end());
        const std::string shown = testing::PrintToString(args);
        auto p = sbtest::Process::spawn(argv);
        if (!p) {
            ADD_FAILURE() << shown << ": the server did not start";
            return {};
        }
        EXPECT_EQ(p->wait_exit(3000ms), std::optional<int>(2)) << shown;
        std::string err = p->drain_stderr();
        EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << shown << ": " << err;
        EXPECT_EQ(p->read_stdout_line(100ms), std::nullopt) << shown << ": readiness line after a bad flag";
        return err;
    }

    // Starts the model under test, owned by the fixture until the test ends.
    ServerProcess* start(std::vector<std::string> args = {}) {
        servers_.push_back(std::make_unique<ServerProcess>(model(), std::move(args)));
        return servers_.back().get();
    }

    // Every server still running is stopped gracefully, and whatever it wrote to stderr is checked
    // for sanitizer reports (a -DSANITIZE build runs these same tests). A server that does not
    // stop is killed and reaped by its destructor.
    void TearDown() override {
        for (auto& server : servers_) {
            if (!server->ok()) continue;
            server->stop(3000ms);
            std::string err = server->process().drain_stderr();
            EXPECT_FALSE(sbtest::has_sanitizer_report(err)) << err;
        }
        servers_.clear();
    }

private:
    std::vector<std::unique_ptr<ServerProcess>> servers_;
};

// Clients served side by side: every model but blocking, which serves one connection at a time
// and leaves the others in the backlog (OneAtATimeServerTest checks that instead).
class ConcurrentServerTest : public ServerTest {};
class OneAtATimeServerTest : public ServerTest {};

#define START_SERVER(var, ...)     \
    auto var = start(__VA_ARGS__); \
    ASSERT_TRUE(var->ok()) << var->error()

// ---- serving ----

TEST_P(ServerTest, SingleGet) {
    START_SERVER(server);
    auto r = sbtest::http_get(server->port(), "/hello");
    ASSERT_TRUE(is_ok(r)) << describe(r);
    EXPECT_TRUE(r->has_header("Content-Length", "13"));
}

TEST_P(ConcurrentServerTest, ConcurrentKeepAliveClients) {
    START_SERVER(server);
    constexpr int clients = 8, requests_each = 50;
    std::atomic<int> ok{0}, failed_clients{0};
    {
        std::vector<std::jthread> threads;
        for (int t = 0; t < clients; ++t) {
            threads.emplace_back([&, t] {
                sb::UniqueFd fd = sbtest::connect_to(server->port());
                if (!fd) {
                    ++failed_clients;
                    return;
                }
                std::string pending;
                for (int i = 0; i < requests_each; ++i) {
                    if (!request_ok(fd.get(), pending,
                                    get("/c" + std::to_string(t) + "/" + std::to_string(i)))) {
                        ++failed_clients;
                        return;
                    }
                    ++ok;
                }
            });
        }
    }
    EXPECT_EQ(failed_clients.load(), 0);
    EXPECT_EQ(ok.load(), clients * requests_each);
}

TEST_P(ConcurrentServerTest, SecondClientServedWhileFirstStaysOpen) {
    START_SERVER(server);
    sb::UniqueFd first = sbtest::connect_to(server->port());
    ASSERT_TRUE(first);
    std::string pending_first;
    ASSERT_TRUE(request_ok(first.get(), pending_first));
    // The first client stays connected and idle; a second one is answered all the same.
    sb::UniqueFd second = sbtest::connect_to(server->port());
    ASSERT_TRUE(second);
    std::string pending_second;
    EXPECT_TRUE(request_ok(second.get(), pending_second));
    EXPECT_TRUE(request_ok(first.get(), pending_first));
}

TEST_P(OneAtATimeServerTest, SequentialClientsAndQueuedSecond) {
    START_SERVER(server);
    for (int i = 0; i < 20; ++i) {
        auto r = sbtest::http_get(server->port(), "/seq" + std::to_string(i));
        ASSERT_TRUE(is_ok(r)) << "client " << i << ": " << describe(r);
    }

    sb::UniqueFd first = sbtest::connect_to(server->port());
    ASSERT_TRUE(first);
    std::string pending_first;
    ASSERT_TRUE(request_ok(first.get(), pending_first));

    // The second connection completes in the backlog, but nobody reads it while the first is open.
    sb::UniqueFd second = sbtest::connect_to(server->port());
    ASSERT_TRUE(second);
    ASSERT_TRUE(sbtest::send_all(second.get(), get("/second")));
    EXPECT_TRUE(stays_silent(second.get(), 300ms))
        << "second client answered while the first was still served";
    EXPECT_TRUE(request_ok(first.get(), pending_first));

    first.reset();  // the first leaves: the second is served
    std::string pending_second;
    auto r = sbtest::read_http_response(second.get(), pending_second, 5000ms);
    EXPECT_TRUE(is_ok(r)) << describe(r);
}

TEST_P(ServerTest, PipelinedRequestsAnsweredInOrder) {
    START_SERVER(server);
    constexpr int n = 100;
    // Every 7th request is HTTP/1.0 with keep-alive, whose answer says so: the pattern of those
    // headers shows the order; the last asks to close, so it must come last and end the stream.
    std::string batch;
    for (int i = 0; i < n - 1; ++i) {
        batch += i % 7 == 3 ? get("/p" + std::to_string(i), "Connection: keep-alive\r\n", "HTTP/1.0")
                            : get("/p" + std::to_string(i));
    }
    batch += get("/last", "Connection: close\r\n");

    sb::UniqueFd fd = sbtest::connect_to(server->port());
    ASSERT_TRUE(fd);
    ASSERT_TRUE(sbtest::send_all(fd.get(), batch));
    std::string pending;
    for (int i = 0; i < n; ++i) {
        auto r = sbtest::read_http_response(fd.get(), pending);
        ASSERT_TRUE(is_ok(r)) << "response " << i << ": " << describe(r);
        EXPECT_EQ(r->has_header("Connection", "keep-alive"), i % 7 == 3 && i != n - 1) << "response " << i;
        EXPECT_EQ(r->has_header("Connection", "close"), i == n - 1) << "response " << i;
    }
    bool closed = false;
    EXPECT_EQ(sbtest::read_to_eof(fd.get(), 3000ms, &closed), "");
    EXPECT_TRUE(closed);
}

TEST_P(ServerTest, LargePipelinedBatchWithSlowReader) {
    START_SERVER(server);
    // More output than the protocol's high-water mark: the server must hold back and resume.
    constexpr int n = 5000;
    std::string batch;
    for (int i = 0; i < n; ++i) batch += get("/b");
    sb::UniqueFd fd = sbtest::connect_to(server->port());
    ASSERT_TRUE(fd);
    std::jthread writer([&] { sbtest::send_all(fd.get(), batch); });
    std::string pending;
    int answered = 0;
    for (; answered < n; ++answered) {
        auto r = sbtest::read_http_response(fd.get(), pending, 5000ms);
        if (!is_ok(r)) break;
    }
    EXPECT_EQ(answered, n);
    ::shutdown(fd.get(), SHUT_RDWR);  // unblocks the writer if the server stopped reading
}

// ---- keep-alive and close ----

TEST_P(ServerTest, ConnectionCloseClosesAfterResponse) {
    START_SERVER(server);
    sb::UniqueFd fd = sbtest::connect_to(server->port());
    ASSERT_TRUE(fd);
    ASSERT_TRUE(sbtest::send_all(fd.get(), get("/", "Connection: close\r\n")));
    std::string pending;
    auto r = sbtest::read_http_response(fd.get(), pending);
    ASSERT_TRUE(is_ok(r)) << describe(r);
    EXPECT_TRUE(r->has_header("Connection", "close"));
    bool closed = false;
    EXPECT_EQ(pending + sbtest::read_to_eof(fd.get(), 3000ms, &closed), "");
    EXPECT_TRUE(closed);
}

TEST_P(ServerTest, Http10ClosesAfterResponse) {
    START_SERVER(server);
    sb::UniqueFd fd = sbtest::connect_to(server->port());
    ASSERT_TRUE(fd);
    ASSERT_TRUE(sbtest::send_all(fd.get(), get("/", "", "HTTP/1.0")));
    std::string pending;
    auto r = sbtest::read_http_response(fd.get(), pending);
    ASSERT_TRUE(is_ok(r)) << describe(r);
    bool closed = false;
    EXPECT_EQ(pending + sbtest::read_to_eof(fd.get(), 3000ms, &closed), "");
    EXPECT_TRUE(closed);
}

TEST_P(ServerTest, Http10KeepAliveKeepsConnection) {
    START_SERVER(server);
    sb::UniqueFd fd = sbtest::connect_to(server->port());
    ASSERT_TRUE(fd);
    std::string pending;
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(sbtest::send_all(fd.get(), get("/", "Connection: keep-alive\r\n", "HTTP/1.0")));
        auto r = sbtest::read_http_response(fd.get(), pending);
        ASSERT_TRUE(is_ok(r)) << "request " << i << ": " << describe(r);
        EXPECT_TRUE(r->has_header("Connection", "keep-alive"));
    }
    EXPECT_TRUE(stays_silent(fd.get(), 100ms))
        << "connection closed or extra bytes after a keep-alive answer";
}

TEST_P(ServerTest, Http11KeepsConnectionByDefault) {
    START_SERVER(server);
    sb::UniqueFd fd = sbtest::connect_to(server->port());
    ASSERT_TRUE(fd);
    std::string pending;
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(request_ok(fd.get(), pending)) << "request " << i;
}

TEST_P(ServerTest, HalfClosedClientStillAnswered) {
    START_SERVER(server);
    sb::UniqueFd fd = sbtest::connect_to(server->port());
    ASSERT_TRUE(fd);
    ASSERT_TRUE(sbtest::send_all(fd.get(), get() + get()));
    ::shutdown(fd.get(), SHUT_WR);
    std::string pending;
    for (int i = 0; i < 2; ++i) {
        auto r = sbtest::read_http_response(fd.get(), pending);
        EXPECT_TRUE(is_ok(r)) << "response " << i << ": " << describe(r);
    }
    bool closed = false;
    sbtest::read_to_eof(fd.get(), 3000ms, &closed);
    EXPECT_TRUE(closed);
}

// ---- echo ----

TEST_P(ServerTest, EchoReturnsBinaryPayloadsExactly) {
    START_SERVER(server, {"--protocol", "echo"});
    std::mt19937 rng(1234);
    for (std::size_t size : {std::size_t{1}, std::size_t{2}, std::size_t{256}, std::size_t{4096},
                             std::size_t{65537}, std::size_t{300000}, std::size_t{1} << 20}) {
        std::string payload(size, '\0');
        if (size == 256) {
            for (std::size_t i = 0; i < size; ++i) payload[i] = static_cast<char>(i);  // every byte value
        } else {
            for (char& c : payload) c = static_cast<char>(rng());
        }
        // One connection per payload, closed before the next (the blocking model serves one at a
        // time). Written from another thread: the echo comes back while we are still sending.
        sb::UniqueFd fd = sbtest::connect_to(server->port());
        ASSERT_TRUE(fd);
        std::jthread writer([&] { sbtest::send_all(fd.get(), payload); });
        std::string echoed = sbtest::read_exactly(fd.get(), size, 10000ms);
        ::shutdown(fd.get(), SHUT_RDWR);
        writer.join();
        ASSERT_EQ(echoed.size(), size) << "size " << size;
        ASSERT_TRUE(echoed == payload) << "size " << size << ": bytes differ";
    }
}

TEST_P(ServerTest, EchoManySmallWritesOnOneConnection) {
    START_SERVER(server, {"--protocol", "echo"});
    sb::UniqueFd fd = sbtest::connect_to(server->port());
    ASSERT_TRUE(fd);
    for (int i = 0; i < 100; ++i) {
        std::string msg = "msg " + std::to_string(i) + std::string("\0\r\n\xff", 4);
        ASSERT_TRUE(sbtest::send_all(fd.get(), msg));
        ASSERT_EQ(sbtest::read_exactly(fd.get(), msg.size()), msg) << "message " << i;
    }
}

// ---- malformed and oversized requests ----

// Sends `request`, expects `status` and then the connection closed; then a fresh client is served.
void expect_error_then_close(std::uint16_t port, const std::string& request, int status) {
    sb::UniqueFd fd = sbtest::connect_to(port);
    ASSERT_TRUE(fd);
    ASSERT_TRUE(sbtest::send_all(fd.get(), request));
    std::string pending;
    auto r = sbtest::read_http_response(fd.get(), pending);
    ASSERT_TRUE(r) << "no response to a request that deserves " << status;
    EXPECT_EQ(r->status, status) << r->head;
    EXPECT_TRUE(r->has_header("Connection", "close")) << r->head;
    bool closed = false;
    sbtest::read_to_eof(fd.get(), 3000ms, &closed);
    EXPECT_TRUE(closed) << "connection left open after " << status;
    fd.reset();

    auto after = sbtest::http_get(port, "/after-error");
    EXPECT_TRUE(is_ok(after)) << "server stopped serving after " << status << ": " << describe(after);
}

TEST_P(ServerTest, MalformedRequestGets400AndServerGoesOn) {
    START_SERVER(server);
    expect_error_then_close(server->port(), "THIS IS NOT HTTP\r\n\r\n", 400);
    expect_error_then_close(server->port(), "GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400);
    expect_error_then_close(server->port(), "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400);
    expect_error_then_close(server->port(), std::string("GET /\0 HTTP/1.1\r\n\r\n", 19), 400);
    // Good requests pipelined before the bad one are answered first.
    sb::UniqueFd fd = sbtest::connect_to(server->port());
    ASSERT_TRUE(fd);
    ASSERT_TRUE(sbtest::send_all(fd.get(), get() + "BAD\r\n\r\n" + get()));
    std::string pending;
    EXPECT_TRUE(is_ok(sbtest::read_http_response(fd.get(), pending)));
    auto r = sbtest::read_http_response(fd.get(), pending);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
}

TEST_P(ServerTest, OversizedHeadGets431) {
    START_SERVER(server);
    expect_error_then_close(server->port(), get("/", "X-Big: " + std::string(10 * 1024, 'a') + "\r\n"), 431);
    // Never completed: the server must not wait for the end of a head already over the limit.
    expect_error_then_close(server->port(), "GET / HTTP/1.1\r\nX-Big: " + std::string(9 * 1024, 'a'), 431);
}

TEST_P(ServerTest, OversizedBodyGets413) {
    START_SERVER(server);
    // Only the head is sent: the answer must come before the body (which would be 2 MiB).
    expect_error_then_close(server->port(), "POST / HTTP/1.1\r\nContent-Length: 2097152\r\n\r\n", 413);
}

TEST_P(ServerTest, RequestBodiesAreConsumed) {
    START_SERVER(server);
    sb::UniqueFd fd = sbtest::connect_to(server->port());
    ASSERT_TRUE(fd);
    std::string body(100000, 'b');
    std::string request =
        "POST / HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body +
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + get();
    std::jthread writer([&] { sbtest::send_all(fd.get(), request); });
    std::string pending;
    for (int i = 0; i < 3; ++i) {
        auto r = sbtest::read_http_response(fd.get(), pending);
        ASSERT_TRUE(is_ok(r)) << "response " << i << ": " << describe(r);
    }
    EXPECT_TRUE(stays_silent(fd.get(), 100ms)) << "a body was answered as a request";
}

// ---- shutdown ----

TEST_P(ServerTest, SigtermExitsZeroWhenIdle) {
    START_SERVER(server);
    ASSERT_TRUE(is_ok(sbtest::http_get(server->port())));
    EXPECT_EQ(server->stop(1000ms), std::optional<int>(0));
}

TEST_P(ServerTest, SigtermExitsZeroWithIdleKeepAliveClient) {
    START_SERVER(server);
    sb::UniqueFd fd = sbtest::connect_to(server->port());
    ASSERT_TRUE(fd);
    std::string pending;
    ASSERT_TRUE(request_ok(fd.get(), pending));  // accepted and being served, now idle
    EXPECT_EQ(server->stop(1000ms), std::optional<int>(0));
    bool closed = false;
    sbtest::read_to_eof(fd.get(), 1000ms, &closed);
    EXPECT_TRUE(closed) << "client connection still open after the server exited";
}

TEST_P(ServerTest, SigtermExitsZeroWithConnectionMidRequest) {
    START_SERVER(server);
    sb::UniqueFd fd = sbtest::connect_to(server->port());
    ASSERT_TRUE(fd);
    std::string pending;
    ASSERT_TRUE(request_ok(fd.get(), pending));  // make sure the connection is being served
    ASSERT_TRUE(sbtest::send_all(fd.get(), "GET /half HTTP/1.1\r\nHost: 127"));
    // Give the server a chance to read the half request (a bounded pause, not a timing assertion).
    EXPECT_TRUE(stays_silent(fd.get(), 50ms));
    EXPECT_EQ(server->stop(1000ms), std::optional<int>(0));
}

TEST_P(ServerTest, SigintExitsZero) {
    START_SERVER(server);
    EXPECT_EQ(server->process().signal_and_wait(SIGINT, 1000ms), std::optional<int>(0));
}

TEST_P(ServerTest, SurvivesClientThatResetsWhileResponding) {
    // SIGPIPE never kills a server: a client that leaves with a large response in flight.
    START_SERVER(server, {"--response-bytes", "1000000"});
    for (int i = 0; i < 3; ++i) {
        sb::UniqueFd fd = sbtest::connect_to(server->port());
        ASSERT_TRUE(fd);
        ASSERT_TRUE(sbtest::send_all(fd.get(), get() + get() + get()));
        linger reset{1, 0};  // close with RST
        ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    }
    auto r = sbtest::http_get(server->port());
    ASSERT_TRUE(r) << "server gone after clients reset mid-response";
    EXPECT_EQ(r->body.size(), 1000000u);
}

// ---- processes and descriptors ----

TEST_P(ServerTest, NoZombiesAfter200Connections) {
    START_SERVER(server);
    for (int i = 0; i < 200; ++i) {
        sb::UniqueFd fd = sbtest::connect_to(server->port());
        ASSERT_TRUE(fd) << "connection " << i;
        std::string pending;
        ASSERT_TRUE(request_ok(fd.get(), pending, get("/", "Connection: close\r\n"))) << "connection " << i;
    }
    EXPECT_TRUE(sbtest::eventually([&] { return server->zombie_children() == 0; }, 3000ms))
        << server->zombie_children() << " zombie children";
    if (model() == "fork-per-conn") {
        // Every child served its one connection and ended.
        EXPECT_TRUE(sbtest::eventually([&] { return server->child_processes() == 0; }, 3000ms))
            << server->child_processes() << " children left";
    }
}

TEST_P(ServerTest, NoDescriptorLeakAfter500Connections) {
    START_SERVER(server);
    // The baseline is taken once the server has served a first connection and settled: a model may
    // open its own descriptors (an epoll set, a pool's eventfd) after the readiness line.
    ASSERT_TRUE(is_ok(sbtest::http_get(server->port())));
    int baseline = server->open_fds();
    sbtest::eventually([&] {
        int previous = std::exchange(baseline, server->open_fds());
        return previous == baseline;
    });
    ASSERT_GT(baseline, 0);
    for (int i = 0; i < 500; ++i) {
        sb::UniqueFd fd = sbtest::connect_to(server->port());
        ASSERT_TRUE(fd) << "connection " << i;
        std::string pending;
        switch (i % 5) {
            case 0:  // served, server closes
                ASSERT_TRUE(request_ok(fd.get(), pending, get("/", "Connection: close\r\n"))) << i;
                sbtest::read_to_eof(fd.get());
                break;
            case 1:  // served, client closes
                ASSERT_TRUE(request_ok(fd.get(), pending)) << i;
                break;
            case 2:  // client leaves mid-request
                ASSERT_TRUE(sbtest::send_all(fd.get(), "GET / HTTP/1.1\r\nHo"));
                break;
            case 3:  // malformed: 400, server closes
                ASSERT_TRUE(sbtest::send_all(fd.get(), "NOPE\r\n\r\n"));
                sbtest::read_to_eof(fd.get());
                break;
            case 4:  // connects and leaves without a byte
                break;
        }
    }
    EXPECT_TRUE(sbtest::eventually([&] { return server->open_fds() <= baseline; }, 5000ms))
        << "open descriptors: " << server->open_fds() << ", baseline " << baseline;
    ASSERT_TRUE(is_ok(sbtest::http_get(server->port())));
}

// ---- flags ----

TEST_P(ServerTest, HelpListsEveryFlagAndExitsZero) {
    auto p = sbtest::Process::spawn({sbtest::bin_dir() + "/server-" + model(), "--help"});
    ASSERT_TRUE(p);
    std::string out;
    while (auto line = p->read_stdout_line(3000ms)) out += *line + "\n";
    EXPECT_EQ(p->wait_exit(3000ms), std::optional<int>(0));
    for (const char* flag : {"--host", "--port", "--protocol", "--workers", "--backlog", "--max-conns",
                             "--idle-timeout-ms", "--cpu-us", "--io-us", "--response-bytes"}) {
        EXPECT_NE(out.find(flag), std::string::npos) << flag << " missing from --help:\n" << out;
    }
}

TEST_P(ServerTest, BadFlagOrValuePrintsOneLineAndExitsTwo) {
    const std::vector<std::vector<std::string>> cases = {
        {"--bogus"},           {"--port", "abc"},          {"--port", "70000"},       {"--port"},
        {"--protocol", "ftp"}, {"--workers", "0"},         {"--backlog", "-1"},       {"--max-conns", "x"},
        {"--cpu-us", "1.5"},   {"--response-bytes", "-1"}, {"--idle-timeout-ms", ""}, {"positional"},
    };
    for (const auto& args : cases) {
        const std::string err = refused(args);
        EXPECT_TRUE(err.ends_with("\n")) << testing::PrintToString(args) << ": " << err;
    }
}

TEST_P(ConcurrentServerTest, MaxConnsClosesTheExtraConnectionAtOnce) {
    START_SERVER(server, {"--max-conns", "2"});
    sb::UniqueFd a = sbtest::connect_to(server->port()), b = sbtest::connect_to(server->port());
    ASSERT_TRUE(a && b);
    std::string pa, pb;
    ASSERT_TRUE(request_ok(a.get(), pa));
    ASSERT_TRUE(request_ok(b.get(), pb));  // both are now counted by the server

    sb::UniqueFd c = sbtest::connect_to(server->port());
    ASSERT_TRUE(c);  // the kernel completes the handshake; the server then closes it
    bool closed = false;
    std::string got = sbtest::read_to_eof(c.get(), 3000ms, &closed);
    EXPECT_TRUE(closed) << "third connection not closed";
    EXPECT_EQ(got, "");

    EXPECT_TRUE(request_ok(a.get(), pa));
    EXPECT_TRUE(request_ok(b.get(), pb));
    // Once one leaves, a new connection is served again.
    a.reset();
    EXPECT_TRUE(sbtest::eventually([&] { return is_ok(sbtest::http_get(server->port())); }, 3000ms));
}

TEST_P(ServerTest, ResponseBytesBodyArrivesComplete) {
    START_SERVER(server, {"--response-bytes", "100000"});
    sb::UniqueFd fd = sbtest::connect_to(server->port());
    ASSERT_TRUE(fd);
    std::string pending;
    for (int i = 0; i < 3; ++i) {  // several, keep-alive: each body exactly its length
        ASSERT_TRUE(sbtest::send_all(fd.get(), get()));
        auto r = sbtest::read_http_response(fd.get(), pending);
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 200);
        EXPECT_TRUE(r->has_header("Content-Length", "100000")) << r->head;
        ASSERT_EQ(r->body.size(), 100000u);
        for (std::size_t j = 0; j < r->body.size(); j += 997)
            ASSERT_EQ(r->body[j], kBody[j % kBody.size()]) << j;
    }
    EXPECT_EQ(pending, "");
}

TEST_P(ServerTest, ZeroResponseBytes) {
    START_SERVER(server, {"--response-bytes", "0"});
    auto r = sbtest::http_get(server->port());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_TRUE(r->has_header("Content-Length", "0"));
    EXPECT_EQ(r->body, "");
}

TEST_P(ServerTest, IdleConnectionClosedAfterIdleTimeout) {
    START_SERVER(server, {"--idle-timeout-ms", "200"});
    sb::UniqueFd fd = sbtest::connect_to(server->port());
    ASSERT_TRUE(fd);
    std::string pending;
    ASSERT_TRUE(request_ok(fd.get(), pending));
    bool closed = false;
    EXPECT_EQ(sbtest::read_to_eof(fd.get(), 5000ms, &closed), "");
    EXPECT_TRUE(closed) << "idle connection still open long after --idle-timeout-ms 200";
    EXPECT_TRUE(is_ok(sbtest::http_get(server->port())));
}

TEST_P(ServerTest, SimulatedWorkStillAnswersEveryRequest) {
    START_SERVER(server, {"--cpu-us", "200", "--io-us", "500"});
    sb::UniqueFd fd = sbtest::connect_to(server->port());
    ASSERT_TRUE(fd);
    ASSERT_TRUE(sbtest::send_all(fd.get(), get() + get() + get()));
    std::string pending;
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(is_ok(sbtest::read_http_response(fd.get(), pending))) << i;
}

// ---- transport and test-knob flags ----

// A socket path of this test's own, removed before and after (a test that failed may leave one).
struct SocketPath : sbtest::SocketPath {
    explicit SocketPath(const std::string& model) : sbtest::SocketPath("test", model) {}
};
using sbtest::file_exists;

TEST_P(ServerTest, ServesHttpOverAUnixSocket) {
    SocketPath path(model());
    START_SERVER(server, {"--unix", path.get()});
    EXPECT_EQ(server->unix_path(), path.get()) << "readiness line names the socket";
    EXPECT_EQ(server->port(), 0) << "port=0 on a Unix socket";

    sb::UniqueFd fd = sbtest::connect_unix(path.get());
    ASSERT_TRUE(fd);
    std::string pending;
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(request_ok(fd.get(), pending)) << "keep-alive request " << i;
    ASSERT_TRUE(sbtest::send_all(fd.get(), get() + get()));  // pipelined
    for (int i = 0; i < 2; ++i) EXPECT_TRUE(is_ok(sbtest::read_http_response(fd.get(), pending))) << i;
    ASSERT_TRUE(sbtest::send_all(fd.get(), get("/", "Connection: close\r\n")));
    EXPECT_TRUE(is_ok(sbtest::read_http_response(fd.get(), pending)));
    bool closed = false;
    EXPECT_EQ(sbtest::read_to_eof(fd.get(), 3000ms, &closed), "");
    EXPECT_TRUE(closed) << "Connection: close honoured over the Unix socket";
    fd.reset();

    EXPECT_EQ(server->stop(3000ms), std::optional<int>(0));
    EXPECT_FALSE(file_exists(path.get())) << "socket file left behind after the server exited";
}

TEST_P(ServerTest, UnixSocketReplacesAStaleSocketFile) {
    SocketPath path(model());
    {  // a socket file whose server is gone: bound, then closed without unlinking
        sb::UniqueFd stale{::socket(AF_UNIX, SOCK_STREAM, 0)};
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.get().c_str());
        ASSERT_EQ(::bind(stale.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    }
    ASSERT_TRUE(file_exists(path.get()));
    START_SERVER(server, {"--unix", path.get(), "--protocol", "echo"});
    sb::UniqueFd fd = sbtest::connect_unix(path.get());
    ASSERT_TRUE(fd);
    ASSERT_TRUE(sbtest::send_all(fd.get(), "ping over unix"));
    EXPECT_EQ(sbtest::read_exactly(fd.get(), 14), "ping over unix");
}

TEST_P(ServerTest, TcpNodelayOnAndOffBothServe) {
    for (const char* value : {"on", "off"}) {
        START_SERVER(server, {"--tcp-nodelay", value});
        sb::UniqueFd fd = sbtest::connect_to(server->port());
        ASSERT_TRUE(fd) << value;
        std::string pending;
        for (int i = 0; i < 3; ++i) EXPECT_TRUE(request_ok(fd.get(), pending)) << value << " request " << i;
    }
}

// Physics, not speed: a request that must burn 20 ms of CPU cannot be answered in less than 20 ms.
TEST_P(ServerTest, InjectCpuUsBurnsCpuAndStillAnswers) {
    START_SERVER(server, {"--inject-cpu-us", "20000"});
    sb::UniqueFd fd = sbtest::connect_to(server->port());
    ASSERT_TRUE(fd);
    std::string pending;
    for (int i = 0; i < 2; ++i) {
        const auto start = std::chrono::steady_clock::now();
        ASSERT_TRUE(request_ok(fd.get(), pending)) << i;
        EXPECT_GE(std::chrono::steady_clock::now() - start, 20ms) << "the injected CPU was not spent";
    }
}

TEST_P(ServerTest, BadTransportOrKnobValuePrintsOneLineAndExitsTwo) {
    const std::vector<std::vector<std::string>> cases = {
        {"--tcp-nodelay", "maybe"},        {"--tcp-nodelay"},        {"--tcp-nodelay", "1"},
        {"--inject-cpu-us", "-5"},         {"--inject-cpu-us", "x"}, {"--unix", ""},
        {"--unix", std::string(200, 'a')},
    };
    for (const auto& args : cases) {
        const std::string err = refused(args);
        EXPECT_NE(err.find(args[0]), std::string::npos)
            << testing::PrintToString(args) << ": the line names the flag: " << err;
    }
}

TEST_P(ServerTest, HelpListsTheTransportAndKnobFlags) {
    auto p = sbtest::Process::spawn({sbtest::bin_dir() + "/server-" + model(), "--help"});
    ASSERT_TRUE(p);
    std::string out;
    while (auto line = p->read_stdout_line(3000ms)) out += *line + "\n";
    EXPECT_EQ(p->wait_exit(3000ms), std::optional<int>(0));
    for (const char* text : {"--unix", "--tcp-nodelay", "--inject-cpu-us", "test knob", "unix=PATH"}) {
        EXPECT_NE(out.find(text), std::string::npos) << text << " missing from --help:\n" << out;
    }
}

std::string model_test_name(const testing::TestParamInfo<std::string>& info) {
    std::string name = info.param;
    std::replace(name.begin(), name.end(), '-', '_');
    return name;
}

INSTANTIATE_TEST_SUITE_P(Models, ServerTest, testing::ValuesIn(sbtest::server_models()), model_test_name);
INSTANTIATE_TEST_SUITE_P(Models, ConcurrentServerTest, testing::ValuesIn(sbtest::concurrent_server_models()),
                         model_test_name);
INSTANTIATE_TEST_SUITE_P(Models, OneAtATimeServerTest, testing::Values(std::string("blocking")), model_test_name);

}  // namespace
