// `loadgen sample-server --pid PID`, the real binary driven through its stdin and stdout as the
// driver drives it, against a real process tree the test forks: a child that burns CPU on request
// and a grandchild that sleeps.
//
// Every process is ended by a destructor (sbtest::Process, SampledTree) and every wait has a
// limit, so a failing test leaves nothing behind and a hung loadgen fails instead of hanging.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "loadgen_harness.hpp"
#include "test_support.hpp"

namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using lgtest::kLoadgen;
using lgtest::StdinFifo;

constexpr char kReady = 'r', kBurn = 'b', kBurned = 'd';
constexpr long kBurnNs = 200'000'000;  // CPU time the child burns per request

long thread_cpu_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1'000'000'000L + ts.tv_nsec;
}

// Reads one byte from `fd`, waiting at most `timeout`.
std::optional<char> read_byte(int fd, sbtest::Millis timeout) {
    pollfd pfd{fd, POLLIN, 0};
    char byte = 0;
    if (::poll(&pfd, 1, static_cast<int>(timeout.count())) != 1 || ::read(fd, &byte, 1) != 1)
        return std::nullopt;
    return byte;
}

// Ends with the process that forked it, whatever way that one ends.
void die_with_parent(pid_t parent) {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ::_exit(127);
}

// The child's life after fork: only async-signal-safe calls. It forks a sleeping grandchild,
// says it is ready, then burns kBurnNs of CPU for each request and answers when done.
[[noreturn]] void child_main(pid_t test_pid, int requests, int answers) {
    die_with_parent(test_pid);
    const pid_t child = ::getpid();
    const pid_t grandchild = ::fork();
    if (grandchild == 0) {
        die_with_parent(child);
        for (;;) ::pause();
    }
    char byte = grandchild > 0 ? kReady : 'x';
    if (::write(answers, &byte, 1) != 1) ::_exit(1);
    while (::read(requests, &byte, 1) == 1) {
        for (const long end = thread_cpu_ns() + kBurnNs; thread_cpu_ns() < end;) {
        }
        byte = kBurned;
        if (::write(answers, &byte, 1) != 1) ::_exit(1);
    }
    ::_exit(0);
}

// A child (this test's) with a grandchild: two processes, one thread each. Killed and reaped by
// the destructor; the grandchild dies with its parent (PR_SET_PDEATHSIG).
class SampledTree {
public:
    SampledTree() {
        int requests[2], answers[2];
        if (::pipe2(requests, O_CLOEXEC) != 0) return;
        if (::pipe2(answers, O_CLOEXEC) != 0) {
            ::close(requests[0]);
            ::close(requests[1]);
            return;
        }
        sb::UniqueFd request_read{requests[0]}, answer_write{answers[1]};
        requests_.reset(requests[1]);
        answers_.reset(answers[0]);
        const pid_t test_pid = ::getpid();
        pid_ = ::fork();
        if (pid_ == 0) child_main(test_pid, request_read.get(), answer_write.get());
        ready_ = pid_ > 0 && read_byte(answers_.get(), 5000ms) == kReady;
    }
    ~SampledTree() { kill_and_reap(); }
    SampledTree(const SampledTree&) = delete;
    SampledTree& operator=(const SampledTree&) = delete;

    bool ok() const { return ready_; }
    pid_t pid() const { return pid_; }

    // True once the child has burned kBurnNs more CPU and sleeps again in read().
    bool burn() {
        const char byte = kBurn;
        return ::write(requests_.get(), &byte, 1) == 1 && read_byte(answers_.get(), 20'000ms) == kBurned &&
               sbtest::eventually([this] { return state() == 'S'; }, 5000ms);
    }

    void kill_and_reap() {
        if (pid_ <= 0 || reaped_) return;
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        reaped_ = true;
    }

private:
    // The state letter of /proc/PID/stat, after the command's closing parenthesis.
    char state() const {
        std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
        std::string text;
        std::getline(in, text);
        const auto close = text.rfind(") ");
        return close == std::string::npos || close + 2 >= text.size() ? '?' : text[close + 2];
    }

    pid_t pid_ = -1;
    bool ready_ = false, reaped_ = false;
    sb::UniqueFd requests_, answers_;
};

// `loadgen sample-server --pid PID` with a FIFO as its stdin.
struct Sampler {
    StdinFifo in;
    std::optional<sbtest::Process> process;

    explicit Sampler(pid_t pid) {
        if (in.ok())
            process =
                sbtest::Process::spawn(in.command({kLoadgen, "sample-server", "--pid", std::to_string(pid)}));
    }
    bool ok() const { return process.has_value(); }

    // Writes `line`, returns the JSON line that answers it (null if none came in time or it is
    // not JSON).
    json sample(const std::string& line = "sample") {
        if (!in.write_line(line)) return nullptr;
        const auto answer = process->read_stdout_line(10'000ms);
        return answer ? json::parse(*answer, nullptr, /*allow_exceptions=*/false) : json(nullptr);
    }
};

std::set<std::string> keys_of(const json& j) {
    std::set<std::string> keys;
    for (const auto& [key, value] : j.items()) keys.insert(key);
    return keys;
}

double cpu_s(const json& s) {
    return s.at("cpu_user_s").get<double>() + s.at("cpu_sys_s").get<double>();
}

int cpus_of_this_process() {
    cpu_set_t set;
    CPU_ZERO(&set);
    return ::sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : -1;
}

const std::set<std::string> kSampleKeys{"pid",
                                        "cpu_user_s",
                                        "cpu_sys_s",
                                        "rss_kib",
                                        "threads",
                                        "processes",
                                        "ctx_switches_voluntary",
                                        "ctx_switches_involuntary",
                                        "cpus_allowed",
                                        "cpus_allowed_count",
                                        "monotonic_ns"};

// The tree's figures on each line; the CPU the child burned between two lines shows in the second.
TEST(LoadgenSampleServer, SamplesTheWholeTreeOnEveryLine) {
    SampledTree tree;
    ASSERT_TRUE(tree.ok());
    Sampler sampler(tree.pid());
    ASSERT_TRUE(sampler.ok());
    const json first = sampler.sample();
    ASSERT_TRUE(first.is_object()) << sampler.process->drain_stderr();
    EXPECT_EQ(keys_of(first), kSampleKeys) << first.dump();
    EXPECT_EQ(first["pid"], tree.pid());
    EXPECT_EQ(first["processes"], 2) << "the grandchild belongs to the tree";
    EXPECT_EQ(first["threads"], 2);
    EXPECT_GT(first["rss_kib"].get<std::uint64_t>(), 0u);
    EXPECT_FALSE(first["cpus_allowed"].get<std::string>().empty());
    EXPECT_EQ(first["cpus_allowed_count"], cpus_of_this_process());  // the child inherited them

    ASSERT_TRUE(tree.burn());
    const json second = sampler.sample("");  // any line, even an empty one, is a request
    ASSERT_TRUE(second.is_object());
    EXPECT_EQ(keys_of(second), kSampleKeys) << second.dump();
    // The tree's time is exact (the scheduler's run time), so the burn shows nearly whole.
    EXPECT_GE(cpu_s(second) - cpu_s(first), 0.9 * static_cast<double>(kBurnNs) / 1e9) << first.dump() << "\n"
                                                                                      << second.dump();
    // The child woke from read() and slept in it again between the two samples: a voluntary switch.
    EXPECT_GT(second["ctx_switches_voluntary"].get<std::uint64_t>(),
              first["ctx_switches_voluntary"].get<std::uint64_t>());
    EXPECT_GT(second["monotonic_ns"].get<std::uint64_t>(), first["monotonic_ns"].get<std::uint64_t>());

    const json idle = sampler.sample("anything at all");
    ASSERT_TRUE(idle.is_object());
    EXPECT_GE(cpu_s(idle), cpu_s(second));  // never goes back
    EXPECT_EQ(idle["processes"], 2);
}

// Once PID has ended (killed and reaped), the next line says so; EOF on stdin ends loadgen with
// exit 0 and nothing more on stdout or stderr.
TEST(LoadgenSampleServer, SaysGoneThenEndsAtEof) {
    SampledTree tree;
    ASSERT_TRUE(tree.ok());
    Sampler sampler(tree.pid());
    ASSERT_TRUE(sampler.ok());
    ASSERT_TRUE(sampler.sample().contains("cpu_user_s"));
    tree.kill_and_reap();
    const json gone = sampler.sample();
    EXPECT_EQ(keys_of(gone), (std::set<std::string>{"pid", "gone", "monotonic_ns"})) << gone.dump();
    EXPECT_EQ(gone["pid"], tree.pid());
    EXPECT_EQ(gone["gone"], true);
    EXPECT_EQ(sampler.sample()["gone"], true);  // and stays so
    sampler.in.close();
    EXPECT_EQ(sampler.process->wait_exit(5000ms), 0);
    EXPECT_EQ(sampler.process->read_stdout_line(1000ms), std::nullopt);
    EXPECT_EQ(sampler.process->drain_stderr(), "");
}

// A pid that was never there: "gone" on the first line, not an error.
TEST(LoadgenSampleServer, APidThatIsNotThereIsGone) {
    SampledTree tree;
    ASSERT_TRUE(tree.ok());
    tree.kill_and_reap();
    Sampler sampler(tree.pid());
    ASSERT_TRUE(sampler.ok());
    EXPECT_EQ(sampler.sample()["gone"], true);
}

// When stdout's reader goes away, loadgen ends without a word: killed by SIGPIPE, or exit 1 where
// SIGPIPE is ignored (a parent that ignores it passes that on through exec). Its stdout is a FIFO
// the test reads one line from, then closes.
class LoadgenSampleServerReaderGone : public testing::TestWithParam<bool> {};

TEST_P(LoadgenSampleServerReaderGone, EndsQuietly) {
    const bool sigpipe_ignored = GetParam();
    StdinFifo in;
    ASSERT_TRUE(in.ok());
    const std::string out_path = lgtest::temp_path("lg_sample_out");
    ASSERT_EQ(::mkfifo(out_path.c_str(), 0600), 0);
    sb::UniqueFd out{::open(out_path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)};
    ASSERT_TRUE(out);
    const std::string script = std::string(sigpipe_ignored ? "trap '' PIPE; " : "") +
                               "i=$1; o=$2; shift 2; exec \"$@\" < \"$i\" > \"$o\"";
    auto loadgen = sbtest::Process::spawn({"/bin/sh", "-c", script, "sh", in.path(), out_path, kLoadgen,
                                           "sample-server", "--pid", std::to_string(::getpid())});
    ASSERT_TRUE(loadgen);
    ASSERT_TRUE(in.write_line("sample"));
    pollfd pfd{out.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&pfd, 1, 10'000), 1) << "no sample came";
    out.reset();
    ::unlink(out_path.c_str());
    ASSERT_TRUE(in.write_line("sample"));
    EXPECT_EQ(loadgen->wait_exit(5000ms), sigpipe_ignored ? 1 : 128 + SIGPIPE);
    EXPECT_EQ(loadgen->drain_stderr(), "");
}

INSTANTIATE_TEST_SUITE_P(Sigpipe, LoadgenSampleServerReaderGone, testing::Values(false, true),
                         [](const testing::TestParamInfo<bool>& p) {
                             return p.param ? "Ignored" : "Default";
                         });

// Bad usage: one line on stderr, exit 2, nothing on stdout, stdin never read.
TEST(LoadgenSampleServer, BadUsageIsOneLineAndExit2) {
    const std::pair<std::vector<std::string>, std::string> cases[] = {
        {{"sample-server", "--pid", "x"}, "--pid"},
        {{"sample-server"}, "--pid"},
        {{"sample-server", "--pid", "0"}, "--pid"},
        {{"sample-server", "--pid", "-3"}, "--pid"},
        {{"sample-server", "--pid", "1", "--connections", "5"}, "--connections"},
        {{"--connections", "5", "sample-server", "--pid", "1"}, "--connections"},
        {{"sample-server", "--pid", "1", "--bogus"}, "--bogus"},
        {{"sample-server", "--pid", "1", "extra"}, "extra"},
        {{"sample-server", "--pid", "1", "merge"}, "merge"},
    };
    for (const auto& [args, names] : cases) {
        std::vector<std::string> argv{kLoadgen};
        argv.insert(argv.end(), args.begin(), args.end());
        auto loadgen = sbtest::Process::spawn(argv);
        ASSERT_TRUE(loadgen);
        EXPECT_EQ(loadgen->wait_exit(5000ms), 2) << testing::PrintToString(args);
        const std::string err = loadgen->drain_stderr();
        EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
        EXPECT_NE(err.find(names), std::string::npos) << testing::PrintToString(args) << " -> " << err;
        EXPECT_EQ(loadgen->read_stdout_line(1000ms), std::nullopt);
    }
}

// Runs loadgen with `args`; its stdout up to EOF, and its exit code.
std::pair<std::string, std::optional<int>> run_to_end(const std::vector<std::string>& args) {
    std::vector<std::string> argv{kLoadgen};
    argv.insert(argv.end(), args.begin(), args.end());
    auto loadgen = sbtest::Process::spawn(argv);
    if (!loadgen) return {"", std::nullopt};
    std::string text;
    while (const auto line = loadgen->read_stdout_line(5000ms)) text += *line + "\n";
    return {text, loadgen->wait_exit(5000ms)};
}

TEST(LoadgenSampleServer, HelpExits0AndTheTopLevelHelpListsIt) {
    const auto [help, help_exit] = run_to_end({"sample-server", "--help"});
    EXPECT_EQ(help_exit, 0);
    EXPECT_NE(help.find("--pid"), std::string::npos) << help;
    EXPECT_NE(help.find("cpus_allowed_count"), std::string::npos) << help;
    EXPECT_EQ(run_to_end({"sample-server", "--pid", "x", "--help"}), std::make_pair(help, std::optional(0)));
    const auto [top, top_exit] = run_to_end({"--help"});
    EXPECT_EQ(top_exit, 0);
    EXPECT_NE(top.find("sample-server"), std::string::npos) << top;
}

}  // namespace
