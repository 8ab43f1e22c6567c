#pragma once
// The two protocols every model serves, as a pure incremental state machine: bytes in, response
// bytes out, and "close after this". No sockets, clocks or threads, so it is unit-tested at every
// byte boundary and fuzzed alone, and each model file is only its concurrency.

#include <cstddef>
#include <span>
#include <string>

#include "byte_buffer.hpp"

namespace sb {

enum class Protocol { http, echo };

struct ProtocolConfig {
    Protocol protocol = Protocol::http;
    std::size_t response_bytes = 13;           // HTTP body size
    std::size_t max_header_bytes = 8 * 1024;   // larger request heads get 431
    std::size_t max_body_bytes = 1024 * 1024;  // larger request bodies get 413
    // A session stops producing once this much output is waiting, so a client that pipelines
    // without reading cannot make the server buffer without bound: the caller flushes, then feeds
    // the rest.
    std::size_t output_high_water = 256 * 1024;
};

// The responses, built once per server and shared read-only by every session.
class ResponseSet {
public:
    explicit ResponseSet(const ProtocolConfig& config);

    const ProtocolConfig& config() const noexcept { return config_; }

    enum class Persistence { keep_alive, keep_alive_http10, close };
    std::string_view ok(Persistence p, bool head_only) const noexcept;

    std::string_view bad_request() const noexcept { return bad_request_; }                   // 400
    std::string_view content_too_large() const noexcept { return content_too_large_; }       // 413
    std::string_view header_fields_too_large() const noexcept { return header_too_large_; }  // 431

private:
    ProtocolConfig config_;
    std::string ok_[3];
    std::size_t ok_head_length_[3] = {};
    std::string bad_request_, content_too_large_, header_too_large_;
};

struct FeedResult {
    std::size_t consumed = 0;  // input bytes used up; the caller drops them before the next feed
    std::size_t requests = 0;  // complete requests answered (simulated work is applied per request)
};

// One connection's protocol state.
class ProtocolSession {
public:
    explicit ProtocolSession(const ResponseSet& responses) noexcept : responses_(&responses) {}

    // Parses as many whole requests from `in` as it can and appends their responses to `out`.
    // Bytes of an incomplete request are left unconsumed: feed them again with more appended.
    FeedResult feed(std::span<const char> in, ByteBuffer& out);

    // True once a response that ends the connection was produced (Connection: close, HTTP/1.0,
    // or an error status): flush the output, then close; further input is ignored.
    bool closing() const noexcept { return state_ == State::closed; }

private:
    enum class State { head, body, chunk_size, chunk_data, chunk_data_end, trailer, closed };

    FeedResult feed_echo(std::span<const char> in, ByteBuffer& out);
    std::size_t parse_head(std::span<const char> in, ByteBuffer& out, std::size_t& requests);
    std::size_t skip_body(std::span<const char> in, ByteBuffer& out, std::size_t& requests);
    void finish_request(ByteBuffer& out, std::size_t& requests);
    std::size_t fail(std::string_view response, ByteBuffer& out);

    const ResponseSet* responses_;
    State state_ = State::head;
    std::size_t scanned_ = 0;         // bytes of the current head already searched for its end
    std::size_t body_remaining_ = 0;  // of a Content-Length body or of the current chunk
    std::size_t body_total_ = 0;      // chunked body size so far, for the 413 limit
    ResponseSet::Persistence persistence_ = ResponseSet::Persistence::keep_alive;
    bool head_only_ = false;
};

}  // namespace sb
