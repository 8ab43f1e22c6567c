#include "datagram_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

namespace sbtest {
namespace {

sb::UniqueFd datagram_socket(int family) {
    sb::UniqueFd fd{::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
    if (!fd) return fd;
    timeval tv{5, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    // Room to send one datagram past the server's 64 KiB bound over a Unix socket.
    int sndbuf = 1 << 20;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    return fd;
}

}  // namespace

sb::UniqueFd udp_client(std::uint16_t port) {
    sb::UniqueFd fd = datagram_socket(AF_INET);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return {};
    return fd;
}

sb::UniqueFd unix_datagram_client(const std::string& path, bool named) {
    sb::UniqueFd fd = datagram_socket(AF_UNIX);
    sockaddr_un addr{};
    if (!fd || path.size() >= sizeof addr.sun_path) return {};
    addr.sun_family = AF_UNIX;
    // Binding only the family asks for an autobound abstract name: the server's answers reach it.
    if (named && ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(sa_family_t)) != 0) return {};
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return {};
    return fd;
}

std::optional<std::string> receive_datagram(int fd, Millis timeout) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
    std::vector<char> buffer(256 * 1024);
    const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
    if (n < 0) return std::nullopt;
    return std::string(buffer.data(), static_cast<std::size_t>(n));
}

std::optional<std::string> exchange(int fd, std::string_view payload, Millis timeout) {
    if (::send(fd, payload.data(), payload.size(), 0) != static_cast<ssize_t>(payload.size()))
        return std::nullopt;
    return receive_datagram(fd, timeout);
}

std::string random_bytes(std::size_t size, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> byte(0, 255);
    std::string bytes(size, '\0');
    for (char& c : bytes) c = static_cast<char>(byte(rng));
    return bytes;
}

DatagramCounts parse_datagram_counts(const std::string& stderr_text) {
    DatagramCounts c;
    const auto at = stderr_text.find("stopped; received ");
    if (at == std::string::npos) return c;
    if (std::sscanf(
            stderr_text.c_str() + at,
            "stopped; received %lld datagrams, answered %lld, dropped %lld oversized, %lld at the cap, "
            "%lld send errors",
            &c.received, &c.answered, &c.oversized, &c.at_cap, &c.send_errors) != 5)
        return DatagramCounts{};
    return c;
}

std::string describe(const DatagramCounts& c) {
    return "received " + std::to_string(c.received) + ", answered " + std::to_string(c.answered) +
           ", oversized " + std::to_string(c.oversized) + ", at the cap " + std::to_string(c.at_cap) +
           ", send errors " + std::to_string(c.send_errors);
}

}  // namespace sbtest
