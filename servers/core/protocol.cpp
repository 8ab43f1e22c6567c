#include "protocol.hpp"

#include <strings.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <string_view>

namespace sb {
namespace {

constexpr std::string_view kServerHeader = "Server: serverbench\r\n";

std::string make_body(std::size_t bytes) {
    constexpr std::string_view pattern = "Hello, World!";
    std::string body;
    body.reserve(bytes);
    while (body.size() < bytes) body.append(pattern.substr(0, std::min(pattern.size(), bytes - body.size())));
    return body;
}

std::string make_error(std::string_view status_line) {
    std::string r{status_line};
    r += "\r\n";
    r += kServerHeader;
    r += "Content-Length: 0\r\nConnection: close\r\n\r\n";
    return r;
}

// RFC 9110 token characters: what a method or a header name may contain.
bool is_tchar(unsigned char c) {
    static constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           extra.find(static_cast<char>(c)) != std::string_view::npos;
}

bool is_token(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return is_tchar(static_cast<unsigned char>(c)); });
}

bool is_field_value(std::string_view s) {
    return std::none_of(s.begin(), s.end(), [](char ch) {
        auto c = static_cast<unsigned char>(ch);
        return (c < 0x20 && c != '\t') || c == 0x7f;
    });
}

std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// Strips the line ending ("\r\n" or a bare "\n"); a CR anywhere else makes the line invalid.
std::optional<std::string_view> strip_eol(std::string_view line) {
    line.remove_suffix(1);  // '\n'
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find('\r') != std::string_view::npos) return std::nullopt;
    return line;
}

// Calls f(token) for each comma-separated element of a header list value.
template <class F>
void for_each_list_element(std::string_view value, F&& f) {
    while (!value.empty()) {
        std::size_t comma = value.find(',');
        f(trim_ows(value.substr(0, comma)));
        if (comma == std::string_view::npos) break;
        value.remove_prefix(comma + 1);
    }
}

std::optional<std::size_t> parse_decimal(std::string_view s) {
    if (s.empty() || s.size() > 18) return std::nullopt;
    std::size_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<std::size_t>(c - '0');
    }
    return v;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Finds the end of a request head (the empty line), starting the search at `from`. Returns the
// head's length including the empty line, or 0 when it is not complete yet; `resume` is where the
// next search may start, so a head that trickles in byte by byte is scanned once, not quadratically.
std::size_t find_head_end(std::string_view in, std::size_t from, std::size_t& resume) {
    std::size_t pos = from;
    while (pos < in.size()) {
        const void* nl = std::memchr(in.data() + pos, '\n', in.size() - pos);
        if (nl == nullptr) break;
        std::size_t i = static_cast<std::size_t>(static_cast<const char*>(nl) - in.data());
        if (i + 1 < in.size() && in[i + 1] == '\n') return i + 2;
        if (i + 2 < in.size() && in[i + 1] == '\r' && in[i + 2] == '\n') return i + 3;
        if (i + 1 == in.size() || (i + 2 == in.size() && in[i + 1] == '\r')) {
            resume = i;  // the empty line may still arrive right after this newline
            return 0;
        }
        pos = i + 1;
    }
    resume = in.size();
    return 0;
}

// What a request head says that the session acts on.
struct RequestHead {
    bool http10 = false;
    bool head_only = false;  // HEAD: the response carries no body
    std::optional<std::size_t> content_length;
    bool chunked = false;
    bool wants_close = false;
    bool wants_keep_alive = false;
};

// Request line: method SP target SP HTTP/1.x. False when malformed.
bool parse_request_line(std::string_view line, RequestHead& head) {
    const std::size_t sp1 = line.find(' ');
    const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) return false;
    const std::string_view method = line.substr(0, sp1);
    const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string_view version = line.substr(sp2 + 1);
    const bool target_ok = !target.empty() && std::none_of(target.begin(), target.end(), [](char ch) {
        auto c = static_cast<unsigned char>(ch);
        return c <= 0x20 || c == 0x7f;
    });
    head.http10 = version == "HTTP/1.0";
    head.head_only = method == "HEAD";
    return is_token(method) && target_ok && (head.http10 || version == "HTTP/1.1");
}

// One header field line. False when malformed, or when it contradicts the framing so far.
bool parse_header(std::string_view line, RequestHead& head) {
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return false;
    const std::string_view name = line.substr(0, colon);
    const std::string_view value = trim_ows(line.substr(colon + 1));
    if (!is_token(name) || !is_field_value(value)) return false;

    if (iequals(name, "content-length")) {
        const auto length = parse_decimal(value);
        if (!length || (head.content_length && *head.content_length != *length)) return false;
        head.content_length = length;
    } else if (iequals(name, "transfer-encoding")) {
        // Only "chunked" alone is understood; any other coding would leave the body's end unknown.
        if (head.chunked || !iequals(value, "chunked")) return false;
        head.chunked = true;
    } else if (iequals(name, "connection")) {
        for_each_list_element(value, [&head](std::string_view option) {
            head.wants_close |= iequals(option, "close");
            head.wants_keep_alive |= iequals(option, "keep-alive");
        });
    }
    return true;
}

// A whole head (request line, header lines, empty line). False when malformed; both framings at
// once (Content-Length and Transfer-Encoding) is the request-smuggling shape, refused too.
bool parse_request_head(std::string_view text, RequestHead& head) {
    auto next_line = [&text]() -> std::optional<std::string_view> {
        const std::size_t nl = text.find('\n');
        const std::string_view line = text.substr(0, nl + 1);
        text.remove_prefix(nl + 1);
        return strip_eol(line);
    };
    const auto request_line = next_line();
    if (!request_line || !parse_request_line(*request_line, head)) return false;
    for (;;) {
        const auto line = next_line();
        if (!line) return false;
        if (line->empty()) return !(head.content_length && head.chunked);
        if (!parse_header(*line, head)) return false;
    }
}

}  // namespace

ResponseSet::ResponseSet(const ProtocolConfig& config) : config_(config) {
    constexpr std::string_view connection_headers[] = {"", "Connection: keep-alive\r\n",
                                                       "Connection: close\r\n"};
    const std::string body = make_body(config.response_bytes);
    for (int i = 0; i < 3; ++i) {
        std::string& r = ok_[i];
        r = "HTTP/1.1 200 OK\r\n";
        r += kServerHeader;
        r += "Content-Type: text/plain\r\nContent-Length: ";
        r += std::to_string(config.response_bytes);
        r += "\r\n";
        r += connection_headers[i];
        r += "\r\n";
        ok_head_length_[i] = r.size();
        r += body;
    }
    bad_request_ = make_error("HTTP/1.1 400 Bad Request");
    content_too_large_ = make_error("HTTP/1.1 413 Content Too Large");
    header_too_large_ = make_error("HTTP/1.1 431 Request Header Fields Too Large");
}

std::string_view ResponseSet::ok(Persistence p, bool head_only) const noexcept {
    auto i = static_cast<std::size_t>(p);
    std::string_view r = ok_[i];
    return head_only ? r.substr(0, ok_head_length_[i]) : r;
}

FeedResult ProtocolSession::feed(std::span<const char> in, ByteBuffer& out) {
    if (responses_->config().protocol == Protocol::echo) return feed_echo(in, out);

    FeedResult result;
    const std::size_t high_water = responses_->config().output_high_water;
    while (state_ != State::closed && result.consumed < in.size() && out.size() < high_water) {
        std::span<const char> rest = in.subspan(result.consumed);
        std::size_t used = state_ == State::head ? parse_head(rest, out, result.requests)
                                                 : skip_body(rest, out, result.requests);
        if (used == 0) break;
        result.consumed += used;
    }
    return result;
}

FeedResult ProtocolSession::feed_echo(std::span<const char> in, ByteBuffer& out) {
    if (in.empty() || out.size() >= responses_->config().output_high_water) return {};
    out.append({in.data(), in.size()});
    return {in.size(), 1};
}

std::size_t ProtocolSession::parse_head(std::span<const char> bytes, ByteBuffer& out, std::size_t& requests) {
    const std::string_view in{bytes.data(), bytes.size()};
    const std::size_t max_header = responses_->config().max_header_bytes;

    if (scanned_ == 0 && (in[0] == '\n' || in[0] == '\r')) {
        // RFC 9112 2.2: ignore empty lines before a request line (some clients send a CRLF after a body).
        if (in[0] == '\n') return 1;
        if (in.size() < 2) return 0;
        if (in[1] == '\n') return 2;
        return fail(responses_->bad_request(), out);
    }

    const std::size_t head_length = find_head_end(in, scanned_, scanned_);
    if (head_length == 0) {
        return in.size() > max_header ? fail(responses_->header_fields_too_large(), out) : 0;
    }
    scanned_ = 0;
    if (head_length > max_header) return fail(responses_->header_fields_too_large(), out);

    RequestHead head;
    if (!parse_request_head(in.substr(0, head_length), head)) return fail(responses_->bad_request(), out);
    if (head.content_length && *head.content_length > responses_->config().max_body_bytes) {
        return fail(responses_->content_too_large(), out);
    }

    using P = ResponseSet::Persistence;
    persistence_ = head.wants_close        ? P::close
                   : !head.http10          ? P::keep_alive
                   : head.wants_keep_alive ? P::keep_alive_http10
                                           : P::close;
    head_only_ = head.head_only;
    body_total_ = 0;
    if (head.chunked) {
        state_ = State::chunk_size;
    } else if (head.content_length.value_or(0) > 0) {
        body_remaining_ = *head.content_length;
        state_ = State::body;
    } else {
        finish_request(out, requests);
    }
    return head_length;
}

std::size_t ProtocolSession::skip_body(std::span<const char> bytes, ByteBuffer& out, std::size_t& requests) {
    const std::string_view in{bytes.data(), bytes.size()};
    switch (state_) {
        case State::body:
        case State::chunk_data: {
            std::size_t n = std::min(body_remaining_, in.size());
            body_remaining_ -= n;
            if (body_remaining_ == 0) {
                if (state_ == State::body)
                    finish_request(out, requests);
                else
                    state_ = State::chunk_data_end;
            }
            return n;
        }
        case State::chunk_data_end: {  // the line ending after a chunk's data
            std::size_t eol = in[0] == '\n' ? 1 : in.starts_with("\r\n") ? 2 : 0;
            if (eol == 0 && in == "\r") return 0;  // its LF is still to come
            if (eol == 0) return fail(responses_->bad_request(), out);
            state_ = State::chunk_size;
            return eol;
        }
        case State::chunk_size:
        case State::trailer: {
            constexpr std::size_t max_line = 1024;
            std::size_t nl = in.find('\n');
            if (nl == std::string_view::npos) {
                return in.size() > max_line ? fail(responses_->bad_request(), out) : 0;
            }
            auto line = strip_eol(in.substr(0, nl + 1));
            if (!line || nl > max_line) return fail(responses_->bad_request(), out);
            if (state_ == State::trailer) {
                if (line->empty()) finish_request(out, requests);  // trailer fields themselves are discarded
                return nl + 1;
            }
            // chunk-size [; chunk-ext]
            std::size_t size = 0, digits = 0;
            for (; digits < line->size() && hex_digit((*line)[digits]) >= 0; ++digits) {
                if (digits == 15) return fail(responses_->bad_request(), out);
                size = size * 16 + static_cast<std::size_t>(hex_digit((*line)[digits]));
            }
            std::string_view extension = trim_ows(line->substr(digits));
            if (digits == 0 || (!extension.empty() && extension.front() != ';')) {
                return fail(responses_->bad_request(), out);
            }
            body_total_ += size;
            if (body_total_ > responses_->config().max_body_bytes)
                return fail(responses_->content_too_large(), out);
            body_remaining_ = size;
            state_ = size == 0 ? State::trailer : State::chunk_data;
            return nl + 1;
        }
        case State::head:
        case State::closed:
            break;
    }
    return 0;
}

void ProtocolSession::finish_request(ByteBuffer& out, std::size_t& requests) {
    out.append(responses_->ok(persistence_, head_only_));
    ++requests;
    state_ = persistence_ == ResponseSet::Persistence::close ? State::closed : State::head;
}

std::size_t ProtocolSession::fail(std::string_view response, ByteBuffer& out) {
    out.append(response);
    state_ = State::closed;
    return 0;  // nothing after a malformed request is read
}

}  // namespace sb
