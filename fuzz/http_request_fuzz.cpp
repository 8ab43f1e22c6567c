// libFuzzer target for sb::ProtocolSession, the request state machine every model runs.
//
// Input layout: 4 configuration bytes, then the byte stream a client sends.
//   [0] flags: bit 0-2 == 0 selects echo (1 in 8), bit 3 a tiny header limit (64 B), bit 4 a tiny
//       body limit (100 B), bit 5 "do not drain output between chunks" (a client that stops reading)
//   [1] --response-bytes (0..255)
//   [2] output high-water mark: 1, 64, 256, 4096 or 256 KiB (the default)
//   [3] seed of the split points: the stream is fed in chunks of 1..64 bytes chosen from it,
//       appended to what the previous feed left unconsumed, as the models' callers do.
//
// Invariants checked (abort on violation, so libFuzzer reports a crash):
//   * feed() never consumes more than it is given;
//   * the output only grows, by whole responses from the ResponseSet (HTTP: each one begins
//     "HTTP/1.1 "); echo output is exactly the input consumed, in order;
//   * once closing(), nothing more is consumed or produced;
//   * with output at or above the high-water mark, feed() does nothing; it never overshoots the
//     mark by more than one response (memory is bounded whatever the client does);
//   * the responses are the same however the stream was split (checked against one whole feed).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/protocol.hpp"

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "http_request_fuzz: invariant violated: %s\n", what);
    std::abort();
}

void check(bool ok, const char* what) {
    if (!ok) fail(what);
}

std::string_view view(const sb::ByteBuffer& b) { return {b.readable().data(), b.readable().size()}; }

struct Case {
    sb::ProtocolConfig config;
    bool keep_unread = false;
    std::uint8_t split_seed = 0;
    std::string_view stream;
};

// True if `out` is a concatenation of whole responses of the set; `count` is how many. Matched
// with backtracking (reachable positions): a HEAD response is a prefix of the GET one, and a tiny
// body ("H") can look like the start of the next response.
bool is_whole_responses(std::string_view out, const sb::ResponseSet& set, std::size_t& count) {
    using P = sb::ResponseSet::Persistence;
    std::vector<std::string_view> known;
    for (P p : {P::keep_alive, P::keep_alive_http10, P::close}) {
        known.push_back(set.ok(p, false));
        known.push_back(set.ok(p, true));
    }
    known.push_back(set.bad_request());
    known.push_back(set.content_too_large());
    known.push_back(set.header_fields_too_large());
    constexpr std::size_t unreachable = SIZE_MAX;
    std::vector<std::size_t> responses_to(out.size() + 1, unreachable);  // fewest responses to reach i
    responses_to[0] = 0;
    for (std::size_t i = 0; i < out.size(); ++i) {
        if (responses_to[i] == unreachable) continue;
        std::string_view rest = out.substr(i);
        if (!rest.starts_with("HTTP/1.1 ")) continue;
        for (std::string_view r : known) {
            if (rest.starts_with(r)) responses_to[i + r.size()] = std::min(responses_to[i + r.size()], responses_to[i] + 1);
        }
    }
    count = responses_to[out.size()];
    return count != unreachable;
}

std::size_t largest_response(const sb::ResponseSet& set) {
    std::size_t m = set.header_fields_too_large().size();
    using P = sb::ResponseSet::Persistence;
    for (P p : {P::keep_alive, P::keep_alive_http10, P::close}) m = std::max(m, set.ok(p, false).size());
    return std::max({m, set.bad_request().size(), set.content_too_large().size()});
}

// One feed with every invariant checked; appends what the socket "sent" to `sent`.
sb::FeedResult checked_feed(sb::ProtocolSession& session, const sb::ResponseSet& set, std::string_view in,
                            sb::ByteBuffer& out, std::string& echoed) {
    const bool echo = set.config().protocol == sb::Protocol::echo;
    const bool was_closing = session.closing();
    const std::string before{view(out)};
    const bool was_full = out.size() >= set.config().output_high_water;

    sb::FeedResult r = session.feed({in.data(), in.size()}, out);

    check(r.consumed <= in.size(), "consumed more than given");
    std::string_view now = view(out);
    check(now.size() >= before.size() && now.starts_with(before), "output did not only grow");
    std::string_view added = now.substr(before.size());
    if (was_closing) check(added.empty() && r.consumed == 0, "produced or consumed after closing()");
    if (was_full) check(added.empty() && r.consumed == 0, "fed past the output high-water mark");
    if (!added.empty()) {
        check(now.size() < set.config().output_high_water + std::max(largest_response(set), in.size()),
              "output overshot the high-water mark by more than one response");
    }
    if (echo) {
        check(added == in.substr(0, r.consumed), "echo output differs from the input consumed");
        echoed.append(added);
    } else {
        std::size_t responses = 0;
        check(is_whole_responses(added, set, responses), "output is not whole responses");
        check(responses >= r.requests, "fewer responses than requests answered");
        check(responses <= r.requests + 1, "more than one error response in a feed");
    }
    return r;
}

// Runs the stream through a session as a model's caller does; returns every byte "sent".
std::string run(const Case& c, bool split) {
    const sb::ResponseSet set(c.config);
    sb::ProtocolSession session(set);
    sb::ByteBuffer out;
    std::string sent, echoed, pending;
    std::uint32_t rng = c.split_seed * 2654435761u + 1;
    std::string_view rest = c.stream;
    bool last_round = false;
    while (!last_round) {
        // The next chunk arrives (all of it when not splitting).
        std::size_t chunk = rest.size();
        if (split) {
            rng = rng * 1103515245u + 12345u;
            chunk = std::min<std::size_t>(rest.size(), 1 + (rng >> 16) % 64);
        }
        pending.append(rest.substr(0, chunk));
        rest.remove_prefix(chunk);
        last_round = rest.empty();
        // Feed until the session takes nothing more; drain the output as a socket would, unless the
        // client is not reading, in which case the output stays until the end of the stream.
        for (int guard = 0;; ++guard) {
            check(guard < 1'000'000, "no progress");
            sb::FeedResult r = checked_feed(session, set, pending, out, echoed);
            pending.erase(0, r.consumed);
            const bool drain = (!c.keep_unread || last_round) && !out.empty();
            if (drain) {  // room again: what was held back may be fed now
                sent.append(view(out));
                out.clear();
            }
            if (r.consumed == 0 && !drain) break;
            if (session.closing()) break;
        }
        if (session.closing()) {
            // Further input is ignored: check it stays so.
            checked_feed(session, set, "GET / HTTP/1.1\r\n\r\n", out, echoed);
            sent.append(view(out));
            out.clear();
            break;
        }
    }
    sent.append(view(out));
    return sent;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 4) return 0;
    Case c;
    const std::uint8_t flags = data[0];
    c.config.protocol = (flags & 7) == 0 ? sb::Protocol::echo : sb::Protocol::http;
    if (flags & 8) c.config.max_header_bytes = 64;
    if (flags & 16) c.config.max_body_bytes = 100;
    c.keep_unread = (flags & 32) != 0;
    c.config.response_bytes = data[1];
    static constexpr std::size_t high_water[] = {1, 64, 256, 4096, 256 * 1024};
    c.config.output_high_water = high_water[data[2] % 5];
    c.split_seed = data[3];
    c.stream = {reinterpret_cast<const char*>(data + 4), size - 4};

    const std::string split = run(c, true);
    Case whole = c;  // the same stream in one piece, read by an attentive client
    whole.keep_unread = false;
    check(split == run(whole, false), "responses depend on how the stream was split");
    return 0;
}
