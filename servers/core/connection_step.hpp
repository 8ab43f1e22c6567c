#pragma once
// What a connection does with the bytes it receives, free of any I/O: the readiness loops
// (core/event_loop.*) and io_uring's completion loop drive the same step, and differ only in how
// their bytes come and go (a read when epoll says so, or a recv whose completion the ring reports).
//
//   bytes received --answer()--> protocol session --> output (responses) --sent()--> the socket
//        |                                                 |
//        +-- what is not answered yet waits in input       +-- at its high-water mark, answering
//            (part of a request, or requests held back)        stops until the socket takes it
//
// After answering and sending what the socket took, next() says what the connection waits for.

#include <cstddef>
#include <cstdint>
#include <span>

#include "byte_buffer.hpp"
#include "protocol.hpp"

namespace sb {

class ConnectionStep {
public:
    explicit ConnectionStep(const ResponseSet& responses) noexcept : session_(responses) {}

    // Answers every complete request among the input held and `fresh`, until the output reaches its
    // high-water mark (back-pressure). `fresh` may live in a buffer that other connections reuse
    // (an event loop's scratch): what is left of it is copied into the step's input, so an idle
    // connection owns no input memory. Returns the requests answered; their handler work
    // (--cpu-us, --io-us) is the caller's to run before the output is sent.
    FeedResult answer(std::span<const char> fresh = {});

    // The peer will send nothing more (end of stream): once what came is answered, close.
    void end_of_input() noexcept { peer_closed_ = true; }

    // Responses waiting for the socket: the caller sends from output().readable(), then sent(n).
    const ByteBuffer& output() const noexcept { return out_; }
    void sent(std::size_t n);

    enum class Next : std::uint8_t {
        send,               // output is waiting: wait until the socket takes more
        answer_more,        // output drained while requests were held back: answer() again
        read,               // everything that came is answered: wait for more input
        close,              // the exchange is over (Connection: close, an error status, end of stream)
        discard_and_close,  // as close, but unread input remains: drop what has arrived first, since
                            // closing with unread data makes the kernel send RST, which can destroy
                            // the last response before the client has read it
    };
    Next next() const noexcept;

    // True while part of a request has arrived and the rest has not (nothing left to send).
    bool awaiting_rest_of_request() const noexcept { return !in_.empty() && out_.empty(); }

private:
    ProtocolSession session_;
    ByteBuffer in_;   // part of a request, or input held back while output was full
    ByteBuffer out_;  // responses the socket has not taken yet
    bool peer_closed_ = false;
    bool held_back_ = false;  // the last answer() stopped at the output's high-water mark
};

}  // namespace sb
