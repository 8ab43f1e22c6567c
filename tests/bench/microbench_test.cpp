// microbench, run with a tiny min time and only the small sizes, must produce a JSON result for
// every family the run script and the plots look for, each without error and with a positive time.

#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

extern char** environ;

namespace {

// The contract with run_all.sh and plots/run_results.py: exactly these family names.
const std::vector<std::string> kFamilies = {
    "BM_ThreadSpawnJoin", "BM_ThreadPoolHandoff", "BM_ForkWaitpid",     "BM_AcceptClose",
    "BM_SelectReady",     "BM_PollReady",         "BM_EpollWaitReady",  "BM_ContextSwitchThreads",
    "BM_ContextSwitchProcesses", "BM_HttpParseSingle", "BM_HttpParsePipelined", "BM_EchoPath",
    "BM_HistogramRecord", "BM_HistogramMerge",
};

// Every family, but of the readiness sizes only N = 8 and 64: the whole run takes about a second.
constexpr const char* kFilter = "^BM_[A-Za-z]+(/(8|16|64))?(/real_time)?$";

int run(std::vector<std::string> args) {
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return -1;
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Runs microbench over `filter` with a tiny min time and returns its JSON report (null if none).
nlohmann::json report_of(const std::string& filter) {
    const std::filesystem::path out =
        std::filesystem::path(testing::TempDir()) / ("microbench_" + std::to_string(getpid()) + ".json");
    EXPECT_EQ(run({MICROBENCH_PATH, "--benchmark_min_time=0.001", "--benchmark_filter=" + filter,
                   "--benchmark_out=" + out.string(), "--benchmark_out_format=json"}),
              0);
    std::ifstream in(out);
    if (!in) return nullptr;
    nlohmann::json doc = nlohmann::json::parse(in);
    std::filesystem::remove(out);
    return doc;
}

bool in_family(const std::string& name, const std::string& family) {
    return name == family || name.starts_with(family + "/");
}

TEST(Microbench, JsonHasEveryFamily) {
    const nlohmann::json doc = report_of(kFilter);
    ASSERT_TRUE(doc.contains("benchmarks"));

    for (const std::string& family : kFamilies) {
        int entries = 0;
        for (const nlohmann::json& bench : doc["benchmarks"]) {
            const std::string name = bench.value("name", "");
            if (!in_family(name, family)) continue;
            ++entries;
            EXPECT_FALSE(bench.value("error_occurred", false)) << name << ": " << bench.value("error_message", "");
            EXPECT_GT(bench.value("real_time", 0.0), 0.0) << name;
        }
        EXPECT_GT(entries, 0) << family << " is missing from the JSON";
    }
}

// The readiness families say how many descriptors each point watched, for the scaling chart.
TEST(Microbench, ReadinessPointsCountTheirDescriptors) {
    const nlohmann::json doc = report_of("Ready/64$");
    ASSERT_TRUE(doc.contains("benchmarks"));
    int points = 0;
    for (const nlohmann::json& bench : doc["benchmarks"]) {
        ++points;
        EXPECT_EQ(bench.value("fds", 0.0), 64.0) << bench.value("name", "");
    }
    EXPECT_EQ(points, 3);  // select, poll, epoll_wait
}

}  // namespace
