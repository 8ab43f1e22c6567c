// loadgen: a load generator for HTTP/1.1 and echo servers (the run form, see run.hpp), and
// `loadgen merge`, which combines the results of load generators that ran side by side.

#include <cassert>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "loadgen/options.hpp"
#include "loadgen/result_json.hpp"
#include "loadgen/run.hpp"

namespace {

using nlohmann::json;

constexpr int kUsageExit = 2;

// Reads every input; exit 2 names the first that cannot be read or parsed.
int run_merge(const loadgen::MergeOptions& m) {
    std::vector<json> docs;
    for (const auto& path : m.inputs) {
        std::ifstream in(path);
        if (!in) {
            std::fprintf(stderr, "loadgen: cannot read '%s'\n", path.c_str());
            return kUsageExit;
        }
        try {
            docs.push_back(json::parse(in));
        } catch (const std::exception& e) {
            std::fprintf(stderr, "loadgen: %s: %s\n", path.c_str(), e.what());
            return kUsageExit;
        }
    }
    json merged;
    try {
        merged = loadgen::merge_results(docs);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "loadgen: merge: %s\n", e.what());
        return kUsageExit;
    }
    if (!loadgen::write_result(merged, m.out)) return 1;
    return loadgen::exit_code_of(merged);
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const loadgen::CommandLine cl = loadgen::parse_command_line({argv + 1, argv + argc});
        switch (cl.action) {
            case loadgen::CommandLine::Action::help:
                std::fputs(cl.help_text.c_str(), stdout);
                return 0;
            case loadgen::CommandLine::Action::merge:
                return run_merge(cl.merge);
            case loadgen::CommandLine::Action::run:
                return loadgen::run_load(cl.run);
        }
    } catch (const loadgen::UsageError& e) {
        std::fprintf(stderr, "loadgen: %s\n", e.what());
        return kUsageExit;
    }
    assert(false && "every action returns from the switch");
    return kUsageExit;
}
