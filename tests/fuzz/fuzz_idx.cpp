// libFuzzer target: an MNIST-format (IDX) file, raw or gzip-compressed (engine/data/mnist.h).
// A raw file is read as images when it starts with the image magic number 0x00000803, else
// as labels (whose reader refuses any magic but 0x00000801); a gzip file, whose magic is
// inside the stream, as images and then, if they are refused, as labels.
#include "engine/data/mnist.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static visrep::fuzz::Outcomes outcomes("idx");
  const bool gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
  const bool images = size >= 4 && data[0] == 0 && data[1] == 0 && data[2] == 8 && data[3] == 3;
  const std::string path = visrep::fuzz::input_file("input-idx-ubyte", data, size);
  visrep::fuzz::run(outcomes, [&] {
    if (gzip) {
      try {
        visrep::data::read_idx_images(path);
        return;
      } catch (const visrep::Error& error) {
        visrep::fuzz::Outcomes::require_fit_to_show(error);
      }
    }
    if (images) {
      visrep::data::read_idx_images(path);
    } else {
      visrep::data::read_idx_labels(path);
    }
  });
  return 0;
}
