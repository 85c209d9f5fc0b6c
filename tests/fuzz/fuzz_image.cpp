// libFuzzer target: one image file in an image folder (engine/data/image_folder.h): decoded
// as RGB at its own size, and as grayscale with its central square resized to 6 x 6.
#include "engine/data/image_folder.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using visrep::data::ImageFolderOptions;
  static visrep::fuzz::Outcomes outcomes("image");
  visrep::fuzz::input_file("root/class/image", data, size);
  const std::string root = (visrep::fuzz::scratch().path() / "root").string();
  visrep::fuzz::run(outcomes, [&] {
    visrep::data::load_image_folder(root, ImageFolderOptions{.threads = 1});
    visrep::data::load_image_folder(root, ImageFolderOptions{.size = 6, .channels = 1, .threads = 1});
  });
  return 0;
}
