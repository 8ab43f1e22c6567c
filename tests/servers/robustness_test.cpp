// Hostile clients and exhausted resources, against every server model.
//
// Each test starts a real server, attacks it, and then checks that it is still well: a normal
// request is answered, its descriptors, threads and children are back to where they were before
// the attack, no zombie is left, its memory is back within bounds, and SIGTERM still stops it
// cleanly (exit 0) without a sanitizer report. What a model cannot survive by its nature (one
// blocking thread is held by one slow client) is asserted as the documented weakness it is, so
// docs/robustness.md is a summary of these results, not a claim.
//
// Timings here are generous bounds on "served at all", never speed measurements.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

// Under ASan (a quarantine of freed memory, per-thread caches) and TSan (shadow memory of every
// thread that ever ran), RSS after a burst of threads measures the sanitizer, not the server: the
// "RSS back within bounds" check is skipped there. Growth bounds during an attack still apply.
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SB_UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define SB_UNDER_SANITIZER 1
#endif
#endif
#ifndef SB_UNDER_SANITIZER
#define SB_UNDER_SANITIZER 0
#endif

namespace {

using namespace std::chrono_literals;
using sb::UniqueFd;
using sbtest::Millis;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kGet = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
constexpr std::string_view kGetClose = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

// The single-threaded blocking model serves one connection at a time: others wait in the backlog.
bool serves_one_at_a_time(const std::string& model) { return model == "blocking"; }

void sleep_for(Millis d) { std::this_thread::sleep_for(d); }

long elapsed_ms(Clock::time_point since) {
    return static_cast<long>(std::chrono::duration_cast<Millis>(Clock::now() - since).count());
}

// ---- /proc readings the support library does not have ----

std::vector<std::string> proc_stat_fields(pid_t pid) {  // fields after "(comm)": [0] is state
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(in, line);
    std::vector<std::string> fields;
    auto paren = line.rfind(')');
    if (paren == std::string::npos) return fields;
    std::istringstream rest(line.substr(paren + 2));
    for (std::string f; rest >> f;) fields.push_back(f);
    return fields;
}

// CPU time (user + system, all threads) the process has used, in seconds.
double cpu_seconds(pid_t pid) {
    auto f = proc_stat_fields(pid);
    if (f.size() < 13) return 0;
    return static_cast<double>(std::stoll(f[11]) + std::stoll(f[12])) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

long vm_rss_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    }
    return 0;
}

// RSS of the server and its direct children: the fork models' memory is in their children.
long tree_rss_kib(pid_t pid) {
    long total = vm_rss_kib(pid);
    std::ifstream children("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
    for (pid_t child; children >> child;) total += vm_rss_kib(child);
    return total;
}

// ---- client helpers ----

void reset_on_close(int fd) {  // close() then sends RST instead of FIN
    linger l{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

void raise_fd_limit(rlim_t wanted) {
    rlimit lim{};
    ::getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = std::min(std::max(lim.rlim_cur, wanted), lim.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &lim);
}

// Length of the first complete HTTP response in `data`, or 0 if it is not complete yet.
std::size_t complete_response_length(const std::string& data) {
    auto head_end = data.find("\r\n\r\n");
    if (head_end == std::string::npos) return 0;
    std::size_t length = 0;
    std::string head = data.substr(0, head_end);
    std::transform(head.begin(), head.end(), head.begin(), [](unsigned char c) { return std::tolower(c); });
    if (auto cl = head.find("\r\ncontent-length:"); cl != std::string::npos) {
        length = std::strtoul(head.c_str() + cl + 17, nullptr, 10);
    }
    return data.size() >= head_end + 4 + length ? head_end + 4 + length : 0;
}

// What happened to a set of connections that each sent a request.
struct Tally {
    int served = 0;   // a complete response arrived
    int closed = 0;   // the server closed (or reset) it without a response
    int pending = 0;  // neither, by the deadline
    std::vector<bool> was_served;
};

// Waits until every connection has its first response or was closed. Gives up when `quiet` passes
// with no connection changing state, or at `limit` (by default `quiet`: one fixed window). A long
// limit gives a slow server (fork under a sanitizer on a loaded machine) the time it needs, for
// as long as it keeps answering: the test checks that it serves, not how fast.
Tally await_first_responses(const std::vector<UniqueFd>& conns, Millis quiet, Millis limit = Millis::zero()) {
    enum State { waiting, served, closed };
    std::vector<State> state(conns.size(), waiting);
    std::vector<std::string> data(conns.size());
    for (std::size_t i = 0; i < conns.size(); ++i) {
        if (!conns[i]) state[i] = closed;
    }
    const auto start = Clock::now();
    const auto hard_deadline = start + std::max(quiet, limit);
    auto deadline = std::min(start + quiet, hard_deadline);
    for (;;) {
        std::vector<pollfd> fds;
        std::vector<std::size_t> index;
        for (std::size_t i = 0; i < conns.size(); ++i) {
            if (state[i] == waiting) {
                fds.push_back({conns[i].get(), POLLIN, 0});
                index.push_back(i);
            }
        }
        const long left = std::chrono::duration_cast<Millis>(deadline - Clock::now()).count();
        if (fds.empty() || left <= 0) break;
        if (::poll(fds.data(), fds.size(), static_cast<int>(left)) <= 0) continue;
        for (std::size_t k = 0; k < fds.size(); ++k) {
            if (fds[k].revents == 0) continue;
            const std::size_t i = index[k];
            char buf[16384];
            ssize_t n = ::recv(conns[i].get(), buf, sizeof buf, MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (n <= 0) {
                state[i] = closed;
            } else {
                data[i].append(buf, static_cast<std::size_t>(n));
                if (complete_response_length(data[i]) > 0) state[i] = served;
            }
            if (state[i] != waiting) deadline = std::min(Clock::now() + quiet, hard_deadline);
        }
    }
    Tally t;
    for (State s : state) {
        t.served += s == served;
        t.closed += s == closed;
        t.pending += s == waiting;
        t.was_served.push_back(s == served);
    }
    return t;
}

std::ostream& operator<<(std::ostream& os, const Tally& t) {
    return os << "served " << t.served << ", closed " << t.closed << ", pending " << t.pending;
}

// "refused N at --max-conns, M for lack of resources" from the server's stop line.
struct Refusals {
    long at_limit = -1, no_resources = -1;
};
Refusals parse_refusals(const std::string& stderr_text) {
    Refusals r;
    constexpr std::string_view key = "refused ";
    auto at = stderr_text.find(key);
    if (at == std::string::npos) return r;
    const char* p = stderr_text.c_str() + at + key.size();
    char* end = nullptr;
    r.at_limit = std::strtol(p, &end, 10);
    if (auto comma = std::string_view(end).find(", "); comma != std::string_view::npos) {
        r.no_resources = std::strtol(end + comma + 2, nullptr, 10);
    }
    return r;
}

// ---- the fixture ----

class Robustness : public ::testing::TestWithParam<std::string> {
protected:
    const std::string& model() const { return GetParam(); }

    // Starts the server, checks a normal request, and records the baseline the after-checks use.
    void start(std::vector<std::string> args = {}, std::vector<std::string> launcher = {}) {
        echo_ = std::find(args.begin(), args.end(), "echo") != args.end();
        server_.emplace(model(), std::move(args), std::move(launcher));
        ASSERT_TRUE(server_->ok()) << server_->error();
        ASSERT_TRUE(answers_normal_request()) << "server-" << model() << " does not answer before any attack";
        // Wait for the warm-up connection to be closed on the server side too.
        sleep_for(50ms);
        base_fds_ = server_->open_fds();
        base_threads_ = server_->threads();
        base_children_ = server_->child_processes();
        base_rss_kib_ = tree_rss_kib(server_->pid());
    }

    bool answers_normal_request() {
        if (!echo_) {
            auto r = sbtest::http_get(server_->port());
            return r && r->status == 200;
        }
        UniqueFd fd = sbtest::connect_to(server_->port());
        return fd && sbtest::send_all(fd.get(), "ping\n") && sbtest::read_exactly(fd.get(), 5) == "ping\n";
    }

    // The checks after every attack. `rss_slack_kib`: how far above the baseline memory may stay
    // (an allocator keeps some freed memory; threads' stacks are cached by glibc).
    void expect_healthy(long rss_slack_kib = 32 * 1024) {
        SCOPED_TRACE("after the attack, server-" + model());
        // The one-at-a-time model may still be finishing the attack's connections: give it time.
        EXPECT_TRUE(sbtest::eventually([&] { return answers_normal_request(); }, 6000ms))
            << "a normal request is no longer answered";
        EXPECT_TRUE(sbtest::eventually([&] { return server_->open_fds() <= base_fds_; }, 4000ms))
            << "descriptors leaked: " << server_->open_fds() << " open, " << base_fds_ << " before the attack";
        EXPECT_TRUE(sbtest::eventually([&] { return server_->zombie_children() == 0; }, 3000ms))
            << server_->zombie_children() << " zombie children";
        EXPECT_TRUE(sbtest::eventually([&] { return server_->child_processes() <= base_children_; }, 4000ms))
            << server_->child_processes() << " children, " << base_children_ << " before the attack";
        EXPECT_TRUE(sbtest::eventually([&] { return server_->threads() <= base_threads_; }, 4000ms))
            << server_->threads() << " threads, " << base_threads_ << " before the attack";
        if (SB_UNDER_SANITIZER) return;
        EXPECT_TRUE(sbtest::eventually(
            [&] { return tree_rss_kib(server_->pid()) <= base_rss_kib_ + rss_slack_kib; }, 3000ms))
            << "RSS " << tree_rss_kib(server_->pid()) << " KiB, " << base_rss_kib_ << " KiB before the attack";
    }

    // SIGTERM: the server must exit 0 promptly with no sanitizer report. Returns its stderr.
    std::string stop_and_check() {
        if (!server_ || !server_->ok() || stopped_) return stderr_;
        stopped_ = true;
        auto code = server_->stop(3000ms);
        stderr_ = server_->process().drain_stderr();
        EXPECT_EQ(code, std::optional<int>(0)) << "server-" << model() << " did not stop cleanly; stderr:\n" << stderr_;
        EXPECT_FALSE(sbtest::has_sanitizer_report(stderr_)) << stderr_;
        return stderr_;
    }

    void TearDown() override { stop_and_check(); }

    std::uint16_t port() const { return server_->port(); }
    pid_t pid() const { return server_->pid(); }

    std::optional<sbtest::ServerProcess> server_;
    bool echo_ = false;
    bool stopped_ = false;
    std::string stderr_;
    int base_fds_ = 0, base_threads_ = 0, base_children_ = 0;
    long base_rss_kib_ = 0;
};

// ---- attacks ----

// 50 connections each trickle one byte of a never-ending header every 50 ms.
TEST_P(Robustness, Slowloris) {
    start({"--idle-timeout-ms", "300"});
    std::vector<UniqueFd> attackers;
    for (int i = 0; i < 50; ++i) attackers.push_back(sbtest::connect_to(port()));
    const std::string head = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + std::string(200, 'a');

    std::atomic<bool> served{false};
    std::atomic<long> took_ms{-1};
    std::thread normal_client([&] {
        sleep_for(250ms);  // the attack is under way
        auto t0 = Clock::now();
        auto r = sbtest::http_get(port());
        served = r && r->status == 200;
        took_ms = elapsed_ms(t0);
    });
    for (std::size_t step = 0; step < 30; ++step) {
        for (auto& a : attackers) {
            if (a) ::send(a.get(), head.data() + step, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        }
        sleep_for(50ms);
    }
    normal_client.join();
    if (serves_one_at_a_time(model())) {
        // Documented weakness: the one thread is held by each trickler in turn until its request
        // deadline (the idle timeout) cuts it off; the normal client waits behind them all.
        EXPECT_FALSE(served) << "unexpected: the blocking model served a client during slowloris";
    } else {
        EXPECT_TRUE(served) << "a normal client was not served during slowloris";
        EXPECT_LT(took_ms.load(), 2000) << "the normal client waited " << took_ms << " ms";
    }
    // A request must arrive whole within --idle-timeout-ms of its first byte, so the server cuts
    // the tricklers off (the one-at-a-time model one after another: it is free again after each).
    Tally cut = await_first_responses(attackers, 1000ms);
    std::cerr << "[ slowloris] server-" << model() << ": " << cut.closed << " of 50 tricklers cut off\n";
    if (serves_one_at_a_time(model())) {
        EXPECT_GE(cut.closed, 1) << "the trickler holding the blocking server was never cut off";
    } else {
        EXPECT_EQ(cut.closed, 50) << "tricklers still connected after 1.5 s (idle timeout 300 ms)";
    }
    attackers.clear();  // the attack ends
    expect_healthy();
}

// Connections that say nothing, or half a request, are closed after --idle-timeout-ms; the
// one-at-a-time model then serves the client queued behind them.
TEST_P(Robustness, IdleAndPartialConnectionsAreClosedAfterTimeout) {
    start({"--idle-timeout-ms", "300"});
    UniqueFd silent = sbtest::connect_to(port());
    UniqueFd partial = sbtest::connect_to(port());
    ASSERT_TRUE(silent && partial);
    ASSERT_TRUE(sbtest::send_all(partial.get(), "GET / HTTP/1.1\r\nHost: 12"));
    UniqueFd queued = sbtest::connect_to(port());
    ASSERT_TRUE(sbtest::send_all(queued.get(), kGetClose));

    const auto t0 = Clock::now();
    bool closed = false;
    EXPECT_EQ(sbtest::read_to_eof(silent.get(), 3000ms, &closed), "");
    EXPECT_TRUE(closed) << "a silent connection was not closed within 3 s (idle timeout 300 ms)";
    sbtest::read_to_eof(partial.get(), 3000ms, &closed);
    EXPECT_TRUE(closed) << "a half-sent request was not closed within 3 s (idle timeout 300 ms)";
    std::string pending;
    auto r = sbtest::read_http_response(queued.get(), pending, 3000ms);
    EXPECT_TRUE(r && r->status == 200) << "the client queued behind idle connections was not served";
    EXPECT_LT(elapsed_ms(t0), 3000);
    expect_healthy();
}

TEST_P(Robustness, ClientsResetMidRequest) {
    start();
    const std::string partial_head = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A";
    const std::string partial_body = "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n\r\nabcdef";
    for (int i = 0; i < 40; ++i) {
        UniqueFd fd = sbtest::connect_to(port());
        ASSERT_TRUE(fd);
        sbtest::send_all(fd.get(), i % 2 ? partial_head : partial_body);
        if (i % 4 == 0) sleep_for(2ms);  // sometimes the server has read it before the reset
        reset_on_close(fd.get());
    }
    expect_healthy();
}

TEST_P(Robustness, ClientsResetMidResponse) {
    start({"--response-bytes", "1000000"});
    std::string pipelined;
    for (int i = 0; i < 8; ++i) pipelined += kGet;
    for (int i = 0; i < 12; ++i) {
        UniqueFd fd = sbtest::connect_to(port());
        ASSERT_TRUE(fd);
        ASSERT_TRUE(sbtest::send_all(fd.get(), pipelined));
        EXPECT_EQ(sbtest::read_exactly(fd.get(), 4096).size(), 4096u);  // the response has begun
        reset_on_close(fd.get());
    }
    expect_healthy();
}

TEST_P(Robustness, HalfClosedConnectionStillGetsItsResponses) {
    start();
    for (std::string_view request : {kGet, std::string_view{"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"}}) {
        UniqueFd fd = sbtest::connect_to(port());
        ASSERT_TRUE(fd);
        std::string pipelined;
        for (int i = 0; i < 3; ++i) pipelined += request;
        ASSERT_TRUE(sbtest::send_all(fd.get(), pipelined));
        ASSERT_EQ(::shutdown(fd.get(), SHUT_WR), 0);
        bool closed = false;
        std::string data = sbtest::read_to_eof(fd.get(), 3000ms, &closed);
        EXPECT_TRUE(closed) << "no EOF after the responses to a half-closed connection";
        int responses = 0;
        for (std::size_t n; (n = complete_response_length(data)) > 0; data.erase(0, n)) {
            EXPECT_EQ(data.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
            ++responses;
        }
        EXPECT_EQ(responses, 3);
        EXPECT_EQ(data, "") << "bytes after the last whole response";
    }
    expect_healthy();
}

// 20k pipelined requests for 10 kB responses (200 MB of output) from a client that never reads:
// the protocol's output high-water mark and the socket's back-pressure must bound the memory.
TEST_P(Robustness, ClientThatNeverReadsBoundsMemory) {
    start({"--response-bytes", "10000", "--idle-timeout-ms", "10000"});
    UniqueFd fd = sbtest::connect_to(port());
    ASSERT_TRUE(fd);
    std::string requests;
    for (int i = 0; i < 20000; ++i) requests += kGet;
    std::string_view rest = requests;
    long peak_kib = 0;
    const auto t0 = Clock::now();
    while (!rest.empty() && elapsed_ms(t0) < 1500) {
        ssize_t n = ::send(fd.get(), rest.data(), rest.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) rest.remove_prefix(static_cast<std::size_t>(n));
        else sleep_for(20ms);
        peak_kib = std::max(peak_kib, tree_rss_kib(pid()));
    }
    for (int i = 0; i < 10; ++i, sleep_for(30ms)) peak_kib = std::max(peak_kib, tree_rss_kib(pid()));
    EXPECT_LT(peak_kib - base_rss_kib_, 64 * 1024)
        << "RSS grew by " << (peak_kib - base_rss_kib_) << " KiB for a client that does not read";
    fd.reset();  // closed with unread responses: the server sees a reset
    expect_healthy();
}

// Models that serve a fixed number of connections at once (one, or --workers) and queue the rest.
bool queues_beyond_workers(const std::string& model) {
    return model == "blocking" || model == "thread-pool" || model == "prefork";
}

// 2000 keep-alive connections at once, all held open, each with one request. Models with a
// thread, a process or an event-loop slot per connection answer them all; select refuses those
// whose descriptor is >= FD_SETSIZE (closed at once); the one-at-a-time and pool models queue the
// rest. None may crash, and none may leave a refused client hanging.
TEST_P(Robustness, BurstOf2000Connections) {
    raise_fd_limit(4096);
    start({"--idle-timeout-ms", "10000"});
    std::vector<UniqueFd> conns;
    conns.reserve(2000);
    for (int i = 0; i < 2000; ++i) {
        conns.push_back(sbtest::connect_to(port()));
        if (conns.back()) sbtest::send_all(conns.back().get(), kGet);
    }
    const bool queues = queues_beyond_workers(model());
    Tally t = queues ? await_first_responses(conns, 4000ms) : await_first_responses(conns, 5000ms, 80000ms);
    std::cerr << "[ burst    ] server-" << model() << ": " << t << "\n";
    EXPECT_GT(t.served, 0) << t;
    if (model() == "select") {
        EXPECT_EQ(t.pending, 0) << "select must close what it cannot watch, not leave it waiting: " << t;
        EXPECT_GT(t.closed, 0) << t;
    } else if (!queues) {
        EXPECT_EQ(t.served, 2000) << t;
    }
    conns.clear();
    expect_healthy(48 * 1024);
}

TEST_P(Robustness, RandomBytes) {
    start({"--idle-timeout-ms", "2000"});
    std::mt19937 rng(20261122);
    for (int i = 0; i < 60; ++i) {
        std::string payload;
        switch (i % 4) {
        case 0: break;                                     // pure noise
        case 1: payload = "GET / HTTP/1.1\r\n"; break;     // a valid start, then noise
        case 2: payload = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"; break;
        case 3: payload = std::string(kGet); break;        // one good request, then noise
        }
        std::uniform_int_distribution<int> length(1, i % 10 == 0 ? 20000 : 2000), byte(0, 255);
        for (int n = length(rng); n > 0; --n) payload += static_cast<char>(byte(rng));
        UniqueFd fd = sbtest::connect_to(port());
        ASSERT_TRUE(fd);
        sbtest::send_all(fd.get(), payload);  // may fail once the server answered 400 and closed
        ::shutdown(fd.get(), SHUT_WR);
        bool closed = false;
        std::string reply = sbtest::read_to_eof(fd.get(), 3000ms, &closed);
        EXPECT_TRUE(closed) << "connection " << i << " not closed after noise and EOF";
        if (!reply.empty()) {
            EXPECT_EQ(reply.rfind("HTTP/1.1 ", 0), 0u) << "connection " << i;
        }
    }
    expect_healthy();
}

TEST_P(Robustness, RandomBytesEchoedExactly) {
    start({"--protocol", "echo"});
    std::mt19937 rng(7);
    for (int i = 0; i < 20; ++i) {
        std::uniform_int_distribution<int> length(1, 100000), byte(0, 255);
        std::string payload;
        for (int n = length(rng); n > 0; --n) payload += static_cast<char>(byte(rng));
        UniqueFd fd = sbtest::connect_to(port());
        ASSERT_TRUE(fd);
        ASSERT_TRUE(sbtest::send_all(fd.get(), payload));
        ::shutdown(fd.get(), SHUT_WR);
        bool closed = false;
        EXPECT_TRUE(sbtest::read_to_eof(fd.get(), 3000ms, &closed) == payload) << "connection " << i;
        EXPECT_TRUE(closed);
    }
    expect_healthy();
}

// Every model but blocking, which serves one connection at a time by design.
class ConcurrentRobustness : public Robustness {};

TEST_P(ConcurrentRobustness, MaxConnsIsEnforced) {
    start({"--max-conns", "3", "--idle-timeout-ms", "10000"});
    std::vector<UniqueFd> admitted;
    std::string pending;
    for (int i = 0; i < 3; ++i) {
        admitted.push_back(sbtest::connect_to(port()));
        ASSERT_TRUE(sbtest::send_all(admitted.back().get(), kGet));
        auto r = sbtest::read_http_response(admitted.back().get(), pending);
        ASSERT_TRUE(r && r->status == 200) << "connection " << i << " of 3 not served";
    }
    UniqueFd extra = sbtest::connect_to(port());
    ASSERT_TRUE(extra);
    sbtest::send_all(extra.get(), kGet);
    bool closed = false;
    EXPECT_EQ(sbtest::read_to_eof(extra.get(), 2000ms, &closed), "") << "the 4th connection was served";
    EXPECT_TRUE(closed) << "the connection over --max-conns was not closed at once";
    for (auto& c : admitted) {  // the admitted ones are still served
        ASSERT_TRUE(sbtest::send_all(c.get(), kGet));
        auto r = sbtest::read_http_response(c.get(), pending);
        EXPECT_TRUE(r && r->status == 200);
    }
    admitted.pop_back();  // a slot frees: new connections are admitted again
    EXPECT_TRUE(sbtest::eventually([&] { return answers_normal_request(); }, 3000ms));
    admitted.clear();
    expect_healthy();
    Refusals r = parse_refusals(stop_and_check());
    EXPECT_GE(r.at_limit, 1) << "the refused connection was not counted: " << stderr_;
}

// `ulimit -n 64` and 100 clients: no crash, no EMFILE busy loop, open connections still served,
// and new ones accepted once descriptors free up.
TEST_P(Robustness, DescriptorExhaustion) {
    start({"--idle-timeout-ms", "10000"}, {"prlimit", "--nofile=64"});
    std::vector<UniqueFd> clients;
    for (int i = 0; i < 100; ++i) {
        clients.push_back(sbtest::connect_to(port()));
        if (clients.back()) sbtest::send_all(clients.back().get(), kGet);
    }
    sleep_for(300ms);
    const double cpu0 = cpu_seconds(pid());
    sleep_for(1000ms);
    const double cpu_used = cpu_seconds(pid()) - cpu0;
    // A server that spins on EMFILE burns a whole CPU; one that waits uses a fraction of it, more
    // under a sanitizer, where serving the admitted clients alone has taken half a second.
    const double spin_bound_s = SB_UNDER_SANITIZER ? 0.9 : 0.5;
    EXPECT_LT(cpu_used, spin_bound_s) << "the server spins with its descriptors exhausted (" << cpu_used
                                      << " s of CPU in 1 s)";

    Tally t = await_first_responses(clients, 2000ms, 20000ms);
    std::cerr << "[ nofile64 ] server-" << model() << ": " << t << "\n";
    EXPECT_GT(t.served, 0) << t;
    std::string pending;
    for (std::size_t i = 0; i < clients.size(); ++i) {  // connections it holds are still served
        if (!t.was_served[i]) continue;
        // Drop the first response's bytes, then ask again.
        ASSERT_TRUE(sbtest::send_all(clients[i].get(), kGetClose));
        std::string data = sbtest::read_to_eof(clients[i].get(), 3000ms);
        EXPECT_NE(data.find("HTTP/1.1 200 OK"), std::string::npos) << "open connection " << i << " no longer served";
        clients[i].reset();
    }
    clients.clear();
    expect_healthy();
}

// Thread or process creation fails (EAGAIN): the server must close that one connection and go on.
// RLIMIT_NPROC counts every task of a user and root ignores it, so the server runs as a user of
// its own (a uid per model, so tests running in parallel do not share a count), which needs root.
TEST_P(Robustness, ThreadOrProcessCreationFailure) {
    if (::geteuid() != 0 || ::access("/usr/bin/setpriv", X_OK) != 0) {
        GTEST_SKIP() << "needs root and setpriv to run the server as another user under RLIMIT_NPROC; "
                        "MaxConnsIsEnforced covers the refusal path";
    }
    const auto models = sbtest::server_models();
    const auto index = std::find(models.begin(), models.end(), model()) - models.begin();
    const std::string uid = std::to_string(47000 + index);
    start({"--idle-timeout-ms", "10000"},
          {"prlimit", "--nproc=12", "setpriv", "--reuid=" + uid, "--regid=" + uid, "--clear-groups", "--"});
    std::vector<UniqueFd> clients;
    for (int i = 0; i < 30; ++i) {
        clients.push_back(sbtest::connect_to(port()));
        if (clients.back()) sbtest::send_all(clients.back().get(), kGet);
    }
    Tally t = await_first_responses(clients, 2000ms, 20000ms);
    std::cerr << "[ nproc12  ] server-" << model() << ": " << t << "\n";
    EXPECT_GT(t.served, 0) << t;
    clients.clear();
    expect_healthy();
    Refusals r = parse_refusals(stop_and_check());
    if (model() == "thread-per-conn" || model() == "fork-per-conn") {
        EXPECT_EQ(t.pending, 0) << "a connection without a thread/process must be closed, not left waiting: " << t;
        EXPECT_GE(r.no_resources, 1) << stderr_;
    }
}

std::string model_test_name(const testing::TestParamInfo<std::string>& info) {
    std::string name = info.param;
    std::replace(name.begin(), name.end(), '-', '_');
    return name;
}

INSTANTIATE_TEST_SUITE_P(AllModels, Robustness, ::testing::ValuesIn(sbtest::server_models()), model_test_name);
INSTANTIATE_TEST_SUITE_P(AllModels, ConcurrentRobustness, ::testing::ValuesIn(sbtest::concurrent_server_models()),
                         model_test_name);

}  // namespace
