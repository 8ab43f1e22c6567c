#pragma once
// --max-conns: how many connections a server serves at once. Every model takes a slot before it
// serves a connection and gives it back when the connection ends; a connection that finds no free
// slot is closed at once, and the limit counts that refusal where it was told to (the stop line's
// "refused N at --max-conns", ServerStats::rejected_at_limit).
//
// The count is an atomic, so loops on several threads can share one limit (epoll-reuseport), and it
// may live outside the object: prefork's workers are processes, and count in shared memory (their
// refusals too).

#include <atomic>
#include <cassert>
#include <chrono>
#include <cstdint>
#include <thread>

namespace sb {

class ConnectionLimit {
public:
    // A limit that counts in its own atomic; each refusal adds one to `refused`.
    ConnectionLimit(int max, std::atomic<std::uint64_t>& refused) noexcept
        : max_(max), count_(&own_count_), refused_(&refused) {}
    // A limit over a count kept elsewhere (memory shared between processes): it must be lock-free,
    // and so must `refused` if it lives there too.
    ConnectionLimit(int max, std::atomic<int>& shared_count, std::atomic<std::uint64_t>& refused) noexcept
        : max_(max), count_(&shared_count), refused_(&refused) {
        static_assert(std::atomic<int>::is_always_lock_free, "a count in shared memory must not need a lock");
        static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
                      "a count in shared memory must not need a lock");
    }
    ConnectionLimit(const ConnectionLimit&) = delete;
    ConnectionLimit& operator=(const ConnectionLimit&) = delete;

    // Takes a slot. False when all --max-conns are in use: nothing is taken, the refusal is
    // counted, and the caller closes the connection.
    bool try_take() noexcept {
        int used = count_->load(std::memory_order_relaxed);
        do {
            if (used >= max_) {
                refuse();
                return false;
            }
        } while (!count_->compare_exchange_weak(used, used + 1, std::memory_order_relaxed));
        return true;
    }

    // Counts a connection refused before it could ask for a slot, as one over the limit (select's
    // descriptors at or above FD_SETSIZE).
    void refuse() noexcept { refused_->fetch_add(1, std::memory_order_relaxed); }

    // Gives back n slots taken before: the count never goes below zero.
    void give_back(int n = 1) noexcept {
        assert(n >= 0);
        [[maybe_unused]] const int before = count_->fetch_sub(n, std::memory_order_release);
        assert(before >= n && "a slot is given back once, and only after it was taken");
    }

    int in_use() const noexcept { return count_->load(std::memory_order_acquire); }
    std::uint64_t refused() const noexcept { return refused_->load(std::memory_order_relaxed); }

    // Waits until every slot is given back: how thread-per-conn's main outlives its detached
    // threads. Polled rather than notified, since a notify after the last give_back could touch this
    // object after the waiter has destroyed it; a give_back is the last thing a thread does with it.
    void wait_until_unused() const noexcept {
        while (in_use() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }

private:
    const int max_;
    std::atomic<int> own_count_{0};
    std::atomic<int>* count_;
    std::atomic<std::uint64_t>* refused_;
};

}  // namespace sb
