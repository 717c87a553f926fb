// The few Boost.Asio names the data plane uses, in one place. Every asynchronous step is an
// awaitable coroutine that completes with an error_code value (as_tuple), never an exception:
// the data plane's error convention is IoResult (io_result.h).
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <span>

namespace lp {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
template <typename T>
using awaitable = asio::awaitable<T>;

// Style rule: a co_await is a whole statement or the initializer of a variable, never an
// operand inside a condition (`if (!co_await f())`): g++ 12 miscompiles the latter (the callee
// coroutine gets garbage parameters).
//
// `co_await op(..., use_result)` yields std::tuple<error_code, ...> instead of throwing.
inline constexpr auto use_result = asio::as_tuple(asio::use_awaitable);

// One read buffer per thread, for plain sockets: the data plane waits for readability first
// and reads only when bytes are there, so a read never holds this buffer across a suspension
// and thousands of idle streams hold no buffer at all. The bytes read are valid until the
// reader's next co_await.
std::span<char> thread_read_buffer();

// "Connection reset by peer" and friends, as IoResult text.
std::string error_text(const error_code& ec);

}  // namespace lp
