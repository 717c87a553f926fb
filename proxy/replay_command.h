// `logging-proxy replay ID [--config FILE] [--to PROXY_URL] [--from LOG_SERVER_URL]
//  [--header 'K: V']...`: fetches a capture from the log server, re-sends it through the
// proxy at its X-Proxy-Path, streams the response body to stdout, and prints a summary on
// stderr. Exit 0 on a 2xx answer, 1 on any other status or a failed send, 2 on usage or lookup
// errors.
#pragma once

namespace lp {

int run_replay(int argc, char** argv);

}  // namespace lp
