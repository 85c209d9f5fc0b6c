// libFuzzer target: a .npy file (engine/io/npy.h).
#include "engine/io/npy.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static visrep::fuzz::Outcomes outcomes("npy");
  const std::string path = visrep::fuzz::input_file("input.npy", data, size);
  visrep::fuzz::run(outcomes, [&] { visrep::io::load_npy(path); });
  return 0;
}
