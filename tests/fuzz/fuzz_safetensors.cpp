// libFuzzer target: a safetensors file (engine/io/safetensors.h), as --checkpoint and
// --resume read one.
#include "engine/io/safetensors.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static visrep::fuzz::Outcomes outcomes("safetensors");
  const std::string path = visrep::fuzz::input_file("input.safetensors", data, size);
  visrep::fuzz::run(outcomes, [&] { visrep::io::load_safetensors(path); });
  return 0;
}
