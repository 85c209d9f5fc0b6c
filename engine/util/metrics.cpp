#include "engine/util/metrics.h"

#include <cerrno>
#include <cstring>

#include "engine/error.h"

namespace visrep::util {

MetricsWriter::MetricsWriter(const std::string& path, bool append)
    : path_(path), out_(path, append ? std::ios::app : std::ios::trunc) {
  VISREP_CHECK(out_.is_open(), "cannot open metrics file '{}': {}", path, std::strerror(errno));
}

void MetricsWriter::write(const nlohmann::json& record) {
  VISREP_CHECK(out_.is_open(), "metrics writer is not open");
  out_ << record.dump() << '\n';
  out_.flush();
  VISREP_CHECK(out_.good(), "writing metrics to '{}' failed: {}", path_, std::strerror(errno));
}

}  // namespace visrep::util
