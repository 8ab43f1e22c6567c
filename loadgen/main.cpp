// loadgen: a load generator for HTTP/1.1 and echo servers (the run form, see run.hpp),
// `loadgen merge`, which combines the results of load generators that ran side by side, and
// `loadgen sample-server`, which samples a server's process tree for a driver on another host.

#include <cassert>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "loadgen/engine.hpp"
#include "loadgen/options.hpp"
#include "loadgen/proc_sampler.hpp"
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

// The figures --server-pid records, from the same functions: a driver that reads a server on
// another host runs this there rather than a copy of the rule. cpus_allowed_list is read after
// the tree, so it is empty only if PID ended in between.
nlohmann::ordered_json server_sample(pid_t pid) {
    const std::uint64_t now_ns = loadgen::monotonic_ns();
    const auto tree = loadgen::snapshot_process_tree(pid);
    const std::string cpus = tree ? loadgen::cpus_allowed_list(pid) : "";
    if (!tree || cpus.empty()) return {{"pid", pid}, {"gone", true}, {"monotonic_ns", now_ns}};
    return {{"pid", pid},
            {"cpu_user_s", tree->cpu_user_s},
            {"cpu_sys_s", tree->cpu_sys_s},
            {"rss_kib", tree->rss_kib},
            {"threads", tree->threads},
            {"processes", tree->processes},
            {"ctx_switches_voluntary", tree->ctx_voluntary},
            {"ctx_switches_involuntary", tree->ctx_involuntary},
            {"cpus_allowed", cpus},
            {"cpus_allowed_count", loadgen::count_cpus_in_list(cpus)},
            {"monotonic_ns", now_ns}};
}

// One sample per line read, whatever the line says: the driver asks at the instants it chooses.
// A reader that went away ends it quietly: SIGPIPE, or exit 1 where SIGPIPE is ignored.
int run_sample_server(const loadgen::SampleServerOptions& s) {
    for (std::string line; std::getline(std::cin, line);) {
        const std::string out = server_sample(s.pid).dump() + "\n";
        if (std::fputs(out.c_str(), stdout) == EOF || std::fflush(stdout) == EOF) return 1;
    }
    return 0;
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
            case loadgen::CommandLine::Action::sample_server:
                return run_sample_server(cl.sample_server);
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
