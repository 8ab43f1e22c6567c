#pragma once
// A fixed set of threads fed by a bounded queue: the classic blocking pool. Each job is handed to
// one worker, which runs `handler(job)` to its end before taking the next.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace sb {

template <class Job>
class WorkerPool {
public:
    using Handler = std::function<void(Job&)>;

    // Starts up to `workers` threads (fewer if the system refuses more: see started()).
    WorkerPool(std::size_t workers, std::size_t queue_capacity, Handler handler)
        : capacity_(queue_capacity), handler_(std::move(handler)) {
        threads_.reserve(workers);
        for (std::size_t i = 0; i < workers; ++i) {
            try {
                threads_.emplace_back([this] { work(); });
            } catch (const std::system_error&) {
                break;  // out of threads: serve with what started
            }
        }
    }

    ~WorkerPool() {
        {
            std::lock_guard lock(mutex_);
            closed_ = true;
            queue_.clear();  // jobs never started are dropped (connections: closed unserved)
        }
        ready_.notify_all();
        for (auto& t : threads_) t.join();
    }

    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    // Queues the job unless the queue is full; on false the job is left with the caller.
    bool try_submit(Job& job) {
        {
            std::lock_guard lock(mutex_);
            if (queue_.size() >= capacity_) return false;
            queue_.push_back(std::move(job));
        }
        ready_.notify_one();
        return true;
    }

    std::size_t started() const noexcept { return threads_.size(); }

private:
    void work() {
        for (;;) {
            Job job;
            {
                std::unique_lock lock(mutex_);
                ready_.wait(lock, [this] { return closed_ || !queue_.empty(); });
                if (closed_) return;
                job = std::move(queue_.front());
                queue_.pop_front();
            }
            handler_(job);
        }
    }

    const std::size_t capacity_;
    const Handler handler_;
    std::mutex mutex_;
    std::condition_variable ready_;
    std::deque<Job> queue_;
    bool closed_ = false;
    std::vector<std::thread> threads_;
};

}  // namespace sb
