#pragma once
// Reads a process tree (a server and all its descendants) from /proc: CPU time, RSS, threads,
// processes, context switches. A ProcessTreeSampler thread samples it once a second for the
// peaks; the window's CPU and context-switch deltas come from two snapshots taken by the caller
// at the window's edges. Never on the hot path.

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace loadgen {

struct ProcessTreeSnapshot {
    double cpu_user_s = 0;  // live processes' own time + what their reaped children used
    double cpu_sys_s = 0;
    std::uint64_t rss_kib = 0;
    std::uint64_t threads = 0;
    std::uint64_t processes = 0;
    std::uint64_t ctx_voluntary = 0;
    std::uint64_t ctx_involuntary = 0;
};

// nullopt if `root` no longer exists.
std::optional<ProcessTreeSnapshot> snapshot_process_tree(pid_t root);
// "Cpus_allowed_list" of /proc/PID/status ("0", "0-3"), or "" if unreadable.
std::string cpus_allowed_list(pid_t pid);
int count_cpus_in_list(const std::string& list);

class ProcessTreeSampler {
public:
    explicit ProcessTreeSampler(pid_t root);
    ~ProcessTreeSampler();  // stops and joins the thread
    ProcessTreeSampler(const ProcessTreeSampler&) = delete;
    ProcessTreeSampler& operator=(const ProcessTreeSampler&) = delete;

    struct Peaks {
        std::uint64_t rss_kib = 0, threads = 0, processes = 0;
    };
    Peaks peaks();
    void sample_now();  // also folds a snapshot into the peaks

private:
    void loop();
    void fold(const ProcessTreeSnapshot& s);

    pid_t root_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stop_ = false;
    Peaks peaks_;
    std::thread thread_;
};

}  // namespace loadgen
