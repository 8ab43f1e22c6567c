#pragma once
// Datagrams (--transport udp): each one is a request, answered by one datagram holding the same
// bytes, sent back to the address it came from after the handler's work (--cpu-us, --io-us). The
// server never parses a datagram: an empty one gets an empty answer, garbage is echoed. What the
// models' UDP forms share is here: receiving one datagram with its sender, answering it, the
// blocking models' loop, and the event loops' batch (recvmmsg/sendmmsg, or recvfrom/sendto).
//
// Every datagram is bounded: it is received into kMaxDatagram bytes, and one larger than that (only
// a Unix datagram socket can carry one) is seen as such (MSG_TRUNC), dropped and counted, never
// answered truncated. An answer is sent without waiting (MSG_DONTWAIT): a client whose socket has no
// room loses it, counted as a send error, and never stalls the server.

#include <sys/socket.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "server.hpp"

namespace sb {

// The largest datagram a server answers; the size of every receive buffer.
inline constexpr std::size_t kMaxDatagram = 65536;

// How many datagrams an event loop answers per wake-up (or one batch, if --udp-batch is larger)
// before it looks at its other descriptors again: under a flood, the stop signal is still seen.
inline constexpr std::size_t kDatagramsPerWakeup = 64;

// Where a datagram came from: where its answer goes.
struct PeerAddress {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;

    // False for a Unix datagram socket's sender that never bound an address (its recvfrom gives only
    // the family): no answer can reach it.
    bool answerable() const noexcept { return len > sizeof(sa_family_t); }
};

// A datagram copied out of a receive buffer, for another thread to answer (thread-per-conn,
// epoll-pool): its bytes exactly, and its sender.
struct Datagram {
    std::vector<char> payload;
    PeerAddress peer;
};

enum class Received : unsigned char {
    datagram,  // `size` bytes in the buffer, from `peer`
    dropped,   // larger than kMaxDatagram: dropped and counted
    nothing,   // none waiting on a non-blocking socket, interrupted, or woken to stop
};

// Receives one datagram with recvfrom into `buffer` (kMaxDatagram bytes), waiting for one if the
// socket blocks. Counts it received (and oversized). A blocking socket shut down to stop its threads
// (Listener::shutdown) returns at once as if an empty datagram had come: give `stopping`, and a
// wake-up that finds it true is Received::nothing, not counted.
Received receive_datagram(int fd, std::span<char> buffer, std::size_t& size, PeerAddress& peer,
                          ServerStats& stats, const std::function<bool()>& stopping = {});

// Sends `payload` to `peer` with sendto, without waiting; counts it answered or a send error (also
// when the peer cannot be answered).
void answer_datagram(int fd, std::span<const char> payload, const PeerAddress& peer, ServerStats& stats);

// The blocking models' loop on a blocking socket: receive, the handler's work, answer, until a
// wake-up finds stopping() true. Counts into `stats` (prefork's workers count in shared memory).
void serve_datagrams_blocking(int fd, const ServerOptions& options, ServerStats& stats,
                              const std::function<bool()>& stopping);

// An event loop's receive buffers and message headers, for up to --udp-batch datagrams: with more
// than one, a batch is received with one recvmmsg and answered with one sendmmsg; with one, by
// recvfrom and sendto. Allocated once (capacity x kMaxDatagram bytes of address space, of which a
// loop touches what its datagrams fill).
class DatagramBatch {
public:
    explicit DatagramBatch(int capacity);

    // Receives up to capacity waiting datagrams from a non-blocking socket. Returns how many were
    // taken off the socket (0: none waited); of those, the oversized ones are dropped and counted,
    // and the rest are this batch's datagrams until the next receive.
    std::size_t receive(int fd, ServerStats& stats);

    std::size_t size() const noexcept { return kept_.size(); }
    std::span<const char> payload(std::size_t i) const noexcept;
    const PeerAddress& peer(std::size_t i) const noexcept { return peers_[kept_[i]]; }

    // Answers every datagram of the batch with its own bytes: one sendmmsg, or one sendto each.
    void answer_all(int fd, ServerStats& stats);

private:
    char* buffer(std::size_t slot) const noexcept { return buffers_.get() + slot * kMaxDatagram; }
    std::size_t receive_one(int fd, ServerStats& stats);

    std::size_t capacity_;
    std::unique_ptr<char[]> buffers_;  // capacity_ slots of kMaxDatagram bytes
    std::vector<PeerAddress> peers_;
    std::vector<std::size_t> sizes_;
    std::vector<iovec> iovecs_;
    std::vector<mmsghdr> headers_;   // recvmmsg's, one per slot
    std::vector<mmsghdr> replies_;   // sendmmsg's, one per kept datagram
    std::vector<std::size_t> kept_;  // slots received whole, in order
};

// What an event loop does when its datagram socket is readable: receives what waits, up to
// kDatagramsPerWakeup (or one batch), runs each datagram's handler work, and answers. What is left
// is reported again by level-triggered readiness at the next turn.
void answer_waiting_datagrams(int fd, DatagramBatch& batch, Server& server);

}  // namespace sb
