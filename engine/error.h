// The one exception type of visrep, and the check macro every op uses to reject bad input
// with a message that names the op, the shapes and the values involved.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace visrep {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace visrep

// VISREP_CHECK(condition, "op: format {}", args...) throws visrep::Error when condition is false.
#define VISREP_CHECK(condition, ...)                               \
  do {                                                             \
    if (!(condition)) throw ::visrep::Error(fmt::format(__VA_ARGS__)); \
  } while (false)

#define VISREP_FAIL(...) throw ::visrep::Error(fmt::format(__VA_ARGS__))
