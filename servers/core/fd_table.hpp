#pragma once
// A table indexed by descriptor: the kernel hands out the lowest free descriptor, so a vector
// indexed by it stays dense, and finding a connection from an event is one index, not a hash.

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <vector>

namespace sb {

template <class Slot>
class FdTable {
public:
    // The slot of fd, growing the table (by doubling) to hold it. fd is a descriptor: never negative.
    Slot& operator[](int fd) {
        assert(fd >= 0 && "a descriptor table is indexed by descriptors");
        const auto index = static_cast<std::size_t>(fd);
        if (index >= slots_.size()) slots_.resize(std::max(index + 1, slots_.size() * 2));
        return slots_[index];
    }

    // The slot of fd, or nullptr when fd is beyond the table (never stored). fd is never negative.
    Slot* find(int fd) noexcept {
        assert(fd >= 0 && "a descriptor table is indexed by descriptors");
        const auto index = static_cast<std::size_t>(fd);
        return index < slots_.size() ? &slots_[index] : nullptr;
    }

    // Calls f(fd, slot) for every slot, in descriptor order.
    template <class F>
    void for_each(F&& f) {
        for (std::size_t fd = 0; fd < slots_.size(); ++fd) f(static_cast<int>(fd), slots_[fd]);
    }

private:
    std::vector<Slot> slots_;
};

}  // namespace sb
