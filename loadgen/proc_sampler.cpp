#include "loadgen/proc_sampler.hpp"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "loadgen/options.hpp"

namespace loadgen {
namespace {

struct StatLine {
    pid_t ppid = 0;
    std::uint64_t utime = 0, stime = 0, cutime = 0, cstime = 0, threads = 0, rss_pages = 0;
};

bool read_file(const std::string& path, std::string& out) {
    std::ifstream in(path);
    if (!in) return false;
    std::ostringstream ss;
    ss << in.rdbuf();
    out = ss.str();
    return true;
}

// /proc/PID/stat: the command may hold spaces and parentheses, so fields are counted after the last ')'.
std::optional<StatLine> read_stat(pid_t pid) {
    std::string text;
    if (!read_file("/proc/" + std::to_string(pid) + "/stat", text)) return std::nullopt;
    const auto close = text.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream in(text.substr(close + 2));
    std::vector<std::string> f;
    std::string field;
    while (in >> field) f.push_back(field);
    // f[0] is field 3 (state): field n is f[n - 3].
    if (f.size() < 22) return std::nullopt;
    StatLine s;
    s.ppid = static_cast<pid_t>(std::stol(f[1]));
    s.utime = std::stoull(f[11]);
    s.stime = std::stoull(f[12]);
    s.cutime = std::stoull(f[13]);
    s.cstime = std::stoull(f[14]);
    s.threads = std::stoull(f[17]);
    s.rss_pages = std::stoull(f[21]);
    return s;
}

struct TaskTotals {
    double run_s = 0;  // scheduler run time of the live threads (schedstat, ns resolution)
    std::uint64_t ctx_voluntary = 0, ctx_involuntary = 0;
};

void read_task_status(const std::string& dir, TaskTotals& t) {
    std::ifstream in(dir + "/status");
    std::string line;
    while (std::getline(in, line)) {
        unsigned long long v = 0;
        if (std::sscanf(line.c_str(), "voluntary_ctxt_switches: %llu", &v) == 1)
            t.ctx_voluntary += v;
        else if (std::sscanf(line.c_str(), "nonvoluntary_ctxt_switches: %llu", &v) == 1)
            t.ctx_involuntary += v;
    }
    std::ifstream sched(dir + "/schedstat");
    unsigned long long run_ns = 0;
    if (sched >> run_ns) t.run_s += static_cast<double>(run_ns) / 1e9;
}

// /proc/PID/status counts the main thread's switches only, so every thread's task is read. A thread
// that exited during the run takes its count with it (no /proc file keeps a live process's total
// for its dead threads): a model that ends a thread per connection is under-counted.
TaskTotals read_tasks(pid_t pid) {
    TaskTotals t;
    const std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
    DIR* dir = opendir(task_dir.c_str());
    if (!dir) return t;
    while (dirent* e = readdir(dir)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        read_task_status(task_dir + "/" + e->d_name, t);
    }
    closedir(dir);
    return t;
}

// Every pid whose ancestry leads to `root` (root included).
std::vector<pid_t> tree_of(pid_t root) {
    std::multimap<pid_t, pid_t> children;
    if (DIR* dir = opendir("/proc")) {
        while (dirent* e = readdir(dir)) {
            if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
            const auto pid = static_cast<pid_t>(std::atol(e->d_name));
            if (auto s = read_stat(pid)) children.emplace(s->ppid, pid);
        }
        closedir(dir);
    }
    std::vector<pid_t> tree{root};
    for (std::size_t i = 0; i < tree.size(); ++i) {
        auto [lo, hi] = children.equal_range(tree[i]);
        for (auto it = lo; it != hi; ++it) tree.push_back(it->second);
    }
    return tree;
}

// A process's CPU time. The kernel's tick samples (utime, stime) are truncated to whole clock
// ticks per process: over the 64 processes of a prefork server that lost most of a 1 s window
// (it read 0). The scheduler's run time of the live threads (schedstat) is exact, so it is the
// process's own time, split into user and system by the tick samples' proportion (as the kernel's
// own cputime_adjust does); the tick total still wins when it is larger, since it keeps the time
// of threads that have ended. A reaped child's time moves into its parent's cutime/cstime:
// summing those over the live tree keeps the total right when workers come and go (fork per
// connection).
void add_process(ProcessTreeSnapshot& snap, const StatLine& s, const TaskTotals& tasks, double tick) {
    const double ticks = static_cast<double>(s.utime + s.stime);
    const double own_s = std::max(tasks.run_s, ticks / tick);
    const double user_share = ticks > 0 ? static_cast<double>(s.utime) / ticks : 0.0;
    snap.cpu_user_s += own_s * user_share + static_cast<double>(s.cutime) / tick;
    snap.cpu_sys_s += own_s * (1 - user_share) + static_cast<double>(s.cstime) / tick;
    snap.ctx_voluntary += tasks.ctx_voluntary;
    snap.ctx_involuntary += tasks.ctx_involuntary;
}

}  // namespace

std::optional<ProcessTreeSnapshot> snapshot_process_tree(pid_t root) {
    if (!read_stat(root)) return std::nullopt;
    const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
    const auto page_kib = static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE)) / 1024;
    ProcessTreeSnapshot snap;
    for (pid_t pid : tree_of(root)) {
        const auto s = read_stat(pid);
        if (!s) continue;  // exited meanwhile
        add_process(snap, *s, read_tasks(pid), tick);
        snap.rss_kib += s->rss_pages * page_kib;
        snap.threads += s->threads;
        ++snap.processes;
    }
    return snap;
}

std::string cpus_allowed_list(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    const std::string key = "Cpus_allowed_list:";
    while (std::getline(in, line)) {
        if (line.compare(0, key.size(), key) == 0) {
            auto v = line.substr(key.size());
            const auto first = v.find_first_not_of(" \t");
            return first == std::string::npos ? "" : v.substr(first);
        }
    }
    return "";
}

int count_cpus_in_list(const std::string& list) {
    try {
        return static_cast<int>(parse_cpu_list("cpus", list).size());
    } catch (const UsageError&) {
        return 0;
    }
}

ProcessTreeSampler::ProcessTreeSampler(pid_t root) : root_(root), thread_([this] { loop(); }) {}

ProcessTreeSampler::~ProcessTreeSampler() {
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
}

ProcessTreeSampler::Peaks ProcessTreeSampler::peaks() {
    std::lock_guard lock(mutex_);
    return peaks_;
}

void ProcessTreeSampler::sample_now() {
    if (auto s = snapshot_process_tree(root_)) fold(*s);
}

void ProcessTreeSampler::fold(const ProcessTreeSnapshot& s) {
    std::lock_guard lock(mutex_);
    peaks_.rss_kib = std::max(peaks_.rss_kib, s.rss_kib);
    peaks_.threads = std::max(peaks_.threads, s.threads);
    peaks_.processes = std::max(peaks_.processes, s.processes);
}

void ProcessTreeSampler::loop() {
    std::unique_lock lock(mutex_);
    while (!stop_) {
        lock.unlock();
        sample_now();
        lock.lock();
        wake_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; });
    }
}

}  // namespace loadgen
