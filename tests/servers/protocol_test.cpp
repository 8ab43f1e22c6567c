// Unit tests of the protocol state machine alone: no sockets, so every byte boundary, every
// pipelined batch and every malformed shape is checked exhaustively and fast.

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdio>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/protocol.hpp"

namespace {

using sb::ByteBuffer;
using sb::FeedResult;
using sb::Protocol;
using sb::ProtocolConfig;
using sb::ProtocolSession;
using sb::ResponseSet;
using P = ResponseSet::Persistence;
using namespace std::string_literals;

constexpr std::string_view kGet = "GET / HTTP/1.1\r\nHost: example\r\nUser-Agent: test\r\n\r\n";

// What a model does with a session: keeps the unconsumed input, appends what the socket delivered,
// feeds until nothing more is consumed, and "flushes" the output (here: into `sent`).
class Driver {
public:
    explicit Driver(const ResponseSet& responses) : session_(responses) {}

    // Delivers one read's worth of bytes; returns the output produced by it.
    std::string deliver(std::string_view bytes) {
        pending_ += bytes;
        std::string produced;
        for (;;) {
            FeedResult r = session_.feed({pending_.data(), pending_.size()}, out_);
            EXPECT_LE(r.consumed, pending_.size());
            pending_.erase(0, r.consumed);
            requests_ += r.requests;
            auto bytes_out = out_.readable();
            produced.append(bytes_out.data(), bytes_out.size());
            out_.clear();
            if (r.consumed == 0 || session_.closing()) break;
        }
        sent_ += produced;
        return produced;
    }

    const std::string& sent() const { return sent_; }
    const std::string& pending() const { return pending_; }
    std::size_t requests() const { return requests_; }
    bool closing() const { return session_.closing(); }
    ProtocolSession& session() { return session_; }

private:
    ProtocolSession session_;
    ByteBuffer out_;
    std::string pending_, sent_;
    std::size_t requests_ = 0;
};

std::string run_whole(const ResponseSet& responses, std::string_view input) {
    Driver d(responses);
    d.deliver(input);
    return d.sent();
}

std::string run_split(const ResponseSet& responses, std::string_view input, std::size_t at) {
    Driver d(responses);
    d.deliver(input.substr(0, at));
    d.deliver(input.substr(at));
    return d.sent();
}

std::string run_bytewise(const ResponseSet& responses, std::string_view input) {
    Driver d(responses);
    for (char c : input) d.deliver(std::string_view(&c, 1));
    return d.sent();
}

std::string repeat(std::string_view s, std::size_t n) {
    std::string r;
    r.reserve(s.size() * n);
    for (std::size_t i = 0; i < n; ++i) r += s;
    return r;
}

class ProtocolTest : public testing::Test {
protected:
    ProtocolConfig config_;
    ResponseSet responses_{config_};

    std::string ok(P p = P::keep_alive, bool head_only = false) const { return std::string(responses_.ok(p, head_only)); }
    std::string bad_request() const { return std::string(responses_.bad_request()); }
    std::string too_large() const { return std::string(responses_.content_too_large()); }
    std::string header_too_large() const { return std::string(responses_.header_fields_too_large()); }

    // The request must get exactly `expected` whatever way its bytes arrive.
    void expect_at_every_boundary(std::string_view input, const std::string& expected) {
        EXPECT_EQ(run_whole(responses_, input), expected) << "whole";
        for (std::size_t at = 0; at <= input.size(); ++at) {
            ASSERT_EQ(run_split(responses_, input, at), expected) << "split at " << at;
        }
        EXPECT_EQ(run_bytewise(responses_, input), expected) << "byte by byte";
    }
};

// ---- the response set ----

TEST_F(ProtocolTest, OkResponseHasStatusLengthAndBody) {
    std::string r = ok();
    EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n"));
    EXPECT_NE(r.find("\r\nContent-Length: 13\r\n"), std::string::npos);
    EXPECT_TRUE(r.ends_with("\r\n\r\nHello, World!"));
    EXPECT_EQ(r.find("Connection:"), std::string::npos);
    EXPECT_NE(ok(P::close).find("\r\nConnection: close\r\n"), std::string::npos);
    EXPECT_NE(ok(P::keep_alive_http10).find("\r\nConnection: keep-alive\r\n"), std::string::npos);
}

TEST_F(ProtocolTest, ErrorResponsesCloseAndHaveNoBody) {
    for (const std::string& r : {bad_request(), too_large(), header_too_large()}) {
        EXPECT_NE(r.find("\r\nContent-Length: 0\r\n"), std::string::npos) << r;
        EXPECT_NE(r.find("\r\nConnection: close\r\n"), std::string::npos) << r;
        EXPECT_TRUE(r.ends_with("\r\n\r\n")) << r;
    }
    EXPECT_TRUE(bad_request().starts_with("HTTP/1.1 400 "));
    EXPECT_TRUE(too_large().starts_with("HTTP/1.1 413 "));
    EXPECT_TRUE(header_too_large().starts_with("HTTP/1.1 431 "));
}

// ---- byte boundaries ----

TEST_F(ProtocolTest, SimpleGetAnsweredOnce) {
    Driver d(responses_);
    EXPECT_EQ(d.deliver(kGet), ok());
    EXPECT_EQ(d.requests(), 1u);
    EXPECT_FALSE(d.closing());
    EXPECT_TRUE(d.pending().empty());
}

TEST_F(ProtocolTest, RequestSplitAtEveryByteBoundary) { expect_at_every_boundary(kGet, ok()); }

TEST_F(ProtocolTest, BareLfRequestSplitAtEveryByteBoundary) {
    expect_at_every_boundary("GET /x HTTP/1.1\nHost: a\n\n", ok());
}

TEST_F(ProtocolTest, IncompleteRequestProducesNothingAndConsumesNothing) {
    for (std::size_t n = 1; n < kGet.size(); ++n) {
        ProtocolSession s(responses_);
        ByteBuffer out;
        FeedResult r = s.feed({kGet.data(), n}, out);
        EXPECT_EQ(r.consumed, 0u) << n;
        EXPECT_EQ(r.requests, 0u) << n;
        EXPECT_TRUE(out.empty()) << n;
        EXPECT_FALSE(s.closing()) << n;
    }
}

// ---- pipelining ----

TEST_F(ProtocolTest, PipelinedBatchAnsweredInOrder) {
    constexpr std::size_t n = 50;
    Driver d(responses_);
    // The last request asks to close, so the order of the answers is visible in the last one.
    std::string input = repeat(kGet, n - 1) + "GET /last HTTP/1.1\r\nConnection: close\r\n\r\n";
    d.deliver(input);
    EXPECT_EQ(d.sent(), repeat(ok(), n - 1) + ok(P::close));
    EXPECT_EQ(d.requests(), n);
    EXPECT_TRUE(d.closing());
}

TEST_F(ProtocolTest, PipelinedMixSplitAtEveryByteBoundary) {
    std::string input = std::string(kGet) +
                        "HEAD /h HTTP/1.1\r\n\r\n"
                        "POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello" +
                        "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
                        "GET /10 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + std::string(kGet);
    std::string expected = ok() + ok(P::keep_alive, true) + ok() + ok() + ok(P::keep_alive_http10) + ok();
    expect_at_every_boundary(input, expected);
}

TEST_F(ProtocolTest, PipelinedBatchFedInEveryChunkSize) {
    std::string input = repeat(kGet, 7);
    for (std::size_t chunk = 1; chunk <= input.size(); chunk += 3) {
        Driver d(responses_);
        for (std::size_t at = 0; at < input.size(); at += chunk) d.deliver(std::string_view(input).substr(at, chunk));
        ASSERT_EQ(d.sent(), repeat(ok(), 7)) << "chunk " << chunk;
        ASSERT_EQ(d.requests(), 7u);
    }
}

// ---- keep-alive and close ----

TEST_F(ProtocolTest, Http11KeepsAliveByDefault) {
    Driver d(responses_);
    EXPECT_EQ(d.deliver(kGet), ok());
    EXPECT_FALSE(d.closing());
    EXPECT_EQ(d.deliver(kGet), ok());
}

TEST_F(ProtocolTest, Http11ExplicitKeepAliveHasNoConnectionHeader) {
    EXPECT_EQ(run_whole(responses_, "GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n"), ok());
}

TEST_F(ProtocolTest, ConnectionCloseClosesAndIgnoresTheRest) {
    Driver d(responses_);
    std::string response = d.deliver("GET / HTTP/1.1\r\nConnection: close\r\n\r\n" + std::string(kGet));
    EXPECT_EQ(response, ok(P::close));
    EXPECT_NE(response.find("\r\nConnection: close\r\n"), std::string::npos);
    EXPECT_TRUE(d.closing());
    EXPECT_EQ(d.requests(), 1u);
    EXPECT_EQ(d.deliver(kGet), "");  // nothing after the close
}

TEST_F(ProtocolTest, ConnectionHeaderIsCaseInsensitiveList) {
    Driver d(responses_);
    EXPECT_EQ(d.deliver("GET / HTTP/1.1\r\nconnection: Upgrade, CLOSE\r\n\r\n"), ok(P::close));
    EXPECT_TRUE(d.closing());
}

TEST_F(ProtocolTest, Http10ClosesByDefault) {
    Driver d(responses_);
    EXPECT_EQ(d.deliver("GET / HTTP/1.0\r\n\r\n"), ok(P::close));
    EXPECT_TRUE(d.closing());
}

TEST_F(ProtocolTest, Http10KeepAliveIsHonouredAndEchoed) {
    Driver d(responses_);
    std::string response = d.deliver("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    EXPECT_EQ(response, ok(P::keep_alive_http10));
    EXPECT_NE(response.find("\r\nConnection: keep-alive\r\n"), std::string::npos);
    EXPECT_FALSE(d.closing());
    EXPECT_EQ(d.deliver("GET / HTTP/1.0\r\n\r\n"), ok(P::close));
    EXPECT_TRUE(d.closing());
}

TEST_F(ProtocolTest, Http10KeepAliveAndCloseMeansClose) {
    Driver d(responses_);
    EXPECT_EQ(d.deliver("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"), ok(P::close));
    EXPECT_TRUE(d.closing());
}

// ---- HEAD and bodies ----

TEST_F(ProtocolTest, HeadHasNoBody) {
    std::string r = run_whole(responses_, "HEAD / HTTP/1.1\r\n\r\n");
    EXPECT_EQ(r, ok(P::keep_alive, true));
    EXPECT_TRUE(r.ends_with("\r\n\r\n"));
    EXPECT_NE(r.find("Content-Length: 13\r\n"), std::string::npos);
}

TEST_F(ProtocolTest, ContentLengthBodyConsumedAtEveryBoundary) {
    // The body looks like a request: it must not be answered as one.
    std::string body = "GET /smuggled HTTP/1.1\r\n\r\n";
    std::string input = "POST / HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body +
                        std::string(kGet);
    expect_at_every_boundary(input, ok() + ok());
}

TEST_F(ProtocolTest, ContentLengthBodyAnsweredOnlyWhenComplete) {
    Driver d(responses_);
    EXPECT_EQ(d.deliver("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345"), "");
    EXPECT_EQ(d.deliver("6789"), "");
    EXPECT_EQ(d.deliver("0"), ok());
    EXPECT_TRUE(d.pending().empty());
}

TEST_F(ProtocolTest, ZeroContentLengthAndDuplicateEqualLengths) {
    EXPECT_EQ(run_whole(responses_, "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), ok());
    EXPECT_EQ(run_whole(responses_, "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"), ok());
}

TEST_F(ProtocolTest, LargeContentLengthBodyInPieces) {
    std::string body(1000 * 1000, 'x');
    std::string input = "PUT / HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body +
                        std::string(kGet);
    Driver d(responses_);
    for (std::size_t at = 0; at < input.size(); at += 65536) d.deliver(std::string_view(input).substr(at, 65536));
    EXPECT_EQ(d.sent(), ok() + ok());
}

TEST_F(ProtocolTest, ChunkedBodyWithExtensionsAndTrailersConsumed) {
    std::string input =
        "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"
        "5;name=value\r\nhello\r\n"
        "1A ; ext\r\nabcdefghijklmnopqrstuvwxyz\r\n"
        "0\r\nX-Trailer: 1\r\nChecksum: abc\r\n\r\n" +
        std::string(kGet);
    expect_at_every_boundary(input, ok() + ok());
}

TEST_F(ProtocolTest, ChunkedBodyLooksLikeRequestIsNotAnswered) {
    std::string data = "GET /x HTTP/1.1\r\n\r\n";
    char size_hex[16];
    std::snprintf(size_hex, sizeof size_hex, "%zx", data.size());
    std::string input = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + std::string(size_hex) + "\r\n" + data +
            "\r\n0\r\n\r\n";
    Driver d(responses_);
    d.deliver(input);
    EXPECT_EQ(d.sent(), ok());
    EXPECT_EQ(d.requests(), 1u);
}

TEST_F(ProtocolTest, ChunkedBodyWithBadFramingIs400) {
    const std::string head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (std::string body : {"zz\r\n"s, "5\r\nhelloX\r\n0\r\n\r\n"s, "5 junk\r\nhello\r\n0\r\n\r\n"s,
                             "\r\n"s, "-1\r\n"s, "1\rx\r\n"s, "ffffffffffffffffff\r\n"s}) {
        Driver d(responses_);
        d.deliver(head + body);
        EXPECT_EQ(d.sent(), bad_request()) << body;
        EXPECT_TRUE(d.closing()) << body;
    }
}

// ---- 400 ----

TEST_F(ProtocolTest, MalformedRequestsGet400AndClose) {
    const std::vector<std::string> cases = {
        "GARBAGE\r\n\r\n",                                        // no spaces
        "GET /\r\n\r\n",                                          // no version
        "GET  / HTTP/1.1\r\n\r\n",                                // empty target
        "GET / HTTP/1.1 \r\n\r\n",                                // trailing space
        "G(T / HTTP/1.1\r\n\r\n",                                 // method not a token
        "GET / HTTP/2.0\r\n\r\n",                                 // bad version
        "GET / http/1.1\r\n\r\n",                                 // bad version case
        "GET / HTTP/1.1x\r\n\r\n",                                // bad version
        "GET / HTTP/1.1\r\nHost example\r\n\r\n",                 // header without colon
        "GET / HTTP/1.1\r\nHost : example\r\n\r\n",               // space before colon
        "GET / HTTP/1.1\r\n: empty-name\r\n\r\n",                 // empty header name
        "GET / HTTP/1.1\r\n folded: x\r\n\r\n",                   // obs-fold / leading space
        "GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n",                    // control char in value
        "GET / HTTP/1.1\r\nX: a\x7fz\r\n\r\n",                    // DEL in value
        "GET / HTTP/1.1\r\nX: a\0z\r\n\r\n"s,                     // NUL in value
        "GET /a\0b HTTP/1.1\r\n\r\n"s,                            // NUL in target
        "GET /a\x01 HTTP/1.1\r\n\r\n",                            // control in target
        "GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",          // bad Content-Length
        "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",           // negative
        "GET / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",           // sign
        "GET / HTTP/1.1\r\nContent-Length: \r\n\r\n",             // empty
        "GET / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",          // two numbers
        "GET / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",  // overflow
        "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",  // conflicting
        "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",  // CL + TE
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",  // TE + CL
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",                          // unknown coding
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",                 // unsupported list
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\rHost: x\r\n\r\n",                        // bare CR in request line
        "GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n",                   // bare CR in header
        "GET / HTTP/1.1\r\nHost: x\r\r\n\r\n",                    // CR CR LF
        "\rGET / HTTP/1.1\r\n\r\n",                               // bare CR before request line
    };
    for (const std::string& c : cases) {
        Driver d(responses_);
        std::string response = d.deliver(c + std::string(kGet));
        EXPECT_EQ(response, bad_request()) << testing::PrintToString(c);
        EXPECT_TRUE(d.closing()) << testing::PrintToString(c);
        EXPECT_EQ(d.requests(), 0u) << testing::PrintToString(c);
        EXPECT_EQ(d.deliver(kGet), "") << "output after an error: " << testing::PrintToString(c);
    }
}

TEST_F(ProtocolTest, MalformedRequestAfterGoodOnesAnswersTheGoodOnesFirst) {
    Driver d(responses_);
    d.deliver(std::string(kGet) + std::string(kGet) + "BAD\r\n\r\n" + std::string(kGet));
    EXPECT_EQ(d.sent(), ok() + ok() + bad_request());
    EXPECT_TRUE(d.closing());
}

TEST_F(ProtocolTest, MalformedRequestSplitAtEveryBoundaryGives400Once) {
    expect_at_every_boundary("GET / HTTP/1.1\r\nHost : x\r\n\r\n", bad_request());
}

// ---- 413 ----

TEST_F(ProtocolTest, ContentLengthOverLimitIs413) {
    const std::size_t limit = config_.max_body_bytes;
    Driver at_limit(responses_);
    at_limit.deliver("POST / HTTP/1.1\r\nContent-Length: " + std::to_string(limit) + "\r\n\r\n");
    EXPECT_EQ(at_limit.sent(), "");
    EXPECT_FALSE(at_limit.closing());

    Driver d(responses_);
    EXPECT_EQ(d.deliver("POST / HTTP/1.1\r\nContent-Length: " + std::to_string(limit + 1) + "\r\n\r\n"), too_large());
    EXPECT_TRUE(d.closing());
    EXPECT_EQ(d.deliver(std::string(100, 'x') + std::string(kGet)), "");
}

TEST_F(ProtocolTest, ChunkedTotalOverLimitIs413) {
    const std::size_t limit = config_.max_body_bytes;
    char half_hex[32];
    std::snprintf(half_hex, sizeof half_hex, "%zx", limit / 2);
    std::string chunk = std::string(half_hex) + "\r\n" + std::string(limit / 2, 'y') + "\r\n";
    Driver d(responses_);
    // Two halves reach the limit exactly: accepted.
    d.deliver("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk + chunk);
    EXPECT_EQ(d.sent(), "");
    EXPECT_FALSE(d.closing());
    // One more byte is over it.
    EXPECT_EQ(d.deliver("1\r\n"), too_large());
    EXPECT_TRUE(d.closing());
}

TEST_F(ProtocolTest, SingleHugeChunkIs413) {
    Driver d(responses_);
    EXPECT_EQ(d.deliver("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\n"), too_large());
    EXPECT_TRUE(d.closing());
}

// ---- 431 ----

TEST_F(ProtocolTest, HeadAtTheLimitIsAccepted) {
    std::string head = "GET / HTTP/1.1\r\nX: ";
    const std::string end = "\r\n\r\n";
    head += std::string(config_.max_header_bytes - head.size() - end.size(), 'a') + end;
    ASSERT_EQ(head.size(), config_.max_header_bytes);
    EXPECT_EQ(run_whole(responses_, head), ok());
}

TEST_F(ProtocolTest, CompleteHeadOverLimitIs431) {
    std::string head = "GET / HTTP/1.1\r\nX: " + std::string(config_.max_header_bytes, 'a') + "\r\n\r\n";
    Driver d(responses_);
    EXPECT_EQ(d.deliver(head + std::string(kGet)), header_too_large());
    EXPECT_TRUE(d.closing());
    EXPECT_EQ(d.deliver(kGet), "");
}

TEST_F(ProtocolTest, HeadOneByteOverLimitIs431) {
    std::string head = "GET / HTTP/1.1\r\nX: ";
    const std::string end = "\r\n\r\n";
    head += std::string(config_.max_header_bytes + 1 - head.size() - end.size(), 'a') + end;
    EXPECT_EQ(run_whole(responses_, head), header_too_large());
}

TEST_F(ProtocolTest, IncompleteHeadOverLimitIs431) {
    Driver d(responses_);
    std::string start = "GET / HTTP/1.1\r\nX: ";
    d.deliver(start);
    std::string filler(1000, 'a');
    while (d.sent().empty() && d.pending().size() <= config_.max_header_bytes + filler.size()) d.deliver(filler);
    EXPECT_EQ(d.sent(), header_too_large());
    EXPECT_TRUE(d.closing());
}

TEST_F(ProtocolTest, ManyHeaderLinesTrickledOverLimitIs431) {
    Driver d(responses_);
    d.deliver("GET / HTTP/1.1\r\n");
    for (int i = 0; i < 2000 && d.sent().empty(); ++i) d.deliver("X-Header: value\r\n");
    EXPECT_EQ(d.sent(), header_too_large());
}

// ---- leading empty lines ----

TEST_F(ProtocolTest, LeadingEmptyLinesIgnored) {
    expect_at_every_boundary("\r\n\r\n\n" + std::string(kGet), ok());
    // A CRLF after a body, as some clients send, is not a request.
    expect_at_every_boundary("POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab\r\n" + std::string(kGet), ok() + ok());
}

// ---- output high-water ----

TEST_F(ProtocolTest, HugePipelinedBatchStopsAtHighWaterAndResumes) {
    const std::size_t n = 2 * config_.output_high_water / ok().size() + 100;
    const std::string input = repeat(kGet, n);
    ProtocolSession s(responses_);
    ByteBuffer out;
    FeedResult first = s.feed({input.data(), input.size()}, out);
    EXPECT_GT(first.requests, 0u);
    EXPECT_LT(first.requests, n);
    EXPECT_GE(out.size(), config_.output_high_water);
    EXPECT_LT(out.size(), config_.output_high_water + ok().size() + 1);
    EXPECT_EQ(first.consumed, first.requests * kGet.size());
    EXPECT_EQ(out.size(), first.requests * ok().size());

    // With the output still full, nothing more is produced.
    FeedResult blocked = s.feed(std::span<const char>(input).subspan(first.consumed), out);
    EXPECT_EQ(blocked.consumed, 0u);
    EXPECT_EQ(blocked.requests, 0u);

    // Flushed, the rest follows, in pieces, until everything is answered exactly once.
    std::string all(out.readable().data(), out.size());
    out.clear();
    std::size_t consumed = first.consumed, requests = first.requests;
    while (consumed < input.size()) {
        FeedResult r = s.feed(std::span<const char>(input).subspan(consumed), out);
        ASSERT_GT(r.consumed, 0u);
        EXPECT_LT(out.size(), config_.output_high_water + ok().size() + 1);
        consumed += r.consumed;
        requests += r.requests;
        all.append(out.readable().data(), out.size());
        out.clear();
    }
    EXPECT_EQ(requests, n);
    EXPECT_EQ(all, repeat(ok(), n));
}

TEST(ProtocolHighWater, SmallHighWaterStillAnswersEverything) {
    ProtocolConfig config;
    config.output_high_water = 1;  // one response per feed
    ResponseSet responses(config);
    Driver d(responses);
    d.deliver(repeat(kGet, 20));
    EXPECT_EQ(d.requests(), 20u);
    EXPECT_EQ(d.sent(), repeat(responses.ok(P::keep_alive, false), 20));
}

// ---- property: how the bytes arrive never changes what is answered ----

// Inputs built from valid requests, near-misses and stray bytes, each fed whole and in random
// pieces: the output must be identical (the state machine carries nothing across feeds that the
// bytes themselves do not).
TEST_F(ProtocolTest, RandomInputsGiveTheSameOutputHoweverSplit) {
    const std::vector<std::string> pieces = {
        std::string(kGet),
        "HEAD / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
        "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nab\r\n0\r\nT: v\r\n\r\n",
        "\r\n", "\n", "\r", "\n\n", "GET", " ", ":", "HTTP/1.1", "X: y\r\n", std::string(1, '\0'), "\x7f",
        "Content-Length: 3\r\n", "Transfer-Encoding: chunked\r\n", "Connection: close\r\n", "0\r\n",
    };
    std::mt19937 rng(2024);
    for (int iteration = 0; iteration < 3000; ++iteration) {
        std::string input;
        const std::size_t count = 1 + rng() % 8;
        for (std::size_t i = 0; i < count; ++i) input += pieces[rng() % pieces.size()];
        const std::string whole = run_whole(responses_, input);
        Driver d(responses_);
        for (std::size_t at = 0; at < input.size();) {
            std::size_t n = 1 + rng() % 6;
            d.deliver(std::string_view(input).substr(at, n));
            at += n;
        }
        ASSERT_EQ(d.sent(), whole) << testing::PrintToString(input);
        ASSERT_EQ(run_bytewise(responses_, input), whole) << testing::PrintToString(input);
    }
}

// ---- --response-bytes ----

class ResponseBytesTest : public testing::TestWithParam<std::size_t> {};

TEST_P(ResponseBytesTest, ExactContentLengthAndBody) {
    ProtocolConfig config;
    config.response_bytes = GetParam();
    ResponseSet responses(config);
    std::string r = run_whole(responses, kGet);
    auto head_end = r.find("\r\n\r\n");
    ASSERT_NE(head_end, std::string::npos);
    std::string head = r.substr(0, head_end + 2);
    std::string body = r.substr(head_end + 4);
    EXPECT_NE(head.find("\r\nContent-Length: " + std::to_string(GetParam()) + "\r\n"), std::string::npos) << head;
    ASSERT_EQ(body.size(), GetParam());
    for (std::size_t i = 0; i < body.size(); ++i) ASSERT_EQ(body[i], "Hello, World!"[i % 13]) << i;
    // HEAD: the same head, no body.
    EXPECT_EQ(run_whole(responses, "HEAD / HTTP/1.1\r\n\r\n"), head + "\r\n");
}

INSTANTIATE_TEST_SUITE_P(Sizes, ResponseBytesTest, testing::Values(0, 1, 13, 100000));

// ---- echo ----

class EchoTest : public testing::Test {
protected:
    static ProtocolConfig echo_config() {
        ProtocolConfig config;
        config.protocol = Protocol::echo;
        return config;
    }
    ProtocolConfig config_ = echo_config();
    ResponseSet responses_{config_};
};

TEST_F(EchoTest, AllByteValuesComeBackIdentical) {
    std::string data;
    for (int round = 0; round < 4; ++round) {
        for (int b = 0; b < 256; ++b) data.push_back(static_cast<char>(b));
    }
    data += "\0\0\r\n\r\nGET / HTTP/1.1\r\n\r\n\0"s;
    EXPECT_EQ(run_whole(responses_, data), data);
    EXPECT_EQ(run_bytewise(responses_, data), data);
    for (std::size_t at = 0; at <= data.size(); at += 7) ASSERT_EQ(run_split(responses_, data, at), data) << at;
}

TEST_F(EchoTest, RandomReadsComeBackInOrder) {
    std::mt19937 rng(42);
    std::string data(300 * 1000, '\0');
    for (char& c : data) c = static_cast<char>(rng());
    Driver d(responses_);
    for (std::size_t at = 0; at < data.size();) {
        std::size_t n = 1 + rng() % 5000;
        d.deliver(std::string_view(data).substr(at, n));
        at += n;
    }
    EXPECT_EQ(d.sent(), data);
    EXPECT_FALSE(d.closing());
}

TEST_F(EchoTest, NeverCloses) {
    Driver d(responses_);
    EXPECT_EQ(d.deliver("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"), "GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    EXPECT_FALSE(d.closing());
    EXPECT_EQ(d.deliver("BAD\r\n\r\n"), "BAD\r\n\r\n");
}

TEST_F(EchoTest, StopsAtHighWater) {
    ProtocolSession s(responses_);
    ByteBuffer out;
    std::string big(config_.output_high_water, 'z');
    FeedResult r = s.feed({big.data(), big.size()}, out);
    EXPECT_EQ(r.consumed, big.size());
    FeedResult blocked = s.feed({big.data(), big.size()}, out);
    EXPECT_EQ(blocked.consumed, 0u);
    out.clear();
    EXPECT_EQ(s.feed({big.data(), 10}, out).consumed, 10u);
}

TEST_F(EchoTest, EmptyFeedProducesNothing) {
    ProtocolSession s(responses_);
    ByteBuffer out;
    FeedResult r = s.feed({}, out);
    EXPECT_EQ(r.consumed, 0u);
    EXPECT_TRUE(out.empty());
}

}  // namespace
