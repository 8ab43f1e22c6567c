#include "datagram.hpp"

#include <sys/uio.h>

#include <algorithm>
#include <cassert>
#include <cerrno>

namespace sb {
namespace {

void count(std::atomic<std::uint64_t>& counter, std::uint64_t n = 1) noexcept {
    counter.fetch_add(n, std::memory_order_relaxed);
}

}  // namespace

Received receive_datagram(int fd, std::span<char> buffer, std::size_t& size, PeerAddress& peer,
                          ServerStats& stats, const std::function<bool()>& stopping) {
    assert(buffer.size() == kMaxDatagram);
    peer.len = sizeof peer.addr;
    // MSG_TRUNC: the datagram's real length, even when it is longer than the buffer.
    const ssize_t n = ::recvfrom(fd, buffer.data(), buffer.size(), MSG_TRUNC,
                                 reinterpret_cast<sockaddr*>(&peer.addr), &peer.len);
    if (n < 0) return Received::nothing;  // EAGAIN, EINTR, or an ICMP error of an earlier send
    if (n == 0 && stopping && stopping()) return Received::nothing;  // the stop's shutdown
    size = static_cast<std::size_t>(n);
    count(stats.datagrams_received);
    if (size > buffer.size()) {
        count(stats.datagrams_oversized);
        return Received::dropped;
    }
    return Received::datagram;
}

void answer_datagram(int fd, std::span<const char> payload, const PeerAddress& peer, ServerStats& stats) {
    const bool sent =
        peer.answerable() && ::sendto(fd, payload.data(), payload.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                                      reinterpret_cast<const sockaddr*>(&peer.addr), peer.len) >= 0;
    count(sent ? stats.datagrams_answered : stats.datagram_send_errors);
}

void serve_datagrams_blocking(int fd, const ServerOptions& options, ServerStats& stats,
                              const std::function<bool()>& stopping) {
    const auto buffer = std::make_unique_for_overwrite<char[]>(kMaxDatagram);
    PeerAddress peer;
    std::size_t size = 0;
    while (!stopping()) {
        const Received r = receive_datagram(fd, {buffer.get(), kMaxDatagram}, size, peer, stats, stopping);
        if (r != Received::datagram) continue;
        simulate_request_work(options, 1);
        answer_datagram(fd, {buffer.get(), size}, peer, stats);
    }
}

DatagramBatch::DatagramBatch(int capacity)
    : capacity_(static_cast<std::size_t>(capacity)),
      buffers_(std::make_unique_for_overwrite<char[]>(capacity_ * kMaxDatagram)),
      peers_(capacity_),
      sizes_(capacity_),
      iovecs_(capacity_),
      headers_(capacity_),
      replies_(capacity_) {
    assert(capacity >= 1);
    kept_.reserve(capacity_);
}

std::span<const char> DatagramBatch::payload(std::size_t i) const noexcept {
    return {buffer(kept_[i]), sizes_[kept_[i]]};
}

// recvfrom, for a batch of one: the plain call a reader expects, and one system call per datagram.
std::size_t DatagramBatch::receive_one(int fd, ServerStats& stats) {
    switch (receive_datagram(fd, {buffer(0), kMaxDatagram}, sizes_[0], peers_[0], stats)) {
        case Received::datagram:
            kept_.push_back(0);
            return 1;
        case Received::dropped:
            return 1;
        case Received::nothing:
            return 0;
    }
    return 0;
}

std::size_t DatagramBatch::receive(int fd, ServerStats& stats) {
    kept_.clear();
    if (capacity_ == 1) return receive_one(fd, stats);
    for (std::size_t i = 0; i < capacity_; ++i) {
        peers_[i].len = sizeof peers_[i].addr;
        iovecs_[i] = {buffer(i), kMaxDatagram};
        headers_[i].msg_hdr = msghdr{.msg_name = &peers_[i].addr,
                                     .msg_namelen = peers_[i].len,
                                     .msg_iov = &iovecs_[i],
                                     .msg_iovlen = 1,
                                     .msg_control = nullptr,
                                     .msg_controllen = 0,
                                     .msg_flags = 0};
    }
    const int n = ::recvmmsg(fd, headers_.data(), static_cast<unsigned>(capacity_), MSG_DONTWAIT, nullptr);
    if (n <= 0) return 0;
    const auto received = static_cast<std::size_t>(n);
    count(stats.datagrams_received, received);
    for (std::size_t i = 0; i < received; ++i) {
        peers_[i].len = headers_[i].msg_hdr.msg_namelen;
        sizes_[i] = headers_[i].msg_len;
        if (headers_[i].msg_hdr.msg_flags & MSG_TRUNC)
            count(stats.datagrams_oversized);  // only its first kMaxDatagram bytes came: drop it
        else
            kept_.push_back(i);
    }
    return received;
}

void DatagramBatch::answer_all(int fd, ServerStats& stats) {
    if (capacity_ == 1 || kept_.size() == 1) {
        for (std::size_t i = 0; i < size(); ++i) answer_datagram(fd, payload(i), peer(i), stats);
        return;
    }
    std::size_t ready = 0;  // the answerable ones, in replies_[0, ready)
    for (std::size_t slot : kept_) {
        if (!peers_[slot].answerable()) {
            count(stats.datagram_send_errors);
            continue;
        }
        iovecs_[slot] = {buffer(slot), sizes_[slot]};
        replies_[ready++].msg_hdr = msghdr{.msg_name = &peers_[slot].addr,
                                           .msg_namelen = peers_[slot].len,
                                           .msg_iov = &iovecs_[slot],
                                           .msg_iovlen = 1,
                                           .msg_control = nullptr,
                                           .msg_controllen = 0,
                                           .msg_flags = 0};
    }
    // sendmmsg stops at the first message that fails: count that one as an error and go on after it.
    for (std::size_t done = 0; done < ready;) {
        const int n = ::sendmmsg(fd, replies_.data() + done, static_cast<unsigned>(ready - done),
                                 MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            count(stats.datagrams_answered, static_cast<std::uint64_t>(n));
            done += static_cast<std::size_t>(n);
        } else {
            count(stats.datagram_send_errors);
            ++done;
        }
    }
}

void answer_waiting_datagrams(int fd, DatagramBatch& batch, Server& server) {
    for (std::size_t taken = 0; taken < kDatagramsPerWakeup;) {
        const std::size_t received = batch.receive(fd, server.stats);
        if (received == 0) return;  // drained
        for (std::size_t i = 0; i < batch.size(); ++i) simulate_request_work(server.options, 1);
        batch.answer_all(fd, server.stats);
        taken += received;
    }
}

}  // namespace sb
