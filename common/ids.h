// Exchange ids: random (version 4) UUIDs, 36 characters; the first 8 are the short id shown
// on the console and in file names.
#pragma once

#include <string>

namespace lp {

std::string new_uuid();
inline std::string short_id(const std::string& id) {
  return id.substr(0, 8);
}

}  // namespace lp
