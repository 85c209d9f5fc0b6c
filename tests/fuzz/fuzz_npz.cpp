// libFuzzer target: an .npz archive (engine/io/npz.h), through libzip as BiT weights are read.
#include "engine/io/npz.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static visrep::fuzz::Outcomes outcomes("npz");
  static const visrep::fuzz::ScratchFolder scratch;
  const std::string path = scratch.write("input.npz", data, size);
  visrep::fuzz::run(outcomes, [&] { visrep::io::load_npz(path); });
  return 0;
}
