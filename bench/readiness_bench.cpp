// Readiness scaling: the cost of asking "which of my N connections can I read?" once, with N
// connected sockets watched and exactly one of them readable: the O(N) vs O(ready) argument of the
// select vs epoll debate, measured.
//
// The sockets are AF_UNIX socketpairs (cheap to create, and the readiness path the kernel walks
// for them is the same per-descriptor poll callback as for TCP). We watch our end of each pair;
// the peer ends of the idle pairs live in a helper process, like the clients of a server, so
// 10,000 watched connections cost 10,000 descriptors here rather than 20,000. The ready pair is
// the last one created (the highest descriptor); one byte sits unread in it, so it stays readable
// (level-triggered) for every call and no call ever sleeps.
//
// What each call includes is what a server using that mechanism pays per turn of its loop:
//   select      copy the master fd_set (select overwrites its argument), the call, and the scan
//               of all N descriptors with FD_ISSET to find the ready one;
//   poll        the call (the kernel copies in all N pollfd entries) and the scan of N revents;
//   epoll_wait  the call alone: registration (epoll_ctl) happens once, outside the timed loop,
//               and the kernel returns only the ready descriptor.

#include <benchmark/benchmark.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "bench_support.hpp"
#include "common/unique_fd.hpp"

namespace {

using sb::UniqueFd;
using sb::bench::skip_with_errno;

// A 10,000-descriptor run needs more than the usual soft limit of 1024.
void raise_descriptor_limit() {
    static const bool raised = [] {
        rlimit limit{};
        if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return false;
        limit.rlim_cur = limit.rlim_max;
        return ::setrlimit(RLIMIT_NOFILE, &limit) == 0;
    }();
    (void)raised;  // on failure the size check in WatchedSockets::open reports it
}

rlim_t descriptor_limit() {
    rlimit limit{};
    return ::getrlimit(RLIMIT_NOFILE, &limit) == 0 ? limit.rlim_cur : 0;
}

// Descriptors passed per SCM_RIGHTS message (the kernel allows up to 253). Small, because our
// copies stay open until passed: with 1000 watched sockets the highest descriptor must stay below
// select's 1024.
constexpr std::size_t kPassBatch = 16;

// A child process that receives descriptors over a socket and keeps them open until that socket
// closes: the far ends of the idle connections.
class PeerHolder {
public:
    PeerHolder() = default;
    PeerHolder(const PeerHolder&) = delete;
    PeerHolder& operator=(const PeerHolder&) = delete;
    ~PeerHolder() {
        channel_.reset();  // the holder reads end-of-file and exits, closing what it held
        if (pid_ > 0) {
            int status = 0;
            while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
            }
        }
    }

    // Forked before any watched socket exists, so the child inherits none of ours.
    bool start() {
        int ends[2];
        if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ends) != 0) return false;
        UniqueFd ours(ends[0]);
        UniqueFd theirs(ends[1]);
        pid_ = ::fork();
        if (pid_ < 0) return false;
        if (pid_ == 0) {
            ours.reset();
            hold(theirs.get());
        }
        channel_ = std::move(ours);
        return true;
    }

    // Hands the descriptors over and waits until the holder has them; the caller then closes its
    // copies. False if the holder could not take them all (its descriptor limit).
    bool pass(std::span<const UniqueFd> fds) {
        char byte = 1;
        iovec data{&byte, 1};
        alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * kPassBatch)> control{};
        msghdr message{};
        message.msg_iov = &data;
        message.msg_iovlen = 1;
        message.msg_control = control.data();
        message.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        for (std::size_t i = 0; i < fds.size(); ++i) {
            const int fd = fds[i].get();
            std::memcpy(CMSG_DATA(header) + i * sizeof(int), &fd, sizeof fd);
        }
        if (::sendmsg(channel_.get(), &message, MSG_NOSIGNAL) != 1) return false;
        char acknowledged = 0;
        return ::recv(channel_.get(), &acknowledged, 1, 0) == 1 && acknowledged == 1;
    }

private:
    // The child: async-signal-safe calls only (it was forked from a process that may have threads).
    [[noreturn]] static void hold(int channel) {
        for (;;) {
            char byte = 0;
            iovec data{&byte, 1};
            alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * kPassBatch)> control{};
            msghdr message{};
            message.msg_iov = &data;
            message.msg_iovlen = 1;
            message.msg_control = control.data();
            message.msg_controllen = control.size();
            const ssize_t got = ::recvmsg(channel, &message, MSG_CMSG_CLOEXEC);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) ::_exit(0);
            // The received descriptors are simply kept: they stay open until this process exits.
            const char acknowledged = (message.msg_flags & MSG_CTRUNC) ? 0 : 1;
            if (::write(channel, &acknowledged, 1) != 1) ::_exit(1);
        }
    }

    UniqueFd channel_;
    pid_t pid_ = -1;
};

// N watched sockets, exactly one readable.
class WatchedSockets {
public:
    // On failure the benchmark is marked skipped with the reason, and false is returned.
    bool open(std::size_t n, benchmark::State& state) {
        raise_descriptor_limit();
        if (n == 0 || n + 64 > descriptor_limit()) {
            const std::string message = "needs " + std::to_string(n + 64) +
                                        " descriptors; RLIMIT_NOFILE allows " + std::to_string(descriptor_limit());
            state.SkipWithError(message.c_str());
            return false;
        }
        if (!holder_.start()) {
            skip_with_errno(state, "fork of the peer holder");
            return false;
        }
        watched_.reserve(n);
        std::vector<UniqueFd> peers;
        peers.reserve(kPassBatch);
        for (std::size_t i = 0; i + 1 < n; ++i) {
            int ends[2];
            if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) {
                skip_with_errno(state, "socketpair");
                return false;
            }
            watched_.emplace_back(ends[0]);
            peers.emplace_back(ends[1]);
            if (peers.size() == kPassBatch || i + 2 == n) {
                if (!holder_.pass(peers)) {
                    state.SkipWithError("passing the idle peers to the holder process failed");
                    return false;
                }
                peers.clear();
            }
        }
        int ends[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) {
            skip_with_errno(state, "socketpair");
            return false;
        }
        watched_.emplace_back(ends[0]);
        ready_peer_.reset(ends[1]);
        if (::write(ready_peer_.get(), "x", 1) != 1) {
            skip_with_errno(state, "write");
            return false;
        }
        fds_.reserve(n);
        for (const UniqueFd& fd : watched_) fds_.push_back(fd.get());
        state.counters["fds"] = static_cast<double>(n);
        return true;
    }

    const std::vector<int>& fds() const noexcept { return fds_; }
    int ready_fd() const noexcept { return fds_.back(); }
    int max_fd() const noexcept { return *std::max_element(fds_.begin(), fds_.end()); }

private:
    PeerHolder holder_;  // declared first, destroyed last: our ends close before the peers do
    std::vector<UniqueFd> watched_;
    UniqueFd ready_peer_;
    std::vector<int> fds_;
};

void BM_SelectReady(benchmark::State& state) {
    WatchedSockets sockets;
    if (!sockets.open(static_cast<std::size_t>(state.range(0)), state)) return;
    // select's bitmap cannot name a descriptor >= FD_SETSIZE (1024): the cap the select model has.
    if (sockets.max_fd() >= FD_SETSIZE) {
        state.SkipWithError("a watched descriptor is >= FD_SETSIZE");
        return;
    }
    fd_set master;
    FD_ZERO(&master);
    for (int fd : sockets.fds()) FD_SET(fd, &master);
    const int nfds = sockets.max_fd() + 1;
    for (auto _ : state) {
        fd_set readable = master;  // select overwrites its argument: every call starts from a copy
        timeval no_wait{0, 0};     // never sleeps anyway (one socket is ready); a broken setup fails fast
        const int ready = ::select(nfds, &readable, nullptr, nullptr, &no_wait);
        int found = 0;
        for (int fd : sockets.fds()) found += FD_ISSET(fd, &readable) ? 1 : 0;
        if (ready != 1 || found != 1) {
            state.SkipWithError("select did not report exactly the one ready socket");
            break;
        }
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SelectReady)->Arg(8)->Arg(64)->Arg(256)->Arg(1000);

void BM_PollReady(benchmark::State& state) {
    WatchedSockets sockets;
    if (!sockets.open(static_cast<std::size_t>(state.range(0)), state)) return;
    std::vector<pollfd> watched;
    watched.reserve(sockets.fds().size());
    for (int fd : sockets.fds()) watched.push_back(pollfd{fd, POLLIN, 0});
    for (auto _ : state) {
        const int ready = ::poll(watched.data(), watched.size(), 0);
        int found = 0;
        for (const pollfd& entry : watched) found += (entry.revents & POLLIN) ? 1 : 0;
        if (ready != 1 || found != 1) {
            state.SkipWithError("poll did not report exactly the one ready socket");
            break;
        }
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PollReady)->Arg(8)->Arg(64)->Arg(256)->Arg(1000)->Arg(4000)->Arg(10000);

void BM_EpollWaitReady(benchmark::State& state) {
    WatchedSockets sockets;
    if (!sockets.open(static_cast<std::size_t>(state.range(0)), state)) return;
    const UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll) {
        skip_with_errno(state, "epoll_create1");
        return;
    }
    for (int fd : sockets.fds()) {
        epoll_event interest{};
        interest.events = EPOLLIN;
        interest.data.fd = fd;
        if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &interest) != 0) {
            skip_with_errno(state, "epoll_ctl");
            return;
        }
    }
    std::array<epoll_event, 64> events{};
    for (auto _ : state) {
        const int ready = ::epoll_wait(epoll.get(), events.data(), static_cast<int>(events.size()), 0);
        if (ready != 1 || events[0].data.fd != sockets.ready_fd()) {
            state.SkipWithError("epoll_wait did not report exactly the one ready socket");
            break;
        }
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EpollWaitReady)->Arg(8)->Arg(64)->Arg(256)->Arg(1000)->Arg(4000)->Arg(10000);

}  // namespace
