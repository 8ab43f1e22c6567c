#pragma once
// Incremental HTTP/1.x response parser: bytes in, "one response complete" out. Pure (no sockets,
// no clocks), so it is tested at every byte boundary and fuzzed alone.
//
// Feed it whatever a read returned; parse() consumes at most one response and says how many
// bytes it used, so pipelined responses in one buffer are taken one at a time. It checks the
// status line, finds the body by Content-Length or chunked transfer coding (or "until the server
// closes" when neither is given), and skips interim 1xx responses.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace loadgen {

class HttpResponseParser {
public:
    enum class Status { need_more, complete, error };
    struct Result {
        Status status;
        std::size_t consumed;  // bytes of the input used (the rest belongs to the next response)
    };

    // Longest status line, header line or chunk-size line accepted (longer is an error).
    static constexpr std::size_t kMaxLine = 16 * 1024;

    HttpResponseParser() { line_.reserve(256); }

    Result parse(const char* data, std::size_t size);
    // The peer closed the connection: completes a body delimited by the close; otherwise the
    // response (if one was started) is truncated, reported as error.
    Status finish_on_eof();

    // After `complete`: facts about the response just parsed (valid until the next parse()).
    int status_code() const noexcept { return status_code_; }
    bool keep_alive() const noexcept { return keep_alive_; }
    std::uint64_t body_bytes() const noexcept { return body_bytes_; }
    // True while a response has been started but not finished.
    bool in_progress() const noexcept { return state_ != State::status_line || !line_.empty(); }
    const char* error_reason() const noexcept { return error_; }

    void reset() noexcept;  // back to "expecting a status line", for a new connection

private:
    enum class State {
        status_line,
        header_line,
        body_length,
        body_until_eof,
        chunk_size,
        chunk_data,
        chunk_data_end,
        trailer_line,
        failed
    };

    bool on_line(const char* line, std::size_t size);  // false = error (error_ set)
    bool on_status_line(const char* line, std::size_t size);
    bool on_header_line(const char* line, std::size_t size);
    bool on_end_of_head();
    bool on_chunk_size_line(const char* line, std::size_t size);
    Result fail(const char* reason, std::size_t consumed);
    std::optional<Result> consume_body(std::size_t size, std::size_t& pos);
    std::optional<Result> consume_line(const char* data, std::size_t size, std::size_t& pos);
    bool complete_line(const char* start, std::size_t size);
    void start_next_response() noexcept;

    State state_ = State::status_line;
    std::string line_;  // a line split across parse() calls, kept until its LF arrives
    bool response_done_ = false;
    int status_code_ = 0;
    bool http11_ = true;
    bool keep_alive_ = true;
    bool chunked_ = false;
    bool has_length_ = false;
    std::uint64_t content_length_ = 0;
    std::uint64_t remaining_ = 0;  // body or chunk bytes still to come
    std::uint64_t body_bytes_ = 0;
    std::size_t head_bytes_ = 0;
    const char* error_ = nullptr;
};

}  // namespace loadgen
