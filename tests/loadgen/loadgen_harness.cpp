#include "loadgen_harness.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace lgtest {

using nlohmann::json;

const std::string kLoadgen = std::string(SERVERBENCH_BIN_DIR) + "/loadgen";

std::string temp_path(const std::string& stem) {
    static int counter = 0;
    const std::string path =
        testing::TempDir() + stem + "_" + std::to_string(getpid()) + "_" + std::to_string(++counter);
    std::remove(path.c_str());
    return path;
}

LoadgenRun run_loadgen(std::vector<std::string> args, sbtest::Millis limit) {
    const std::string out = temp_path("loadgen_it") + ".json";
    args.insert(args.begin(), kLoadgen);
    for (const char* extra : {"--quiet", "--out"}) args.emplace_back(extra);
    args.push_back(out);
    LoadgenRun run;
    auto process = sbtest::Process::spawn(args);
    if (!process) {
        ADD_FAILURE() << "cannot start " << kLoadgen;
        return run;
    }
    const auto code = process->wait_exit(limit);
    run.stderr_text = process->drain_stderr();
    if (!code) {
        ADD_FAILURE() << "loadgen still running after " << limit.count() << " ms: hung (killed)";
        return run;
    }
    run.exit_code = *code;
    std::ifstream in(out);
    if (in) run.result = json::parse(in, nullptr, /*allow_exceptions=*/false);
    std::remove(out.c_str());
    return run;
}

std::vector<json> read_json_lines(const std::string& path) {
    std::vector<json> lines;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);)
        lines.push_back(json::parse(line, nullptr, /*allow_exceptions=*/false));
    return lines;
}

std::uint64_t count(const json& j, std::initializer_list<const char*> path) {
    const json* node = &j;
    for (const char* key : path) {
        if (!node->is_object() || !node->contains(key)) return 0;
        node = &node->at(key);
    }
    return node->is_number() ? node->get<std::uint64_t>() : 0;
}

std::uint64_t errors_of(const json& r, const char* kind) {
    return count(r, {"totals", "errors", kind});
}

std::uint64_t total_errors(const json& r) {
    std::uint64_t n = 0;
    for (const auto& [kind, v] : r.at("totals").at("errors").items()) n += v.get<std::uint64_t>();
    return n;
}

// Opened read-write, so that opening it never blocks and the reader sees EOF only at close().
StdinFifo::StdinFifo() : path_(temp_path("lg_stdin")) {
    if (::mkfifo(path_.c_str(), 0600) == 0) fd_.reset(::open(path_.c_str(), O_RDWR | O_CLOEXEC));
}

StdinFifo::~StdinFifo() {
    ::unlink(path_.c_str());
}

std::vector<std::string> StdinFifo::command(std::vector<std::string> argv) const {
    argv.insert(argv.begin(), {"/bin/sh", "-c", "f=$1; shift; exec \"$@\" < \"$f\"", "sh", path_});
    return argv;
}

bool StdinFifo::write_line(const std::string& line) {
    const std::string bytes = line + "\n";
    return ::write(fd_.get(), bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
}

MisbehavingServer::MisbehavingServer(const std::string& behaviour, std::vector<std::string> extra,
                                     const std::string& unix_path) {
    std::vector<std::string> argv{MISBEHAVING_SERVER, "--behaviour", behaviour};
    if (unix_path.empty())
        argv.insert(argv.end(), {"--port", "0"});
    else
        argv.insert(argv.end(), {"--unix", unix_path});
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_ = sbtest::Process::spawn(argv);
    if (!process_) return;
    const auto line = process_->read_stdout_line(5000ms);
    const auto at = line ? line->find("port=") : std::string::npos;
    if (at == std::string::npos) return;
    port_ = std::stoi(line->substr(at + 5));
    ready_ = port_ != 0 || !unix_path.empty();
}

}  // namespace lgtest
