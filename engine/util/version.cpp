#include "engine/util/version.h"

// engine/CMakeLists.txt defines VISREP_VERSION for this file alone.
#ifndef VISREP_VERSION
#error "VISREP_VERSION is not defined: build visrep with its CMake files"
#endif

namespace visrep {

const char* version() { return VISREP_VERSION; }

}  // namespace visrep
