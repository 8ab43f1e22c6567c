// Unit tests of what the event-loop models share without sockets: the connection step (answer
// what arrived, back-pressure, closing) and its byte buffer, the --max-conns limit, the idle-sweep
// rule, the descriptor table and what an epoll_ctl failure means. The death tests of asserted
// invariants run only where assert() is on (Debug and sanitizer builds).

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/byte_buffer.hpp"
#include "core/check_epoll_ctl.hpp"
#include "core/clock.hpp"
#include "core/connection_limit.hpp"
#include "core/connection_step.hpp"
#include "core/fd_table.hpp"

namespace {

using sb::ConnectionStep;
using Next = ConnectionStep::Next;

constexpr std::string_view kGet = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
constexpr std::string_view kGetClose = "GET / HTTP/1.1\r\nConnection: close\r\n\r\n";

// Takes everything the step has to send, as a socket with room for all of it would.
std::string send_all(ConnectionStep& step) {
    const auto bytes = step.output().readable();
    std::string sent(bytes.data(), bytes.size());
    step.sent(sent.size());
    return sent;
}

std::size_t count(std::string_view haystack, std::string_view needle) {
    std::size_t n = 0;
    for (auto pos = haystack.find(needle); pos != std::string_view::npos;
         pos = haystack.find(needle, pos + 1))
        ++n;
    return n;
}

TEST(ConnectionStep, AnswersAWholeRequestAndWaitsForMore) {
    sb::ResponseSet responses{sb::ProtocolConfig{}};
    ConnectionStep step(responses);
    EXPECT_EQ(step.next(), Next::read);
    const sb::FeedResult r = step.answer({kGet.data(), kGet.size()});
    EXPECT_EQ(r.requests, 1u);
    EXPECT_EQ(r.consumed, kGet.size());
    EXPECT_EQ(step.next(), Next::send);
    EXPECT_EQ(count(send_all(step), "HTTP/1.1 200 OK"), 1u);
    EXPECT_EQ(step.next(), Next::read);
    EXPECT_FALSE(step.awaiting_rest_of_request());
}

TEST(ConnectionStep, KeepsASplitRequestUntilItsRestArrives) {
    sb::ResponseSet responses{sb::ProtocolConfig{}};
    ConnectionStep step(responses);
    for (std::size_t split = 1; split < kGet.size(); ++split) {
        // The first part arrives in a buffer the loop reuses: the step must keep its own copy.
        std::string scratch(kGet.substr(0, split));
        EXPECT_EQ(step.answer({scratch.data(), scratch.size()}).requests, 0u);
        scratch.assign(scratch.size(), 'X');
        EXPECT_TRUE(step.awaiting_rest_of_request());
        EXPECT_EQ(step.next(), Next::read);
        const std::string_view rest = kGet.substr(split);
        EXPECT_EQ(step.answer({rest.data(), rest.size()}).requests, 1u) << "split at " << split;
        EXPECT_EQ(count(send_all(step), "200 OK"), 1u);
        EXPECT_EQ(step.next(), Next::read);
    }
}

TEST(ConnectionStep, HoldsBackRequestsWhileOutputIsFullThenAnswersThem) {
    sb::ProtocolConfig config;
    config.response_bytes = 1000;
    config.output_high_water = 4000;  // about four responses
    sb::ResponseSet responses{config};
    ConnectionStep step(responses);
    std::string batch;
    for (int i = 0; i < 20; ++i) batch += kGet;

    std::size_t answered = step.answer({batch.data(), batch.size()}).requests;
    EXPECT_LT(answered, 20u);
    std::string sent;
    while (step.next() != Next::read) {
        ASSERT_NE(step.next(), Next::close);
        if (step.next() == Next::send)
            sent += send_all(step);
        else
            answered += step.answer().requests;  // Next::answer_more
    }
    EXPECT_EQ(answered, 20u);
    EXPECT_EQ(count(sent, "200 OK"), 20u);
}

TEST(ConnectionStep, ClosesAfterConnectionClose) {
    sb::ResponseSet responses{sb::ProtocolConfig{}};
    ConnectionStep step(responses);
    step.answer({kGetClose.data(), kGetClose.size()});
    EXPECT_EQ(step.next(), Next::send);
    EXPECT_NE(send_all(step).find("Connection: close"), std::string::npos);
    EXPECT_EQ(step.next(), Next::close);
}

TEST(ConnectionStep, DiscardsUnreadInputBeforeClosingAfterAnError) {
    sb::ResponseSet responses{sb::ProtocolConfig{}};
    ConnectionStep step(responses);
    const std::string_view bad = "NOT HTTP\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    EXPECT_EQ(step.answer({bad.data(), bad.size()}).requests, 0u);
    EXPECT_NE(send_all(step).find("400 Bad Request"), std::string::npos);
    EXPECT_EQ(step.next(), Next::discard_and_close);
}

TEST(ConnectionStep, EndOfInputClosesOnceWhatCameIsAnswered) {
    sb::ResponseSet responses{sb::ProtocolConfig{}};
    ConnectionStep step(responses);
    step.answer({kGet.data(), kGet.size()});
    step.end_of_input();                 // a half-close right behind the request
    EXPECT_EQ(step.next(), Next::send);  // the answer still goes out
    send_all(step);
    EXPECT_EQ(step.next(), Next::close);
}

TEST(ConnectionStep, PartialSendsLeaveTheRestToSend) {
    sb::ResponseSet responses{sb::ProtocolConfig{}};
    ConnectionStep step(responses);
    step.answer({kGet.data(), kGet.size()});
    const std::size_t total = step.output().size();
    step.sent(5);
    EXPECT_EQ(step.output().size(), total - 5);
    EXPECT_EQ(step.next(), Next::send);
    step.sent(total - 5);
    EXPECT_EQ(step.next(), Next::read);
}

TEST(ConnectionStep, EchoReturnsEveryByte) {
    sb::ProtocolConfig config;
    config.protocol = sb::Protocol::echo;
    sb::ResponseSet responses{config};
    ConnectionStep step(responses);
    step.answer({"abc", 3});
    step.answer({"de", 2});
    EXPECT_EQ(send_all(step), "abcde");
    EXPECT_EQ(step.next(), Next::read);
}

TEST(ByteBuffer, ConsumeDropsWhatWasReadFromTheFront) {
    sb::ByteBuffer b;
    b.append("abcdef");
    b.consume(2);
    EXPECT_EQ(std::string_view(b.readable().data(), b.size()), "cdef");
    b.consume(4);
    EXPECT_TRUE(b.empty());
    const std::span<char> room = b.writable(3);
    ASSERT_GE(room.size(), 3u);
    std::memcpy(room.data(), "xyz", 3);
    b.commit(3);
    EXPECT_EQ(std::string_view(b.readable().data(), b.size()), "xyz");
}

#ifndef NDEBUG
TEST(ByteBufferDeathTest, ConsumingOrCommittingMoreThanThereIsIsABug) {
    sb::ByteBuffer b;
    b.append("ab");
    EXPECT_DEATH(b.consume(3), "no more than is readable");
    const std::size_t room = b.writable(1).size();
    EXPECT_DEATH(b.commit(room + 1), "no more than writable");
}
#endif

TEST(ConnectionLimit, RefusesBeyondItsMaximumAndTakesAgainAfterAGiveBack) {
    std::atomic<std::uint64_t> refused{0};
    sb::ConnectionLimit limit(2, refused);
    EXPECT_TRUE(limit.try_take());
    EXPECT_TRUE(limit.try_take());
    EXPECT_FALSE(limit.try_take());
    EXPECT_EQ(limit.in_use(), 2);
    limit.give_back();
    EXPECT_TRUE(limit.try_take());
    limit.give_back(2);
    EXPECT_EQ(limit.in_use(), 0);
}

TEST(ConnectionLimit, CountsEachRefusalWhereItIsTold) {
    std::atomic<std::uint64_t> refused{5};  // as a server's stats, which other refusals add to
    sb::ConnectionLimit limit(1, refused);
    EXPECT_TRUE(limit.try_take());
    EXPECT_FALSE(limit.try_take());
    EXPECT_FALSE(limit.try_take());
    EXPECT_EQ(refused.load(), 7u);
    limit.refuse();  // refused before asking (select's FD_SETSIZE)
    EXPECT_EQ(limit.refused(), 8u);
    EXPECT_EQ(limit.in_use(), 1);
    limit.give_back();
    EXPECT_TRUE(limit.try_take());
    EXPECT_EQ(refused.load(), 8u);  // a slot taken is no refusal
}

TEST(ConnectionLimit, TwoLimitsOverOneSharedCountCountTogether) {
    std::atomic<int> shared{0};  // as prefork's count in shared memory
    std::atomic<std::uint64_t> refused{0};
    sb::ConnectionLimit a(3, shared, refused), b(3, shared, refused);
    EXPECT_TRUE(a.try_take());
    EXPECT_TRUE(b.try_take());
    EXPECT_TRUE(a.try_take());
    EXPECT_FALSE(b.try_take());
    b.give_back();  // a slot taken by a, given back by another process's view (prefork's parent)
    EXPECT_TRUE(a.try_take());
    EXPECT_EQ(shared.load(), 3);
    EXPECT_EQ(refused.load(), 1u);
}

#ifndef NDEBUG
TEST(ConnectionLimitDeathTest, AGiveBackOfASlotNeverTakenIsABug) {
    std::atomic<std::uint64_t> refused{0};
    sb::ConnectionLimit limit(2, refused);
    EXPECT_TRUE(limit.try_take());
    EXPECT_DEATH(limit.give_back(2), "given back once");
}
#endif

TEST(ConnectionLimit, NeverAdmitsMoreThanItsMaximumUnderContention) {
    constexpr int kMax = 5;
    std::atomic<std::uint64_t> refused{0};
    sb::ConnectionLimit limit(kMax, refused);
    std::atomic<int> inside{0}, worst{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 20000; ++i) {
                if (!limit.try_take()) continue;
                const int now = inside.fetch_add(1) + 1;
                int seen = worst.load();
                while (now > seen && !worst.compare_exchange_weak(seen, now)) {
                }
                inside.fetch_sub(1);
                limit.give_back();
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_LE(worst.load(), kMax);
    EXPECT_EQ(limit.in_use(), 0);
    limit.wait_until_unused();  // returns at once
}

TEST(IdleSweep, IntervalIsAQuarterOfTheTimeoutWithin10MsAnd1s) {
    EXPECT_EQ(sb::idle_sweep_interval_ms(20), 10);
    EXPECT_EQ(sb::idle_sweep_interval_ms(400), 100);
    EXPECT_EQ(sb::idle_sweep_interval_ms(30000), 1000);
}

TEST(IdleSweep, DueOncePerIntervalAndNeverWhenDisabled) {
    sb::IdleSweep sweep(400);
    EXPECT_TRUE(sweep.due(1000));
    EXPECT_FALSE(sweep.due(1050));
    EXPECT_EQ(sweep.wait_ms(1050), 50);
    EXPECT_TRUE(sweep.due(1100));
    EXPECT_EQ(sweep.idle_before(1100), 700);

    sb::IdleSweep never(0);
    EXPECT_FALSE(never.due(1000));
    EXPECT_EQ(never.wait_ms(1000), -1);
}

TEST(FdTable, GrowsToHoldAnyDescriptorAndFindsNothingBeyondIt) {
    sb::FdTable<int> table;
    EXPECT_EQ(table.find(3), nullptr);
    table[3] = 7;
    table[100] = 9;
    ASSERT_NE(table.find(3), nullptr);
    EXPECT_EQ(*table.find(3), 7);
    EXPECT_EQ(*table.find(100), 9);
    EXPECT_EQ(table.find(100000), nullptr);
    int sum = 0;
    table.for_each([&](int fd, int& v) { sum += v != 0 ? fd : 0; });
    EXPECT_EQ(sum, 103);
}

#ifndef NDEBUG
TEST(FdTableDeathTest, ANegativeDescriptorIsABug) {
    sb::FdTable<int> table;
    table[3] = 7;
    EXPECT_DEATH(table.find(-1), "indexed by descriptors");
    EXPECT_DEATH(table[-1] = 1, "indexed by descriptors");
}
#endif

TEST(CheckEpollCtl, DoneOrNoRoomForTheConnection) {
    constexpr sb::ModelInfo model{.name = "test", .summary = ""};
    EXPECT_TRUE(sb::check_epoll_ctl(0, model));
    errno = ENOMEM;
    EXPECT_FALSE(sb::check_epoll_ctl(-1, model));
    errno = ENOSPC;  // past fs.epoll.max_user_watches
    EXPECT_FALSE(sb::check_epoll_ctl(-1, model));
}

TEST(CheckEpollCtlDeathTest, AnyOtherFailureIsABugAndAbortsInEveryBuild) {
    constexpr sb::ModelInfo model{.name = "test", .summary = ""};
    EXPECT_DEATH(
        {
            errno = EEXIST;
            sb::check_epoll_ctl(-1, model);
        },
        "server-test: epoll_ctl: .*aborting");
}

TEST(Clock, MonotonicMsNeverGoesBack) {
    std::int64_t last = sb::monotonic_ms();
    for (int i = 0; i < 1000; ++i) {
        const std::int64_t now = sb::monotonic_ms();
        EXPECT_GE(now, last);
        last = now;
    }
}

}  // namespace
