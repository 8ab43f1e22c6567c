#pragma once
// --max-conns: how many connections a server serves at once. Every model takes a slot before it
// serves a connection and gives it back when the connection ends; a connection that finds no free
// slot is closed at once (and counted by the caller).
//
// The count is an atomic, so loops on several threads can share one limit (epoll-reuseport), and it
// may live outside the object: prefork's workers are processes, and count in shared memory.

#include <atomic>
#include <chrono>
#include <thread>

namespace sb {

class ConnectionLimit {
public:
    // A limit that counts in its own atomic.
    explicit ConnectionLimit(int max) noexcept : max_(max), count_(&own_count_) {}
    // A limit over a count kept elsewhere (memory shared between processes): it must be lock-free.
    ConnectionLimit(int max, std::atomic<int>& shared_count) noexcept : max_(max), count_(&shared_count) {
        static_assert(std::atomic<int>::is_always_lock_free, "a count in shared memory must not need a lock");
    }
    ConnectionLimit(const ConnectionLimit&) = delete;
    ConnectionLimit& operator=(const ConnectionLimit&) = delete;

    // Takes a slot; false (and nothing taken) when all --max-conns are in use.
    bool try_take() noexcept {
        int used = count_->load(std::memory_order_relaxed);
        do {
            if (used >= max_) return false;
        } while (!count_->compare_exchange_weak(used, used + 1, std::memory_order_relaxed));
        return true;
    }

    void give_back(int n = 1) noexcept { count_->fetch_sub(n, std::memory_order_release); }

    int in_use() const noexcept { return count_->load(std::memory_order_acquire); }

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
};

}  // namespace sb
