// libFuzzer target: pretrained BiT weights as visrep-bit --checkpoint reads them
// (models/bit_weights.h): an official .npz (a zip archive, "PK") or a timm-named
// .safetensors (anything else); the architecture inferred from the file, checked against
// it, then built and loaded, with the file's head and with a new 3-class zero head.
#include "engine/io/npz.h"
#include "models/bit_weights.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace visrep;
  static fuzz::Outcomes outcomes("bit_weights");
  const bool is_zip = size >= 2 && data[0] == 'P' && data[1] == 'K';
  const std::string path = visrep::fuzz::input_file(is_zip ? "weights.npz" : "weights.safetensors", data, size);
  fuzz::run(outcomes, [&] {
    // One GroupNorm group divides every width: the groups leave no trace in the weights.
    if (is_zip) {
      const io::TensorMap npz = io::load_npz(path);
      models::ResNetV2Config config = models::infer_resnet_v2_config(npz, 1);
      models::make_resnet_v2_from_bit_weights(npz, config, /*load_head=*/true, path);
      config.classes = 3;
      models::make_resnet_v2_from_bit_weights(npz, config, /*load_head=*/false, path);
    } else {
      const io::TensorMap state = io::load_safetensors(path).tensors;
      models::ResNetV2Config config = models::infer_resnet_v2_config_from_state(state, 1);
      config.classes = 3;
      models::make_resnet_v2_from_timm_state(state, config, path);
    }
  });
  return 0;
}
