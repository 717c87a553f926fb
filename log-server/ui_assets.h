// The web UI's files (log-server/ui/), compiled into the log server at build time by
// log-server/ui/embed.cmake, so the UI works offline and matches the binary's API.
#pragma once

#include <string_view>

namespace lp::logsrv {

struct UiAsset {
  std::string_view path;          // "index.html", "app.js", ... (relative to log-server/ui/)
  std::string_view content_type;  // "text/javascript; charset=utf-8", ...
  std::string_view body;
  std::string_view etag;  // quoted strong validator: a hash of the body
};

// The asset at `path` (no leading slash), or nullptr.
const UiAsset* find_ui_asset(std::string_view path);

// Sent with every UI answer: the page runs only its own files, builds its DOM from text
// (captured bytes are hostile), and talks only to this origin.
inline constexpr std::string_view kUiContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

}  // namespace lp::logsrv
