// The project's own per-request code, with no socket in the way: the HTTP parser and response
// writer (sb::ProtocolSession::feed into an sb::ByteBuffer) and the echo path. This is the floor
// under every model's µs/request: whatever a model costs on top is its concurrency.

#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/byte_buffer.hpp"
#include "core/protocol.hpp"

namespace {

// What wrk, curl or the load generator send: a small GET with a few headers, keep-alive.
constexpr std::string_view kRequest =
    "GET /index.html HTTP/1.1\r\n"
    "Host: 127.0.0.1:8080\r\n"
    "User-Agent: serverbench-loadgen\r\n"
    "Accept: */*\r\n"
    "\r\n";

// Feeds `input` once per iteration, as a server does per read; the response is appended to the
// connection's output buffer, which a server would then write and empty.
void feed_repeatedly(benchmark::State& state, const sb::ProtocolConfig& config, std::span<const char> input,
                     std::size_t requests_per_feed) {
    const sb::ResponseSet responses(config);
    sb::ProtocolSession session(responses);
    sb::ByteBuffer out(64 * 1024);
    const sb::FeedResult first = session.feed(input, out);  // also warms the buffer up
    out.clear();
    if (first.consumed != input.size() || first.requests != requests_per_feed || session.closing()) {
        state.SkipWithError("the session did not consume the input as whole requests");
        return;
    }
    for (auto _ : state) {
        const sb::FeedResult result = session.feed(input, out);
        benchmark::DoNotOptimize(result);
        benchmark::DoNotOptimize(out.readable().data());
        out.clear();
    }
    state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(requests_per_feed));
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(input.size()));
}

void BM_HttpParseSingle(benchmark::State& state) {
    feed_repeatedly(state, sb::ProtocolConfig{}, kRequest, 1);
}
BENCHMARK(BM_HttpParseSingle);

// A batch of pipelined requests arriving in one read; per request time is the `per_request`
// counter (and items_per_second).
void BM_HttpParsePipelined(benchmark::State& state) {
    const auto depth = static_cast<std::size_t>(state.range(0));
    std::string batch;
    for (std::size_t i = 0; i < depth; ++i) batch += kRequest;
    feed_repeatedly(state, sb::ProtocolConfig{}, batch, depth);
    state.counters["per_request"] = benchmark::Counter(
        static_cast<double>(depth), benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_HttpParsePipelined)->Arg(16);

// Echo: every byte read is appended to the output, so the cost is a copy of the read size.
void BM_EchoPath(benchmark::State& state) {
    const std::vector<char> message(static_cast<std::size_t>(state.range(0)), 'x');
    sb::ProtocolConfig config;
    config.protocol = sb::Protocol::echo;
    feed_repeatedly(state, config, message, 1);  // one read echoed per feed
}
BENCHMARK(BM_EchoPath)->Arg(64)->Arg(16384);

}  // namespace
