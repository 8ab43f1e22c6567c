// A deliberately broken HTTP server for the load generator's fault tests: each --behaviour is one
// way a real server fails a client, so a test can check that loadgen counts it as the right kind
// of error (never as a success), still writes its JSON, exits non-zero, and never hangs.
//
//   misbehaving_server --behaviour B [--port 0 | --unix PATH] [--after N] [--stall-ms MS]
//
//   ok             answers every request "200 OK" (the control, e.g. over --unix)
//   wrong-status   answers every request "500 Internal Server Error" (a well-formed response)
//   truncated-body announces Content-Length 100, sends 10 body bytes, closes (FIN)
//   reset          sends half a response, then closes with SO_LINGER 0 (RST)
//   garbage        answers every request with pseudo-random bytes that are not HTTP
//   never-reads    accepts connections and never reads from them
//   stall          answers normally, but after N requests stops answering for MS, then resumes
//   die            answers N requests normally, then exits
//
// One thread, one poll() loop: a stall is simply the whole process sleeping, as a server stuck in
// a long GC pause or a blocking call would. Readiness: "port=N pid=P model=misbehaving-B" on
// stdout, like the project's servers.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/unique_fd.hpp"

using sb::UniqueFd;

namespace {

enum class Behaviour { ok, wrong_status, truncated_body, reset, garbage, never_reads, stall, die };

struct Flags {
    Behaviour behaviour = Behaviour::wrong_status;
    std::string behaviour_name;
    std::uint16_t port = 0;
    std::string unix_path;  // non-empty: listen on this Unix domain socket instead of TCP
    long after = 100;       // stall, die: requests answered before misbehaving
    long stall_ms = 1000;   // stall: how long nothing is answered
};

[[noreturn]] void usage_error(const std::string& message) {
    std::fprintf(stderr, "misbehaving_server: %s\n", message.c_str());
    std::fprintf(stderr,
                 "usage: misbehaving_server --behaviour ok|wrong-status|truncated-body|reset|garbage|"
                 "never-reads|stall|die [--port 0 | --unix PATH] [--after N] [--stall-ms MS]\n");
    std::exit(2);
}

long parse_long(const std::string& flag, const std::string& text, long lo, long hi) {
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno != 0 || v < lo || v > hi)
        usage_error("invalid value for " + flag + ": '" + text + "'");
    return v;
}

Flags parse_flags(int argc, char** argv) {
    Flags f;
    bool have_behaviour = false;
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if (i + 1 >= argc) usage_error("missing value for " + flag);
        const std::string value = argv[++i];
        if (flag == "--port") {
            f.port = static_cast<std::uint16_t>(parse_long(flag, value, 0, 65535));
        } else if (flag == "--unix") {
            if (value.empty() || value.size() >= sizeof(sockaddr_un::sun_path))
                usage_error("invalid value for --unix");
            f.unix_path = value;
        } else if (flag == "--after") {
            f.after = parse_long(flag, value, 0, 1L << 40);
        } else if (flag == "--stall-ms") {
            f.stall_ms = parse_long(flag, value, 0, 600'000);
        } else if (flag == "--behaviour" || flag == "--behavior") {
            static const std::pair<const char*, Behaviour> names[] = {
                {"ok", Behaviour::ok},
                {"wrong-status", Behaviour::wrong_status},
                {"truncated-body", Behaviour::truncated_body},
                {"reset", Behaviour::reset},
                {"garbage", Behaviour::garbage},
                {"never-reads", Behaviour::never_reads},
                {"stall", Behaviour::stall},
                {"die", Behaviour::die}};
            have_behaviour = false;
            for (const auto& [name, b] : names) {
                if (value == name) {
                    f.behaviour = b;
                    have_behaviour = true;
                }
            }
            if (!have_behaviour) usage_error("invalid value for --behaviour: '" + value + "'");
            f.behaviour_name = value;
        } else {
            usage_error("unknown flag: '" + flag + "'");
        }
    }
    if (!have_behaviour) usage_error("missing required flag --behaviour");
    return f;
}

UniqueFd listen_on(std::uint16_t port) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return fd;
    const int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd.get(), 1024) != 0)
        fd.reset();
    return fd;
}

UniqueFd listen_on_unix(const std::string& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return fd;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    ::unlink(path.c_str());  // a socket file left by an earlier run
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd.get(), 1024) != 0)
        fd.reset();
    return fd;
}

std::uint16_t bound_port(int fd) {
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    return ntohs(addr.sin_port);
}

struct Client {
    UniqueFd fd;
    std::string pending;  // request bytes not yet ended by CRLFCRLF
};

class MisbehavingServer {
public:
    MisbehavingServer(Flags flags, UniqueFd listener)
        : flags_(std::move(flags)), listener_(std::move(listener)) {}

    void run() {
        std::vector<pollfd> fds;
        for (;;) {
            fds.clear();
            fds.push_back({listener_.get(), POLLIN, 0});
            for (const auto& c : clients_) fds.push_back({c.fd.get(), POLLIN, 0});
            if (::poll(fds.data(), fds.size(), -1) < 0) continue;  // EINTR
            if (fds[0].revents & POLLIN) accept_one();
            // Back to front, so erasing a client does not shift the ones still to visit.
            for (std::size_t i = fds.size() - 1; i >= 1; --i) {
                if (fds[i].revents == 0) continue;
                if (!serve(clients_[i - 1])) clients_.erase(clients_.begin() + static_cast<long>(i - 1));
            }
        }
    }

private:
    void accept_one() {
        UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!fd) return;
        // never-reads keeps the connection open and out of the poll set: the client's requests
        // fill the socket buffers and nothing ever answers. (Kept until exit; a test runs briefly.)
        if (flags_.behaviour == Behaviour::never_reads)
            held_.push_back(std::move(fd));
        else
            clients_.push_back({std::move(fd), {}});
    }

    // Reads what arrived and answers every complete request; false = drop this client.
    bool serve(Client& c) {
        char buf[16 * 1024];
        const ssize_t n = ::read(c.fd.get(), buf, sizeof buf);
        if (n <= 0) return false;  // EOF or error: the client went away
        // Garbage answers whatever arrives, whatever the protocol (HTTP, or an echo client's bytes).
        if (flags_.behaviour == Behaviour::garbage) return send_all(c, noise());
        c.pending.append(buf, static_cast<std::size_t>(n));
        std::size_t end;
        while ((end = c.pending.find("\r\n\r\n")) != std::string::npos) {
            c.pending.erase(0, end + 4);
            if (!answer(c)) return false;
        }
        return true;
    }

    // One request's answer; false = the connection is finished.
    bool answer(Client& c) {
        static constexpr std::string_view ok = "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, World!";
        ++requests_;
        switch (flags_.behaviour) {
            case Behaviour::ok:
                return send_all(c, ok);
            case Behaviour::wrong_status:
                return send_all(c, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\nerror");
            case Behaviour::truncated_body:
                send_all(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
                return false;  // an orderly close (FIN) 90 bytes short
            case Behaviour::reset: {
                send_all(c, "HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello");
                // Linger 0: close() discards the rest and sends RST instead of FIN.
                const linger hard{1, 0};
                setsockopt(c.fd.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
                return false;
            }
            case Behaviour::stall:
                if (requests_ == flags_.after + 1) {
                    // Everything stops: requests queue in the kernel's socket buffers meanwhile.
                    std::this_thread::sleep_for(std::chrono::milliseconds(flags_.stall_ms));
                }
                return send_all(c, ok);
            case Behaviour::die:
                if (requests_ > flags_.after) {
                    std::fprintf(stderr, "misbehaving_server: dying after %ld requests\n", flags_.after);
                    std::_Exit(0);  // the kernel closes every socket, as for a crashed server
                }
                return send_all(c, ok);
            case Behaviour::garbage:
            case Behaviour::never_reads:
                break;
        }
        return false;
    }

    std::string noise() {
        std::string bytes(64, '\0');
        for (auto& ch : bytes) ch = static_cast<char>(random_() & 0xff);
        bytes[0] = '\x01';  // never "HTTP/" nor an echo's first byte, whatever the generator gives
        return bytes;
    }

    // Responses are small and the client reads them: a full socket buffer means a client that
    // stopped reading, and it is simply dropped (no buffering in a test server).
    static bool send_all(Client& c, std::string_view bytes) {
        const ssize_t n = ::send(c.fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        return n == static_cast<ssize_t>(bytes.size());
    }

    Flags flags_;
    UniqueFd listener_;
    std::vector<Client> clients_;
    std::vector<UniqueFd> held_;
    long requests_ = 0;
    std::minstd_rand random_{42};
};

}  // namespace

int main(int argc, char** argv) {
    const Flags flags = parse_flags(argc, argv);
    std::signal(SIGPIPE, SIG_IGN);
    const bool on_unix = !flags.unix_path.empty();
    UniqueFd listener = on_unix ? listen_on_unix(flags.unix_path) : listen_on(flags.port);
    if (!listener) {
        std::fprintf(stderr, "misbehaving_server: listen: %s\n", std::strerror(errno));
        return 1;
    }
    std::printf("port=%u pid=%d model=misbehaving-%s%s%s\n", on_unix ? 0u : bound_port(listener.get()),
                static_cast<int>(getpid()), flags.behaviour_name.c_str(), on_unix ? " unix=" : "",
                flags.unix_path.c_str());
    std::fflush(stdout);
    MisbehavingServer(flags, std::move(listener)).run();
}
