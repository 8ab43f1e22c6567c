// libFuzzer target for the load generator's HTTP response parser (loadgen/http_response_parser.*):
// whatever a server sends, the parser must neither crash nor loop, must account for every byte,
// and must give the same answers however the bytes are split across reads.
//
// Input: byte 0 picks the chunk size of the split feed (1..256); the rest is the response stream.
// The stream is parsed twice, whole and in chunks, and the two sequences of outcomes (status code,
// body length, keep-alive per response; then the end: error, or what EOF makes of it) must match.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "loadgen/http_response_parser.hpp"

namespace {

using loadgen::HttpResponseParser;

struct Outcome {
    int status_code;
    std::uint64_t body_bytes;
    bool keep_alive;
    bool operator==(const Outcome&) const = default;
};

struct Transcript {
    std::vector<Outcome> responses;
    bool failed = false;
    HttpResponseParser::Status at_eof = HttpResponseParser::Status::need_more;
    bool operator==(const Transcript&) const = default;
};

void check(bool condition) {
    if (!condition) std::abort();  // libFuzzer keeps the input that did it
}

// Feeds `data` in pieces of at most `chunk` bytes, as the engine does after each read: parse()
// until the piece is used up, then the next read.
Transcript parse_in_chunks(const std::uint8_t* data, std::size_t size, std::size_t chunk) {
    HttpResponseParser parser;
    Transcript t;
    std::size_t offset = 0;
    while (offset < size && !t.failed) {
        const std::size_t piece_end = offset + std::min(chunk, size - offset);
        while (offset < piece_end) {
            const auto* bytes = reinterpret_cast<const char*>(data + offset);
            const auto r = parser.parse(bytes, piece_end - offset);
            check(r.consumed <= piece_end - offset);
            offset += r.consumed;
            if (r.status == HttpResponseParser::Status::error) {
                check(parser.error_reason() != nullptr);
                t.failed = true;
                break;
            }
            if (r.status == HttpResponseParser::Status::need_more) {
                check(offset == piece_end);  // need_more means it took the whole piece
                break;
            }
            check(r.consumed > 0);  // a complete response used at least one byte: no endless loop
            check(parser.status_code() >= 200 && parser.status_code() <= 599);
            t.responses.push_back({parser.status_code(), parser.body_bytes(), parser.keep_alive()});
        }
    }
    if (!t.failed) {
        const bool started = parser.in_progress();
        t.at_eof = parser.finish_on_eof();
        if (t.at_eof == HttpResponseParser::Status::complete) {
            t.responses.push_back({parser.status_code(), parser.body_bytes(), parser.keep_alive()});
            check(!parser.keep_alive());  // a body ended by the close cannot be kept alive
        }
        check(started || t.at_eof == HttpResponseParser::Status::need_more);
    }
    // After an error the parser stays failed: it never reports a response from a broken stream.
    if (t.failed) {
        const char byte = 'H';
        check(parser.parse(&byte, 1).status == HttpResponseParser::Status::error);
    }
    return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::size_t chunk = static_cast<std::size_t>(data[0]) + 1;
    ++data;
    --size;
    const Transcript whole = parse_in_chunks(data, size, size == 0 ? 1 : size);
    const Transcript split = parse_in_chunks(data, size, chunk);
    check(whole == split);

    // reset() makes a used parser as good as new.
    HttpResponseParser reused;
    reused.parse(reinterpret_cast<const char*>(data), size);
    reused.reset();
    check(!reused.in_progress());
    return 0;
}
