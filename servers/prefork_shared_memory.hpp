#pragma once
// Objects in memory shared with the processes this one forks (MAP_SHARED | MAP_ANONYMOUS): how
// the prefork workers and their parent count together (servers/prefork.cpp). Put only lock-free atomics in
// it: a mutex held by a process that dies stays locked for the others.

#include <sys/mman.h>

#include <cstddef>
#include <new>

#include "core/net.hpp"

namespace sb {

template <class T>
class SharedArray {
public:
    // n value-initialised elements. Exits 1 (a start-up failure) if the mapping is refused.
    SharedArray(std::size_t n, const ModelInfo& model) : size_(n) {
        void* p = ::mmap(nullptr, bytes(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) die(model, "mmap");
        data_ = static_cast<T*>(p);
        for (std::size_t i = 0; i < n; ++i) new (data_ + i) T{};
    }
    ~SharedArray() {
        for (std::size_t i = 0; i < size_; ++i) data_[i].~T();
        ::munmap(data_, bytes());
    }
    SharedArray(const SharedArray&) = delete;
    SharedArray& operator=(const SharedArray&) = delete;

    T& operator[](std::size_t i) noexcept { return data_[i]; }
    std::size_t size() const noexcept { return size_; }

private:
    std::size_t bytes() const noexcept { return size_ * sizeof(T) > 0 ? size_ * sizeof(T) : 1; }

    T* data_ = nullptr;
    std::size_t size_;
};

}  // namespace sb
