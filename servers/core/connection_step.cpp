#include "connection_step.hpp"

#include <cassert>

namespace sb {
namespace {

constexpr std::size_t kKeptBufferBytes = 64 * 1024;  // larger buffers are freed once drained

}  // namespace

FeedResult ConnectionStep::answer(std::span<const char> fresh) {
    if (!in_.empty()) {  // the rest of a split request: continue it in the connection's own buffer
        in_.append({fresh.data(), fresh.size()});
        fresh = {};
    }
    const bool from_buffer = !in_.empty();
    const std::span<const char> input = from_buffer ? in_.readable() : fresh;
    const FeedResult r = session_.feed(input, out_);
    assert(r.consumed <= input.size() && "the session consumes no more than it was given");
    if (from_buffer) {
        in_.consume(r.consumed);
        in_.shrink_if_empty(kKeptBufferBytes);
    } else {
        in_.append({input.data() + r.consumed, input.size() - r.consumed});
    }
    held_back_ = r.consumed > 0 && !in_.empty();
    return r;
}

void ConnectionStep::sent(std::size_t n) {
    out_.consume(n);
    out_.shrink_if_empty(kKeptBufferBytes);
}

ConnectionStep::Next ConnectionStep::next() const noexcept {
    if (!out_.empty()) return Next::send;
    if (session_.closing()) return in_.empty() ? Next::close : Next::discard_and_close;
    if (held_back_) return Next::answer_more;
    return peer_closed_ ? Next::close : Next::read;
}

}  // namespace sb
