#pragma once
// A growable byte buffer with a readable region [begin, end) and free space after it, so partial
// reads append and partial writes consume without moving bytes on every call (muduo's Buffer idea).

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>

namespace sb {

class ByteBuffer {
public:
    explicit ByteBuffer(std::size_t initial_capacity = 0) { reserve_tail(initial_capacity); }

    std::span<const char> readable() const noexcept { return {data_.get() + begin_, end_ - begin_}; }
    std::size_t size() const noexcept { return end_ - begin_; }
    bool empty() const noexcept { return begin_ == end_; }

    // Drops the first n readable bytes: at most what is readable (what was sent or parsed of it).
    void consume(std::size_t n) noexcept {
        assert(n <= size() && "consume() takes no more than is readable");
        begin_ += n;
        if (begin_ == end_) begin_ = end_ = 0;
    }
    void clear() noexcept { begin_ = end_ = 0; }

    // Free space of at least min_bytes after the readable region; fill it, then commit().
    std::span<char> writable(std::size_t min_bytes) {
        reserve_tail(min_bytes);
        return {data_.get() + end_, capacity_ - end_};
    }
    void commit(std::size_t n) noexcept {
        assert(n <= capacity_ - end_ && "commit() takes no more than writable() gave");
        end_ += n;
    }

    void append(std::string_view bytes) {
        if (bytes.empty())
            return;  // a buffer never grown has no storage: memcpy to null is UB even for 0 bytes
        reserve_tail(bytes.size());
        std::memcpy(data_.get() + end_, bytes.data(), bytes.size());
        end_ += bytes.size();
    }

    // Gives memory back after a burst (a large pipelined batch) so an idle connection stays small.
    void shrink_if_empty(std::size_t keep_capacity) {
        if (empty() && capacity_ > keep_capacity) {
            data_.reset();
            capacity_ = 0;
            reserve_tail(keep_capacity);
        }
    }

private:
    void reserve_tail(std::size_t n) {
        if (capacity_ - end_ >= n) return;
        std::size_t live = size();
        if (begin_ > 0 && capacity_ - live >= n && live <= capacity_ / 2) {
            std::memmove(data_.get(), data_.get() + begin_, live);  // slide instead of growing
        } else {
            std::size_t new_capacity = std::max({capacity_ * 2, live + n, std::size_t{1024}});
            auto bigger = std::make_unique_for_overwrite<char[]>(new_capacity);
            if (live > 0) std::memcpy(bigger.get(), data_.get() + begin_, live);
            data_ = std::move(bigger);
            capacity_ = new_capacity;
        }
        begin_ = 0;
        end_ = live;
    }

    std::unique_ptr<char[]> data_;
    std::size_t capacity_ = 0;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
};

}  // namespace sb
