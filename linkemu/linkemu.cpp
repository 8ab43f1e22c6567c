// linkemu: a link emulator for kernels without netem (CONFIG_NET_SCH_NETEM unset).
//
// It runs in its own network namespace between two veth ends, A (towards the server) and B
// (towards the client), reads every Ethernet frame that arrives on one end with an AF_PACKET
// socket and sends it, unchanged, out of the other end at its departure time:
//
//   departure = max(previous departure of that direction, arrival + delay + jitter sample)
//
// so jitter never reorders frames (reordering alone would make TCP retransmit). A frame is lost
// with probability --loss-pct (seeded, reproducible) and dropped when its direction already holds
// --queue-frames frames. AF_PACKET rather than TUN: the emulator forwards layer-2 frames, so ARP,
// MTU and both TCP stacks behave as on a wire, and the namespace in the middle needs no addresses
// or routes (TUN would make it a router that rewrites TTLs and needs two subnets).
//
// Single-threaded on purpose: one epoll loop whose timeout is the next departure (nanosecond
// timeout of epoll_pwait2, timer slack 1 ns), so the only clock that matters is read in one place.
// Every frame that leaves more than --late-us after its departure time is counted as late: a run
// with late departures measured the emulator, not the link.

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/unique_fd.hpp"

namespace {

using sb::UniqueFd;
using Nanos = std::int64_t;
constexpr int kReceiveBatch = 64;

struct Options {
    std::string a, b;  // interface names: A faces the server, B the client
    double delay_ms = 0, jitter_ms = 0, loss_pct = 0, late_us = 200, spin_us = 0;
    std::size_t queue_frames = 1000;
    std::uint64_t seed = 1;
    std::string stats_out;
    pid_t exit_with = 0;  // stop when this process ends, so a killed driver leaves no emulator behind
    bool fifo = false;    // --sched fifo: SCHED_FIFO, so a busy machine does not delay departures
};

[[noreturn]] void usage_error(const std::string& message) {
    std::fprintf(stderr, "linkemu: %s (see --help)\n", message.c_str());
    std::exit(2);
}

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "linkemu: %s: %s\n", what, std::strerror(errno));
    std::exit(1);
}

void print_help() {
    std::puts(
        "usage: linkemu --a IF --b IF [--delay-ms 0] [--jitter-ms 0] [--loss-pct 0]\n"
        "               [--queue-frames 1000] [--seed 1] [--late-us 200] [--stats-out FILE]\n"
        "               [--exit-with PID] [--sched other|fifo] [--spin-us 0]\n"
        "Forwards Ethernet frames between IF a and IF b, each direction delayed by --delay-ms\n"
        "(one way), plus a uniform jitter in [-j, +j] that keeps frame order, lost with\n"
        "probability --loss-pct. SIGTERM/SIGINT: print (or write to --stats-out) the counters as\n"
        "JSON and exit 0; SIGUSR1: the same without exiting.");
    std::exit(0);
}

template <typename T>
T parse_number(std::string_view flag, std::string_view text, T min, T max) {
    T value{};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || !(value >= min && value <= max)) {
        usage_error("invalid value for " + std::string(flag) + ": '" + std::string(text) + "'");
    }
    return value;
}

Options parse_options(int argc, char** argv) {
    Options o;
    const std::vector<std::pair<std::string_view, std::function<void(std::string_view)>>> flags = {
        {"--a", [&](std::string_view v) { o.a = v; }},
        {"--b", [&](std::string_view v) { o.b = v; }},
        {"--delay-ms", [&](std::string_view v) { o.delay_ms = parse_number("--delay-ms", v, 0.0, 60e3); }},
        {"--jitter-ms", [&](std::string_view v) { o.jitter_ms = parse_number("--jitter-ms", v, 0.0, 60e3); }},
        {"--loss-pct", [&](std::string_view v) { o.loss_pct = parse_number("--loss-pct", v, 0.0, 100.0); }},
        {"--late-us", [&](std::string_view v) { o.late_us = parse_number("--late-us", v, 0.0, 1e9); }},
        {"--spin-us", [&](std::string_view v) { o.spin_us = parse_number("--spin-us", v, 0.0, 1000.0); }},
        {"--queue-frames",
         [&](std::string_view v) {
             o.queue_frames = parse_number<std::size_t>("--queue-frames", v, 1, 1 << 20);
         }},
        {"--seed",
         [&](std::string_view v) { o.seed = parse_number<std::uint64_t>("--seed", v, 0, UINT64_MAX); }},
        {"--stats-out", [&](std::string_view v) { o.stats_out = v; }},
        {"--sched",
         [&](std::string_view v) {
             if (v != "fifo" && v != "other")
                 usage_error("invalid value for --sched: '" + std::string(v) + "'");
             o.fifo = v == "fifo";
         }},
        {"--exit-with",
         [&](std::string_view v) { o.exit_with = parse_number<pid_t>("--exit-with", v, 1, 1 << 30); }},
    };
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "--help" || arg == "-h") print_help();
        auto flag = std::find_if(flags.begin(), flags.end(), [&](const auto& f) { return f.first == arg; });
        if (flag == flags.end()) usage_error("unknown flag '" + std::string(arg) + "'");
        if (i + 1 >= argc) usage_error("missing value for " + std::string(arg));
        flag->second(argv[++i]);
    }
    if (o.a.empty() || o.b.empty()) usage_error("--a IF and --b IF are required");
    if (o.a == o.b) usage_error("--a and --b must name two different interfaces");
    return o;
}

Nanos to_ns(const timespec& ts) {
    return Nanos{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

Nanos now_ns(clockid_t clock = CLOCK_MONOTONIC) {
    timespec ts{};
    clock_gettime(clock, &ts);
    return to_ns(ts);
}

// The SO_TIMESTAMPNS stamp of a received frame, or fallback when it carries none.
Nanos kernel_timestamp(msghdr& msg, Nanos fallback) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            timespec ts{};
            std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
            return to_ns(ts);
        }
    }
    return fallback;
}

// One end of the emulated link: an AF_PACKET socket bound to one interface.
struct Port {
    std::string name;
    UniqueFd fd;
    std::size_t frame_max = 0;  // MTU + Ethernet header + one VLAN tag
};

Port open_port(const std::string& name) {
    if (name.size() >= IFNAMSIZ) usage_error("interface name too long: '" + name + "'");
    const unsigned index = if_nametoindex(name.c_str());
    if (index == 0) usage_error("no interface '" + name + "'");
    Port port{name, UniqueFd(socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)), 0};
    if (!port.fd) die("socket(AF_PACKET)");
    ifreq ifr{};
    std::memcpy(ifr.ifr_name, name.c_str(), name.size());
    if (ioctl(port.fd.get(), SIOCGIFMTU, &ifr) != 0) die("ioctl(SIOCGIFMTU)");
    port.frame_max = static_cast<std::size_t>(ifr.ifr_mtu) + ETH_HLEN + 4;
    // Our own sends to this interface would otherwise come back to us as outgoing frames.
    int one = 1;
    if (setsockopt(port.fd.get(), SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) != 0) {
        die("setsockopt(PACKET_IGNORE_OUTGOING)");
    }
    if (setsockopt(port.fd.get(), SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) != 0)
        die("setsockopt(SO_TIMESTAMPNS)");
    int buffer = 4 << 20;  // room for a burst while the loop is sending the other direction
    setsockopt(port.fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof buffer);
    setsockopt(port.fd.get(), SOL_SOCKET, SO_SNDBUFFORCE, &buffer, sizeof buffer);
    // Bound only now (created with protocol 0), so no frame of another interface is ever queued.
    sockaddr_ll addr{};
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = htons(ETH_P_ALL);
    addr.sll_ifindex = static_cast<int>(index);
    if (bind(port.fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("bind(AF_PACKET)");
    return port;
}

// Frames of one direction waiting for their departure: a ring of fixed-size slots, so a frame is
// received straight into its slot and nothing is allocated per frame. The slots are not zeroed:
// their pages are touched only when a queue that deep is used.
class FrameQueue {
public:
    FrameQueue(std::size_t capacity, std::size_t slot_bytes)
        : slot_bytes_(slot_bytes),
          data_(std::make_unique_for_overwrite<std::byte[]>(capacity * slot_bytes)),
          frames_(capacity) {}

    bool full() const { return count_ == frames_.size(); }
    bool empty() const { return count_ == 0; }
    std::size_t size() const { return count_; }
    std::byte* tail_slot() { return &data_[index(count_) * slot_bytes_]; }
    void push(std::size_t length, Nanos departure) {
        assert(!full() && length <= slot_bytes_);
        frames_[index(count_)] = {departure, length};
        ++count_;
    }
    Nanos head_departure() const { return frames_[head_].departure; }
    std::span<const std::byte> head() const { return {&data_[head_ * slot_bytes_], frames_[head_].length}; }
    void pop() {
        assert(!empty());
        head_ = index(1);
        --count_;
    }

private:
    struct Frame {
        Nanos departure;
        std::size_t length;
    };
    std::size_t index(std::size_t offset) const { return (head_ + offset) % frames_.size(); }

    std::size_t slot_bytes_;
    std::unique_ptr<std::byte[]> data_;
    std::vector<Frame> frames_;
    std::size_t head_ = 0, count_ = 0;
};

struct DirectionStats {
    std::uint64_t received = 0, forwarded = 0, bytes = 0;
    std::uint64_t dropped_loss = 0, dropped_queue = 0, dropped_oversize = 0, dropped_send = 0,
                  dropped_socket = 0;
    std::uint64_t late = 0;
    Nanos max_late_ns = 0, sum_late_ns = 0;
    std::size_t max_queue = 0;
};

struct Direction {
    Port& in;
    Port& out;
    FrameQueue queue;
    DirectionStats stats;
    Nanos last_departure = 0;
};

nlohmann::json to_json(const DirectionStats& s) {
    return {{"received", s.received},
            {"forwarded", s.forwarded},
            {"bytes", s.bytes},
            {"dropped_loss", s.dropped_loss},
            {"dropped_queue", s.dropped_queue},
            {"dropped_oversize", s.dropped_oversize},
            {"dropped_send", s.dropped_send},
            {"dropped_socket", s.dropped_socket},
            {"late", s.late},
            {"max_late_us", static_cast<double>(s.max_late_ns) / 1e3},
            {"mean_late_us", s.forwarded + s.dropped_send > 0
                                 ? static_cast<double>(s.sum_late_ns) / 1e3 /
                                       static_cast<double>(s.forwarded + s.dropped_send)
                                 : 0.0},
            {"max_queue", s.max_queue}};
}

class Emulator {
public:
    Emulator(const Options& o, Port& a, Port& b)
        : options_(o),
          a_to_b_{a, b, FrameQueue(o.queue_frames, a.frame_max), {}},
          b_to_a_{b, a, FrameQueue(o.queue_frames, b.frame_max), {}},
          scratch_(std::max(a.frame_max, b.frame_max)),
          rng_(o.seed),
          loss_(o.loss_pct / 100.0),
          jitter_(-o.jitter_ms * 1e6, o.jitter_ms * 1e6),
          started_(now_ns()) {}

    // Reads the frames waiting on the direction's input: until the socket is drained, or a batch
    // is read, so a flood in one direction cannot hold back departures (epoll reports the rest).
    void receive(Direction& d) {
        // The kernel stamps each frame when it reaches the interface (CLOCK_REALTIME): the
        // departure counts from then, so time a frame waited in the socket is not lost, and a
        // loop that falls behind shows up as late departures.
        const Nanos realtime_minus_monotonic = now_ns(CLOCK_REALTIME) - now_ns();
        for (int batch = 0; batch < kReceiveBatch; ++batch) {
            std::byte* slot = d.queue.full() ? scratch_.data() : d.queue.tail_slot();
            sockaddr_ll from{};
            iovec iov{slot, d.in.frame_max};
            alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
            msghdr msg{&from, sizeof from, &iov, 1, control, sizeof control, 0};
            ssize_t n = recvmsg(d.in.fd.get(), &msg, MSG_TRUNC);
            if (n < 0) {
                if (errno == EINTR) continue;  // a signal: the frame is still there
                // ENETDOWN is reported once when an end goes down (a link being torn down).
                if (errno == EAGAIN || errno == ENETDOWN) return;
                die("recvmsg");
            }
            if (from.sll_pkttype == PACKET_OUTGOING) continue;  // belt and braces for IGNORE_OUTGOING
            const Nanos now = now_ns();
            const Nanos arrival = std::min(
                now, kernel_timestamp(msg, now + realtime_minus_monotonic) - realtime_minus_monotonic);
            ++d.stats.received;
            if (static_cast<std::size_t>(n) > d.in.frame_max)
                ++d.stats.dropped_oversize;
            else if (options_.loss_pct > 0 && loss_(rng_))
                ++d.stats.dropped_loss;
            else if (d.queue.full())
                ++d.stats.dropped_queue;
            else
                enqueue(d, static_cast<std::size_t>(n), arrival);
        }
    }

    // Sends every frame of the direction whose departure time has come.
    void send_due(Direction& d, Nanos now) {
        while (!d.queue.empty() && d.queue.head_departure() <= now) {
            auto frame = d.queue.head();
            // Lateness is when the frame is handed to the wire, so a burst's later frames carry
            // the sends before them.
            const Nanos late = now_ns() - d.queue.head_departure();
            if (send(d.out.fd.get(), frame.data(), frame.size(), 0) == static_cast<ssize_t>(frame.size())) {
                ++d.stats.forwarded;
                d.stats.bytes += frame.size();
            } else {
                ++d.stats.dropped_send;
            }
            d.stats.max_late_ns = std::max(d.stats.max_late_ns, late);
            d.stats.sum_late_ns += late;
            if (static_cast<double>(late) > options_.late_us * 1e3) ++d.stats.late;
            d.queue.pop();
        }
    }

    Nanos next_departure() const {
        Nanos next = std::numeric_limits<Nanos>::max();
        for (const Direction* d : {&a_to_b_, &b_to_a_}) {
            if (!d->queue.empty()) next = std::min(next, d->queue.head_departure());
        }
        return next;
    }

    Direction& a_to_b() { return a_to_b_; }
    Direction& b_to_a() { return b_to_a_; }
    nlohmann::json stats();

private:
    void enqueue(Direction& d, std::size_t length, Nanos arrival) {
        Nanos delay = static_cast<Nanos>(options_.delay_ms * 1e6);
        if (options_.jitter_ms > 0) delay = std::max<Nanos>(0, delay + static_cast<Nanos>(jitter_(rng_)));
        d.last_departure = std::max(d.last_departure, arrival + delay);
        d.queue.push(length, d.last_departure);
        d.stats.max_queue = std::max(d.stats.max_queue, d.queue.size());
    }

    const Options& options_;
    Direction a_to_b_, b_to_a_;
    std::vector<std::byte> scratch_;  // where a frame for a full queue is read, to be dropped
    std::mt19937_64 rng_;
    std::bernoulli_distribution loss_;
    std::uniform_real_distribution<double> jitter_;
    Nanos started_;
    std::uint64_t stats_seq_ = 0;
};

// Frames the kernel dropped because a socket's receive buffer was full (PACKET_STATISTICS resets
// on every read, so they are added up).
void add_socket_drops(Direction& d) {
    tpacket_stats st{};
    socklen_t len = sizeof st;
    if (getsockopt(d.in.fd.get(), SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0)
        d.stats.dropped_socket += st.tp_drops;
}

nlohmann::json Emulator::stats() {
    add_socket_drops(a_to_b_);
    add_socket_drops(b_to_a_);
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    auto seconds = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    const double wall_s = static_cast<double>(now_ns() - started_) / 1e9;
    const double cpu_s = seconds(usage.ru_utime) + seconds(usage.ru_stime);
    const auto& x = a_to_b_.stats;
    const auto& y = b_to_a_.stats;
    return {{"schema", "serverbench.linkemu/1"},
            {"seq", ++stats_seq_},
            {"a", a_to_b_.in.name},
            {"b", b_to_a_.in.name},
            {"delay_ms", options_.delay_ms},
            {"jitter_ms", options_.jitter_ms},
            {"loss_pct", options_.loss_pct},
            {"queue_frames", options_.queue_frames},
            {"seed", options_.seed},
            {"late_us", options_.late_us},
            {"sched", options_.fifo ? "fifo" : "other"},
            {"spin_us", options_.spin_us},
            {"a_to_b", to_json(x)},
            {"b_to_a", to_json(y)},
            {"forwarded", x.forwarded + y.forwarded},
            {"dropped_loss", x.dropped_loss + y.dropped_loss},
            {"dropped_queue", x.dropped_queue + y.dropped_queue},
            {"max_queue", std::max(x.max_queue, y.max_queue)},
            {"late", x.late + y.late},
            {"cpu_user_s", seconds(usage.ru_utime)},
            {"cpu_sys_s", seconds(usage.ru_stime)},
            {"wall_s", wall_s},
            {"cpu_util", wall_s > 0 ? cpu_s / wall_s : 0.0}};
}

void report(Emulator& emulator, const Options& o) {
    const std::string text = emulator.stats().dump();
    if (o.stats_out.empty()) {
        std::printf("%s\n", text.c_str());
        std::fflush(stdout);
        return;
    }
    // Written whole and renamed, so a reader never sees half a document.
    const std::string tmp = o.stats_out + ".tmp";
    std::ofstream(tmp) << text << '\n';
    if (std::rename(tmp.c_str(), o.stats_out.c_str()) != 0) die("rename(--stats-out)");
}

UniqueFd block_signals_to_fd() {
    sigset_t set;
    sigemptyset(&set);
    for (int s : {SIGTERM, SIGINT, SIGUSR1}) sigaddset(&set, s);
    if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0) die("sigprocmask");
    std::signal(SIGPIPE, SIG_IGN);
    UniqueFd fd(signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!fd) die("signalfd");
    return fd;
}

void watch(int epoll_fd, int fd) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl");
}

// Returns true when the emulator must stop (SIGTERM/SIGINT).
bool handle_signals(int signal_fd, Emulator& emulator, const Options& o) {
    signalfd_siginfo info{};
    bool stop = false;
    while (read(signal_fd, &info, sizeof info) == sizeof info) {
        if (info.ssi_signo == SIGUSR1)
            report(emulator, o);
        else
            stop = true;
    }
    return stop;
}

int run(Emulator& emulator, const Options& o, int signal_fd, int owner_fd) {
    const auto spin_ns = static_cast<Nanos>(o.spin_us * 1e3);
    UniqueFd epoll_fd(epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_fd) die("epoll_create1");
    for (int fd : {emulator.a_to_b().in.fd.get(), emulator.b_to_a().in.fd.get(), signal_fd})
        watch(epoll_fd.get(), fd);
    if (owner_fd >= 0) watch(epoll_fd.get(), owner_fd);
    std::printf("linkemu ready a=%s b=%s delay_ms=%g jitter_ms=%g loss_pct=%g queue_frames=%zu pid=%d\n",
                o.a.c_str(), o.b.c_str(), o.delay_ms, o.jitter_ms, o.loss_pct, o.queue_frames, getpid());
    std::fflush(stdout);
    for (;;) {
        const Nanos now = now_ns();
        emulator.send_due(emulator.a_to_b(), now);
        emulator.send_due(emulator.b_to_a(), now);
        const Nanos next = emulator.next_departure();
        const bool idle = next == std::numeric_limits<Nanos>::max();
        // Within --spin-us of a departure, wait on the clock: a sleep's wake-up costs more than that.
        if (!idle && next - now_ns() <= spin_ns) {
            while (now_ns() < next) {
            }
            continue;
        }
        const Nanos wait = idle ? 0 : std::max<Nanos>(0, next - spin_ns - now_ns());
        timespec timeout{static_cast<time_t>(wait / 1'000'000'000), static_cast<long>(wait % 1'000'000'000)};
        epoll_event events[4];
        int n = epoll_pwait2(epoll_fd.get(), events, 4, idle ? nullptr : &timeout, nullptr);
        if (n < 0 && errno != EINTR) die("epoll_pwait2");
        for (int i = 0; i < n; ++i) {
            const int fd = events[i].data.fd;
            if (fd == emulator.a_to_b().in.fd.get())
                emulator.receive(emulator.a_to_b());
            else if (fd == emulator.b_to_a().in.fd.get())
                emulator.receive(emulator.b_to_a());
            else if (fd == owner_fd)
                return 0;
            else if (handle_signals(signal_fd, emulator, o))
                return 0;
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    const Options options = parse_options(argc, argv);
    UniqueFd signal_fd = block_signals_to_fd();
    UniqueFd owner_fd;
    if (options.exit_with != 0) {
        owner_fd.reset(static_cast<int>(syscall(SYS_pidfd_open, options.exit_with, 0)));
        if (!owner_fd) die("pidfd_open(--exit-with)");
    }
    // The default 50 us timer slack would add up to 50 us to every departure.
    prctl(PR_SET_TIMERSLACK, 1UL);
    // A wire does not wait for a CPU. The kernel's RT throttling (95% by default) still leaves
    // the rest of the machine a share if the emulator ever saturates a core.
    sched_param fifo{1};
    if (options.fifo && sched_setscheduler(0, SCHED_FIFO, &fifo) != 0) die("sched_setscheduler(SCHED_FIFO)");
    Port a = open_port(options.a);
    Port b = open_port(options.b);
    Emulator emulator(options, a, b);
    run(emulator, options, signal_fd.get(), owner_fd.get());
    report(emulator, options);
    return 0;
}
