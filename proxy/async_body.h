// BodyReader over the data plane's asynchronous streams (ClientConnection,
// UpstreamConnection): one step of a body, reading only when no received bytes wait.
#pragma once

#include "proxy/asio_base.h"
#include "proxy/body_stream.h"

namespace lp {

// Like BodyReader::read_once: decoded bytes go to sink(std::string_view), possibly in
// several pieces, before this returns; the sink must copy what it keeps.
template <typename In, typename Sink>
awaitable<IoResult> read_body_once(BodyReader& body, In& in, Deadline deadline, Sink& sink) {
  if (body.done()) co_return IoResult{};
  if (body.has_buffered()) co_return body.consume_buffered(sink);
  ReadResult r = co_await in.read_some(body.read_size(), deadline);
  if (r.io.status == IoResult::Status::kEof) co_return body.on_eof();
  if (!r.io.ok()) co_return r.io;
  co_return body.on_read(r.data, sink);
}

}  // namespace lp
