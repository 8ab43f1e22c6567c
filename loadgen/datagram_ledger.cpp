#include "loadgen/datagram_ledger.hpp"

#include <endian.h>

#include <bit>
#include <cassert>
#include <cstring>

namespace loadgen {
namespace {

constexpr char kPattern[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr std::size_t kPatternLength = sizeof kPattern - 1;

char pattern_at(std::uint64_t seq, std::size_t i) noexcept {
    return kPattern[(seq + i) % kPatternLength];
}

// sockperf's header (its src/message.h): sequence number, flags, length; packed, big-endian.
constexpr std::size_t kSockperfHeaderBytes = 14;
constexpr std::uint16_t kSockperfClient = 1, kSockperfPongRequest = 2;

void put_sockperf_header(std::span<char> out, std::uint64_t seq, std::uint16_t flags) {
    const std::uint64_t seq_be = htobe64(seq);
    const std::uint16_t flags_be = htobe16(flags);
    const std::uint32_t length_be = htobe32(static_cast<std::uint32_t>(out.size()));
    std::memcpy(out.data(), &seq_be, 8);
    std::memcpy(out.data() + 8, &flags_be, 2);
    std::memcpy(out.data() + 10, &length_be, 4);
}

std::size_t header_bytes(DatagramFormat format) {
    return format == DatagramFormat::native ? kDatagramHeaderBytes : kSockperfHeaderBytes;
}

}  // namespace

void fill_datagram(std::span<char> out, std::uint32_t flow, std::uint64_t seq, DatagramFormat format) {
    assert(out.size() >= kDatagramHeaderBytes);
    if (format == DatagramFormat::native) {
        const DatagramHeader header{DatagramHeader::kMagic, flow, seq};
        std::memcpy(out.data(), &header, sizeof header);
    } else {
        put_sockperf_header(out, seq, kSockperfClient | kSockperfPongRequest);
    }
    for (std::size_t i = header_bytes(format); i < out.size(); ++i) out[i] = pattern_at(seq, i);
}

bool parse_datagram(std::span<const char> in, std::size_t expected_size, DatagramHeader& header,
                    DatagramFormat format) {
    if (in.size() != expected_size || in.size() < kDatagramHeaderBytes) return false;
    if (format == DatagramFormat::native) {
        std::memcpy(&header, in.data(), sizeof header);
        if (header.magic != DatagramHeader::kMagic) return false;
    } else {
        std::uint64_t seq_be = 0;
        std::uint16_t flags_be = 0;
        std::uint32_t length_be = 0;
        std::memcpy(&seq_be, in.data(), 8);
        std::memcpy(&flags_be, in.data() + 8, 2);
        std::memcpy(&length_be, in.data() + 10, 4);
        if (be16toh(flags_be) != kSockperfPongRequest || be32toh(length_be) != in.size()) return false;
        header = {DatagramHeader::kMagic, DatagramHeader::kAnyFlow, be64toh(seq_be)};
    }
    for (std::size_t i = header_bytes(format); i < in.size(); ++i)
        if (in[i] != pattern_at(header.seq, i)) return false;
    return true;
}

FlowLedger::FlowLedger(std::size_t capacity) : slots_(std::bit_ceil(capacity)), mask_(slots_.size() - 1) {}

bool FlowLedger::can_send() const noexcept {
    return slot(next_seq_).state != State::pending;
}

std::uint64_t FlowLedger::sent(std::uint64_t due_ns, std::uint64_t sent_ns, bool counted) {
    assert(can_send());
    const std::uint64_t seq = next_seq_++;
    slot(seq) = {seq, due_ns, sent_ns, State::pending, counted};
    ++outstanding_;
    return seq;
}

FlowLedger::Reply FlowLedger::on_reply(std::uint64_t seq) noexcept {
    Reply reply;
    if (seq >= next_seq_) return reply;  // never sent: unknown
    Slot& s = slot(seq);
    // A slot reused by a later request held this one once, resolved long ago: a reply that old
    // came after its timeout, or again. It is counted late.
    if (s.seq != seq) {
        reply.outcome = Outcome::late;
        return reply;
    }
    reply.counted = s.counted;
    reply.due_ns = s.due_ns;
    reply.sent_ns = s.sent_ns;
    switch (s.state) {
        case State::pending:
            reply.outcome = Outcome::answered;
            reply.reordered = any_answered_ && seq < highest_answered_;
            if (!any_answered_ || seq > highest_answered_) highest_answered_ = seq;
            any_answered_ = true;
            s.state = State::answered;
            --outstanding_;
            skip_resolved();
            break;
        case State::lost:
            reply.outcome = Outcome::late;
            s.state = State::late;
            break;
        case State::answered:
        case State::late:
        case State::free:
            reply.outcome = Outcome::duplicate;
            break;
    }
    return reply;
}

void FlowLedger::expire(std::uint64_t deadline_ns, std::vector<Lost>& lost) {
    skip_resolved();
    while (oldest_pending_ < next_seq_) {
        Slot& s = slot(oldest_pending_);
        if (s.sent_ns > deadline_ns) break;  // sent in order: the later ones are younger still
        s.state = State::lost;
        --outstanding_;
        lost.push_back({s.counted, s.due_ns});
        ++oldest_pending_;
        skip_resolved();
    }
}

std::uint64_t FlowLedger::oldest_pending_sent_ns() const noexcept {
    return oldest_pending_ < next_seq_ ? slot(oldest_pending_).sent_ns : 0;
}

void FlowLedger::skip_resolved() noexcept {
    while (oldest_pending_ < next_seq_ && slot(oldest_pending_).state != State::pending) ++oldest_pending_;
}

}  // namespace loadgen
