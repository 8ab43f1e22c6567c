#pragma once
// A datagram client for the server tests over --transport udp: UDP and Unix datagram sockets with
// timeouts, one exchange (a datagram out, the next one in), and the stop line's counts.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "test_support.hpp"

namespace sbtest {

// A UDP socket connected to 127.0.0.1:port, so it hears only the server; empty on failure.
sb::UniqueFd udp_client(std::uint16_t port);

// A Unix datagram socket connected to `path`. With `named`, it is bound first (an autobound abstract
// address), so the server can answer it; without, it has no address and cannot be answered.
sb::UniqueFd unix_datagram_client(const std::string& path, bool named = true);

// The next datagram to arrive on fd within `timeout` (possibly empty); nullopt if none comes.
std::optional<std::string> receive_datagram(int fd, Millis timeout = 2000ms);

// Sends one datagram; then the next one to arrive (the answer), or nullopt.
std::optional<std::string> exchange(int fd, std::string_view payload, Millis timeout = 2000ms);

// `size` bytes of noise, the same for the same seed.
std::string random_bytes(std::size_t size, unsigned seed);

// The counts of a server's stop line over UDP ("received N datagrams, answered N, ...").
struct DatagramCounts {
    long long received = -1, answered = -1, oversized = -1, at_cap = -1, send_errors = -1;
    bool found() const noexcept { return received >= 0; }
    // Every datagram received was answered, or dropped for a reason that was counted.
    bool balanced() const noexcept { return received == answered + oversized + at_cap + send_errors; }
};
DatagramCounts parse_datagram_counts(const std::string& stderr_text);
std::string describe(const DatagramCounts& c);

}  // namespace sbtest
