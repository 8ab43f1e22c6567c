#include "loadgen/udp_counters.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <vector>

namespace loadgen {
namespace {

std::uint64_t minus(std::uint64_t after, std::uint64_t before) {
    return after > before ? after - before : 0;
}

// The "Udp:" header line names the columns of the "Udp:" value line after it.
void read_snmp(const std::string& path, UdpKernelCounters& c) {
    std::ifstream in(path);
    std::string names, values;
    while (std::getline(in, names)) {
        if (names.rfind("Udp: ", 0) != 0 || !std::getline(in, values)) continue;
        std::istringstream n(names), v(values);
        std::string name, value;
        n >> name;
        v >> value;
        while (n >> name && v >> value) {
            const std::uint64_t x = std::stoull(value);
            if (name == "InErrors") c.in_errors = x;
            if (name == "RcvbufErrors") c.rcvbuf_errors = x;
            if (name == "SndbufErrors") c.sndbuf_errors = x;
        }
        return;
    }
}

// "0100007F:1F90" -> 0x1F90.
std::uint16_t port_of(const std::string& address) {
    const auto colon = address.find(':');
    return colon == std::string::npos ? 0 : static_cast<std::uint16_t>(std::stoul(address.substr(colon + 1), nullptr, 16));
}

// Each socket's line: sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops.
void read_socket_drops(const std::string& path, std::uint16_t port, UdpKernelCounters& c) {
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);  // the header
    while (std::getline(in, line)) {
        std::istringstream fields(line);
        std::vector<std::string> f;
        for (std::string word; fields >> word;) f.push_back(word);
        if (f.size() < 13) continue;
        const std::uint64_t drops = std::stoull(f.back());
        if (port_of(f[1]) == port) c.server_socket_drops += drops;
        if (port_of(f[2]) == port) c.loadgen_socket_drops += drops;
    }
}

// One line per CPU, hexadecimal; the second column counts packets dropped off a full backlog.
void read_softnet(const std::string& path, UdpKernelCounters& c) {
    std::ifstream in(path);
    std::string processed, dropped, rest;
    while (in >> processed >> dropped && std::getline(in, rest)) c.softnet_drops += std::stoull(dropped, nullptr, 16);
}

}  // namespace

UdpKernelCounters UdpKernelCounters::operator-(const UdpKernelCounters& before) const {
    return {minus(in_errors, before.in_errors),
            minus(rcvbuf_errors, before.rcvbuf_errors),
            minus(sndbuf_errors, before.sndbuf_errors),
            minus(server_socket_drops, before.server_socket_drops),
            minus(loadgen_socket_drops, before.loadgen_socket_drops),
            minus(softnet_drops, before.softnet_drops)};
}

UdpKernelCounters read_udp_counters(std::uint16_t port, const std::string& net_dir, const std::string& softnet) {
    UdpKernelCounters c;
    read_snmp(net_dir + "/snmp", c);
    read_socket_drops(net_dir + "/udp", port, c);
    read_softnet(softnet, c);
    return c;
}

UdpDrops UdpDrops::operator-(const UdpDrops& before) const {
    return {server_namespace - before.server_namespace, loadgen_namespace - before.loadgen_namespace, one_namespace};
}

namespace {

std::string namespace_of(const std::string& pid) {
    char target[64] = {};
    const ssize_t n = ::readlink(("/proc/" + pid + "/ns/net").c_str(), target, sizeof target - 1);
    return n > 0 ? std::string(target, static_cast<std::size_t>(n)) : "";
}

}  // namespace

UdpDrops read_udp_drops(std::uint16_t port, int server_pid) {
    UdpDrops d;
    d.loadgen_namespace = read_udp_counters(port);
    const std::string pid = std::to_string(server_pid);
    d.one_namespace = server_pid == 0 || namespace_of(pid) == namespace_of("self");
    d.server_namespace = d.one_namespace ? d.loadgen_namespace : read_udp_counters(port, "/proc/" + pid + "/net");
    return d;
}

SocketBuffers socket_buffers(int fd) {
    SocketBuffers b;
    socklen_t len = sizeof b.rcvbuf;
    ::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &b.rcvbuf, &len);
    len = sizeof b.sndbuf;
    ::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &b.sndbuf, &len);
    return b;
}

SocketBuffers default_udp_buffers() {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return {};
    const SocketBuffers b = socket_buffers(fd);
    ::close(fd);
    return b;
}

}  // namespace loadgen
