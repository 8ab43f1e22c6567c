// A UDP flow's bookkeeping with scripted datagrams: matching, loss, late replies, duplicates,
// reordering and wrong bytes, without a socket.

#include <gtest/gtest.h>

#include <vector>

#include "loadgen/datagram_ledger.hpp"

namespace loadgen {
namespace {

using Outcome = FlowLedger::Outcome;

std::vector<char> datagram(std::uint32_t flow, std::uint64_t seq, std::size_t size = 64) {
    std::vector<char> d(size);
    fill_datagram(d, flow, seq);
    return d;
}

TEST(DatagramFormat, ARequestParsesBackToItsFlowAndNumber) {
    const auto d = datagram(7, 123456789012ULL, 1400);
    DatagramHeader header;
    ASSERT_TRUE(parse_datagram(d, 1400, header));
    EXPECT_EQ(header.flow, 7u);
    EXPECT_EQ(header.seq, 123456789012ULL);
}

TEST(DatagramFormat, TheSmallestDatagramIsItsHeader) {
    const auto d = datagram(1, 2, kDatagramHeaderBytes);
    DatagramHeader header;
    EXPECT_TRUE(parse_datagram(d, kDatagramHeaderBytes, header));
}

TEST(DatagramFormat, WrongSizeHeaderOrBytesAreRefused) {
    DatagramHeader header;
    const auto d = datagram(1, 5);
    EXPECT_FALSE(parse_datagram(std::span(d).first(63), 64, header)) << "truncated";
    EXPECT_FALSE(parse_datagram(d, 65, header)) << "not the size sent";
    EXPECT_FALSE(parse_datagram({}, 64, header)) << "empty";
    auto bad_magic = d;
    bad_magic[0] ^= 1;
    EXPECT_FALSE(parse_datagram(bad_magic, 64, header));
    auto bad_byte = d;
    bad_byte[40] ^= 1;
    EXPECT_FALSE(parse_datagram(bad_byte, 64, header));
    // Another request's padding under this request's header: a mixed-up echo.
    auto mixed = datagram(1, 6);
    std::copy(d.begin(), d.begin() + kDatagramHeaderBytes, mixed.begin());
    EXPECT_FALSE(parse_datagram(mixed, 64, header));
}

TEST(DatagramFormat, SockperfsAnswerIsTheRequestWithTheClientFlagCleared) {
    std::vector<char> d(64);
    fill_datagram(d, 3, 77, DatagramFormat::sockperf);
    EXPECT_EQ(d[7], 77) << "the sequence number, big-endian, first";
    EXPECT_EQ(d[9], 3) << "client and pong-request flags";
    EXPECT_EQ(d[13], 64) << "the length";
    DatagramHeader header;
    EXPECT_FALSE(parse_datagram(d, 64, header, DatagramFormat::sockperf)) << "still marked as the client's";
    d[9] = 2;  // what sockperf's server does to it
    ASSERT_TRUE(parse_datagram(d, 64, header, DatagramFormat::sockperf));
    EXPECT_EQ(header.seq, 77u);
    EXPECT_EQ(header.flow, DatagramHeader::kAnyFlow);
    d[40] ^= 1;
    EXPECT_FALSE(parse_datagram(d, 64, header, DatagramFormat::sockperf));
}

TEST(FlowLedger, AReplyAnswersItsPendingRequestOnce) {
    FlowLedger ledger;
    const auto seq = ledger.sent(100, 110, true);
    EXPECT_EQ(ledger.outstanding(), 1u);
    const auto reply = ledger.on_reply(seq);
    EXPECT_EQ(reply.outcome, Outcome::answered);
    EXPECT_TRUE(reply.counted);
    EXPECT_EQ(reply.due_ns, 100u);
    EXPECT_EQ(reply.sent_ns, 110u);
    EXPECT_FALSE(reply.reordered);
    EXPECT_EQ(ledger.outstanding(), 0u);
    EXPECT_EQ(ledger.on_reply(seq).outcome, Outcome::duplicate);
}

TEST(FlowLedger, AReplyToNothingSentIsUnknown) {
    FlowLedger ledger;
    EXPECT_EQ(ledger.on_reply(0).outcome, Outcome::unknown);
    ledger.sent(0, 0, true);
    EXPECT_EQ(ledger.on_reply(1).outcome, Outcome::unknown);
}

TEST(FlowLedger, RequestsPastTheirDeadlineAreLostOldestFirst) {
    FlowLedger ledger;
    ledger.sent(10, 10, true);
    ledger.sent(20, 20, false);
    ledger.sent(30, 30, true);
    std::vector<FlowLedger::Lost> lost;
    ledger.expire(20, lost);
    ASSERT_EQ(lost.size(), 2u);
    EXPECT_TRUE(lost[0].counted);
    EXPECT_FALSE(lost[1].counted);
    EXPECT_EQ(ledger.outstanding(), 1u);
    EXPECT_EQ(ledger.oldest_pending_sent_ns(), 30u);
}

TEST(FlowLedger, AnAnsweredRequestIsNeverLost) {
    FlowLedger ledger;
    ledger.sent(10, 10, true);
    const auto second = ledger.sent(20, 20, true);
    ledger.sent(30, 30, true);
    ASSERT_EQ(ledger.on_reply(second).outcome, Outcome::answered);
    std::vector<FlowLedger::Lost> lost;
    ledger.expire(100, lost);
    EXPECT_EQ(lost.size(), 2u);
    EXPECT_EQ(ledger.outstanding(), 0u);
}

TEST(FlowLedger, AReplyAfterItsRequestWasLostIsLateThenADuplicate) {
    FlowLedger ledger;
    const auto seq = ledger.sent(10, 10, true);
    std::vector<FlowLedger::Lost> lost;
    ledger.expire(10, lost);
    ASSERT_EQ(lost.size(), 1u);
    const auto late = ledger.on_reply(seq);
    EXPECT_EQ(late.outcome, Outcome::late);
    EXPECT_TRUE(late.counted);
    EXPECT_EQ(ledger.on_reply(seq).outcome, Outcome::duplicate);
}

TEST(FlowLedger, AnOlderRequestAnsweredAfterANewerOneIsReordered) {
    FlowLedger ledger;
    const auto first = ledger.sent(1, 1, true);
    const auto second = ledger.sent(2, 2, true);
    EXPECT_FALSE(ledger.on_reply(second).reordered);
    const auto reply = ledger.on_reply(first);
    EXPECT_EQ(reply.outcome, Outcome::answered);
    EXPECT_TRUE(reply.reordered);
}

TEST(FlowLedger, AFullRingHoldsTheSenderUntilTheOldestIsResolved) {
    FlowLedger ledger(4);
    for (int i = 0; i < 4; ++i) ledger.sent(0, 0, true);
    EXPECT_FALSE(ledger.can_send());
    ledger.on_reply(1);  // not the oldest: its slot frees, but the next request's slot is the oldest's
    EXPECT_FALSE(ledger.can_send());
    ledger.on_reply(0);
    EXPECT_TRUE(ledger.can_send());
    EXPECT_EQ(ledger.sent(0, 0, true), 4u);
}

TEST(FlowLedger, AReplyOlderThanTheRingIsLate) {
    FlowLedger ledger(4);
    for (int i = 0; i < 4; ++i) ledger.on_reply(ledger.sent(0, 0, true));
    ledger.sent(0, 0, true);  // number 4 takes number 0's slot
    EXPECT_EQ(ledger.on_reply(0).outcome, Outcome::late);
    EXPECT_FALSE(ledger.on_reply(0).counted) << "its accounting is long closed";
}

}  // namespace
}  // namespace loadgen
