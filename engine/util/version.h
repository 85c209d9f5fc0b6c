// visrep's version, as the top-level CMakeLists.txt's project(VERSION) states it: every
// model, encoder and checkpoint file records it (models/model_description.h), so a file
// says which visrep wrote it.
#pragma once

namespace visrep {

// "0.1.0": major.minor.patch.
const char* version();

}  // namespace visrep
