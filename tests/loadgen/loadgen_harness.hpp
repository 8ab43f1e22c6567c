#pragma once
// What the loadgen integration tests share: the real loadgen binary run as a subprocess with a time
// limit, the misbehaving server started and always stopped, and readers for the result JSON.

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_support.hpp"

namespace lgtest {

using namespace std::chrono_literals;

extern const std::string kLoadgen;  // build/bin/loadgen

struct LoadgenRun {
    int exit_code = -1;
    nlohmann::json result;  // null if no JSON was written
    std::string stderr_text;
};

// Runs loadgen with `args` plus --quiet --out; kills it (and fails the test) after `limit`.
LoadgenRun run_loadgen(std::vector<std::string> args, sbtest::Millis limit = 20s);

// A path under the test's temporary directory, unique in this process, nothing there yet.
std::string temp_path(const std::string& stem);

// A --series-file: one JSON document per line (an unparsable line is a discarded value).
std::vector<nlohmann::json> read_json_lines(const std::string& path);

// The number at `path` in `j`, 0 if it is missing or not a number.
std::uint64_t count(const nlohmann::json& j, std::initializer_list<const char*> path);
std::uint64_t errors_of(const nlohmann::json& r, const char* kind);
std::uint64_t total_errors(const nlohmann::json& r);

// A FIFO that becomes loadgen's stdin (through `sh -c 'exec ... < FIFO'`, so the pid stays
// loadgen's): the test writes lines to it, or closes it for an EOF.
class StdinFifo {
public:
    StdinFifo();
    ~StdinFifo();
    StdinFifo(const StdinFifo&) = delete;
    StdinFifo& operator=(const StdinFifo&) = delete;

    bool ok() const { return static_cast<bool>(fd_); }
    const std::string& path() const { return path_; }
    std::vector<std::string> command(std::vector<std::string> argv) const;
    bool write_line(const std::string& line);
    void close() { fd_.reset(); }

private:
    std::string path_;
    sb::UniqueFd fd_;
};

// The broken server of misbehaving_server.cpp, on --port 0 or on a Unix socket (`unix_path`);
// ok() once its readiness line came.
class MisbehavingServer {
public:
    explicit MisbehavingServer(const std::string& behaviour, std::vector<std::string> extra = {},
                               const std::string& unix_path = "");
    bool ok() const { return ready_; }
    std::string port() const { return std::to_string(port_); }
    sbtest::Process& process() { return *process_; }

private:
    std::optional<sbtest::Process> process_;
    int port_ = 0;
    bool ready_ = false;
};

}  // namespace lgtest
