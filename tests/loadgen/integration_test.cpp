// The real loadgen binary as a subprocess: no server (connect errors, exit 1), merge sums counts.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace {
const std::string kLoadgen = std::string(SERVERBENCH_BIN_DIR) + "/loadgen";

int run(const std::string& args) {
    const int st = std::system(("timeout -k 1 30 " + kLoadgen + " " + args + " 2>/dev/null").c_str());
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
nlohmann::json load(const std::string& path) {
    std::ifstream in(path);
    return nlohmann::json::parse(in);
}
}  // namespace

TEST(LoadgenBinary, NoServerCountsConnectErrorsAndExits1) {
    const std::string out = testing::TempDir() + "lg_noserver.json";
    EXPECT_EQ(run("--port 1 --duration 1 --timeout 1s --quiet --out " + out), 1);
    const auto j = load(out);
    EXPECT_GT(j["totals"]["errors"]["connect"].get<int>(), 0);
    EXPECT_EQ(j["connections"]["established"].get<int>(), 0);
    EXPECT_TRUE(j["errors_by_errno"].contains("ECONNREFUSED"));
}

TEST(LoadgenBinary, BadUsageExits2) {
    EXPECT_EQ(run("--port 80 --connections x"), 2);
}


TEST(LoadgenBinary, MergeSumsCounts) {
    const std::string a = testing::TempDir() + "lg_a.json", b = testing::TempDir() + "lg_b.json",
                      m = testing::TempDir() + "lg_m.json";
    run("--port 1 --duration 0.5 --timeout 1s --quiet --out " + a);
    run("--port 1 --duration 0.5 --timeout 1s --quiet --out " + b);
    run("merge " + a + " " + b + " --out " + m);
    const auto ja = load(a), jb = load(b), jm = load(m);
    EXPECT_EQ(jm["totals"]["errors"]["connect"].get<int>(),
              ja["totals"]["errors"]["connect"].get<int>() + jb["totals"]["errors"]["connect"].get<int>());
    EXPECT_EQ(jm["totals"]["requests"].get<int>(), ja["totals"]["requests"].get<int>() + jb["totals"]["requests"].get<int>());
}
