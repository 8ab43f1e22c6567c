#include "loadgen/http_response_parser.hpp"

#include <algorithm>
#include <cstring>
#include <optional>
#include <string_view>

namespace loadgen {
namespace {

constexpr std::size_t kMaxHead = 64 * 1024;
constexpr std::string_view kVersionPrefix = "HTTP/1.";

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

// True if the comma-separated header value holds `token` (case-insensitive).
bool has_token(std::string_view value, std::string_view token) {
    while (!value.empty()) {
        std::size_t comma = value.find(',');
        std::string_view item = value.substr(0, comma);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
        if (iequals(item, token)) return true;
        if (comma == std::string_view::npos) break;
        value.remove_prefix(comma + 1);
    }
    return false;
}

bool parse_decimal(std::string_view s, std::uint64_t& out) {
    if (s.empty() || s.size() > 18) return false;
    std::uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    out = v;
    return true;
}

}  // namespace

void HttpResponseParser::reset() noexcept {
    state_ = State::status_line;
    line_.clear();
    error_ = nullptr;
    start_next_response();
}

void HttpResponseParser::start_next_response() noexcept {
    status_code_ = 0;
    http11_ = true;
    keep_alive_ = true;
    chunked_ = false;
    has_length_ = false;
    content_length_ = remaining_ = body_bytes_ = 0;
    head_bytes_ = 0;
}

HttpResponseParser::Result HttpResponseParser::fail(const char* reason, std::size_t consumed) {
    state_ = State::failed;
    error_ = reason;
    return {Status::error, consumed};
}

HttpResponseParser::Result HttpResponseParser::parse(const char* data, std::size_t size) {
    if (state_ == State::failed) return {Status::error, 0};
    std::size_t pos = 0;
    response_done_ = false;
    while (pos < size) {
        std::optional<Result> result;
        switch (state_) {
            case State::body_length:
            case State::chunk_data:
                result = consume_body(size, pos);
                break;
            case State::body_until_eof:
                body_bytes_ += size - pos;
                return {Status::need_more, size};
            case State::failed:
                return {Status::error, pos};
            default:
                result = consume_line(data, size, pos);
                break;
        }
        if (result) return *result;
    }
    return {Status::need_more, pos};
}

// Counted body bytes (a Content-Length body or a chunk's data): they are skipped, not read.
std::optional<HttpResponseParser::Result> HttpResponseParser::consume_body(std::size_t size,
                                                                           std::size_t& pos) {
    const std::uint64_t take = std::min<std::uint64_t>(remaining_, size - pos);
    pos += static_cast<std::size_t>(take);
    remaining_ -= take;
    body_bytes_ += take;
    if (remaining_ != 0) return std::nullopt;
    if (state_ == State::chunk_data) {
        state_ = State::chunk_data_end;
        return std::nullopt;
    }
    state_ = State::status_line;
    return Result{Status::complete, pos};
}

// A line-oriented state: find the LF; a line split across calls is kept in line_.
std::optional<HttpResponseParser::Result> HttpResponseParser::consume_line(const char* data, std::size_t size,
                                                                           std::size_t& pos) {
    const char* start = data + pos;
    const auto* lf = static_cast<const char*>(std::memchr(start, '\n', size - pos));
    const std::size_t avail = lf ? static_cast<std::size_t>(lf - start) + 1 : size - pos;
    head_bytes_ += avail;
    if (head_bytes_ > kMaxHead && state_ != State::chunk_size && state_ != State::chunk_data_end)
        return fail("response head too large", pos + avail);
    if (line_.size() + avail > kMaxLine) return fail("line too long", pos + avail);
    // A status line starts "HTTP/1.": checked as its first bytes arrive, so garbage
    // without a line feed is an error now, not a 16 KiB wait (or a timeout) later.
    if (state_ == State::status_line && line_.size() < kVersionPrefix.size()) {
        const std::size_t have = line_.size();
        const std::size_t check = std::min(kVersionPrefix.size() - have, avail);
        if (std::memcmp(start, kVersionPrefix.data() + have, check) != 0)
            return fail("malformed status line", pos + avail);
    }
    pos += avail;
    if (!lf) {
        line_.append(start, avail);
        return Result{Status::need_more, pos};
    }
    if (!complete_line(start, avail - 1)) return fail(error_, pos);
    if (!response_done_) return std::nullopt;
    response_done_ = false;
    return Result{Status::complete, pos};
}

// The line is `size` bytes at `start` (its LF excluded), after what line_ holds of it.
bool HttpResponseParser::complete_line(const char* start, std::size_t size) {
    if (line_.empty()) return on_line(start, size);
    line_.append(start, size);
    const bool ok = on_line(line_.data(), line_.size());
    line_.clear();
    return ok;
}

HttpResponseParser::Status HttpResponseParser::finish_on_eof() {
    if (state_ == State::body_until_eof) {
        state_ = State::status_line;
        keep_alive_ = false;
        return Status::complete;
    }
    if (!in_progress()) return Status::need_more;
    state_ = State::failed;
    error_ = "connection closed mid-response";
    return Status::error;
}

bool HttpResponseParser::on_line(const char* line, std::size_t size) {
    if (size > 0 && line[size - 1] == '\r') --size;  // CRLF, or a bare LF from lenient servers
    switch (state_) {
        case State::status_line:
            return on_status_line(line, size);
        case State::header_line:
            return on_header_line(line, size);
        case State::chunk_size:
            return on_chunk_size_line(line, size);
        case State::chunk_data_end:
            if (size != 0) {
                error_ = "chunk data longer than its size";
                return false;
            }
            state_ = State::chunk_size;
            return true;
        case State::trailer_line:
            if (size == 0) {
                state_ = State::status_line;
                response_done_ = true;
            }
            return true;
        default:
            error_ = "internal parser state";
            return false;
    }
}

bool HttpResponseParser::on_status_line(const char* line, std::size_t size) {
    // "HTTP/1.1 200 OK": version, one space, three digits, then a space or the end.
    const std::string_view s(line, size);
    if (s.size() < 12 || s.compare(0, 7, "HTTP/1.") != 0 || (s[7] != '0' && s[7] != '1') || s[8] != ' ' ||
        s[9] < '1' || s[9] > '5' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9' ||
        (s.size() > 12 && s[12] != ' ')) {
        error_ = "malformed status line";
        return false;
    }
    start_next_response();
    http11_ = s[7] == '1';
    keep_alive_ = http11_;
    status_code_ = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    head_bytes_ = size;
    state_ = State::header_line;
    return true;
}

bool HttpResponseParser::on_header_line(const char* line, std::size_t size) {
    if (size == 0) return on_end_of_head();
    const std::string_view s(line, size);
    const std::size_t colon = s.find(':');
    if (colon == 0 || colon == std::string_view::npos || s[0] == ' ' || s[0] == '\t') {
        error_ = "malformed header line";
        return false;
    }
    const std::string_view name = s.substr(0, colon);
    std::string_view value = s.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    switch (name.size()) {
        case 14:
            if (iequals(name, "content-length")) {
                std::uint64_t length;
                if (!parse_decimal(value, length) || (has_length_ && length != content_length_)) {
                    error_ = "bad Content-Length";
                    return false;
                }
                has_length_ = true;
                content_length_ = length;
            }
            break;
        case 17:
            if (iequals(name, "transfer-encoding")) chunked_ = has_token(value, "chunked");
            break;
        case 10:
            if (iequals(name, "connection")) {
                if (has_token(value, "close"))
                    keep_alive_ = false;
                else if (has_token(value, "keep-alive"))
                    keep_alive_ = true;
            }
            break;
        default:
            break;
    }
    return true;
}

bool HttpResponseParser::on_end_of_head() {
    if (status_code_ < 200) {  // interim (100 Continue, 103 Early Hints): the real one follows
        state_ = State::status_line;
        return true;
    }
    if (status_code_ == 204 || status_code_ == 304) {
        state_ = State::status_line;
        response_done_ = true;
    } else if (chunked_) {
        state_ = State::chunk_size;
    } else if (has_length_) {
        remaining_ = content_length_;
        if (remaining_ == 0) {
            state_ = State::status_line;
            response_done_ = true;
        } else {
            state_ = State::body_length;
        }
    } else {
        state_ = State::body_until_eof;
        keep_alive_ = false;
    }
    return true;
}

bool HttpResponseParser::on_chunk_size_line(const char* line, std::size_t size) {
    std::uint64_t chunk = 0;
    std::size_t i = 0;
    for (; i < size; ++i) {
        const char c = line[i];
        int digit;
        if (c >= '0' && c <= '9')
            digit = c - '0';
        else if (c >= 'a' && c <= 'f')
            digit = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            digit = c - 'A' + 10;
        else
            break;
        if (i >= 15) {
            error_ = "chunk size too large";
            return false;
        }
        chunk = chunk * 16 + static_cast<std::uint64_t>(digit);
    }
    if (i == 0 || (i < size && line[i] != ';' && line[i] != ' ' && line[i] != '\t')) {
        error_ = "malformed chunk size";
        return false;
    }
    if (chunk == 0) {
        state_ = State::trailer_line;
    } else {
        remaining_ = chunk;
        state_ = State::chunk_data;
    }
    return true;
}

}  // namespace loadgen
