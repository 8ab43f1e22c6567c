#pragma once
// The bookkeeping of one UDP flow, apart from any socket: what was sent, what came back, and what
// each reply was. UDP promises nothing, so every reply is judged: the answer to a pending request,
// a late one (its request had already been given up as lost), a duplicate, or one that matches
// nothing loadgen sent (wrong bytes). Pure, so that every case is unit-tested with scripted
// datagrams.
//
// Requests are numbered per flow from 0. A ring of `capacity` slots (a power of two) remembers the
// most recent ones; a request still pending holds its slot, so at most `capacity` are outstanding
// and the sender waits while the next slot is held.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace loadgen {

// How a request datagram begins; a pattern that depends on the sequence number follows, so that a
// reply holding another request's bytes, or shifted bytes, is caught.
//  * native: loadgen's own 16 bytes (host byte order: both ends are loadgen's): a magic number, the
//    flow, the sequence number. Any server that echoes bytes answers it.
//  * sockperf: sockperf's 14-byte header (network byte order): the sequence number, flags (client,
//    pong request) and the length. `sockperf server` answers only datagrams that carry it, with the
//    client flag cleared; the flow is the socket's.
enum class DatagramFormat { native, sockperf };

struct DatagramHeader {
    static constexpr std::uint32_t kMagic = 0x53424447;  // "SBDG"
    static constexpr std::uint32_t kAnyFlow = UINT32_MAX;  // a format that does not carry it
    std::uint32_t magic = kMagic;
    std::uint32_t flow = 0;
    std::uint64_t seq = 0;
};
constexpr std::size_t kDatagramHeaderBytes = sizeof(DatagramHeader);  // 16: the smallest datagram

// Writes request `seq` of `flow` into `out` (its size is the datagram's size, at least 16 bytes).
void fill_datagram(std::span<char> out, std::uint32_t flow, std::uint64_t seq,
                   DatagramFormat format = DatagramFormat::native);
// The header of a reply if it is exactly the answer to what fill_datagram wrote at `expected_size`
// bytes (the same bytes; in sockperf's format with the client flag cleared); false otherwise.
bool parse_datagram(std::span<const char> in, std::size_t expected_size, DatagramHeader& header,
                    DatagramFormat format = DatagramFormat::native);

class FlowLedger {
public:
    enum class Outcome { answered, late, duplicate, unknown };
    struct Reply {
        Outcome outcome = Outcome::unknown;
        bool reordered = false;      // answered after a request sent later than it
        bool counted = false;        // its request was sent inside the measured window
        std::uint64_t due_ns = 0;    // intended send time (open loop) or send time
        std::uint64_t sent_ns = 0;   // actual send time
    };
    struct Lost {
        bool counted = false;
        std::uint64_t due_ns = 0;
    };

    explicit FlowLedger(std::size_t capacity = 4096);

    std::uint64_t next_seq() const noexcept { return next_seq_; }
    std::size_t outstanding() const noexcept { return outstanding_; }
    bool can_send() const noexcept;  // the next request's slot is free
    // Records the request just sent as next_seq() (the caller sent it first); returns its number.
    std::uint64_t sent(std::uint64_t due_ns, std::uint64_t sent_ns, bool counted);
    // Judges a reply carrying sequence number `seq`.
    Reply on_reply(std::uint64_t seq) noexcept;
    // Gives up, oldest first, every pending request sent at or before `deadline_ns`; appends each to
    // `lost`. A reply that comes for one of them later is late.
    void expire(std::uint64_t deadline_ns, std::vector<Lost>& lost);
    // The send time of the oldest pending request, 0 if none is pending.
    std::uint64_t oldest_pending_sent_ns() const noexcept;

private:
    enum class State : std::uint8_t { free, pending, answered, lost, late };
    struct Slot {
        std::uint64_t seq = 0;
        std::uint64_t due_ns = 0;
        std::uint64_t sent_ns = 0;
        State state = State::free;
        bool counted = false;
    };
    Slot& slot(std::uint64_t seq) noexcept { return slots_[seq & mask_]; }
    const Slot& slot(std::uint64_t seq) const noexcept { return slots_[seq & mask_]; }
    void skip_resolved() noexcept;

    std::vector<Slot> slots_;
    std::uint64_t mask_;
    std::uint64_t next_seq_ = 0;
    std::uint64_t oldest_pending_ = 0;  // no request below it is pending
    std::uint64_t highest_answered_ = 0;
    bool any_answered_ = false;
    std::size_t outstanding_ = 0;
};

}  // namespace loadgen
