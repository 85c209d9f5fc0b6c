// libFuzzer target: an .npz archive (engine/io/npz.h), through libzip as BiT weights are read.
#include "engine/io/npz.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static visrep::fuzz::Outcomes outcomes("npz");
  const std::string path = visrep::fuzz::input_file("input.npz", data, size);
  visrep::fuzz::run(outcomes, [&] { visrep::io::load_npz(path); });
  return 0;
}
