#pragma once
// The load-generating loop over datagrams: a thread's flows, each a connected UDP socket with its
// own source port (or a bound Unix datagram socket), in one epoll instance. A request is one
// datagram carrying its flow, its sequence number and padding; the server sends the same bytes
// back. Replies are matched in each flow's ledger; a request unanswered after --timeout is lost.
//
// Closed loop: each flow keeps --pipeline requests outstanding and sends the next on a reply or on
// a loss. Open loop: sends follow the rate schedule, flow after flow, and latency runs from the
// intended send time, as over TCP; a flow whose ledger is full is passed over, and arrivals that
// find every flow full wait, their latency growing.

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "loadgen/datagram_ledger.hpp"
#include "loadgen/engine.hpp"

namespace loadgen {

class DatagramWorker final : public LoadWorker {
public:
    DatagramWorker(WorkerPlan plan, LiveCounters& live);

    void run() override;

private:
    struct Flow {
        UniqueFd fd;
        FlowLedger ledger;
        std::uint32_t unsent = 0;  // closed loop: sends owed, refused by the socket for now
    };

    // --- the loop
    bool open_flows();
    bool open_flow(Flow& f, std::uint32_t index);
    bool hold_until_go(bool started);
    void begin_load(std::uint64_t now);
    std::size_t count_open() const noexcept;
    bool window_over(std::uint64_t now) const noexcept;
    std::uint64_t next_wake(std::uint64_t now) const noexcept;
    void poll_events(std::uint64_t wake, std::uint64_t now);

    // --- the hot path
    void receive(std::uint32_t index, std::uint64_t now);
    void on_reply(std::uint32_t index, std::span<const char> reply, std::uint64_t now);
    void on_answered(const FlowLedger::Reply& reply, std::uint64_t now);
    bool send_one(std::uint32_t index, std::uint64_t due_ns, std::uint64_t now);
    void send_owed(std::uint32_t index, std::uint64_t now);
    void send_refills();
    void retry_unsent(std::uint64_t now);
    void dispatch_arrivals(std::uint64_t now);
    void expire_lost(std::uint64_t now);
    std::size_t give_up(Flow& f, std::uint64_t deadline_ns);

    bool sending_allowed(std::uint64_t now) const noexcept;
    void begin_stop(std::uint64_t now);
    void finish();
    std::uint64_t outstanding() const noexcept;

    UniqueFd epoll_;
    std::vector<Flow> flows_;
    std::vector<char> request_;      // one datagram, refilled per send
    // One recvmmsg's worth of replies: a slot per datagram, one byte longer than a request, so that
    // a longer reply cannot pass for a right one.
    static constexpr std::size_t kReplyBatch = 16;
    std::vector<char> replies_;
    std::array<iovec, kReplyBatch> reply_iov_{};
    std::array<mmsghdr, kReplyBatch> reply_headers_{};
    std::vector<FlowLedger::Lost> lost_scratch_;
    std::vector<std::uint32_t> refills_;  // closed loop: flows to send on after this wake-up's reads
    RateScheduler schedule_;
    std::uint32_t next_flow_ = 0;    // open loop: the flow the next arrival tries first
    bool stopping_ = false;
    bool send_refused_ = false;      // a socket refused a send: retry at retry_at_ns_
    bool arrivals_waiting_ = false;  // open loop: due arrivals found every flow's ledger full
    std::uint64_t retry_at_ns_ = 0;
    std::uint64_t sent_for_quota_ = 0;
    std::uint64_t next_expiry_check_ns_ = 0;
    std::uint64_t expiry_check_interval_ns_ = 0;
    std::uint64_t drain_deadline_ns_ = 0;
};

}  // namespace loadgen
